"""A flood of idle connections (issue 16, item 1): the host raises its soft file limit to the hard one,
answers connections past its limit 503 and closes them (no accept() failing for want of descriptors),
logs a few lines, not thousands, survives a log rotation that cannot open its file, and serves on."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import textwrap
import urllib.error

import pytest

from mlctl.runtime.host.client import PACKAGE_PARENT

from hosttools import sample, scrape, send, wait_until


def _connections(host) -> float:
    """The host's open public connections; while the flood's are still being closed the scrape itself
    may be one too many (503 at the connection limit): that reads as "still full"."""
    try:
        return sample(scrape(host), "mlctl_gateway_connections")
    except urllib.error.HTTPError as e:
        if e.code != 503:
            raise
        return float("inf")


FILE_LIMIT = 400  # the host's hard (and soft) limit in these tests


def start_limited(host_factory, tmp_path, hard: int):
    """A host started by a child process whose file limit is `hard` (soft 64); then found by make_host."""
    script = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, {hard}))
        from mlctl.runtime.host.client import start_host
        start_host(sys.argv[1], "ep")
    """)
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "data")],
        check=True,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=PACKAGE_PARENT),
    )
    return host_factory()


def limits(pid: int) -> tuple[int, int]:
    for line in open(f"/proc/{pid}/limits"):
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no file limit in /proc")


@pytest.fixture
def many_files():
    """This test process may open more files than the host (its soft limit raised, put back after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 3 * FILE_LIMIT:
        pytest.skip(f"the hard file limit {hard} is too low for this test")
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096) if hard != resource.RLIM_INFINITY else 4096, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_idle_connections_past_the_file_limit_neither_crash_nor_flood_the_host(
    make_host, tmp_path, loop_mode, monkeypatch, many_files
):
    monkeypatch.setenv("MLCTL_LOG_MAX_BYTES", "4096")  # rotations happen during the flood
    host = start_limited(make_host, tmp_path, FILE_LIMIT)
    host.assert_loop(loop_mode)
    assert limits(host.info.pid) == (FILE_LIMIT, FILE_LIMIT)  # the soft limit raised to the hard one
    host.create("blue")
    host.client.set_traffic({"blue": 100})
    flood = []
    try:
        for _ in range(FILE_LIMIT + 100):  # more idle connections than the host has descriptors
            flood.append(socket.create_connection(("127.0.0.1", host.info.port), timeout=10))
        refused = 0
        for sock in flood:  # those past the connection limit got a 503 and were closed
            sock.setblocking(False)
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                continue
            assert data.startswith(b"HTTP/1.1 503 "), data[:200]
            refused += 1
        assert refused >= 100
    finally:
        for sock in flood:
            sock.close()
    wait_until(lambda: _connections(host) <= 1, 20, "the flood's connections closed")
    assert sample(scrape(host), "mlctl_gateway_connections_refused_total") >= refused
    assert send(host.url + "/score", 3, headers=host.auth())[0][0] == 200
    assert os.kill(host.info.pid, 0) is None  # still the same host
    text = "".join(p.read_text(errors="replace") for p in (host.data_dir / "logs" / "ep").glob("host.log*"))
    assert text.count("accept") < 50, text[-3000:]


def test_a_log_rotation_that_fails_does_not_stop_the_host(make_host, monkeypatch):
    monkeypatch.setenv("MLCTL_LOG_MAX_BYTES", "4096")
    host = make_host()
    blockers = [host.data_dir / "logs" / "ep" / f"host.log.{n}" for n in (1, 2, 3)]
    for blocker in blockers:  # non-empty folders where the backups go: the renames onto them fail
        blocker.mkdir(parents=True)
        (blocker / "keep").write_text("x")
    host.create("blue")
    host.client.set_traffic({"blue": 100})
    send(host.url + "/score", 60, headers=host.auth())  # access lines: host.log over 4096 bytes
    wait_until(lambda: "cannot rotate" in host.log(), 20, "a rotation attempted and failed")
    assert send(host.url + "/score", 3, headers=host.auth())[0][0] == 200
    for blocker in blockers:
        blocker.joinpath("keep").unlink()
        blocker.rmdir()
    wait_until(lambda: (host.data_dir / "logs" / "ep" / "host.log.1").is_file(), 20, "the rotation done later")
    assert send(host.url + "/score", 3, headers=host.auth())[0][0] == 200
