"""AMLResponse as scripts use it (mimetype, headers as a mapping, status, data...), answered by mlctl's scoring
server exactly as Azure's own server (azureml-inference-server-http, installed from PyPI in a test-only
virtualenv) answers the same script."""

from __future__ import annotations

import http.client
import socket

import pytest
from azureref import azure_venv, start_azure
from servertools import SCRIPTS

CASES = [
    "image",
    "allow",
    "status",
    "status_line",
    "content_type",
    "text_mimetype",
    "data",
    "passthrough",
    "headers",
    "failed",
    "json",
    "none",
]
# headers either server adds on its own (request ids, timings, date, CORS); everything else must be equal
OWN = {
    "date",
    "server",
    "connection",
    "x-ms-request-id",
    "x-request-id",
    "x-ms-client-request-id",
    "x-ms-run-fn-exec-ms",
    "x-ms-server-version",
    "content-length",
    "keep-alive",
    "access-control-allow-origin",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answer(port: int, case: str):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", f"/score?case={case}", body=b"{}", headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        headers = sorted((k.lower(), v) for k, v in resp.getheaders() if k.lower() not in OWN)
        return resp.status, resp.reason, headers, resp.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def both(tmp_path_factory, models):
    """(Azure's server, mlctl's server) on response_attrs.py."""
    from servertools import Servers

    tmp = tmp_path_factory.mktemp("azure-response")
    py = azure_venv(tmp_path_factory.getbasetemp())
    script = SCRIPTS / "response_attrs.py"
    azure = start_azure(py, script, models, free_port(), tmp / "azure.log")
    servers = Servers(tmp, models)
    try:
        yield azure, servers.start(script)
    finally:
        azure.stop()
        servers.stop_all()


@pytest.mark.parametrize("case", CASES)
def test_answers_as_azure_does(both, case):
    azure, mlctl = both
    want = answer(azure.port, case)
    got = answer(mlctl.port, case)
    assert got == want


def test_the_issue_cases_literally(both):
    """The two reported breakages, with literal expectations (not only equality with Azure)."""
    _, mlctl = both
    status, _, headers, body = answer(mlctl.port, "image")
    assert (status, dict(headers)["content-type"], body) == (200, "image/jpg", b"\x89PNG\r\n\x1a\n\x00\x01")
    status, _, headers, _ = answer(mlctl.port, "allow")
    assert (status, dict(headers)["allow"]) == (200, "OPTIONS, GET, POST")
