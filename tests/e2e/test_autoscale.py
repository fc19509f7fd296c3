"""Autoscaling through the real CLI on the local runtime (issue 29): `scale_settings.type: target_utilization`
applied, a bounded load scales the deployment up and the stabilization window brings it back, `show` names
the range, the metric, the counts and the last decision; plans see no drift while the count moves inside the
range, a new range is an in-place update that restarts nothing, and instances down below the minimum are
drift that apply repairs. Orders of events and generous deadlines, never timings.
The docker runtime's run of the same is tests/docker/test_autoscale_docker.py."""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time

from e2e_support import DEPLOYMENT, ENDPOINT, Endpoint, alive, keys, mlctl, wait_until

SCORE = """\
import os, time

POISON = {poison!r}

def init():
    if os.path.exists(POISON):
        raise RuntimeError("the model is unreadable right now (" + POISON + ")")

def run(raw_data):
    time.sleep(0.05)
    return {{"who": os.environ.get("WHO", "?")}}
"""

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
  request_timeout_ms: 30000
"""


def write(root, name: str, lo: int, hi: int, window: int) -> None:
    (root / "endpoint.yml").write_text(ENDPOINT.format(name=name, traffic=json.dumps({"blue": 100})))
    extra = RANGE.format(lo=lo, hi=hi, window=window)
    (root / "deploy-blue.yml").write_text(DEPLOYMENT.format(name="blue", endpoint=name, extra=extra, count=1))


def show(root, name: str) -> dict:
    return json.loads(mlctl(root, "show", name, "--json").stdout)["deployments"]["blue"]


def live(root, name: str) -> dict:
    """The host's own report of the deployment (for polling: no CLI process each time)."""
    from mlctl.runtime.host.client import HostClient

    return HostClient.for_endpoint(root / ".mlctl", name).status()["deployments"]["blue"]


def load(root, name: str, concurrency: int, seconds: float) -> list[int]:
    """`concurrency` keep-alive clients for `seconds` (at most 3000 requests): their statuses."""
    key = keys(root, name)["primaryKey"]
    port = Endpoint(root, name).port
    statuses: list[int] = []
    stop_at = time.monotonic() + seconds

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        while time.monotonic() < stop_at and len(statuses) < 3000:
            conn.request("POST", "/score", body=b"{}", headers=headers)
            answer = conn.getresponse()
            answer.read()
            statuses.append(answer.status)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def test_autoscaling_through_the_cli_plans_without_drift_inside_the_range(split_project, tmp_path):
    root, name = split_project.root, split_project.endpoint
    poison = tmp_path / "poison"
    (root / "code" / "score.py").write_text(SCORE.format(poison=str(poison)))
    # the opt-out: its score.py reads a file in this test's /tmp folder, which a confined instance (as root) cannot
    # see; this test is about autoscaling (confinement: tests/e2e/test_local_isolation.py)
    (root / "mlctl.yaml").write_text("local: {instance_user: mlctl}\n")
    write(root, name, 1, 1000, window=3)  # more than any machine holds: the plan warns
    planned = mlctl(root, "plan")
    assert "Warning: at their maximums the deployments need 1000 CPU(s)" in planned.stdout + planned.stderr
    write(root, name, 1, 3, window=3)
    mlctl(root, "apply", "--auto-approve")
    d = show(root, name)
    assert d["instance_count"] == 1 and d["autoscale"]["range"] == [1, 3]
    assert d["autoscale"]["metric"].startswith("in-flight requests (2 per instance)")

    statuses: list[int] = []
    loader = threading.Thread(target=lambda: statuses.extend(load(root, name, 8, 8)))
    loader.start()
    assert wait_until(lambda: live(root, name)["instance_count"] > 1, timeout=60), show(root, name)
    # the count moved: no drift, no change (exit 0) while it is inside the range
    assert mlctl(root, "plan", "--detailed-exitcode", check=False).returncode == 0
    loader.join()
    assert statuses and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    assert wait_until(lambda: live(root, name)["instance_count"] == 1, timeout=60), show(root, name)
    text = mlctl(root, "show", name).stdout
    assert "autoscaling: 1..3 instance(s), now 1 (desired 1); target 50 % of in-flight requests" in text, text
    assert "-> 1, done: down:" in text, text
    log = mlctl(root, "logs", name).stdout
    ups, downs = log.find("autoscale blue: 1 -> "), log.find(" -> 1: down:")
    assert 0 <= ups < downs, log[-3000:]

    # a new range: an update in place, nothing restarted, the count brought into it
    pids = {i["pid"] for i in show(root, name)["instances"]}
    write(root, name, 2, 3, window=600)
    plan = mlctl(root, "plan", "--detailed-exitcode", check=False)
    assert plan.returncode == 2 and "~ deployment" in plan.stdout and "scale_settings" in plan.stdout, plan.stdout
    mlctl(root, "apply", "--auto-approve")
    d = show(root, name)
    assert d["instance_count"] == 2 and pids < {i["pid"] for i in d["instances"]}
    assert mlctl(root, "plan", "--detailed-exitcode", check=False).returncode == 0

    # instances down below the minimum (their restarts fail): drift, which apply repairs once the cause is gone
    poison.write_text("x")
    for i in d["instances"]:
        os.kill(i["pid"], signal.SIGKILL)
    assert wait_until(lambda: live(root, name)["ready_instances"] == 0, timeout=60)
    drift = mlctl(root, "plan", "--detailed-exitcode", check=False)
    assert drift.returncode == 2 and "drift" in drift.stdout and "at least 2" in drift.stdout, drift.stdout
    poison.unlink()
    mlctl(root, "apply", "--auto-approve")
    d = show(root, name)
    assert d["ready_instances"] == 2 and all(alive(i["pid"]) for i in d["instances"])
    assert mlctl(root, "plan", "--detailed-exitcode", check=False).returncode == 0

    # back to a fixed count: in place too, the same instances, no autoscaler
    same = RANGE[RANGE.index("request_settings:") :]  # the same request settings, no scale_settings
    (root / "deploy-blue.yml").write_text(DEPLOYMENT.format(name="blue", endpoint=name, extra=same, count=2))
    plan = mlctl(root, "plan", "--detailed-exitcode", check=False)
    assert plan.returncode == 2 and "~ deployment" in plan.stdout, plan.stdout
    mlctl(root, "apply", "--auto-approve")
    fixed = show(root, name)
    assert "autoscale" not in fixed and {i["pid"] for i in fixed["instances"]} == {i["pid"] for i in d["instances"]}
    assert mlctl(root, "plan", "--detailed-exitcode", check=False).returncode == 0
