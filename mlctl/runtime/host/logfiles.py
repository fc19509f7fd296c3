"""Log files of an endpoint: size-rotated writers for instance and host output, and `tail` for `mlctl logs`.

Layout: `DATA_DIR/logs/ENDPOINT/host.log` (the host) and
`DATA_DIR/logs/ENDPOINT/DEPLOYMENT/instance-K.log` (instance K's stdout+stderr), each rotated at
`rotation_bytes()` (10 MiB, or `MLCTL_LOG_MAX_BYTES` in the host's environment) into `.1`, `.2`, ...
(`BACKUPS` kept).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from mlctl.errors import MlctlError

MAX_BYTES = 10 * 1024 * 1024
MIN_BYTES = 4096
BACKUPS = 3
DEFAULT_LINES = 5000
log = logging.getLogger("mlctl.host")


def rotation_bytes() -> int:
    """The rotation size: MLCTL_LOG_MAX_BYTES when it is an integer (at least MIN_BYTES), else MAX_BYTES."""
    raw = os.environ.get("MLCTL_LOG_MAX_BYTES", "")
    return max(MIN_BYTES, int(raw)) if raw.strip().isdigit() else MAX_BYTES


def _nofollow(path, flags: int) -> int:
    """An `open()` opener that never follows a symbolic link at the path (OSError ELOOP instead)."""
    return os.open(path, flags | os.O_NOFOLLOW, 0o600)


def instance_log_path(data_dir, endpoint: str, deployment: str, index: int) -> Path:
    return Path(data_dir) / "logs" / endpoint / deployment / f"instance-{index}.log"


def rotate(path: Path, backups: int = BACKUPS) -> None:
    """Shift path.(n-1) -> path.n ... path -> path.1; the oldest falls off."""
    for n in range(backups, 0, -1):
        src = path if n == 1 else path.with_name(f"{path.name}.{n - 1}")
        if src.exists():
            os.replace(src, path.with_name(f"{path.name}.{n}"))


def _whole_lines(data: bytes, room: int) -> int:
    """Pure: how much of `data` goes into `room` bytes: all of it, else its first whole lines (0: none)."""
    if len(data) <= room:
        return len(data)
    return data.rfind(b"\n", 0, room) + 1 if room > 0 else 0


class RotatingLog:
    """An append-only log file rotated by size; several writers may share one (lines stay whole)."""

    def __init__(self, path: Path, max_bytes: int | None = None, backups: int = BACKUPS):
        self.path, self.max_bytes, self.backups = Path(path), max_bytes or rotation_bytes(), backups
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab", buffering=0, opener=_nofollow)
        self._size = self._file.tell()
        self.dropped = 0  # bytes lost to failed writes

    def write(self, data: bytes) -> None:
        """Append `data`, rotating first whenever the next whole lines would take the file over its size
        (a chunk of many lines, such as a scoring server's batched access lines, is spread over files;
        only a single line longer than the limit is cut at it). When the file cannot be rotated, opened or
        written (no descriptor left, disk full) the rest is dropped and the next write tries again: a log
        never stops its writer."""
        while data:
            try:
                fits = _whole_lines(data, self.max_bytes - self._size) if self._file is not None else 0
                if self._file is None or (not fits and self._size):
                    if self._file is not None:
                        self._file.close()
                        self._file = None
                        rotate(self.path, self.backups)
                    self._file = open(self.path, "ab", buffering=0, opener=_nofollow)
                    self._size = self._file.tell()
                    fits = _whole_lines(data, self.max_bytes - self._size)
                fits = fits or max(self.max_bytes - self._size, 1)  # one line longer than the room: cut
                self._file.write(data[:fits])
                self._size += fits
                data = data[fits:]
            except OSError:
                self.dropped += len(data)
                return

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class StdioLog:
    """The host's own log: fds 1 and 2 point at host.log; `check()` rotates it by size (dup2)."""

    def __init__(self, path: Path, max_bytes: int | None = None, backups: int = BACKUPS):
        self.path, self.max_bytes, self.backups = Path(path), max_bytes or rotation_bytes(), backups
        self.failing = False  # the last check failed (said once in the log, until one succeeds)

    def check(self) -> None:
        """Rotate when over size (and reopen host.log when it is gone). Never raises: when a step fails
        (no descriptor left, disk full) stdout and stderr keep their file and the next check tries again."""
        try:
            exists = self.path.exists()
            if os.fstat(2).st_size <= self.max_bytes and exists:
                return
            if exists:
                rotate(self.path, self.backups)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as e:
            if not self.failing:
                self.failing = True
                log.warning(
                    "cannot rotate %s: %s; the host goes on writing to the file it has and tries again", self.path, e
                )
            return
        self.failing = False
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)


