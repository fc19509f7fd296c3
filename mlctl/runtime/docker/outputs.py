"""A container's output as the host reads it: the FIFO in the bind-mounted socket folder that its scoring
server writes everything to (`--output`), relayed into the instance's log file as a process's pipe is.

So the per-request lines (the access log, the script's logging) never pass through the engine: no
log-driver record, no shim copy, no log stream for the host to follow. What the container prints before
the server has moved its output (the interpreter failing to start) still goes to the engine's log, which
the launcher's watcher copies.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from mlctl.runtime.host.relay import OutputRelay, output_fifo

FINISH_S = 2.0  # at most this long for the relay to copy what is left once the container ended


def fifo_name(socket: Path) -> str:
    """Pure: the FIFO's name beside the instance's socket."""
    return f"{socket.stem}.out"


class ContainerOutput:
    """One container's output FIFO: made and read (on the host's event loop) before the container starts;
    `finish()` once it ended copies the rest and closes it."""

    def __init__(self, path: Path, out, remember: Callable[[bytes], None]):
        self.path = path
        r, self._hold = output_fifo(path)
        self.relay = OutputRelay(r, out, remember)
        self._task = asyncio.get_running_loop().create_task(self.relay.run())

    def drain(self) -> None:
        """Copy what the FIFO holds now (at readiness: what init() printed is in the log before it is ready)."""
        if self.relay.fd >= 0:
            self.relay.drain()

    async def finish(self) -> None:
        """The container ended (no writer of its own is left): close the host's write end and remove the FIFO
        (once), so the relay reads to the end of the output and stops; wait for that, FINISH_S at most."""
        if self._hold >= 0:
            os.close(self._hold)
            self._hold = -1
            self.path.unlink(missing_ok=True)
        task = self._task
        if task is None or task.done():
            return
        done, _ = await asyncio.wait({task}, timeout=FINISH_S)
        if not done:
            task.cancel()
        elif not task.cancelled():
            task.exception()  # (retrieved: a log file that could not be written has nothing more to say)
