"""`mlctl plan`: show what apply would change (text, --json or --markdown); optionally save it (--out)."""

from __future__ import annotations

import contextlib
import gc
import sys

import click


def _lock_timeout(ctx, param, value):
    from mlctl.state.lock import parse_timeout

    try:
        return parse_timeout(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def lock_timeout_option(f):
    """`--lock-timeout DURATION` (shared with apply and destroy): wait this long for another mlctl's state lock."""
    return click.option(
        "--lock-timeout",
        default="0s",
        metavar="DURATION",
        callback=_lock_timeout,
        help="Wait this long for the state lock held by another mlctl (e.g. 30s, 2m).",
    )(f)


def override_options(f):
    """`--set [FILE:]PATH=VALUE` and `--var NAME=VALUE` (validate, plan, apply): mlctl.overrides."""
    f = click.option(
        "--var",
        "variables",
        multiple=True,
        metavar="NAME=VALUE",
        help="Fill the placeholders <NAME> and {{NAME}} in the configuration files (repeatable).",
    )(f)
    return click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="[FILE:]PATH=VALUE",
        help="Set a field, as Azure's --set: traffic.blue=100, blue.yml:instance_count=2 (repeatable).",
    )(f)


def with_overrides(project, sets, variables):
    """The project read with these overrides (a saved plan is applied with the ones it was made with)."""
    import dataclasses

    from mlctl.overrides import parse_overrides

    return dataclasses.replace(project, overrides=parse_overrides(sets, variables))


