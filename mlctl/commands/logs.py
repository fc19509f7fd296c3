"""`mlctl logs ENDPOINT --deployment NAME`: a deployment's instance logs (or its storage initializer's)."""

from __future__ import annotations

import click

from mlctl.errors import MlctlError


def storage_initializer(project, state, endpoint: str, deployment: str, lines: int) -> list[str]:
    """What registration and the image build wrote for a deployment: model and code records, the build log."""
    from mlctl.runtime.local import envs, snapshot, store

    rs = state.resources.get(f"deployment.{endpoint}.{deployment}")
    if rs is None:
        raise MlctlError(f"endpoint {endpoint!r} has no applied deployment {deployment!r}")
    a = rs.attributes
    name, version = a.get("model"), a.get("model_version")
    where = store.model_dir(project.data_dir, name, version)
    digest = store.registered_digest(project.data_dir, name, version)
    out = [f"model {name}:{version} registered at {where} (digest {digest})"]
    if a.get("code_digest"):
        out.append(f"code snapshot {snapshot.snapshot_path(project.data_dir, a['code_digest'])} "
                   f"(digest {a['code_digest']})")
    if not a.get("environment"):
        out.append("no environment: instances run on mlctl's own interpreter")
    elif a.get("image_digest"):
        log = envs.build_log(a["image_digest"])
        if log.exists():
            out.append(f"image build log {log}:")
            out += log.read_text(errors="replace").splitlines()[-lines:]
        else:
            out.append(f"no build log for environment {a['environment']!r} (built elsewhere or pruned)")
    return out


@click.command()
@click.argument("endpoint")
@click.option("--deployment", default=None, metavar="NAME", help="The deployment (default: the endpoint host's own log).")
@click.option("--lines", default=5000, show_default=True, type=click.IntRange(min=0), help="How many lines from the end (per instance).")
@click.option("--follow", "-F", is_flag=True, help="Keep printing new lines until interrupted.")
@click.option("--instance", default=None, type=click.IntRange(min=0), metavar="K", help="Only instance K.")
@click.option("--container", type=click.Choice(["inference-server", "storage-initializer"]),
              default="inference-server", show_default=True,
              help="inference-server: the scoring instances; storage-initializer: model/code registration and the image build.")
@click.pass_obj
def command(project, endpoint, deployment, lines, follow, instance, container):
    """Print a deployment's logs (Azure's get-logs): the last N lines, then new ones with --follow."""
    from mlctl.commands.show import endpoint_state
    from mlctl.runtime.host.logfiles import tail

    state, _ = endpoint_state(project, endpoint)
    if container == "storage-initializer":
        if not deployment:
            raise MlctlError("--container storage-initializer needs --deployment NAME")
        for line in storage_initializer(project, state, endpoint, deployment, lines):
            click.echo(line)
        return
    try:
        for line in tail(project.data_dir, endpoint, deployment, lines=lines, instance=instance, follow=follow):
            click.echo(line)
    except KeyboardInterrupt:
        pass
