"""Issue 7: drift beyond a dead endpoint host. An instance that died and that the host could not
bring back (its restarts keep failing, so supervision is backing off) makes the plan non-empty with
reason drift, in `plan` and `plan --refresh-only`; `--refresh=false` does not see it; once the cause
is gone, apply restarts it at once and the plan is empty again."""

import json
import os
import signal

from e2e_support import Endpoint, alive, keys, mlctl, wait_until

SCORE = """\
import os

POISON = {poison!r}

def init():
    if os.path.exists(POISON):
        raise RuntimeError("the model is unreadable right now (" + POISON + ")")

def run(raw_data):
    return {{"who": os.environ.get("WHO", "?")}}
"""


def test_dead_instance_is_drift_and_apply_restarts_it(split_project, tmp_path):
    p, root = split_project, split_project.root
    poison = tmp_path / "poison"
    (root / "code" / "score.py").write_text(SCORE.format(poison=str(poison)))
    # the opt-out: its score.py reads a file in this test's /tmp folder, which a confined instance (as root) cannot
    # see; this test is about drift (confinement: tests/e2e/test_local_isolation.py)
    (root / "mlctl.yaml").write_text("local: {instance_user: mlctl}\n")
    p.write({"blue": 100}, {"blue": {"count": 2}})
    mlctl(root, "apply", "--auto-approve")
    assert mlctl(root, "plan", "--detailed-exitcode", check=False).returncode == 0

    shown = json.loads(mlctl(root, "show", "split", "--json").stdout)
    victim = shown["deployments"]["blue"]["instances"][1]
    poison.write_text("x")  # its restarts fail from now on
    os.kill(victim["pid"], signal.SIGKILL)

    def restart_failed():
        d = json.loads(mlctl(root, "show", "split", "--json").stdout)["deployments"]["blue"]
        return d["ready_instances"] == 1 and d["instances"][1]["restarts"] >= 1

    assert wait_until(restart_failed, timeout=60)
    assert not alive(victim["pid"])

    plan = mlctl(root, "plan", "--detailed-exitcode", check=False)
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert "deployment.split.blue" in plan.stdout and "drift" in plan.stdout
    drift = mlctl(root, "plan", "--refresh-only", "--detailed-exitcode", check=False)
    assert drift.returncode == 2 and "deployment.split.blue" in drift.stdout
    assert "ready_instances" in drift.stdout or "instance" in drift.stdout
    blind = mlctl(root, "plan", "--refresh=false", "--detailed-exitcode", check=False)
    assert blind.returncode == 0, blind.stdout  # the state alone says all is well

    ep = Endpoint(root, "split")  # the other instance serves meanwhile
    key = keys(root, "split")["primaryKey"]
    assert all(ep.score(key=key)[0] == 200 for _ in range(10))

    failed = mlctl(root, "apply", "--auto-approve", check=False)  # the cause is still there
    assert failed.returncode == 1 and "the model is unreadable right now" in failed.stderr, failed.stderr
    assert all(ep.score(key=key)[0] == 200 for _ in range(10))

    poison.unlink()
    out = mlctl(root, "apply", "--auto-approve")
    assert "Apply complete!" in out.stdout
    d = json.loads(mlctl(root, "show", "split", "--json").stdout)["deployments"]["blue"]
    assert d["ready_instances"] == 2 and all(alive(i["pid"]) for i in d["instances"])
    assert mlctl(root, "plan", "--detailed-exitcode", check=False).returncode == 0
    assert mlctl(root, "plan", "--refresh-only", "--detailed-exitcode", check=False).returncode == 0
    assert all(ep.score(key=key)[0] == 200 for _ in range(10))
    ep.close()


def test_traffic_and_instances_changed_outside_mlctl_are_drift_and_apply_puts_them_back(split_project):
    """Someone changes the running endpoint through its host's admin socket (not through mlctl):
    traffic moved and a deployment scaled. Both are drift in `plan --refresh-only`; apply restores."""
    from mlctl.runtime.host.client import HostClient

    p, root = split_project, split_project.root
    p.write({"blue": 80, "green": 20}, {"blue": {}, "green": {}})
    mlctl(root, "apply", "--auto-approve")
    host = HostClient.for_endpoint(root / ".mlctl", "split")
    host.set_traffic({"blue": 0, "green": 100})
    host.scale_deployment("blue", 2)

    drift = mlctl(root, "plan", "--refresh-only", "--detailed-exitcode", check=False)
    assert drift.returncode == 2, drift.stdout + drift.stderr
    assert "traffic.split" in drift.stdout and "deployment.split.blue" in drift.stdout
    assert "drift" in drift.stdout
    plan = mlctl(root, "plan", "--detailed-exitcode", check=False)
    assert plan.returncode == 2 and "traffic.split" in plan.stdout

    mlctl(root, "apply", "--auto-approve")
    status = host.status()
    assert status["traffic"] == {"blue": 80, "green": 20}
    assert status["deployments"]["blue"]["instance_count"] == 1
    assert mlctl(root, "plan", "--refresh-only", "--detailed-exitcode", check=False).returncode == 0
    assert mlctl(root, "plan", "--detailed-exitcode", check=False).returncode == 0
