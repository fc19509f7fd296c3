"""MLflow models without a script (Azure's no-code deployment), end to end: a scikit-learn model saved with
mlflow.sklearn.save_model (trained on scikit-learn's iris data), deployed with no code_configuration and no
environment, applied with the real CLI on the local runtime (its environment built by uv from the model's own
conda.yaml), scored in each of Azure's input formats and compared with the model's own predict."""

from __future__ import annotations

import http.client
import json
import shutil
from pathlib import Path

import pytest
from e2e_support import Endpoint, cleanup, keys, mlctl

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra (pip install -e .[mlflow])")

ENDPOINT = """$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
name: iris-mlflow
auth_mode: key
traffic:
  blue: 100
"""
DEPLOYMENT = """$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: iris-mlflow
model:
  name: iris
  path: iris-model
  type: {type}
instance_count: 1
"""


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """(folder mlflow wrote, the fitted model, the iris frame): LogisticRegression with a signature."""
    import cloudpickle
    import mlflow.sklearn
    import numpy
    import pandas
    import sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    folder = tmp_path_factory.mktemp("mlflow") / "iris-model"
    mlflow.sklearn.save_model(
        model,
        str(folder),
        signature=infer_signature(X, model.predict(X)),
        serialization_format="cloudpickle",
        # what mlflow would infer, named here so saving does not start a subprocess to infer it
        pip_requirements=[
            f"mlflow=={mlflow.__version__}",
            f"scikit-learn=={sklearn.__version__}",
            f"cloudpickle=={cloudpickle.__version__}",
            f"pandas=={pandas.__version__}",
            f"numpy=={numpy.__version__}",
        ],
    )
    return folder, model, X


@pytest.fixture
def project(tmp_path, saved_model):
    root = tmp_path / "proj"
    root.mkdir()
    shutil.copytree(saved_model[0], root / "iris-model")
    (root / "endpoint.yml").write_text(ENDPOINT)
    (root / "deployment.yml").write_text(DEPLOYMENT.format(type="mlflow_model"))
    yield root
    cleanup(root)


def test_an_mlflow_model_is_served_without_a_script_in_every_input_format(project, saved_model):
    _, model, X = saved_model
    plan = mlctl(project, "plan")
    assert "mlctl's built-in score.py (mlflow.pyfunc), environment 'iris-mlflow-env'" in plan.stderr
    assert "installed as 'mlflow-skinny==" in plan.stderr
    mlctl(project, "apply", "--auto-approve", timeout=900)
    key = keys(project, "iris-mlflow")["primaryKey"]
    ep = Endpoint(project, "iris-mlflow")
    rows = X.iloc[[0, 60, 120, 149]]
    want = model.predict(rows).tolist()
    assert len(set(want)) == 3  # the rows chosen reach every class: a constant answer cannot pass
    split = json.loads(rows.to_json(orient="split"))
    records = json.loads(rows.to_json(orient="records"))
    bodies = {
        "input_data (split)": {"input_data": split},
        "input_data (rows)": {"input_data": split["data"]},
        "dataframe_split": {"dataframe_split": {"columns": split["columns"], "data": split["data"]}},
        "dataframe_records": {"dataframe_records": records},
        "MLflow 1 split": {"columns": split["columns"], "data": split["data"]},
        "MLflow 1 records": records,
    }
    for form, body in bodies.items():
        status, answer = ep.score(json.dumps(body).encode(), key)
        assert (status, json.loads(answer)) == (200, want), form
    # the signature checks the input: a missing column, a value that is not a number
    status, answer = ep.score(json.dumps({"dataframe_split": {"columns": ["a"], "data": [[1]]}}).encode(), key)
    assert status == 424 and "Model is missing inputs" in json.loads(answer)["message"]  # Azure: 424 over 400
    bad = dict(records[0], **{"sepal length (cm)": "x"})
    status, answer = ep.score(json.dumps({"dataframe_records": [bad]}).encode(), key)
    assert status == 424 and "does not match the model's signature" in json.loads(answer)["message"]
    ep.close()
    conn = http.client.HTTPConnection("127.0.0.1", ep.port, timeout=30)
    conn.request("POST", "/score", body=b'{"nothing": 1}', headers={"Authorization": f"Bearer {key}"})
    resp = conn.getresponse()
    assert resp.status == 424 and resp.getheader("ms-azureml-model-error-statuscode") == "400"  # the instance's
    assert "input_data, dataframe_split" in json.loads(resp.read())["message"]
    conn.close()
    again = mlctl(project, "plan", "--detailed-exitcode", check=False)
    assert again.returncode == 0, again.stdout


def test_a_custom_model_without_code_configuration_is_an_error_at_its_line(project):
    (project / "deployment.yml").write_text(DEPLOYMENT.format(type="custom_model"))
    out = mlctl(project, "validate", check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "missing required field 'code_configuration'" in out.stderr
    assert "at deployment.yml:1, field 'code_configuration'" in out.stderr  # the document's start, as before
    assert "only a model of type mlflow_model is served without a script" in out.stderr


def test_an_mlflow_model_folder_without_mlmodel_is_an_error(project):
    (project / "iris-model" / "MLmodel").unlink()
    out = mlctl(project, "validate", check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "the mlflow_model" in out.stderr and "has no MLmodel file" in out.stderr
    assert "at deployment.yml:4, field 'model'" in out.stderr


def test_a_model_with_requirements_txt_only(saved_model, tmp_path):
    """Without conda.yaml the environment is requirements.txt with python_env.yaml's Python."""
    from mlctl.schemas.mlflowmodel import mlflow_environment

    folder = tmp_path / "m"
    shutil.copytree(saved_model[0], folder)
    (folder / "conda.yaml").unlink()
    diags: list = []
    parsed, notes = mlflow_environment(Path(folder), {}, diags)
    assert diags == []
    assert notes[0] == "environment from requirements.txt"
    assert f"mlflow-skinny=={mlflow.__version__}" in parsed["pip_packages"]
    assert not any(p.startswith("mlflow==") for p in parsed["pip_packages"])
    assert parsed["python"].count(".") == 1  # 3.X: the patch level is relaxed
