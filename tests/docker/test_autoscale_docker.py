"""Autoscaling on the docker runtime through the real CLI (issue 29): the instances are containers, started and
stopped by the endpoint host within the range, scaled on the CPU their cgroups used against
`resources.requests.cpu`. A bounded load scales up and the window brings the count back
with no failed request; plans see no drift meanwhile; a container killed outside mlctl below the minimum is
drift that apply repairs; with min_instances 0 the idle deployment stops its last container and the next
request is answered once one has started (the cold start)."""

from __future__ import annotations

import json
import threading

from docker_support import containers_of, docker_split, engine_api  # noqa: F401
from e2e_support import DEPLOYMENT, ENDPOINT, Endpoint, keys, mlctl, wait_until
from test_autoscale import RANGE, live, load

SCORE = """\
import os, time

def init():
    pass

def run(raw_data):
    end = time.time() + 0.02  # CPU-bound work: the autoscaler measures CPU here (resources.requests.cpu)
    while time.time() < end:
        pass
    return {"who": os.environ.get("WHO", "?")}
"""

CPU = """\
resources:
  requests:
    cpu: 100m
"""


def write(root, name: str, lo: int, hi: int, window: int) -> None:
    (root / "endpoint.yml").write_text(ENDPOINT.format(name=name, traffic=json.dumps({"blue": 100})))
    extra = RANGE.format(lo=lo, hi=hi, window=window, slots=2) + CPU
    (root / "deploy-blue.yml").write_text(DEPLOYMENT.format(name="blue", endpoint=name, extra=extra, count=1))


def host_log(root, name: str) -> str:
    return mlctl(root, "logs", name, "--lines", "60").stdout


def show(root, name: str) -> dict:
    return json.loads(mlctl(root, "show", name, "--json").stdout)["deployments"]["blue"]


def test_autoscaling_containers_within_the_range_and_to_zero(docker_split, engine_api):
    p, api = docker_split, engine_api
    root, name = p.root, p.endpoint
    (root / "code" / "score.py").write_text(SCORE)
    write(root, name, 1, 3, window=3)
    mlctl(root, "apply", "--auto-approve")
    assert len(containers_of(api, root, every=False)) == 1
    assert show(root, name)["autoscale"]["metric"].startswith("CPU (resources.requests.cpu 0.1 per instance)")

    statuses: list[int] = []
    loader = threading.Thread(target=lambda: statuses.extend(load(root, name, 8, 8)))
    loader.start()
    assert wait_until(lambda: live(root, name)["instance_count"] > 1, timeout=90), host_log(root, name)
    assert mlctl(root, "plan", "--detailed-exitcode", check=False).returncode == 0  # moving inside the range
    loader.join()
    assert statuses and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    assert wait_until(lambda: live(root, name)["instance_count"] == 1, timeout=90), host_log(root, name)
    assert wait_until(lambda: len(containers_of(api, root, every=False)) == 1, timeout=30)

    # the one container killed outside mlctl: the host leaves it down, below the minimum: drift
    [inst] = show(root, name)["instances"]
    api.kill(inst["container"])
    assert wait_until(lambda: live(root, name)["ready_instances"] == 0, timeout=60)
    drift = mlctl(root, "plan", "--detailed-exitcode", check=False)
    assert drift.returncode == 2 and "drift" in drift.stdout and "at least 1" in drift.stdout, drift.stdout
    mlctl(root, "apply", "--auto-approve")
    assert show(root, name)["ready_instances"] == 1

    # scale to zero: a new range in place; idle past the window, no container runs; a request starts one
    write(root, name, 0, 2, window=2)
    mlctl(root, "apply", "--auto-approve")
    assert wait_until(lambda: live(root, name)["state"] == "idle", timeout=60), host_log(root, name)
    assert wait_until(lambda: not containers_of(api, root, every=False), timeout=30)
    assert mlctl(root, "plan", "--detailed-exitcode", check=False).returncode == 0  # zero is inside [0, 2]
    ep = Endpoint(root, name)
    status, answer = ep.score(key=keys(root, name)["primaryKey"])
    ep.close()
    assert status == 200 and json.loads(answer)["who"] == "blue", answer
    assert len(containers_of(api, root, every=False)) == 1
