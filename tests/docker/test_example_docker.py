"""The diabetes example on the docker runtime (issue 14): both YAML forms applied with `runtime: docker`,
scored with a key through the endpoint host, each instance a labelled container with Azure's layout
and the limits of its instance_type; destroy leaves no container. No engine: one clear error, nothing changed."""

import json
import os

from docker_support import containers_of, docker_example, engine_api  # noqa: F401
from e2e_support import Endpoint, keys, mlctl

SAMPLE = "sample-request.json"


def test_example_both_forms_on_docker(docker_example, engine_api):
    root, api = docker_example, engine_api
    first = mlctl(root, "plan")  # which base and why
    assert "Note: image.diabetes-blue-env: " in first.stderr and "base image" in first.stderr, first.stderr
    legacy = mlctl(root, "-f", "legacy/endpoint.yml", "apply", "--auto-approve")  # the 2021 form
    assert "Apply complete! Resources: 6 added" in legacy.stdout
    if api.info()["NCPU"] < 4:  # clamped, and said so
        assert "Standard_DS3_v2 has 4 vCPUs, this machine" in legacy.stdout
    split = mlctl(root, "plan", "--detailed-exitcode", check=False)  # the current form: no change
    assert split.returncode == 0 and "No changes." in split.stdout, split.stdout
    assert "instance_type" not in split.stdout  # honoured, not ignored

    answer = json.loads(mlctl(root, "invoke", "diabetes", "--request-file", SAMPLE).stdout)
    assert len(answer) == 2 and all(isinstance(x, float) for x in answer)
    k = keys(root, "diabetes")
    ep = Endpoint(root, "diabetes")
    body = (root / SAMPLE).read_bytes()
    status, out = ep.score(body, k["primaryKey"])
    assert status == 200 and json.loads(out) == answer
    assert ep.score(body, "not-" + k["primaryKey"])[0] == 401
    ep.close()

    (box,) = containers_of(api, root)
    info = api.inspect_container(box["Id"])
    labels = info["Config"]["Labels"]
    state = json.loads((root / ".mlctl" / "state.json").read_text())
    assert labels["mlctl.managed"] == "1" and labels["mlctl.kind"] == "instance"
    assert (labels["mlctl.endpoint"], labels["mlctl.deployment"], labels["mlctl.instance"]) == (
        "diabetes",
        "blue",
        "0-0",
    )
    assert labels["mlctl.project"] == state["lineage"]
    assert labels["mlctl.spec-digest"] == state["resources"]["deployment.diabetes.blue"]["observed"]["serving_digest"]
    env = dict(v.split("=", 1) for v in info["Config"]["Env"])
    version = state["resources"]["model.diabetes-blue-model"]["attributes"]["version"]
    assert env["AZUREML_MODEL_DIR"] == f"/var/azureml-app/azureml-models/diabetes-blue-model/{version}"
    assert env["AZUREML_ENTRY_SCRIPT"] == "score.py" and env["AML_APP_ROOT"] == "/var/azureml-app/onlinescoring"
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert not mounts[env["AZUREML_MODEL_DIR"]]["RW"] and not mounts["/var/azureml-app/onlinescoring"]["RW"]
    assert not mounts["/opt/mlctl/lib/mlctl"]["RW"]
    assert info["NetworkSettings"]["Ports"] in ({}, None)  # nothing published,
    assert info["HostConfig"]["NetworkMode"] == "none"  # the socket is the only way in
    cpus = min(4, api.info()["NCPU"])  # Standard_DS3_v2: 4 vCPUs, 14 GiB
    assert info["HostConfig"]["NanoCpus"] == cpus * 10**9
    assert info["HostConfig"]["Memory"] == min(14 * 2**30, api.info()["MemTotal"])

    shown = json.loads(mlctl(root, "show", "diabetes", "--json").stdout)
    (inst,) = shown["deployments"]["blue"]["instances"]
    assert shown["runtime"] == "docker" and inst["container"] == box["Id"][:12] and inst["ready"]
    assert f"instance 0: container {box['Id'][:12]}, ready" in mlctl(root, "show", "diabetes").stdout
    logs = mlctl(root, "logs", "diabetes", "--deployment", "blue", "--lines", "200").stdout
    assert "listening on unix:/run/mlctl/" in logs
    built = mlctl(root, "logs", "diabetes", "--deployment", "blue", "--container", "storage-initializer").stdout
    assert "image mlctl/env:" in built  # the image's build log
    again = mlctl(root, "apply", "--auto-approve")
    assert "No changes." in again.stdout

    mlctl(root, "destroy", "--auto-approve")
    assert containers_of(api, root) == []  # destroy leaves no container
    assert json.loads((root / ".mlctl" / "state.json").read_text())["resources"] == {}


def test_no_engine_is_one_clear_error_and_nothing_changes(docker_example):
    env = {**os.environ, "DOCKER_HOST": f"unix://{docker_example}/no-engine.sock"}
    out = mlctl(docker_example, "apply", "--auto-approve", check=False, env=env)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"no Docker engine answers at unix://{docker_example}/no-engine.sock" in out.stderr
    assert "DOCKER_HOST" in out.stderr
    state = docker_example / ".mlctl" / "state.json"
    assert not state.exists() or json.loads(state.read_text())["resources"] == {}
    assert not list((docker_example / ".mlctl").glob("run/*.json"))
