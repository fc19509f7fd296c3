"""`mlctl destroy`: delete everything this project deployed (endpoint hosts and their instances stop)."""

from __future__ import annotations

import click


@click.command()
@click.option("--auto-approve", is_flag=True, help="Destroy without asking for 'yes'.")
@click.option("--lock-timeout", default="0s", metavar="DURATION", show_default=True,
              help="Wait this long for another mlctl holding the state lock.")
@click.pass_obj
def command(project, auto_approve, lock_timeout):
    """Delete every endpoint, deployment and traffic setting recorded in the state.

    Registered models and built virtualenvs stay in their stores (`mlctl cache prune`).
    """
    from mlctl.commands.apply import run_apply

    run_apply(project, auto_approve=auto_approve, destroy=True, allow_destroy=True, lock_timeout=lock_timeout,
              question="Do you really want to destroy all resources of this project?")
