"""An MLflow model without a script on the docker runtime: the no-code deployment of tests/e2e/test_mlflow.py
(an iris LogisticRegression saved with mlflow.sklearn.save_model) applied with `runtime: docker`, its image
built from the model's own conda.yaml, scored in Azure's and MLflow's forms, equal to the model's predict."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from docker_support import RUNTIME_FILE, docker_cleanup, engine_api  # noqa: F401
from e2e_support import Endpoint, keys, mlctl

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from test_mlflow import DEPLOYMENT, ENDPOINT, saved_model  # noqa: E402,F401  (the same model fixture)

pytest.importorskip("mlflow", reason="the mlflow extra (pip install -e .[mlflow])")


def test_an_mlflow_model_without_a_script_on_docker(tmp_path, engine_api, saved_model):
    folder, model, X = saved_model
    root = tmp_path / "proj"
    root.mkdir()
    shutil.copytree(folder, root / "iris-model")
    (root / "endpoint.yml").write_text(ENDPOINT)
    (root / "deployment.yml").write_text(DEPLOYMENT.format(type="mlflow_model"))
    (root / "mlctl.yaml").write_text(RUNTIME_FILE)
    try:
        mlctl(root, "apply", "--auto-approve", timeout=900)
        key = keys(root, "iris-mlflow")["primaryKey"]
        ep = Endpoint(root, "iris-mlflow")
        rows = X.iloc[[0, 60, 120]]
        split = json.loads(rows.to_json(orient="split"))
        for body in (
            {"input_data": split},
            {"dataframe_records": json.loads(rows.to_json(orient="records"))},
            {"columns": split["columns"], "data": split["data"]},
        ):
            status, answer = ep.score(json.dumps(body).encode(), key)
            assert (status, json.loads(answer)) == (200, model.predict(rows).tolist())
        ep.close()
    finally:
        docker_cleanup(engine_api, root)
