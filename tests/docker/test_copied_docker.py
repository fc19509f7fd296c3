"""Issue 31 on the docker runtime: a copy of an applied project never touches the original's containers. In the
copy, plan/show/destroy stop (the state belongs to the original's folder); with a state written before mlctl
recorded its location, the copy sees none of the original's containers and its destroy removes none."""

import json
import os
import subprocess

from docker_support import containers_of, docker_cleanup, docker_split, engine_api  # noqa: F401
from e2e_support import Endpoint, keys, mlctl


def forget_originals(copy) -> None:
    """Remove the run records the copy holds of the original's hosts, so that the copy's cleanup (which kills
    the pids its run records name) never reaches the original."""
    run = copy / ".mlctl" / "run"
    for record in run.glob("*.json") if run.is_dir() else []:
        if json.loads(record.read_text()).get("data_dir") != os.path.realpath(copy / ".mlctl"):
            record.unlink()


def test_a_copy_leaves_the_original_containers_alone(docker_split, engine_api, tmp_path):
    p, root, api = docker_split, docker_split.root, engine_api
    p.write({"blue": 100}, {"blue": {"count": 1}})
    mlctl(root, "apply", "--auto-approve", timeout=900)
    running = {c["Id"] for c in containers_of(api, root, every=False)}
    assert len(running) == 1
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(root), str(copy)], check=True)
    try:
        for args in (["plan"], ["show", "dsplit"], ["destroy", "--auto-approve"]):
            out = mlctl(copy, *args, check=False)
            assert out.returncode == 1 and "belongs to another project location" in out.stderr, out.stderr
        state_file = copy / ".mlctl" / "state.json"
        doc = json.loads(state_file.read_text())
        doc.pop("location")  # as if written before the field: the run records and labels still keep them apart
        state_file.write_text(json.dumps(doc))
        assert containers_of(api, copy) == []
        mlctl(copy, "destroy", "--auto-approve", timeout=600)
        assert {c["Id"] for c in containers_of(api, root, every=False)} == running
        ep = Endpoint(root, "dsplit")
        try:
            assert ep.score(key=keys(root, "dsplit")["primaryKey"])[0] == 200
        finally:
            ep.close()
        plan = mlctl(root, "plan", "--detailed-exitcode", check=False)
        assert plan.returncode == 0 and "No changes" in plan.stdout, plan.stdout + plan.stderr
    finally:
        forget_originals(copy)
        docker_cleanup(api, copy)
