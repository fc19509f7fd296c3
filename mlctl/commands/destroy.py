"""`mlctl destroy`: delete everything this project deployed (endpoint hosts and their instances stop)."""

from __future__ import annotations

import click

from mlctl.commands.plan import lock_timeout_option


def stop_unrecorded_hosts(project) -> None:
    """Stop endpoint hosts of this project the state does not know (e.g. the state file was lost)."""
    from mlctl.runtime.host.client import HostClient, find_host

    run = project.data_dir / "run"
    for record in sorted(run.glob("*.json")) if run.is_dir() else []:
        info = find_host(project.data_dir, record.stem)
        if info is not None:
            click.echo(f"endpoint host of {record.stem!r} (pid {info.pid}) is not in the state: stopping it")
            HostClient(info).shutdown()


@click.command()
@click.option("--auto-approve", is_flag=True, help="Destroy without asking for 'yes'.")
@lock_timeout_option
@click.pass_obj
def command(project, auto_approve, lock_timeout):
    """Delete every endpoint, deployment and traffic setting recorded in the state, and stop any
    endpoint host of this project still running. Keys are removed.

    Registered models and built virtualenvs stay in their stores (`mlctl cache prune`).
    """
    from mlctl.commands.apply import run_apply

    run_apply(project, auto_approve=auto_approve, destroy=True, allow_destroy=True, lock_timeout=lock_timeout,
              question="Do you really want to destroy all resources of this project?")
    stop_unrecorded_hosts(project)
