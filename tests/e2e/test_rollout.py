"""Issue 7: the documented safe rollout under load with zero failed requests, a failing green,
and an endpoint host killed (drift -> apply restores it on the same port with the same keys)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml
from e2e_support import REPO, Endpoint, Load, alive, keys, mlctl, wait_until


def test_safe_rollout_under_load_fails_no_request(split_project):
    p, root = split_project, split_project.root
    c = 4  # max_concurrent_requests_per_instance: room for the clients (Azure's 429 rule otherwise)
    p.write({"blue": 100}, {"blue": {"concurrency": c}})
    mlctl(root, "apply", "--auto-approve")
    key = keys(root, "split")["primaryKey"]
    port = Endpoint(root, "split").port
    steps = [
        ("scale blue to 2", {"blue": 100}, {"blue": {"count": 2, "concurrency": c}}, None),
        (
            "green at 0%",
            {"blue": 100, "green": 0},
            {"blue": {"count": 2, "concurrency": c}, "green": {"concurrency": c}},
            None,
        ),
        (
            "mirror 10% to green",
            {"blue": 100, "green": 0},
            {"blue": {"count": 2, "concurrency": c}, "green": {"concurrency": c}},
            {"green": 10},
        ),
        (
            "90/10",
            {"blue": 90, "green": 10},
            {"blue": {"count": 2, "concurrency": c}, "green": {"concurrency": c}},
            None,
        ),
        (
            "0/100",
            {"blue": 0, "green": 100},
            {"blue": {"count": 2, "concurrency": c}, "green": {"concurrency": c}},
            None,
        ),
        ("blue removed", {"green": 100}, {"green": {"concurrency": c}}, None),
    ]
    with Load(port, key) as load:
        assert wait_until(lambda: load.total() > 20)
        for name, traffic, deployments, mirror in steps:
            before = load.total()
            p.write(traffic, deployments, mirror)
            out = mlctl(root, "apply", "--auto-approve")
            assert "Apply complete!" in out.stdout, name
            assert load.total() > before, f"no requests were sent while applying {name}"
            assert wait_until(lambda before=before: load.total() > before + 20), f"no requests after {name}"
            if name == "green at 0%":  # green called alone by header, while blue takes all traffic
                ep = Endpoint(root, "split")
                assert all(json.loads(ep.score(key=key, deployment="green")[1])["who"] == "green" for _ in range(10))
                ep.close()
            shown = json.loads(mlctl(root, "show", "split", "--json").stdout)
            assert shown["traffic"] == traffic, name
            assert shown["mirror_traffic"] == (mirror or {}), name
    assert load.failures == [], load.failures[:5]
    assert load.served["blue"] > 0 and load.served["green"] > 0
    assert load.total() >= 200


def test_failing_green_leaves_blue_serving_everything(split_project):
    p, root = split_project, split_project.root
    p.write({"blue": 100}, {"blue": {}})
    mlctl(root, "apply", "--auto-approve")
    p.write({"blue": 90, "green": 10}, {"blue": {}, "green": {"fail": True}})
    out = mlctl(root, "apply", "--auto-approve", check=False)
    assert out.returncode == 1 and "RuntimeError: init failed on purpose in green" in out.stderr
    key = keys(root, "split")["primaryKey"]
    ep = Endpoint(root, "split")
    assert {json.loads(ep.score(key=key)[1])["who"] for _ in range(30)} == {"blue"}
    ep.close()
    assert json.loads(mlctl(root, "show", "split", "--json").stdout)["traffic"] == {"blue": 100}
    state = json.loads((root / ".mlctl" / "state.json").read_text())
    assert state["resources"]["deployment.split.green"]["status"] == "failed" and state["pending"] is None
    assert state["resources"]["traffic.split"]["attributes"]["traffic"] == {"blue": 100}
    retry = mlctl(root, "plan", "--detailed-exitcode", check=False)  # the next plan retries it
    assert retry.returncode == 2 and "deployment.split.green" in retry.stdout and "failed earlier" in retry.stdout
    p.write({"blue": 90, "green": 10}, {"blue": {}, "green": {}})  # fixed: the retry converges
    mlctl(root, "apply", "--auto-approve")
    assert json.loads(mlctl(root, "show", "split", "--json").stdout)["traffic"] == {"blue": 90, "green": 10}
    assert mlctl(root, "plan", "--detailed-exitcode", check=False).returncode == 0


VERSION = """
def run(raw_data):
    return {"who": who, "version": %r}
