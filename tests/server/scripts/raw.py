"""@rawhttp score.py written for the Azure SDK v1: azureml.contrib.services and Model.get_model_path."""
import json

import joblib
import numpy as np
from azureml.contrib.services.aml_request import rawhttp
from azureml.contrib.services.aml_response import AMLResponse
from azureml.core.model import Model

model = None


def init():
    global model
    model = joblib.load(Model.get_model_path("diabetes"))


@rawhttp
def run(request):
    if request.method == "GET":
        return {"method": "GET", "path": request.path, "full_path": request.full_path,
                "args": request.args.to_dict(flat=False), "header": request.headers.get("X-Probe")}
    if request.files or request.form:
        files = {k: [f.filename, len(f.read())] for k, f in request.files.items()}
        return {"form": request.form.to_dict(), "files": files}
    if request.args.get("status"):
        return AMLResponse(request.get_data(as_text=True), int(request.args["status"]),
                           {"X-Custom": "yes", "Content-Type": "text/plain"})
    body = request.get_json()
    return AMLResponse(json.dumps(model.predict(np.array(body["data"])).tolist()), 200,
                       {"Content-Type": "application/json"})
