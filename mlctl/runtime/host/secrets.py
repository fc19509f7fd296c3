"""Endpoint secrets: two API keys and a token-signing key in a mode-0600 file; aml_token issue and check.

The file is `DATA_DIR/secrets/ENDPOINT.json` (folder 0700, file 0600). Keys never leave it except
through `mlctl keys`; the endpoint host reads it itself (never argv or environment).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets as _random
import time
from pathlib import Path

from mlctl.privatefiles import ensure_folder, open_private, read_json, read_private, write_atomic

KEY_NAMES = ("primary", "secondary")
TOKEN_PREFIX = "mlt1"


def secrets_path(data_dir, endpoint: str) -> Path:
    return Path(data_dir) / "secrets" / f"{endpoint}.json"


def _new_key() -> str:
    return _random.token_urlsafe(32)


def _write(path: Path, content: dict) -> None:
    """Write atomically with mode 0600 from the first byte, in a 0700 folder (neither a symbolic link)."""
    ensure_folder(path.parent, 0o700, what="secrets", base=path.parent.parent)
    write_atomic(path, json.dumps(content, indent=2).encode(), mode=0o600, what="secrets")


def ensure_keys(data_dir, endpoint: str) -> None:
    """Create the endpoint's secrets file (two keys + a token key) unless it exists; keeps existing keys."""
    path = secrets_path(data_dir, endpoint)
    ensure_folder(path.parent, 0o700, what="secrets", base=path.parent.parent)
    if os.path.lexists(path):  # reused as found only when it is a regular file, never through a link
        fd = open_private(path, os.O_RDONLY, what="secrets")
        try:
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
        return
    _write(path, new_secrets())


def new_secrets() -> dict:
    """Two fresh API keys and a token-signing key (what an endpoint's secrets file holds)."""
    return {"primary": _new_key(), "secondary": _new_key(), "token_key": _new_key(), "created": time.time()}


def write_secrets(data_dir, endpoint: str, keys: dict) -> None:
    """Write the endpoint's secrets file with these keys (an in-cluster host's, from the cluster: ray/ingress.py)."""
    _write(secrets_path(data_dir, endpoint), keys)


def regenerated(keys: dict, which: str) -> dict:
    """`keys` with `which` ("primary" or "secondary") and the token-signing key replaced (every aml_token
    issued so far stops being accepted: regenerating is how tokens are revoked)."""
    if which not in KEY_NAMES:
        raise ValueError(f"unknown key {which!r}: expected one of {', '.join(KEY_NAMES)}")
    return {**keys, which: _new_key(), "token_key": _new_key()}


def read_keys(data_dir, endpoint: str) -> dict:
    """The secrets as a dict: {"primary", "secondary", "token_key", ...}."""
    return read_json(read_private(secrets_path(data_dir, endpoint), "secrets"))


def regenerate_key(data_dir, endpoint: str, which: str) -> None:
    """Replace one key ("primary" or "secondary") and the token-signing key (every aml_token issued so
    far stops being accepted: regenerating is how tokens are revoked); the host picks them up on
    reload_keys()."""
    _write(secrets_path(data_dir, endpoint), regenerated(read_keys(data_dir, endpoint), which))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(token_key: str, payload: str) -> str:
    return _b64(hmac.new(token_key.encode(), payload.encode(), hashlib.sha256).digest())


def issue_token(data_dir, endpoint: str, ttl_s: float = 3600) -> tuple[str, float]:
    """A fresh aml_token for the endpoint and its expiry (epoch seconds)."""
    return token_for(read_keys(data_dir, endpoint), endpoint, ttl_s)


def token_for(keys: dict, endpoint: str, ttl_s: float = 3600) -> tuple[str, float]:
    """A fresh aml_token signed with `keys`' token key and its expiry (reads the clock)."""
    expiry = time.time() + ttl_s
    payload = _b64(json.dumps({"aud": endpoint, "exp": expiry}, separators=(",", ":")).encode())
    return f"{TOKEN_PREFIX}.{payload}.{_sign(keys['token_key'], payload)}", expiry


def is_valid_token(token_key: str, endpoint: str, token: str, now: float | None = None) -> bool:
    """Pure: is `token` signed with `token_key`, meant for `endpoint` and not expired at `now`?"""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        return False
    # compared as bytes: compare_digest refuses str with non-ASCII characters (a client may send any)
    if not hmac.compare_digest(_sign(token_key, parts[1]).encode(), parts[2].encode("utf-8", "surrogatepass")):
        return False
    try:
        claims = json.loads(_unb64(parts[1]))
    except ValueError:
        return False
    now = time.time() if now is None else now
    return (
        isinstance(claims, dict)
        and claims.get("aud") == endpoint
        and isinstance(claims.get("exp"), (int, float))
        and claims["exp"] > now
    )
