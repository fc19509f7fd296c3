"""@rawhttp scripts written for azureml (contrib.services, core.model) with no azureml package installed."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest


def test_no_real_azureml_package_here():
    assert importlib.util.find_spec("azureml") is None


def test_rawhttp_get_sees_method_path_args_headers(raw_server):
    a = raw_server.call("GET", "/score?x=1&x=2&y=z", headers={"X-Probe": "p1"})
    assert a.status == 200
    assert a.json() == {
        "method": "GET",
        "path": "/score",
        "full_path": "/score?x=1&x=2&y=z",
        "args": {"x": ["1", "2"], "y": ["z"]},
        "header": "p1",
    }


def test_rawhttp_json_body_and_model_path(raw_server, diabetes):
    model, rows = diabetes
    a = raw_server.call("POST", "/score", {"data": rows})
    assert a.status == 200
    assert a.headers["content-type"] == "application/json"
    assert a.json() == pytest.approx(model.predict(rows).tolist())


def test_rawhttp_response_status_and_headers(raw_server):
    a = raw_server.call("POST", "/score?status=418", b"teapot body", headers={"Content-Type": "text/plain"})
    assert (a.status, a.body, a.headers["x-custom"], a.headers["content-type"]) == (
        418,
        b"teapot body",
        "yes",
        "text/plain",
    )
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
    c = raw_server.call(
        "POST", "/score", b"k=v&k2=two+words", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert c.json() == {"form": {"k": "v", "k2": "two words"}, "files": {}}


def test_rawhttp_bad_json_is_4xx(raw_server):
    a = raw_server.call("POST", "/score", b"{nope", headers={"Content-Type": "application/json"})
    assert a.status == 400 and "Failed to decode JSON" in a.json()["message"]
    assert raw_server.call("GET", "/score").status == 200


def test_model_get_model_path_layouts(tmp_path, monkeypatch):
    import sys

    from mlctl.runtime.server.startup import SHIMS

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
    with pytest.raises(ModelNotFoundException, match="my_first_model"):  # not the only file there
        Model.get_model_path("my_first_model")
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


def test_rawhttp_request_attributes(raw_server):
    """The Flask request attributes real scripts use, as a @rawhttp run() sees them."""
    body = json.dumps({"k": [1, 2]}).encode()
    a = raw_server.call(
        "POST",
        "/score?inspect=1&x=a&x=b&n=7",
        body,
        headers={"Content-Type": "application/json; charset=utf-8", "X-Probe": "p2", "X-Multi": "m1"},
    )
    assert a.status == 200, a.body
    got = a.json()
    assert got == {
        "method": "POST",
        "path": "/score",
        "full_path": "/score?inspect=1&x=a&x=b&n=7",
        "url": f"http://127.0.0.1:{raw_server.port}/score?inspect=1&x=a&x=b&n=7",
        "query_string": "inspect=1&x=a&x=b&n=7",
        "args": {"inspect": "1", "x": "a", "n": "7"},
        "args_list": ["a", "b"],
        "arg_int": 7,
        "arg_default": "d",
        "header": "p2",
        "header_list": ["m1"],
        "has_probe": True,
        "content_type": "application/json; charset=utf-8",
        "mimetype": "application/json",
        "content_length": len(body),
        "is_json": True,
        "data_bytes": list(body[:4]),
        "data_text": body.decode()[:20],
        "json": {"k": [1, 2]},
        "json_forced": {"k": [1, 2]},
        "stream": body[:3].decode(),
        "remote_addr": "127.0.0.1",
        "values": {"inspect": "1", "x": "a", "n": "7"},
    }
    t = raw_server.call(
        "POST", "/score?inspect=1", b"\xff\x00not json", headers={"Content-Type": "text/plain", "X-Probe": "p3"}
    )
    got = t.json()
    assert (got["is_json"], got["json"], got["json_forced"], got["data_bytes"]) == (
        False,
        None,
        None,
        [255, 0, 110, 111],
    )
    assert (got["full_path"], got["mimetype"]) == ("/score?inspect=1", "text/plain")
    g = raw_server.call("GET", "/score?inspect=1", headers={"X-Probe": "p4"}).json()
    assert (g["method"], g["content_length"], g["data_bytes"], g["json"]) == ("GET", None, [], None)


def test_rawhttp_file_upload_can_be_saved(servers, tmp_path):
    script = tmp_path / "score.py"
    script.write_text(UPLOAD.format(dest=str(tmp_path / "saved")))
    server = servers.start(script)
    boundary = "b0undary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="img"; filename="x.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + b"\x89PNG\r\n\x00data"
        + f"\r\n--{boundary}--\r\n".encode()
    )
    a = server.call("POST", "/score", body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert a.status == 200, a.body
    assert a.json() == {"filename": "x.png", "content_type": "image/png", "mimetype": "image/png"}
    assert (tmp_path / "saved").read_bytes() == b"\x89PNG\r\n\x00data"


UPLOAD = """
from azureml.contrib.services.aml_request import rawhttp

def init():
    pass

@rawhttp
def run(request):
    f = request.files["img"]
    f.save({dest!r})
    return {{"filename": f.filename, "content_type": f.content_type, "mimetype": f.mimetype}}
"""


PARTLY_INSTALLED = """
from azureml.contrib.services.aml_request import rawhttp
from azureml.core.model import Model


def init():
    pass


@rawhttp
def run(request):
    return {"model": Model.get_model_path("anything"), "real": getattr(Model, "REAL", False)}
"""


def test_installed_azureml_wins_and_the_shims_complete_it(servers, tmp_path):
    """A real (pkgutil-namespace) azureml-core on the path is used as is; azureml.contrib.services,
    which it lacks, still comes from the shims."""
    site = tmp_path / "site"
    (site / "azureml" / "core").mkdir(parents=True)
    (site / "azureml" / "__init__.py").write_text("__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n")
    (site / "azureml" / "core" / "__init__.py").write_text("")
    (site / "azureml" / "core" / "model.py").write_text(
        "class Model:\n    REAL = True\n\n    @staticmethod\n    def get_model_path(name):\n"
        "        return 'real:' + name\n"
    )
    script = tmp_path / "score.py"
    script.write_text(PARTLY_INSTALLED)
    from servertools import ROOT

    server = servers.start(script, env={"PYTHONPATH": f"{ROOT}{os.pathsep}{site}"})
    a = server.call("POST", "/score", {"x": 1})
    assert (a.status, a.json()) == (200, {"model": "real:anything", "real": True})


WERKZEUG = """
from werkzeug.wrappers import Response  # what Flask's (and the real AMLResponse's) base class is


def init():
    pass


def run(raw_data):
    status = int(raw_data)
    return Response("werkzeug body", status=status, headers={"X-W": "1"}, mimetype="text/plain")
"""


def test_flask_werkzeug_response_is_sent_as_given(servers, tmp_path):
    """Scripts run with the real azureml packages return Flask/Werkzeug responses."""
    pytest.importorskip("werkzeug")
    script = tmp_path / "score.py"
    script.write_text(WERKZEUG)
    server = servers.start(script)
    a = server.call("POST", "/score", b"202")
    assert (a.status, a.body, a.headers["x-w"], a.headers["x-ms-run-function-failed"]) == (
        202,
        b"werkzeug body",
        "1",
        "False",
    )
    assert a.headers["content-type"].startswith("text/plain")
    b = server.call("POST", "/score", b"503")
    assert (b.status, b.headers["x-ms-run-function-failed"]) == (503, "True")
