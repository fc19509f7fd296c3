"""The local state backend: `.mlctl/state.json` on this machine (the default, `state: {backend: local}`).

Writes are atomic (a temp file, fsync, rename), the previous document is kept as `state.json.backup`,
and the lock is a flock on `state.lock` (mlctl.state.lock), which the kernel frees when its holder dies.
The etag is the SHA-256 of the file's bytes, so a write is refused when the file changed since it was read.
Versions kept: the current document and its backup.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from mlctl.errors import Diagnostic, MlctlError
from mlctl.privatefiles import check_data_folder, read_private, write_atomic
from mlctl.state.backend import Holder, Snapshot, Version, WriteConflict, not_kept
from mlctl.state.lock import describe_holder, lock_path, read_holder, state_lock


def etag_of(data: bytes | None) -> str | None:
    """Pure: the local backend's etag of a document's bytes (None: no document)."""
    return None if data is None else hashlib.sha256(data).hexdigest()


class LocalBackend:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.where = str(self.path)
        self.config = {"backend": "local"}

    @property
    def backup(self) -> Path:
        return self.path.with_name(self.path.name + ".backup")

    def _bytes(self, path: Path) -> bytes | None:
        if path.parent.is_symlink():
            check_data_folder(path.parent)
        try:
            return read_private(path, "state")
        except FileNotFoundError:
            return None

    def read(self) -> Snapshot:
        data = self._bytes(self.path)
        return Snapshot(data, etag_of(data))

    def write(self, data: bytes, if_match: str | None, serial: int) -> str:
        from mlctl.projectpaths import Project

        Project.at(self.path.parent, state_path=self.path).ensure_data_dir()
        previous = self._bytes(self.path)
        if etag_of(previous) != if_match:
            raise WriteConflict(Diagnostic("the state file changed since it was read", file=self.where))
        if previous is not None:
            write_atomic(self.backup, previous, what="state backup")
        write_atomic(self.path, data, what="state")
        return hashlib.sha256(data).hexdigest()

    @contextmanager
    def lock(self, operation: str, timeout: float = 0):
        with state_lock(self.path, operation, timeout=timeout) as info:
            yield None if info is None else _holder(info)

    def unlock(self, lock_id: str) -> Holder:
        info = read_holder(lock_path(self.path))
        raise MlctlError(
            Diagnostic(
                "the local state lock cannot be broken, and never needs to be: it is freed when its holder exits",
                f"It is held by {describe_holder(info)}; stop that process (ID {lock_id} was given)."
                if info
                else "Nothing holds it now.",
                file=str(lock_path(self.path)),
            )
        )

    def versions(self) -> list[Version]:
        kept = []
        for path in (self.backup, self.path):
            data = self._bytes(path)
            if data is not None:
                serial = _serial_of(data)
                if serial is not None:
                    when = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
                    kept.append(Version(serial, when.isoformat(timespec="seconds"), len(data)))
        return sorted(kept, key=lambda v: v.serial)

    def read_version(self, serial: int) -> bytes:
        for path in (self.path, self.backup):
            data = self._bytes(path)
            if data is not None and _serial_of(data) == serial:
                return data
        raise not_kept(self.where, serial, self.versions())


def _holder(info: dict) -> Holder:
    return Holder(str(info["pid"]), f"pid {info['pid']} on {info['host']}", info["operation"], info["started"])


def _serial_of(data: bytes) -> int | None:
    try:
        serial = json.loads(data).get("serial")
    except (ValueError, AttributeError):
        return None
    return serial if isinstance(serial, int) else None
