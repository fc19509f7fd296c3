"""A build step's process group: uv (or pip) and everything it starts, gone when mlctl goes.

Each step runs under a small guard process that leads a process group of its own (so a Ctrl-C
meant for mlctl's terminal group does not half-kill it) and asks the kernel for a signal when mlctl
dies (Linux PR_SET_PDEATHSIG), even by SIGKILL; on that signal the guard kills its whole group. When
mlctl is interrupted or fails itself, it kills the group directly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1

GUARD = """
import ctypes, os, signal, subprocess, sys
def die(*_):
    os.killpg(0, signal.SIGKILL)
signal.signal(signal.SIGTERM, die)
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[1]):   # mlctl died before the request was made
    die()
sys.exit(subprocess.call(sys.argv[2:]))
"""


def start_step(cmd: list[str], env: dict) -> subprocess.Popen:
    """Start `cmd` under its guard, its output (stdout and stderr) on the returned process's stdout."""
    return subprocess.Popen(
        [sys.executable, "-c", GUARD, str(os.getpid()), *cmd],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        process_group=0,
    )


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group `proc` leads (the guard, uv and whatever it started) and reap `proc`."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
