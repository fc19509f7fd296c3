"""`mlctl apply [PLANFILE]`: plan (or load a saved plan), show it, ask, carry it out, show progress (mlctl.progress)."""

from __future__ import annotations

import sys

import click

from mlctl.commands.plan import lock_timeout_option, override_options, with_overrides
from mlctl.errors import MlctlError


def print_plan(plan, project) -> None:
    from rich.console import Console

    from mlctl.reconciler.render_text import render_text

    render_text(plan, Console(highlight=False, soft_wrap=True), str(project.root))


def confirm(auto_approve: bool, question: str, verb: str = "apply") -> None:
    """Ask for `yes` on a terminal; refuse without --auto-approve elsewhere."""
    if auto_approve:
        return
    if not sys.stdin.isatty():
        raise MlctlError(
            f"refusing to {verb} without confirmation: stdin is not a terminal",
            detail="Review the plan above, then run again with --auto-approve.",
        )
    click.echo(f"\n{question}\n  Only 'yes' will be accepted.")
    if click.prompt("  Enter a value", default="", show_default=False).strip() != "yes":
        raise MlctlError(f"{verb} cancelled: nothing was changed.")


def summary(plan) -> str:
    n = plan.summary()
    return (
        f"Apply complete! Resources: {n['add']} added, {n['change']} changed, "
        f"{n['replace']} replaced, {n['destroy']} destroyed."
    )


def print_endpoints(state, data_dir) -> None:
    """Each endpoint's scoring URI; for `tls: self-signed`, the CA file its clients must trust."""
    from mlctl.selfsigned import trusted_ca

    for address, rs in sorted(state.resources.items()):
        if rs.kind == "endpoint" and rs.observed.scoring_uri:
            click.echo(f"  {address}: {rs.observed.scoring_uri}")
            ca = trusted_ca(rs.attributes, data_dir)
            if ca:
                click.echo(f"    clients trust the project's development CA (tls: self-signed): {ca}")


def run_apply(
    project,
    *,
    planfile=None,
    auto_approve=False,
    allow_destroy=False,
    destroy=False,
    lock_timeout: float = 0.0,
    question="Do you want to perform these actions?",
) -> int:
    """Plan (or load PLANFILE), show, confirm, apply. Returns the exit code.

    On Ctrl-C says how to continue, then lets the interrupt end the command (exit 130)."""
    try:
        return _run_apply(
            project,
            planfile=planfile,
            auto_approve=auto_approve,
            allow_destroy=allow_destroy,
            destroy=destroy,
            lock_timeout=lock_timeout,
            question=question,
        )
    except KeyboardInterrupt:
        verb = "destroy" if destroy else "apply"
        click.echo(
            f"\n{verb} was interrupted. The state records every change that finished and the one in "
            f"progress; run `mlctl {verb}` again to continue from there.",
            err=True,
        )
        raise


def _run_apply(project, *, planfile, auto_approve, allow_destroy, destroy, lock_timeout, question) -> int:
    from mlctl.progress import display
    from mlctl.reconciler.hooks import Hooks
    from mlctl.reconciler.operations import apply_project

    def show(plan, config):
        for d in config.diagnostics:
            if d.severity == "warning":
                click.echo(d.format(), err=True)
        print_plan(plan, project)

    def approve(plan):
        if not planfile:
            confirm(auto_approve, question, "destroy" if destroy else "apply")
        click.echo()

    with display() as listener:  # lines, and what still runs (a live display on a terminal)
        plan, state = apply_project(
            project,
            planfile=planfile,
            destroy=destroy,
            allow_destroy=allow_destroy,
            lock_timeout=lock_timeout,
            hooks=Hooks(listener),
            show=show,
            approve=approve,
        )
    if not plan.has_changes():
        return 0
    click.echo()
    click.echo(summary(plan) if not destroy else "Destroy complete! " + summary(plan).split("! ", 1)[1])
    print_endpoints(state, project.data_dir)
    return 0


@click.command()
@click.argument("planfile", required=False, type=click.Path(dir_okay=False))
@click.option("--auto-approve", is_flag=True, help="Apply without asking for 'yes'.")
@click.option("--allow-destroy", is_flag=True, help="Allow deleting endpoints removed from the configuration.")
@lock_timeout_option
@override_options
@click.pass_obj
def command(project, planfile, auto_approve, allow_destroy, lock_timeout, sets, variables):
    """Make the runtime match the configuration, or carry out a saved PLANFILE (a relative path is
    read from the project, as `plan --out` writes it).

    Shows the plan and asks for 'yes' (on a terminal; elsewhere pass --auto-approve).
    A saved plan is applied as reviewed, and refused when the state, the config or any
    referenced file changed since it was made.
    """
    project = with_overrides(project, sets, variables)
    code = run_apply(
        project, planfile=planfile, auto_approve=auto_approve, allow_destroy=allow_destroy, lock_timeout=lock_timeout
    )
    if code:
        raise click.exceptions.Exit(code)
