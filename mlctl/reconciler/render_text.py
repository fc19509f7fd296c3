"""Human plan text, Terraform-like, written to a rich Console (colour only when it is a terminal)."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from mlctl.reconciler import present
from mlctl.reconciler.plans import Action, Change, Plan

STYLE = {Action.CREATE: "green", Action.UPDATE: "yellow", Action.REPLACE: "magenta",
         Action.RECREATE: "red", Action.DELETE: "red", Action.NOOP: "dim"}
MARK = {"+": "green", "-": "red", "~": "yellow"}


def _line(console: Console, *parts: tuple[str, str | None]) -> None:
    text = Text()
    for s, style in parts:
        text.append(s, style=style)
    console.print(text, soft_wrap=True, highlight=False)


def _block(console: Console, plan: Plan, c: Change, root: str | None) -> None:
    style = STYLE[c.action]
    _line(console, (f"  # {c.address} ", "bold"), (present.HEADLINE[c.action], None))
    _line(console, (f"  # (reason: {present.reason_text(plan, c)})", "dim"))
    kind, _, name = str(c.address).partition(".")
    _line(console, (present.symbol(c.action), style), (f' {kind} "{name}" {{', None))
    pad = "      "
    if c.action is Action.CREATE:
        after = present.masked(c.after) or {}
        for k in sorted(set(after) - set(c.after_unknown)):
            _line(console, (pad, None), ("+", "green"), (f" {k} = {present.shown(after[k], root)}", None))
        for k in c.after_unknown:
            if after.get(k) is None:
                _line(console, (pad, None), ("+", "green"), (f" {k} = ", None), ("(known after apply)", "italic"))
    elif c.action is Action.DELETE:
        _line(console, (f"{pad}  # ({len(c.before or {})} attributes hidden)", "dim"))
    else:
        for item in c.diff:
            mark, text = present.item_line(item, root)
            _line(console, (pad, None), (mark, MARK[mark]), (f" {text}", None))
        for k in c.after_unknown:
            _line(console, (pad, None), ("~", "yellow"), (f" {k} = ", None), ("(known after apply)", "italic"))
        for note in present.file_notes(c):
            _line(console, (f"{pad}  # {note}", "cyan"))
        touched = {p.split(".", 1)[0].split("[", 1)[0] for _, p, _, _ in c.diff}
        hidden = len(set(c.after or {}) - touched)
        if hidden:
            _line(console, (f"{pad}  # ({hidden} unchanged attribute{'s' if hidden != 1 else ''} hidden)", "dim"))
    _line(console, ("    }", None))


def _endpoint_warning(console: Console, plan: Plan) -> None:
    gone = plan.endpoint_deletions()
    if not gone:
        return
    names = ", ".join(str(c.address) for c in gone)
    _line(console, ("Warning: ", "bold red"), (f"this plan deletes {len(gone)} endpoint{'s' if len(gone) > 1 else ''}: {names}", "bold"))
    for c in gone:
        _line(console, (f"  - {c.address} ({present.reason_text(plan, c)})", "red"))
    if plan.destroy:
        _line(console, ("  apply will delete them: this plan was made with --destroy.", None))
    else:
        _line(console, ("  apply deletes an endpoint only with --allow-destroy, or from a plan made with --destroy.", None))
    console.print()


def render_text(plan: Plan, console: Console, root: str | None = None) -> None:
    """Print `plan` on `console`: endpoint deletions first, one block per change, ignored fields, summary."""
    _endpoint_warning(console, plan)
    changes = [c for c in plan.changes if c.action is not Action.NOOP]
    if changes:
        used = [a for a in present.LEGEND if any(c.action is a for c in changes)]
        _line(console, ("mlctl will perform the following actions. Symbols:", None))
        for a in used:
            _line(console, (f"  {present.symbol(a)}", STYLE[a]), (f" {present.LEGEND[a]}", None))
        console.print()
    for c in changes:
        _block(console, plan, c, root)
        console.print()
    unchanged = plan.summary()["unchanged"]
    if changes and unchanged:
        _line(console, (f"({unchanged} unchanged resource{'s' if unchanged != 1 else ''} not shown)", "dim"))
        console.print()
    if plan.ignored:
        _line(console, ("Ignored fields (cloud-only; accepted, not honoured by the local runtime):", None))
        for a in sorted(plan.ignored):
            _line(console, (f"  {a}: {', '.join(plan.ignored[a])}", "dim"))
        console.print()
    _line(console, (present.summary_line(plan), "bold"))
