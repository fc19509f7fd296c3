"""The public gateway: auth, routing by weight or header, mirror copies, limits (408/429/424), metrics."""

from __future__ import annotations

import asyncio
import logging
import uuid

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from .endpoint import Endpoint
from .supervisor import Deployment

log = logging.getLogger("mlctl.host")
access = logging.getLogger("mlctl.access")

ENDPOINT = web.AppKey("endpoint", Endpoint)
BACKGROUND = web.AppKey("background", set)
MAX_BODY = 64 * 1024 * 1024
DEPLOYMENT_HEADER = "azureml-model-deployment"
# request headers never forwarded to an instance (hop-by-hop, the client's credentials, recomputed ones)
DROP_REQUEST = frozenset(h.lower() for h in (
    "authorization", "host", "connection", "keep-alive", "proxy-authorization", "proxy-connection", "te",
    "trailer", "transfer-encoding", "upgrade", "content-length"))
DROP_RESPONSE = frozenset(("connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"))
RETRYABLE = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)


def message(status: int, text: str, headers=None) -> web.Response:
    return web.json_response({"message": text}, status=status, headers=headers)


def forward_headers(request: web.Request, request_id: str) -> CIMultiDict:
    out = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in DROP_REQUEST)
    out["x-request-id"] = request_id
    return out


async def _call(d: Deployment, method: str, path: str, body: bytes, headers, deadline: float):
    """Take a slot, send to the instance, read the answer; one retry elsewhere when the connection fails."""
    exclude = None
    for attempt in (0, 1):
        inst = await d.acquire(deadline, exclude)
        try:
            timeout = aiohttp.ClientTimeout(total=d.spec.instance_timeout_ms / 1000 + 1)
            async with inst.session.request(method, "http://instance" + path, data=body, headers=headers,
                                            timeout=timeout) as resp:
                return resp.status, resp.reason, resp.headers, await resp.read()
        except RETRYABLE as e:
            if attempt:
                raise
            log.info("%s instance %d: %s; retrying on another instance", d.spec.name, inst.index,
                     type(e).__name__)
            exclude = inst
        finally:
            d.release(inst)


