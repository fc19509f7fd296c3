"""How long a thread has waited for a CPU: a call's wall time less that wait is how long the call held its
thread, the time it would have taken had the machine been idle.

Why: on a busy machine the kernel preempts the server, and a 60 µs run() takes milliseconds of wall time
although it still holds the event loop for 60 µs of its own (bench/README.md, issue 30). The inline
policy (mlctl.runtime.server.inline) judges calls by their held time, so that preemption does not send
short calls back to the worker threads, while a call that sleeps or blocks on I/O (off the CPU but not
waiting for one) still counts in full.

Linux keeps each thread's run-queue wait (``/proc/thread-self/schedstat``, second field, ns); a
`RunQueue` opens that file once and rereads it with one ``pread`` (2-10 µs on this project's 2-core VMs: the
inline caller reads it only while it measures, mlctl.runtime.server.inline).
Where the file cannot be read (not Linux, no /proc), the wait reads as 0 and calls are judged by their
wall time, as before.
"""

from __future__ import annotations

import os

SCHEDSTAT = "/proc/thread-self/schedstat"


def held_ms(elapsed_ms: float, queued_ms: float) -> float:
    """Pure: of a call's `elapsed_ms` of wall time, the part not spent waiting for a CPU, `queued_ms` having
    been waited meanwhile (by its thread, and by the loop's thread whose GIL it may have waited for); the wall
    time when no wait was read. Its readings are `RunQueue.waited_ms`."""
    if queued_ms <= 0.0:
        return elapsed_ms
    return max(elapsed_ms - queued_ms, 0.0)


class RunQueue:
    """The run-queue wait of one thread: by default the one that makes it (any thread may read it); `close`
    frees the file."""

    def __init__(self, path: str = SCHEDSTAT) -> None:
        try:
            self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except (OSError, AttributeError):  # not Linux, or /proc not mounted
            self._fd = -1
        if self._fd >= 0 and not self._readable():
            self.close()

    def _readable(self) -> bool:
        try:
            return len(os.pread(self._fd, 128, 0).split()) >= 2
        except (OSError, AttributeError):
            return False

    def waited_ms(self) -> float:
        """Milliseconds the thread has spent runnable but waiting for a CPU since it started (0.0 when
        unknown)."""
        if self._fd < 0:
            return 0.0
        try:
            return int(os.pread(self._fd, 128, 0).split()[1]) / 1e6
        except (OSError, ValueError, IndexError):
            return 0.0

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)
