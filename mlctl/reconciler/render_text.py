"""Human plan text, Terraform-like, written to a rich Console (colour only when it is a terminal)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlctl import runtimerecords
from mlctl.reconciler import present
from mlctl.reconciler.plans import Action, Change, Plan

STYLE = {
    Action.CREATE: "green",
    Action.UPDATE: "yellow",
    Action.REPLACE: "magenta",
    Action.RECREATE: "red",
    Action.DELETE: "red",
    Action.NOOP: "dim",
}
MARK = {"+": "green", "-": "red", "~": "yellow"}

if TYPE_CHECKING:
    from rich.console import Console


class Text:
    """The plan's text as pieces: plain strings without colour, (string, style) pairs made a rich Text with it
    (rich.Text.append costs ~2 µs a piece: 1 s for a 10,000-resource first plan written to a file)."""

    def __init__(self, styled: bool) -> None:
        self.styled = styled
        self.pieces: list = []

    def append(self, text: str, style: str | None = None) -> None:
        self.pieces.append((text, style) if self.styled else text)

    def line(self, parts) -> None:
        if self.styled:
            self.pieces.extend(parts)
            self.pieces.append(("\n", None))
        else:
            self.pieces.extend(text for text, _ in parts)
            self.pieces.append("\n")

    @property
    def plain(self) -> str:
        return "".join(text for text, _ in self.pieces) if self.styled else "".join(self.pieces)

    def rich(self):
        from rich.text import Text as RichText

        out = RichText()
        for text, style in self.pieces if self.styled else ((p, None) for p in self.pieces):
            out.append(text, style=style)
        return out


def _line(out: Text, *parts: tuple[str, str | None]) -> None:
    out.line(parts)


def _block(out: Text, plan: Plan, c: Change, root: str | None) -> None:
    style = STYLE[c.action]
    _line(out, (f"  # {c.address} ", "bold"), (c.action.headline, None))
    _line(out, (f"  # (reason: {present.reason_text(plan, c)})", "dim"))
    kind, _, name = str(c.address).partition(".")
    _line(out, (present.symbol(c.action), style), (f' {kind} "{name}" {{', None))
    pad = "      "
    if c.action is Action.CREATE:
        after = present.masked(c.after) or {}
        for k in sorted(set(after) - set(c.after_unknown)):
            _line(out, (pad, None), ("+", "green"), (f" {k} = {present.shown(after[k], root, k)}", None))
        for k in c.after_unknown:
            if after.get(k) is None:
                _line(out, (pad, None), ("+", "green"), (f" {k} = ", None), ("(known after apply)", "italic"))
    elif c.action is Action.DELETE:
        _line(out, (f"{pad}  # ({len(c.before or {})} attributes hidden)", "dim"))
    else:
        for item in c.diff:
            mark, text = present.item_line(item, root)
            _line(out, (pad, None), (mark, MARK[mark]), (f" {text}", None))
        for k in c.after_unknown:
            _line(out, (pad, None), ("~", "yellow"), (f" {k} = ", None), ("(known after apply)", "italic"))
        for note in present.file_notes(c):
            _line(out, (f"{pad}  # {note}", "cyan"))
        touched = {p.split(".", 1)[0].split("[", 1)[0] for _, p, _, _ in c.diff}
        hidden = len(set(c.after or {}) - touched)
        if hidden:
            _line(out, (f"{pad}  # ({hidden} unchanged attribute{'s' if hidden != 1 else ''} hidden)", "dim"))
    _line(out, ("    }", None))


def _endpoint_warning(out: Text, plan: Plan) -> None:
    gone = plan.endpoint_deletions()
    if not gone:
        return
    names = ", ".join(str(c.address) for c in gone)
    _line(
        out,
        ("Warning: ", "bold red"),
        (f"this plan deletes {len(gone)} endpoint{'s' if len(gone) > 1 else ''}: {names}", "bold"),
    )
    for c in gone:
        _line(out, (f"  - {c.address} ({present.reason_text(plan, c)})", "red"))
    if plan.destroy:
        _line(out, ("  as asked: destroying deletes every endpoint the project deployed.", None))
    else:
        _line(out, ("  apply deletes an endpoint only with --allow-destroy, or from a plan made with --destroy.", None))
    out.append("\n")


def _runtime_warning(out: Text, plan: Plan) -> None:
    line = present.runtime_move_line(plan)
    if line:
        _line(out, ("Warning: ", "bold red"), (line, "bold"))
        out.append("\n")


def render_text(plan: Plan, console: Console, root: str | None = None) -> Text:
    """Print `plan` on `console` (endpoint deletions first, one block per change, ignored fields, summary);
    returns the text printed."""
    out = plan_text(plan, console.color_system is not None, root)
    write_text(out, console)
    return out


def plan_text(plan: Plan, styled: bool, root: str | None = None) -> Text:
    """Pure: the text `render_text` prints for `plan`, with styles when `styled`."""
    out = Text(styled)
    _endpoint_warning(out, plan)
    _runtime_warning(out, plan)
    changes = [c for c in plan.changes if c.action is not Action.NOOP]
    if changes:
        used = [a for a in present.LEGEND if any(c.action is a for c in changes)]
        if plan.refresh_only:
            _line(
                out,
                (
                    "Objects have changed outside of mlctl (refresh-only: configuration changes are not "
                    "shown). To restore what was applied, mlctl apply would:",
                    None,
                ),
            )
        else:
            _line(out, ("mlctl will perform the following actions. Symbols:", None))
        for a in used:
            _line(out, (f"  {present.symbol(a)}", STYLE[a]), (f" {a.legend}", None))
        out.append("\n")
    for c in changes:
        _block(out, plan, c, root)
        out.append("\n")
    unchanged = plan.summary()["unchanged"]
    if changes and unchanged:
        _line(out, (f"({unchanged} unchanged resource{'s' if unchanged != 1 else ''} not shown)", "dim"))
        out.append("\n")
    if plan.ignored:
        runtime = plan.runtime or runtimerecords.DEFAULT
        _line(out, (f"Ignored fields (cloud-only; accepted, not honoured by the {runtime} runtime):", None))
        for where in sorted(plan.ignored):
            _line(out, (f"  {where}: {', '.join(plan.ignored[where])}", "dim"))
        out.append("\n")
    _line(out, (present.summary_line(plan), "bold"))
    return out


def write_text(out: Text, console: Console) -> None:
    """Write a plan's text on `console`: plainly without colour, through rich with it."""
    if not out.styled:  # no colour (a pipe, a file): the same text without rich's layout cost
        console.file.write(out.plain)
        console.file.flush()
    else:
        console.print(out.rich(), soft_wrap=True, highlight=False, end="")
