"""The ray runtime on a real two-node Ray cluster (tests/ray/raymachines.py, from its client machine): the example
applied and scored through the gateway with a key, each instance a replica's scoring server reached directly
(which refuses requests that do not come through a host), scaled over both nodes, rolled blue to green under
load without a failed request, a broken init() refused, an application deleted outside mlctl restored,
another team's applications left alone, and destroy leaving no mlctl application."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys

import pytest
from e2e_support import Endpoint, Load, SplitProject, cleanup, keys, mlctl, wait_until
from rayexample import example_project, ray_project_file

from mlctl.runtime.ray import apps, cluster, directory

pytestmark = pytest.mark.ray


def direct(address: str, path: str = "/", body: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    """(status, body) of a request sent straight to a scoring server at "tcp:HOST:PORT", not through a host."""
    host, _, port = address.removeprefix("tcp:").rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request("POST" if body is not None else "GET", path, body=body, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


def serve_apps(address: str, prefix: str = "") -> dict:
    """{name: details} of the cluster's Serve applications whose names start with `prefix`."""
    cluster.connect(address)
    return {n: a for n, a in (cluster.details().get("applications") or {}).items() if n.startswith(prefix)}


def project_apps(address: str, root) -> dict:
    return serve_apps(address, apps.endpoint_prefix(apps.owner_of(root / ".mlctl")))


@pytest.fixture
def example(tmp_path, ray_cluster):
    root = example_project(tmp_path / "diabetes", ray_cluster.address)
    yield root
    cleanup(root)


@pytest.fixture
def split(tmp_path, ray_cluster):
    p = SplitProject(tmp_path / "proj", "split")
    ray_project_file(p.root, ray_cluster.address)
    yield p
    cleanup(p.root)


