"""Concurrency limit and bounded queue (429), scoring timeout, body size (413), CORS."""

from __future__ import annotations

import http.client
import os
import json
import threading
import time

from servertools import SCRIPTS, wait_for_file


def _in_thread(fn, results, key):
    t = threading.Thread(target=lambda: results.__setitem__(key, fn()), daemon=True)
    t.start()
    return t


def test_queue_bound_gives_429_and_health_stays_responsive(servers, tmp_path):
    server = servers.start(SCRIPTS / "kitchen.py", "--max-concurrent", "1", "--max-queue", "1")
    started, release = tmp_path / "started", tmp_path / "release"
    results = {}
    blocker = _in_thread(
        lambda: server.call("POST", "/score", {"block": {"started": str(started), "release": str(release)}}),
        results,
        "a",
    )
    wait_for_file(started)
    assert server.call("GET", "/").status == 200  # run() is busy; the event loop is not
    b = _in_thread(lambda: server.call("POST", "/score", {"ok": 1}), results, "b")
    c = _in_thread(lambda: server.call("POST", "/score", {"ok": 1}), results, "c")
    end = time.monotonic() + 20
    while "b" not in results and "c" not in results and time.monotonic() < end:
        time.sleep(0.01)
    release.write_text("go")
    for t in (blocker, b, c):
        t.join(30)
    assert results["a"].status == 200
    statuses = sorted([results["b"].status, results["c"].status])
    assert statuses == [200, 429]
    rejected = results["b"] if results["b"].status == 429 else results["c"]
    assert "message" in rejected.json()
    assert server.call("POST", "/score", {"ok": 1}).status == 200


def test_max_concurrent_runs_calls_in_parallel(servers, tmp_path):
    server = servers.start(SCRIPTS / "kitchen.py", "--max-concurrent", "2", "--max-queue", "0")
    s1, s2, release = tmp_path / "s1", tmp_path / "s2", tmp_path / "release"
    results = {}
    t1 = _in_thread(
        lambda: server.call("POST", "/score", {"block": {"started": str(s1), "release": str(release)}}), results, 1
    )
    t2 = _in_thread(
        lambda: server.call("POST", "/score", {"block": {"started": str(s2), "release": str(release)}}), results, 2
    )
    wait_for_file(s1)
    wait_for_file(s2)  # both run() calls are inside run() at the same time
    assert server.call("POST", "/score", {"ok": 1}).status == 429
    release.write_text("go")
    t1.join(30)
    t2.join(30)
    assert results[1].status == results[2].status == 200


def test_the_worker_that_went_idle_last_takes_the_next_call(servers, tmp_path):
    """Calls one after another all run on one warm thread, not on each of the 8 workers in turn; while
    that thread is busy, the next call goes to another worker."""
    server = servers.start(SCRIPTS / "kitchen.py", "--max-concurrent", "8", "--max-queue", "0", "--inline-run-ms", "0")
    threads = {server.call("POST", "/score", {"thread": 1}).json()["thread"] for _ in range(40)}
    assert len(threads) == 1
    started, release = tmp_path / "started", tmp_path / "release"
    results = {}
    blocker = _in_thread(
        lambda: server.call("POST", "/score", {"block": {"started": str(started), "release": str(release)}}), results, 1
    )
    wait_for_file(started)
    other = server.call("POST", "/score", {"thread": 1}).json()["thread"]
    release.write_text("go")
    blocker.join(30)
    assert results[1].status == 200 and other not in threads


def test_timeout_answers_500_and_server_keeps_serving(servers, diabetes):
    server = servers.start(SCRIPTS / "kitchen.py", "--request-timeout-ms", "300")
    a = server.call("POST", "/score", {"sleep": 3})
    assert a.status == 500
    assert a.json() == {"message": "Scoring timeout after 300 ms"}
    assert a.headers["x-ms-run-function-failed"] == "True"
    b = server.call("POST", "/score", {"data": diabetes[1]})  # a fresh worker took the abandoned one's place
    assert b.status == 200
    assert server.wait_log("did not finish within 300 ms")


def test_runaway_python_loop_is_interrupted_after_timeout(servers, diabetes):
    server = servers.start(SCRIPTS / "kitchen.py", "--request-timeout-ms", "300")
    a = server.call("POST", "/score", {"spin": 60})
    assert a.status == 500 and a.json() == {"message": "Scoring timeout after 300 ms"}
    assert server.wait_log(r"abandoned run\(\) call ended after \d+ ms \(interrupted\)", deadline_s=20)
    assert server.call("POST", "/score", {"data": diabetes[1]}).status == 200


def test_scoring_timeout_env_var(servers):
    server = servers.start(SCRIPTS / "kitchen.py", env={"SCORING_TIMEOUT_MS": "250"})
    assert server.call("POST", "/score", {"sleep": 2}).json() == {"message": "Scoring timeout after 250 ms"}


