"""Issue 7: apply killed (SIGKILL) at every hook point in turn; each time the next plan is true,
the next apply converges, and no orphan process remains."""

import json
import os
import signal

import pytest
from e2e_support import alive, host_pids, mlctl, project_processes


def hook_points(root, env) -> list[str]:
    """Apply once with the hook file to learn the points the transition passes."""
    hook_file = root.parent / "hooks.txt"
    hook_file.unlink(missing_ok=True)
    mlctl(root, "apply", "--auto-approve", env={**env, "MLCTL_TEST_HOOK_FILE": str(hook_file)})
    return hook_file.read_text().splitlines()


def converge_and_check(root, env, killed_at: str) -> None:
    state = json.loads((root / ".mlctl" / "state.json").read_text())
    plan = mlctl(root, "plan", env=env, check=False)       # the next plan is true (readable, no error)
    assert plan.returncode == 0, plan.stderr
    if state["pending"]:
        assert "interrupted" in plan.stdout + plan.stderr, killed_at
    out = mlctl(root, "apply", "--auto-approve", env=env)
    if state["pending"]:
        assert "interrupted apply" in out.stderr, killed_at
    again = mlctl(root, "plan", "--detailed-exitcode", check=False, env=env)
    assert again.returncode == 0, f"after a kill at {killed_at}: {again.stdout}"
    state = json.loads((root / ".mlctl" / "state.json").read_text())
    assert state["pending"] is None


@pytest.mark.parametrize("transition", ["create", "switch"])
def test_apply_killed_at_every_hook_point_converges(split_project, transition):
    p, root = split_project, split_project.root
    env = dict(os.environ)
    start = ({}, {}) if transition == "create" else ({"blue": 100}, {"blue": {}})
    target = ({"blue": 100}, {"blue": {}}) if transition == "create" else ({"green": 100}, {"green": {}})

    def reset():
        if transition == "create":
            mlctl(root, "destroy", "--auto-approve", env=env)
        else:
            p.write(*start)
            mlctl(root, "apply", "--auto-approve", env=env)

    if transition == "switch":
        reset()
    p.write(*target)
    points = hook_points(root, env)
    assert points[0].startswith("apply_started") and points[-1].startswith("apply_finished")
    assert len(points) >= 10
    for k, point in enumerate(points, start=1):
        reset()
        p.write(*target)
        killed = mlctl(root, "apply", "--auto-approve", check=False,
                       env={**env, "MLCTL_TEST_HOOK_KILL_AT": str(k)})
        assert killed.returncode == -signal.SIGKILL, f"apply was not killed at {point}"
        converge_and_check(root, env, point)
        shown = json.loads(mlctl(root, "show", "split", "--json", env=env).stdout)
        assert set(shown["deployments"]) == set(target[1]) and shown["traffic"] == target[0]
        assert all(d["ready_instances"] == 1 for d in shown["deployments"].values())
        running = {int(line.split(":", 1)[0]) for line in project_processes(root)}
        assert running == host_pids(root), f"orphan processes after a kill at {point}"
    pids = host_pids(root)
    mlctl(root, "destroy", "--auto-approve", env=env)
    assert not [pid for pid in pids if alive(pid)]            # no orphan process
    assert project_processes(root) == []
    assert not list((root / ".mlctl" / "run").glob("*.json")) or not any(
        alive(json.loads(f.read_text())["pid"]) for f in (root / ".mlctl" / "run").glob("*.json"))
