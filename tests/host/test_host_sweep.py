"""A starting host sweeps the run folder: what SIGKILLed hosts left goes, live hosts and strangers stay;
a second host of a running endpoint exits, and start_host hands its caller the one that runs."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mlctl.runtime.host.runfiles import TWIN_EXIT, endpoint_tag, host_log, is_alive, read_run_record, run_file
from mlctl.runtime.host.client import PACKAGE_PARENT, start_host

from hosttools import send, wait_until


@pytest.fixture(autouse=True)
def run_dir(monkeypatch) -> Path:
    """A private run folder (0700, short path) for the hosts of one test, never the real /tmp/mlctl-UID."""
    path = Path(tempfile.mkdtemp(prefix="mlsw-"))
    monkeypatch.setenv("MLCTL_RUN_FOLDER", str(path))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def dead_socket(path: Path) -> None:
    """A socket file nobody listens on (what a killed process leaves)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_killed_hosts_folder_and_admin_socket_are_swept_by_the_next_start(make_host, tmp_path, run_dir):
    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 4)  # its admin socket lives in the run folder too
    dead = make_host("dead", data_dir=deep)
    dead.create("blue")
    tag = endpoint_tag(deep, "dead")
    socket_path = dead.client.status()["deployments"]["blue"]["instances"][0]["socket"]
    assert dead.info.admin_socket == str(run_dir / f"{tag}-admin.sock")
    # (as root the instance's socket is in a folder of its own, which the sweep removes with it)
    assert names(run_dir / tag) == [".owner", Path(socket_path).relative_to(run_dir / tag).parts[0]]
    os.kill(dead.info.pid, signal.SIGKILL)
    wait_until(lambda: not any(is_alive(p) for p in dead.pids), 10, "the host and its instance gone")
    assert names(run_dir) == [tag, f"{tag}-admin.sock"]  # a killed host cleans nothing up
    other = make_host("other")
    assert names(run_dir) == [endpoint_tag(other.data_dir, "other")]
    assert "swept the sockets of 1 endpoint hosts that are gone" in host_log(other.data_dir, "other").read_text()


def test_live_hosts_keep_their_folders_while_others_start_at_once(make_host, tmp_path, run_dir):
    live = make_host("live")
    live.create("blue")
    live.client.set_traffic({"blue": 100})
    folder = run_dir / endpoint_tag(live.data_dir, "live")
    before = names(folder)
    with ThreadPoolExecutor(3) as pool:  # three hosts of other endpoints and data folders sweep at the same moment
        started = list(pool.map(lambda i: make_host(f"new{i}", data_dir=tmp_path / f"data{i}"), range(3)))
    assert names(folder) == before
    assert all((run_dir / endpoint_tag(h.data_dir, h.name)).is_dir() for h in started)
    assert [r[0] for r in send(live.url + "/score", 3, headers=live.auth())] == [200] * 3
    for host in started:
        assert "swept" not in host_log(host.data_dir, host.name).read_text()


def test_folders_without_a_lock_file_go_only_when_old_and_silent(make_host, run_dir):
    old = time.time() - 3600
    for name in ("aaaaaaaaaa", "bbbbbbbbbb", "cccccccccc"):  # as an older mlctl left them: no .owner
        (run_dir / name).mkdir(mode=0o700)
        dead_socket(run_dir / name / "blue-g1-0.sock")
    listener = socket.socket(socket.AF_UNIX)  # an older host still alive: its instance listens
    listener.bind(str(run_dir / "cccccccccc" / "green-g1-0.sock"))
    listener.listen(1)
    try:
        os.utime(run_dir / "aaaaaaaaaa", (old, old))
        os.utime(run_dir / "cccccccccc", (old, old))
        host = make_host("ep")
        own = endpoint_tag(host.data_dir, "ep")
        assert names(run_dir) == sorted(["bbbbbbbbbb", "cccccccccc", own])  # recent or listening: spared
        assert names(run_dir / "cccccccccc") == ["blue-g1-0.sock", "green-g1-0.sock"]
    finally:
        listener.close()