"""


def test_replace_failed_replace_and_scale_down_under_load_fail_no_request(split_project):
    """A code edit replaces blue health-gated (+/-); a replacement whose init() raises leaves the old
    instances serving, exit 1 with the traceback, state failed; a scale down drains in place."""
    p, root = split_project, split_project.root
    score = root / "code" / "score.py"
    base = score.read_text()
    p.write({"blue": 100}, {"blue": {"count": 2, "concurrency": 4}})
    mlctl(root, "apply", "--auto-approve")
    key = keys(root, "split")["primaryKey"]
    ep = Endpoint(root, "split")

    def versions():
        return {json.loads(ep.score(key=key)[1]).get("version") for _ in range(20)}

    with Load(ep.port, key) as load:
        assert wait_until(lambda: load.total() > 20)
        score.write_text(base + VERSION % "v2")
        plan = mlctl(root, "plan")
        assert "deployment.split.blue" in plan.stdout and "+/-" in plan.stdout
        before = load.total()
        mlctl(root, "apply", "--auto-approve")
        assert load.total() > before and versions() == {"v2"}

        score.write_text(
            base.replace(
                'raise RuntimeError("init failed on purpose in " + who)',
                'raise RuntimeError("v3 init failed on purpose in " + who)',
            ).replace('if os.environ.get("FAIL_INIT"):', "if True:")
        )
        before = load.total()
        failed = mlctl(root, "apply", "--auto-approve", check=False)
        assert failed.returncode == 1 and "Traceback" in failed.stderr
        assert "RuntimeError: v3 init failed on purpose in blue" in failed.stderr
        assert load.total() > before and versions() == {"v2"}  # the old instances serve on
        state = json.loads((root / ".mlctl" / "state.json").read_text())
        assert state["resources"]["deployment.split.blue"]["status"] == "ready"  # v2 serves and is the record
        assert state["resources"]["deployment.split.blue"]["failed_roll"]
        retry = mlctl(root, "plan")  # retried, and said why
        assert "deployment.split.blue" in retry.stdout and "reason: failed earlier" in retry.stdout
        shown = json.loads(mlctl(root, "show", "split", "--json").stdout)["deployments"]["blue"]
        assert shown["ready_instances"] == 2
        # said once, with its cause (issue 31): not "failed to roll: deployment 'blue' failed: instance 0 ..."
        error = next(line for line in failed.stderr.splitlines() if line.startswith("Error: "))
        assert error.startswith("Error: apply failed at deployment.split.blue: instance "), error
        assert "failed to roll" not in error and "deployment 'blue'" not in error, error
        assert error.endswith("init() raised RuntimeError: v3 init failed on purpose in blue"), error

        score.write_text(base + VERSION % "v2")  # reverted: v2 serves and is the record, nothing to do
        reverted = mlctl(root, "plan", "--detailed-exitcode", check=False)
        assert reverted.returncode == 0 and "No changes" in reverted.stdout, reverted.stdout

        score.write_text(base + VERSION % "v4")
        p.write({"blue": 100}, {"blue": {"count": 1, "concurrency": 4}})  # fixed, and scaled down
        before = load.total()
        mlctl(root, "apply", "--auto-approve")
        assert load.total() > before and versions() == {"v4"}
        p.write({"blue": 100}, {"blue": {"count": 2, "concurrency": 4}})  # scale up in place
        plan = mlctl(root, "plan")
        assert (
            "~ deployment.split.blue" in plan.stdout or "deployment.split.blue will be updated in place" in plan.stdout
        ), plan.stdout
        mlctl(root, "apply", "--auto-approve")
        p.write({"blue": 100}, {"blue": {"count": 1, "concurrency": 4}})  # and down again, in place
        mlctl(root, "apply", "--auto-approve")
        assert wait_until(lambda: load.total() > before + 100)
    ep.close()
    assert load.failures == [], load.failures[:5]
    assert mlctl(root, "plan", "--detailed-exitcode", check=False).returncode == 0
    shown = json.loads(mlctl(root, "show", "split", "--json").stdout)["deployments"]["blue"]
    assert shown["ready_instances"] == 1 and len(shown["instances"]) == 1


def test_killed_endpoint_host_is_drift_and_apply_restores_port_and_keys(split_project):
    p, root = split_project, split_project.root
    p.write({"blue": 100}, {"blue": {}})
    mlctl(root, "apply", "--auto-approve")
    before = json.loads(mlctl(root, "show", "split", "--json").stdout)
    k = keys(root, "split")
    host = before["host"]["pid"]
    instances = [i["pid"] for i in before["deployments"]["blue"]["instances"]]
    os.killpg(host, signal.SIGKILL)
    assert wait_until(lambda: not alive(host) and not any(alive(i) for i in instances))

    plan = mlctl(root, "plan", "--detailed-exitcode", check=False)
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert "drift" in plan.stdout and "endpoint.split" in plan.stdout
    drift = nightly_drift_check(root)  # the examples/ci nightly recipe, as written
    assert drift.returncode == 2 and "endpoint.split" in drift.stdout
    assert "::error::mlctl found drift" in drift.stdout

    mlctl(root, "apply", "--auto-approve")
    after = json.loads(mlctl(root, "show", "split", "--json").stdout)
    assert after["host"]["port"] == before["host"]["port"]
    assert after["host"]["pid"] != host
    assert keys(root, "split") == k
    ep = Endpoint(root, "split")
    assert ep.score(key=k["primaryKey"])[0] == 200
    ep.close()
    assert mlctl(root, "plan", "--detailed-exitcode", check=False).returncode == 0
    assert nightly_drift_check(root).returncode == 0
    p.write({"blue": 100}, {"blue": {"count": 2}})  # a config edit is not drift
    assert nightly_drift_check(root).returncode == 0
    assert mlctl(root, "plan", "--detailed-exitcode", check=False).returncode == 2


def nightly_drift_check(root):
    """Run the drift step of examples/ci/nightly-drift.yml with PROJECT set to `root`."""
    workflow = yaml.safe_load((REPO / "examples" / "ci" / "nightly-drift.yml").read_text())
    step = next(s for s in workflow["jobs"]["drift"]["steps"] if "mlctl" in s.get("run", ""))
    env = {**os.environ, "PROJECT": str(root), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        capture_output=True,
        text=True,
        env=env,
        cwd=root.parent,
        timeout=120,
        check=False,
    )
