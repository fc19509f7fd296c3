"""Routing through a real host: weights, header targeting, 404s, swagger, health, request ids, failed init."""

from __future__ import annotations

import collections
import json
import urllib.request
from urllib.error import HTTPError

import pytest

from mlctl.runtime.host.client import DeploymentFailed, HostError

from hosttools import send, wait_until


def get(url, headers=None):
    req = url if isinstance(url, urllib.request.Request) else urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read(), dict(r.headers)
    except HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def test_split_70_30_over_500_requests_and_header_targets_one_deployment(make_host):
    host = make_host()
    host.create("blue", count=2)
    host.create("green", concurrent=2)  # limit 4 = the clients: no 429 however they bunch up
    host.client.set_traffic({"blue": 70, "green": 30})
    results = send(host.url + "/score", 500, concurrency=4, headers=host.auth())
    assert collections.Counter(r[0] for r in results) == {200: 500}
    who = collections.Counter(r[1]["who"] for r in results)
    assert abs(who["blue"] - 350) <= 15 and abs(who["green"] - 150) <= 15, who
    # both blue instances served
    assert len({r[1]["pid"] for r in results if r[1]["who"] == "blue"}) == 2
    # the header reaches the named deployment, bypassing weights, even at weight 0
    host.client.set_traffic({"blue": 100, "green": 0})
    targeted = send(host.url + "/score", 30, concurrency=2, headers=host.auth(**{"azureml-model-deployment": "green"}))
    assert {(r[0], r[1]["who"]) for r in targeted} == {(200, "green")}
    status, raw, _ = get(host.url + "/score", host.auth(**{"azureml-model-deployment": "nope"}))
    assert status == 404 and "nope" in json.loads(raw)["message"]


def test_no_deployment_with_weight_is_404(make_host):
    host = make_host()
    results = send(host.url + "/score", 3, headers=host.auth())
    assert [r[0] for r in results] == [404] * 3 and "traffic" in results[0][1]["message"]
    host.create("blue")
    host.client.set_traffic({"blue": 0})
    results = send(host.url + "/score", 3, headers=host.auth())
    assert [r[0] for r in results] == [404] * 3
    assert send(host.url + "/score", 1, headers=host.auth(**{"azureml-model-deployment": "blue"}))[0][0] == 200


def test_health_swagger_and_request_ids(make_host):
    host = make_host()
    assert get(host.url + "/")[:2] == (200, b"Healthy")
    assert get(host.url + "/swagger.json", host.auth())[0] == 404  # nothing deployed yet
    host.create("blue")
    host.client.set_traffic({"blue": 100})
    assert get(host.url + "/swagger.json")[0] == 401
    status, raw, _ = get(host.url + "/swagger.json", host.auth())
    assert status == 200 and "paths" in json.loads(raw)
    status, raw, _ = get(host.url + "/nowhere")
    assert status == 404 and "message" in json.loads(raw)
    expect = urllib.request.Request(
        host.url + "/score", data=json.dumps({"data": [[0.0] * 10]}).encode(), headers=host.auth(Expect="100-continue")
    )
    status, raw, _ = get(expect)  # curl sends Expect for big bodies: the gateway answers it, never the instance
    assert status == 200 and "expect" not in json.loads(raw)["headers"]
    put = urllib.request.Request(host.url + "/score", data=b"{}", method="PUT", headers=host.auth())
    status, raw, headers = get(put)
    assert status == 405 and "message" in json.loads(raw)
    given = send(host.url + "/score", 1, headers=host.auth(**{"x-request-id": "trace-me-42"}))[0]
    assert given[2]["x-request-id"] == "trace-me-42" and given[1]["headers"]["x-request-id"] == "trace-me-42"
    created = send(host.url + "/score", 1, headers=host.auth())[0]
    rid = created[2]["x-request-id"]
    assert len(rid) == 36 and created[1]["headers"]["x-request-id"] == rid
    # one id finds the request in both logs (the access log is flushed every 0.2 s, instance output
    # relayed within 0.1 s)
    host_log = wait_until(
        lambda: (lambda t: rid in t and t)((host.data_dir / "logs" / host.name / "host.log").read_text()),
        10,
        "access log",
    )
    instance_log = wait_until(
        lambda: (lambda t: rid in t and t)(
            (host.data_dir / "logs" / host.name / "blue" / "instance-0.log").read_text()
        ),
        10,
        "instance log",
    )
    assert "trace-me-42" in host_log and "trace-me-42" in instance_log
    assert rid in host_log and rid in instance_log


