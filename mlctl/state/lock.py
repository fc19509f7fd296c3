"""The state lock: one writer per state file, taken with flock so the kernel frees it if its holder dies.

The lock file (`state.lock` beside `state.json`) names the holder: pid, host, operation, start time.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from mlctl.errors import Diagnostic, MlctlError
from mlctl.privatefiles import open_private, read_json, read_private
from mlctl.waiting import Timeout, wait_until

POLL_S = 0.1


def lock_path(state_path: str | os.PathLike) -> Path:
    """`state.json` -> `state.lock` in the same folder."""
    p = Path(state_path)
    return p.with_name(p.stem + ".lock")


def parse_timeout(text: str | float | int) -> float:
    """Seconds from `5`, `5s`, `500ms`, `2m`, `1h` (for --lock-timeout). ValueError when malformed."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", text)
        if not m:
            raise ValueError(f"'{text}' is not a duration; use e.g. 30s, 500ms, 2m")
        seconds = float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
    if seconds < 0:
        raise ValueError("a timeout cannot be negative")
    return seconds


def read_holder(path: str | os.PathLike) -> dict | None:
    """What the lock file says about its holder (None when empty or unreadable)."""
    try:
        info = read_json(read_private(path) or b"null")
    except (OSError, ValueError, MlctlError):
        return None
    return info if isinstance(info, dict) else None


def describe_holder(info: dict | None) -> str:
    if not info:
        return "another mlctl process (it has not recorded itself yet)"
    return (
        f"pid {info.get('pid', '?')} on {info.get('host', '?')} "
        f"(operation '{info.get('operation', '?')}', started {info.get('started', '?')})"
    )


@contextmanager
def state_lock(state_path: str | os.PathLike, operation: str, timeout: float = 0):
    """Hold the lock of the state at `state_path` for the `with` body.

    Waits up to `timeout` seconds for another holder; then raises MlctlError naming it.
    Yields the holder record written into the lock file, or None when there is no state and its
    folder cannot be written (a read-only checkout: nothing to protect).
    """
    from mlctl.projectpaths import Project

    state_path = Path(state_path)
    path = lock_path(state_path)
    try:
        Project.at(state_path.parent, state_path=state_path).ensure_data_dir()
        fd = open_private(path, os.O_RDWR | os.O_CREAT, 0o644, what="state lock")
    except OSError as e:
        if not state_path.exists():  # nothing recorded, and nobody can write here: nothing to protect
            yield None
            return
        raise MlctlError(
            Diagnostic(
                f"cannot take the state lock: {e.strerror or e}",
                "mlctl needs to write in the folder of the state file; pass --state FILE to use another one.",
                file=str(path),
            )
        ) from None
    try:
        deadline = time.monotonic() + timeout
        told = False

        def locked() -> bool:
            nonlocal told
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if not told and time.monotonic() < deadline:  # once, to stderr: a waiting mlctl says whom it waits for
                    told = True
                    sys.stderr.write(
                        f"Waiting up to {timeout:g}s for the state lock held by "
                        f"{describe_holder(read_holder(path))}...\n"
                    )
                    sys.stderr.flush()
                return False

        try:
            wait_until(locked, timeout, "the state lock is free", interval=POLL_S)
        except Timeout:
            holder = describe_holder(read_holder(path))
            waited = f" after waiting {timeout:g}s" if timeout else ""
            raise MlctlError(
                Diagnostic(
                    f"the state is locked by {holder}{waited}",
                    "wait for it to finish, or pass --lock-timeout DURATION (e.g. 60s) to wait for it; "
                    "the lock is freed automatically if that process dies.",
                    file=str(path),
                )
            ) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "operation": operation,
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        os.fsync(fd)
        try:
            yield info
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
