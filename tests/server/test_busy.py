"""The inline policy on a busy machine (issue 30), on real server processes with uvloop and without: a call
the kernel preempts is judged by the time it held its thread, not its wall time; and once calls may run
inline again, a call waits for those still on worker threads instead of queueing behind them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from servertools import SCRIPTS, wait_for_file

from mlctl.runtime.server.inline import BLOCKING, FIRST_NEEDED
from mlctl.runtime.server.runqueue import RunQueue, held_ms

THRESHOLD_MS = 5
HOGS = 3
HOG = "import os, time\nos.sched_setaffinity(0, {%d})\nend = time.monotonic() + 300\nwhile time.monotonic() < end: pass"


@pytest.fixture
def hogs():
    """CPU-bound processes pinned to one CPU, each in a session (a scheduling group) of its own, so that a
    thread of the server there gets a small share of it; they end by themselves after 300 s and are stopped by
    PID at teardown. The number of that CPU."""
    cpu = max(os.sched_getaffinity(0))
    procs = [subprocess.Popen([sys.executable, "-c", HOG % cpu], start_new_session=True) for _ in range(HOGS)]
    yield cpu
    for proc in procs:
        proc.kill()
        proc.wait(30)


def _on_loop(server, body, slow: list = None) -> bool:
    """Did this call run on the loop's thread? (Its run() took at least the threshold of wall time: into `slow`.)"""
    answer = server.call("POST", "/score", {**body, "main": 1})
    assert answer.status == 200, answer.body
    if slow is not None and float(answer.headers["x-ms-run-fn-exec-ms"]) >= THRESHOLD_MS:
        slow.append(answer)
    return answer.json()["main"]


def test_preempted_calls_go_inline_and_stay_there(servers, loop_mode, hogs):
    """Each call holds its thread for under half the threshold, but the kernel preempts it: judged by their
    wall time, many would keep calls on the threads (or send them back)."""
    server = servers.start(SCRIPTS / "kitchen.py", "--inline-run-ms", str(THRESHOLD_MS), env=loop_mode)
    preempted, slow = {"preempted": {"cpu": hogs, "cpu_ms": THRESHOLD_MS * 0.3}}, []
    made = next((n for n in range(200) if _on_loop(server, preempted, slow)), None)
    assert made is not None and made >= FIRST_NEEDED  # the first calls ran on worker threads, then inline
    assert all(_on_loop(server, preempted, slow) for _ in range(30))
    assert len(slow) >= 3  # (the calls were preempted: their wall time was over the threshold)
    assert _on_loop(server, {"sleep": BLOCKING * THRESHOLD_MS / 1000})  # a call that sleeps counts in full:
    assert not _on_loop(server, {})  # it sent calls back to the threads


def test_a_call_waits_for_the_threads_calls_and_then_runs_inline(servers, loop_mode, tmp_path):
    server = servers.start(
        SCRIPTS / "kitchen.py", "--inline-run-ms", "50", "--max-concurrent", "2", "--max-queue", "0", env=loop_mode
    )
    started, release = tmp_path / "started", tmp_path / "release"
    answers: dict = {}

    def call(name: str, body: dict) -> threading.Thread:
        t = threading.Thread(target=lambda: answers.setdefault(name, server.call("POST", "/score", body)))
        t.start()
        return t

    blocked = call("blocked", {"block": {"started": str(started), "release": str(release)}, "main": 1})
    wait_for_file(started)  # on a worker thread: nothing ran inline yet
    assert not any(_on_loop(server, {}) for _ in range(FIRST_NEEDED))  # on the other worker: a streak
    waiting = call("waiting", {"main": 1})  # calls may go inline, but one is on a thread: it waits
    waiting.join(0.5)
    answered_before_release = "waiting" in answers
    assert server.call("POST", "/score", {"main": 1}).status == 429  # the waiting call counts toward the bound
    release.write_text("go")
    blocked.join(30)
    waiting.join(30)
    assert answers["blocked"].json() == {"main": False}
    assert answers["waiting"].json() == {"main": True}  # after the blocked call, on the loop's thread
    assert not answered_before_release
    assert _on_loop(server, {})


def test_the_wait_for_a_cpu_reads_as_zero_where_it_cannot_be_read(tmp_path):
    """Off Linux (or without /proc) calls are judged by their wall time, as before."""
    queue = RunQueue(str(tmp_path / "no-such-file"))
    assert queue.waited_ms() == 0.0 and held_ms(7.5, queue.waited_ms() - queue.waited_ms()) == 7.5
    queue.close()
    (tmp_path / "schedstat").write_text("garbage\n")
    assert RunQueue(str(tmp_path / "schedstat")).waited_ms() == 0.0
    assert held_ms(2.0, -1.0) == 2.0  # a reading that went back: the wall time stands
    assert held_ms(2.0, 3.0) == 0.0  # two threads waited at once (a call and the loop's thread)
    assert held_ms(2.0, 0.5) == 1.5
