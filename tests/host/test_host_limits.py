"""The gateway under pressure: mirror copies, 408, 429, 424, and /metrics counting it all."""

from __future__ import annotations

import collections
import threading
import time
import urllib.request
from urllib.error import HTTPError

from hosttools import body, sample, scrape, send, wait_until


def test_mirror_10_percent_copies_and_a_broken_or_slow_mirror_fails_nothing(make_host, tmp_path):
    host = make_host()
    copies = tmp_path / "copies.txt"
    host.create("blue", count=2, concurrent=2)
    # (unconfined: green records into this test's /tmp folder; this test is about mirroring, not confinement)
    host.create("green", env={"RECORD_FILE": str(copies)}, concurrent=4, unconfined=True)
    host.client.set_traffic({"blue": 100}, {"green": 10})
    results = send(host.url + "/score", 1000, concurrency=4, headers=host.auth())
    assert collections.Counter(r[0] for r in results) == {200: 1000}
    assert {r[1]["who"] for r in results} == {"blue"}  # the live answer is always blue's
    m = scrape(host)
    sent = sample(m, "mlctl_mirror_sent_total", deployment="green")
    assert sent + sample(m, "mlctl_mirror_dropped_total", deployment="green") == 100
    # every copy sent reaches green's run() (the last ones may still be on their way)
    wait_until(lambda: copies.exists() and len(copies.read_text().splitlines()) == sent, 20, "mirror copies")
    n = len(copies.read_text().splitlines())
    assert 50 <= n <= 150, n
    # header-targeted requests are not mirrored
    send(host.url + "/score", 50, concurrency=2, headers=host.auth(**{"azureml-model-deployment": "blue"}))
    time.sleep(0.3)
    assert len(copies.read_text().splitlines()) == n
    # a broken mirror (every run() raises) and a slow one (0.3 s per copy) fail no live request
    for phase, env in (("broken", {"ALWAYS_FAIL": "1"}), ("slow", {"SLOW_S": "0.3"})):
        host.roll("green", digest=f"sha256:green-{phase}", env=env)
        before = scrape(host)
        results = send(host.url + "/score", 300, concurrency=4, headers=host.auth())
        assert collections.Counter(r[0] for r in results) == {200: 300}, phase
        time.sleep(0.5 if phase == "broken" else 1.0)  # the last copies finish
        after = scrape(host)

        def delta(name, after=after, before=before):
            return sample(after, name, deployment="green") - sample(before, name, deployment="green")

        assert delta("mlctl_mirror_sent_total") + delta("mlctl_mirror_dropped_total") == 30, phase
        if phase == "broken":
            assert delta("mlctl_mirror_failed_total") == delta("mlctl_mirror_sent_total") > 0


def test_sleeping_run_gets_408_and_the_next_request_succeeds(make_host):
    host = make_host()
    host.create("blue", timeout_ms=1000)
    host.client.set_traffic({"blue": 100})
    slow = send(host.url + "/score", 1, headers=host.auth(), payload=body(sleep=3))[0]
    assert slow[0] == 408 and "1000 ms" in slow[1]["message"]
    after = send(host.url + "/score", 3, headers=host.auth())
    assert [r[0] for r in after] == [200, 200, 200]


def test_burst_past_the_limit_gets_429_and_no_other_error(make_host):
    host = make_host()
    host.create("blue", count=2, env={"SLOW_S": "0.2"})  # limit 2 x 1 x 2 = 4 in flight
    host.client.set_traffic({"blue": 100})
    results = send(host.url + "/score", 60, concurrency=12, headers=host.auth())
    counts = collections.Counter(r[0] for r in results)
    assert set(counts) == {200, 429} and counts[429] >= 10, counts
    assert all("message" in r[1] for r in results if r[0] == 429)
    assert sample(scrape(host), "mlctl_rejected_requests_total", deployment="blue") == counts[429]


