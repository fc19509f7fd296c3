"""The fork server through the CLI (issue 30 "Rollouts"): a blue-to-green rollout under load on the local runtime
fails no request, green's instance is forked from its environment's fork server (its parent, `show` says so; as
root with the default `instance_user`, a fork server confined under green's uid), and with
`local.fork_server: false` in mlctl.yaml a replaced instance starts fresh instead (the host's child)."""

import json
import os
from pathlib import Path

import pytest
from e2e_support import blue_to_green_under_load, mlctl, parent_of


def instance(root, name: str) -> dict:
    shown = json.loads(mlctl(root, "show", "split", "--json").stdout)
    (inst,) = shown["deployments"][name]["instances"]
    return {**inst, "host_pid": shown["host"]["pid"]}


def roll_to_forked_green(split_project) -> tuple[dict, int]:
    """Blue to green under load, which fails no request; green's instance and the fork server that forked it."""
    load = blue_to_green_under_load(split_project, "split")
    assert load.failures == [], load.failures[:5]
    assert load.served["blue"] > 0 and load.served["green"] > 0
    green = instance(split_project.root, "green")
    zygote = parent_of(green["pid"])
    assert green["forked"] is True and zygote != green["host_pid"]
    assert b"mlctl.runtime.server.zygote" in Path(f"/proc/{zygote}/cmdline").read_bytes()
    return green, zygote


def test_blue_to_green_under_load_forks_green_and_fails_no_request(split_project):
    root = split_project.root
    (root / "mlctl.yaml").write_text("local: {instance_user: mlctl}\n")  # as root: unconfined, so forked
    green, zygote = roll_to_forked_green(split_project)
    assert "forked from its environment's fork server" in mlctl(root, "show", "split").stdout

    (root / "mlctl.yaml").write_text("local: {instance_user: mlctl, fork_server: false}\n")
    # (as instance_user: for instances started from now on; --replace starts green's again at once)
    mlctl(root, "plan", "--replace", "deployment.split.green", "--out", str(root.parent / "p"))
    assert "Apply complete!" in mlctl(root, "apply", str(root.parent / "p")).stdout
    fresh = instance(root, "green")
    assert fresh["forked"] is False and parent_of(fresh["pid"]) == fresh["host_pid"]


def test_as_root_blue_to_green_under_load_forks_green_from_its_confined_fork_server(split_project):
    """As root with the default `instance_user`, green's instance is forked by a fork server that runs under green's
    own uid, with no capability and no_new_privs (the confinement of a fresh start), and the rollout fails nothing."""
    if os.geteuid() != 0:
        pytest.skip("confined instances need root (CI runs as root)")
    green, zygote = roll_to_forked_green(split_project)
    for pid in (green["pid"], zygote):
        status = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        assert set(status["Uid"].split()) == {str(os.stat(f"/proc/{green['pid']}").st_uid)} != {"0"}
        assert int(status["CapEff"], 16) == 0 and status["NoNewPrivs"].strip() == "1"
