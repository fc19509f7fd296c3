"""An instance's output: the pipe (or a container's FIFO) it writes to and the relay that copies it, in whole
lines, to its log file; `LineBuffer` cuts output into lines (the docker runtime's watcher uses it too).

A line longer than MAX_LINE (output with no newline, or a progress bar redrawn with `\r`) is written in
pieces of MAX_LINE bytes, each but the last ending with CUT_MARK: what the host holds of an instance's
output is bounded, and each byte is copied a bounded number of times."""

from __future__ import annotations

import asyncio
import fcntl
import os
import stat
from collections.abc import Callable

from .logfiles import RotatingLog

RELAY_CHUNK = 256 * 1024  # instance output is read in chunks up to this size,
RELAY_PAUSE_S = 0.02  # this long after the pipe turned readable (the lines of that moment, batched)
PIPE_BYTES = 1024 * 1024  # the output pipe's capacity (Linux F_SETPIPE_SZ; the default 64 KiB otherwise)
MAX_LINE = 64 * 1024  # longer lines are cut into pieces this long
CUT_MARK = b" [mlctl: line over %d bytes, cut; it goes on in the next line]\n" % MAX_LINE


class LineBuffer:
    """Pure: an instance's output in, whole lines out; a partial line is kept (at most MAX_LINE bytes) until
    its end arrives. The caller writes what `feed` returns (OutputRelay, the docker watcher)."""

    __slots__ = ("pending", "max_line", "mark")

    def __init__(self, max_line: int = MAX_LINE):
        self.pending = bytearray()
        self.max_line = max_line
        self.mark = CUT_MARK if max_line == MAX_LINE else b" [mlctl: line over %d bytes, cut]\n" % max_line

    def feed(self, chunk: bytes) -> bytes:
        """The lines complete with `chunk` (b"" if none), lines over max_line cut and marked."""
        pending = self.pending
        end = chunk.rfind(b"\n") + 1
        if end:
            if pending:
                pending += chunk[:end]
                complete = bytes(pending)
                pending.clear()
            else:
                complete = chunk[:end]
            pending += chunk[end:]
        else:
            pending += chunk
            complete = b""
        if len(complete) > self.max_line:
            complete = self._cut_lines(complete)
        if len(pending) >= self.max_line:  # no end in sight: the full pieces go now
            whole = len(pending) - len(pending) % self.max_line
            complete += self._cut_lines(bytes(pending[:whole]), ended=False)
            del pending[:whole]
        return complete

    def rest(self) -> bytes:
        """The last partial line, ended (the output is over), or nothing."""
        rest = bytes(self.pending) + b"\n" if self.pending else b""
        self.pending.clear()
        return rest

    def _cut_lines(self, data: bytes, ended: bool = True) -> bytes:
        """`data` with every line over max_line cut into marked pieces. `ended` false: `data` is whole pieces
        of one line still going on, each marked."""
        size, mark = self.max_line, self.mark
        if not ended:
            return b"".join(data[i : i + size] + mark for i in range(0, len(data), size))
        out, pos, total = [], 0, len(data)
        while pos < total:
            nl = data.find(b"\n", pos)
            text_end = nl if nl >= 0 else total  # the line's text, without its newline
            while text_end - pos > size:
                out += (data[pos : pos + size], mark)
                pos += size
            stop = nl + 1 if nl >= 0 else total
            out.append(data[pos:stop])
            pos = stop
        return b"".join(out)


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
    # (not followed, and a FIFO: a warm spare container's process owns the folder while the host makes this)
    r = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        if not stat.S_ISFIFO(os.fstat(r).st_mode):
            raise OSError(f"{path} is not the FIFO made for it")
        w = os.open(f"/proc/self/fd/{r}", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
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
        self.lines = LineBuffer()
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
            complete = self.lines.feed(chunk)
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
        rest = self.lines.rest()
        if rest:
            self.out.write(rest)
            self.remember(rest)
