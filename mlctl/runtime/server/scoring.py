"""The /score route: capture the request, hop to a worker for input parsing and run(), answer."""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any, Dict, Optional, Tuple

from aiohttp import web

from mlctl.runtime.server import jsoncodec
from mlctl.runtime.server.answers import (
    JSON,
    HeaderTooLarge,
    cors_headers,
    error,
    id_headers,
    request_ids,
)
from mlctl.runtime.server.inputs import (
    BadInput,
    RequestData,
    UnsupportedInput,
    header_dict,
    input_fault,
    run_arguments,
)
from mlctl.runtime.server.logs import RequestLog
from mlctl.runtime.server.response import AMLResponse
from mlctl.runtime.server.script import RAW, UserScript
from mlctl.serversettings import Settings
from mlctl.runtime.server.workers import CallTimeout, QueueFull, Unhealthy, WorkerPool

logger = logging.getLogger("azmlinfsrv")

RUN_FAILED = "An unexpected error occurred in scoring script. Check the logs for more info."
INTERNAL_ERROR = "An unexpected internal error occurred. Check the logs for more info."


class RunFailed(Exception):
    """run() raised; ``__cause__`` is the user's exception."""


def _invoke(script: UserScript, req: RequestData) -> Tuple[Any, float]:
    """On a worker: parse the input, call run(); returns (output, run ms)."""
    kwargs = run_arguments(script, req)
    headers: Optional[Dict[str, str]] = header_dict(req.headers) if script.wants_headers else None
    start = time.perf_counter()
    try:
        out = script.call(kwargs, headers)
    except BaseException as exc:  # SystemExit / KeyboardInterrupt from run() must not stop the server
        raise RunFailed() from exc
    return out, (time.perf_counter() - start) * 1000.0


def _user_response(out: Any) -> web.Response:
    """The aiohttp answer for an AMLResponse, or a Flask/Werkzeug response from a script using the real
    azureml packages: its status (and reason), headers and body; the length is aiohttp's own."""
    status = int(out.status_code)
    reason = str(getattr(out, "status", "")).partition(" ")[2]
    reason = reason if reason.isascii() and reason.isprintable() and reason else None
    resp = web.Response(status=status, reason=reason, body=out.get_data())
    for k, v in out.headers.items():
        if k.lower() not in ("content-length", "x-ms-run-function-failed"):
            resp.headers.add(k, v)
    failed = status >= 500 or out.headers.get("x-ms-run-function-failed") == "True"
    resp.headers["x-ms-run-function-failed"] = "True" if failed else "False"
    return resp


class Scorer:
    """Serves /score for one loaded script through a worker pool, logging one line per request."""

    pool: WorkerPool  # set by the app's cleanup context (mlctl.runtime.server.app.worker_pool)

    def __init__(self, settings: Settings, script: UserScript, log: Optional[RequestLog], server_version: str) -> None:
        self.settings = settings
        self.script = script
        self.log = log
        self.server_version = server_version
        self.inflight = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        start = time.perf_counter()
        self.inflight += 1
        try:
            try:
                ids = request_ids(request.headers)
            except HeaderTooLarge as exc:
                ids = ("", "", "")
                resp = error(431, str(exc))
            else:
                ids_headers = id_headers(ids, self.server_version)
                try:
                    resp = await self._answer(request, ids_headers)
                except Exception:  # a server bug must not turn into a text/plain 500 from aiohttp
                    logger.error("Encountered Exception: %s", traceback.format_exc())
                    resp = error(500, INTERNAL_ERROR)
                if resp.headers.get("x-request-id") is not ids[0]:  # (the JSON answer of run() has them already)
                    resp.headers.update(ids_headers)
                trace = request.headers.get("TraceId")
                if trace is not None:  # Office services' tracing field, echoed as Azure does
                    resp.headers["TraceId"] = trace
            if self.settings.cors_origins:
                resp.headers.update(
                    cors_headers(
                        self.settings.cors_origins,
                        request.headers.get("Origin"),
                        request.method == "OPTIONS",
                        request.headers.get("Access-Control-Request-Headers"),
                    )
                )
            if self.log is not None:
                body = resp.body
                self.log.write(
                    request.method,
                    request.path_qs,
                    resp.status,
                    (time.perf_counter() - start) * 1000.0,
                    len(body) if body is not None else 0,
                    ids[0],
                )
            return resp
        finally:
            self.inflight -= 1

    async def _answer(self, request: web.Request, ids_headers: Dict[str, str]) -> web.Response:
        method = request.method
        if method == "OPTIONS":
            return web.Response(status=200, headers={"Allow": "GET, POST, OPTIONS"})
        if method not in ("GET", "POST"):
            return error(405, "Method not allowed")
        if method == "POST":
            length = request.content_length
            if length is not None and length > self.settings.max_body_bytes:
                return error(413, f"Request body is {length} bytes; the limit is {self.settings.max_body_bytes}")
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                return error(413, f"Request body is over the limit of {self.settings.max_body_bytes} bytes")
        else:
            body = b""
        headers = request.headers
        raw = self.script.mode == RAW
        req = RequestData(
            method,
            request.path,
            request.query_string,
            headers,
            body,
            headers.get("Content-Type", ""),
            request.remote if raw else None,
            request.host if raw else "",
        )
        try:
            pool = self.pool
            if pool.takes_inline():  # a short run() on the loop's thread (mlctl.runtime.server.inline)
                (out, run_ms), _ = pool.inline.call(_invoke, self.script, req)
            else:  # on a worker thread, or inline once the threads' calls are done (WorkerPool.run)
                (out, run_ms), _ = await pool.run(_invoke, self.script, req)
        except QueueFull:
            return error(429, f"Too many requests: {self.pool.limit} already running or queued; retry later")
        except Unhealthy as exc:
            return error(503, f"Unhealthy: {exc}")
        except BadInput as exc:
            return error(400, str(exc))
        except UnsupportedInput as exc:
            return error(415, str(exc))
        except CallTimeout as exc:
            logger.error(
                "Encountered Exception: run() did not finish within %s ms; %s",
                exc.timeout_ms,
                "abandoned it" if exc.abandoned else "interrupted it on the loop thread",
            )
            return error(500, f"Scoring timeout after {exc.timeout_ms} ms", run_failed=True)
        except RunFailed as exc:
            cause = exc.__cause__
            logger.error(
                "Encountered Exception: %s",
                "".join(traceback.format_exception(type(cause), cause, cause.__traceback__ if cause else None)),
            )
            fault = input_fault(self.script, req, cause) if cause is not None else None
            if fault is not None:
                return error(400, fault, run_failed=True)
            return error(500, RUN_FAILED, run_failed=True)
        if isinstance(out, AMLResponse) or (hasattr(out, "status_code") and hasattr(out, "get_data")):
            resp = _user_response(out)
        else:
            try:
                payload = jsoncodec.dumps(out) if out is not None else b"{}"  # None -> {}, as Azure answers
            except (TypeError, ValueError) as exc:
                logger.error("Encountered Exception: run() returned a value that is not JSON serializable: %s", exc)
                return error(500, RUN_FAILED, run_failed=True)
            return web.Response(
                status=200,
                body=payload,
                headers={  # one header dict: the common answer's cost
                    "Content-Type": JSON,
                    "x-ms-run-function-failed": "False",
                    "x-ms-run-fn-exec-ms": f"{run_ms:.3f}",
                    **ids_headers,
                },
            )
        resp.headers["x-ms-run-fn-exec-ms"] = f"{run_ms:.3f}"
        return resp
