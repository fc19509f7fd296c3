"""Presentation of a plan shared by the renderers: wording, value display, relative paths, masking.

Pure. Paths under the project root are shown relative to it (so output does not depend on
where the project is checked out); environment variables named like secrets are masked, and any
value that looks like one (a URL's credentials, a token: `mlctl.masking`) wherever it is.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from mlctl.masking import MASK, masked_value
from mlctl.reconciler.plans import Action, Change, Plan, Reason

SENSITIVE = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|CONN(ECTION)?_?STR|SAS|PRIVATE", re.I)

LEGEND = tuple(a for a in Action if a.legend)  # the actions a plan's symbol legend may list


def symbol(action: Action) -> str:
    """The plan symbol, right-aligned in three columns as Terraform does."""
    return action.value.rjust(3)


def summary_line(plan: Plan) -> str:
    if plan.refresh_only:
        n = sum(c.action is not Action.NOOP for c in plan.changes)
        if not n:
            return "No drift. The runtime matches what was applied."
        return (
            f"Drift: {n} resource{'s' if n != 1 else ''} changed outside of mlctl; "
            "`mlctl apply` restores what was applied."
        )
    if not plan.has_changes():
        if plan.destroy:
            return "No changes. Nothing of this project is deployed: there is nothing to destroy."
        return "No changes. The runtime matches the configuration."
    counts = plan.summary()
    return (
        f"Plan: {counts['add']} to add, {counts['change']} to change, {counts['replace']} to replace, "
        f"{counts['destroy']} to destroy."
    )


def runtime_move_line(plan: Plan) -> str | None:
    """The call-out for endpoints a plan recreates on another runtime (None when there are none)."""
    moved = plan.runtime_moves()
    if not moved:
        return None
    names = ", ".join(str(c.address) for c in moved)
    return (
        f"this plan moves {len(moved)} endpoint{'s' if len(moved) > 1 else ''} to the {plan.runtime} runtime: "
        f"{names} (recreated on the same port with the same keys; their instances stop and start again "
        "there). apply does it only with --allow-destroy."
    )


def failure_line(errors: int) -> str:
    """The summary of a plan that could not be made (`plan --json` / `--markdown` on error)."""
    return f"The plan failed with {errors} error{'s' if errors != 1 else ''}; nothing was planned."


def upstream_of(plan: Plan, change: Change) -> list[str]:
    """The replaced dependencies that make `change` an upstream replacement."""
    replaced = {
        str(c.address)
        for c in plan.changes
        if c.action.replaces or (c.action is Action.CREATE and c.reason is Reason.DRIFT)
    }
    deps = change.resource.depends_on if change.resource else ()
    return sorted(str(d) for d in deps if str(d) in replaced)


def reason_text(plan: Plan, change: Change) -> str:
    """`config changed`, `upstream replaced: model.m`, `requested with --replace`, ..."""
    r = change.reason
    if r is None:
        return ""
    if r is Reason.UPSTREAM_REPLACED:
        ups = upstream_of(plan, change)
        return f"{r.value}: {', '.join(ups)}" if ups else r.value
    if r is Reason.REQUESTED:
        return "requested with --replace"
    if r is Reason.FAILED_EARLIER:
        return f"{r.value}: it was left failed by an earlier apply"
    if r is Reason.DRIFT and change.action is Action.CREATE:
        return f"{r.value}: it is gone from the runtime"
    if r is Reason.DRIFT:
        return f"{r.value}: the runtime differs from what was applied"
    if r is Reason.RUNTIME_CHANGED and plan.runtime:
        return f"{r.value}: moves to the {plan.runtime} runtime"
    return r.value


def relative(value: Any, root: str | None) -> Any:
    """`value` with absolute paths under `root` made relative to it (recursively)."""
    if not root:
        return value
    if isinstance(value, str):
        if value == root:
            return "."
        if value.startswith(root + os.sep):
            return value[len(root) + 1 :]
        return value
    if isinstance(value, dict):
        return {k: relative(v, root) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [relative(v, root) for v in value]
    return value


def masked_env(env: dict | None) -> dict | None:
    """Environment variables with secret-looking values replaced by `(sensitive)`."""
    if not env:
        return env
    return {k: (MASK if SENSITIVE.search(k) else v) for k, v in env.items()}


def masked(attributes: dict | None) -> dict | None:
    """Attributes with environment variables named like secrets masked, and every value that looks
    like one (URL credentials, tokens) masked wherever it is."""
    if not attributes:
        return attributes
    out = masked_value(attributes)
    if attributes.get("environment_variables"):
        out["environment_variables"] = masked_env(out["environment_variables"])
    return out


def masked_item(item: tuple) -> tuple:
    """A diff item with secret-looking values masked (by the variable's name, and by value)."""
    op, path, old, new = item
    if path == "environment_variables":
        return op, path, masked_env(masked_value(old)), masked_env(masked_value(new))
    if path.startswith("environment_variables") and SENSITIVE.search(path[len("environment_variables") :]):
        return op, path, None if old is None else MASK, None if new is None else MASK
    return op, path, masked_value(old), masked_value(new)


def shown(value: Any, root: str | None, path: str = "") -> str:
    """A value as the plan shows it: JSON, paths relative to the project, memory sizes as quantities."""
    return _SHOWN.encode(relative(readable(path, value), root))


_MEMORY = re.compile(r"resources\.(requests|limits)\.memory")


def readable(path: str, value: Any) -> Any:
    """Pure: `value` (at attribute `path`) with each memory size of a deployment's `resources` (kept in bytes, so
    "0.5Gi" and "512Mi" compare equal) shown as a quantity: "512Mi" when a binary unit divides it, else its
    bytes with the nearest unit ("107374183 bytes (102.4Mi)"). Text and Markdown plans only; JSON keeps bytes."""
    if isinstance(value, dict) and path in ("resources", "resources.requests", "resources.limits"):
        return {k: readable(f"{path}.{k}", v) for k, v in value.items()}
    if type(value) is int and _MEMORY.fullmatch(path):
        from mlctl.quantities import BINARY, describe_bytes

        exact = [u for u, size in BINARY.items() if value >= size and value % size == 0]
        return f"{value // BINARY[exact[-1]]}{exact[-1]}" if exact else f"{value} bytes ({describe_bytes(value)})"
    return value


_SHOWN = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "))  # json.dumps's own, made once


def file_notes(change: Change) -> list[str]:
    """`files changed: code/score.py`, one note per non-empty list."""
    out = []
    for what in ("changed", "added", "removed"):
        names = change.changed_files.get(what) or ()
        if names:
            out.append(f"files {what}: {', '.join(names)}")
    return out


def item_line(item: tuple, root: str | None) -> tuple[str, str]:
    """(symbol, text) for one diff item."""
    op, path, old, new = masked_item(item)
    if op == "add":
        return "+", f"{path} = {shown(new, root, path)}"
    if op == "remove":
        return "-", f"{path} = {shown(old, root, path)}"
    if op == "drift":
        return "~", f"{path} = {shown(old, root, path)} -> {shown(new, root, path)}  # observed, drifted"
    return "~", f"{path} = {shown(old, root, path)} -> {shown(new, root, path)}"


def weights(change: Change) -> str:
    """`blue 90% -> 0%, green 10% -> 100%` for a traffic change (mirror shown after `mirror`)."""
    parts = []
    for key, label in (("traffic", ""), ("mirror_traffic", "mirror ")):
        before = (change.before or {}).get(key) or {}
        after = (change.after or {}).get(key) or {}
        for d in sorted(set(before) | set(after)):
            b, a = before.get(d, 0), after.get(d, 0)
            if change.action is Action.DELETE:
                parts.append(f"{label}{d} {b}% -> removed")
            elif b != a or change.action is Action.CREATE:
                parts.append(f"{label}{d} {b}% -> {a}%")
    return ", ".join(parts) or "weights unchanged"
