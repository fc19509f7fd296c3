"""/score with an undecorated run(raw_data): answers, headers, errors, bad bodies, logs."""

from __future__ import annotations

import json
import re
import uuid

import pytest


def test_health_answers_healthy(kitchen):
    a = kitchen.call("GET", "/")
    assert (a.status, a.body) == (200, b"Healthy")
    b = kitchen.call("GET", "/", headers={"x-ms-client-request-id": "probe-1"})
    assert (b.headers["x-ms-client-request-id"], b.headers["x-ms-request-id"]) == ("probe-1", "probe-1")
    assert str(uuid.UUID(b.headers["x-request-id"])) == b.headers["x-request-id"]
    for path in ("/", "/swagger.json"):  # the request-id rule holds on every route, as on Azure's
        c = kitchen.call("GET", path, headers={"x-request-id": "r" * 101})
        assert c.status == 431 and "100 characters" in c.json()["message"]


def test_score_matches_model_predict(kitchen, diabetes):
    model, rows = diabetes
    a = kitchen.call("POST", "/score", {"data": rows})
    assert a.status == 200
    assert a.headers["content-type"].startswith("application/json")
    assert a.json() == pytest.approx(model.predict(rows).tolist())
    assert a.headers["x-ms-run-function-failed"] == "False"
    assert float(a.headers["x-ms-run-fn-exec-ms"]) >= 0
    assert a.headers["x-ms-server-version"]


def test_request_ids_are_echoed_or_made(kitchen):
    a = kitchen.call("POST", "/score", {"ok": 1})
    made = a.headers["x-request-id"]
    assert str(uuid.UUID(made)) == made
    assert a.headers["x-ms-request-id"] == made
    b = kitchen.call("POST", "/score", {"ok": 1}, headers={"x-request-id": "rid-1", "x-ms-client-request-id": "cid-1"})
    assert (b.headers["x-request-id"], b.headers["x-ms-client-request-id"], b.headers["x-ms-request-id"]) == (
        "rid-1",
        "cid-1",
        "cid-1",
    )
    assert kitchen.call("POST", "/score", {"ok": 1}, headers={"TraceId": "t-9"}).headers["traceid"] == "t-9"
    c = kitchen.call("POST", "/score", {"ok": 1}, headers={"x-ms-request-id": "legacy-1"})
    assert (c.headers["x-ms-request-id"], c.headers["x-ms-client-request-id"]) == ("legacy-1", "legacy-1")


@pytest.mark.parametrize("header", ["x-request-id", "x-ms-request-id", "x-ms-client-request-id"])
def test_request_id_over_100_chars_is_431(kitchen, header):
    a = kitchen.call("POST", "/score", {"ok": 1}, headers={header: "x" * 101})
    assert a.status == 431
    assert "100 characters" in a.json()["message"]
    assert kitchen.call("POST", "/score", {"ok": 1}, headers={header: "x" * 100}).status == 200


def test_request_headers_parameter_gets_the_headers(kitchen):
    a = kitchen.call("POST", "/score", {"echo": 1}, headers={"x-probe": "hello", "X-MS-CLIENT-REQUEST-ID": "c1"})
    headers = a.json()["headers"]  # a dict with Flask's Title-Case names, as Azure scripts expect
    assert headers["X-Probe"] == "hello" and headers["X-Ms-Client-Request-Id"] == "c1"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(a.json()["raw"]) == {"echo": 1}


def test_get_query_parameters_are_json_decoded(kitchen):
    a = kitchen.call("GET", "/score?echo=1&data=%5B1,2%5D&name=abc&n=null&r=1&r=2")
    assert a.status == 200
    assert json.loads(a.json()["raw"]) == {"echo": 1, "data": [1, 2], "name": "abc", "n": None, "r": [1, 2]}


