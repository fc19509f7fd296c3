"""Reading ahead: on a load with many files the document cache does not hold (a fresh clone, a pull-request
job), a forked process parses the second half of the files while this one parses the first, so a cold plan
uses both cores.

The child is a copy of this process made after the imports: it runs the same `read_document` on its half, with
the same document cache and `--var` values, and sends back only what that puts in the cache (each new
document's JSON, keyed by the sha256 of its text). This process takes them into its cache as if it had parsed
them; when it then reads those files, it finds each by the digest of the text it reads itself, so a file edited
in between is parsed again, and a file the child could not parse (a problem, a date) is parsed here and its
problems reported here. Nothing else comes back from the child: when it fails, is killed or says something
this process cannot read, the files are parsed here as without it.
"""

from __future__ import annotations

import marshal
import os
import threading
from pathlib import Path

MIN_FILES = 400  # fewer files than this: a fork costs more than half of their parsing
MAX_REPLY = 256 * 1024 * 1024  # the child's answer is read up to this size (7,500 documents: about 3 MB)


class ReadAhead:
    """A child parsing `paths[start:]` into the document cache; `collect` takes its results."""

    def __init__(self, pid: int, fd: int, start: int):
        self.pid, self.fd, self.start = pid, fd, start
        self.collected = False

    @classmethod
    def begin(cls, paths: list[Path], cache, variables) -> "ReadAhead | None":
        """Fork a child parsing the second half of `paths`, or None when it is not worth it (few files, a
        cache that holds most of them, no fork, one core) or not safe (another thread runs: a fork copies
        only this one)."""
        if (
            cache is None
            or cache.key is None
            or len(paths) < MIN_FILES
            or len(cache.entries) * 2 >= len(paths)
            or not hasattr(os, "fork")
            or (os.cpu_count() or 1) < 2
            or threading.active_count() > 1
        ):
            return None
        start = len(paths) // 2
        r, w = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(r)
            os.close(w)
            return None
        if pid == 0:  # the child: parse, answer, and leave without running anything of the parent's
            code = 1
            try:
                os.close(r)
                _parse_into(paths[start:], cache, variables)
                _write_all(w, marshal.dumps(dict(cache.fresh)))
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        return cls(pid, r, start)

    def collect(self, cache) -> int:
        """Wait for the child and put what it parsed into `cache`; returns how many documents it gave."""
        chunks, size = [], 0
        self.collected = True
        try:
            while chunk := os.read(self.fd, 1 << 20):
                size += len(chunk)
                if size > MAX_REPLY:
                    chunks = []
                    break
                chunks.append(chunk)
        finally:
            os.close(self.fd)
            _, status = os.waitpid(self.pid, 0)
        if not chunks or os.waitstatus_to_exitcode(status) != 0:
            return 0
        try:
            parsed = marshal.loads(b"".join(chunks))
        except (ValueError, EOFError, TypeError):
            return 0
        if not isinstance(parsed, dict):
            return 0
        taken = 0
        for digest, entry in parsed.items():
            if isinstance(digest, str) and isinstance(entry, str) and digest not in cache.fresh:
                cache.fresh[digest] = entry
                taken += 1
        return taken


def _parse_into(paths: list[Path], cache, variables) -> None:
    from mlctl.schemas.documents import read_document

    for path in paths:
        read_document(path, cache, variables=variables)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.close(fd)