def test_example_applies_scores_scales_over_both_nodes_and_destroys(example, ray_cluster):
    out = mlctl(example, "apply", "--auto-approve")
    assert "Apply complete!" in out.stdout and "deploying Serve application mlctl-" in out.stdout
    # Ray's own warnings and Serve's INFO lines go to its log, not into mlctl's output (issue 31)
    said = out.stdout + out.stderr
    assert "Failed to determine local IP" not in said and "INFO" not in said and "WARNING" not in said, said
    k = keys(example, "diabetes")
    ep = Endpoint(example, "diabetes")
    body = (example / "sample-request.json").read_bytes()
    status, answer = ep.score(body, k["primaryKey"])
    assert status == 200, answer
    predictions = json.loads(answer)
    assert len(predictions) == 2 and all(isinstance(x, float) for x in predictions)
    assert ep.score(body, "not-" + k["primaryKey"])[0] == 401
    # the host closes a connection idle for 75 s (host/limits.py IDLE_S) and the scaling below may take longer
    # on a crowded machine: the scores after it are sent on a new connection (http.client opens it)
    ep.close()
    ((app, details),) = project_apps(ray_cluster.address, example).items()
    assert apps.status(details) == "RUNNING" and len(apps.replicas(details)) == 1
    # the host reaches the replica's scoring server directly (no Serve route, no relay); the server answers
    # nobody else: a request without the endpoint's hop secret, or with a wrong one, is refused
    (server,) = directory.servers(app)
    shown = json.loads(mlctl(example, "show", "diabetes", "--json").stdout)
    assert [i["upstream"] for i in shown["deployments"]["blue"]["instances"]] == [server["address"]]
    assert server["address"].startswith("tcp:")
    for headers in ({}, {"X-Mlctl-Hop": "guess"}, {"Authorization": f"Bearer {k['primaryKey']}"}):
        status, text = direct(server["address"], "/score", body, {"Content-Type": "application/json", **headers})
        assert status == 403 and b"answers only its endpoint's hosts" in text, (status, text)
    assert direct(server["address"])[0] == 403
    secret = directory.hop_secret(apps.endpoint_prefix(apps.owner_of(example / ".mlctl"), "diabetes"))
    assert direct(server["address"], headers={"X-Mlctl-Hop": secret})[0] == 200  # what the hosts send
    assert secret not in json.dumps(shown) and secret not in mlctl(example, "show", "diabetes").stdout

    logs = mlctl(example, "logs", "diabetes", "--deployment", "blue").stdout
    assert f"==> {app} replica 0" in logs and "Invoking user's init function" in logs  # the replica's own log
    assert secret not in logs and secret not in mlctl(example, "logs", "diabetes").stdout

    deployment = example / "blue-deployment.yml"
    deployment.write_text(deployment.read_text().replace("instance_count: 1", "instance_count: 3"))
    plan = mlctl(example, "plan").stdout
    assert "deployment.diabetes.blue" in plan and "instance_count" in plan
    mlctl(example, "apply", "--auto-approve")
    ((same, details),) = project_apps(ray_cluster.address, example).items()
    assert same == app  # scaled in place, not replaced
    running = [r for r in apps.replicas(details) if r["state"] == "RUNNING"]
    assert len(running) == 3 and len({r["node_id"] for r in running}) == 2  # spread over both nodes
    shown = json.loads(mlctl(example, "show", "diabetes", "--json").stdout)
    assert shown["deployments"]["blue"]["ready_instances"] == 3
    named = {i["replica_id"]: i["node_id"] for i in shown["deployments"]["blue"]["instances"]}
    assert named == {r["replica_id"]: r["node_id"] for r in running}  # each instance is a replica on its node
    upstreams = sorted(i["upstream"] for i in shown["deployments"]["blue"]["instances"])
    assert upstreams == sorted(s["address"] for s in directory.servers(same))  # each its own server, directly
    text = mlctl(example, "show", "diabetes").stdout
    assert text.count("Serve replica ") == 3 and "no local process" not in text, text
    logs = mlctl(example, "logs", "diabetes", "--deployment", "blue", "--lines", "400").stdout
    assert logs.count(f"==> {app} replica") == 3 and "cannot be read" not in logs  # read on both nodes
    assert logs.count("Invoking user's init function") == 3
    assert all(ep.score(body, k["primaryKey"]) == (200, answer) for _ in range(6))
    ep.close()
    assert "No changes." in mlctl(example, "plan").stdout

    mlctl(example, "destroy", "--auto-approve")
    assert project_apps(ray_cluster.address, example) == {}
    assert json.loads((example / ".mlctl" / "state.json").read_text())["resources"] == {}


def test_blue_to_green_under_load_fails_no_request_and_a_broken_init_is_refused(split, ray_cluster):
    # a request may take seconds through Serve on a crowded machine: a long timeout keeps the test about
    # failures of the rollout, not latency (408s would count as failures)
    root, s = split.root, {"concurrency": 4, "timeout_ms": 60000}
    split.write({"blue": 100}, {"blue": {"count": 2, **s}})
    mlctl(root, "apply", "--auto-approve")
    key = keys(root, "split")["primaryKey"]
    port = Endpoint(root, "split").port
    steps = [
        ({"blue": 100, "green": 0}, {"blue": {"count": 2, **s}, "green": s}),
        ({"blue": 0, "green": 100}, {"blue": {"count": 2, **s}, "green": s}),
        ({"green": 100}, {"green": s}),
    ]
    with Load(port, key) as load:
        assert wait_until(lambda: load.total() > 20, 60)
        for traffic, deployments in steps:
            before = load.total()
            split.write(traffic, deployments)
            assert "Apply complete!" in mlctl(root, "apply", "--auto-approve").stdout
            assert wait_until(lambda before=before: load.total() > before + 20, 60)
        green_apps = set(project_apps(ray_cluster.address, root))
        # a new version of green whose init() raises: refused with the replica's traceback, the old serves on
        split.write({"green": 100}, {"green": {**s, "fail": True}})
        failed = mlctl(root, "apply", "--auto-approve", check=False)
        assert failed.returncode == 1, failed.stdout
        assert "RuntimeError: init failed on purpose in green" in failed.stderr
        before = load.total()
        assert wait_until(lambda: load.total() > before + 20, 60)
    assert load.failures == [], load.failures[:5]
    assert load.served["blue"] > 0 and load.served["green"] > 0
    assert set(project_apps(ray_cluster.address, root)) == green_apps  # the failed application was deleted
    assert len(green_apps) == 1 and "-green-" in next(iter(green_apps))


