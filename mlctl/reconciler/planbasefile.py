"""The plan base's body (mlctl.reconciler.planbase): how the configuration, the state and the plan of a full plan are
written as a pickle and read again.

Read only after the file's signature verifies with the user's key, and then with a restricted unpickler: only classes
defined in mlctl, pathlib's paths and `read_only` may be named, no other function and no module.

Written small: what the state and the configuration hold equally (a resource's attributes, files, digest, and every
address, of which 10,000 resources name 90,000) is one object in what is written, so it is read once; and a plan's
changes are kept without their before and after values, which are the state's and the resources' attributes, copied
again when read. Reading a 10,000-resource base fell from about 0.26 to 0.16 s of CPU (bench/README.md).
"""

from __future__ import annotations

import copyreg
import dataclasses
import io
import pickle
from types import MappingProxyType
from typing import Any


def read_only(values: dict) -> MappingProxyType:
    """A read-only mapping (the project settings hold them) made again from its items."""
    return MappingProxyType(values)


class _Pickler(pickle.Pickler):
    dispatch_table = {**copyreg.dispatch_table, MappingProxyType: lambda m: (read_only, (dict(m),))}


class _Unpickler(pickle.Unpickler):
    """Only classes defined in mlctl, pathlib's paths and `read_only` may be named: no other function, no module."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == (__name__, "read_only"):
            return read_only
        if "." not in name and (module == "mlctl" or module.startswith("mlctl.") or module == "pathlib"):
            found = super().find_class(module, name)
            if isinstance(found, type) and found.__module__ == module:
                return found
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a plan base")


def pickled(value) -> bytes:
    """Pure: `value` as the base writes it."""
    out = io.BytesIO()
    _Pickler(out, protocol=5).dump(value)
    return out.getvalue()


def unpickled(data: bytes) -> Any:
    """What `pickled` wrote; pickle.UnpicklingError (or another error of a damaged body) otherwise."""
    return _Unpickler(io.BytesIO(data)).load()


def shared(config, state) -> tuple:
    """Pure: (config, state) equal to these as values, in which every address is the configuration's resource's own
    object and each recorded resource whose attributes, files or digest equal its desired resource's holds that very
    object: what `pickled` then writes once. Nothing in them is changed after a plan (the edit path copies what it
    hands on), so sharing is safe."""
    from mlctl.resources import Resource
    from mlctl.state.statefile import ResourceState

    own = {r.address: r.address for r in config.resources}

    def one(a):
        return own.get(a, a)

    resources = tuple(
        Resource(r.address, r.attributes, r.digest, tuple(map(one, r.depends_on)), r.files, r.ignored, r.source)
        for r in config.resources
    )
    want = {r.address: r for r in resources}
    recorded = {}
    for a, rs in state.resources.items():
        copy = object.__new__(ResourceState)  # as it is, without __post_init__ (its values are already made)
        values = copy.__dict__
        values.update(rs.__dict__)
        values["depends_on"] = list(map(one, rs.depends_on))
        r = want.get(a)
        if r is not None:
            a = r.address
            for name in ("attributes", "files"):
                if type(getattr(r, name)) is dict and values[name] == getattr(r, name):
                    values[name] = getattr(r, name)
            if values["digest"] == r.digest:
                values["digest"] = r.digest
        recorded[a] = copy
    return dataclasses.replace(config, resources=resources), dataclasses.replace(state, resources=recorded)


def compact(changes, config, state) -> list | None:
    """Pure: the changes as (address, action, reason, has before, after_unknown, diff, changed_files); None when
    one of them is not what `expanded` makes of that again."""
    from mlctl.reconciler.actions import Action

    want = {r.address: r for r in config.resources}
    out = []
    for c in changes:
        r = None if c.action is Action.DELETE else want.get(c.address)
        p = state.resources.get(c.address)
        if c.resource is not r or c.after != (None if r is None else r.attributes):
            return None
        if c.before is not None and (p is None or c.before != p.attributes):
            return None
        address = c.address if r is None else r.address
        out.append((address, c.action, c.reason, c.before is not None, c.after_unknown, c.diff, c.changed_files))
    return out


def expanded(kept: list, config, state) -> tuple:
    """Pure: the changes `compact` kept, with their before and after values copied from the state and the resources."""
    from mlctl.reconciler.actions import Action
    from mlctl.reconciler.plans import Change

    want = {r.address: r for r in config.resources}
    have = state.resources
    out = []
    for a, action, reason, before, unknown, diff, files in kept:
        r = None if action is Action.DELETE else want[a]
        out.append(
            Change(
                a,
                action,
                reason,
                dict(have[a].attributes) if before else None,
                None if r is None else dict(r.attributes),
                unknown,
                diff,
                files,
                r,
            )
        )
    return tuple(out)
