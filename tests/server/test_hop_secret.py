"""MLCTL_HOP_SECRET (the ray runtime's scoring servers, which listen on their node's address): only requests
carrying the secret in X-Mlctl-Hop are answered, on every route, with one worker process and with several,
with uvloop and without; the scoring script does not see the secret in its environment."""

from __future__ import annotations

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
