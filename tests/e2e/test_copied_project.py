"""Issue 31: a copied project (`cp -r` copies `.mlctl/`) never takes over the original's endpoint. The state
records the data folder it belongs to: in the copy, plan, show and destroy stop with what happened and the two
ways out (start fresh, or `mlctl state adopt`), and the original keeps serving with no drift. Run records are
checked against the folder too, so even a state that predates the recorded location does not reach the
original's endpoint host from a copy."""

import json
import os
import subprocess

import pytest
from e2e_support import Endpoint, alive, cleanup, keys, mlctl


def forget_originals(copy) -> None:
    """Remove the run records the copy holds of the original's hosts, so that the copy's cleanup (which kills
    the pids its run records name) never reaches the original."""
    run = copy / ".mlctl" / "run"
    for record in run.glob("*.json") if run.is_dir() else []:
        if json.loads(record.read_text()).get("data_dir") != os.path.realpath(copy / ".mlctl"):
            record.unlink()


@pytest.fixture
def applied(split_project):
    p, root = split_project, split_project.root
    p.write({"blue": 100}, {"blue": {"count": 1}})
    mlctl(root, "apply", "--auto-approve")
    host = json.loads(mlctl(root, "show", "split", "--json").stdout)["host"]
    return root, host


def copied(root, to):
    subprocess.run(["cp", "-r", str(root), str(to)], check=True)  # as a user does
    return to


def original_serves(root, host) -> None:
    """The original's host is the same process, scores, and its plan shows no drift."""
    assert alive(host["pid"])
    assert json.loads(mlctl(root, "show", "split", "--json").stdout)["host"]["pid"] == host["pid"]
    ep = Endpoint(root, "split")
    try:
        assert ep.score(key=keys(root, "split")["primaryKey"])[0] == 200
    finally:
        ep.close()
    plan = mlctl(root, "plan", "--detailed-exitcode", check=False)
    assert plan.returncode == 0 and "No changes" in plan.stdout, plan.stdout + plan.stderr


def test_a_copy_refuses_to_operate_the_original_and_says_how_out(applied, tmp_path):
    root, host = applied
    copy = copied(root, tmp_path / "copy")
    try:
        for args in (["plan"], ["show", "split"], ["list"], ["destroy", "--auto-approve"], ["apply", "--auto-approve"]):
            out = mlctl(copy, *args, check=False)
            assert out.returncode == 1, (args, out.stdout, out.stderr)
            assert "belongs to another project location" in out.stderr, out.stderr
            assert str(root / ".mlctl") in out.stderr
            assert "Traceback" not in out.stderr
        said = mlctl(copy, "plan", check=False).stderr
        assert "rm -r " in said and "state adopt" in said and "the original keeps serving" in said
        # a pull-request plan reads no runtime: it still works from the recorded state
        assert mlctl(copy, "plan", "--refresh=false", "--detailed-exitcode", check=False).returncode == 0
        original_serves(root, host)

        # adopt: the copy carries on the state, starts its own endpoint host, the original is untouched
        adopted = mlctl(copy, "state", "adopt")
        assert "now belongs to" in adopted.stdout and str(copy) in adopted.stdout
        plan = mlctl(copy, "plan", "--detailed-exitcode", check=False)
        assert plan.returncode == 2 and "drift" in plan.stdout, plan.stdout + plan.stderr
        mlctl(copy, "apply", "--auto-approve")
        mine = json.loads(mlctl(copy, "show", "split", "--json").stdout)["host"]
        assert mine["pid"] != host["pid"] and mine["port"] != host["port"]
        mlctl(copy, "destroy", "--auto-approve")
        assert not alive(mine["pid"])
        original_serves(root, host)
    finally:
        forget_originals(copy)
        cleanup(copy)


def test_start_fresh_in_a_copy(applied, tmp_path):
    root, host = applied
    copy = copied(root, tmp_path / "fresh")
    try:
        subprocess.run(["rm", "-r", str(copy / ".mlctl")], check=True)  # the command the message gives
        plan = mlctl(copy, "plan")
        assert "Plan: 6 to add" in plan.stdout or "to add" in plan.stdout, plan.stdout
        mlctl(copy, "apply", "--auto-approve")
        gone = mlctl(copy, "destroy", "--auto-approve")
        assert "--destroy" not in gone.stdout and "Destroy complete!" in gone.stdout, gone.stdout
        again = mlctl(copy, "destroy", "--auto-approve")  # issue 31: says that nothing is deployed
        assert "Nothing of this project is deployed" in again.stdout and "matches" not in again.stdout, again.stdout
        original_serves(root, host)
    finally:
        forget_originals(copy)
        cleanup(copy)


def test_run_records_of_another_folder_are_not_read(applied, tmp_path):
    """A state written before mlctl recorded its location: the copy cannot tell from the state, but the run
    records name the original's folder, so the copy sees nothing running and its destroy stops nothing."""
    root, host = applied
    copy = copied(root, tmp_path / "old")
    state_file = copy / ".mlctl" / "state.json"
    doc = json.loads(state_file.read_text())
    doc.pop("location")
    state_file.write_text(json.dumps(doc))
    try:
        plan = mlctl(copy, "plan", "--detailed-exitcode", check=False)
        assert plan.returncode == 2 and "drift" in plan.stdout, plan.stdout + plan.stderr
        shown = json.loads(mlctl(copy, "show", "split", "--json").stdout)
        assert shown["host"]["pid"] is None and shown["host"]["alive"] is False
        mlctl(copy, "destroy", "--auto-approve")
        original_serves(root, host)
    finally:
        forget_originals(copy)
        cleanup(copy)