FOREIGN = """
import sys
from ray import serve
from mlctl.runtime.ray import cluster

@serve.deployment(ray_actor_options={"num_cpus": 0.1})
def hello(request):
    return "team-x"

cluster.connect(sys.argv[1])
for name in sys.argv[2:]:
    serve.run(hello.bind(), name=name, route_prefix="/" + name)
"""


def test_drift_is_restored_and_applications_mlctl_did_not_create_are_left_alone(split, ray_cluster, tmp_path):
    """Another team's application and one with an mlctl-like name but no owner mark survive apply, drift
    repair and destroy; an mlctl application deleted outside mlctl is drift, and apply restores it."""
    cluster.connect(ray_cluster.address)
    owner = apps.owner_of(split.root / ".mlctl")
    lookalike = f"{apps.PREFIX}{owner}-split-blue-000000000000"  # our name, but no owner mark
    script = tmp_path / "foreign.py"
    script.write_text(FOREIGN)
    subprocess.run(
        [sys.executable, str(script), ray_cluster.address, "team-x", lookalike],
        check=True,
        capture_output=True,
        timeout=300,
    )
    split.write({"blue": 100}, {"blue": {}})
    mlctl(split.root, "apply", "--auto-approve")
    ((app, _),) = apps.owned(cluster.details(), owner).items()
    cluster.delete([app])
    drift = mlctl(split.root, "plan", "--refresh-only", "--detailed-exitcode", check=False)
    assert drift.returncode == 2 and "deployment.split.blue" in drift.stdout, drift.stdout
    assert "missing from Serve" in drift.stdout or "ready_instances" in drift.stdout
    mlctl(split.root, "apply", "--auto-approve")
    assert set(apps.owned(cluster.details(), owner)) == {app}
    ep = Endpoint(split.root, "split")
    assert wait_until(lambda: ep.score(key=keys(split.root, "split")["primaryKey"])[0] == 200, 60)
    assert "No changes." in mlctl(split.root, "plan").stdout
    # destroy with no cluster reachable: a clear error naming the address, and nothing changed locally (the
    # state still records what runs on the cluster, the host still serves)
    state = (split.root / ".mlctl" / "state.json").read_text()
    ray_project_file(split.root, "127.0.0.1:1")
    out = mlctl(split.root, "destroy", "--auto-approve", check=False)
    assert out.returncode == 1 and "no Ray cluster answers at 127.0.0.1:1" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and (split.root / ".mlctl" / "state.json").read_text() == state
    ep.close()  # (a new connection: the host closes one idle for 75 s)
    assert ep.score(key=keys(split.root, "split")["primaryKey"])[0] == 200
    ep.close()
    ray_project_file(split.root, ray_cluster.address)
    mlctl(split.root, "destroy", "--auto-approve")
    left = serve_apps(ray_cluster.address)
    assert {"team-x", lookalike} <= set(left)
    assert all(apps.status(left[n]) == "RUNNING" for n in ("team-x", lookalike))
    assert apps.owned(cluster.details(), owner) == {}
    cluster.delete(["team-x", lookalike])


def test_no_cluster_at_the_address_is_a_clear_error_and_changes_nothing(tmp_path):
    p = SplitProject(tmp_path / "proj", "split")
    ray_project_file(p.root, "127.0.0.1:1")
    p.write({"blue": 100}, {"blue": {}})
    out = mlctl(p.root, "apply", "--auto-approve", check=False)
    assert out.returncode == 1
    assert "no Ray cluster answers at 127.0.0.1:1" in out.stderr and "ray start --head" in out.stderr
    assert "Traceback" not in out.stderr
    assert (
        not (p.root / ".mlctl" / "state.json").exists()
        or json.loads((p.root / ".mlctl" / "state.json").read_text())["resources"] == {}
    )
