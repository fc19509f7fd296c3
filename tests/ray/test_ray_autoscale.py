"""Autoscaling on the ray runtime, in the ray tests' real two-node cluster (issue 29): the endpoint host's
autoscaler (the same `scalepolicy` as on local and docker) sets the Serve application's replica count. A bounded
load ramp (concurrency 1 -> 16 over about 20 s, then idle) on a range of [1, 4] with a short window scales up
(new replicas join the rotation once their servers answer), then back to 1 after the window, Serve choosing
the replicas it stops and the host draining them first: no request fails. The metric is in-flight requests
(the CPU of a replica on another node is not readable here, and show says so), plans show no drift while the
count moves inside the range, and do when the instances are gone below the minimum. A new range is an update in
place that keeps Serve's replica; with `min_instances: 0`, idle past the window, Serve runs no replica, and the
next request starts one and is answered, or, when its request_timeout_ms is shorter than the cold start, gets 408
while the replica it woke starts and answers the next one; /metrics has the desired and current counts. A
scale-up the cluster has no room for is said in the log and in `show` while it waits, and no request fails
meanwhile. Orders of events and generous deadlines, never timings; figures are bench/autoscale's."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.request

import pytest
from e2e_support import DEPLOYMENT, ENDPOINT, Endpoint, Load, SplitProject, cleanup, keys, mlctl, wait_until
from rayexample import ray_project_file

from mlctl.runtime.ray import apps, cluster

pytestmark = pytest.mark.ray

SCORE = """\
import os, time

def init():
    pass

def run(raw_data):
    time.sleep(0.05)
    return {"who": os.environ.get("WHO", "?")}
"""

# a readiness budget of 180 s: a replica took 59 s to start at a load of 30 (a generous deadline, not a figure)
RANGE = """\
scale_settings:
  type: target_utilization
  min_instances: {lo}
  max_instances: {hi}
  target_utilization_percentage: 50
  polling_interval: 1
  stabilization_window: {window}
request_settings:
  max_concurrent_requests_per_instance: 2
  request_timeout_ms: 60000
readiness_probe:
  initial_delay: 0
  period: 2
  failure_threshold: 90
resources:
  requests:
    cpu: 500m
"""
# three CPUs a replica: each node (4 CPUs, tests/ray/raymachines.py) holds one, a third has no room
TIGHT = """\
scale_settings:
  type: target_utilization
  min_instances: 1
  max_instances: 4
  target_utilization_percentage: 50
  polling_interval: 1
  stabilization_window: 600
request_settings:
  max_concurrent_requests_per_instance: 2
  request_timeout_ms: 60000
readiness_probe:
  initial_delay: 0
  period: 1
  failure_threshold: 30
resources:
  requests:
    cpu: "3"
"""
RAMP_S, HOLD_S, CONCURRENCY = 10.0, 10.0, 16  # about 20 s of load, ramped up over the first 10
MAX_REQUESTS = 4000


def write(root, name: str, lo: int, hi: int, window: int, extra: str | None = None) -> None:
    (root / "endpoint.yml").write_text(ENDPOINT.format(name=name, traffic=json.dumps({"blue": 100})))
    extra = extra or RANGE.format(lo=lo, hi=hi, window=window)
    (root / "deploy-blue.yml").write_text(DEPLOYMENT.format(name="blue", endpoint=name, extra=extra, count=1))


def live(root, name: str, deployment: str = "blue") -> dict:
    """The host's own report of the deployment (for polling: no CLI process each time)."""
    from mlctl.runtime.host.client import HostClient

    return HostClient.for_endpoint(root / ".mlctl", name).status()["deployments"][deployment]


def replica_ids(address: str, root, deployment: str = "blue") -> set[str]:
    """The ids of the RUNNING replicas of the deployment's Serve application."""
    cluster.connect(address)
    owner = apps.owner_of(root / ".mlctl")
    (app,) = apps.owned(cluster.details(), owner, apps.deployment_prefix(owner, "scaled", deployment)).values()
    return {r["replica_id"] for r in apps.replicas(app) if r["state"] == "RUNNING"}


def serve_running(address: str, root, deployment: str = "blue") -> int:
    """RUNNING replicas of the deployment's Serve application."""
    return len(replica_ids(address, root, deployment))


