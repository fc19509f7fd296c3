"""`mlctl state ...`: inspect the state (list, show, versions, pull), move it (push, migrate, force-unlock)
and take over a copied or moved project's state (adopt).

The state is wherever the project file's `state:` block keeps it (mlctl.state.backends): the local file
or a blob. list, show, versions and pull only read; push, migrate and adopt write through the state lock.
"""

from __future__ import annotations

import json

import click

from mlctl.commands.plan import lock_timeout_option


@click.group("state")
def command():
    """Inspect the state: what apply recorded; move it between stores."""


def _read(ctx):
    from mlctl.state.backends import state_backend
    from mlctl.state.statefile import read_state

    return read_state(state_backend(ctx.obj))


@command.command("list")
@click.pass_context
def list_(ctx):
    """List recorded resources in apply order (a status other than ready is shown beside)."""
    from mlctl.reconciler.graph import dependencies, order

    state = _read(ctx)
    for a in order(dependencies((), state)):
        rs = state.resources.get(a)
        if rs is not None and rs.failed_roll:
            click.echo(f"{a}  (its last roll failed; this version still serves)")
        elif rs is not None:
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


@command.command("versions")
@click.pass_obj
def versions(project):
    """List the kept versions of the state (serial, when written, size), oldest first."""
    from mlctl.state.backends import state_backend

    backend = state_backend(project)
    kept = backend.versions()
    if not kept:
        click.echo(f"no state written yet in {backend.where}")
    for v in kept:
        click.echo(f"{v.serial:>8}  {v.written}  {v.size} bytes")


@command.command("pull")
@click.option("--serial", type=int, default=None, help="A kept version (`mlctl state versions`); default the latest.")
@click.pass_obj
def pull(project, serial):
    """Print the state document (or a kept version of it) to standard output."""
    from mlctl.state.backends import state_backend
    from mlctl.state.statefile import encode, parse_document

    backend = state_backend(project)
    data = backend.read().data if serial is None else backend.read_version(serial)
    parse_document(backend.where, data)  # refuses a document this mlctl cannot read
    click.echo((data or encode(parse_document(backend.where, None))).decode("utf-8"), nl=False)


@command.command("push")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--force", is_flag=True, help="Replace a state of a higher serial, or of the same serial but other content."
)
@lock_timeout_option
@click.pass_obj
def push(project, file, force, lock_timeout):
    """Put a state document (an errored-state.json saved by a failed apply, a pulled version) into the
    project's state store, under the state lock. Refused when its lineage differs, or when the store
    holds a newer serial (without --force)."""
    from mlctl.state.backends import state_backend
    from mlctl.state.transfer import push_document

    backend = state_backend(project)
    with backend.lock("state push", timeout=lock_timeout):
        click.echo(push_document(backend, file, force=force))


@command.command("force-unlock")
@click.argument("lock_id")
@click.pass_obj
def force_unlock(project, lock_id):
    """Break the state lock whose ID is LOCK_ID (the lock error prints it), saying whose it was."""
    from mlctl.state.backends import state_backend

    held = state_backend(project).unlock(lock_id)
    click.echo(
        f"Unlocked: the lock {held.id} was held by {held.who} (operation '{held.operation}', since {held.since})."
    )


@command.command("migrate")
@lock_timeout_option
@click.pass_obj
def migrate(project, lock_timeout):
    """Copy the state to the store the project file's `state:` block now names, from the one this folder
    used before. Refused when the target holds a state of another lineage."""
    from mlctl.state.transfer import migrate_state

    click.echo(migrate_state(project, lock_timeout=lock_timeout))


@command.command("adopt")
@lock_timeout_option
@click.pass_context
def adopt(ctx, lock_timeout):
    """Make the state here this project's own after the project was copied or moved: the next plan then shows
    what runs here (nothing, at first) and apply starts this folder's own endpoint hosts. The endpoints of
    the location the state came from are left as they are."""
    from mlctl.reconciler.operations import left_behind
    from mlctl.state.location import here, recorded_elsewhere
    from mlctl.state.backends import state_backend
    from mlctl.state.statefile import read_state, write_state

    project = ctx.obj
    backend = state_backend(project)
    with backend.lock("state adopt", timeout=lock_timeout):
        state = read_state(backend)
        origin = recorded_elsewhere(state, project.data_dir)
        if origin is None:
            click.echo("The state already belongs to this project location: nothing to adopt.")
            return
        state.location = here(project.data_dir)
        write_state(backend, state)
    click.echo(f"The state now belongs to {state.location['path']} (it came from {origin.get('path')}).")
    for line in left_behind(project, state):
        click.echo(line)
    click.echo("Run `mlctl plan` to see what apply will start here.")