def test_each_instance_gets_at_most_max_concurrent_requests(make_host):
    host = make_host()
    # 2 instances x 2 slots: the 8 clients fit the limit (2 x 2 x 2 = 8), so 4 wait at the gateway
    host.create("blue", count=2, concurrent=2, env={"SLOW_S": "0.1"})
    host.client.set_traffic({"blue": 100})
    peaks, stop = collections.Counter(), threading.Event()

    def watch():  # the host's own count of requests on each instance, sampled while the load runs
        while not stop.is_set():
            d = host.client.status()["deployments"]["blue"]
            for i in d["instances"]:
                peaks[i["index"]] = max(peaks[i["index"]], i["in_flight"])
            peaks["deployment"] = max(peaks["deployment"], d["in_flight"])
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        results = send(host.url + "/score", 120, concurrency=8, headers=host.auth())
    finally:
        stop.set()
        watcher.join()
    assert collections.Counter(r[0] for r in results) == {200: 120}
    assert peaks[0] == peaks[1] == 2, peaks  # reached, never passed, on each instance
    assert 4 < peaks["deployment"] <= 8, peaks  # more admitted than the instances take: queued
    # what each instance's run() saw at once: never more than 2 requests overlap on one pid
    spans = collections.defaultdict(list)
    for _, answer, _ in results:
        spans[answer["pid"]].append((answer["started"], answer["ended"]))
    assert len(spans) == 2
    for pid, intervals in spans.items():
        events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
        overlap = peak = 0
        for _, step in events:
            overlap += step
            peak = max(peak, overlap)
        assert peak <= 2, (pid, peak)


def test_script_error_is_424_with_the_model_error_headers(make_host):
    host = make_host()
    host.create("blue")
    host.client.set_traffic({"blue": 100})
    status, answer, headers = send(host.url + "/score", 1, headers=host.auth(), payload=body(fail=True))[0]
    assert status == 424
    assert headers["ms-azureml-model-error-statuscode"] == "500"
    assert headers["ms-azureml-model-error-reason"] == "Internal Server Error"
    assert "message" in answer
    # bad input the script cannot parse is the instance's 400 -> 424 too
    status, _, headers = send(host.url + "/score", 1, headers=host.auth(), payload=b"not json")[0]
    assert status == 424 and headers["ms-azureml-model-error-statuscode"] in ("400", "500")


def test_metrics_counters_match_the_requests_sent(make_host):
    host = make_host()
    host.create("blue", count=2)
    host.create("green")
    host.client.set_traffic({"blue": 50, "green": 50})
    ok = send(host.url + "/score", 40, concurrency=2, headers=host.auth())
    failed = send(host.url + "/score", 6, headers=host.auth(), payload=body(fail=True))
    unauthorized = send(host.url + "/score", 5, headers={"Authorization": "Bearer wrong"})
    assert [r[0] for r in ok] == [200] * 40 and [r[0] for r in failed] == [424] * 6
    assert [r[0] for r in unauthorized] == [401] * 5
    m = scrape(host)
    assert sample(m, "mlctl_requests_total", deployment="blue", status="200") == 20
    assert sample(m, "mlctl_requests_total", deployment="green", status="200") == 20
    assert sample(m, "mlctl_requests_total", deployment="blue", status="424") == 3
    assert sample(m, "mlctl_requests_total", deployment="green", status="424") == 3
    assert sample(m, "mlctl_requests_total", deployment="", status="401") == 5
    assert sample(m, "mlctl_request_duration_seconds_count", deployment="blue") == 23
    assert sample(m, "mlctl_request_duration_seconds_bucket", deployment="blue", le="+Inf") == 23
    assert sample(m, "mlctl_requests_in_flight", deployment="blue") == 0
    assert sample(m, "mlctl_instances_ready", deployment="blue") == 2
    assert sample(m, "mlctl_instance_restarts_total", deployment="blue") == 0


def test_swagger_requests_count_against_the_429_limit(make_host):
    """Issue 16: swagger.json requests bypassed the in-flight count and the 429 limit."""
    host = make_host()
    host.create("blue", timeout_ms=30_000)  # limit 2 x 1 x 1 = 2
    host.client.set_traffic({"blue": 100})
    slow = [
        threading.Thread(
            target=send, args=(host.url + "/score", 1), kwargs={"headers": host.auth(), "payload": body(sleep=3)}
        )
        for _ in range(2)
    ]
    for t in slow:
        t.start()
    try:
        wait_until(lambda: host.client.status()["deployments"]["blue"]["in_flight"] == 2, 20, "two in flight")
        req = urllib.request.Request(host.url + "/swagger.json", headers=host.auth())
        try:
            urllib.request.urlopen(req, timeout=30)
            raise AssertionError("swagger.json answered past the limit")
        except HTTPError as e:
            assert e.code == 429, e.read()
    finally:
        for t in slow:
            t.join(60)
    with urllib.request.urlopen(
        urllib.request.Request(host.url + "/swagger.json", headers=host.auth()), timeout=30
    ) as r:
        assert r.status == 200
