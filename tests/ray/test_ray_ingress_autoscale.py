"""Autoscaling with the endpoint hosts in the cluster (`ray.ingress: cluster`, issue 29) on the three machines
(tests/ray/raymachines.py): each node's host sees only the requests sent to it, and they share their figures through
the cluster (mlctl/runtime/ray/loadshare.py). A bounded load of 2 clients on each host, range [1, 3], 2 slots per
instance, target 50 %: alone, each host would see about 1.8 requests in flight on 1 instance and stop at 2 (then
45 %); on the sum (about 3.6) they scale to 3, host 0 leading and host 1 following it. After the load both scale back
to 1 after the short window, no request failed, and both hosts' own reports (read from each, through Ray) agree.
The leader lost (its actor's process stopped), the other host leads until it is back.
Issue 28's same-node hop: a host reaches a replica on its own node through the server's unix socket, one on the
other node over TCP (its instance records say which), and scores through both. Orders of events and generous
deadlines, never timings."""

from __future__ import annotations

import json
import os
import signal
import ssl
import sys

import pytest
from e2e_support import Load
from rayexample import example_project
from raymachines import joined
from test_ray_ingress import cli, hosts, until

from mlctl.runtime.ray import apps

pytestmark = pytest.mark.ray

SCORE = """\
import os, time

def init():
    pass

def run(raw_data):
    time.sleep(0.05)
    return {"who": os.environ.get("WHO", "blue")}
"""
SCALING = """\
scale_settings:
  type: target_utilization
  min_instances: 1
  max_instances: 3
  target_utilization_percentage: 50
  polling_interval: 1
  stabilization_window: 5
request_settings:
  max_concurrent_requests_per_instance: 2
  request_timeout_ms: 60000
readiness_probe:
  initial_delay: 0
  period: 1
  failure_threshold: 60
"""
CLIENTS_PER_HOST = 2
REPORTS = """
import json, sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
from mlctl.runtime.ray import ingresshosts
out = []
for r in ingresshosts.reports(sys.argv[2], sys.argv[3]):
    blue = ((r.get("status") or {}).get("deployments") or {}).get("blue") or {}
    out.append({
        "index": r["index"], "node_id": r["node_id"], "count": blue.get("instance_count"),
        "autoscale": blue.get("autoscale"),
        "hops": [[i.get("upstream"), i.get("node_id")] for i in blue.get("instances") or []],
    })
print(json.dumps(out))
"""  # each host's own report of blue, asked of its actor
ROLE = """
import json, sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
from mlctl.runtime.ray import ingresshosts
handle = dict(ingresshosts.indexed_handles(sys.argv[2], sys.argv[3]))[int(sys.argv[4])]
status = ray.get(handle.status.remote(), timeout=60)["status"] or {}
print(json.dumps(((status.get("deployments") or {}).get("blue") or {}).get("autoscale") or {}))
"""  # one host's autoscale report (the other's actor may be stopped)


@pytest.fixture
def example(tmp_path, ray_machines_restored):
    root = example_project(tmp_path / "diabetes", ray_machines_restored.address)
    with open(root / "mlctl.yaml", "a") as f:
        f.write("  ingress: cluster\nlisten:\n  address: 0.0.0.0\n  tls: self-signed\n")
    (root / "onlinescoring" / "score.py").write_text(SCORE)
    blue = root / "blue-deployment.yml"
    blue.write_text(blue.read_text().replace("instance_count: 1\n", SCALING))
    yield root
    cli(ray_machines_restored, root, "destroy", "--auto-approve", check=False)


def reports(machines, root) -> list[dict]:
    """Each host's own report of blue: index, instance count, autoscale status."""
    owner = apps.owner_of(root / ".mlctl")
    done = machines.client.run([sys.executable, "-c", REPORTS, machines.address, owner, "diabetes"], timeout=120)
    if done.returncode != 0:
        return []
    return json.loads(done.stdout.strip().splitlines()[-1])