def test_own_leftovers_go_and_strangers_in_the_run_folder_stay(make_host, tmp_path, run_dir):
    data = tmp_path / "data"
    own = run_dir / endpoint_tag(data, "ep")  # this endpoint's folder from an older mlctl, its host killed
    own.mkdir(mode=0o700)
    dead_socket(own / "blue-g3-0.sock")
    elsewhere = tmp_path / "elsewhere"  # old, lockless, silent: would be swept if a symlink were followed
    elsewhere.mkdir()
    dead_socket(elsewhere / "x.sock")
    old = time.time() - 3600
    os.utime(elsewhere, (old, old))
    (run_dir / "0123456789").symlink_to(elsewhere)
    dead_socket(tmp_path / "admin.sock")
    (run_dir / "0123456780-admin.sock").symlink_to(tmp_path / "admin.sock")
    (run_dir / "fedcba9876").write_text("a file named like a tag")
    for name in ("keep-me", "ABCDEF0123", "abcdef01234"):  # not tags: not lower-case hex, or 11 chars
        (run_dir / name).mkdir()
        dead_socket(run_dir / name / "a.sock")
        os.utime(run_dir / name, (old, old))
    strangers = sorted(set(names(run_dir)) - {own.name})
    host = make_host("ep", data_dir=data)
    assert names(own) == [".owner"]
    assert "removed 1 sockets left in" in host_log(data, "ep").read_text()
    assert sorted(set(names(run_dir)) - {own.name}) == strangers
    assert names(elsewhere) == ["x.sock"] and (tmp_path / "admin.sock").exists()
    host.client.shutdown()
    assert names(run_dir) == strangers  # a clean shutdown removes its folder, lock file included


def _host_processes(data_dir: Path) -> list[int]:
    """Pids of live endpoint hosts whose command line names `data_dir`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"mlctl.runtime.host" in argv and os.fsencode(data_dir) in argv and is_alive(int(entry.name)):
                pids.append(int(entry.name))
    return pids


def test_a_second_host_of_a_running_endpoint_exits_and_the_first_keeps_serving(make_host, run_dir):
    first = make_host("twin")
    first.create("blue")
    first.client.set_traffic({"blue": 100})
    folder = run_dir / endpoint_tag(first.data_dir, "twin")
    before = names(folder)
    env = dict(os.environ, PYTHONPATH=PACKAGE_PARENT)
    second = subprocess.run(
        [sys.executable, "-m", "mlctl.runtime.host", "--data-dir", str(first.data_dir), "--endpoint", "twin"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == TWIN_EXIT
    assert "another host of endpoint 'twin' is running" in second.stderr
    assert names(folder) == before  # its sockets and lock untouched
    assert read_run_record(first.data_dir, "twin")["pid"] == first.info.pid
    assert [r[0] for r in send(first.url + "/score", 3, headers=first.auth())] == [200] * 3


def test_start_host_racing_a_twin_returns_the_host_that_runs(make_host, tmp_path):
    """start_host found no host, started one, and lost the race for the socket folder: the caller gets
    the host that won (made deterministic by hiding the winner's run record until the loser has exited)."""
    first = make_host("twin")
    record = run_file(first.data_dir, "twin")
    hidden = record.with_suffix(".hidden")
    record.rename(hidden)
    log = host_log(first.data_dir, "twin")
    with ThreadPoolExecutor(1) as pool:
        started = pool.submit(start_host, first.data_dir, "twin", auth_mode="key", port=None)
        wait_until(lambda: "another host of endpoint 'twin' is running" in log.read_text(), 30, "the twin's exit")
        time.sleep(0.2)  # start_host polls on while no host answers
        assert not started.done()
        hidden.rename(record)
        assert started.result(timeout=30) == first.info
    assert _host_processes(first.data_dir) == [first.info.pid]