def test_oversized_body_is_413_and_server_survives(servers):
    server = servers.start(SCRIPTS / "kitchen.py", "--max-body-bytes", "1000")
    a = server.call("POST", "/score", b'{"data": "' + b"x" * 5000 + b'"}')
    assert a.status == 413 and "limit" in a.json()["message"]
    assert server.call("POST", "/score", {"ok": 1}).status == 200
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)  # chunked: no Content-Length
    conn.request(
        "POST",
        "/score",
        body=iter([b"x" * 800, b"y" * 800]),
        encode_chunked=True,
        headers={"Transfer-Encoding": "chunked"},
    )
    resp = conn.getresponse()
    assert resp.status == 413 and "limit" in json.loads(resp.read())["message"]
    conn.close()
    assert server.call("POST", "/score", {"ok": 1}).status == 200


def test_huge_body_default_limit_is_fine_below_100mib(kitchen):
    body = b'{"pad": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    assert kitchen.call("POST", "/score", body).json() == {"ok": True}


def test_cors_headers_when_origins_configured(servers):
    server = servers.start(SCRIPTS / "kitchen.py", "--cors-origins", "http://a.example, http://b.example")
    ok = server.call("POST", "/score", {"ok": 1}, headers={"Origin": "http://b.example"})
    assert ok.headers["access-control-allow-origin"] == "http://b.example"
    pre = server.call(
        "OPTIONS",
        "/score",
        headers={
            "Origin": "http://a.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert pre.status == 200
    assert pre.headers["access-control-allow-origin"] == "http://a.example"
    assert "POST" in pre.headers["access-control-allow-methods"]
    assert pre.headers["access-control-allow-headers"] == "content-type"
    other = server.call("POST", "/score", {"ok": 1}, headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_no_cors_headers_by_default(kitchen):
    a = kitchen.call("POST", "/score", {"ok": 1}, headers={"Origin": "http://a.example"})
    assert "access-control-allow-origin" not in a.headers


def test_default_body_limit_is_100_mib(kitchen):
    """A Content-Length over the default 100 MiB is refused with 413 before the body is read."""
    conn = http.client.HTTPConnection(kitchen.host, kitchen.port, timeout=30)
    conn.putrequest("POST", "/score")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(100 * 1024 * 1024 + 1))
    conn.endheaders(b'{"ok": 1}')  # only a few bytes follow: the server answers from the header alone
    resp = conn.getresponse()
    assert resp.status == 413
    assert json.loads(resp.read()) == {"message": "Request body is 104857601 bytes; the limit is 104857600"}
    conn.close()
    assert kitchen.call("POST", "/score", {"ok": 1}).json() == {"ok": True}


def test_timeout_is_answered_while_run_is_still_stuck(servers, tmp_path, diabetes):
    """The 500 comes from the event loop while run() is still inside (it would block 30 s);
    health and a queued request are served meanwhile by the fresh worker."""
    server = servers.start(SCRIPTS / "kitchen.py", "--request-timeout-ms", "500")
    started, never = tmp_path / "started", tmp_path / "never-released"
    a = server.call("POST", "/score", {"block": {"started": str(started), "release": str(never)}}, timeout=15)
    assert started.exists() and not never.exists()
    assert (a.status, a.json()) == (500, {"message": "Scoring timeout after 500 ms"})
    assert server.call("GET", "/", timeout=15).status == 200
    assert server.call("POST", "/score", {"data": diabetes[1]}, timeout=15).status == 200
    assert server.wait_log(r"abandoned run\(\) call ended after \d+ ms \(interrupted\)", deadline_s=40)


def test_abandoned_run_calls_are_capped_then_the_server_reports_itself_unhealthy(servers, diabetes):
    """Issue 16, item 9: run() calls stuck in C past the timeout each kept a thread, without limit."""
    server = servers.start(SCRIPTS / "kitchen.py", "--request-timeout-ms", "200", env={"MLCTL_MAX_ABANDONED_RUNS": "2"})
    rows = diabetes[1]
    assert server.call("GET", "/").status == 200
    threads = len(os.listdir(f"/proc/{server.proc.pid}/task"))
    for n in range(2):  # time.sleep is a C call: the interrupt cannot stop it, the thread stays
        a = server.call("POST", "/score", {"data": rows, "sleep": 60})
        assert a.status == 500 and a.json() == {"message": "Scoring timeout after 200 ms"}
    health = server.call("GET", "/")
    assert health.status == 503, health
    assert "2 run() calls past the scoring timeout are still running" in health.json()["message"]
    a = server.call("POST", "/score", {"data": rows})  # no fresh thread: refused at once, not queued
    assert a.status == 503 and a.json()["message"].startswith("Unhealthy: ")
    assert len(os.listdir(f"/proc/{server.proc.pid}/task")) <= threads + 1  # the two stuck, no replacement
    assert server.wait_log("Unhealthy: 2 run\\(\\) calls")
