"""Signed cache files: a cache in a project's data folder that mlctl trusts only when it signed it itself.

A repository can commit any file under `.mlctl/`, and `mlctl plan` runs on pull requests, so a cache there is
never believed: it is signed (HMAC-SHA256) with a key kept outside every project, in the user's cache folder
(`$XDG_CACHE_HOME/mlctl/cache.key`, else `~/.cache/mlctl/cache.key`, made on first use, mode 0600). A file is
`signature (hex)\\n payload`; one whose signature does not verify with this user's key, a link, a special file
or one over its size limit reads as nothing. Without a usable key there is no cache. Used by the document cache
(`mlctl.schemas.doccache`) and the file-hash cache (`mlctl.digests`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

KEY_BYTES = 32
SIGNATURE_BYTES = 64  # hex of an HMAC-SHA256, the file's first line


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


def sign(key: bytes, payload: bytes) -> bytes:
    """Pure: the file's bytes, `payload` under its signature line."""
    return hmac.new(key, payload, hashlib.sha256).hexdigest().encode() + b"\n" + payload


def read_signed(path: Path, key: bytes, max_bytes: int, what: str, prefix: bytes = b"") -> bytes | None:
    """The payload of a file this key signed; None for a missing, foreign, oversized, linked or special file, and,
    before the rest is read and the signature checked (a large file's cost), for one whose payload does not start
    with `prefix`."""
    from mlctl.errors import MlctlError
    from mlctl.privatefiles import open_private

    try:
        fd = open_private(path, os.O_RDONLY, what=what)
        with os.fdopen(fd, "rb") as f:
            head = f.read(SIGNATURE_BYTES + 1 + len(prefix)) if prefix else b""
            if prefix and head[SIGNATURE_BYTES:] != b"\n" + prefix:
                return None
            raw = head + f.read(max_bytes + 1 - len(head))
    except (OSError, MlctlError):
        return None
    signature, _, payload = raw.partition(b"\n")
    if len(raw) > max_bytes or not hmac.compare_digest(
        signature, hmac.new(key, payload, hashlib.sha256).hexdigest().encode()
    ):
        return None
    return payload


def write_signed(path: Path, key: bytes, payload: bytes, what: str) -> None:
    """Replace `path` with `payload` signed by `key` (atomically); errors are ignored: a cache is a speed-up."""
    from mlctl.errors import MlctlError
    from mlctl.privatefiles import write_atomic

    try:
        write_atomic(path, sign(key, payload), what=what)
    except (OSError, MlctlError):
        pass  # a read-only checkout
