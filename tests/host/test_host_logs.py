"""Log files: size rotation and `tail` (what `mlctl logs` prints), following new lines."""

from __future__ import annotations

import threading
import time

import pytest
from hosttools import send

from mlctl.errors import MlctlError
from mlctl.runtime.host.logfiles import RotatingLog, tail


def test_rotating_log_rotates_by_size_and_tail_reads_across_backups(tmp_path):
    path = tmp_path / "logs" / "ep" / "blue" / "instance-0.log"
    log = RotatingLog(path, max_bytes=100, backups=2)
    for n in range(30):
        log.write(f"line {n:02d} ........\n".encode())  # 17 bytes: 5 lines per file
    log.close()
    assert sorted(p.name for p in path.parent.iterdir()) == ["instance-0.log", "instance-0.log.1", "instance-0.log.2"]
    assert path.stat().st_size <= 100
    assert list(tail(tmp_path, "ep", "blue", lines=7)) == [f"line {n:02d} ........" for n in range(23, 30)]
    with pytest.raises(MlctlError) as missing:
        list(tail(tmp_path, "ep", "green"))
    assert "green" in str(missing.value)


def test_a_chunk_of_many_lines_is_spread_over_files_none_over_the_limit(tmp_path):
    """A scoring server writes its access lines in batches: one chunk larger than the limit must not make
    a file larger than it; lines stay whole and in order, and only a line longer than the limit is cut."""
    path = tmp_path / "instance-0.log"
    log = RotatingLog(path, max_bytes=100, backups=20)
    lines = [b"request %03d %s\n" % (i, b"x" * (i % 30)) for i in range(40)]
    log.write(b"".join(lines[:25]))
    log.write(b"".join(lines[25:]))
    files = [path.with_name(f"{path.name}.{n}") for n in range(20, 0, -1)] + [path]
    files = [f for f in files if f.exists()]
    assert len(files) >= 10 and all(f.stat().st_size <= 100 for f in files)
    assert all(f.read_bytes().endswith(b"\n") for f in files)  # no line split across files
    assert b"".join(f.read_bytes() for f in files) == b"".join(lines)  # nothing lost, nothing reordered
    log.write(b"y" * 250 + b"\n")  # one line longer than the limit
    assert path.stat().st_size <= 100 and path.read_bytes() == b"y" * 50 + b"\n"


def test_tail_defaults_to_5000_lines_and_follow_loses_no_line_across_rotations(tmp_path):
    path = tmp_path / "logs" / "ep" / "blue" / "instance-0.log"
    log = RotatingLog(path, max_bytes=64 * 1024, backups=3)
    for n in range(6000):
        log.write(f"old {n:04d}\n".encode())
    assert list(tail(tmp_path, "ep", "blue")) == [f"old {n:04d}" for n in range(1000, 6000)]  # Azure's default
    log = RotatingLog(path, max_bytes=300, backups=3)  # about 20 lines a file from here on
    follow = tail(tmp_path, "ep", "blue", lines=1, follow=True, poll_s=0.01, stop=lambda: False)
    assert next(follow) == "old 5999"
    sent = 0
    # the follower reads between writes at odd points: after 1 line, 7, 25 (a rotation), 55 (two)
    for batch in (1, 7, 25, 55, 3):
        want = [f"new {n:04d}" for n in range(sent, sent + batch)]
        for line in want:
            log.write(f"{line}\n".encode())
        sent += batch
        assert [next(follow) for _ in want] == want
    log.write(b"half a li")  # a line written in two pieces comes out whole
    log.write(b"ne\n")
    assert next(follow) == "half a line"
    follow.close()
    log.close()


def test_tail_of_a_deployment_and_follow_shows_a_new_request(make_host):
    host = make_host()
    host.create("blue", count=2)
    host.client.set_traffic({"blue": 100})
    lines = list(tail(host.data_dir, host.name, "blue", lines=5000))
    assert any(line.startswith("instance-0 | ") and "model loaded" in line for line in lines)
    assert any(line.startswith("instance-1 | ") for line in lines)
    one = list(tail(host.data_dir, host.name, "blue", lines=2, instance=1))
    assert len(one) == 2 and not one[0].startswith("instance-")
    assert any("listening" in line for line in tail(host.data_dir, host.name, None))  # the host's own log
    stop = threading.Event()
    seen = []

    def follow():
        deadline = time.monotonic() + 20
        for line in tail(
            host.data_dir,
            host.name,
            "blue",
            lines=0,
            follow=True,
            poll_s=0.05,
            stop=lambda: stop.is_set() or time.monotonic() > deadline,
        ):
            seen.append(line)
            if "follow-me-7" in line:
                stop.set()

    reader = threading.Thread(target=follow)
    reader.start()
    time.sleep(0.3)
    send(host.url + "/score", 1, headers=host.auth(**{"x-request-id": "follow-me-7"}))
    reader.join(25)
    assert not reader.is_alive()
    assert any("follow-me-7" in line for line in seen)
