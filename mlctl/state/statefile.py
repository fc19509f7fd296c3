"""The state file: what apply recorded, read and written atomically with a backup and a serial.

Shape (docs/resources.md, and its JSON Schema mlctl/schemas/state.schema.json): {"format_version",
"serial", "lineage", "mlctl_version", "resources": {ADDRESS: {"kind", "attributes", "digest",
"depends_on", "status", "runtime", "observed", "files"}}, "pending", "location"}. `location` ({"path", "host"}:
the data folder the state belongs to, mlctl.state.location) makes a copied project's state recognisable.
"""

from __future__ import annotations

import enum
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlctl import __version__
from mlctl.errors import Diagnostic, MlctlError
from mlctl.runtimerecords import DEFAULT as DEFAULT_RUNTIME
from mlctl.resources import Address, Kind, parsed_address
from mlctl.state.validation import state_problem

FORMAT_VERSION = 1
UNREAD = object()  # State.etag of a State not read from any store


class Status(enum.StrEnum):
    """What the last apply left a resource as. A failed one is replaced by the next plan (reason
    `failed earlier`); "tainted", written by nothing since `--replace` exists, is read as failed."""

    READY = "ready"
    FAILED = "failed"


@dataclass
class ResourceState:
    """One applied resource as recorded: its config (attributes) and what the runtime reported (observed)."""

    kind: str
    attributes: dict[str, Any]
    digest: str
    depends_on: list[Address] = field(default_factory=list)
    status: Status = Status.READY
    runtime: str = DEFAULT_RUNTIME
    observed: Any = None  # the kind's typed observed value (mlctl.observed); JSON in the file
    files: dict[str, str] = field(default_factory=dict)
    failed_roll: str | None = None  # the digest of a version that failed to roll out while this one kept serving

    def __post_init__(self):
        from mlctl.observed import observed_of

        self.observed = observed_of(Kind(self.kind), self.observed if self.observed is not None else {})
        self.status = Status.FAILED if self.status == "tainted" else Status(self.status)
        self.depends_on = sorted(d if isinstance(d, Address) else parsed_address(d) for d in self.depends_on)

    @classmethod
    def from_resource(
        cls, resource, *, status: str = "ready", runtime: str = DEFAULT_RUNTIME, observed: dict | None = None
    ) -> "ResourceState":
        """The state apply records for a desired `mlctl.resources.Resource`."""
        return cls(
            kind=resource.kind.value,
            attributes=json.loads(json.dumps(dict(resource.attributes))),
            digest=resource.digest,
            depends_on=sorted(resource.depends_on),
            status=status,
            runtime=runtime,
            observed=observed if observed is not None else {},
            files=dict(resource.files),
        )

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "attributes": self.attributes,
            "digest": self.digest,
            "depends_on": sorted(str(d) for d in self.depends_on),
            "status": self.status,
            "runtime": self.runtime,
            "observed": self.observed.to_json(),
            "files": self.files,
            **({"failed_roll": self.failed_roll} if self.failed_roll else {}),
        }


@dataclass
class State:
    """The whole state file. `serial` moves by one on every write; `lineage` names this state's history."""

    format_version: int = FORMAT_VERSION
    serial: int = 0
    lineage: str = field(default_factory=lambda: str(uuid.uuid4()))
    mlctl_version: str = __version__
    resources: dict[Address, ResourceState] = field(default_factory=dict)
    pending: dict | None = None
    location: dict | None = None  # {"path", "host"} of the data folder this state belongs to (state/location.py)
    # not in the document: the etag of the document this State was read from (None: there was none);
    # UNREAD for a State made in memory. write_state is conditional on it.
    etag: Any = field(default=UNREAD, compare=False, repr=False)

    def to_json(self) -> dict:
        return {
            "format_version": self.format_version,
            "serial": self.serial,
            "lineage": self.lineage,
            "mlctl_version": self.mlctl_version,
            "resources": {str(a): self.resources[a].to_json() for a in sorted(self.resources, key=str)},
            "pending": self.pending,
            **({"location": self.location} if self.location else {}),
        }


def _unreadable(where: str, why: str, line: int | None = None, field: str | None = None) -> MlctlError:
    restore = (
        f"Restore it from {backup_path(where).name} beside it"
        if os.path.isabs(where)
        else "Restore a kept version (`mlctl state versions`, `mlctl state pull --serial N`, `mlctl state push FILE`)"
    )
    return MlctlError(
        Diagnostic(
            f"cannot read the state file: {why}",
            f"mlctl will not overwrite it. {restore}, or fix it by hand; pass --state FILE to use another state file.",
            file=where,
            line=line,
            field=field,
        )
    )


def _line_of(text: str, *keys: str) -> int | None:
    """Pure: the 1-based line of the first `"key":` in a JSON text (of the last key, each found after
    the one before: `_line_of(text, "model.m", "status")`), or None."""
    at = 0
    for key in keys:
        at = text.find(json.dumps(key) + ":", at)
        if at < 0:
            return None
    return text.count("\n", 0, at) + 1