def _read_tail(path: Path, lines: int, block: int = 65536) -> list[str]:
    """The last `lines` lines of one file, reading backwards in blocks (not the whole file)."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        pos = f.tell()
        data = b""
        while pos > 0 and data.count(b"\n") <= lines:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
    out = data.decode("utf-8", "replace").splitlines()
    return out[-lines:] if pos > 0 else out


def _last_lines(path: Path, lines: int) -> list[str]:
    """The last `lines` lines of a file and its rotated backups, oldest first."""
    if lines <= 0:
        return []
    out: list[str] = []
    for n in range(0, BACKUPS + 1):
        p = path if n == 0 else path.with_name(f"{path.name}.{n}")
        if not p.exists():
            break
        out = _read_tail(p, lines - len(out)) + out
        if len(out) >= lines:
            break
    return out[-lines:]


def log_files(data_dir, endpoint: str, deployment: str | None, instance: int | None) -> list[Path]:
    """The log files `tail` reads: the host log when deployment is None, else instance logs."""
    base = Path(data_dir) / "logs" / endpoint
    if deployment is None:
        files = [base / "host.log"]
    elif instance is not None:
        files = [base / deployment / f"instance-{instance}.log"]
    else:
        files = sorted(
            (base / deployment).glob("instance-*.log"),
            key=lambda p: int(p.stem.split("-")[1]) if p.stem.split("-")[1].isdigit() else 0,
        )
    files = [f for f in files if f.is_file() and not f.is_symlink()]  # never read through a link
    if not files:
        what = (
            "the endpoint host"
            if deployment is None
            else f"deployment {deployment!r}" + (f" instance {instance}" if instance is not None else "")
        )
        raise MlctlError(
            f"no logs for {what} of endpoint {endpoint!r}",
            detail=f"looked in {base / (deployment or '')}; has the deployment been applied?",
        )
    return files


def _rotated_since(path: Path, inode: int) -> list[Path]:
    """Backups newer than the file `inode` (now path.N): path.(N-1) .. path.1, oldest first."""
    backups = [path.with_name(f"{path.name}.{n}") for n in range(1, BACKUPS + 1)]
    for n, backup in enumerate(backups):
        try:
            if os.stat(backup).st_ino == inode:
                return list(reversed(backups[:n]))
        except FileNotFoundError:
            break
    return []


def tail(
    data_dir,
    endpoint: str,
    deployment: str | None,
    lines: int = DEFAULT_LINES,
    instance: int | None = None,
    follow: bool = False,
    *,
    poll_s: float = 0.2,
    stop: Callable[[], bool] | None = None,
) -> Iterator[str]:
    """Yield the last `lines` lines (per instance) of a deployment's logs, then new lines if `follow`.

    With several instances each line is prefixed `instance-K | `. Following stops when `stop()`
    returns True (the CLI stops it with Ctrl-C). It survives rotation as `tail -F` does: the file
    it has open is read to its end (lines written just before the rotation are not lost), then the
    new file from its start.
    """
    files = log_files(data_dir, endpoint, deployment, instance)
    prefix = (lambda p: f"{p.stem} | ") if len(files) > 1 else (lambda p: "")
    handles = {}
    for path in files:
        if follow:
            handles[path] = open(path, "rb")  # noqa: SIM115 (kept open while following; closed below)
            handles[path].seek(0, os.SEEK_END)  # opened first: a line written while reading is not missed
        for line in _last_lines(path, lines):
            yield prefix(path) + line
    partial = {path: b"" for path in files}

    def read_rest(path):
        data = partial[path] + handles[path].read()
        *complete, partial[path] = data.split(b"\n")
        return [prefix(path) + raw.decode("utf-8", "replace") for raw in complete]

    try:
        while follow and not (stop and stop()):
            got = []
            for path in files:
                got += read_rest(path)
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    continue  # between rotate's rename and the new file: next round
                f = handles[path]
                old = os.fstat(f.fileno()).st_ino
                if st.st_ino != old:  # rotated: finish the old file, then any newer backups, then the new
                    try:
                        current = open(path, "rb")  # noqa: SIM115 (opened before the backups are listed, so a
                        # rotation meanwhile leaves it among them and no file between it and `old` is skipped)
                    except FileNotFoundError:
                        continue  # renamed again this instant: next round (the old file is still open)
                    got += read_rest(path)
                    f.close()
                    current_ino = os.fstat(current.fileno()).st_ino
                    for newer in _rotated_since(path, old):
                        try:
                            if os.stat(newer).st_ino == current_ino:
                                break
                            handles[path] = open(newer, "rb")  # noqa: SIM115
                        except FileNotFoundError:
                            continue
                        got += read_rest(path)
                        handles[path].close()
                    if partial[path]:
                        got.append(prefix(path) + partial[path].decode("utf-8", "replace"))
                        partial[path] = b""
                    handles[path] = current
                    got += read_rest(path)
                elif st.st_size < f.tell():  # truncated
                    f.seek(0)
            yield from got
            if not got:
                time.sleep(poll_s)
    finally:
        for f in handles.values():
            f.close()


class AccessLog:
    """The gateway's per-request lines, buffered and written to stderr (host.log) in batches (the
    gateway flushes it every 0.2 s). Cheaper than a `logging` record per request; same line layout
    as the host's other log lines.
    """

    def __init__(self, stream=None):
        import sys

        self.stream = stream or sys.stderr
        self.lines: list[str] = []
        self._second = -1
        self._stamp = ""
        self._prefix = f" I [{os.getpid()}] mlctl.access - "

    def write(self, text: str, now: float) -> None:
        """Buffer a line stamped `now` (a time.time() value: when the request was answered)."""
        second = int(now)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        self.lines.append(f"{self._stamp},{int(now % 1 * 1000):03d}{self._prefix}{text}\n")

    def flush(self) -> None:
        if self.lines:
            lines, self.lines = self.lines, []
            try:
                self.stream.write("".join(lines))
                self.stream.flush()
            except (OSError, ValueError):  # stderr unwritable (disk full): the lines are dropped
                pass
