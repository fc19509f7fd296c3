"""The ray tests' cluster of three machines (tests/ray/raymachines.py): each namespace has its own address and the
machine's own namespace none of them; a killed node is dead for the GCS within seconds and comes back under a new
id. (A driver on the client machine reaching both nodes, which see no mlctl cache and no test folder:
tests/ray/test_packages.py.)"""

from __future__ import annotations


import pytest

pytestmark = pytest.mark.ray


def test_three_machines_have_their_own_addresses_and_ours_has_none(ray_machines):
    ours = ray_machines.home_interfaces()  # the machine's own namespace, where this process started
    assert ours == ray_machines.home_before  # the cluster added nothing there (stop checks it again)
    machines = (ray_machines.head.machine, ray_machines.worker.machine, ray_machines.client)
    assert all(m.address not in ours for m in machines) and "mlctl-" not in ours and "10.213." not in ours
    for machine in machines:  # no default route: traffic reaches nothing outside the three namespaces
        routes = machine.run(["ip", "route"], check=True).stdout + machine.run(["ip", "-6", "route"], check=True).stdout
        assert "default" not in routes and "10.213.0.0/24" in routes, routes
    here = ray_machines.client.run(["ip", "-o", "addr"], check=True).stdout
    assert ray_machines.client.address in here and ray_machines.head.address not in here
    assert set(ray_machines.alive_nodes()) == {ray_machines.head.address, ray_machines.worker.address}
    version = ray_machines.mlctl(".", "--version", check=False)  # the CLI runs on the client machine too
    assert version.returncode == 0 and "mlctl" in version.stdout.lower(), version


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
