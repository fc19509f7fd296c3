"""secrets.py: the keys file (0600 in a 0700 folder, atomic rewrites), regeneration, aml_token checks."""

import os
import stat

import pytest

from mlctl.runtime.host import secrets


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_keys_file_is_private_and_regenerating_replaces_one_key_only(tmp_path):
    secrets.ensure_keys(tmp_path, "ep")
    path = secrets.secrets_path(tmp_path, "ep")
    first = secrets.read_keys(tmp_path, "ep")
    assert first["primary"] != first["secondary"] and len(first["primary"]) >= 40
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700
    secrets.ensure_keys(tmp_path, "ep")  # idempotent: keys kept
    assert secrets.read_keys(tmp_path, "ep") == first
    secrets.regenerate_key(tmp_path, "ep", "secondary")
    after = secrets.read_keys(tmp_path, "ep")
    assert after["primary"] == first["primary"] and after["secondary"] != first["secondary"]
    assert _mode(path) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["ep.json"]  # no temp file left behind
    with pytest.raises(ValueError, match="unknown key 'tertiary'"):
        secrets.regenerate_key(tmp_path, "ep", "tertiary")


def test_tokens_are_bound_to_key_endpoint_and_expiry(tmp_path):
    secrets.ensure_keys(tmp_path, "ep")
    key = secrets.read_keys(tmp_path, "ep")["token_key"]
    token, expiry = secrets.issue_token(tmp_path, "ep", ttl_s=60)
    assert secrets.is_valid_token(key, "ep", token)
    assert not secrets.is_valid_token(key, "other", token)
    assert not secrets.is_valid_token(key, "ep", token, now=expiry + 1)
    assert not secrets.is_valid_token("another-key", "ep", token)
    assert not secrets.is_valid_token(key, "ep", token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1])
