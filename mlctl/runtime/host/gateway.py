"""The public gateway: auth, routing by weight or header, mirror copies, limits (408/429/424), metrics.

Served by the lean HTTP/1.1 server of protocol.py (not aiohttp's: see its docstring for why)."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time

from .endpoint import Endpoint
from .exchange import Exchange, forward, message
from .listen import ListenSettings
from .logfiles import AccessLog
from .messages import Request, Response
from .protocol import HttpServer
from .supervisor import Deployment

log = logging.getLogger("mlctl.host")
SETTLE_S = 0.2  # how often answered requests reach the metrics and the access log

DEPLOYMENT_HEADER = "azureml-model-deployment"
DEPLOYMENT_KEY = DEPLOYMENT_HEADER.encode()
# request headers never forwarded to an instance (hop-by-hop, the client's credentials, recomputed ones)
DROP_REQUEST = frozenset(
    h.lower()
    for h in (
        "authorization",
        "host",
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "expect",
    )
)
DROP_REQUEST_BYTES = frozenset(h.encode() for h in DROP_REQUEST | {"x-request-id"})


# Azure's limit on request-id headers: the scoring server answers 431 past it. The host replaces a longer
# x-request-id with its own (the answer carries the one used), and answers 431 itself for the other two.
REQUEST_ID_MAX = 100


def request_id(request: Request) -> bytes:
    """The request's x-request-id, or a new one when it sent none or one over REQUEST_ID_MAX characters."""
    rid = request.fields.get(b"x-request-id")
    return rid if rid and len(rid) <= REQUEST_ID_MAX else new_request_id()


def long_client_ids(request: Request) -> Response | None:
    """431 when x-ms-request-id or x-ms-client-request-id is over REQUEST_ID_MAX characters (the client's
    error, not the model's: the instance would refuse it too), else None."""
    fields = request.fields
    for name in (b"x-ms-request-id", b"x-ms-client-request-id"):
        value = fields.get(name)
        if value is not None and len(value) > REQUEST_ID_MAX:
            return message(431, f"{name.decode()} must not exceed {REQUEST_ID_MAX} characters")
    return None


_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def new_request_id() -> bytes:
    """A random UUID4 as text (from the PRNG: no syscall per request; ids need not be secret).

    Same text as str(uuid.UUID(int=..., version=4)), without building a UUID object per request."""
    h = f"{random.getrandbits(128) & _UUID4_CLEAR | _UUID4_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}".encode()


def forward_headers(request: Request, request_id: bytes) -> bytes:
    """The request's header lines for the instance: no credentials, no hop-by-hop (those named in
    Connection too, RFC 9110 7.6.1), the gateway's x-request-id."""
    hop = request.fields.get(b"connection")
    drop = DROP_REQUEST_BYTES
    if hop:
        named = {t.strip().lower() for t in hop.split(b",")} - {b"close", b"keep-alive", b""}
        if named:
            drop = drop | named
    parts = []
    for lower, name, value in zip(request.lowers, request.names, request.values):
        if lower not in drop:
            parts += (name, b": ", value, b"\r\n")
    parts += (b"x-request-id: ", request_id, b"\r\n")
    return b"".join(parts)


def _choose(ep: Endpoint, target: str | None) -> tuple[Deployment | None, str | None, Response | None]:
    """(deployment, mirror target, or an error answer) for a request naming deployment `target` or none."""
    if target:
        d = ep.deployments.get(target)
        if d is None:
            return None, None, message(404, f"endpoint {ep.name!r} has no deployment {target!r}")
        return d, None, None
    name = ep.picker.pick()
    if name is None or name not in ep.deployments:
        return (
            None,
            None,
            message(
                404,
                f"endpoint {ep.name!r} has no deployment with traffic; set traffic "
                f"or name one with the {DEPLOYMENT_HEADER} header",
            ),
        )
    return ep.deployments[name], ep.sampler.sample(), None


_PROTECTED = {"/score": ("POST", "GET"), "/swagger.json": ("GET", "HEAD")}  # routes and methods needing a key


def _unauthorized() -> Response:
    return message(
        401,
        "not authorized: send 'Authorization: Bearer <key or token>' (see `mlctl keys`)",
        [("WWW-Authenticate", "Bearer")],
    )


