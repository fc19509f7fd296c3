"""What an instance process used, read from /proc (the process and container launchers report it), and how
much of an instance's output a launcher keeps in memory for failures."""

from __future__ import annotations

import os

from mlctl.runtime.host.launcher import Usage

TAIL_BYTES = 64 * 1024  # output kept in memory for failures
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _one_usage(pid: int) -> tuple[int, int, list[int]] | None:
    """(CPU ticks of the process and of its waited-for children, peak RSS in KiB, live child pids)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/status") as f:
            hwm = next((line.split()[1] for line in f if line.startswith("VmHWM:")), "0")
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(x) for x in f.read().split()]
    except (OSError, IndexError, StopIteration, ValueError):
        return None
    # after "pid (comm)": state is fields[0], so utime (field 14 of stat) is fields[11], stime fields[12], and
    # cutime/cstime (fields 16, 17: children that exited, e.g. a restarted scoring worker) fields[13], fields[14]
    return sum(int(x) for x in fields[11:15]), int(hwm), kids


def process_usage(pid: int) -> Usage | None:
    """CPU seconds (user + system, /proc/PID/stat) and peak RSS (VmHWM, /proc/PID/status) of a live process and
    its live descendants (the scoring server's WORKER_COUNT workers): CPU added up, peak RSS added up (an upper
    bound of their peak together)."""
    top = _one_usage(pid)
    if top is None:
        return None
    ticks, kib, todo = top
    while todo:
        one = _one_usage(todo.pop())
        if one is not None:
            ticks, kib = ticks + one[0], kib + one[1]
            todo.extend(one[2])
    return Usage(ticks / CLOCK_TICKS, kib * 1024)
