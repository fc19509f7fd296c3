"""Field-level differences between two attribute dicts, as `(op, path, old, new)` items.

Pure. Lists are compared as whole values (a changed package list shows old and new lists),
dicts key by key; `op` is "add", "remove" or "change" (the planner adds "drift" items).
"""

from __future__ import annotations

import re
import sys
from typing import Any, Collection, Mapping

DiffItem = tuple[str, str, Any, Any]
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


def format_path(keys: list) -> str:
    """['request_settings', 'max_queue_wait_ms'] -> 'request_settings.max_queue_wait_ms';
    keys that are not identifiers are quoted: environment_variables["A.B"]."""
    out = ""
    for k in keys:
        if isinstance(k, str) and _IDENT.match(k):
            out += ("." if out else "") + k
        else:
            out += f"[{k!r}]".replace("'", '"')
    return out


def _get(doc: Any, keys: list) -> Any:
    for k in keys:
        doc = doc[k]
    return doc


def _list_prefix(doc: Any, keys: list) -> list:
    """The keys up to (not into) the first list on the way down."""
    for i, k in enumerate(keys):
        if isinstance(doc, list):
            return keys[:i]
        doc = doc[k]
    return keys


_OPTIONAL = ("numpy", "pandas", "polars", "pydantic")


def _deepdiff():
    """DeepDiff, imported without its optional numpy/pandas/polars/pydantic support: attributes are
    plain JSON, and importing those would cost a plan about 0.3 s. sys.modules is restored after."""
    absent = [m for m in _OPTIONAL if m not in sys.modules] if "deepdiff" not in sys.modules else []
    for m in absent:
        sys.modules[m] = None  # type: ignore[assignment]  # makes `import m` raise ImportError inside deepdiff
    try:
        from deepdiff import DeepDiff
    finally:
        for m in absent:
            if sys.modules.get(m, 0) is None:
                del sys.modules[m]
    return DeepDiff


def without(attributes: Mapping[str, Any], exclude: Collection[str]) -> dict:
    return {k: v for k, v in attributes.items() if k not in exclude}


def diff_attributes(
    before: Mapping[str, Any], after: Mapping[str, Any], exclude: Collection[str] = ()
) -> tuple[DiffItem, ...]:
    """Pure: what changed from `before` to `after`, ignoring the top-level keys in `exclude`
    (path-like attributes: a checkout elsewhere is not a change). Sorted by path.

    Top-level keys are compared directly; deepdiff walks only the dicts that differ."""
    b, a = without(before, exclude), without(after, exclude)
    if b == a:
        return ()
    items: dict[str, DiffItem] = {}
    nested_b, nested_a = {}, {}
    for k in set(b) | set(a):
        path = format_path([k])
        if k not in a:
            items[path] = ("remove", path, b[k], None)
        elif k not in b:
            items[path] = ("add", path, None, a[k])
        elif b[k] != a[k]:
            if isinstance(b[k], dict) and isinstance(a[k], dict):
                nested_b[k], nested_a[k] = b[k], a[k]
            else:
                items[path] = ("change", path, b[k], a[k])
    if nested_b:
        items.update(_nested(nested_b, nested_a))
    return tuple(items[p] for p in sorted(items))


def _nested(b: dict, a: dict) -> dict[str, DiffItem]:
    """deepdiff of dicts that differ: one item per changed key; lists reported whole."""
    DeepDiff = _deepdiff()  # imported only when a nested value differs
    items: dict[str, DiffItem] = {}
    for kind, levels in DeepDiff(b, a, view="tree").items():
        for level in levels:
            keys = level.path(output_format="list")
            absent_before = "added" in kind
            absent_after = "removed" in kind
            prefix = _list_prefix(a if absent_before else b, keys)
            if prefix != keys:  # inside a list: report the whole list once
                keys = prefix
                absent_before = absent_after = False
            path = format_path(keys)
            if path in items:
                continue
            if absent_before:
                items[path] = ("add", path, None, _get(a, keys))
            elif absent_after:
                items[path] = ("remove", path, _get(b, keys), None)
            else:
                items[path] = ("change", path, _get(b, keys), _get(a, keys))
    return items