def _is_local(request: Request) -> bool:
    """Did the request come from this machine (loopback)? Off it, `/` and `/metrics` need credentials too. A
    request a trusted proxy forwarded (X-Forwarded-For) comes from elsewhere, even from a proxy on loopback."""
    peer = request.peer
    if peer is None:
        return True
    return peer.local and not (peer.proxy and b"x-forwarded-for" in request.fields)


def _too_many(d: Deployment) -> Response:
    return message(
        429,
        f"too many requests in flight for deployment {d.spec.name!r} (limit {d.limit} "
        f"= 2 x max_concurrent_requests_per_instance x instance_count)",
    )


def _not_allowed(request: Request, allow: str) -> Response:
    return message(
        405, f"{request.method} is not allowed on {request.path}: use {allow.replace(', ', ' or ')}", [("Allow", allow)]
    )


class Gateway:
    """The public port: its HTTP server, the request handler, and what they own (access log, mirror copies)."""

    def __init__(self, ep: Endpoint, listen: ListenSettings | None = None, tls=None):
        """`listen`: where the port listens (trusted proxies); `tls`: a tls.Tls to serve TLS with."""
        self.ep = ep
        self.listen, self.tls = listen or ListenSettings(), tls
        self.access = AccessLog()
        # answered requests (request id, method, path, deployment, status, seconds, time.time()), settled
        # into metrics and access lines in batches by settle(): off the request path
        self.answered: list[tuple] = []
        self.background: set[asyncio.Task] = set()
        self.server: HttpServer | None = None
        self._flusher: asyncio.Task | None = None
        self._routes = {
            "/score": self.handle_score,
            "/": self.handle_health,
            "/metrics": self.handle_metrics,
            "/swagger.json": self.handle_swagger,
        }

    async def start(self, sock, max_connections: int = 4096) -> None:
        self._flusher = asyncio.get_running_loop().create_task(self._settle_every(SETTLE_S))
        self.server = HttpServer(
            self.handle,
            authorize=self.ep.is_authorized,
            unauthorized=self.refuse_unauthorized,
            max_connections=max_connections,
            listen=self.listen,
            tls=self.tls,
        )
        await self.server.start(sock)

    async def stop(self) -> None:
        """Stop accepting, let answers in progress finish, then drop mirror copies and flush the access log."""
        if self.server is not None:
            await self.server.close()
        tasks = list(self.background) + ([self._flusher] if self._flusher else [])
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def refuse_unauthorized(self, request: Request) -> Response | None:
        """The 401 for a request whose credentials failed, answered when its head arrives (its body is
        never read), or None for the routes that need none (and wrong methods: 405 comes first)."""
        if request.method not in _PROTECTED.get(request.path, ()):
            return None
        ep = self.ep
        return self._stamp(_unauthorized(), request, "", request_id(request), ep.loop.time())

    def handle(self, request: Request):
        route = self._routes.get(request.path)
        if route is None:
            return self.handle_unknown(request)
        return route(request)

    # ---- /score --------------------------------------------------------------------------------
    def handle_score(self, request: Request):
        """The answer now (Response), by callbacks (an Exchange: the usual case) or by a coroutine."""
        if request.method not in ("POST", "GET"):
            return _not_allowed(request, "GET, POST")
        ep = self.ep
        started = ep.loop.time()
        fields = request.fields
        rid = request_id(request)
        if not request.authorized:  # checked when the head arrived (HttpServer's authorize)
            return self._stamp(_unauthorized(), request, "", rid, started)
        too_long = long_client_ids(request)
        if too_long is not None:
            return self._stamp(too_long, request, "", rid, started)
        target = fields.get(DEPLOYMENT_KEY)
        d, mirror, resp = _choose(ep, target.decode("latin-1") if target else None)
        if d is None:
            return self._stamp(resp, request, "", rid, started)
        name = d.spec.name
        if d.in_flight >= d.limit:
            ep.metrics.rejected[name] += 1
            return self._stamp(_too_many(d), request, name, rid, started)
        d.in_flight += 1
        headers = forward_headers(request, rid)
        if mirror:
            self.send_mirror(mirror, request.body, headers)
        finish = functools.partial(self._finish, d, request, name, rid, started)
        exchange = Exchange(
            d, request.method, request.target if request.method == "GET" else "/score", headers, request.body, finish
        )
        return exchange.start()

    def _finish(
        self, d: Deployment, request: Request, name: str, request_id: bytes, started: float, resp: Response
    ) -> Response:
        """A forwarded request is answered: it leaves the in-flight counts."""
        d.in_flight -= 1
        return self._stamp(resp, request, name, request_id, started)

    def _stamp(self, resp: Response, request: Request, name: str, request_id: bytes, started: float) -> Response:
        """The request id on the answer; metrics and the access line once it is written."""
        resp.raw += b"x-request-id: " + request_id + b"\r\n"
        resp.after = functools.partial(self._account, request, resp.status, name, request_id, started)
        return resp

    def _account(self, request: Request, status: int, name: str, request_id: bytes, started: float) -> None:
        """Note an answered request (run once the answer is on its way); settle() does the rest."""
        self.answered.append(
            (
                request_id,
                request.method,
                request.path,
                name,
                status,
                self.ep.loop.time() - started,
                time.time(),
                request.peer,
                request.fields.get(b"x-forwarded-for"),
            )
        )

    def settle(self) -> None:
        """Metrics and access lines of the requests answered since the last call (every SETTLE_S, and
        before /metrics is rendered, so a scrape counts every answered request)."""
        answered, self.answered = self.answered, []
        observe, write, listen = self.ep.metrics.observe, self.access.write, self.listen
        for request_id, method, path, name, status, elapsed, wall, peer, forwarded in answered:
            observe(name, status, elapsed)
            client = (peer.client(forwarded, listen) if peer is not None else "") or "-"
            rid = request_id.decode("latin-1")
            write(f"{rid} {method} {path} {name or '-'} {status} {elapsed * 1000:.1f}ms {client}", wall)

    async def _settle_every(self, interval_s: float) -> None:
        try:
            while True:
                await asyncio.sleep(interval_s)
                self.settle()
                self.access.flush()
        finally:
            self.settle()
            self.access.flush()

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
        if not request.authorized:
            return _unauthorized()
        name = (
            request.header(b"azureml-model-deployment")
            or max(ep.traffic, key=lambda n: (ep.traffic[n], n), default=None)
            or next(iter(sorted(ep.deployments)), None)
        )
        d = ep.deployments.get(name) if name else None
        if d is None:
            return message(404, f"endpoint {ep.name!r} has no deployment to describe")
        if d.in_flight >= d.limit:  # swagger.json takes a slot like a scoring request: the same limit
            ep.metrics.rejected[name] += 1
            return _too_many(d)
        d.in_flight += 1
        try:
            return await forward(d, "GET", request.target, b"", forward_headers(request, new_request_id()))
        finally:
            d.in_flight -= 1

    def handle_health(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return _not_allowed(request, "GET")
        if not request.authorized and not _is_local(request):
            return _unauthorized()
        return Response(200, b"Healthy", [("Content-Type", "text/plain; charset=utf-8")])

    def handle_metrics(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return _not_allowed(request, "GET")
        if not request.authorized and not _is_local(request):
            return _unauthorized()
        ep = self.ep
        self.settle()
        ready = {n: d.ready_count() for n, d in ep.deployments.items()}
        in_flight = {n: d.in_flight for n, d in ep.deployments.items()}
        counts = {
            "mlctl_instances_current": {n: len(d.instances) for n, d in ep.deployments.items()},
            "mlctl_instances_desired": {
                n: d.autoscaler.desired if d.autoscaler else d.spec.instance_count for n, d in ep.deployments.items()
            },
        }
        server = self.server
        gauges = (
            {
                "mlctl_gateway_connections": len(server.connections),
                "mlctl_gateway_connections_refused_total": server.turned_away,
                "mlctl_gateway_buffered_body_bytes": server.buffered,
                "mlctl_gateway_tls_handshakes_failed_total": server.tls.handshakes_failed if server.tls else 0,
            }
            if server
            else None
        )
        return Response(
            200,
            ep.metrics.render(ready, in_flight, gauges, counts).encode(),
            [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
        )

    def handle_unknown(self, request: Request) -> Response:
        return message(404, f"no such path {request.path!r}: use /score, /swagger.json, / or /metrics")
