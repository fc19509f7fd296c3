"""The aiohttp application: routes for health, scoring and swagger, JSON 404/405 answers."""

from __future__ import annotations

import asyncio
import hmac
import os
from typing import AsyncIterator, Awaitable, Callable, List, Optional

from aiohttp import web

from mlctl.runtime.server.answers import (
    JSON,
    HeaderTooLarge,
    add_ids,
    error,
    request_ids,
)
from mlctl.runtime.server.logs import RequestLog
from mlctl.runtime.server.scoring import Scorer
from mlctl.runtime.server.swagger import SwaggerDocs, SwaggerError
from mlctl.runtime.server.workers import WorkerPool

# web.AppKey is new in aiohttp 3.9; Python 3.7 environments serve with the aiohttp 3.8 line, whose
# application takes plain string keys (docs/compatibility.md, "Python versions")
if hasattr(web, "AppKey"):
    SCORER: "web.AppKey[Scorer]" = web.AppKey("scorer", Scorer)
    SWAGGER: "web.AppKey[SwaggerDocs]" = web.AppKey("swagger", SwaggerDocs)
else:  # pragma: no cover - exercised by the Python 3.7 corpus case
    SCORER, SWAGGER = "mlctl.scorer", "mlctl.swagger"  # type: ignore[assignment]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _only(methods: tuple, handler: Handler) -> Handler:
    async def route(request: web.Request) -> web.StreamResponse:
        if request.method not in methods:
            return error(405, "Method not allowed")
        return await handler(request)

    return route


def _with_ids(build: Callable[[web.Request], web.Response]) -> Handler:
    """A route whose answer carries the request-id headers, 431 for an over-long id (as Azure does on
    every route of its blueprint); `build` makes the answer itself."""

    async def route(request: web.Request) -> web.Response:
        try:
            ids = request_ids(request.headers)
        except HeaderTooLarge as exc:
            return error(431, str(exc))
        resp = build(request)
        add_ids(resp, ids, request.app[SCORER].server_version)
        return resp

    return route


def _health(request: web.Request) -> web.Response:
    unhealthy = request.app[SCORER].pool.unhealthy
    if unhealthy:  # the pool gave up replacing abandoned threads: this instance wants replacing
        return error(503, unhealthy)
    return web.Response(text="Healthy")


def _swagger(request: web.Request) -> web.Response:
    try:
        return web.Response(body=request.app[SWAGGER].get(request.query.get("version")), content_type=JSON)
    except SwaggerError as exc:
        return error(404, str(exc))


async def _not_found(request: web.Request) -> web.Response:
    return error(404, f"{request.path} is not a route of this server; use POST /score, GET / or GET /swagger.json")


async def worker_pool(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the scorer's worker threads, for the application's lifetime."""
    scorer = app[SCORER]
    s = scorer.settings
    scorer.pool = WorkerPool(
        asyncio.get_running_loop(),
        s.max_concurrent,
        s.max_queue,
        s.request_timeout_ms,
        s.max_abandoned,
        s.inline_run_ms,
    )
    yield
    scorer.pool.close()


async def log_flusher(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: flush the request log a few times a second, and at the end."""
    log: Optional[RequestLog] = app[SCORER].log
    if log is None:
        yield
        return
    loop = asyncio.get_running_loop()
    timer: List[asyncio.TimerHandle] = []

    def tick() -> None:
        log.flush()
        timer[:] = [loop.call_later(0.2, tick)]

    tick()
    yield
    timer[0].cancel()
    log.flush()


HOP_SECRET_VAR = "MLCTL_HOP_SECRET"  # set: the server answers only requests carrying it (the ray runtime's)
HOP_HEADER = "X-Mlctl-Hop"
_hop: List[str] = []


def take_hop_secret() -> str:
    """The hop secret (MLCTL_HOP_SECRET), removed from the environment on the first call (before the scoring
    script is imported, so neither it nor its subprocesses see it); "" when none is set."""
    if not _hop:
        _hop.append(os.environ.pop(HOP_SECRET_VAR, ""))
    return _hop[0]


def hop_guard(secret: str):
    """A middleware answering 403 to a request whose first X-Mlctl-Hop header is not `secret` (compared in
    constant time): a server listening beyond loopback answers only its endpoint's hosts."""
    expected = secret.encode()

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get(HOP_HEADER, "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, expected):
            return error(403, "this scoring server answers only its endpoint's hosts; send requests to the endpoint")
        return await handler(request)

    return guard


def create_app(scorer: Scorer, swagger: SwaggerDocs) -> web.Application:
    """The application serving one loaded scoring script (guarded by the hop secret when MLCTL_HOP_SECRET is
    set; the variable is removed from the environment the scoring script sees)."""
    secret = take_hop_secret()
    app = web.Application(
        client_max_size=scorer.settings.max_body_bytes,
        handler_args={"max_field_size": 65536, "max_line_size": 65536},
        middlewares=[hop_guard(secret)] if secret else [],
    )
    app[SCORER] = scorer
    app[SWAGGER] = swagger
    app.cleanup_ctx.append(worker_pool)
    app.cleanup_ctx.append(log_flusher)
    app.router.add_route("*", "/", _only(("GET", "HEAD"), _with_ids(_health)))
    app.router.add_route("*", "/score", scorer.handle)
    app.router.add_route("*", "/swagger.json", _only(("GET", "HEAD"), _with_ids(_swagger)))
    app.router.add_route("*", "/{tail:.*}", _not_found)
    return app
