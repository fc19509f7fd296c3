"""The public gateway: auth, routing by weight or header, mirror copies, limits (408/429/424), metrics."""

from __future__ import annotations

import asyncio
import functools
import logging
import random

from aiohttp import web

from .endpoint import Endpoint
from .logfiles import AccessLog
from .supervisor import Deployment
from .upstream import ConnectionFailed

log = logging.getLogger("mlctl.host")

ENDPOINT = web.AppKey("endpoint", Endpoint)
BACKGROUND = web.AppKey("background", set)
ACCESS = web.AppKey("access", AccessLog)
MAX_BODY = 64 * 1024 * 1024
DEPLOYMENT_HEADER = "azureml-model-deployment"
# request headers never forwarded to an instance (hop-by-hop, the client's credentials, recomputed ones)
DROP_REQUEST = frozenset(h.lower() for h in (
    "authorization", "host", "connection", "keep-alive", "proxy-authorization", "proxy-connection", "te",
    "trailer", "transfer-encoding", "upgrade", "content-length", "expect"))
DROP_REQUEST_BYTES = frozenset(h.encode() for h in DROP_REQUEST | {"x-request-id"})
DROP_RESPONSE = frozenset(("connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"))


_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def new_request_id() -> str:
    """A random UUID4 string (from the PRNG: no syscall per request; ids need not be secret).

    Same text as str(uuid.UUID(int=..., version=4)), without building a UUID object per request."""
    h = f"{random.getrandbits(128) & _UUID4_CLEAR | _UUID4_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def message(status: int, text: str, headers=None) -> web.Response:
    return web.json_response({"message": text}, status=status, headers=headers)


def forward_headers(request: web.Request, request_id: str) -> bytes:
    """The request's header lines for the instance: no credentials, no hop-by-hop, our x-request-id."""
    lines = [name + b": " + value + b"\r\n" for name, value in request.raw_headers
             if name.lower() not in DROP_REQUEST_BYTES]
    lines.append(b"x-request-id: " + request_id.encode("latin-1") + b"\r\n")
    return b"".join(lines)


def _expire(answer: asyncio.Future) -> None:
    if not answer.done():
        answer.set_exception(asyncio.TimeoutError())


async def _call(d: Deployment, method: str, target: str, headers: bytes, body: bytes, deadline: float, loop):
    """Take a slot, send to the instance, await the answer until `deadline` (TimeoutError past it).

    The slot is held until the instance answers, even after a timeout (bounded by the instance's
    own timeout + 1 s); a connection that fails with no answer is retried once on another instance."""
    exclude = None
    for attempt in (0, 1):
        inst = await d.acquire(deadline, exclude)
        try:
            conn, serial, answer = await inst.pool.request(method, target, headers, body,
                                                           functools.partial(d.release, inst))
        except ConnectionFailed:
            d.release(inst)
            if attempt:
                raise
            exclude = inst
            continue
        # the timer completes the future early; the exchange goes on and releases the slot when it ends
        timer = loop.call_at(deadline, _expire, answer)
        try:
            return await answer
        except ConnectionFailed as e:
            if attempt or e.answered:
                raise
            log.info("%s instance %d: %s; retrying on another instance", d.spec.name, inst.index, e)
            exclude = inst
        except asyncio.TimeoutError:
            loop.call_later(d.spec.instance_timeout_ms / 1000 - d.spec.timeout_s + 1, conn.abort, serial)
            raise
        finally:
            timer.cancel()


async def forward(d: Deployment, method: str, target: str, body: bytes, headers: bytes) -> web.Response:
    """Answer from deployment `d`, or 408 at its request timeout (424 when the instance answers non-200)."""
    loop = d.loop
    try:
        status, reason, up_headers, data = await _call(d, method, target, headers, body,
                                                       loop.time() + d.spec.timeout_s, loop)
    except asyncio.TimeoutError:
        if d.ready_count() == 0:
            return message(503, f"deployment {d.spec.name!r} has no ready instance")
        return message(408, f"request timed out after {d.spec.request_settings['request_timeout_ms']} ms "
                            f"(request_timeout_ms of deployment {d.spec.name!r})")
    except ConnectionFailed as e:
        return message(502, f"instance of deployment {d.spec.name!r} failed to answer: {e}")
    headers_out = [(k, v) for k, v in up_headers if k.lower() not in DROP_RESPONSE]
    if status != 200:
        headers_out.append(("ms-azureml-model-error-statuscode", str(status)))
        headers_out.append(("ms-azureml-model-error-reason", reason))
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


async def _forward_score(request: web.Request, d: Deployment, mirror: str | None, request_id: str):
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return message(413, f"request body over {MAX_BODY} bytes")
    headers = forward_headers(request, request_id)
    if mirror:
        send_mirror(request.app, mirror, body, headers)
    return await forward(d, request.method, request.path_qs if request.method == "GET" else "/score", body, headers)


async def handle_score(request: web.Request) -> web.StreamResponse:
    if request.method not in ("POST", "GET"):
        return message(405, f"{request.method} is not allowed on /score: use POST", {"Allow": "GET, POST"})
    ep = request.app[ENDPOINT]
    loop = ep.loop
    started = loop.time()
    request_id = request.headers.get("x-request-id") or new_request_id()
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
                    resp = await _forward_score(request, d, mirror, request_id)
                finally:
                    d.in_flight -= 1
                    ep.metrics.in_flight[name] -= 1
    resp.headers["x-request-id"] = request_id
    elapsed = loop.time() - started
    ep.metrics.observe(name, resp.status, elapsed)
    request.app[ACCESS].write(f"{request_id} {request.method} {request.path} {name or '-'} {resp.status} "
                              f"{elapsed * 1000:.1f}ms")
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
    return await forward(d, "GET", request.path_qs, b"", forward_headers(request, new_request_id()))


async def handle_health(request: web.Request) -> web.Response:
    return web.Response(text="Healthy")


async def handle_metrics(request: web.Request) -> web.Response:
    ep = request.app[ENDPOINT]
    ready = {n: d.ready_count() for n, d in ep.deployments.items()}
    return web.Response(body=ep.metrics.render(ready).encode(),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def handle_unknown(request: web.Request) -> web.Response:
    """Every other path: 404 as JSON (a route, not a middleware: nothing on the hot path)."""
    return message(404, f"no such path {request.path!r}: use /score, /swagger.json, / or /metrics")


async def _background(app: web.Application):
    flusher = asyncio.get_running_loop().create_task(app[ACCESS].run())
    yield
    flusher.cancel()
    tasks = list(app[BACKGROUND])
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def make_gateway(ep: Endpoint) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    app[ENDPOINT] = ep
    app[BACKGROUND] = set()
    app[ACCESS] = AccessLog()
    app.cleanup_ctx.append(_background)
    app.router.add_get("/", handle_health)
    app.router.add_get("/metrics", handle_metrics)
    app.router.add_get("/swagger.json", handle_swagger)
    app.router.add_route("*", "/score", handle_score)
    app.router.add_route("*", "/{tail:.*}", handle_unknown)
    return app
