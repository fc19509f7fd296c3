"""mlctl's scoring script for MLflow models deployed without one (Azure's no-code MLflow deployment).

init() loads the model under AZUREML_MODEL_DIR with mlflow.pyfunc.load_model; run() reads Azure's input
formats and answers what the model's predict returns:
  {"input_data": {"columns": [...], "index": [...], "data": [...]}}   a DataFrame (split orient)
  {"input_data": [[...], ...]} / {"input_data": {"name": [...]}}        rows (named by the signature) / tensors
  {"dataframe_split": {...}}, {"dataframe_records": [...]}             MLflow 2's serving formats
  {"instances": ...}, {"inputs": ...}                                  tensors (MLflow 2)
  {"columns": [...], "data": [...]} or [{...}, ...]                    the MLflow 1 form (split or records)
and "params" beside any of them. The model's signature, when it has one, checks the input (mlflow's own
schema enforcement); an input it refuses, or a body in none of these forms, is answered 400 with why.
This file runs inside the deployment's environment (it needs mlflow, pandas and numpy), never in mlctl.
"""

import json
import os

import numpy as np
import pandas as pd
from azureml.contrib.services.aml_response import AMLResponse

model = None
FORMATS = (
    "input_data, dataframe_split, dataframe_records, instances, inputs, or the MLflow 1 form "
    "({columns, data} or a list of records)"
)


class BadInput(ValueError):
    """The request cannot be read as an input of this model: answered 400."""


def _model_folder(root):
    """The folder holding MLmodel: the model directory itself, or the one folder below it that does."""
    if os.path.isfile(os.path.join(root, "MLmodel")):
        return root
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if "MLmodel" in filenames:
            found.append(dirpath)
            dirnames[:] = []
    if len(found) != 1:
        raise RuntimeError(
            f"expected one MLflow model (a folder with an MLmodel file) under {root}, found {len(found)}"
        )
    return found[0]


def init():
    global model
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(_model_folder(os.environ["AZUREML_MODEL_DIR"]))


def _column_names():
    schema = model.metadata.get_input_schema() if model is not None else None
    if schema is None or not schema.has_input_names() or schema.is_tensor_spec():
        return None
    return schema.input_names()


def _split(value, what):
    if not isinstance(value, dict) or "data" not in value:
        raise BadInput(f"{what} must be an object with 'data' (and 'columns', 'index'), as pandas' split orient")
    unknown = set(value) - {"columns", "index", "data"}
    if unknown:
        raise BadInput(f"{what} has unknown keys {sorted(unknown)}: give columns, index and data")
    return pd.DataFrame(data=value["data"], columns=value.get("columns"), index=value.get("index"))


def _records(value, what):
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise BadInput(f"{what} must be a list of records (objects of column: value)")
    return pd.DataFrame.from_records(value)


def _rows_or_tensor(value, what):
    """A list: rows named by the signature's columns when it has them, else a tensor; an object: tensors."""
    if isinstance(value, dict):
        return {k: np.asarray(v) for k, v in value.items()}
    if not isinstance(value, list):
        raise BadInput(f"{what} must be a list of rows or an object of tensors")
    names = _column_names()
    if names is not None and value and all(isinstance(r, list) for r in value):
        if any(len(r) != len(names) for r in value):
            raise BadInput(f"each row of {what} must hold {len(names)} values: {', '.join(names)}")
        return pd.DataFrame(value, columns=names)
    return np.asarray(value)


def parse(body):
    """(model input, params) from a decoded request body; BadInput when it is in none of the forms."""
    if isinstance(body, list):
        return _records(body, "the request (MLflow 1 records)"), None
    if not isinstance(body, dict):
        raise BadInput(f"the request must be a JSON object with one of {FORMATS}")
    params = body.get("params")
    if params is not None and not isinstance(params, dict):
        raise BadInput("params must be an object")
    keys = [k for k in ("input_data", "dataframe_split", "dataframe_records", "instances", "inputs") if k in body]
    if len(keys) > 1:
        raise BadInput(f"the request gives {' and '.join(keys)}: give one of them")
    if keys == ["input_data"]:
        value = body["input_data"]
        if isinstance(value, dict) and "data" in value and set(value) <= {"columns", "index", "data"}:
            return _split(value, "input_data"), params
        return _rows_or_tensor(value, "input_data"), params
    if keys == ["dataframe_split"]:
        return _split(body["dataframe_split"], "dataframe_split"), params
    if keys == ["dataframe_records"]:
        return _records(body["dataframe_records"], "dataframe_records"), params
    if keys:
        return _rows_or_tensor(body[keys[0]], keys[0]), params
    if "data" in body and set(body) <= {"columns", "index", "data"}:
        return _split(body, "the request (MLflow 1 split form)"), None
    raise BadInput(f"the request has none of {FORMATS}")


def jsonable(out):
    if isinstance(out, pd.DataFrame):
        return out.to_dict(orient="records")
    if isinstance(out, (pd.Series, np.ndarray)):
        return out.tolist()
    if isinstance(out, dict):
        return {k: jsonable(v) for k, v in out.items()}
    return out


def _bad(message):
    return AMLResponse({"message": message}, 400, json_str=True)


def run(raw_data):
    from mlflow.exceptions import MlflowException

    try:
        body = json.loads(raw_data)
    except ValueError as exc:
        return _bad(f"the request is not JSON: {exc}")
    try:
        data, params = parse(body)
    except (BadInput, ValueError, TypeError) as exc:
        return _bad(str(exc))
    try:
        out = model.predict(data, params=params) if params else model.predict(data)
    except MlflowException as exc:  # the signature refused the input (missing column, wrong type, ...)
        return _bad(f"the input does not match the model's signature: {exc.message}")
    return jsonable(out)
