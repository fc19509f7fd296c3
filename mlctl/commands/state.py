"""`mlctl state list` and `mlctl state show ADDRESS`: inspect the state file (read-only)."""

from __future__ import annotations

import json

import click


@click.group("state")
def command():
    """Inspect the state file: what apply recorded."""


def _read(ctx):
    from mlctl.state.statefile import read_state

    return read_state(ctx.obj.state_path)


@command.command("list")
@click.pass_context
def list_(ctx):
    """List recorded resources in apply order (a status other than ready is shown beside)."""
    from mlctl.reconciler.graph import dependencies, order

    state = _read(ctx)
    for a in order(dependencies((), state)):
        rs = state.resources.get(a)
        if rs is not None:
            click.echo(a if rs.status == "ready" else f"{a}  ({rs.status})")


@command.command("show")
@click.argument("address")
@click.option("--json", "as_json", is_flag=True, help="Print the recorded entry as JSON.")
@click.pass_context
def show(ctx, address, as_json):
    """Show one recorded resource: status, attributes, what the runtime reported, files."""
    import difflib

    from mlctl.errors import Diagnostic, MlctlError
    from mlctl.reconciler import present
    from mlctl.resources import Address

    try:
        key = Address.parse(address)
    except ValueError as e:
        raise MlctlError(Diagnostic(str(e), "`mlctl state list` shows the recorded addresses.")) from None
    state = _read(ctx)
    address = str(key)
    rs = state.resources.get(key)
    if rs is None:
        close = difflib.get_close_matches(address, [str(a) for a in state.resources], n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise MlctlError(
            Diagnostic(
                f"no resource {address} in the state",
                f"{hint}`mlctl state list` shows the recorded addresses.",
                file=str(ctx.obj.state_path),
            )
        )
    root = str(ctx.obj.root)
    entry = rs.to_json()
    entry["attributes"] = present.masked(entry["attributes"])
    if as_json:
        click.echo(json.dumps({"address": address, **present.relative(entry, root)}, indent=2))
        return
    click.echo(f"# {address}")
    for key in ("kind", "status", "runtime", "digest"):
        click.echo(f"{key} = {present.shown(entry[key], root)}")
    click.echo(f"depends_on = {present.shown(entry['depends_on'], root)}")
    for section in ("attributes", "observed"):
        click.echo(f"\n{section}:")
        for k in sorted(entry[section]):
            click.echo(f"  {k} = {present.shown(entry[section][k], root)}")
    if entry["files"]:
        click.echo(f"\nfiles: {len(entry['files'])}")
        for f in sorted(entry["files"]):
            click.echo(f"  {f}  {entry['files'][f][:12]}")
