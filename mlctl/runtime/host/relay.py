"""An instance's output: the pipe (or a container's FIFO) it writes to and the relay that copies it, in whole
lines, to its log file."""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import Callable

from .logfiles import RotatingLog

RELAY_CHUNK = 256 * 1024  # instance output is read in chunks up to this size,
RELAY_PAUSE_S = 0.02  # this long after the pipe turned readable (the lines of that moment, batched)
PIPE_BYTES = 1024 * 1024  # the output pipe's capacity (Linux F_SETPIPE_SZ; the default 64 KiB otherwise)


def _enlarge(fd: int) -> None:
    """Give the pipe of `fd` PIPE_BYTES of room where the system allows (best effort)."""
    try:
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    except OSError:
        pass


def output_pipe() -> tuple[int, int]:
    """(read fd, write fd) of a pipe with PIPE_BYTES of room where the system allows (best effort)."""
    r, w = os.pipe()
    _enlarge(w)
    return r, w


def output_fifo(path) -> tuple[int, int]:
    """A FIFO made at `path` (anything there first removed; only this user may open it) for an instance that
    opens it by name (a container's scoring server, `--output`): (read fd, write fd), both this process's,
    with PIPE_BYTES of room. Holding the write end keeps the reader from seeing an end before the instance
    opened its own; close it once the instance has ended, and the relay reads to the end of its output."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    os.mkfifo(path, 0o600)
    r = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        w = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except BaseException:
        os.close(r)
        raise
    _enlarge(r)
    return r, w


class OutputRelay:
    """Copies an instance's output pipe to its log file in whole lines.

    Batched: when the pipe turns readable the relay stops watching it, waits RELAY_PAUSE_S, copies
    everything there, and watches again; so a busy instance's per-request lines cost the host a
    at most 50 wake-ups a second instead of one per line, an idle one costs nothing, and a line
    is in the log file within about 20 ms. The pipe is enlarged so the instance does
    not block on it meanwhile. `drain()` copies what is there at once (at readiness, so the log
    holds what init() printed before anyone is told the instance is ready)."""

    def __init__(self, fd: int, out: RotatingLog, remember: Callable[[bytes], None]):
        self.fd, self.out, self.remember = fd, out, remember
        self.pending = b""
        self.eof = False
        os.set_blocking(fd, False)

    def drain(self, max_chunks: int = 8) -> bool:
        """Copy what the pipe holds now (at most max_chunks reads); True if there was anything."""
        got = False
        for _ in range(max_chunks):
            if self.eof or self.fd < 0:
                break
            try:
                chunk = os.read(self.fd, RELAY_CHUNK)
            except BlockingIOError:
                break
            if not chunk:
                self.eof = True  # every writer is gone: the process exited
                break
            got = True
            data = self.pending + chunk
            cut = data.rfind(b"\n") + 1
            complete, self.pending = data[:cut], data[cut:]
            if complete:
                self.out.write(complete)
                self.remember(complete)
        return got

    async def run(self) -> None:
        """Relay until the end of the output, then close the pipe (a last partial line is kept)."""
        loop = asyncio.get_running_loop()
        ended = loop.create_future()

        def pump() -> None:
            if self.fd < 0:  # closed meanwhile (the relay was cancelled)
                return
            self.drain()
            if self.eof:
                if not ended.done():
                    ended.set_result(None)
            else:
                loop.add_reader(self.fd, readable)

        def readable() -> None:
            loop.remove_reader(self.fd)
            loop.call_later(RELAY_PAUSE_S, pump)

        loop.add_reader(self.fd, readable)
        try:
            await ended
        finally:
            loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1
        if self.pending:
            self.out.write(self.pending + b"\n")
            self.remember(self.pending + b"\n")