def _parse(path: str, text: str) -> State:
    """Pure: the State a state file's text holds, or MlctlError saying why it cannot be used: the
    whole document is checked against mlctl/schemas/state.schema.json (once, whatever its size)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise _unreadable(path, f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}", e.lineno) from None
    except RecursionError:
        raise _unreadable(path, "its JSON is nested too deeply to be a state file") from None
    if not isinstance(doc, dict):
        raise _unreadable(path, "it is not a JSON object")
    fv = doc.get("format_version")
    if not isinstance(fv, int):
        raise _unreadable(
            path, "'format_version' is missing or not an integer", _line_of(text, "format_version"), "format_version"
        )
    if fv > FORMAT_VERSION:
        raise MlctlError(
            Diagnostic(
                f"the state file has format_version {fv}, newer than this mlctl understands ({FORMAT_VERSION})",
                f"it was written by mlctl {doc.get('mlctl_version', '?')}; upgrade mlctl (this is {__version__}). "
                "The file is left untouched.",
                file=path,
                line=_line_of(text, "format_version"),
                field="format_version",
            )
        )
    problem = state_problem(doc)
    if problem:
        why, keys, at = problem
        raise _unreadable(path, why, _line_of(text, *keys) if keys else None, at)
    for address, r in (doc.get("resources") or {}).items():
        if r["kind"] != address.split(".", 1)[0]:
            raise _unreadable(
                path,
                f"resource '{address}' has kind {r['kind']!r}; its address says {address.split('.', 1)[0]!r}",
                _line_of(text, "resources", address, "kind"),
                f'resources["{address}"].kind',
            )
    return State(
        format_version=fv,
        serial=int(doc["serial"]),
        lineage=doc["lineage"],
        mlctl_version=doc.get("mlctl_version", ""),
        resources={parsed_address(a): ResourceState(**r) for a, r in (doc.get("resources") or {}).items()},
        pending=doc.get("pending"),
        location=doc.get("location"),
    )


def backend_of(target):
    """The Backend a state target names: a path is the local backend's file (mlctl.state.localfile)."""
    if isinstance(target, (str, os.PathLike)):
        from mlctl.state.localfile import LocalBackend

        return LocalBackend(target)
    return target


def read_state(target) -> State:
    """The state at `target` (a path, or a Backend: mlctl.state.backend); a fresh State (serial 0, new
    lineage) when there is none. The State remembers the etag it was read at: `write_state` is
    conditional on it.

    Raises MlctlError when the document is unreadable or has a newer format (it is never overwritten).
    """
    backend = backend_of(target)
    try:
        snap = backend.read()
    except MlctlError:
        raise
    except OSError as e:
        raise _unreadable(backend.where, str(e)) from None
    return parse_document(backend.where, snap.data, snap.etag)


def parse_document(where: str, data: bytes | None, etag: str | None = None) -> State:
    """Pure: the State a document's bytes hold (a fresh State for None), remembering `etag`."""
    if data is None:
        state = State()
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise _unreadable(where, str(e)) from None
        state = _parse(where, text)
    state.etag = etag
    return state


def encode(state: State) -> bytes:
    """Pure: the document's bytes for `state`."""
    return (json.dumps(state.to_json(), indent=2, sort_keys=False) + "\n").encode("utf-8")


def backup_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".backup")


def write_state(target, state: State) -> State:
    """Write `state` to `target` (a path or a Backend): serial + 1 (set on `state` itself, which is
    returned), conditional on the etag `state` was read at (its new etag is remembered). A State not
    read from `target` (UNREAD) is checked against what is there: lineage and serial.

    Refuses (MlctlError) to replace a document it cannot read, of a newer format, of another lineage,
    or that changed since `state` was read (someone else wrote it); BackendError when the store fails.
    """
    from mlctl.state.backend import WriteConflict

    backend = backend_of(target)
    if state.etag is UNREAD:
        snap = backend.read()
        if snap.data is not None:
            _check_successor(backend.where, parse_document(backend.where, snap.data), state)
        if_match = snap.etag
    else:
        if_match = state.etag
    state.serial += 1
    state.format_version = FORMAT_VERSION
    state.mlctl_version = __version__
    try:
        state.etag = backend.write(encode(state), if_match, state.serial)
    except WriteConflict:
        state.serial -= 1
        now = parse_document(backend.where, backend.read().data)
        _check_successor(backend.where, now, state)
        raise MlctlError(
            Diagnostic(
                f"the state changed since it was read (serial {now.serial} now, {state.serial} when read)",
                "another mlctl wrote it meanwhile; nothing was written. Run the command again.",
                file=backend.where,
            )
        ) from None
    except BaseException:
        state.serial -= 1
        raise
    return state


def _check_successor(where: str, current: State, state: State) -> None:
    """MlctlError when `state` may not replace `current`: another lineage, or a newer serial."""
    if current.lineage != state.lineage:
        raise MlctlError(
            Diagnostic(
                f"the state belongs to another lineage ({current.lineage}, not {state.lineage})",
                "another project's state is there; mlctl will not overwrite it. "
                "Pass --state FILE or change the project file's `state:` block to choose where the state is.",
                file=where,
            )
        )
    if current.serial > state.serial:
        raise MlctlError(
            Diagnostic(
                f"the state changed since it was read (serial {current.serial}, expected {state.serial})",
                "another mlctl wrote it meanwhile; run the command again.",
                file=where,
            )
        )
