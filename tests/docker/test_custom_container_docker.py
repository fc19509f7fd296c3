"""Azure's custom containers on the docker runtime (issue 26): an environment with `build:` (a Dockerfile
built here, FROM mlctl's own base, so nothing downloads) and `inference_config` (liveness, readiness and
scoring routes on port 8765) runs its image's own server; the endpoint host probes its routes and forwards
/score to its scoring path through a port published on 127.0.0.1 only. The server scores a Ridge trained on
scikit-learn's diabetes data (weights as JSON): its answers equal the model's predict. The local runtime
refuses the same files at validate with the file, line and field."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from docker_support import RUNTIME_FILE, containers_of, docker_cleanup, engine_api  # noqa: F401
from e2e_support import Endpoint, keys, mlctl

CUSTOM = Path(__file__).parent / "custom"


@pytest.fixture
def custom_project(tmp_path, engine_api, mlctl_base, scratch_images):
    """(project root, the Ridge, sample rows): the custom-container files with a Dockerfile on mlctl's base."""
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    root = tmp_path / "custom"
    shutil.copytree(CUSTOM, root)
    (root / "container" / "Dockerfile").write_text(
        f'FROM {mlctl_base.ref}\nCOPY server.py /srv/server.py\nCMD ["python3", "/srv/server.py"]\n'
    )
    X, y = load_diabetes(return_X_y=True)
    model = Ridge(alpha=0.5).fit(X, y)
    (root / "model").mkdir()
    (root / "model" / "weights.json").write_text(
        json.dumps({"coef": model.coef_.tolist(), "intercept": float(model.intercept_)})
    )
    yield root, model, X[:3].tolist()
    docker_cleanup(engine_api, root)
    for image in engine_api.images(filters={"label": ["mlctl.kind=context"]}):
        if any(t.startswith("mlctl/context:") for t in image.get("RepoTags") or []):
            scratch_images.extend(t for t in image["RepoTags"] if t.startswith("mlctl/context:"))


def test_a_custom_container_serves_on_its_own_routes(custom_project, engine_api):
    root, model, rows = custom_project
    (root / "mlctl.yaml").write_text(RUNTIME_FILE)
    plan = mlctl(root, "plan")
    assert "a custom container:" in plan.stderr and "used as it is (inference_config)" in plan.stderr
    applied = mlctl(root, "apply", "--auto-approve", timeout=600)
    assert "Apply complete! Resources: 6 added" in applied.stdout

    key = keys(root, "custom-linear")["primaryKey"]
    ep = Endpoint(root, "custom-linear")
    status, body = ep.score(json.dumps({"instances": rows}).encode(), key)
    answer = json.loads(body)
    assert status == 200, body
    assert answer["predictions"] == pytest.approx(model.predict(rows).tolist())
    assert answer["mode"] == "custom"  # the deployment's environment_variables reach it
    assert answer["model_dir"].startswith("/var/azureml-app/azureml-models/linear/")  # Azure's layout
    assert ep.score(json.dumps({"instances": rows}).encode(), None)[0] == 401  # the host checks keys first
    ep.close()

    (box,) = containers_of(engine_api, root)
    info = engine_api.inspect_container(box["Id"])
    bound = info["NetworkSettings"]["Ports"]["8765/tcp"]
    assert [b["HostIp"] for b in bound] == ["127.0.0.1"]  # published on loopback only
    assert info["HostConfig"]["CapDrop"] == ["ALL"] and info["HostConfig"]["ReadonlyRootfs"]
    assert info["Config"]["Cmd"] == ["python3", "/srv/server.py"]  # its own server, not mlctl's

    again = mlctl(root, "plan", "--detailed-exitcode", check=False)
    assert again.returncode == 0 and "No changes." in again.stdout, again.stdout + again.stderr

    # the host probes the container's own routes: readiness before traffic, then liveness every second
    body = json.dumps({"instances": rows}).encode()
    probes = {}
    for _ in range(60):  # bounded: the liveness period is 1 s
        ep = Endpoint(root, "custom-linear")
        probes = json.loads(ep.score(body, key)[1])["probes"]
        ep.close()
        if probes["/live"] >= 2:
            break
        time.sleep(0.5)
    assert probes["/ready"] >= 1 and probes["/live"] >= 2, probes
    mlctl(root, "destroy", "--auto-approve")
    assert containers_of(engine_api, root) == []


def test_the_local_runtime_refuses_a_custom_container_at_its_line(custom_project):
    root, _, _ = custom_project
    out = mlctl(root, "validate", check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "runs a custom container" in out.stderr and "the local runtime cannot run" in out.stderr
    assert "at deployment.yml:14, field 'environment.inference_config'" in out.stderr
    assert "Apply it with the docker runtime" in out.stderr
