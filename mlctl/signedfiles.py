"""Signed cache files: a file in a project's data folder that only this user's mlctl can have written.

A repository can commit anything under `.mlctl/`, and `mlctl plan` runs on pull requests, so a cache file
there is believed only when its HMAC-SHA256 signature verifies with a key kept outside every project, in the
user's cache folder (`$XDG_CACHE_HOME/mlctl/cache.key`, else `~/.cache/mlctl/cache.key`, made on first use,
mode 0600). A file that does not verify, a link, a special file or one over the size limit reads as absent.
Used by the document cache (mlctl.schemas.doccache) and the plan memo (mlctl.reconciler.planmemo).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

KEY_BYTES = 32


def key_path() -> Path:
    """Where this user's cache key lives (outside every project)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mlctl" / "cache.key"


def user_key() -> bytes | None:
    """This user's signing key, made on first use; None when it cannot be read or made (no cache then)."""
    from mlctl.errors import MlctlError
    from mlctl.privatefiles import NOFOLLOW, read_private

    path = key_path()
    try:
        key = read_private(path, "cache key")
    except FileNotFoundError:
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(KEY_BYTES))
            key = read_private(path, "cache key")  # another mlctl may have won the race: use what is there
        except (OSError, MlctlError):
            return None
    except (OSError, MlctlError):
        return None
    return key if len(key) == KEY_BYTES else None


def signature(key: bytes, payload: bytes) -> bytes:
    """Pure: the hex HMAC-SHA256 of `payload` with `key` (the first line of a signed file)."""
    return hmac.new(key, payload, hashlib.sha256).hexdigest().encode()


def read_signed(path: Path, key: bytes, max_bytes: int, what: str) -> bytes | None:
    """The payload of a file signed with `key` (a regular file, not a link, at most `max_bytes`); None for
    anything else (absent, unreadable, another key's, unsigned, too big)."""
    from mlctl.errors import MlctlError
    from mlctl.privatefiles import open_private

    try:
        fd = open_private(path, os.O_RDONLY, what=what)
        with os.fdopen(fd, "rb") as f:
            raw = f.read(max_bytes + 1)
    except (OSError, MlctlError):
        return None
    signed, _, payload = raw.partition(b"\n")
    if len(raw) > max_bytes or not hmac.compare_digest(signed, signature(key, payload)):
        return None
    return payload


def write_signed(path: Path, key: bytes, payload: bytes, what: str) -> None:
    """Replace `path` with `payload` signed with `key` (atomically); errors are ignored (a read-only
    checkout: the cache is only a speed-up)."""
    from mlctl.errors import MlctlError
    from mlctl.privatefiles import write_atomic

    try:
        write_atomic(path, signature(key, payload) + b"\n" + payload, what=what)
    except (OSError, MlctlError):
        pass