def test_options_405_and_404(kitchen):
    assert kitchen.call("OPTIONS", "/score").status == 200
    for method in ("PUT", "DELETE", "PATCH"):
        a = kitchen.call(method, "/score", b"{}")
        assert a.status == 405 and a.json() == {"message": "Method not allowed"}
    assert kitchen.call("POST", "/").status == 405
    nf = kitchen.call("GET", "/nowhere")
    assert nf.status == 404 and "message" in nf.json()


def test_run_error_is_500_logged_and_server_keeps_serving(kitchen, diabetes):
    a = kitchen.call("POST", "/score", {"fail": "kaboom-7731"})
    assert a.status == 500
    assert a.json() == {"message": "An unexpected error occurred in scoring script. Check the logs for more info."}
    assert a.headers["x-ms-run-function-failed"] == "True"
    assert kitchen.wait_log(r"(?s)Traceback.*RuntimeError: asked to fail: kaboom-7731")
    assert kitchen.call("POST", "/score", {"data": diabetes[1]}).status == 200


def test_run_calling_sys_exit_does_not_stop_the_server(kitchen):
    a = kitchen.call("POST", "/score", {"exit": 1})
    assert a.status == 500 and a.headers["x-ms-run-function-failed"] == "True"
    assert kitchen.call("GET", "/").status == 200


def test_long_query_string_is_served(kitchen):
    a = kitchen.call("GET", "/score?echo=1&pad=" + "x" * 20000)
    assert a.status == 200 and len(json.loads(a.json()["raw"])["pad"]) == 20000


@pytest.mark.parametrize(
    "body, status",
    [
        (b"\xff\xfe\xfa not utf-8", 400),
        (b"{not json", 400),
        (b"", 400),
        (b"[1, 2", 400),
        (b"[" * 100_000, 400),
        (b'{"data": "' + b"x" * 8_000_000, 400),
    ],
    ids=["not-utf8", "invalid", "empty", "truncated", "deep", "huge"],
)
def test_bad_bodies_get_4xx_json_and_server_survives(kitchen, body, status):
    a = kitchen.call("POST", "/score", body, headers={"Content-Type": "application/json"})
    assert a.status == status
    assert a.json()["message"]
    assert kitchen.call("GET", "/").status == 200


def test_non_json_content_type_failure_stays_a_script_error(kitchen):
    a = kitchen.call("POST", "/score", b"a,b\n1,2\n", headers={"Content-Type": "text/csv"})
    assert a.status == 500 and a.headers["x-ms-run-function-failed"] == "True"


def test_wrong_shape_is_a_script_error_for_undecorated_run(kitchen):
    a = kitchen.call("POST", "/score", {"data": [[1, 2, 3]]})
    assert a.status == 500 and a.headers["x-ms-run-function-failed"] == "True"
    assert kitchen.call("GET", "/").status == 200


AZURE_LINE = (
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} "  # %(asctime)s %(levelname).1s [%(process)d] %(name)s - ...
    r"(?P<level>[DIWEC]) \[(?P<pid>\d+)\] (?P<name>[\w.]+) - (?P<msg>.*)$"
)


def _lines(log: str, needle: str):
    return [m for m in (re.match(AZURE_LINE, ln) for ln in log.splitlines() if needle in ln) if m]


def test_one_log_line_per_request_and_print_logging_captured(kitchen):
    kitchen.call("POST", "/score?q=1", {"print": "marker-5521"}, headers={"x-request-id": "line-req-1"})
    kitchen.call("POST", "/score", {"fail": "f"}, headers={"x-request-id": "line-req-2"})
    assert kitchen.wait_log("line-req-2")
    log = kitchen.log()
    pid = str(kitchen.proc.pid)
    for rid, request in (("line-req-1", r"POST /score\?q=1 200"), ("line-req-2", "POST /score 500")):
        assert len([ln for ln in log.splitlines() if rid in ln]) == 1  # exactly one line per request
        (m,) = _lines(log, rid)  # in the Azure format: time, level letter, [pid], logger - message
        assert (m["level"], m["pid"], m["name"]) == ("I", pid, "azmlinfsrv")
        assert re.fullmatch(request + r" \d+\.\d{3}ms \d+ " + rid, m["msg"]), m["msg"]
    (printed,) = _lines(log, "printed marker-5521")  # print() -> logger azmlinfsrv.print
    assert (printed["level"], printed["pid"], printed["name"], printed["msg"]) == (
        "I",
        pid,
        "azmlinfsrv.print",
        "printed marker-5521",
    )
    (logged,) = _lines(log, "logged marker-5521")  # the script's logging, same format
    assert (logged["level"], logged["name"], logged["msg"]) == ("W", "kitchen", "logged marker-5521")
    assert _lines(log, "kitchen init done")[0]["name"] == "azmlinfsrv.print"
    assert all(re.match(AZURE_LINE, ln) or not re.match(r"^\d{4}-", ln) for ln in log.splitlines())
    assert "GET / " not in log  # health probes are not logged


