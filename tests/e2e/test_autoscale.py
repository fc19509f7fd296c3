"""Autoscaling through the real CLI on the local runtime (issue 29): `scale_settings.type: target_utilization`
applied; the issue's bounded load ramp (concurrency 1 to 16 over about 20 s, then idle) on a range of [1, 4] with a
short window scales the deployment up at once, to the maximum, and back to 1 after the window, in that order in the
decision log, with no failed request; `show` names the range, the metric, the counts and the last decision, and
/metrics the desired and current counts; plans see no drift while the count moves inside the range, a new range
is an in-place update that restarts nothing, and instances down below the minimum are drift that apply repairs.
Orders of events and generous deadlines, never timings. (The endpoint host's other autoscaling cases, with real
hosts and no CLI: tests/host/test_host_autoscale.py.) The docker runtime's run of the same is
tests/docker/test_autoscale_docker.py."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import threading
import time
import urllib.request
from collections.abc import Sequence

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
  max_concurrent_requests_per_instance: {slots}
  request_timeout_ms: 30000
"""
RAMP = [(1, 2), (4, 3), (8, 3), (16, 12)]  # the ramp, (concurrency, seconds): 1 to 16 over 20 s


def write(root, name: str, lo: int, hi: int, window: int) -> None:
    """4 slots an instance: the 429 limit under autoscaling (2 x 4 x max_instances) stays above the ramp's 16."""
    (root / "endpoint.yml").write_text(ENDPOINT.format(name=name, traffic=json.dumps({"blue": 100})))
    extra = RANGE.format(lo=lo, hi=hi, window=window, slots=4)
    (root / "deploy-blue.yml").write_text(DEPLOYMENT.format(name="blue", endpoint=name, extra=extra, count=1))


def show(root, name: str) -> dict:
    return json.loads(mlctl(root, "show", name, "--json").stdout)["deployments"]["blue"]


def live(root, name: str) -> dict:
    """The host's own report of the deployment (for polling: no CLI process each time)."""
    from mlctl.runtime.host.client import HostClient

    return HostClient.for_endpoint(root / ".mlctl", name).status()["deployments"]["blue"]


def load(root, name: str, concurrency: int, seconds: float) -> list[int]:
    """`concurrency` keep-alive clients for `seconds` (at most 3000 requests): their statuses."""
    return ramp(root, name, [(concurrency, seconds)])


def ramp(root, name: str, phases: Sequence[tuple[int, float]]) -> list[int]:
    """Each phase (concurrency, seconds) of keep-alive clients in turn, with no pause between them (the key and
    port are read once; at most 3000 requests a phase): their statuses."""
    key = keys(root, name)["primaryKey"]
    port = Endpoint(root, name).port
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    statuses: list[int] = []
    for concurrency, seconds in phases:
        stop_at, cap = time.monotonic() + seconds, len(statuses) + 3000

        def client():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            while time.monotonic() < stop_at and len(statuses) < cap:  # noqa: B023 (each phase's clients end in it)
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


def decisions(log: str) -> list[tuple[int, int]]:
    """The autoscaler's changes of blue in its host's log, in order: [(from, to)]."""
    return [(int(a), int(b)) for a, b in re.findall(r"autoscale blue: (\d+) -> (\d+): ", log)]


def counts(root, name: str) -> dict[str, float]:
    """/metrics' desired and current instance counts of blue (on loopback: no key)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{Endpoint(root, name).port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name in ("mlctl_instances_desired", "mlctl_instances_current") and s.labels.get("deployment") == "blue"
    }


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
    write(root, name, 1, 4, window=3)
    mlctl(root, "apply", "--auto-approve")
    d = show(root, name)
    assert d["instance_count"] == 1 and d["autoscale"]["range"] == [1, 4]
    assert d["autoscale"]["metric"].startswith("in-flight requests (4 per instance)")

    # the ramp (bounded: at most 3000 requests a phase), then idle
    statuses: list[int] = []
    loader = threading.Thread(target=lambda: statuses.extend(ramp(root, name, RAMP)))
    loader.start()
    try:
        assert wait_until(lambda: live(root, name)["instance_count"] > 1, timeout=60), show(root, name)
        # the count moved: no drift, no change (exit 0) while it is inside the range
        assert mlctl(root, "plan", "--detailed-exitcode", check=False).returncode == 0
    finally:
        loader.join()
    assert statuses and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    assert wait_until(lambda: live(root, name)["instance_count"] == 1, timeout=60), show(root, name)
    text = mlctl(root, "show", name).stdout
    assert "autoscaling: 1..4 instance(s), now 1 (desired 1); target 50 % of in-flight requests" in text, text
    assert "-> 1, done: down:" in text, text
    changes = decisions(mlctl(root, "logs", name).stdout)
    assert changes and changes[0][0] == 1 and changes[0][1] > 1, changes  # up first ...
    assert max(b for _, b in changes) == 4 and changes[-1][1] == 1, changes  # ... to the maximum, then down to 1
    ups = [i for i, (a, b) in enumerate(changes) if b > a]
    downs = [i for i, (a, b) in enumerate(changes) if b < a]
    assert max(ups) < min(downs), changes
    last = live(root, name)["autoscale"]["decisions"][-1]
    assert (last["from"], last["to"]) == (changes[-1][0], 1) and last["outcome"] == "done", last
    assert "down:" in last["reason"], last
    assert counts(root, name) == {"mlctl_instances_desired": 1, "mlctl_instances_current": 1}

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
    same = RANGE[RANGE.index("request_settings:") :].format(slots=4)  # the same request settings, no scale_settings
    (root / "deploy-blue.yml").write_text(DEPLOYMENT.format(name="blue", endpoint=name, extra=same, count=2))
    plan = mlctl(root, "plan", "--detailed-exitcode", check=False)
    assert plan.returncode == 2 and "~ deployment" in plan.stdout, plan.stdout
    mlctl(root, "apply", "--auto-approve")
    fixed = show(root, name)
    assert "autoscale" not in fixed and {i["pid"] for i in fixed["instances"]} == {i["pid"] for i in d["instances"]}
    assert mlctl(root, "plan", "--detailed-exitcode", check=False).returncode == 0