def hops(found: list[dict]) -> list[str]:
    """Pure: how each host reaches each instance, "unix" or "tcp", checked against where they run: a host reaches a
    replica on its own node through the server's unix socket, one on the other node over TCP."""
    out = []
    for host in found:
        for upstream, node in host["hops"]:
            kind = upstream.partition(":")[0]
            assert kind == ("unix" if node == host["node_id"] else "tcp"), (host["index"], upstream, node, found)
            out.append(kind)
    return sorted(out)


def role(machines, root, index: int) -> str:
    """Host `index`'s role in the decisions ("leads", "follows host N"), "" when it hears no other host."""
    owner = apps.owner_of(root / ".mlctl")
    argv = [sys.executable, "-c", ROLE, machines.address, owner, "diabetes", str(index)]
    done = machines.client.run(argv, timeout=120)
    if done.returncode != 0:
        return ""
    return (json.loads(done.stdout.strip().splitlines()[-1]).get("hosts") or {}).get("role") or ""


def counts(machines, root) -> list:
    return [r["count"] for r in reports(machines, root)]


def test_hosts_in_the_cluster_scale_on_their_summed_load_and_agree(example, ray_machines_restored):
    machines = ray_machines_restored
    assert "Apply complete!" in cli(machines, example, "apply", "--auto-approve").stdout
    found = until(lambda: (h := hosts(machines, example)) and all(x["running"] for x in h) and h, 180, "hosts run")
    assert len(found) == 2, found
    key = json.loads(cli(machines, example, "keys", "diabetes", "--json").stdout)["primaryKey"]
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # (the names are ingress tests' concern)
    # both hosts hear each other: host 0 leads, host 1 follows it
    roles = until(
        lambda: (r := reports(machines, example)) and all((x["autoscale"] or {}).get("hosts") for x in r) and r,
        60,
        "the hosts hear each other",
    )
    assert [x["autoscale"]["hosts"]["role"] for x in roles] == ["leads", "follows host 0"], roles
    # one replica, on one of the nodes: its node's host reaches it through the unix socket, the other over TCP
    assert [r["count"] for r in roles] == [1, 1] and hops(roles) == ["tcp", "unix"], roles

    with joined(machines.client):
        loads = [
            Load(h["port"], key, b"{}", host=h["node_ip"], clients=CLIENTS_PER_HOST, context=context) for h in found
        ]
        for load in loads:
            load.__enter__()
        try:
            # alone, each host would stop at 2 (about 1.8 of 2 slots on 1 instance, then 45 % on 2): on the sum, 3
            until(lambda: counts(machines, example) == [3, 3], 300, "both hosts scale to 3 on their summed load")
            # each of the 3 replicas runs on a node with a host: each is one host's unix hop and the other's TCP
            until(lambda: hops(reports(machines, example)) == ["tcp"] * 3 + ["unix"] * 3, 120, "every hop in use")
            before = [load.total() for load in loads]
            until(lambda: all(load.total() > b + 20 for load, b in zip(loads, before)), 120, "both hosts serve")
        finally:
            for load in loads:
                load.__exit__(None, None, None)
    failed = [f for load in loads for f in load.failures]
    assert not failed, failed[:5]

    until(lambda: counts(machines, example) == [1, 1], 180, "both hosts scale back to 1 after the window")
    after = reports(machines, example)
    leader, follower = (r["autoscale"] for r in after)
    assert leader["desired"] == follower["desired"] == 1, after
    assert any(d["reason"].startswith("following host 0") for d in follower["decisions"]), follower["decisions"]
    assert not any(d["reason"].startswith("following") for d in leader["decisions"]), leader["decisions"]
    shown = json.loads(cli(machines, example, "show", "diabetes", "--json").stdout)["deployments"]["blue"]
    assert shown["instance_count"] == 1 and shown["autoscale"]["range"] == [1, 3], shown

    # the leader lost (its actor's process stopped: its figures no longer move): host 1 leads meanwhile, so scaling
    # never waits for it; once it runs again, host 0 leads again
    actor = next(h for h in found if h["index"] == 0)["actor_pid"]
    os.kill(actor, signal.SIGSTOP)
    try:
        until(lambda: role(machines, example, 1) == "leads", 120, "host 1 leads while host 0 is stopped")
    finally:
        os.kill(actor, signal.SIGCONT)
    until(lambda: role(machines, example, 1) == "follows host 0", 120, "host 0 leads again")
