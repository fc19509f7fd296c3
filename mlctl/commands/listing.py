"""`mlctl list [--json]`: the endpoints this project applied, with their URIs and state."""

from __future__ import annotations

import json

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def command(project, as_json):
    """List this project's endpoints."""
    from mlctl.commands.show import recorded_endpoints, report
    from mlctl.state.backends import state_backend
    from mlctl.state.location import check_here
    from mlctl.state.statefile import read_state

    state = read_state(state_backend(project))
    check_here(project, state)
    rows = [report(project, state, name) for name in sorted(recorded_endpoints(state))]
    if as_json:
        click.echo(
            json.dumps(
                [
                    {k: r[k] for k in ("name", "auth_mode", "scoring_uri", "provisioning_state", "traffic")}
                    for r in rows
                ],
                indent=2,
            )
        )
        return
    if not rows:
        click.echo("No endpoints: nothing is applied in this project yet.")
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        click.echo(
            f"{r['name']:<{width}}  {r['provisioning_state']:<10}  {r['scoring_uri'] or '-'}  "
            f"traffic {json.dumps(r['traffic'])}"
        )
