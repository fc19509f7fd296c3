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


def _inspect(request):
    """What real scripts read of Flask's request, as JSON."""
    return {"method": request.method, "path": request.path, "full_path": request.full_path,
            "url": request.url, "query_string": request.query_string.decode(),
            "args": request.args.to_dict(), "args_list": request.args.getlist("x"),
            "arg_int": request.args.get("n", type=int), "arg_default": request.args.get("absent", "d"),
            "header": request.headers["x-probe"], "header_list": request.headers.getlist("X-Multi"),
            "has_probe": "X-PROBE" in request.headers, "content_type": request.content_type,
            "mimetype": request.mimetype, "content_length": request.content_length, "is_json": request.is_json,
            "data_bytes": list(request.get_data()[:4]), "data_text": request.get_data(as_text=True)[:20],
            "json": request.get_json(silent=True), "json_forced": request.get_json(force=True, silent=True),
            "stream": request.stream.read(3).decode("latin-1"), "remote_addr": request.remote_addr,
            "values": request.values.to_dict()}


@rawhttp
def run(request):
    if request.args.get("inspect"):
        return _inspect(request)
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
