"""The ray tests' cluster of three machines (tests/ray/raymachines.py): each namespace has its own address and the
machine's own namespace none of them; a driver on the client machine reaches both nodes, which see no mlctl cache
and no test folder; a killed node is dead for the GCS within seconds and comes back under a new id."""

from __future__ import annotations

import json
import os
import sys

import pytest

pytestmark = pytest.mark.ray

# run on the client machine: which node each task ran on and what it saw there
WHERE = """
import json, os, sys
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

address, nodes, paths = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
ray.init(address, namespace="mlctl-tests-where", log_to_driver=False)

@ray.remote(num_cpus=0, max_retries=0)
def look(paths):
    return ray.util.get_node_ip_address(), {p: sorted(os.listdir(p)) if os.path.isdir(p) else None for p in paths}

pinned = [look.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)).remote(paths) for n in nodes]
print(json.dumps(ray.get(pinned, timeout=300)))
"""


def test_three_machines_have_their_own_addresses_and_ours_has_none(ray_machines):
    ours = ray_machines.home_interfaces()  # the machine's own namespace, where this process started
    assert ours == ray_machines.home_before  # the cluster added nothing there (stop checks it again)
    machines = (ray_machines.head.machine, ray_machines.worker.machine, ray_machines.client)
    assert all(m.address not in ours for m in machines) and "mlctl-" not in ours and "10.213." not in ours
    here = ray_machines.client.run(["ip", "-o", "addr"], check=True).stdout
    assert ray_machines.client.address in here and ray_machines.head.address not in here
    assert set(ray_machines.alive_nodes()) == {ray_machines.head.address, ray_machines.worker.address}


def test_a_driver_on_the_client_machine_runs_on_both_nodes_which_see_no_cache_and_no_test_folder(
    ray_machines, mlctl_cache, tmp_path
):
    (tmp_path / "project.txt").write_text("only on the client machine")
    (mlctl_cache / "marker-of-the-client").write_text("only on the client machine")
    try:
        nodes = ray_machines.alive_nodes()
        paths = [str(mlctl_cache), str(tmp_path)]
        out = ray_machines.client.run(
            [sys.executable, "-c", WHERE, ray_machines.address, json.dumps(list(nodes.values())), json.dumps(paths)],
            timeout=600,
            env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
        )
        assert out.returncode == 0, out.stderr[-3000:]
        seen = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        (mlctl_cache / "marker-of-the-client").unlink()
    assert sorted(ip for ip, _ in seen) == sorted(nodes)  # one task on each node, which has its own address
    for _, listed in seen:
        # the cache is an empty tmpfs there; the test's folder is under the covered temporary root
        assert listed[str(mlctl_cache)] == [] and listed[str(tmp_path)] is None, listed


def test_a_killed_node_is_dead_within_seconds_and_restarts_under_a_new_id(ray_machines_restored):
    worker, head = ray_machines_restored.worker, ray_machines_restored.head
    before = ray_machines_restored.alive_nodes()
    worker.kill()
    assert worker.machine.pids() == []  # every process of the machine is gone, killed by PID
    # Ray's health checks are tuned to about 3 s (raymachines.HEALTH); 3x that and more for a crowded machine
    after = ray_machines_restored.wait_nodes(
        lambda n: worker.address not in n, 30, "the GCS marks the killed node dead"
    )
    assert after == {head.address: before[head.address]}
    worker.start()
    back = ray_machines_restored.wait_nodes(lambda n: worker.address in n, 120, "the restarted node is alive")
    assert back[worker.address] != before[worker.address] and back[head.address] == before[head.address]
