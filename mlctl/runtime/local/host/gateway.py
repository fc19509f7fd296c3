"""The public gateway: auth, routing by weight or header, mirror copies, limits (408/429/424), metrics.

Served by the lean HTTP/1.1 server of protocol.py (not aiohttp's: see its docstring for why)."""

from __future__ import annotations

import asyncio
import functools
import logging
import random

from .endpoint import Endpoint
from .logfiles import AccessLog
from .messages import Request, Response, json_response
from .protocol import HttpServer
from .supervisor import Deployment
from .upstream import ConnectionFailed

log = logging.getLogger("mlctl.host")

DEPLOYMENT_HEADER = "azureml-model-deployment"
DEPLOYMENT_KEY = DEPLOYMENT_HEADER.encode()
# request headers never forwarded to an instance (hop-by-hop, the client's credentials, recomputed ones)
DROP_REQUEST = frozenset(h.lower() for h in (
    "authorization", "host", "connection", "keep-alive", "proxy-authorization", "proxy-connection", "te",
    "trailer", "transfer-encoding", "upgrade", "content-length", "expect"))
DROP_REQUEST_BYTES = frozenset(h.encode() for h in DROP_REQUEST | {"x-request-id"})


_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def new_request_id() -> str:
    """A random UUID4 string (from the PRNG: no syscall per request; ids need not be secret).

    Same text as str(uuid.UUID(int=..., version=4)), without building a UUID object per request."""
    h = f"{random.getrandbits(128) & _UUID4_CLEAR | _UUID4_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def message(status: int, text: str, headers: list | None = None) -> Response:
    return json_response(status, {"message": text}, headers)


def forward_headers(request: Request, request_id: str) -> bytes:
    """The request's header lines for the instance: no credentials, no hop-by-hop (those named in
    Connection too, RFC 9110 7.6.1), the gateway's x-request-id."""
    hop = request.fields.get(b"connection")
    drop = DROP_REQUEST_BYTES
    if hop:
        named = {t.strip().lower() for t in hop.split(b",")} - {b"close", b"keep-alive", b""}
        if named:
            drop = drop | named
    return b"".join([name + b": " + value + b"\r\n" for lower, name, value in request.headers if lower not in drop]
                    + [b"x-request-id: " + request_id.encode("latin-1") + b"\r\n"])


def _expire(answer: asyncio.Future) -> None:
    if not answer.done():
        answer.set_exception(asyncio.TimeoutError())


async def _call(d: Deployment, method: str, target: str, headers: bytes, body: bytes, deadline: float, loop):
    """Take a slot, send to the instance, await the answer until `deadline` (TimeoutError past it).

    The slot is held until the instance answers, even after a timeout (bounded by the instance's
    own timeout + 1 s); a connection that fails with no answer is retried once on another instance."""
    exclude = None
    for attempt in (0, 1):
        inst = d.try_acquire(exclude) or await d.acquire(deadline, exclude)
        try:
            on_done = functools.partial(d.release, inst)
            conn, serial, answer = (inst.pool.send(method, target, headers, body, on_done)
                                    or await inst.pool.request(method, target, headers, body, on_done))
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


async def forward(d: Deployment, method: str, target: str, body: bytes, headers: bytes) -> Response:
    """Answer from deployment `d`, or 408 at its request timeout (424 when the instance answers non-200)."""
    loop = d.loop
    try:
        status, reason, passed, data = await _call(d, method, target, headers, body,
                                                       loop.time() + d.spec.timeout_s, loop)
    except asyncio.TimeoutError:
        if d.ready_count() == 0:
            return message(503, f"deployment {d.spec.name!r} has no ready instance")
        return message(408, f"request timed out after {d.spec.request_settings['request_timeout_ms']} ms "
                            f"(request_timeout_ms of deployment {d.spec.name!r})")
    except ConnectionFailed as e:
        return message(502, f"instance of deployment {d.spec.name!r} failed to answer: {e}")
    if status != 200:
        return Response(424, data, [("ms-azureml-model-error-statuscode", str(status)),
                                    ("ms-azureml-model-error-reason", reason)], passed)
    return Response(status, data, [], passed)


def _choose(ep: Endpoint, target: str | None) -> tuple[Deployment | None, str | None, Response | None]:
    """(deployment, mirror target, or an error answer) for a request naming deployment `target` or none."""
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


def _not_allowed(request: Request, allow: str) -> Response:
    return message(405, f"{request.method} is not allowed on {request.path}: use {allow.replace(', ', ' or ')}",
                   [("Allow", allow)])