@contextlib.contextmanager
def collections_paused():
    """No cyclic garbage collection while a plan is made and printed: the loader and the planner allocate
    hundreds of thousands of objects that all live until the plan is printed, and the collector walked them
    again and again (a third of a 10,000-resource plan's CPU time). Reference counting still frees the rest."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def echo_diagnostics(diagnostics) -> None:
    """Warnings and notes to stderr (errors are raised as MlctlError)."""
    for d in diagnostics:
        if d.severity != "error":
            click.echo(d.format(), err=True)


def print_plan(
    project,
    *,
    as_json: bool = False,
    as_markdown: bool = False,
    refresh: bool = True,
    destroy: bool = False,
    replace=(),
    lock_timeout: float = 0,
    refresh_only: bool = False,
    memo=None,
):
    """Make the project's plan and print it as `mlctl plan` does (text, --json or --markdown; warnings to
    stderr); returns it. MlctlError when there is no plan (after printing the failure document for
    --json / --markdown). `mlctl convert` shows the plan of what it wrote through this too. `memo`: a
    PlanMemo (mlctl.reconciler.planmemo) to keep what is printed in."""
    from mlctl.errors import MlctlError
    from mlctl.schemas.specs import PROBED

    root = str(project.root)
    probed: set[str] = set()
    token = PROBED.set(probed if memo is not None else None)
    built: dict | None = None  # what the load made, for the plan base (mlctl.reconciler.planbase)
    try:
        made = None
        if memo is not None:
            from mlctl.reconciler.planbase import remade

            made = remade(memo, probed)
        if made is None:
            from mlctl.reconciler.operations import make_plan  # the plan in full (the base's path needs none of it)

            built = {} if memo is not None else None
            with _collecting(built):
                config, state, result = make_plan(
                    project,
                    refresh_first=refresh,
                    destroy=destroy,
                    replace=replace,
                    lock_timeout=lock_timeout,
                    refresh_only=refresh_only,
                )
        else:
            config, state, result = made
    except MlctlError as e:  # a machine reading stdout learns why there is no plan (stderr says it too)
        if as_json:
            from mlctl.reconciler.render_json import render_json_failure

            click.echo(render_json_failure(e.diagnostics, root), nl=False)
        elif as_markdown:
            from mlctl.reconciler.render_markdown import render_markdown_failure

            click.echo(render_markdown_failure(e.diagnostics, root), nl=False)
        raise
    finally:
        PROBED.reset(token)
    echo_diagnostics(result.diagnostics)
    printed: str | dict
    if as_json:
        from mlctl.reconciler.render_json import render_json

        printed = render_json(result, root)
        click.echo(printed, nl=False)
    elif as_markdown:
        from mlctl.reconciler.render_markdown import render_markdown

        printed = render_markdown(result, root)
        click.echo(printed, nl=False)
    else:
        text = _print_text(result, root)
        printed = {"styled": text.styled, "pieces": text.pieces}
    if memo is not None:
        stderr = [d.format() for d in result.diagnostics if d.severity != "error"]
        if memo.keep(probed, stderr, printed, result.has_changes()) and built is not None:
            from mlctl.reconciler.planbase import keep

            keep(memo, config, state, result, built)
    return result


def _print_text(result, root: str):
    """Print the text plan (through rich in colour; plainly, without importing rich, when not styled) and return
    its text (mlctl.reconciler.render_text.Text)."""
    from mlctl.reconciler.render_text import plan_text, render_text

    if is_styled():
        from rich.console import Console

        return render_text(result, Console(highlight=False), root)
    text = plan_text(result, False, root)
    sys.stdout.write(text.plain)  # as rich's Console writes a text without colour (render_text.write_text)
    sys.stdout.flush()
    return text


@contextlib.contextmanager
def _collecting(built: dict | None):
    """mlctl.schemas.load.BUILT set to `built` (None: nothing collected)."""
    from mlctl.schemas.load import BUILT

    token = BUILT.set(built)
    try:
        yield
    finally:
        BUILT.reset(token)


# Environment variables that make rich colour a stream that is not a terminal
_COLOUR_FORCED = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "JUPYTER_COLUMNS", "JUPYTER_LINES")


def is_styled() -> bool:
    """Does the text plan go out in colour (rich's answer; rich is imported only when it could be yes)?"""
    import os
    import sys

    if not sys.stdout.isatty() and not any(v in os.environ for v in _COLOUR_FORCED):
        return False
    from rich.console import Console

    return Console(highlight=False).color_system is not None


def replay(entry: dict) -> None:
    """Print a plan kept by the plan memo (mlctl.reconciler.planmemo) exactly as it was printed."""
    for line in entry["stderr"]:
        click.echo(line, err=True)
    out = entry["stdout"]
    if isinstance(out, str):
        click.echo(out, nl=False)
        return
    if not out["styled"]:
        stdout = click.get_text_stream("stdout")
        stdout.write("".join(out["pieces"]))
        stdout.flush()
        return
    from rich.console import Console

    from mlctl.reconciler.render_text import Text, write_text

    text = Text(True)
    text.pieces = [tuple(p) for p in out["pieces"]]
    write_text(text, Console(highlight=False))


@click.command("plan")
@click.option(
    "--out",
    "out",
    metavar="FILE",
    help="Save the plan to FILE for `mlctl apply FILE` (bound to the state and every input file).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (mlctl.plan/v1).")
@click.option(
    "--markdown", "as_markdown", is_flag=True, help="Print markdown for a pull-request comment (<= 60,000 characters)."
)
@click.option(
    "--detailed-exitcode", is_flag=True, help="Exit 0 when there are no changes, 2 when there are, 1 on error."
)
@click.option("--destroy", is_flag=True, help="Plan to delete everything recorded in the state.")
@click.option(
    "--replace",
    "replace",
    multiple=True,
    metavar="ADDRESS",
    help="Replace this resource even if unchanged (repeatable).",
)
@click.option(
    "--refresh",
    type=click.BOOL,
    default=True,
    show_default=True,
    metavar="BOOL",
    help="Ask the runtime what is running first; --refresh=false plans from the state alone.",
)
@click.option(
    "--refresh-only",
    is_flag=True,
    help="Show only drift: what the runtime reports differently from what was applied "
    "(exit 2 with --detailed-exitcode).",
)
@lock_timeout_option
@override_options
@click.pass_context
def command(
    ctx,
    out,
    as_json,
    as_markdown,
    detailed_exitcode,
    destroy,
    replace,
    refresh,
    refresh_only,
    lock_timeout,
    sets,
    variables,
):
    """Show what apply would change, without changing anything."""
    if as_json and as_markdown:
        raise click.UsageError("--json and --markdown cannot be used together")
    if refresh_only and (destroy or replace or out or not refresh):
        raise click.UsageError("--refresh-only cannot be combined with --destroy, --replace, --out or --refresh=false")
    project = with_overrides(ctx.obj, sets, variables)
    memo = None
    if not refresh and not refresh_only and not out:
        from mlctl.reconciler.planmemo import PlanMemo

        fmt = "json" if as_json else "markdown" if as_markdown else ("styled" if is_styled() else "text")
        memo = PlanMemo.prepare(project, {"format": fmt, "destroy": destroy, "replace": list(replace)})
        entry = memo.lookup() if memo is not None else None
        if entry is not None:
            replay(entry)
            if detailed_exitcode and entry["changes"]:
                ctx.exit(2)
            return
    from mlctl.schemas.documents import reads_kept

    with collections_paused(), reads_kept(memo.read if memo is not None else {}):
        result = print_plan(
            project,
            as_json=as_json,
            as_markdown=as_markdown,
            refresh=refresh,
            destroy=destroy,
            replace=replace,
            lock_timeout=lock_timeout,
            refresh_only=refresh_only,
            memo=memo,
        )
    root = str(project.root)
    if out:
        from mlctl.reconciler.planfile import save_plan

        save_plan(result, project.root / out, root)  # relative to -C DIR, as if started there
        click.echo(
            f"\nSaved the plan to {out}. Apply exactly this plan with: mlctl apply {out}", err=as_json or as_markdown
        )
    if detailed_exitcode and result.has_changes():
        ctx.exit(2)
