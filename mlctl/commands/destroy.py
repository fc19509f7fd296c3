"""`mlctl destroy`: delete everything this project deployed (endpoint hosts and their instances stop)."""

from __future__ import annotations

import click

from mlctl.commands.plan import lock_timeout_option, override_options, with_overrides


def stop_leftovers(project) -> None:
    """Stop what of this project still runs although the state does not record it (e.g. the state
    file was lost), on every runtime involved."""
    from mlctl.reconciler.operations import leftovers
    from mlctl.state.backends import state_backend
    from mlctl.state.statefile import read_state

    for what, stop in leftovers(project, read_state(state_backend(project))):
        click.echo(f"{what} is not in the state: stopping it")
        stop()


@click.command()
@click.option("--auto-approve", is_flag=True, help="Destroy without asking for 'yes'.")
@lock_timeout_option
@override_options
@click.pass_obj
def command(project, auto_approve, lock_timeout, sets, variables):
    """Delete every endpoint, deployment and traffic setting recorded in the state, and stop any
    endpoint host of this project still running. Keys are removed.

    Registered models and built virtualenvs stay in their stores (`mlctl cache prune`).
    """
    from mlctl.commands.apply import run_apply

    project = with_overrides(project, sets, variables)
    run_apply(
        project,
        auto_approve=auto_approve,
        destroy=True,
        allow_destroy=True,
        lock_timeout=lock_timeout,
        question="Do you really want to destroy all resources of this project?",
    )
    stop_leftovers(project)
