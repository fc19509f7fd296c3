"""inference-schema decorated scripts: JSON object input, 415/400, swagger 2/3/3.1 and overrides."""

from __future__ import annotations

import json
import shutil

import jsonschema
import pytest
from openapi_spec_validator import validate as validate_openapi
from servertools import SCRIPTS


def test_schema_input_scores_like_predict(schema_server, diabetes):
    model, rows = diabetes
    a = schema_server.call("POST", "/score", {"data": rows})
    assert a.status == 200
    assert a.json() == pytest.approx(model.predict(rows).tolist())
    b = schema_server.call("POST", "/score", {"data": rows, "scale": 2.0})
    assert b.json() == pytest.approx((model.predict(rows) * 2).tolist())


def test_schema_get_query_maps_to_parameters(schema_server, diabetes):
    model, rows = diabetes
    a = schema_server.call("GET", "/score?data=" + json.dumps(rows).replace(" ", ""))
    assert a.status == 200
    assert a.json() == pytest.approx(model.predict(rows).tolist())


def test_schema_wants_json_content_type(schema_server, diabetes):
    a = schema_server.call("POST", "/score", json.dumps({"data": diabetes[1]}), headers={"Content-Type": "text/plain"})
    assert a.status == 415
    assert a.json() == {"message": "Expects Content-Type to be application/json"}


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"scale": 1.0}, "'data' parameter"),
        ([1, 2], "JSON dictionary"),
        ("", "empty"),
        ("{oops", "could not be decoded as JSON"),
        (b"\xff\xfe", "could not be decoded as JSON"),
        ({"data": "not an array"}, "does not match the schema"),
        ({"data": [[1, 2], [3]]}, "does not match the schema"),
        ("[" * 100_000, "could not be decoded as JSON"),
        ('{"data": "' + "x" * 8_000_000, "could not be decoded as JSON"),
    ],
    ids=["missing", "list", "empty", "invalid", "not-utf8", "string-data", "ragged", "deep", "huge"],
)
def test_schema_bad_input_is_400(schema_server, body, fragment):
    if isinstance(body, (str, bytes)):
        a = schema_server.call("POST", "/score", body, headers={"Content-Type": "application/json"})
    else:
        a = schema_server.call("POST", "/score", body)
    assert a.status == 400, a.body
    assert fragment in a.json()["message"]
    assert schema_server.call("GET", "/").status == 200


def test_schema_run_error_is_500(schema_server, diabetes):
    a = schema_server.call("POST", "/score", {"data": diabetes[1], "scale": 0})
    assert a.status == 500 and a.headers["x-ms-run-function-failed"] == "True"


def _swagger(server, version, valid=True):
    a = server.call("GET", "/swagger.json" + (f"?version={version}" if version else ""))
    assert a.status == 200, a.body
    assert a.headers["content-type"].startswith("application/json")
    if valid:
        validate_openapi(a.json())  # a valid Swagger 2.0 / OpenAPI 3.0 / 3.1 document
    return a.json()


def test_swagger_2_and_3_describe_the_schema(schema_server):
    v2 = _swagger(schema_server, None)
    assert v2["swagger"] == "2.0"
    assert _swagger(schema_server, "2") == v2
    props = v2["definitions"]["ServiceInput"]["properties"]
    assert set(props) == {"data", "scale"} and props["data"]["type"] == "array"
    v3 = _swagger(schema_server, "3")
    assert v3["openapi"] == "3.0.3"
    assert set(v3["components"]["schemas"]["ServiceInput"]["properties"]) == {"data", "scale"}
    assert _swagger(schema_server, "3.1")["openapi"] == "3.1.0"
    for doc in (v2, v3):  # the documented example validates against the documented schema
        schemas = doc.get("definitions") or doc["components"]["schemas"]
        jsonschema.validate(schemas["ServiceInput"]["example"], schemas["ServiceInput"])


def test_unknown_swagger_version_is_404(schema_server):
    a = schema_server.call("GET", "/swagger.json?version=9")
    assert a.status == 404 and "not valid" in a.json()["message"]