def counts(port: int) -> tuple[float, float]:
    """(desired, current) instances of blue from the host's /metrics (loopback: no key)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    found = {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("deployment") == "blue"
    }
    return found.get("mlctl_instances_desired", -1.0), found.get("mlctl_instances_current", -1.0)


def ramp(root, name: str, statuses: list) -> None:
    """Clients joining one by one over RAMP_S up to CONCURRENCY, all sending until RAMP_S + HOLD_S (at most
    MAX_REQUESTS in all): their statuses (or errors) appended."""
    key = keys(root, name)["primaryKey"]
    port = Endpoint(root, name).port
    started = time.monotonic()
    stop_at = started + RAMP_S + HOLD_S

    def client(i: int) -> None:
        time.sleep(i * RAMP_S / CONCURRENCY)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        while time.monotonic() < stop_at and len(statuses) < MAX_REQUESTS:
            try:
                conn.request("POST", "/score", body=b"{}", headers=headers)
                answer = conn.getresponse()
                answer.read()
                statuses.append(answer.status)
            except (OSError, http.client.HTTPException) as e:
                statuses.append(f"{type(e).__name__}: {e}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CONCURRENCY)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@pytest.fixture
def project(tmp_path, ray_cluster):
    p = SplitProject(tmp_path / "proj", "scaled")
    (p.root / "code" / "score.py").write_text(SCORE)
    ray_project_file(p.root, ray_cluster.address)
    yield p
    cleanup(p.root)


def test_a_load_ramp_scales_serve_replicas_up_and_back_without_a_failed_request(project, ray_cluster):
    root, name = project.root, project.endpoint
    write(root, name, 1, 4, window=5)
    plan = mlctl(root, "plan")
    assert "scale_settings" not in plan.stdout.split("Ignored fields", 1)[-1].split("\n\n")[0], plan.stdout
    mlctl(root, "apply", "--auto-approve")
    d = json.loads(mlctl(root, "show", name, "--json").stdout)["deployments"]["blue"]
    assert d["instance_count"] == 1 and d["autoscale"]["range"] == [1, 4]
    # a CPU request is set, but a replica's CPU on another node is not readable: in-flight requests, said so
    assert d["autoscale"]["metric"].startswith("in-flight requests (2 per instance; the CPU of instances on other")
    assert serve_running(ray_cluster.address, root) == 1

    statuses: list = []
    loader = threading.Thread(target=ramp, args=(root, name, statuses))
    loader.start()
    try:
        assert wait_until(lambda: live(root, name)["instance_count"] > 1, timeout=120), live(root, name)
        # more Serve replicas run, and each instance is one of them (its own server)
        assert serve_running(ray_cluster.address, root) >= live(root, name)["instance_count"] > 1
        # the count moved inside the range: no drift, no change
        moved = mlctl(root, "plan", "--detailed-exitcode", check=False)
        assert moved.returncode == 0, moved.stdout + moved.stderr
    finally:
        loader.join()
    failed = [s for s in statuses if s != 200]
    assert statuses and not failed, (len(statuses), failed[:5], mlctl(root, "logs", name).stdout[-3000:])

    assert wait_until(lambda: live(root, name)["instance_count"] == 1, timeout=120), live(root, name)
    # Serve stopped the replicas the host drained (they end once released)
    assert wait_until(lambda: serve_running(ray_cluster.address, root) == 1, timeout=120)
    text = mlctl(root, "show", name).stdout
    assert "autoscaling: 1..4 instance(s), now 1 (desired 1)" in text and "-> 1, done: down:" in text, text
    log = mlctl(root, "logs", name).stdout
    up, down = log.find("autoscale blue: 1 -> "), log.find(" -> 1: down:")
    assert 0 <= up < down < log.rfind("Serve stops replica(s)"), log[-3000:]  # decided, then Serve chose
    assert mlctl(root, "plan", "--detailed-exitcode", check=False).returncode == 0

    # below the minimum: the application deleted outside mlctl is drift, which apply repairs
    owner = apps.owner_of(root / ".mlctl")
    cluster.delete(list(apps.owned(cluster.details(), owner, apps.endpoint_prefix(owner, "scaled"))))
    drift = mlctl(root, "plan", "--detailed-exitcode", check=False)
    assert drift.returncode == 2 and "drift" in drift.stdout, drift.stdout
    mlctl(root, "apply", "--auto-approve")
    assert wait_until(lambda: live(root, name)["ready_instances"] >= 1, timeout=120), live(root, name)
    assert mlctl(root, "plan", "--detailed-exitcode", check=False).returncode == 0

    # a new range: an update in place that keeps Serve's replica (nothing restarted)
    kept = replica_ids(ray_cluster.address, root)
    write(root, name, 1, 3, window=600)
    plan = mlctl(root, "plan", "--detailed-exitcode", check=False)
    assert plan.returncode == 2 and "~ deployment" in plan.stdout and "-/+" not in plan.stdout, plan.stdout
    mlctl(root, "apply", "--auto-approve")
    assert len(kept) == 1 and replica_ids(ray_cluster.address, root) == kept
    assert json.loads(mlctl(root, "show", name, "--json").stdout)["deployments"]["blue"]["autoscale"]["range"] == [1, 3]

    # scale to zero: idle past the window, Serve runs no replica; the next request starts one and is answered;
    # /metrics has the desired and current counts. Beside it, "short" (request_timeout_ms: 500, shorter than a
    # replica's cold start): its first request after idle gets 408, and the replica it woke answers the next one
    write(root, name, 0, 2, window=2)
    short = RANGE.format(lo=0, hi=1, window=2).replace("request_timeout_ms: 60000", "request_timeout_ms: 500")
    (root / "deploy-short.yml").write_text(DEPLOYMENT.format(name="short", endpoint=name, extra=short, count=1))
    mlctl(root, "apply", "--auto-approve")
    for d in ("blue", "short"):
        assert wait_until(lambda d=d: live(root, name, d)["state"] == "idle", timeout=120), live(root, name, d)
        assert wait_until(lambda d=d: serve_running(ray_cluster.address, root, d) == 0, timeout=120)
    assert mlctl(root, "plan", "--detailed-exitcode", check=False).returncode == 0  # zero is inside [0, 2]
    port = Endpoint(root, name).port
    assert counts(port) == (0.0, 0.0)
    # the request waits while Serve starts a replica and its server passes readiness (request_timeout_ms: 60 s)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=180)
    auth = {"Content-Type": "application/json", "Authorization": f"Bearer {keys(root, name)['primaryKey']}"}
    conn.request("POST", "/score", body=b"{}", headers=auth)
    answer = conn.getresponse()
    status, body = answer.status, answer.read()
    conn.close()
    assert status == 200 and json.loads(body)["who"] == "blue", (status, body, mlctl(root, "logs", name).stdout[-3000:])
    assert serve_running(ray_cluster.address, root) == 1 and counts(port) == (1.0, 1.0)

    def short_score() -> tuple[int, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", "/score", body=b"{}", headers={**auth, "azureml-model-deployment": "short"})
        answer = conn.getresponse()
        status, body = answer.status, json.loads(answer.read() or b"{}")
        conn.close()
        return status, body

    late = short_score()
    assert late[0] == 408 and "scaled to zero" in late[1].get("message", ""), late
    # the replica the late request woke goes on starting, and answers the next request
    assert wait_until(lambda: live(root, name, "short")["ready_instances"] == 1, timeout=120), live(root, name, "short")
    again = short_score()
    assert again[0] == 200 and again[1]["who"] == "short", again


def test_a_scale_up_the_cluster_has_no_room_for_is_said_while_it_waits(project, ray_cluster):
    root, name = project.root, project.endpoint
    write(root, name, 1, 4, window=600, extra=TIGHT)
    mlctl(root, "apply", "--auto-approve")

    def said() -> str:
        text = mlctl(root, "show", name).stdout
        return text if "waiting for room: no node of the cluster has room" in text or "no room" in text else ""

    with Load(Endpoint(root, name).port, keys(root, name)["primaryKey"]) as load:
        assert wait_until(lambda: bool(said()), timeout=180), mlctl(root, "show", name).stdout
    assert load.total() and not load.failures, load.failures[:5]
    log = mlctl(root, "logs", name, "--lines", "5000").stdout
    up, waits = log.find("autoscale blue: 1 -> "), log.find("wait for room: no node of the cluster has room")
    assert 0 <= up < waits, "\n".join(x for x in log.splitlines() if "mlctl.access" not in x)[-3000:]
    # what could be placed serves: at most one replica on each node
    assert 1 <= live(root, name)["instance_count"] <= 2
