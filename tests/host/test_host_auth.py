"""Auth of the gateway: keys, tokens, what reaches the instance, where secrets never appear."""

from __future__ import annotations

import json
import os
import stat
import urllib.request
from urllib.error import HTTPError

from mlctl.runtime.host import secrets

from hosttools import body, send, wait_until


def post(host, headers=None, path="/score", data=None):
    req = urllib.request.Request(
        host.url + path,
        data=data if data is not None else body(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except HTTPError as e:
        return e.code, json.loads(e.read() or b"null"), dict(e.headers)


def test_keys_primary_secondary_wrong_none_and_regenerated(make_host):
    host = make_host()
    host.create("blue")
    host.client.set_traffic({"blue": 100})
    keys = secrets.read_keys(host.data_dir, host.name)
    assert post(host, {"Authorization": f"Bearer {keys['primary']}"})[0] == 200
    assert post(host, {"Authorization": f"Bearer {keys['secondary']}"})[0] == 200
    status, answer, headers = post(host, {"Authorization": "Bearer not-the-key"})
    assert status == 401 and "message" in answer and headers["WWW-Authenticate"] == "Bearer"
    assert post(host)[0] == 401
    assert post(host, {"Authorization": keys["primary"]})[0] == 401  # no Bearer scheme
    secrets.regenerate_key(host.data_dir, host.name, "primary")
    host.client.reload_keys()
    assert post(host, {"Authorization": f"Bearer {keys['primary']}"})[0] == 401
    assert post(host, {"Authorization": f"Bearer {keys['secondary']}"})[0] == 200
    fresh = secrets.read_keys(host.data_dir, host.name)["primary"]
    assert post(host, {"Authorization": f"Bearer {fresh}"})[0] == 200


def test_aml_token_valid_expired_and_foreign(make_host, tmp_path):
    host = make_host(auth_mode="aml_token")
    host.create("blue")
    host.client.set_traffic({"blue": 100})
    token, expiry = secrets.issue_token(host.data_dir, host.name, ttl_s=600)
    assert post(host, {"Authorization": f"Bearer {token}"})[0] == 200
    expired, _ = secrets.issue_token(host.data_dir, host.name, ttl_s=-1)
    assert post(host, {"Authorization": f"Bearer {expired}"})[0] == 401
    keys = secrets.read_keys(host.data_dir, host.name)
    assert post(host, {"Authorization": f"Bearer {keys['primary']}"})[0] == 401  # keys are not tokens
    secrets.ensure_keys(tmp_path / "other", host.name)
    foreign, _ = secrets.issue_token(tmp_path / "other", host.name)
    assert post(host, {"Authorization": f"Bearer {foreign}"})[0] == 401
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    assert post(host, {"Authorization": f"Bearer {tampered}"})[0] == 401
    host.client.set_auth("key")
    assert post(host, {"Authorization": f"Bearer {keys['primary']}"})[0] == 200


def test_authorization_never_reaches_the_instance_and_keys_appear_in_no_log(make_host):
    host = make_host()
    host.create("blue", count=2)
    host.client.set_traffic({"blue": 100})
    results = send(host.url + "/score", 40, concurrency=4, headers=host.auth(**{"x-request-id": "rid-auth-1"}))
    assert [r[0] for r in results] == [200] * 40
    for _, answer, _ in results:
        assert "authorization" not in answer["headers"]
        assert answer["headers"]["x-request-id"] == "rid-auth-1"
    keys = secrets.read_keys(host.data_dir, host.name)

    def logged() -> int:  # the 40 requests' lines in the instance logs and the host's access log
        return sum(
            p.read_text(errors="replace").count("rid-auth-1")
            for p in (host.data_dir / "logs").rglob("*")
            if p.is_file()
        )

    wait_until(lambda: logged() >= 80, 10, "every request's log lines")  # written, then searched
    logs = [p for p in (host.data_dir / "logs").rglob("*") if p.is_file()]
    assert len(logs) >= 3  # host.log and two instance logs
    for path in logs + [host.data_dir / "run" / f"{host.name}.json"]:
        text = path.read_text(errors="replace")
        for secret in (keys["primary"], keys["secondary"], keys["token_key"]):
            assert secret not in text, f"a key appears in {path}"
    for pid in host.pids:  # nor in any process's argv or environment
        for what in ("cmdline", "environ"):
            raw = open(f"/proc/{pid}/{what}", "rb").read().decode(errors="replace")
            assert keys["primary"] not in raw and keys["secondary"] not in raw


def test_secrets_file_and_admin_socket_are_private(make_host):
    host = make_host()
    assert stat.S_IMODE(os.stat(secrets.secrets_path(host.data_dir, host.name)).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(host.info.admin_socket).st_mode) == 0o600
    host.create("blue")
    sock = host.client.status()["deployments"]["blue"]["instances"][0]["socket"]
    assert stat.S_IMODE(os.stat(os.path.dirname(sock)).st_mode) == 0o700


def test_a_token_with_a_non_ascii_signature_is_401_and_logged(make_host):
    """Issue 16, item 5: compare_digest on str raised TypeError for a non-ASCII signature: a 500."""
    from test_host_http import Wire, http

    host = make_host(auth_mode="aml_token")
    host.create("blue")
    host.client.set_traffic({"blue": 100})
    token, _ = secrets.issue_token(host.data_dir, host.name, ttl_s=600)
    forged = token.rsplit(".", 1)[0] + ".sig\u00e9\u00e8"
    for path in ("/score", "/swagger.json"):
        with Wire(host) as wire:
            raw = http(
                "POST" if path == "/score" else "GET",
                path,
                {"x-request-id": "rid-non-ascii"},
                body() if path == "/score" else b"",
            )
            raw = raw.replace(b"\r\n\r\n", b"\r\nAuthorization: Bearer " + forged.encode() + b"\r\n\r\n", 1)
            wire.send(raw)
            answer = wire.answer()
            assert answer.status == 401, (path, answer)
            assert answer.json()["message"]
    wait_until(lambda: "rid-non-ascii POST /score - 401" in host.log(), 10, "the 401's access line")
    assert "Traceback" not in host.log()
    assert post(host, {"Authorization": f"Bearer {token}"})[0] == 200


def test_regenerating_a_key_revokes_the_tokens_issued_before(make_host):
    """Issue 16: `keys --regenerate` rotates the token-signing key too, so issued tokens can be revoked."""
    host = make_host(auth_mode="aml_token")
    host.create("blue")
    host.client.set_traffic({"blue": 100})
    before, _ = secrets.issue_token(host.data_dir, host.name, ttl_s=600)
    assert post(host, {"Authorization": f"Bearer {before}"})[0] == 200
    secrets.regenerate_key(host.data_dir, host.name, "secondary")
    host.client.reload_keys()
    assert post(host, {"Authorization": f"Bearer {before}"})[0] == 401
    after, _ = secrets.issue_token(host.data_dir, host.name, ttl_s=600)
    assert post(host, {"Authorization": f"Bearer {after}"})[0] == 200
