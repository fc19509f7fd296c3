"""The changes of a saved plan: each field of a `Change` written to and read back from a plan file by
one small pair of functions in `FIELDS`, so a new `Change` field is one line here (and one in
mlctl/schemas/planfile.schema.json). What is derived from the fields (the runtime `order` apply gives)
is stored too, and checked to be what this mlctl derives.

No attribute value is ever written. `before`, `after` and `resource` are read back from the state and
configuration that the plan file's binding proves unchanged; the diff's config items are written as
(op, path) and their values recomputed from the same state and configuration, then checked to be the
same items in the same order. Only drift items keep their values: they are runtime observations
(liveness, instance counts, served digests, traffic weights), which neither state nor configuration
can give back, and never secrets. Each change also stores the digest of the resource it creates or
updates, checked against the configuration's at load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from mlctl.reconciler.diff import diff_attributes
from mlctl.reconciler.plans import Action, Change, Reason
from mlctl.resources import Address


class Mismatch(ValueError):
    """A saved change that the current configuration or state cannot give back (the message says what)."""


@dataclass(frozen=True)
class Recorded:
    """What a saved change is read back against: its action, the resource recorded in the state (or
    None), the resource the configuration declares (or None for a deletion), the attributes never diffed."""

    action: Action
    prior: Any
    resource: Any
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class Field:
    """How one `Change` field is saved: `key` in the file (None: not stored, read back from `Recorded`),
    `write(change)` its JSON value, `read(stored value, recorded)` the field's value."""

    key: str | None
    write: Callable[[Change], Any]
    read: Callable[[Any, Recorded], Any]


def _diff_out(c: Change) -> list[dict]:
    """Config items as (op, path); drift items (observations, no secrets) with their values."""
    return [
        {"op": op, "path": p, "old": old, "new": new} if op == "drift" else {"op": op, "path": p}
        for op, p, old, new in c.diff
    ]


def _diff_in(items: list[dict], rec: Recorded) -> tuple:
    computed = (
        diff_attributes(rec.prior.attributes, rec.resource.attributes, rec.exclude)
        if rec.prior is not None and rec.resource is not None
        else ()
    )
    saved = [(i["op"], i["path"]) for i in items if i["op"] != "drift"]
    if saved != [(op, p) for op, p, _, _ in computed]:
        raise Mismatch("its differences from the state are not the ones planned")
    return tuple(computed) + tuple((i["op"], i["path"], i["old"], i["new"]) for i in items if i["op"] == "drift")


def _before(_, rec: Recorded) -> dict | None:
    return dict(rec.prior.attributes) if rec.prior is not None and rec.action is not Action.CREATE else None


def _after(_, rec: Recorded) -> dict | None:
    return dict(rec.resource.attributes) if rec.resource is not None else None


def _resource(digest: str | None, rec: Recorded):
    """The configuration's resource, which must be the one planned (same digest)."""
    if rec.resource is not None and rec.resource.digest != digest:
        raise Mismatch("its configuration or artifacts differ from when the plan was made (another digest)")
    return rec.resource


FIELDS: dict[str, Field] = {
    "address": Field("address", lambda c: str(c.address), lambda v, rec: Address.parse(v)),
    "action": Field("action", lambda c: c.action.value, lambda v, rec: rec.action),
    "reason": Field(
        "reason", lambda c: c.reason.value if c.reason else None, lambda v, rec: Reason(v) if v is not None else None
    ),
    "before": Field(None, lambda c: None, _before),
    "after": Field(None, lambda c: None, _after),
    "after_unknown": Field("after_unknown", lambda c: list(c.after_unknown), lambda v, rec: tuple(v)),
    "diff": Field("diff", _diff_out, _diff_in),
    "changed_files": Field(
        "changed_files",
        lambda c: {k: list(v) for k, v in c.changed_files.items()},
        lambda v, rec: {k: tuple(f) for k, f in v.items()},
    ),
    "resource": Field(
        "digest", lambda c: c.resource.digest if c.resource is not None else None, lambda v, rec: _resource(v, rec)
    ),
}


# Derived from the fields, stored so apply can check it would derive the same (another mlctl might not).
DERIVED: dict[str, Callable[[Change], Any]] = {
    "order": lambda c: c.order.value if c.order is not None else None,  # the runtime operation planned
}


def write_change(change: Change) -> dict:
    """Pure: the JSON object a plan file stores for `change` (no attribute values)."""
    return {
        **{f.key: f.write(change) for f in FIELDS.values() if f.key},
        **{key: derive(change) for key, derive in DERIVED.items()},
    }


def read_action(entry: dict) -> Action:
    """The saved change's action (ValueError when it is no action this mlctl knows)."""
    return Action(entry["action"])


def read_change(entry: dict, rec: Recorded) -> Change:
    """The `Change` saved as `entry`, its values taken from `rec`; raises Mismatch when `rec` cannot
    give back what was planned."""
    if rec.resource is None and rec.action is not Action.DELETE:
        raise Mismatch("the configuration no longer declares it")
    if rec.prior is None and rec.action is not Action.CREATE:
        raise Mismatch("the state no longer records it")
    change = Change(**{name: f.read(entry.get(f.key) if f.key else None, rec) for name, f in FIELDS.items()})
    for key, derive in DERIVED.items():
        if derive(change) != entry.get(key):
            raise Mismatch(f"it was planned with {key} {entry.get(key)!r}; this mlctl would give {derive(change)!r}")
    return change