def test_undecorated_script_gets_a_valid_document(kitchen):
    assert _swagger(kitchen, "3.1")["openapi"] == "3.1.0"
    v2 = _swagger(kitchen, "2")
    assert v2["swagger"] == "2.0" and v2["definitions"]["ServiceInput"]["type"] == "object"
    assert "/score" in v2["paths"]
    v3 = _swagger(kitchen, "3")
    assert v3["openapi"] == "3.0.3" and "/score" in v3["paths"]


def test_swagger_json_beside_the_script_overrides(servers, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    shutil.copy(SCRIPTS / "kitchen.py", code / "score.py")
    mine = {"swagger": "2.0", "info": {"title": "mine", "version": "7"}, "paths": {}}
    (code / "swagger.json").write_text(json.dumps(mine))
    server = servers.start(code / "score.py")
    assert _swagger(server, "2", valid=False) == mine
    assert _swagger(server, "3")["openapi"] == "3.0.3"
    assert _swagger(server, "3.1")["openapi"] == "3.1.0"


def test_swagger3_and_31_files_override_their_versions(servers, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    shutil.copy(SCRIPTS / "kitchen.py", code / "score.py")
    v3 = {"openapi": "3.0.3", "info": {"title": "mine-3", "version": "7"}, "paths": {}}
    v31 = {"openapi": "3.1.0", "info": {"title": "mine-3.1", "version": "7"}, "paths": {}}
    (code / "swagger3.json").write_text(json.dumps(v3))
    (code / "swagger3.1.json").write_text(json.dumps(v31))
    server = servers.start(code / "score.py")
    assert _swagger(server, "3") == v3
    assert _swagger(server, "3.0") == v3
    assert _swagger(server, "3.1") == v31
    assert _swagger(server, "2")["swagger"] == "2.0"  # not overridden: generated
    assert server.wait_log("Loaded user's swagger file for version \\[3.1\\]")


def test_pandas_schema(servers, models):
    import joblib
    from sklearn.datasets import load_iris

    server = servers.start(SCRIPTS / "iris_pandas.py")
    X = load_iris(as_frame=True).frame.drop(columns="target")
    rows = X.iloc[[0, 60, 120]]
    a = server.call("POST", "/score", {"frame": rows.to_dict(orient="records")})
    assert a.status == 200, a.body
    assert a.json() == joblib.load(models / "iris.pkl").predict(rows.to_numpy()).tolist()
    doc = _swagger(server, "3")
    assert doc["components"]["schemas"]["ServiceInput"]["properties"]["frame"]["type"] == "array"


SCHEMA_WITH_HEADERS = """
import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.schema_decorators import input_schema


def init():
    pass


@input_schema("data", NumpyParameterType(np.zeros((1, 2))))
def run(data, request_headers):
    return {"sum": float(data.sum()), "probe": request_headers.get("X-Probe")}
"""


def test_schema_run_with_request_headers(servers, tmp_path):
    script = tmp_path / "score.py"
    script.write_text(SCHEMA_WITH_HEADERS)
    server = servers.start(script)
    a = server.call("POST", "/score", {"data": [[1, 2]]}, headers={"x-probe": "yes"})
    assert (a.status, a.json()) == (200, {"sum": 3.0, "probe": "yes"})
    assert server.call("POST", "/score", {"request_headers": {}}).status == 400  # 'data' is still required


def test_swagger_file_in_the_app_root_overrides_too(servers, tmp_path):
    """As the Azure server does (it reads them from AML_APP_ROOT); one beside the script wins."""
    app = tmp_path / "app"
    (app / "src").mkdir(parents=True)
    shutil.copy(SCRIPTS / "kitchen.py", app / "src" / "score.py")
    root_doc = {"openapi": "3.0.3", "info": {"title": "from-app-root", "version": "1"}, "paths": {}}
    (app / "swagger3.json").write_text(json.dumps(root_doc))
    (app / "swagger3.1.json").write_text(json.dumps({**root_doc, "openapi": "3.1.0"}))
    beside = {"openapi": "3.1.0", "info": {"title": "beside-the-script", "version": "1"}, "paths": {}}
    (app / "src" / "swagger3.1.json").write_text(json.dumps(beside))
    server = servers.start(app / "src" / "score.py", "--app-root", str(app))
    assert _swagger(server, "3") == root_doc
    assert _swagger(server, "3.1") == beside
    assert _swagger(server, "2")["info"]["title"] == "ML service"
