"""Where the server's output goes when told (`--output PATH`): file descriptors 1 and 2 moved onto PATH.

The docker launcher gives a container's server a FIFO in the bind-mounted socket folder, read on the
host straight into the instance's log file, so the per-request lines (the access log, the script's own
logging) never pass through the container engine's log driver. Everything written to stdout or stderr
goes there: logging, print, tracebacks, and the forked workers (they inherit the descriptors). When the
FIFO's reader goes away (the host was killed), a watcher thread moves both descriptors onto /dev/null:
the server keeps serving, quietly, until the next host removes it, instead of failing each write.
"""

from __future__ import annotations

import errno
import io
import os
import select
import stat
import sys
import threading

_GONE = select.POLLERR | select.POLLHUP | select.POLLNVAL


def redirect(path: str) -> None:
    """Make `path` (opened for appending, created if missing; a FIFO must have a reader: OSError ENXIO
    otherwise) this process's stdout and stderr (fds 1 and 2). For a FIFO, start the watcher that drops
    the output once nobody reads it, in this process and in every process forked from it later."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise OSError(exc.errno, "it is a FIFO that nobody reads") from None
        raise
    try:
        os.set_blocking(fd, True)  # a full FIFO holds the writer back, as a full pipe does
        fifo = stat.S_ISFIFO(os.fstat(fd).st_mode)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):
                pass
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)
    sys.stdout, sys.stderr = _reopened(1, sys.stdout), _reopened(2, sys.stderr)
    if fifo:
        _watch()
        os.register_at_fork(after_in_child=_watch)


def _reopened(fd: int, old) -> io.TextIOWrapper:
    """A text stream on `fd` buffered as `old` was (unbuffered under PYTHONUNBUFFERED, as instances run): the
    old one knew its file as it was (e.g. seekable), and reconfiguring it later would seek a FIFO."""
    raw = io.FileIO(fd, "w", closefd=False)
    unbuffered = isinstance(getattr(old, "buffer", None), io.RawIOBase)
    return io.TextIOWrapper(
        raw if unbuffered else io.BufferedWriter(raw),
        encoding=getattr(old, "encoding", None),
        errors=getattr(old, "errors", None),
        line_buffering=getattr(old, "line_buffering", False),
        write_through=unbuffered,
    )


def _watch() -> None:
    threading.Thread(target=_drop_when_unread, name="mlctl-output-watch", daemon=True).start()


def _drop_when_unread() -> None:
    """Wait (in poll, without the GIL) until fd 1 has no reader left, then move fds 1 and 2 onto /dev/null."""
    poller = select.poll()
    poller.register(1, 0)  # no event asked for: only POLLERR (no reader), POLLHUP, POLLNVAL come
    while not any(events & _GONE for _, events in poller.poll()):
        pass
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)
