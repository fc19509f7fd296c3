"""CPU-bound neighbour processes for a benchmark: a busy machine, reproduced on demand (`bench.py --busy N`).

Each is a Python interpreter spinning in a loop that ends by itself after `max_seconds` (a bound even if
the bench is killed), in its own process group; `neighbours` stops them by PID when the block ends, on
error too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from typing import Iterator, List

SPIN = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


@contextlib.contextmanager
def neighbours(count: int, max_seconds: float) -> Iterator[List[subprocess.Popen]]:
    """`count` CPU-bound processes running for the block (each ends by itself after `max_seconds`)."""
    procs: List[subprocess.Popen] = []
    try:
        for _ in range(count):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", SPIN.format(seconds=float(max_seconds))],
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)  # a spinning loop holds nothing worth a graceful stop
            proc.wait(30)