RETURNS = """
import json
import numpy as np
import pandas as pd


class Opaque:
    pass


VALUES = {
    "str": lambda: "plain text",
    "ndarray": lambda: np.array([[1.5, 2.0], [3.0, 4.0]]),
    "np_scalar": lambda: np.float32(0.5),
    "np_int": lambda: np.int64(7),
    "frame": lambda: pd.DataFrame({"a": [1, 2]}),
    "series": lambda: pd.Series([1.0, 2.0]),
    "tuple_set": lambda: {"t": (1, 2), "s": {3}},
    "none": lambda: None,
    "opaque": lambda: Opaque(),
}


def init():
    pass


def run(raw_data):
    return VALUES[json.loads(raw_data)["kind"]]()
"""


@pytest.fixture(scope="module")
def returns_server(session_servers, tmp_path_factory):
    script = tmp_path_factory.mktemp("returns") / "score.py"
    script.write_text(RETURNS)
    return session_servers.start(script)


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("str", "plain text"),  # a string is sent as a JSON string, as Azure does
        ("ndarray", [[1.5, 2.0], [3.0, 4.0]]),
        ("np_scalar", 0.5),
        ("np_int", 7),
        ("frame", {"a": {"0": 1, "1": 2}}),
        ("series", [1.0, 2.0]),
        ("tuple_set", {"t": [1, 2], "s": [3]}),
        ("none", {}),  # Azure's AMLResponse(None) is an empty JSON object
    ],
)
def test_run_return_values_are_json_encoded(returns_server, kind, expected):
    a = returns_server.call("POST", "/score", {"kind": kind})
    assert (a.status, a.headers["content-type"]) == (200, "application/json"), a.body
    assert a.json() == expected


def test_unencodable_return_value_is_500_and_logged(returns_server):
    a = returns_server.call("POST", "/score", {"kind": "opaque"})
    assert a.status == 500 and a.headers["x-ms-run-function-failed"] == "True"
    assert a.json() == {"message": "An unexpected error occurred in scoring script. Check the logs for more info."}
    assert returns_server.wait_log("not JSON serializable")
    assert returns_server.call("POST", "/score", {"kind": "np_int"}).json() == 7


def test_driver_module_run_is_called_directly(servers, tmp_path):
    """Azure SDK driver scripts: init() of the entry script runs, run() of its driver_module is called."""
    (tmp_path / "user_score_5531.py").write_text(
        "def init():\n    raise AssertionError('the driver calls me, not the server')\n\n"
        "def run(raw_data):\n    return {'from': 'user score', 'raw': raw_data}\n"
    )
    driver = tmp_path / "driver.py"
    driver.write_text(
        "import user_score_5531 as driver_module\n\nready = []\n\n"
        "def init():\n    ready.append(1)\n    print('driver init')\n\n"
        "def run(raw_data):\n    raise AssertionError('skipped, as Azure does')\n"
    )
    server = servers.start(driver)
    assert server.call("POST", "/score", b"[1]").json() == {"from": "user score", "raw": "[1]"}
    assert "azmlinfsrv.print - driver init" in server.log()