def test_failing_init_is_refused_with_its_traceback_and_the_other_keeps_serving(make_host):
    host = make_host()
    host.create("blue")
    host.client.set_traffic({"blue": 100})
    with pytest.raises(DeploymentFailed) as failed:
        host.create("green", env={"FAIL_INIT": "bad weights"})
    assert "green" in failed.value.message
    assert "RuntimeError: init failed on purpose: bad weights" in failed.value.log_tail
    assert "Traceback" in failed.value.log_tail
    assert "green" not in host.client.status()["deployments"]
    # the same for a replacement: blue's old instances keep serving
    with pytest.raises(DeploymentFailed):
        host.roll("blue", digest="sha256:blue-2", env={"FAIL_INIT": "v2 broken"})
    status = host.client.status()["deployments"]["blue"]
    assert status["digest"] == "sha256:blue-1" and status["ready_instances"] == 1
    results = send(host.url + "/score", 20, concurrency=2, headers=host.auth())
    assert {r[0] for r in results} == {200}
    with pytest.raises(HostError) as refused:
        host.client.set_traffic({"blue": 50, "green": 50})
    assert "green" in refused.value.message
    # an interpreter that does not exist, and a spec missing a field, are refused with what is wrong
    spec = host.spec("green")
    with pytest.raises(DeploymentFailed) as no_python:
        host.client.create_deployment({**spec, "python": "/nonexistent/bin/python"}, timeout=20)
    assert "/nonexistent/bin/python" in no_python.value.message
    with pytest.raises(HostError) as bad_spec:
        host.client.create_deployment({k: v for k, v in spec.items() if k != "model_dir"}, timeout=20)
    assert bad_spec.value.kind == "refused" and "model_dir" in bad_spec.value.message


def test_traffic_rules_and_removal_refused_while_it_has_traffic(make_host):
    host = make_host()
    host.create("blue")
    host.create("green")
    for traffic, mirror, words in (
        ({"blue": 60}, {}, "total 0 or 100"),
        ({"blue": 100}, {"green": 60}, "at most 50"),
        ({"blue": 100}, {"blue": 10}, "live and mirror"),
        ({"blue": 101, "green": -1}, {}, "0..100"),
    ):
        with pytest.raises(HostError) as bad:
            host.client.set_traffic(traffic, mirror)
        assert words in bad.value.message
    for call, kind in (
        (lambda: host.client.scale_deployment("blue", 0), "refused"),
        (lambda: host.client.scale_deployment("red", 2), "not_found"),
        (lambda: host.client.remove_deployment("red"), "not_found"),
    ):
        with pytest.raises(HostError) as wrong:
            call()
        assert wrong.value.kind == kind
    host.client.set_traffic({"blue": 100}, {"green": 10})
    for name in ("blue", "green"):
        with pytest.raises(HostError) as refused:
            host.client.remove_deployment(name)
        assert refused.value.kind == "has_traffic"
    host.client.set_traffic({"blue": 100}, {})
    pids = [i["pid"] for i in host.client.status()["deployments"]["green"]["instances"]]
    host.client.remove_deployment("green")
    assert "green" not in host.client.status()["deployments"]
    from mlctl.runtime.host.runfiles import is_alive

    assert not any(is_alive(p) for p in pids)
