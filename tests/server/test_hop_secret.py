"""MLCTL_HOP_SECRET (the ray runtime's scoring servers, which listen on their node's address): only requests
carrying the secret in X-Mlctl-Hop are answered, on every route, with one worker process and with several,
with uvloop and without; the scoring script does not see the secret in its environment."""

from __future__ import annotations

import http.client
import json

import pytest

SECRET = "hop-4f1c-" + "x" * 30
SEES = """
import os

seen = {}


def init():
    seen["init"] = os.environ.get("MLCTL_HOP_SECRET")


def run(raw_data):
    return {"init": seen["init"], "run": os.environ.get("MLCTL_HOP_SECRET")}
"""


@pytest.mark.parametrize("workers", ["1", "2"])
def test_only_requests_carrying_the_hop_secret_are_answered(servers, loop_mode, workers, tmp_path):
    script = tmp_path / "sees.py"
    script.write_text(SEES)
    env = {**loop_mode, "MLCTL_HOP_SECRET": SECRET, "WORKER_COUNT": workers}
    server = servers.start(script, env=env)
    for path, method in (("/", "GET"), ("/score", "POST"), ("/swagger.json", "GET"), ("/nowhere", "GET")):
        for headers in ({}, {"X-Mlctl-Hop": "wrong"}, {"X-Mlctl-Hop": SECRET[:-1]}, {"X-Mlctl-Hop": SECRET + "x"}):
            answer = server.call(method, path, {"echo": 1} if method == "POST" else None, headers=headers)
            assert answer.status == 403, (path, headers, answer)
            assert b"answers only its endpoint's hosts" in answer.body
    good = {"X-Mlctl-Hop": SECRET}
    assert server.call("GET", "/", headers=good).status == 200
    answer = server.call("POST", "/score", {"x": 1}, headers=good)
    assert answer.status == 200, answer
    assert answer.json() == {"init": None, "run": None}  # the script's environment lacks it
    assert SECRET not in server.log()


def test_without_a_secret_requests_are_answered_as_before(servers, tmp_path):
    script = tmp_path / "sees.py"
    script.write_text(SEES)
    assert servers.start(script).call("POST", "/score", {"x": 1}).json() == {"init": None, "run": None}


def test_a_server_also_listening_on_a_unix_socket_asks_the_secret_there_too_and_removes_it(
    servers, loop_mode, tmp_path
):
    """--also-unix-socket (the ray runtime's same-node hop): the TCP port and the unix socket both answer, the
    secret asked on each; the socket is gone once the server stopped."""
    from mlctl.runtime.host.unixhttp import UnixConnection

    script = tmp_path / "sees.py"
    script.write_text(SEES)
    folder = tmp_path / "hop"
    folder.mkdir(mode=0o700)
    path = folder / "replica.sock"
    server = servers.start(script, "--also-unix-socket", str(path), env={**loop_mode, "MLCTL_HOP_SECRET": SECRET})
    assert server.call("GET", "/", headers={"X-Mlctl-Hop": SECRET}).status == 200
    assert server.call("GET", "/").status == 403  # TCP: the secret is asked

    def unix(headers: dict) -> tuple[int, bytes]:
        conn = UnixConnection(str(path), 10)
        try:
            conn.request("POST", "/score", body=b'{"x": 1}', headers={"Content-Type": "application/json", **headers})
            answer = conn.getresponse()
            return answer.status, answer.read()
        finally:
            conn.close()

    assert server.wait_log("also listening on unix:")
    assert unix({})[0] == 403
    status, body = unix({"X-Mlctl-Hop": SECRET})
    assert status == 200 and json.loads(body) == {"init": None, "run": None}, body
    assert server.stop() == 0 and not path.exists()
    with pytest.raises((OSError, http.client.HTTPException)):
        unix({"X-Mlctl-Hop": SECRET})
