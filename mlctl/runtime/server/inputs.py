"""Turn a request into run()'s keyword arguments, per the script's input mode (Azure's rules).

Pure functions; they run on a worker thread (see mlctl.runtime.server.scoring).
"""

from __future__ import annotations

import inspect
import json
from typing import Any, Dict, List, Mapping, Optional
from urllib.parse import parse_qsl

from mlctl.runtime.server import jsoncodec
from mlctl.runtime.server.rawhttp import AMLRequest, BadRequest
from mlctl.runtime.server.script import RAW, SCHEMA, TEXT, UserScript


class BadInput(Exception):
    """The request cannot be turned into run()'s input: 400."""


class UnsupportedInput(Exception):
    """The request's content type is not accepted: 415."""


class RequestData:
    """What a worker needs of a request, captured on the event loop."""

    __slots__ = ("method", "path", "query_string", "headers", "body", "content_type", "remote", "host")

    def __init__(
        self,
        method: str,
        path: str,
        query_string: str,
        headers: Mapping[str, str],
        body: bytes,
        content_type: str,
        remote: Optional[str],
        host: str,
    ) -> None:
        self.method = method
        self.path = path
        self.query_string = query_string
        self.headers = headers
        self.body = body
        self.content_type = content_type
        self.remote = remote
        self.host = host


def header_dict(headers: Mapping[str, str]) -> Dict[str, str]:
    """Pure: headers as Flask/Werkzeug hand them to Azure scripts: Title-Cased names
    (``X-Ms-Client-Request-Id``), repeated headers joined with ``,``."""
    out: Dict[str, str] = {}
    for k, v in headers.items():
        key = k.title()
        out[key] = f"{out[key]},{v}" if key in out else v
    return out


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def query_parameters(query_string: str) -> Dict[str, Any]:
    """Pure: query parameters JSON-decoded where they parse; repeated keys become lists."""
    grouped: Dict[str, List[str]] = {}
    for k, v in parse_qsl(query_string, keep_blank_values=True):
        grouped.setdefault(k, []).append(v)
    return {k: _json_or_text(vs[0]) if len(vs) == 1 else [_json_or_text(v) for v in vs] for k, vs in grouped.items()}


def _is_json(content_type: str) -> bool:
    mt = content_type.split(";", 1)[0].strip().lower()
    return mt == "application/json" or (mt.startswith("application/") and mt.endswith("+json"))


def _may_be_json(content_type: str) -> bool:
    """Could the client have meant to send JSON? (no type, a JSON type, or what curl -d and
    simple clients send by default); an explicit other type (text/csv, images) says no."""
    mt = content_type.split(";", 1)[0].strip().lower()
    return mt in ("", "text/plain", "application/x-www-form-urlencoded") or _is_json(content_type)


def _schema_arguments(script: UserScript, body: Dict[str, Any]) -> Dict[str, Any]:
    args: Dict[str, Any] = {}
    for p in script.params:
        value = body.get(p.name, p.default)
        if value is inspect.Parameter.empty:
            raise BadInput(f"A value is not provided for the {p.name!r} parameter.")
        args[p.name] = value
    return args


def run_arguments(script: UserScript, req: RequestData) -> Dict[str, Any]:
    """Pure: run()'s keyword arguments for this request; BadInput / UnsupportedInput otherwise."""
    mode = script.mode
    if mode == RAW:
        return {
            script.param: AMLRequest(
                req.method,
                req.path,
                req.query_string,
                [(k.title(), v) for k, v in req.headers.items()],
                req.body,
                req.remote,
                "http",
                req.host,
            )
        }
    if req.method == "GET":
        params = query_parameters(req.query_string)
        if mode == SCHEMA:
            return _schema_arguments(script, params)
        return {script.param: json.dumps(params)}
    if mode == SCHEMA:
        if not _is_json(req.content_type):
            raise UnsupportedInput("Expects Content-Type to be application/json")
        if not req.body.strip():
            raise BadInput("POST body is empty. Expecting a JSON dictionary.")
        try:
            body = jsoncodec.loads(req.body)
        except ValueError as ex:
            raise BadInput(f"POST body could not be decoded as JSON: {ex}") from None
        if not isinstance(body, dict):
            raise BadInput("POST body should be a JSON dictionary.")
        return _schema_arguments(script, body)
    try:
        return {script.param: req.body.decode("utf-8")}
    except UnicodeDecodeError as ex:
        raise BadInput(f"Input cannot be decoded as UTF-8: {ex}") from None


def _deserializer_failed(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name == "_deserialize_input_argument" or "inference_schema/parameter_types" in code.co_filename:
            return True
        tb = tb.tb_next
    return False


def input_fault(script: UserScript, req: RequestData, exc: BaseException) -> Optional[str]:
    """Pure: when run() failed because of the request rather than the script, the 400 message.

    Cases: inference-schema could not convert the input to the declared type (wrong
    shape or type), or an undecorated run() failed on an empty or non-JSON body that was
    sent as JSON (or without a telling content type).
    A @rawhttp run() that let the request's BadRequest (invalid JSON body) escape is a third.
    None means the script is at fault (500)."""
    if isinstance(exc, BadRequest):
        return f"Bad request: {exc}"
    if script.mode == SCHEMA and _deserializer_failed(exc):
        return f"Input does not match the schema of run(): {type(exc).__name__}: {exc}"
    if script.mode == TEXT and req.method == "POST" and _may_be_json(req.content_type):
        if not req.body.strip():
            return "run() failed on an empty request body; send the JSON input the script expects."
        try:
            jsoncodec.loads(req.body)
        except ValueError as bad:
            return f"run() failed on a request body that is not valid JSON ({bad}); check the body."
    return None
