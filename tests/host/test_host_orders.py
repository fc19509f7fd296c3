"""The host's explicit orders (create, roll, scale, revive) and its launcher registry, on real hosts."""

from __future__ import annotations

import asyncio
import os
import signal

import aiohttp
import pytest

from hosttools import send, wait_until
from mlctl.runtime.host.client import HostError
from mlctl.runtime.host.runfiles import host_log, is_alive


def instances(host, name="blue"):
    return host.client.status()["deployments"][name]["instances"]


def admin_post(host, path: str, body: dict) -> tuple[int, dict]:
    """(HTTP status, JSON answer) of a POST to the host's admin socket, as it answered it."""

    async def post():
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=host.info.admin_socket)) as session:
            async with session.post(f"http://admin{path}", json=body) as resp:
                return resp.status, await resp.json()

    return asyncio.run(post())


def test_an_unknown_launcher_is_refused_400_naming_it_and_process_is_the_default(make_host):
    host = make_host()
    status, answer = admin_post(host, "/deployments/blue", {**host.spec("blue"), "launcher": "ray-serve"})
    assert status == 400
    assert answer["message"] == (
        "deployment spec field 'launcher': unknown launcher 'ray-serve': "
        "this endpoint host has container, process, serve"
    )
    assert host.client.status()["deployments"] == {}
    assert host.create("blue")["launcher"] == "process"
    with pytest.raises(HostError) as refused:  # a roll to an unknown launcher leaves the deployment as it is
        host.client.roll_deployment({**host.spec("blue", digest="sha256:blue-2"), "launcher": "docker"})
    assert refused.value.kind == "refused" and "'docker'" in refused.value.message
    assert host.client.status()["deployments"]["blue"]["digest"] == "sha256:blue-1"


def test_a_sizing_in_kubernetes_quantities_is_refused_400_naming_the_field_not_a_500(make_host):
    """The runtimes send numbers (the plan read the quantities); a spec with "1Gi" is a caller's error."""
    host = make_host()
    for launch, field in (
        ({"resources": {"limits": {"memory": "1Gi"}}}, "'launch.resources'"),
        ({"resources": ["1Gi"]}, "'launch.resources'"),
        ({"memory_bytes": "1Gi"}, "'launch.memory_bytes'"),
    ):
        status, answer = admin_post(host, "/deployments/blue", {**host.spec("blue"), "launch": launch})
        assert (status, field in answer["message"]) == (400, True), answer
    assert host.client.status()["deployments"] == {}


def test_create_is_refused_409_when_the_deployment_exists_and_roll_404_when_it_does_not(make_host):
    host = make_host()
    host.create("blue")
    pids = [i["pid"] for i in instances(host)]
    status, answer = admin_post(host, "/deployments/blue", host.spec("blue", digest="sha256:blue-2", count=2))
    assert (status, answer["kind"]) == (409, "exists")
    assert "has a deployment 'blue' already" in answer["message"]
    d = host.client.status()["deployments"]["blue"]
    assert (d["digest"], d["instance_count"], [i["pid"] for i in d["instances"]]) == ("sha256:blue-1", 1, pids)
    with pytest.raises(HostError) as absent:
        host.client.roll_deployment(host.spec("green"))
    assert absent.value.kind == "not_found" and "'green'" in absent.value.message
    for order in (lambda: host.client.scale_deployment("green", 2), lambda: host.client.revive_deployment("green")):
        with pytest.raises(HostError) as absent:
            order()
        assert absent.value.kind == "not_found"


def test_roll_starts_the_new_instances_beside_the_old_then_drains_the_old(make_host):
    host = make_host()
    host.create("blue", count=2)
    host.client.set_traffic({"blue": 100})
    old = [i["pid"] for i in instances(host)]
    rolled = host.roll("blue", count=2, digest="sha256:blue-2", env={"WHO": "blue-v2"})
    assert (rolled["digest"], rolled["ready_instances"], rolled["state"]) == ("sha256:blue-2", 2, "ready")
    new = [i["pid"] for i in rolled["instances"]]
    assert not set(new) & set(old) and not any(is_alive(p) for p in old)
    # a new generation, beside the old (its socket: blue-g1-0/s.sock fresh, blue-f<key>/g1-0.sock forked)
    assert all("g1-" in i["socket"] for i in rolled["instances"])
    assert {r[1]["who"] for r in send(host.url + "/score", 10, headers=host.auth())} == {"blue-v2"}


def test_scale_adds_ready_instances_and_drains_the_highest(make_host):
    host = make_host()
    host.create("blue")
    first = instances(host)[0]["pid"]
    up = host.client.scale_deployment("blue", 3)
    assert (up["instance_count"], up["ready_instances"]) == (3, 3)
    assert [i["index"] for i in up["instances"]] == [0, 1, 2] and up["instances"][0]["pid"] == first
    down = host.client.scale_deployment("blue", 1)
    assert (down["instance_count"], down["ready_instances"]) == (1, 1)
    assert [i["pid"] for i in down["instances"]] == [first]
    assert not any(is_alive(i["pid"]) for i in up["instances"][1:])


def test_revive_restarts_at_once_an_instance_its_supervisor_is_backing_off_from(make_host, tmp_path):
    host = make_host()
    flag = tmp_path / "fail-init"
    # (unconfined: its init reads a flag in this test's /tmp folder; this test is about revival, not confinement)
    host.create("blue", env={"FAIL_INIT_WHILE": str(flag)}, unconfined=True)
    victim = instances(host)[0]
    assert host.client.revive_deployment("blue")["instances"][0]["pid"] == victim["pid"]  # all ready: nothing to do
    flag.write_text("restarts fail while this exists")
    os.kill(victim["pid"], signal.SIGKILL)
    log = host_log(host.data_dir, host.name)
    # three restarts failed: the supervisor now waits 2 s before its fourth try
    wait_until(lambda: log.read_text().count("blue instance 0: restart failed") >= 3, 60, "three failed restarts")
    flag.unlink()
    revived = host.client.revive_deployment("blue")
    assert (revived["ready_instances"], revived["state"]) == (1, "ready")
    inst = revived["instances"][0]
    assert inst["pid"] != victim["pid"] and inst["ready"] and inst["restarts"] == 0
    assert "g1-" in inst["socket"]  # revive's fresh instance, not the supervisor's restart (generation 0)
    host.client.set_traffic({"blue": 100})
    assert [r[0] for r in send(host.url + "/score", 3, headers=host.auth())] == [200] * 3


def test_usage_reports_cpu_seconds_and_peak_memory_of_a_real_instance(make_host, sklearn_model_dir):
    host = make_host(model=sklearn_model_dir)  # the pickled Ridge: scikit-learn loaded, as a real model would be
    host.create("blue")
    host.client.set_traffic({"blue": 100})
    before = instances(host)[0]
    assert before["cpu_seconds"] > 0 and before["peak_memory_bytes"] > 10 * 2**20  # python + sklearn loaded
    assert [r[0] for r in send(host.url + "/score", 400, concurrency=2, headers=host.auth())] == [200] * 400
    after = instances(host)[0]
    assert after["pid"] == before["pid"]
    assert after["cpu_seconds"] > before["cpu_seconds"]
    assert after["peak_memory_bytes"] >= before["peak_memory_bytes"]
