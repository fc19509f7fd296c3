"""MLCTL_PARENT_PID (how a Ray replica starts its scoring server without running code between fork and exec): the
server ends when the process that started it dies, and does not start at all when that process is already gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from servertools import server_env

SCRIPT = "def init():\n    pass\n\n\ndef run(raw_data):\n    return 1\n"
PARENT = """
import os, subprocess, sys, time
env = {**os.environ, "MLCTL_PARENT_PID": str(os.getpid())}
args = [sys.executable, "-m", "mlctl.runtime.server", "--entry-script", sys.argv[1], "--model-dir", sys.argv[2]]
args += ["--port", "0"]
proc = subprocess.Popen(args, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(proc.pid, flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_the_server_ends_with_the_process_that_started_it(tmp_path):
    script = tmp_path / "score.py"
    script.write_text(SCRIPT)
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(script), str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env=server_env(None),
        start_new_session=True,
    )
    server = int(parent.stdout.readline())
    try:
        time.sleep(1.0)  # (the server is up or starting: either way it must end with its parent)
        assert alive(server)
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait(30)
        deadline = time.monotonic() + 60
        while alive(server) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(server)
    finally:
        for pid in (parent.pid, server):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_server_whose_parent_is_already_gone_does_not_start(tmp_path):
    script = tmp_path / "score.py"
    script.write_text(SCRIPT)
    env = {**server_env(None), "MLCTL_PARENT_PID": "1"}  # not its parent
    args = ["--entry-script", str(script), "--model-dir", str(tmp_path), "--port", "0"]
    done = subprocess.run(
        [sys.executable, "-m", "mlctl.runtime.server", *args], env=env, timeout=60, capture_output=True
    )
    assert done.returncode == 1 and b"listening" not in done.stdout
