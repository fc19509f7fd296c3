"""The plan as markdown for a pull-request comment: summary table, deletions and traffic shifts first,
a `<details>` block per resource, at most `LIMIT` characters. Pure.

When the blocks do not fit, the output stops at a resource boundary and says so in an explicit
line; deletions and traffic shifts are listed in the header, so truncation never drops one.
"""

from __future__ import annotations

import html
from dataclasses import replace

from mlctl.reconciler import present
from mlctl.reconciler.plans import Action, Change, Plan

LIMIT = 60_000


def _code(s: str) -> str:
    return f"<code>{html.escape(s)}</code>"


def _block(plan: Plan, c: Change, root: str | None) -> str:
    head = (
        f"<details><summary>{_code(c.action.value)} <b>{html.escape(str(c.address))}</b> "
        f"{html.escape(c.action.headline)} ({html.escape(present.reason_text(plan, c))})</summary>\n\n"
    )
    lines = []
    if c.action is Action.CREATE:
        after = present.masked(c.after) or {}
        lines += [f"+ {k} = {present.shown(after[k], root, k)}" for k in sorted(set(after) - set(c.after_unknown))]
        lines += [f"+ {k} = (known after apply)" for k in c.after_unknown if after.get(k) is None]
    elif c.action is Action.DELETE:
        before = present.masked(c.before) or {}
        lines += [f"- {k} = {present.shown(before[k], root, k)}" for k in sorted(before)]
    else:
        lines += [" ".join(present.item_line(i, root)) for i in c.diff]
        lines += [f"~ {k} = (known after apply)" for k in c.after_unknown]
        lines += [f"# {n}" for n in present.file_notes(c)]
    ignored = plan.ignored.get(str(c.address))
    if ignored:
        lines.append(f"# ignored (cloud-only): {', '.join(ignored)}")
    fence = "```"
    while fence in "\n".join(lines):
        fence += "`"
    return head + f"{fence}diff\n" + "\n".join(lines) + f"\n{fence}\n</details>\n"


def _header(plan: Plan, compact: bool) -> str:
    n = plan.summary()
    title = "### mlctl plan (refresh-only: drift)" if plan.refresh_only else "### mlctl plan"
    out = [title, "", f"**{present.summary_line(plan)}**", ""]
    if plan.destroy:
        out += ["**This is a destroy plan: everything recorded in the state is deleted.**", ""]
    out += [
        "| add | change | replace | destroy | unchanged |",
        "|---:|---:|---:|---:|---:|",
        f"| {n['add']} | {n['change']} | {n['replace']} | {n['destroy']} | {n['unchanged']} |",
        "",
    ]
    gone = plan.endpoint_deletions()
    if gone:
        how = (
            "this plan was made with `--destroy`"
            if plan.destroy
            else "apply deletes an endpoint only with `--allow-destroy` or from a plan made with `--destroy`"
        )
        out += [
            "> [!WARNING]",
            f"> **Deletes {len(gone)} endpoint{'s' if len(gone) > 1 else ''}:** "
            + ", ".join(f"`{c.address}`" for c in gone)
            + f". {how.capitalize()}.",
            "",
        ]
    moving = present.runtime_move_line(plan)
    if moving:
        out += ["> [!WARNING]", f"> **Moves endpoints:** {html.escape(moving)}", ""]
    deletions = [c for c in plan.changes if c.action is Action.DELETE]
    shifts = plan.traffic_shifts()
    if deletions or shifts:
        out += ["#### Deletions and traffic shifts", ""]
        if compact:
            if shifts:
                out.append("Traffic changes: " + ", ".join(f"`{c.address}`" for c in shifts))
            if deletions:
                out.append("Deleted: " + ", ".join(f"`{c.address}`" for c in deletions))
        else:
            out += [
                f"- `{c.action.value}` **{c.address}**: {present.weights(c)}"
                for c in shifts
                if c.action is not Action.DELETE
            ]
            out += [
                f"- `-` **{c.address}** ({present.reason_text(plan, c)})"
                + (f": {present.weights(c)}" if c in shifts else "")
                for c in deletions
            ]
        out.append("")
    return "\n".join(out) + "\n"


def render_markdown(plan: Plan, root: str | None = None, limit: int = LIMIT) -> str:
    """At most `limit` characters (unless the deletions alone exceed it even listed compactly)."""
    changes = [c for c in plan.changes if c.action is not Action.NOOP]
    header = _header(plan, compact=False)
    if len(header) > limit // 2:
        header = _header(plan, compact=True)
    footer_room = 400
    out, used = [header], len(header)
    if changes:
        out.append("#### Changes\n\n")
        used += len(out[-1])
    for i, c in enumerate(changes):
        block = _block(plan, c, root) + "\n"
        if used + len(block) > limit - footer_room:
            rest = len(changes) - i
            out.append(
                f"**Truncated: {rest} more resource change{'s' if rest != 1 else ''} not shown "
                f"(this comment is limited to {limit:,} characters). Every deletion and traffic shift is "
                f"listed above. Run `mlctl plan` for the full plan.**\n"
            )
            break
        out.append(block)
        used += len(block)
    if plan.ignored:
        note = (
            "Ignored cloud-only fields: "
            + "; ".join(f"`{a}`: {', '.join(f)}" for a, f in sorted(plan.ignored.items()))
            + "\n"
        )
        if used + len(note) > limit - 200:
            note = f"Ignored cloud-only fields on {len(plan.ignored)} resources: run `mlctl plan` to list them.\n"
        out.append("\n" + note)
    return "".join(out)


def render_markdown_failure(diagnostics, root: str | None = None) -> str:
    """Pure: what `plan --markdown` prints instead of a plan when it fails: every error, located,
    so a pull-request comment says why there is no plan."""
    errors = [d for d in diagnostics if d.severity == "error"]
    out = ["### mlctl plan", "", f"**{present.failure_line(len(errors))}**", ""]
    for d in diagnostics:
        where = replace(d, file=present.relative(d.file, root)).location()
        out.append(
            f"- **{d.severity.capitalize()}:** {html.escape(d.summary)}" + (f" ({_code(where)})" if where else "")
        )
        if d.detail:
            out.append(f"  {html.escape(d.detail)}")
    text = "\n".join(out) + "\n"
    return text if len(text) <= LIMIT else text[: LIMIT - 200].rsplit("\n- ", 1)[0] + "\n\n**Truncated.**\n"
