"""Drift and interruption on the docker runtime (issue 14): containers stopped or removed outside mlctl
are left down by the endpoint host, are drift in `plan --refresh-only`, and apply restores them; a
container changed outside mlctl (`docker update`) is drift that apply replaces; a
killed endpoint host leaves its containers, which the next apply removes; apply killed (SIGKILL) at
hook points converges with no orphan container."""

import json
import os
import signal

from docker_support import containers_of, docker_split, engine_api  # noqa: F401
from e2e_support import Endpoint, alive, keys, mlctl, wait_until


def show(root):
    return json.loads(mlctl(root, "show", "dsplit", "--json").stdout)


def test_containers_stopped_or_removed_outside_mlctl_are_drift_and_restored(docker_split, engine_api):
    p, root, api = docker_split, docker_split.root, engine_api
    p.write({"blue": 100}, {"blue": {"count": 3}})
    mlctl(root, "apply", "--auto-approve")
    by_index = {i["index"]: i["container"] for i in show(root)["deployments"]["blue"]["instances"]}
    api.kill(by_index[1])  # docker kill
    api.remove_container(by_index[2], force=True)  # docker rm -f

    def both_down():
        d = show(root)["deployments"]["blue"]
        return d["ready_instances"] == 1 and all(i["stopped_outside_mlctl"] for i in d["instances"][1:])

    assert wait_until(both_down, timeout=60)
    d = show(root)["deployments"]["blue"]
    assert "was stopped outside mlctl" in d["instances"][1]["last_exit"]
    assert "was removed outside mlctl" in d["instances"][2]["last_exit"]
    assert "not ready, 0 restart(s); it was removed outside mlctl" in mlctl(root, "show", "dsplit").stdout

    drift = mlctl(root, "plan", "--refresh-only", "--detailed-exitcode", check=False)
    assert drift.returncode == 2 and "deployment.dsplit.blue" in drift.stdout and "drift" in drift.stdout
    ep = Endpoint(root, "dsplit")  # the instance left serves meanwhile
    key = keys(root, "dsplit")["primaryKey"]
    assert all(ep.score(key=key)[0] == 200 for _ in range(5))

    mlctl(root, "apply", "--auto-approve")
    d = show(root)["deployments"]["blue"]
    assert d["ready_instances"] == 3 and all(i["ready"] for i in d["instances"])
    assert {c["Id"][:12] for c in containers_of(api, root)} == {i["container"] for i in d["instances"]}
    assert mlctl(root, "plan", "--refresh-only", "--detailed-exitcode", check=False).returncode == 0
    assert all(ep.score(key=key)[0] == 200 for _ in range(5))

    changed = d["instances"][0]["container"]  # docker update: changed outside mlctl
    api.update_container(changed, mem_limit="300m", memswap_limit="300m")
    drift = mlctl(root, "plan", "--refresh-only", "--detailed-exitcode", check=False)
    assert drift.returncode == 2 and "changed_outside" in drift.stdout, drift.stdout
    assert "instance 0: memory 314572800 (applied: 2147483648)" in drift.stdout  # docker.memory's default
    mlctl(root, "apply", "--auto-approve")  # rolled: fresh containers as applied
    d = show(root)["deployments"]["blue"]
    assert d["ready_instances"] == 3 and changed not in {i["container"] for i in d["instances"]}
    assert all(api.inspect_container(i["container"])["HostConfig"]["Memory"] == 2 * 2**30 for i in d["instances"])
    assert mlctl(root, "plan", "--refresh-only", "--detailed-exitcode", check=False).returncode == 0
    assert all(ep.score(key=key)[0] == 200 for _ in range(5))
    ep.close()


def test_killed_host_leaves_containers_that_the_next_apply_removes(docker_split, engine_api):
    p, root, api = docker_split, docker_split.root, engine_api
    p.write({"blue": 100}, {"blue": {"count": 2}})
    mlctl(root, "apply", "--auto-approve")
    before = show(root)
    old = {c["Id"] for c in containers_of(api, root, every=False)}
    os.killpg(before["host"]["pid"], signal.SIGKILL)
    assert wait_until(lambda: not alive(before["host"]["pid"]))
    assert {c["Id"] for c in containers_of(api, root, every=False)} == old  # containers outlive their host
    plan = mlctl(root, "plan", "--detailed-exitcode", check=False)
    assert plan.returncode == 2 and "endpoint.dsplit" in plan.stdout and "drift" in plan.stdout
    mlctl(root, "apply", "--auto-approve")
    after = show(root)
    assert after["host"]["port"] == before["host"]["port"]
    now = {c["Id"] for c in containers_of(api, root)}
    assert len(now) == 2 and not now & old  # the orphans are gone, two new ones serve
    ep = Endpoint(root, "dsplit")
    assert ep.score(key=keys(root, "dsplit")["primaryKey"])[0] == 200
    ep.close()


def hook_points(root, env) -> list[str]:
    hook_file = root.parent / "hooks.txt"
    hook_file.unlink(missing_ok=True)
    mlctl(root, "apply", "--auto-approve", env={**env, "MLCTL_TEST_HOOK_FILE": str(hook_file)})
    return hook_file.read_text().splitlines()


def test_apply_killed_at_hook_points_of_a_switch_converges_without_orphans(docker_split, engine_api):
    """blue -> green (+ green, traffic, - blue), killed where containers are at stake: green's intent
    written (nothing started yet), green started but not recorded, blue deleted but not recorded
    (every hook point is exercised by tests/e2e/test_interrupt.py on processes)."""
    p, root, api = docker_split, docker_split.root, engine_api
    env = dict(os.environ)
    start, target = ({"blue": 100}, {"blue": {}}), ({"green": 100}, {"green": {}})
    p.write(*start)
    mlctl(root, "apply", "--auto-approve", env=env)
    p.write(*target)
    points = hook_points(root, env)
    chosen = [
        points.index(f"{point} deployment.dsplit.{name}") + 1
        for point, name in (("intent_written", "green"), ("change_done", "green"), ("change_done", "blue"))
    ]
    for k in chosen:
        p.write(*start)
        mlctl(root, "apply", "--auto-approve", env=env)
        p.write(*target)
        killed = mlctl(root, "apply", "--auto-approve", check=False, env={**env, "MLCTL_TEST_HOOK_KILL_AT": str(k)})
        assert killed.returncode == -signal.SIGKILL, f"apply was not killed at {points[k - 1]}"
        assert mlctl(root, "plan", check=False, env=env).returncode == 0
        mlctl(root, "apply", "--auto-approve", env=env)
        assert mlctl(root, "plan", "--detailed-exitcode", check=False, env=env).returncode == 0, points[k - 1]
        d = show(root)["deployments"]
        assert set(d) == {"green"} and d["green"]["ready_instances"] == 1
        running = containers_of(api, root)
        assert [c["Labels"]["mlctl.deployment"] for c in running] == ["green"], f"orphans after {points[k - 1]}"
        assert running[0]["Id"][:12] == d["green"]["instances"][0]["container"]
    mlctl(root, "destroy", "--auto-approve", env=env)
    assert containers_of(api, root) == []
