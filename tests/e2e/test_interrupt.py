"""Issue 7: apply killed (SIGKILL) at every hook point in turn, in five transitions (first create, a
blue->green switch, a scale, a health-gated replace, a deletion); each time the next plan is true,
the next apply converges, and no orphan process remains."""

import json
import os
import signal
import subprocess
import sys

import pytest
from e2e_support import alive, host_pids, mlctl, orphans, project_processes


def hook_points(root, env) -> list[str]:
    """Apply once with the hook file to learn the points the transition passes."""
    hook_file = root.parent / "hooks.txt"
    hook_file.unlink(missing_ok=True)
    mlctl(root, "apply", "--auto-approve", env={**env, "MLCTL_TEST_HOOK_FILE": str(hook_file)})
    return hook_file.read_text().splitlines()


def converge_and_check(root, env, killed_at: str) -> None:
    state = json.loads((root / ".mlctl" / "state.json").read_text())
    plan = mlctl(root, "plan", env=env, check=False)  # the next plan is true (readable, no error)
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


TRANSITIONS = {  # name: (start, target) as (traffic, deployments, code version)
    "create": (({}, {}, 1), ({"blue": 100}, {"blue": {}}, 1)),
    "switch": (({"blue": 100}, {"blue": {}}, 1), ({"green": 100}, {"green": {}}, 1)),  # + green, traffic, - blue
    "scale": (({"blue": 100}, {"blue": {}}, 1), ({"blue": 100}, {"blue": {"count": 2}}, 1)),
    "replace": (({"blue": 100}, {"blue": {}}, 1), ({"blue": 100}, {"blue": {}}, 2)),  # code edited: +/-
    "delete": (({"blue": 50, "green": 50}, {"blue": {}, "green": {}}, 1), ({"blue": 100}, {"blue": {}}, 1)),
}


@pytest.mark.parametrize("transition", list(TRANSITIONS))
def test_apply_killed_at_every_hook_point_converges(split_project, transition):
    p, root = split_project, split_project.root
    env = dict(os.environ)
    start, target = TRANSITIONS[transition]
    score = root / "code" / "score.py"
    base = score.read_text()

    def write(traffic, deployments, version):
        p.write(traffic, deployments)
        score.write_text(base + ("" if version == 1 else f"\nVERSION = {version}\n"))

    def reset():
        if transition == "create":
            mlctl(root, "destroy", "--auto-approve", env=env)
        else:
            write(*start)
            mlctl(root, "apply", "--auto-approve", env=env)

    if transition != "create":
        reset()
    write(*target)
    points = hook_points(root, env)
    assert points[0].startswith("apply_started") and points[-1].startswith("apply_finished")
    assert len(points) >= (10 if transition in ("create", "switch", "delete") else 5), points
    pending_seen = 0
    for k, point in enumerate(points, start=1):
        reset()
        write(*target)
        killed = mlctl(root, "apply", "--auto-approve", check=False, env={**env, "MLCTL_TEST_HOOK_KILL_AT": str(k)})
        assert killed.returncode == -signal.SIGKILL, f"apply was not killed at {point}"
        pending_seen += json.loads((root / ".mlctl" / "state.json").read_text())["pending"] is not None
        converge_and_check(root, env, point)
        shown = json.loads(mlctl(root, "show", "split", "--json", env=env).stdout)
        assert set(shown["deployments"]) == set(target[1]) and shown["traffic"] == target[0]
        for name, d in shown["deployments"].items():
            assert d["ready_instances"] == target[1][name].get("count", 1) == len(d["instances"]), point
        running, hosts = orphans(root)
        assert running == hosts, f"orphan processes after a kill at {point}"
    assert pending_seen >= 2  # killed between an intent and its result, more than once
    pids = host_pids(root)
    mlctl(root, "destroy", "--auto-approve", env=env)
    assert not [pid for pid in pids if alive(pid)]  # no orphan process
    assert project_processes(root) == []
    assert not list((root / ".mlctl" / "run").glob("*.json")) or not any(
        alive(json.loads(f.read_text())["pid"]) for f in (root / ".mlctl" / "run").glob("*.json")
    )


def test_apply_killed_while_the_host_starts_instances_converges(split_project):
    """Killed between hook points: while the endpoint host starts the replacement's instances (the
    longest wait of an apply). The host finishes or drops the order; the next apply converges."""
    p, root = split_project, split_project.root
    env = dict(os.environ)
    p.write({"blue": 100}, {"blue": {"count": 2}})
    mlctl(root, "apply", "--auto-approve")
    score = root / "code" / "score.py"
    for version in (2, 3):
        score.write_text(score.read_text() + f"\nVERSION = {version}\n")
        apply = subprocess.Popen(
            [sys.executable, "-m", "mlctl.cli", "-C", str(root), "apply", "--auto-approve"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            for line in apply.stdout:  # bounded: apply ends by itself at worst
                if "waiting until ready" in line:
                    apply.kill()
                    break
        finally:
            apply.kill()
            apply.communicate(timeout=120)
        assert apply.returncode == -signal.SIGKILL
        converge_and_check(root, env, f"the host starting version {version}")
        shown = json.loads(mlctl(root, "show", "split", "--json").stdout)["deployments"]["blue"]
        assert shown["ready_instances"] == 2 == len(shown["instances"])
        running, hosts = orphans(root)
        assert running == hosts, "orphan processes after a kill during the host's start"


def test_ctrl_c_during_apply_exits_130_and_the_next_apply_continues(split_project):
    """SIGINT (Ctrl-C) while the host starts a replacement: exit 130, the intent stays in the state,
    the next apply says what it found and converges."""
    p, root = split_project, split_project.root
    p.write({"blue": 100}, {"blue": {}})
    mlctl(root, "apply", "--auto-approve")
    score = root / "code" / "score.py"
    score.write_text(score.read_text() + "\nVERSION = 2\n")
    apply = subprocess.Popen(
        [sys.executable, "-m", "mlctl.cli", "-C", str(root), "apply", "--auto-approve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a runner started in the background ignores SIGINT; a terminal does not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # noqa: PLW1509
    try:
        for line in apply.stdout:
            if "waiting until ready" in line:
                apply.send_signal(signal.SIGINT)
                break
        _, err = apply.communicate(timeout=120)
    finally:
        if apply.poll() is None:
            apply.kill()
            apply.communicate(timeout=60)
    assert apply.returncode == 130 and "Interrupted." in err and "Traceback" not in err
    assert "run `mlctl apply` again to continue" in err
    pending = json.loads((root / ".mlctl" / "state.json").read_text())["pending"]
    assert pending["address"] == "deployment.split.blue" and pending["action"] == "+/-"
    converge_and_check(root, dict(os.environ), "Ctrl-C")
