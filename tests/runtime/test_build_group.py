"""A build step (uv) runs in its own process group and does not outlive the mlctl that started it:
Ctrl-C (KeyboardInterrupt) kills its whole group, and a SIGKILLed mlctl takes it down too (the
kernel's parent-death signal). Real processes; the step stands in for uv with a shell that starts a
child of its own and records both pids."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

RUN = """
import sys
from mlctl.runtime.kit.virtualenvs import _run
print("started", flush=True)
_run(["sh", "-c", sys.argv[1]], sys.stderr, None, "install")
"""


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def wait_gone(pids, seconds: float = 20.0) -> list[int]:
    """The pids still running after up to `seconds` (a generous bound; they normally go at once)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not all(gone(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if not gone(p)]


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_a_build_step_does_not_outlive_mlctl(tmp_path, how):
    pids = tmp_path / "pids"
    step = f"sleep 300 & echo $! > {pids}.tmp; echo $$ >> {pids}.tmp; mv {pids}.tmp {pids}; wait"
    mlctl = subprocess.Popen(
        [sys.executable, "-c", RUN, step],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,  # a runner started in the background (`cmd &`) ignores SIGINT, and so would
        # its children; mlctl in a terminal does not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # noqa: PLW1509
    try:
        assert mlctl.stdout.readline().strip() == "started"
        while not pids.exists():
            time.sleep(0.02)
        children = [int(x) for x in pids.read_text().split()]
        assert os.getpgid(children[1]) != os.getpgid(mlctl.pid)  # a group of its own
        os.kill(mlctl.pid, how)  # to mlctl alone, as a signal from outside its group would be
        mlctl.wait(timeout=60)
        assert wait_gone(children) == []
    finally:
        mlctl.kill()
        for p in pids.read_text().split() if pids.exists() else ():
            try:
                os.kill(int(p), signal.SIGKILL)
            except ProcessLookupError:
                pass
