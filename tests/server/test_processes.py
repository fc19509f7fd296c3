"""WORKER_COUNT: one parent process, N worker processes accepting on its socket, restarted when they die,
drained together on SIGTERM; answers as one process does (with uvloop and without)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from servertools import SCRIPTS, Server, launch, refuses_connections, wait_for_file

ATTEMPTS = 400  # fresh connections tried before concluding the kernel never hands one to another worker


def children(pid: int) -> list[int]:
    """The live child processes of pid (Linux /proc)."""
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _two(loop_mode: dict, **extra: str) -> dict:
    return {**loop_mode, "WORKER_COUNT": "2", **extra}


def _pids_answering(server, attempts: int = ATTEMPTS, want: int = 2) -> set[int]:
    """Worker pids seen answering fresh connections, until `want` distinct ones or `attempts` run out."""
    seen: set[int] = set()
    for _ in range(attempts):
        seen.add(server.call("POST", "/score", {"pid": 1}).json()["pid"])
        if len(seen) >= want:
            break
    return seen


CASES = [
    ("POST", "/score", {"data": [[0.03, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.02]]}, {}),
    ("POST", "/score", {"fail": "x"}, {}),
    ("POST", "/score", b"{not json", {"Content-Type": "application/json"}),
    ("GET", "/", None, {}),
    ("GET", "/swagger.json?version=3", None, {}),
    ("GET", "/nope", None, {}),
    ("DELETE", "/score", None, {}),
    ("POST", "/score", {"ok": 1}, {"x-request-id": "r" * 101}),
    ("POST", "/score", {"echo": 1}, {"x-ms-client-request-id": "client-7", "Host": "scoring"}),
]
VARYING = {"date", "x-request-id", "x-ms-request-id", "x-ms-run-fn-exec-ms"}


def _answers(server) -> list:
    out = []
    for method, path, body, headers in CASES:
        a = server.call(method, path, body, headers)
        out.append((a.status, a.body, {k: v for k, v in a.headers.items() if k not in VARYING}))
    return out


def test_worker_count_1_and_2_answer_alike(servers, loop_mode):
    one = servers.start(SCRIPTS / "kitchen.py", env={**loop_mode, "WORKER_COUNT": "1"})
    two = servers.start(SCRIPTS / "kitchen.py", env=_two(loop_mode))
    assert f"uvloop {'on' if loop_mode['MLCTL_SERVER_LOOP'] == 'uvloop' else 'off'}" in two.log()
    assert _answers(one) == _answers(two)
    assert len(children(two.proc.pid)) == 2 and children(one.proc.pid) == []
    workers = set(children(two.proc.pid))
    assert _pids_answering(two) == workers  # both workers accept on the one socket
    ids = {two.call("POST", "/score", {"ok": 1}).headers["x-request-id"] for _ in range(200)}
    assert len(ids) == 200  # forked workers do not repeat each other's request ids
    assert two.log().count("User's init has completed successfully") == 2  # init() in each worker


def test_a_killed_worker_is_restarted_and_the_instance_keeps_answering(servers, loop_mode):
    server = servers.start(SCRIPTS / "kitchen.py", env=_two(loop_mode))
    victim, survivor = children(server.proc.pid)
    os.kill(victim, signal.SIGKILL)
    assert server.call("POST", "/score", {"ok": 1}).status == 200  # the other worker answers meanwhile
    assert server.wait_log(
        rf"worker \d \(pid {victim}\) exited with code 137 after [\d.]+ s; restarting it in 0.1 s", deadline_s=60
    )
    assert server.wait_log(r"worker \d \(pid \d+\) restarted and serving", deadline_s=120)
    now = children(server.proc.pid)
    assert len(now) == 2 and survivor in now and victim not in now
    assert _pids_answering(server) == set(now)
    assert server.stop(signal.SIGTERM) == 0


def test_a_worker_that_keeps_dying_is_restarted_with_a_growing_backoff(servers, loop_mode):
    """The same worker killed again as soon as it serves again waits twice as long each time (it never served
    the 10 s that reset the backoff)."""
    server = servers.start(SCRIPTS / "kitchen.py", env=_two(loop_mode))
    pid = children(server.proc.pid)[0]
    for n in range(1, 4):
        os.kill(pid, signal.SIGKILL)
        assert server.wait_log(rf"\(pid {pid}\) exited with code 137", deadline_s=60)
        assert server.wait_log(rf"(?s)\(pid {pid}\) exited.*restarted and serving", deadline_s=120)
        slot, pid = re.findall(r"worker (\d) \(pid (\d+)\) restarted and serving", server.log())[-1]
        pid = int(pid)
    delays = [float(x) for x in re.findall(r"restarting it in ([\d.]+) s", server.log())]
    assert delays == [0.1, 0.2, 0.4]
    assert server.call("POST", "/score", {"ok": 1}).status == 200
    now = children(server.proc.pid)  # not the largest pid: pids wrap around on a busy machine (CI saw 32685, 736)
    assert len(now) == 2 and pid in now


def _occupy_every_worker(server, tmp_path: Path, release: Path, workers: set[int]):
    """One blocked run() in each worker (run with --max-queue 0: a request reaching a busy worker is 429 at
    once); returns the request threads and their answers by number."""
    spec = {"block": {"started": str(tmp_path / "started-{pid}"), "release": str(release)}}
    results: dict = {}
    threads = []

    def started() -> set[int]:
        return {int(p.name.split("-", 1)[1]) for p in tmp_path.glob("started-*")}

    for i in range(ATTEMPTS):
        if started() == workers:
            break
        before = len(started())
        t = threading.Thread(
            target=lambda i=i: results.__setitem__(i, server.call("POST", "/score", spec)), daemon=True
        )
        t.start()
        threads.append(t)
        while i not in results and len(started()) == before and t.is_alive():
            time.sleep(0.005)
    assert started() == workers
    return threads, results


def test_sigterm_drains_the_in_flight_requests_of_every_worker(servers, tmp_path, loop_mode):
    server = servers.start(SCRIPTS / "kitchen.py", "--max-concurrent", "1", "--max-queue", "0", env=_two(loop_mode))
    workers = set(children(server.proc.pid))
    release = tmp_path / "release"
    threads, results = _occupy_every_worker(server, tmp_path, release, workers)
    for pid in workers:
        wait_for_file(tmp_path / f"started-{pid}")
    os.killpg(server.proc.pid, signal.SIGTERM)  # as the endpoint host stops an instance
    assert server.wait_log(r"\[%d\] azmlinfsrv - Shutting down" % server.proc.pid)
    assert refuses_connections(server.host, server.port)  # the listener closes: no new connections
    assert server.proc.poll() is None and set(children(server.proc.pid)) == workers  # still finishing
    release.write_text("go")
    for t in threads:
        t.join(30)
    ok = [r for r in results.values() if r.status == 200]
    assert len(ok) == 2 and all(r.json() == {"ok": True} for r in ok)
    assert {r.status for r in results.values()} <= {200, 429}
    assert server.proc.wait(30) == 0
    assert server.log().count("Stopped.") == 3  # each worker, then the parent


def test_second_sigterm_stops_every_worker_at_once_with_exit_1(servers, tmp_path, loop_mode):
    server = servers.start(SCRIPTS / "kitchen.py", env=_two(loop_mode))
    started, release = tmp_path / "started", tmp_path / "release"
    outcome: list = []

    def cut_off() -> None:
        try:
            outcome.append(server.call("POST", "/score", {"block": {"started": str(started), "release": str(release)}}))
        except OSError as exc:  # http.client.RemoteDisconnected is one
            outcome.append(exc)

    t = threading.Thread(target=cut_off, daemon=True)
    t.start()
    wait_for_file(started)
    workers = children(server.proc.pid)
    os.kill(server.proc.pid, signal.SIGTERM)  # the parent alone: it tells the workers
    assert server.wait_log(r"\[%d\] azmlinfsrv - Shutting down" % server.proc.pid)
    os.kill(server.proc.pid, signal.SIGTERM)
    assert server.proc.wait(30) == 1
    assert "Second stop signal" in server.log()
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    t.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], OSError)  # the request in flight was cut off


def test_timeout_and_429_with_two_workers(servers, tmp_path, loop_mode, diabetes):
    server = servers.start(
        SCRIPTS / "kitchen.py",
        "--request-timeout-ms",
        "1000",
        "--max-concurrent",
        "1",
        "--max-queue",
        "0",
        env=_two(loop_mode),
    )
    for _ in range(2):  # whichever worker answers: the timeout answer, then a fresh thread serves
        a = server.call("POST", "/score", {"sleep": 4})
        assert a.status == 500 and a.json() == {"message": "Scoring timeout after 1000 ms"}
        assert a.headers["x-ms-run-function-failed"] == "True"
    assert server.call("POST", "/score", {"data": diabetes[1]}).json() == pytest.approx(
        diabetes[0].predict(diabetes[1]).tolist()
    )
    release = tmp_path / "release"
    threads, results = _occupy_every_worker(server, tmp_path, release, set(children(server.proc.pid)))
    assert server.call("POST", "/score", {"ok": 1}).status == 429  # both workers busy, no queue
    assert server.call("GET", "/").status == 200  # probes answer while run() is busy in both workers
    release.write_text("go")
    for t in threads:
        t.join(30)
    statuses = [r.status for r in results.values()]
    assert set(statuses) <= {200, 429} and statuses.count(200) == 2


@pytest.mark.parametrize(
    "value, message",
    [
        ("0", "got '0'"),
        ("-1", "got '-1'"),
        ("abc", "got 'abc'"),
        ("100000", "got '100000'"),
        ("2.5", "got '2.5'"),
    ],
)
def test_bad_worker_count_exits_2_with_a_clear_message(tmp_path, value, message):
    proc = launch(
        tmp_path / "log", ["--entry-script", str(SCRIPTS / "kitchen.py"), "--port", "0"], env={"WORKER_COUNT": value}
    )
    assert proc.wait(60) == 2
    log = (tmp_path / "log").read_text()
    assert (
        "error: environment variable WORKER_COUNT must be a whole number of worker processes from 1 to 64, " + message
    ) in log
    assert "Traceback" not in log


def test_init_failure_in_a_worker_exits_3_before_anything_listens(servers, tmp_path, models):
    script = tmp_path / "score.py"
    script.write_text("def init():\n    raise ValueError('no model 5521')\n\ndef run(raw_data):\n    return 1\n")
    server = servers.start(script, env={"WORKER_COUNT": "2"}, expect_ready=False)
    assert server.proc.wait(60) == 3
    assert "ValueError: no model 5521" in server.log() and "listening on" not in server.log()
    assert children(server.proc.pid) == []


def test_nothing_answers_until_every_worker_has_run_init(servers, tmp_path):
    """The parent listens only once both workers' init() returned (GET / then means init() is done)."""
    gate = tmp_path / "gate"
    script = tmp_path / "score.py"
    script.write_text(
        f"import os, time\n\ndef init():\n    open({str(tmp_path)!r} + '/init-%d' % os.getpid(), 'w')\n"
        f"    while not os.path.exists({str(gate)!r}):\n        time.sleep(0.01)\n\n"
        f"def run(raw_data):\n    return 1\n"
    )
    sock = tmp_path / "s.sock"
    proc = launch(
        tmp_path / "log", ["--entry-script", str(script), "--unix-socket", str(sock)], env={"WORKER_COUNT": "2"}
    )
    server = Server(proc, tmp_path / "log")
    servers.started.append(server)
    end = time.monotonic() + 60
    while len(list(tmp_path.glob("init-*"))) < 2 and time.monotonic() < end:
        time.sleep(0.01)
    assert len(list(tmp_path.glob("init-*"))) == 2  # both workers are inside init()
    probe = socket.socket(socket.AF_UNIX)
    with pytest.raises(ConnectionRefusedError):  # bound, not listening
        probe.connect(str(sock))
    probe.close()
    gate.write_text("go")
    assert server.wait_log("listening on unix:", deadline_s=60)
    out = subprocess.run(
        ["curl", "-s", "--unix-socket", str(sock), "http://x/"], capture_output=True, text=True, timeout=30
    )
    assert out.stdout == "Healthy"
    assert server.stop(signal.SIGTERM) == 0 and not sock.exists()


def test_a_worker_exits_when_its_parent_is_killed(servers, loop_mode):
    server = servers.start(SCRIPTS / "kitchen.py", env=_two(loop_mode))
    workers = children(server.proc.pid)
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(30)
    end = time.monotonic() + 30
    while (
        any(
            Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text() for pid in workers
        )
        and time.monotonic() < end
    ):
        time.sleep(0.02)
    assert not any(
        Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text() for pid in workers
    )


if sys.platform != "linux":  # pragma: no cover
    pytestmark = pytest.mark.skip("reads /proc")
