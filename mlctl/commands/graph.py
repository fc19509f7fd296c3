"""`mlctl graph`: print the dependency graph of the configuration and state (DOT or mermaid)."""

from __future__ import annotations

import click


@click.command("graph")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["dot", "mermaid"]),
    default="dot",
    show_default=True,
    help="dot (Graphviz) or mermaid (renders in GitHub markdown).",
)
@click.pass_context
def command(ctx, fmt):
    """Print the dependency graph: configured resources, and recorded ones no longer configured (dashed)."""
    from mlctl.errors import MlctlError
    from mlctl.reconciler.graph import dependencies, find_cycles, to_dot, to_mermaid
    from mlctl.schemas.load import load_config
    from mlctl.state.backends import state_backend
    from mlctl.state.statefile import read_state

    project = ctx.obj
    config = load_config(project)
    config.raise_for_errors()
    graph = dependencies(config.resources, read_state(state_backend(project)))
    click.echo((to_dot if fmt == "dot" else to_mermaid)(graph), nl=False)
    cycles = find_cycles(graph)
    if cycles:
        raise MlctlError(*cycles)
