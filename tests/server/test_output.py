"""--output PATH: all of the server's output (its log, request lines, print, tracebacks, its workers') goes to
a file or FIFO from the start, none to its stdout; once a FIFO's reader is gone the server moves its output
onto /dev/null and keeps serving (the docker runtime's host reads one FIFO per container: a killed host must
not leave a server failing each write)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from servertools import LISTENING, Server, launch

SCRIPT = (
    "def init():\n    print('init prints 5521')\n\ndef run(raw_data):\n    print('run prints 7310')\n    return 1\n"
)


class FifoReader:
    """The reading end of a FIFO made at `path`, read without blocking."""

    def __init__(self, path: Path) -> None:
        self.writer = None  # the process writing to it (set by the test): reading stops when it exits
        os.mkfifo(path)
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.text = ""

    def until(self, pattern: str, deadline_s: float = 90.0) -> re.Match:
        """Read until `pattern` shows up (bounded)."""
        end = time.monotonic() + deadline_s
        while True:
            try:
                self.text += os.read(self.fd, 65536).decode("utf-8", "replace")
            except BlockingIOError:
                pass
            found = re.search(pattern, self.text)
            if found:
                return found
            assert time.monotonic() < end and self.writer.poll() is None, f"{pattern!r} never came:\n{self.text}"
            time.sleep(0.02)

    def close(self) -> None:
        os.close(self.fd)


def processes(pid: int) -> list[int]:
    """pid and its live descendants (the workers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            todo += [int(x) for x in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            pass
    return out


def output_of(pid: int, fd: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        return "gone"


def wait_until(predicate, deadline_s: float = 30.0) -> bool:
    end = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.parametrize("workers", ["1", "2"])
def test_output_goes_to_the_fifo_and_is_dropped_once_nobody_reads_it(tmp_path, models, workers):
    (tmp_path / "score.py").write_text(SCRIPT)
    fifo = FifoReader(tmp_path / "out.fifo")
    stdout = tmp_path / "stdout.log"
    proc = launch(
        stdout,
        [
            "--entry-script",
            str(tmp_path / "score.py"),
            "--model-dir",
            str(models),
            "--port",
            "0",
            "--output",
            str(tmp_path / "out.fifo"),
        ],
        env={"WORKER_COUNT": workers},
    )
    server = Server(proc, stdout)
    fifo.writer = proc
    try:
        where = fifo.until(LISTENING.pattern)
        server.host, server.port = where.group(1), int(where.group(2))
        assert server.call("POST", "/score", {"a": 1}, {"x-request-id": "out-4417"}).status == 200
        fifo.until(r"POST /score 200 \S+ \d+ out-4417")  # the request line
        assert "init prints 5521" in fifo.text and "run prints 7310" in fifo.text
        every = processes(proc.pid)
        assert len(every) == (1 if workers == "1" else 3)
        fifo.close()  # the reader goes away (a killed host)
        for pid in every:
            assert wait_until(lambda: output_of(pid, 1) == output_of(pid, 2) == "/dev/null"), output_of(pid, 1)
        for i in range(50):  # their request lines now go nowhere
            assert server.call("POST", "/score", {"a": i}).status == 200
        assert server.call("GET", "/").status == 200
        assert server.stop() == 0  # drained and stopped as usual
        assert stdout.read_text() == ""  # nothing ever reached its stdout
    finally:
        server.stop()


def test_output_to_a_file_holds_the_traceback_of_a_failing_init(tmp_path, models):
    (tmp_path / "score.py").write_text(
        "def init():\n    raise ValueError('no model 6620')\n\ndef run(d):\n    return 1\n"
    )
    stdout, out = tmp_path / "stdout.log", tmp_path / "logs" / "out.log"
    out.parent.mkdir()
    proc = launch(
        stdout,
        ["--entry-script", str(tmp_path / "score.py"), "--model-dir", str(models), "--port", "0", "--output", str(out)],
    )
    assert proc.wait(60) == 3
    assert "Traceback (most recent call last)" in out.read_text() and "ValueError: no model 6620" in out.read_text()
    assert stdout.read_text() == ""


def test_output_to_a_fifo_nobody_reads_is_a_clear_error(tmp_path, models):
    os.mkfifo(tmp_path / "nobody.fifo")
    stdout = tmp_path / "stdout.log"
    proc = launch(stdout, ["--entry-script", str(tmp_path / "score.py"), "--output", str(tmp_path / "nobody.fifo")])
    assert proc.wait(60) == 2
    assert (
        f"error: --output {tmp_path / 'nobody.fifo'}: cannot write to it: it is a FIFO that nobody reads"
        in stdout.read_text()
    )
