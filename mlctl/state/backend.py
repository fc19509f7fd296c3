"""The state backend interface: where a state document is kept, and how one writer at a time changes it.

A backend stores bytes; it knows nothing of the state's shape (mlctl.state.statefile parses, checks lineage
and serial, and encodes). Another backend (S3-compatible, PostgreSQL, ...) is one module that implements
`Backend` and is named in `mlctl.state.backends`; nothing else changes. What each method must do:

- `read()` -> Snapshot(data, etag): the current document (data None when there is none yet) and an opaque
  tag that changes whenever the document does (an HTTP ETag, a content hash, a row version).
- `write(data, if_match, serial)` -> the new etag. Conditional: it replaces the document only if its
  etag is still `if_match` (None: only if there is no document). Otherwise it raises WriteConflict and
  changes nothing. It keeps the document readable as version `serial` (see `versions`). Any other
  failure (network, permission) raises BackendError, and then the write did not happen, or it is
  unknown whether it did; the caller keeps its copy (apply saves it to a local file).
- `lock(operation, timeout)`: a context manager holding the backend's lock for its body, yielding the
  Holder recorded for others to read. It waits up to `timeout` seconds, then raises MlctlError
  naming the holder. A holder that dies must not block others for long (a flock, a lease that
  expires). A backend whose reader may not write (a read-only SAS) never calls `lock` for reads:
  `plan --refresh=false` takes no lock.
- `unlock(lock_id)` -> the Holder it broke (force-unlock); MlctlError when `lock_id` is not the
  current holder's.
- `versions()` -> [Version], oldest first: every document written that is still kept;
  `read_version(serial)` -> its bytes (MlctlError when not kept).
- `where` names the store in messages (a path, a URL); `config` is the identity of the store,
  a JSON-able mapping with no secret in it, compared to detect that `state:` changed (migration).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Mapping, Protocol

from mlctl.errors import Diagnostic, MlctlError


@dataclass(frozen=True)
class Snapshot:
    data: bytes | None
    etag: str | None


@dataclass(frozen=True)
class Version:
    serial: int
    written: str  # ISO 8601 UTC, as the store reports it
    size: int


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: `who` (user@host, pid), the `operation`, `since` (ISO 8601 UTC) and the lock's `id`."""

    id: str
    who: str
    operation: str
    since: str

    def describe(self) -> str:
        return f"{self.who} (operation '{self.operation}', since {self.since}, lock ID {self.id})"


class BackendError(MlctlError):
    """The store could not be read or written (network, credentials, permissions)."""


class WriteConflict(BackendError):
    """A conditional write found the document changed since it was read: nothing was written."""


class Backend(Protocol):
    where: str
    config: Mapping[str, Any]

    def read(self) -> Snapshot: ...

    def write(self, data: bytes, if_match: str | None, serial: int) -> str: ...

    def lock(self, operation: str, timeout: float = 0) -> AbstractContextManager[Holder | None]: ...

    def unlock(self, lock_id: str) -> Holder: ...

    def versions(self) -> list[Version]: ...

    def read_version(self, serial: int) -> bytes: ...


def not_kept(where: str, serial: int, kept: list[Version]) -> MlctlError:
    """Pure: the error for `state pull --serial N` of a version the store does not keep."""
    have = ", ".join(str(v.serial) for v in kept[-10:]) or "none"
    return MlctlError(
        Diagnostic(
            f"no state version with serial {serial} in {where}",
            f"`mlctl state versions` lists the kept versions (the latest: {have}).",
        )
    )
