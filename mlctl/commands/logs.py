"""`mlctl logs ENDPOINT --deployment NAME`: a deployment's instance logs (or its storage initializer's)."""

from __future__ import annotations

import click

from mlctl.errors import MlctlError


@click.command()
@click.argument("endpoint")
@click.option(
    "--deployment", default=None, metavar="NAME", help="The deployment (default: the endpoint host's own log)."
)
@click.option(
    "--lines",
    default=5000,
    show_default=True,
    type=click.IntRange(min=0),
    help="How many lines from the end (per instance).",
)
@click.option("--follow", "-F", is_flag=True, help="Keep printing new lines until interrupted.")
@click.option("--instance", default=None, type=click.IntRange(min=0), metavar="K", help="Only instance K.")
@click.option(
    "--container",
    type=click.Choice(["inference-server", "storage-initializer"]),
    default="inference-server",
    show_default=True,
    help="inference-server: the scoring instances; storage-initializer: model/code registration and the image build.",
)
@click.pass_obj
def command(project, endpoint, deployment, lines, follow, instance, container):
    """Print a deployment's logs (Azure's get-logs): the last N lines, then new ones with --follow."""
    from mlctl.commands.show import endpoint_state
    from mlctl.reconciler.operations import runtime_of

    state, rs = endpoint_state(project, endpoint)
    runtime = runtime_of(project, rs)
    if container == "storage-initializer":
        if not deployment:
            raise MlctlError("--container storage-initializer needs --deployment NAME")
        for line in runtime.build_logs(project, state, endpoint, deployment, lines):
            click.echo(line)
        return
    try:
        for line in runtime.logs(project, endpoint, deployment, lines=lines, instance=instance, follow=follow):
            click.echo(line)
    except KeyboardInterrupt:
        pass
