"""Poison requests (issue 16, item 4): a run() that kills its process is answered 502 and not retried on
another instance; only that instance restarts, and the other clients' requests are all answered."""

from __future__ import annotations

import collections

from hosttools import body, sample, scrape, send, wait_until
from test_host_auth import post
from test_host_supervision import instances


def test_a_request_that_kills_its_instance_is_502_not_retried_and_only_that_instance_restarts(make_host):
    host = make_host()
    host.create("blue", count=2, env={"SLOW_S": "0.005"})
    host.client.set_traffic({"blue": 100})
    poisoned = []

    def poison():
        for n in range(4):
            wait_until(lambda: all(i["ready"] for i in instances(host)), 30, "both instances ready")
            poisoned.append(post(host, host.auth(**{"x-request-id": f"poison-{n}"}), data=body(die=True)))
            wait_until(lambda n=n: sum(i["restarts"] for i in instances(host)) >= n + 1, 30, f"restart {n}")

    innocent = send(host.url + "/score", 20_000, concurrency=2, headers=host.auth(), limit_s=120, during=poison)
    wait_until(lambda: all(i["ready"] for i in instances(host)), 30, "both instances ready")
    assert sum(i["restarts"] for i in instances(host)) == 4  # one per poison request, not one per instance
    for status, answer, _ in poisoned:
        assert status == 502, (status, answer)
        assert "failed while handling this request" in answer["message"], answer
        assert "not retried" in answer["message"], answer
    assert sample(scrape(host), "mlctl_instance_restarts_total", deployment="blue") == 4
    assert collections.Counter(r[0] for r in innocent) == {200: len(innocent)}, [r for r in innocent if r[0] != 200][:3]
    assert len(innocent) >= 20
    log = host.log()
    assert log.count("while handling a request (not retried") == 4
    assert "Traceback" not in log


def test_an_instance_with_too_many_abandoned_calls_is_replaced_after_the_drain(make_host):
    """Issue 16, item 9: run() calls stuck in C past their timeout each kept a thread, without limit;
    past MLCTL_MAX_ABANDONED_RUNS the instance says it is unhealthy and the supervisor replaces it."""
    host = make_host()
    host.create(
        "blue",
        timeout_ms=300,
        env={"MLCTL_MAX_ABANDONED_RUNS": "2"},
        liveness={"initial_delay": 0, "period": 0.2, "timeout": 1, "failure_threshold": 1000},
    )
    host.client.set_traffic({"blue": 100})
    stuck = instances(host)[0]["pid"]
    for n in range(2):  # one at a time: each reaches the instance, which abandons it at its own timeout
        assert send(host.url + "/score", 1, headers=host.auth(), payload=body(sleep=60))[0][0] == 408
        wait_until(lambda: instances(host)[0]["in_flight"] == 0, 20, f"call {n} abandoned by the instance")
    wait_until(lambda: instances(host)[0]["restarts"] == 1 and instances(host)[0]["ready"], 60, "the replacement")
    assert instances(host)[0]["pid"] != stuck
    assert "reported itself unhealthy" in host.log()
    assert send(host.url + "/score", 2, headers=host.auth())[0][0] == 200
