"""The model called in-process: a case's scoring script loaded in its own environment, no server between.

Run by the corpus test with the interpreter of the virtualenv mlctl built for the deployment (so the same
packages), as `python inprocess.py SCRIPT MODEL_DIR CALL REQUEST...`. It sets AZUREML_MODEL_DIR as
Azure does, calls init() once, then run() for every request file (CALL "raw": the body as text, as
Azure's server calls an undecorated run(); "kwargs": the JSON body's keys as arguments, as it calls a run()
decorated with inference-schema's input_schema) and prints one JSON line per answer (Azure's server answers
with the return value as JSON). CALL "mlflow" is a model without a script (Azure's no-code MLflow deployment;
SCRIPT is ignored): the MLflow model under MODEL_DIR loaded with mlflow.pyfunc.load_model and its predict
called on the request's `input_data` (pandas' split orient, as the examples' sample requests give it).
Python 3.7-compatible.
"""

import importlib.util
import json
import os
import sys


def mlflow_answers(model_dir, requests):
    """The MLflow model's own predict on each request's input_data (a DataFrame in split orient)."""
    import mlflow.pyfunc
    import pandas as pd

    folders = [d for d, _, files in os.walk(model_dir) if "MLmodel" in files]
    assert len(folders) == 1, folders
    model = mlflow.pyfunc.load_model(folders[0])
    for path in requests:
        with open(path, encoding="utf-8") as f:
            split = json.load(f)["input_data"]
        out = model.predict(pd.DataFrame(data=split["data"], columns=split["columns"], index=split.get("index")))
        out = out.to_dict(orient="records") if isinstance(out, pd.DataFrame) else out.tolist()
        print(json.dumps({"answer": out}))


def main(argv):
    script, model_dir, call = argv[1], argv[2], argv[3]
    os.environ["AZUREML_MODEL_DIR"] = model_dir
    if call == "mlflow":
        mlflow_answers(model_dir, argv[4:])
        return
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    spec = importlib.util.spec_from_file_location("corpus_score", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.init()
    for path in argv[4:]:
        with open(path, encoding="utf-8") as f:
            body = f.read()
        answer = module.run(**json.loads(body)) if call == "kwargs" else module.run(body)
        print(json.dumps({"answer": answer}))


if __name__ == "__main__":
    main(sys.argv)
