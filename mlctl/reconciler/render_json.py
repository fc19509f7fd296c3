"""The plan as one JSON document, `mlctl.plan/v1` (schema: mlctl/schemas/plan.schema.json). Pure."""

from __future__ import annotations

import json

from mlctl import __version__
from mlctl.reconciler import present
from mlctl.reconciler.plans import Change, Plan

FORMAT = "mlctl.plan/v1"


def _change(plan: Plan, c: Change, root: str | None) -> dict:
    return {
        "address": str(c.address),
        "kind": c.kind.value,
        "actions": c.action.json_actions,
        "symbol": c.action.value,
        "reason": c.reason.value if c.reason else None,
        "reason_detail": present.reason_text(plan, c) or None,
        "before": present.relative(present.masked(c.before), root),
        "after": present.relative(present.masked(c.after), root),
        "after_unknown": {k: True for k in c.after_unknown},
        "diff": [
            {"op": op, "path": p, "old": present.relative(o, root), "new": present.relative(n, root)}
            for op, p, o, n in map(present.masked_item, c.diff)
        ],
        "changed_files": {k: list(c.changed_files.get(k, ())) for k in ("added", "changed", "removed")},
        "ignored": list(plan.ignored.get(str(c.address), ())),
    }


def _diagnostic(d, root: str | None) -> dict:
    return {
        "severity": d.severity,
        "summary": d.summary,
        "detail": d.detail or None,
        "file": present.relative(d.file, root),
        "line": d.line,
        "field": d.field,
        "address": d.address,
    }


def plan_document(plan: Plan, root: str | None = None) -> dict:
    """Pure: the JSON-compatible document of `plan`; paths under `root` are made relative."""
    return {
        "format_version": FORMAT,
        "mlctl_version": __version__,
        "destroy": plan.destroy,
        "refresh_only": plan.refresh_only,
        "prior_state": {"lineage": plan.lineage if plan.serial else None, "serial": plan.serial},
        "resource_changes": [_change(plan, c, root) for c in plan.changes],
        "endpoint_deletions": [str(c.address) for c in plan.endpoint_deletions()],
        "diagnostics": [_diagnostic(d, root) for d in plan.diagnostics],
        "summary": {**plan.summary(), "has_changes": plan.has_changes(), "text": present.summary_line(plan)},
    }


def render_json(plan: Plan, root: str | None = None) -> str:
    return json.dumps(plan_document(plan, root), indent=2, ensure_ascii=False) + "\n"


def failure_document(diagnostics, root: str | None = None) -> dict:
    """Pure: the document `plan --json` prints instead of a plan when it fails (bad input, a held
    lock, an unreadable state, a plan error): `valid: false` and every error, located."""
    errors = [d for d in diagnostics if d.severity == "error"]
    return {
        "format_version": FORMAT,
        "mlctl_version": __version__,
        "valid": False,
        "error_count": len(errors),
        "diagnostics": [_diagnostic(d, root) for d in diagnostics],
        "summary": {"has_changes": False, "text": present.failure_line(len(errors))},
    }


def render_json_failure(diagnostics, root: str | None = None) -> str:
    return json.dumps(failure_document(diagnostics, root), indent=2, ensure_ascii=False) + "\n"
