"""@rawhttp scripts written for azureml (contrib.services, core.model) with no azureml package installed."""
from __future__ import annotations

import importlib.util

import pytest


def test_no_real_azureml_package_here():
    assert importlib.util.find_spec("azureml") is None


def test_rawhttp_get_sees_method_path_args_headers(raw_server):
    a = raw_server.call("GET", "/score?x=1&x=2&y=z", headers={"X-Probe": "p1"})
    assert a.status == 200
    assert a.json() == {"method": "GET", "path": "/score", "full_path": "/score?x=1&x=2&y=z",
                        "args": {"x": ["1", "2"], "y": ["z"]}, "header": "p1"}


def test_rawhttp_json_body_and_model_path(raw_server, diabetes):
    model, rows = diabetes
    a = raw_server.call("POST", "/score", {"data": rows})
    assert a.status == 200
    assert a.headers["content-type"] == "application/json"
    assert a.json() == pytest.approx(model.predict(rows).tolist())


def test_rawhttp_response_status_and_headers(raw_server):
    a = raw_server.call("POST", "/score?status=418", b"teapot body", headers={"Content-Type": "text/plain"})
    assert (a.status, a.body, a.headers["x-custom"], a.headers["content-type"]) == (418, b"teapot body", "yes",
                                                                                     "text/plain")
    assert a.headers["x-ms-run-function-failed"] == "False"
    b = raw_server.call("POST", "/score?status=503", b"down")
    assert b.status == 503 and b.headers["x-ms-run-function-failed"] == "True"


def test_rawhttp_form_and_files(raw_server):
    boundary = "----mlctlboundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="field"\r\n\r\nvalue-1\r\n',
        f'--{boundary}\r\nContent-Disposition: form-data; name="upload"; filename="a.bin"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n",
    ]
    body = "".join(parts).encode() + bytes(range(256)) * 4 + f"\r\n--{boundary}--\r\n".encode()
    a = raw_server.call("POST", "/score", body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert a.status == 200, a.body
    assert a.json() == {"form": {"field": "value-1"}, "files": {"upload": ["a.bin", 1024]}}
    c = raw_server.call("POST", "/score", b"k=v&k2=two+words",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert c.json() == {"form": {"k": "v", "k2": "two words"}, "files": {}}


def test_rawhttp_bad_json_is_4xx(raw_server):
    a = raw_server.call("POST", "/score", b"{nope", headers={"Content-Type": "application/json"})
    assert a.status == 400 and "Failed to decode JSON" in a.json()["message"]
    assert raw_server.call("GET", "/score").status == 200


def test_model_get_model_path_layouts(tmp_path, monkeypatch):
    import sys

    from mlctl.runtime.server.serve import SHIMS

    monkeypatch.syspath_prepend(SHIMS)
    for name in [m for m in sys.modules if m == "azureml" or m.startswith("azureml.")]:
        monkeypatch.delitem(sys.modules, name)
    from azureml.core.model import Model, ModelNotFoundException

    root = tmp_path / "azureml-models" / "sk" / "3"
    root.mkdir(parents=True)
    (root / "model.pkl").write_bytes(b"x")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(root))
    assert Model.get_model_path("sk") == str(root / "model.pkl")
    assert Model.get_model_path("model") == str(root / "model.pkl")
    (root / "other.txt").write_text("y")
    with pytest.raises(ModelNotFoundException, match="nothere"):
        Model.get_model_path("nothere")
    nested = tmp_path / "m2"
    (nested / "reg" / "1").mkdir(parents=True)
    (nested / "reg" / "2").mkdir(parents=True)
    (nested / "reg" / "2" / "w.bin").write_bytes(b"z")
    (nested / "extra").mkdir()
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(nested))
    assert Model.get_model_path("reg") == str(nested / "reg" / "2" / "w.bin")
    assert Model.get_model_path("reg", version=1) == str(nested / "reg" / "1")


NEW_STYLE = """
from azureml.core import Model
from azureml_inference_server_http.api.aml_request import AMLRequest, rawhttp
from azureml_inference_server_http.api.aml_response import AMLResponse


def init():
    global path
    path = Model.get_model_path("iris")


@rawhttp
def run(request, request_headers):
    assert isinstance(request, AMLRequest)
    if request.args.get("none"):
        return AMLResponse(None, 202)
    return AMLResponse({"model": path, "probe": request_headers.get("X-Probe"), "json": request.get_json()},
                       201, json_str=True)
"""


def test_azureml_inference_server_http_imports_and_json_responses(servers, tmp_path, models):
    script = tmp_path / "score.py"
    script.write_text(NEW_STYLE)
    server = servers.start(script)
    a = server.call("POST", "/score", {"x": [1, 2]}, headers={"x-PROBE": "p"})  # names arrive Title-Cased
    assert (a.status, a.headers["content-type"]) == (201, "application/json")
    assert a.json() == {"model": str(models / "iris.pkl"), "probe": "p", "json": {"x": [1, 2]}}
    b = server.call("POST", "/score?none=1", {"x": 1})
    assert (b.status, b.json()) == (202, {})
