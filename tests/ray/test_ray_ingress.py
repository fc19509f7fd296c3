"""The endpoint hosts in the cluster (`ray.ingress: cluster`) on the three machines (tests/ray/raymachines.py): the
example applied from the client machine runs one host on each node, each listening on its node's address and
scoring over HTTPS (the project's self-signed certificate, verified for the public name a Service would have);
regenerated keys reach both; a host killed (by PID) under load at concurrency 8 fails none of the requests sent to
the other, and comes back (its actor starts it again) configured, and so does its actor's process (Ray restarts
it); the state folder copied to a fresh folder, the first one gone, plans no changes and invokes; the worker node
killed by PID under a load at concurrency 8 on the head's host: its host is reported lost (waiting for a node of its
own) and is drift, capacity comes back on the head, at most the requests in flight on the lost server fail, and the
host starts on the worker when it rejoins, in that order; `destroy` with no cluster reachable is a
clear error naming what it could not remove that changes nothing; `destroy` removes everything."""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from e2e_support import Load
from rayexample import example_project
from raymachines import joined

from mlctl.waiting import Timeout, wait_until

pytestmark = pytest.mark.ray

SCORE = """
import http.client, socket, ssl, sys
host, port, key, ca, name = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[5], sys.argv[6]
body = open(sys.argv[4], "rb").read()
context = ssl.create_default_context(cafile=ca)  # the certificate verified for the endpoint's public name
conn = http.client.HTTPSConnection(name, port, timeout=60, context=context)
conn.sock = context.wrap_socket(socket.create_connection((host, port), 60), server_hostname=name)
headers = {"Content-Type": "application/json", "Authorization": "Bearer " + key}
conn.request("POST", "/score", body=body, headers=headers)
answer = conn.getresponse()
print(answer.status, answer.read().decode(errors="replace"))
"""
PUBLIC_NAME = "scoring.test"  # the name a Service in front would have (the certificate carries it)
ACTORS = """
import json, sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
groups = [g["name"] for g in ray.util.placement_group_table().values() if g["state"] != "REMOVED"]
print(json.dumps(sorted([a["name"] for a in ray.util.list_named_actors(all_namespaces=True)] + groups)))
"""  # the names of the actors and placement groups mlctl made (mlctl_actors)


def cli(machines, root, *args, check: bool = True) -> subprocess.CompletedProcess:
    """mlctl run on the client machine."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = machines.client.run([sys.executable, "-m", "mlctl.cli", "-C", str(root), *args], timeout=1200, env=env)
    assert not check or out.returncode == 0, (
        f"mlctl {' '.join(args)} exited {out.returncode}\n{out.stdout}\n{out.stderr}"
    )
    return out


def until(condition, timeout: float, what: str):
    """The condition's first true value, polled every 0.5 s; fails naming `what` after `timeout` s (generous)."""
    try:
        return wait_until(condition, timeout, what, interval=0.5)
    except Timeout:
        pytest.fail(f"not within {timeout:.0f}s: {what}")


def hosts(machines, root) -> list[dict]:
    """The endpoint's hosts as `show` reports them ([] when none runs)."""
    shown = cli(machines, root, "show", "diabetes", "--json", check=False)
    if shown.returncode != 0:
        return []
    return (json.loads(shown.stdout).get("host") or {}).get("hosts") or []


def lost_host(machines, root) -> dict | None:
    """The first host `show` reports not running, None when all run (or `show` does not answer)."""
    return next((h for h in hosts(machines, root) if not h["running"]), None)


def blue(machines, root) -> dict:
    """The blue deployment as `show` reports it."""
    return json.loads(cli(machines, root, "show", "diabetes", "--json").stdout)["deployments"]["blue"]


def score(machines, host: dict, key: str, request: Path, ca: Path) -> str:
    """The status and body a host answers a scoring request over HTTPS with, from the client machine."""
    args = [sys.executable, "-c", SCORE, host["node_ip"], str(host["port"]), key, str(request), str(ca), PUBLIC_NAME]
    return machines.client.run(args, timeout=120).stdout.strip()


