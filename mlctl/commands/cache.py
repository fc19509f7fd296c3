"""`mlctl cache list|prune`: the shared virtualenv cache and this project's model store and code snapshots."""

from __future__ import annotations

import json
import time

import click


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


@click.group()
def command():
    """Inspect or prune the shared image cache ($MLCTL_CACHE) and this project's model store."""


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def list_(project, as_json):
    """List virtualenvs, registered models and code snapshots, and whether this project uses them."""
    from mlctl.reconciler.operations import project_runtimes
    from mlctl.state.backends import state_backend
    from mlctl.state.statefile import read_state

    runtime = project_runtimes(project).main
    items = runtime.cache_entries(project, read_state(state_backend(project)))
    if as_json:
        click.echo(json.dumps({"cache": runtime.cache_location(), "entries": [e.to_json() for e in items]}, indent=2))
        return
    click.echo(f"cache: {runtime.cache_location()}")
    for e in items:
        click.echo(f"  {e.kind:<5} {'in use' if e.in_use else 'unused':<6} {_human(e.size):>9}  {e.detail}  {e.path}")
    click.echo(f"total {_human(sum(e.size for e in items))} in {len(items)} entries")


@command.command("prune")
@click.option(
    "--older-than",
    default="7d",
    show_default=True,
    metavar="DURATION",
    help="Remove a shared virtualenv only when no project used it for this long (e.g. 0s, 12h, 7d).",
)
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@click.pass_obj
def prune(project, older_than, dry_run):
    """Remove what nothing uses: virtualenvs unused for --older-than and not used by this project,
    and this project's models and code snapshots its state no longer names."""
    from mlctl.errors import MlctlError
    from mlctl.reconciler.operations import project_runtimes
    from mlctl.state.lock import parse_timeout
    from mlctl.state.backends import state_backend
    from mlctl.state.statefile import read_state

    text = older_than.removesuffix("d")
    try:
        seconds = float(text) * 86400 if older_than.endswith("d") else parse_timeout(older_than)
    except ValueError as e:
        raise MlctlError(f"--older-than: {e}") from None
    runtime = project_runtimes(project).main
    with state_backend(project).lock("cache prune"):
        items = runtime.prune(runtime.cache_entries(project, read_state(state_backend(project))), seconds, time.time())
        freed = 0
        for e in items:
            if dry_run or runtime.remove(e):
                freed += e.size
                click.echo(f"{'would remove' if dry_run else 'removed'} {e.kind} {e.detail}: {e.path}")
            else:
                click.echo(f"skipped {e.kind} {e.path}: a build or a running process is using it")
    click.echo(f"{'Would free' if dry_run else 'Freed'} {_human(freed)}.")