def _retrieve(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()


async def forward(d: Deployment, method: str, path: str, body: bytes, headers) -> web.Response:
    """Answer from deployment `d`, or 408 at its request timeout (the instance call finishes on its own)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + d.spec.timeout_s
    task = loop.create_task(_call(d, method, path, body, headers, deadline))
    try:
        status, reason, up_headers, data = await asyncio.wait_for(asyncio.shield(task), d.spec.timeout_s)
    except asyncio.TimeoutError:
        task.add_done_callback(_retrieve)
        if d.ready_count() == 0:
            return message(503, f"deployment {d.spec.name!r} has no ready instance")
        return message(408, f"request timed out after {d.spec.request_settings['request_timeout_ms']} ms "
                            f"(request_timeout_ms of deployment {d.spec.name!r})")
    except RETRYABLE as e:
        return message(502, f"instance of deployment {d.spec.name!r} failed to answer: {type(e).__name__}")
    headers_out = CIMultiDict((k, v) for k, v in up_headers.items() if k.lower() not in DROP_RESPONSE)
    if status != 200:
        headers_out["ms-azureml-model-error-statuscode"] = str(status)
        headers_out["ms-azureml-model-error-reason"] = reason or ""
        status = 424
    return web.Response(status=status, body=data, headers=headers_out)


async def _mirror(ep: Endpoint, d: Deployment, body: bytes, headers) -> None:
    name = d.spec.name
    try:
        resp = await forward(d, "POST", "/score", body, headers)
        if resp.status != 200:
            ep.metrics.mirror_failed[name] += 1
    except Exception:  # a copy never disturbs the live answer
        ep.metrics.mirror_failed[name] += 1
    finally:
        d.in_flight -= 1


def send_mirror(app: web.Application, name: str, body: bytes, headers) -> None:
    """Fire and forget a copy to the mirrored deployment; dropped when it is busy or not ready."""
    ep = app[ENDPOINT]
    d = ep.deployments.get(name)
    if d is None or d.ready_count() == 0 or d.in_flight >= d.limit:
        ep.metrics.mirror_dropped[name] += 1
        return
    ep.metrics.mirror_sent[name] += 1
    d.in_flight += 1
    task = asyncio.get_running_loop().create_task(_mirror(ep, d, body, headers))
    app[BACKGROUND].add(task)
    task.add_done_callback(app[BACKGROUND].discard)


def _choose(ep: Endpoint, request: web.Request) -> tuple[Deployment | None, str | None, web.Response | None]:
    """(deployment, mirror target, or an error answer) for a request."""
    target = request.headers.get(DEPLOYMENT_HEADER)
    if target:
        d = ep.deployments.get(target)
        if d is None:
            return None, None, message(404, f"endpoint {ep.name!r} has no deployment {target!r}")
        return d, None, None
    name = ep.picker.pick()
    if name is None or name not in ep.deployments:
        return None, None, message(404, f"endpoint {ep.name!r} has no deployment with traffic; set traffic "
                                        f"or name one with the {DEPLOYMENT_HEADER} header")
    return ep.deployments[name], ep.sampler.sample(), None


async def handle_score(request: web.Request) -> web.StreamResponse:
    ep = request.app[ENDPOINT]
    loop = asyncio.get_running_loop()
    started = loop.time()
    request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
    name = ""
    if not ep.is_authorized(request.headers.get("Authorization")):
        resp = message(401, "not authorized: send 'Authorization: Bearer <key or token>' (see `mlctl keys`)",
                       {"WWW-Authenticate": "Bearer"})
    else:
        d, mirror, resp = _choose(ep, request)
        if d is not None:
            name = d.spec.name
            if d.in_flight >= d.limit:
                ep.metrics.rejected[name] += 1
                resp = message(429, f"too many requests in flight for deployment {name!r} (limit {d.limit} = 2 x "
                                    f"max_concurrent_requests_per_instance x instance_count)")
            else:
                d.in_flight += 1
                ep.metrics.in_flight[name] += 1
                try:
                    body = await request.read()
                    headers = forward_headers(request, request_id)
                    if mirror:
                        send_mirror(request.app, mirror, body, headers)
                    path = request.path_qs if request.method == "GET" else "/score"
                    resp = await forward(d, request.method, path, body, headers)
                finally:
                    d.in_flight -= 1
                    ep.metrics.in_flight[name] -= 1
    resp.headers["x-request-id"] = request_id
    elapsed = loop.time() - started
    ep.metrics.observe(name, resp.status, elapsed)
    access.info("%s %s %s %s %d %.1fms", request_id, request.method, request.path, name or "-", resp.status,
                elapsed * 1000)
    return resp


async def handle_swagger(request: web.Request) -> web.StreamResponse:
    ep = request.app[ENDPOINT]
    if not ep.is_authorized(request.headers.get("Authorization")):
        return message(401, "not authorized", {"WWW-Authenticate": "Bearer"})
    name = request.headers.get(DEPLOYMENT_HEADER) or max(
        ep.traffic, key=lambda n: (ep.traffic[n], n), default=None) or next(iter(sorted(ep.deployments)), None)
    d = ep.deployments.get(name) if name else None
    if d is None:
        return message(404, f"endpoint {ep.name!r} has no deployment to describe")
    return await forward(d, "GET", request.path_qs, b"", forward_headers(request, str(uuid.uuid4())))


async def handle_health(request: web.Request) -> web.Response:
    return web.Response(text="Healthy")


async def handle_metrics(request: web.Request) -> web.Response:
    ep = request.app[ENDPOINT]
    ready = {n: d.ready_count() for n, d in ep.deployments.items()}
    return web.Response(body=ep.metrics.render(ready).encode(),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


@web.middleware
async def json_errors(request: web.Request, handler):
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return message(e.status, e.reason)


async def _background(app: web.Application):
    yield
    tasks = list(app[BACKGROUND])
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def make_gateway(ep: Endpoint) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY, middlewares=[json_errors])
    app[ENDPOINT] = ep
    app[BACKGROUND] = set()
    app.cleanup_ctx.append(_background)
    app.router.add_get("/", handle_health)
    app.router.add_get("/metrics", handle_metrics)
    app.router.add_get("/swagger.json", handle_swagger)
    app.router.add_route("POST", "/score", handle_score)
    app.router.add_route("GET", "/score", handle_score)
    return app
