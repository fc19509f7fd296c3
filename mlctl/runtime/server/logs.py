"""Logging in the Azure inference-server format, print() capture, and the per-request line.

Format: ``%(asctime)s %(levelname).1s [%(process)d] %(name)s - %(message)s`` in UTC, to
stdout (and ``--log-file``). The request line is written pre-formatted, without the logging
machinery, and flushed by a timer a few times a second, to keep it off the hot path.
"""

from __future__ import annotations

import builtins
import functools
import logging
import os
import sys
import time
from typing import IO, List, Optional

FORMAT = "%(asctime)s %(levelname).1s [%(process)d] %(name)s - %(message)s"

_default_print = builtins.print
_print_logger = logging.getLogger("azmlinfsrv.print")


class AzureFormatter(logging.Formatter):
    """The Azure inference server's log format, with UTC timestamps."""

    converter = time.gmtime

    def __init__(self) -> None:
        super().__init__(FORMAT)


class _FlushingStdout(logging.StreamHandler):
    """A handler on whatever sys.stdout is at emit time (tests and print capture swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


@functools.wraps(_default_print)
def _print_to_logger(*objects, sep=" ", end="\n", file=None, flush=False):  # type: ignore[no-untyped-def]
    if file is None or file is sys.stdout:
        _print_logger.info((" " if sep is None else sep).join(map(str, objects)))
    else:
        _default_print(*objects, sep=sep, end=end, file=file, flush=flush)


def configure_logging(level: str, log_file: Optional[str]) -> List[IO[str]]:
    """Send all logging (root logger) to stdout and log_file in the Azure format and route the
    script's print() to the ``azmlinfsrv.print`` logger. Returns the streams the request log
    writes to."""
    formatter = AzureFormatter()
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:  # a script printing non-ASCII under a C locale must not break logging
        reconfigure(errors="backslashreplace")
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler: logging.Handler = _FlushingStdout()
    handler.setFormatter(formatter)
    root.addHandler(handler)
    streams: List[IO[str]] = [sys.stdout]
    if log_file:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        fh = logging.FileHandler(log_file, encoding="utf-8")
        fh.setFormatter(formatter)
        root.addHandler(fh)
        streams.append(fh.stream)
    root.setLevel(getattr(logging, level, logging.INFO))
    logging.getLogger("aiohttp.access").disabled = True
    builtins.print = _print_to_logger
    return streams


class RequestLog:
    """Writes one line per request: ``METHOD PATH STATUS MSms BYTES REQUEST-ID``.

    Lines are kept in a list and written by `flush` (a timer, and at exit) in chunks of whole lines of at
    most CHUNK characters, each one write to each stream: no stream call per request (with
    PYTHONUNBUFFERED, as instances run, that was a write() system call per request), and the lines of
    several worker processes sharing one pipe (WORKER_COUNT) do not interleave inside a line (a pipe
    write of up to 4 KiB is atomic)."""

    CHUNK = 3500

    def __init__(self, streams: List[IO[str]]) -> None:
        self.streams = streams
        self.lines: List[str] = []
        self._second = -1
        self._prefix = ""
        self._tail = f" I [{os.getpid()}] azmlinfsrv - "

    @property
    def dirty(self) -> bool:
        return bool(self.lines)

    def write(self, method: str, path: str, status: int, ms: float, size: int, request_id: str) -> None:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
        self.lines.append(
            f"{self._prefix},{int((now - second) * 1000):03d}{self._tail}{method} {path} {status} "
            f"{ms:.3f}ms {size} {request_id}\n"
        )

    def flush(self) -> None:
        """Write and flush what was logged since the last flush (called by a timer and at exit)."""
        if not self.lines:
            return
        lines, self.lines = self.lines, []
        chunk: List[str] = []
        size = 0
        for line in lines:
            if size + len(line) > self.CHUNK and chunk:
                self._emit("".join(chunk))
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        self._emit("".join(chunk))

    def _emit(self, text: str) -> None:
        for s in self.streams:
            try:
                s.write(text)
                s.flush()
            except (OSError, ValueError):  # a closed or broken log stream must not fail a request
                pass
