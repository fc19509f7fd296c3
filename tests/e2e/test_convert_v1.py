"""`mlctl convert v1` end to end: the diabetes example's v1 files (tests/convert/v1) converted, then
applied with the real CLI on the local runtime (a real uv virtualenv) and scored with the endpoint's
key; the v1 entry script runs unmodified, one model or several (Model.get_model_path)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
from e2e_support import Endpoint, cleanup, keys, mlctl

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "convert"))

from v1_support import V1, make_v1_project  # noqa: E402

SAMPLE = "sample-request.json"


@pytest.fixture
def v1_example(tmp_path, trained_model):
    root = make_v1_project(tmp_path / "diabetes", trained_model)
    yield root
    cleanup(root)


def expected(trained_model: Path, root: Path, offset: float = 0) -> list[float]:
    """What the trained model itself predicts for the sample request."""
    data = np.array(json.loads((root / SAMPLE).read_text())["data"])
    return (joblib.load(trained_model).predict(data) + offset).tolist()


@pytest.mark.parametrize("form, instances", [("aci", 1), ("aks", 2)])
def test_a_converted_v1_service_applies_and_scores(form, instances, v1_example, trained_model):
    mlctl(
        v1_example,
        "convert",
        "v1",
        "--name",
        "diabetes",
        "-m",
        "model",
        "--ic",
        "v1/inferenceconfig.json",
        "--dc",
        f"v1/deploymentconfig-{form}.json",
    )
    applied = mlctl(v1_example, "apply", "--auto-approve")
    assert "Apply complete! Resources: 6 added" in applied.stdout
    answer = json.loads(mlctl(v1_example, "invoke", "diabetes", "--request-file", SAMPLE).stdout)
    assert answer == pytest.approx(expected(trained_model, v1_example))
    ep = Endpoint(v1_example, "diabetes")
    body = (v1_example / SAMPLE).read_bytes()
    assert ep.score(body, keys(v1_example, "diabetes")["primaryKey"])[0] == 200
    assert ep.score(body, None)[0] == 401  # v1's authEnabled: false is not carried over
    ep.close()
    shown = json.loads(mlctl(v1_example, "show", "diabetes", "--json").stdout)
    assert shown["traffic"] == {"blue": 100} and shown["deployments"]["blue"]["ready_instances"] == instances
    again = mlctl(v1_example, "plan", "--detailed-exitcode", check=False)
    assert again.returncode == 0 and "No changes." in again.stdout


def test_several_models_are_found_by_the_unmodified_v1_script(v1_example, trained_model):
    shutil.copytree(V1 / "multi", v1_example / "v1multi")
    out = mlctl(
        v1_example,
        "convert",
        "v1",
        "--name",
        "diabetes",
        "-m",
        "model",
        "-m",
        "v1multi/offset.json",
        "--ic",
        "v1multi/inferenceconfig.json",
    )
    assert "Wrote diabetes-models/" in out.stdout
    mlctl(v1_example, "apply", "--auto-approve")
    answer = json.loads(mlctl(v1_example, "invoke", "diabetes", "--request-file", SAMPLE).stdout)
    assert answer == pytest.approx(expected(trained_model, v1_example, offset=1000))


def convert_layout(root: Path, *models: str, check: bool = True):
    shutil.copytree(V1 / "layout", root / "v1layout")
    args = [a for m in models for a in ("-m", m)]
    return mlctl(
        root,
        "convert",
        "v1",
        "--name",
        "layout",
        *args,
        "--ic",
        "v1layout/inferenceconfig.yml",
        "--dc",
        "v1layout/deploymentconfig.yml",
        check=check,
    )


def test_v1_layout_yaml_files_and_model_names_are_kept(v1_example, trained_model):
    """YAML v1 files with schemaFile and dependencies; the script opens ./source_directory/... and
    ./shared-offsets.json from its working folder, as v1 ran it, and asks for 'my_first_model' (-m NAME=PATH)."""
    convert_layout(v1_example, "my_first_model=model/model.pkl")
    header = (v1_example / "layout-blue-deployment.yml").read_text()
    assert "schemaFile: v1's generated input/output schema" in header.replace("\n#    ", " ")
    assert "request_timeout_ms: 60000" in header  # v1's AKS default, not today's 5 s
    assert (v1_example / "layout-model.yml").read_text().count("name: my_first_model") == 1
    applied = mlctl(v1_example, "apply", "--auto-approve")
    assert "Apply complete!" in applied.stdout
    answer = json.loads(mlctl(v1_example, "invoke", "layout", "--request-file", SAMPLE).stdout)
    assert answer == pytest.approx(expected(trained_model, v1_example, offset=1000))


def test_an_unknown_model_name_fails_init_as_in_azure(v1_example):
    """-m model/model.pkl registers 'model'; the script's get_model_path('my_first_model') raises at init()
    (it used to get the only model there), and apply says so."""
    convert_layout(v1_example, "model/model.pkl")
    applied = mlctl(v1_example, "apply", "--auto-approve", check=False)
    assert applied.returncode == 1
    assert "ModelNotFoundException" in applied.stdout + applied.stderr
    assert "my_first_model" in applied.stdout + applied.stderr
