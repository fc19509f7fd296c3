"""The ray runtime on the three machines (tests/ray/raymachines.py): the example applied from the client machine,
its environment shipped to nodes that see no mlctl cache, its instances on both nodes, each reached directly by
the host at its node's address (a server refuses a request that does not come through a host); then the worker
node killed under load: the instance on it is reported lost (drift) soon after Ray marks the node dead, no more
requests fail than were in flight, and capacity comes back on the head without apply, in that order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from e2e_support import Load
from rayexample import example_project
from raymachines import joined

from mlctl.waiting import Timeout, wait_until

pytestmark = pytest.mark.ray

DIRECT = """
import http.client, sys
host, port = sys.argv[1].removeprefix("tcp:").rsplit(":", 1)
conn = http.client.HTTPConnection(host, int(port), timeout=60)
extra = dict([sys.argv[2:4]]) if len(sys.argv) > 3 else {}
conn.request("POST", "/score", body=b"{}", headers={"Content-Type": "application/json", **extra})
answer = conn.getresponse()
print(answer.status, answer.read().decode(errors="replace"))
"""


def cli(machines, root, *args, check: bool = True) -> subprocess.CompletedProcess:
    """mlctl run on the client machine."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = machines.client.run([sys.executable, "-m", "mlctl.cli", "-C", str(root), *args], timeout=1200, env=env)
    assert not check or out.returncode == 0, (
        f"mlctl {' '.join(args)} exited {out.returncode}\n{out.stdout}\n{out.stderr}"
    )
    return out


def shown(machines, root) -> dict:
    return json.loads(cli(machines, root, "show", "diabetes", "--json").stdout)["deployments"]["blue"]


def until(condition, timeout: float, what: str):
    """The condition's first true value, polled every 0.5 s; fails naming `what` after `timeout` s (generous)."""
    try:
        return wait_until(condition, timeout, what, interval=0.5)
    except Timeout:
        pytest.fail(f"not within {timeout:.0f}s: {what}")


@pytest.fixture
def example(tmp_path, ray_machines_restored):
    root = example_project(tmp_path / "diabetes", ray_machines_restored.address, instances=2)
    yield root
    cli(ray_machines_restored, root, "destroy", "--auto-approve", check=False)


def test_served_directly_from_both_nodes_without_a_shared_cache_and_a_lost_node_is_drift_then_replaced(
    example, ray_machines_restored
):
    machines = ray_machines_restored
    head, worker = machines.head, machines.worker
    assert "Apply complete!" in cli(machines, example, "apply", "--auto-approve").stdout
    blue = shown(machines, example)
    assert blue["ready_instances"] == 2
    upstreams = {i["upstream"].removeprefix("tcp:").rsplit(":", 1)[0]: i for i in blue["instances"]}
    assert set(upstreams) == {head.address, worker.address}, blue["instances"]  # one server on each node
    answer = cli(machines, example, "invoke", "diabetes", "--request-file", str(example / "sample-request.json"))
    assert len(json.loads(answer.stdout)) == 2
    for extra in ([], ["X-Mlctl-Hop", "guess"]):  # not through a host: refused
        direct = machines.client.run([sys.executable, "-c", DIRECT, upstreams[worker.address]["upstream"], *extra])
        assert direct.stdout.startswith("403 ") and "only its endpoint's hosts" in direct.stdout, direct

    port = json.loads(cli(machines, example, "show", "diabetes", "--json").stdout)["host"]["port"]
    key = json.loads(cli(machines, example, "keys", "diabetes", "--json").stdout)["primaryKey"]
    with joined(machines.client), Load(port, key, (example / "sample-request.json").read_bytes()) as load:
        until(lambda: load.total() > 20, 300, "the load is served")
        worker.kill()
        killed = time.monotonic()
        machines.wait_nodes(lambda n: worker.address not in n, 30, "the GCS marks the worker dead")
        dead = time.monotonic()
        lost = until(lambda: shown(machines, example)["ready_instances"] < 2, 15, "show reports the lost instance")
        drift = cli(machines, example, "plan", "--refresh-only", "--detailed-exitcode", check=False)
        assert drift.returncode == 2 and "deployment.diabetes.blue" in drift.stdout, drift.stdout
        back = until(
            lambda: (b := shown(machines, example))["ready_instances"] == 2 and b, 90, "capacity back on the head"
        )
        restored = time.monotonic()
        assert {i["upstream"].removeprefix("tcp:").rsplit(":", 1)[0] for i in back["instances"]} == {head.address}
        before = load.total()
        until(lambda: load.total() > before + 20, 120, "the load is served after the node's loss")
    print(f"worker killed: dead for the GCS after {dead - killed:.1f}s, capacity back {restored - dead:.1f}s after")
    assert lost is not None
    # only requests in flight on the lost node's server may fail: at most one per client of the load
    assert len(load.failures) <= len(load.threads), load.failures
    assert "No drift." in cli(machines, example, "plan", "--refresh-only").stdout