class Gateway:
    """The public port: its HTTP server, the request handler, and what they own (access log, mirror copies)."""

    def __init__(self, ep: Endpoint):
        self.ep = ep
        self.access = AccessLog()
        self.background: set[asyncio.Task] = set()
        self.server: HttpServer | None = None
        self._flusher: asyncio.Task | None = None
        self._routes = {"/score": self.handle_score, "/": self.handle_health, "/metrics": self.handle_metrics,
                        "/swagger.json": self.handle_swagger}

    async def start(self, sock) -> None:
        self._flusher = asyncio.get_running_loop().create_task(self.access.run())
        self.server = HttpServer(self.handle)
        await self.server.start(sock)

    async def stop(self) -> None:
        """Stop accepting, let answers in progress finish, then drop mirror copies and flush the access log."""
        if self.server is not None:
            await self.server.close()
        tasks = list(self.background) + ([self._flusher] if self._flusher else [])
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def handle(self, request: Request):
        route = self._routes.get(request.path)
        if route is None:
            return self.handle_unknown(request)
        return route(request)

    # ---- /score --------------------------------------------------------------------------------
    async def handle_score(self, request: Request) -> Response:
        if request.method not in ("POST", "GET"):
            return _not_allowed(request, "GET, POST")
        ep = self.ep
        started = ep.loop.time()
        fields = request.fields
        rid = fields.get(b"x-request-id")
        request_id = rid.decode("latin-1") if rid else new_request_id()
        name = ""
        auth = fields.get(b"authorization")
        if not ep.is_authorized(auth.decode("latin-1") if auth else None):
            resp = message(401, "not authorized: send 'Authorization: Bearer <key or token>' (see `mlctl keys`)",
                           [("WWW-Authenticate", "Bearer")])
        else:
            target = fields.get(DEPLOYMENT_KEY)
            d, mirror, resp = _choose(ep, target.decode("latin-1") if target else None)
            if d is not None:
                name = d.spec.name
                if d.in_flight >= d.limit:
                    ep.metrics.rejected[name] += 1
                    resp = message(429, f"too many requests in flight for deployment {name!r} (limit {d.limit} = "
                                        f"2 x max_concurrent_requests_per_instance x instance_count)")
                else:
                    d.in_flight += 1
                    ep.metrics.in_flight[name] += 1
                    try:
                        headers = forward_headers(request, request_id)
                        if mirror:
                            self.send_mirror(mirror, request.body, headers)
                        resp = await forward(d, request.method,
                                             request.target if request.method == "GET" else "/score",
                                             request.body, headers)
                    finally:
                        d.in_flight -= 1
                        ep.metrics.in_flight[name] -= 1
        resp.headers.append(("x-request-id", request_id))
        resp.after = functools.partial(self._account, request, resp.status, name, request_id, started)
        return resp

    def _account(self, request: Request, status: int, name: str, request_id: str, started: float) -> None:
        """Metrics and the access line of an answered request (run once the answer is on its way)."""
        elapsed = self.ep.loop.time() - started
        self.ep.metrics.observe(name, status, elapsed)
        self.access.write(f"{request_id} {request.method} {request.path} {name or '-'} {status} "
                          f"{elapsed * 1000:.1f}ms")

    def send_mirror(self, name: str, body: bytes, headers: bytes) -> None:
        """Fire and forget a copy to the mirrored deployment; dropped when it is busy or not ready."""
        ep = self.ep
        d = ep.deployments.get(name)
        if d is None or d.ready_count() == 0 or d.in_flight >= d.limit:
            ep.metrics.mirror_dropped[name] += 1
            return
        ep.metrics.mirror_sent[name] += 1
        d.in_flight += 1
        task = ep.loop.create_task(self._mirror(d, body, headers))
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _mirror(self, d: Deployment, body: bytes, headers: bytes) -> None:
        name = d.spec.name
        try:
            resp = await forward(d, "POST", "/score", body, headers)
            if resp.status != 200:
                self.ep.metrics.mirror_failed[name] += 1
        except Exception:  # a copy never disturbs the live answer
            self.ep.metrics.mirror_failed[name] += 1
        finally:
            d.in_flight -= 1

    # ---- the other routes ----------------------------------------------------------------------
    async def handle_swagger(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return _not_allowed(request, "GET")
        ep = self.ep
        if not ep.is_authorized(request.header(b"authorization")):
            return message(401, "not authorized", [("WWW-Authenticate", "Bearer")])
        name = request.header(b"azureml-model-deployment") or max(
            ep.traffic, key=lambda n: (ep.traffic[n], n), default=None) or next(iter(sorted(ep.deployments)), None)
        d = ep.deployments.get(name) if name else None
        if d is None:
            return message(404, f"endpoint {ep.name!r} has no deployment to describe")
        return await forward(d, "GET", request.target, b"", forward_headers(request, new_request_id()))

    async def handle_health(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return _not_allowed(request, "GET")
        return Response(200, b"Healthy", [("Content-Type", "text/plain; charset=utf-8")])

    async def handle_metrics(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return _not_allowed(request, "GET")
        ep = self.ep
        ready = {n: d.ready_count() for n, d in ep.deployments.items()}
        return Response(200, ep.metrics.render(ready).encode(),
                        [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")])

    async def handle_unknown(self, request: Request) -> Response:
        return message(404, f"no such path {request.path!r}: use /score, /swagger.json, / or /metrics")