def mlctl_actors(machines) -> list[str]:
    """The names of the named actors and live placement groups mlctl made in the cluster."""
    done = machines.client.run([sys.executable, "-c", ACTORS, machines.address], timeout=120, env=machines.env)
    assert done.returncode == 0, done.stderr[-2000:]
    return [n for n in json.loads(done.stdout.strip().splitlines()[-1]) if n.startswith("mlctl-")]


@pytest.fixture
def example(tmp_path, ray_machines_restored):
    root = example_project(tmp_path / "diabetes", ray_machines_restored.address, instances=2)
    with open(root / "mlctl.yaml", "a") as f:
        f.write(f"  ingress: cluster\nlisten:\n  address: 0.0.0.0\n  tls: self-signed\n  public_name: {PUBLIC_NAME}\n")
    with open(root / "blue-deployment.yml", "a") as f:  # room for a load of 8 clients on one host (no 429)
        f.write("request_settings:\n  max_concurrent_requests_per_instance: 4\n")
    yield root
    for folder in (root, tmp_path / "copy"):
        if folder.exists():
            cli(ray_machines_restored, folder, "destroy", "--auto-approve", check=False)


def test_hosts_in_the_cluster_serve_from_both_nodes_survive_a_killed_host_and_any_machine_with_the_state(
    example, ray_machines_restored, tmp_path
):
    machines = ray_machines_restored
    request = example / "sample-request.json"
    assert "Apply complete!" in cli(machines, example, "apply", "--auto-approve").stdout
    found = until(lambda: (h := hosts(machines, example)) and all(x["running"] for x in h) and h, 120, "hosts run")
    everywhere = {machines.head.address, machines.worker.address}
    assert {h["node_ip"] for h in found} == everywhere, found
    assert len({h["port"] for h in found}) == 1  # one port for a load balancer in front
    assert not (example / ".mlctl" / "secrets").exists()  # the keys live in the cluster only
    ca = example / ".mlctl" / "tls" / "ca.pem"  # the project's CA (tls: self-signed)
    old = json.loads(cli(machines, example, "keys", "diabetes", "--json").stdout)["primaryKey"]
    for host in found:
        assert score(machines, host, old, request, ca).startswith("200 "), host

    assert "primary" in cli(machines, example, "keys", "diabetes", "--regenerate", "primary").stdout.lower()
    new = json.loads(cli(machines, example, "keys", "diabetes", "--json").stdout)["primaryKey"]
    assert new != old
    for host in found:  # every host took the new key before `keys` returned
        assert score(machines, host, old, request, ca).startswith("401 "), host
        assert score(machines, host, new, request, ca).startswith("200 "), host

    logs = cli(machines, example, "logs", "diabetes").stdout  # each host's own log, read on its node
    assert logs.count("==> mlctl-") == 2 and logs.count("listening on https://") == 2, logs
    loose = ssl.create_default_context(cafile=str(ca))
    loose.check_hostname = False  # (the load connects to a node's address; the names are checked above)
    on_head = next(h for h in found if h["node_ip"] == machines.head.address)
    on_worker = next(h for h in found if h["node_ip"] == machines.worker.address)
    with (
        joined(machines.client),
        Load(on_head["port"], new, request.read_bytes(), host=on_head["node_ip"], clients=8, context=loose) as load,
    ):
        until(lambda: load.total() > 40, 300, "the load is served by the head's host")
        back = on_worker
        for killed in ("pid", "actor_pid"):  # the host process (its actor starts it again), then its actor (Ray does)
            os.kill(back[killed], signal.SIGKILL)
            gone = back
            back = until(
                lambda: next(
                    (
                        h
                        for h in hosts(machines, example)
                        if h["node_ip"] == machines.worker.address and h["running"] and h[killed] != gone[killed]
                    ),
                    None,
                ),
                180,
                f"the host is back after its {killed} was killed",
            )
            until(
                lambda: score(machines, back, new, request, ca).startswith("200 "),
                120,
                f"the host is configured again after its {killed} was killed",
            )
        before = load.total()
        until(lambda: load.total() > before + 40, 120, "the load goes on")
    assert not load.failures, load.failures[:5]  # no request sent to the other host failed
    assert back["port"] == on_worker["port"]

    body = request.read_bytes()
    copy = tmp_path / "copy"
    shutil.copytree(example, copy, symlinks=True)
    shutil.rmtree(example)  # the machine that applied is gone
    planned = cli(machines, copy, "plan", "--detailed-exitcode", check=False)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    answer = cli(machines, copy, "invoke", "diabetes", "--request-file", str(copy / "sample-request.json"))
    assert len(json.loads(answer.stdout)) == 2  # over HTTPS, verified for the public name, from the copy

    # the worker node lost (its processes killed by PID) under a load of 8 HTTPS clients on the head's host: its host
    # and its scoring server are reported lost soon after the GCS marks the node dead, as drift, and capacity comes
    # back on the head, in that order; only requests in flight on the worker's server fail (at most its 4 slots)
    # (deadlines for CI on 2 shared cores, where the 3x of 5 s and 30 s were missed at load 37: the figures
    # themselves are bench/ray/failover.py's)
    with (
        joined(machines.client),
        Load(on_head["port"], new, body, host=on_head["node_ip"], clients=8, context=loose) as load,
    ):
        until(lambda: load.total() > 40, 300, "the load is served before the worker is killed")
        machines.worker.kill()
        machines.wait_nodes(lambda n: machines.worker.address not in n, 60, "the GCS marks the worker dead")
        times = {"dead": time.monotonic()}
        lost = until(lambda: lost_host(machines, copy), 45, "show reports the worker's host lost")  # 23.7 s at load 37
        times["reported"] = time.monotonic()
        assert lost["index"] == on_worker["index"] and "waits for a node of its own" in lost["problem"], lost
        drift = cli(machines, copy, "plan", "--refresh-only", "--detailed-exitcode", check=False)
        assert drift.returncode == 2 and "endpoint.diabetes" in drift.stdout and "hosts_lost" in drift.stdout, drift
        until(lambda: blue(machines, copy)["ready_instances"] == 2, 180, "capacity back on the head")  # 85 s at load 37
        times["capacity back"] = time.monotonic()
        before = load.total()
        until(lambda: load.total() > before + 40, 120, "the load goes on after the node's loss")
    assert len(load.failures) <= 4, load.failures  # at most the requests in flight on the lost server
    # its host waits for a node of its own (the head's port is its peer's) and starts there when the worker rejoins
    assert [h["node_ip"] for h in hosts(machines, copy) if h["running"]] == [machines.head.address]
    assert lost_host(machines, copy)["index"] == on_worker["index"]
    machines.worker.start()
    times["rejoined"] = time.monotonic()
    until(
        lambda: not lost_host(machines, copy) and {h["node_ip"] for h in hosts(machines, copy)} == everywhere,
        180,
        "the host runs on the rejoined worker",
    )
    times["host back"] = time.monotonic()
    print(  # the figures (bench/ray measures them on demand): seconds after the GCS marked the node dead / it rejoined
        f"worker lost: its host reported lost after {times['reported'] - times['dead']:.1f}s, capacity back after "
        f"{times['capacity back'] - times['dead']:.1f}s; worker rejoined: its host back after "
        f"{times['host back'] - times['rejoined']:.1f}s"
    )
    # (the host that started again configures itself from the cluster: its deployment's instances get ready)
    until(lambda: "No drift." in cli(machines, copy, "plan", "--refresh-only").stdout, 120, "no drift, the host back")

    project = (copy / "mlctl.yaml").read_text()
    (copy / "mlctl.yaml").write_text(project.replace(machines.address, "10.213.0.254:6379"))
    state = (copy / ".mlctl" / "state.json").read_bytes()
    refused = cli(machines, copy, "destroy", "--auto-approve", check=False)
    said = refused.stdout + refused.stderr
    assert refused.returncode == 1 and "10.213.0.254:6379" in said and "destroy removed nothing" in said, refused
    assert "endpoint.diabetes" in said and "deployment.diabetes.blue" in said, said  # what it could not remove
    assert "Traceback" not in refused.stdout + refused.stderr
    assert (copy / ".mlctl" / "state.json").read_bytes() == state  # nothing changed locally
    (copy / "mlctl.yaml").write_text(project)

    made = mlctl_actors(machines)
    assert any("-ingress-" in n for n in made) and any(n.endswith("-ingress") for n in made), made  # and the group
    cli(machines, copy, "destroy", "--auto-approve")
    until(lambda: not [n for n in mlctl_actors(machines) if "-ingress" in n], 60, "no host actor and no group left")
