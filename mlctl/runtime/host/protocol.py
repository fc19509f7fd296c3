"""The public port's HTTP/1.1 server: its connections answer requests in order, by one handler.

Why not aiohttp's server here: on the gateway's hot path it cost 2-3x the CPU of this protocol per
request (bench/README.md). The parsing that faces clients is llhttp's (Node.js's parser: chunked
bodies, request smuggling, pipelining), in reader.py with the checks on each request; limits.py holds
the limits and budget.py the body budget. This module adds what a reverse proxy needs around them:
- one handler call per request, answers in request order: `handler(Request)` returns a Response
  (written at once), a messages.Pending (written when it is resolved, from a callback: the hot path
  of a proxy needs no task) or a coroutine (run as a task); pipelined requests queued (reading
  pauses past PIPELINE_MAX of them, or while the client does not read its answers);
- credentials checked on the head (HttpServer's `authorize`): a large body without them is refused
  before it is read; request bodies held at once stay within a budget (503 past it);
- limits: a head over MAX_HEAD is 431, a body over MAX_BODY 413, malformed input (and an HTTP/1.1
  request without exactly one Host) 400, CONNECT 405, an expectation other than 100-continue 417,
  an HTTP version other than 1.0 and 1.1 505;
  each closes the connection after its answer;
- an Upgrade offer (h2c, websocket) is declined: the request is read again without it and answered;
- `Expect: 100-continue` answered here (never forwarded; not for HTTP/1.0), only when the request is
  next in line;
- keep-alive per HTTP/1.0 and 1.1 rules; a client that half-closes gets its answers, then the close;
  idle connections closed after IDLE_S
  (MLCTL_HOST_IDLE_S, default 75 s, as aiohttp), and a request whose head or body has not fully
  arrived IDLE_S after it began gets 408;
- a client that hangs up does not cancel its request: the exchange with the instance ends
  normally (its slot is released) and the answer is dropped;
- TLS (HttpServer's `tls`, tls.py): a connection is admitted (the connection limits above) before its
  handshake, which `loop.start_tls` runs with the context current then: a handshake counts as a
  connection without credentials, so the untrusted share and head_s bound floods and half-open
  handshakes (and the handshake timeout, head_s too); a failed handshake (plain HTTP, no client
  certificate, a scanner) closes the connection without a byte of HTTP.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import functools
import http
import logging

import httptools

from .budget import BodyBudget
from .filelimit import ACCEPT_BURST
from .limits import PIPELINE_MAX, head_seconds, idle_seconds, untrusted_connections
from .messages import Pending, Request, Response, json_response
from .peers import peer_of
from .tls import start_tls_now
from .reader import RequestReader, Refused

log = logging.getLogger("mlctl.host")

_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in http.HTTPStatus}


class Connection(RequestReader, asyncio.Protocol):
    """One client connection: feeds llhttp, queues complete requests, writes answers in order."""

    def __init__(self, server: "HttpServer"):
        self.server = server
        self.loop = server.loop
        self.parser = httptools.HttpRequestParser(self)
        self.transport = None
        self.queue: collections.deque = collections.deque()  # Request, or a Response to send then close
        self.busy = False  # an answer is being made
        self.closed = False
        self.stopped_reading = False  # after a refusal: nothing more is parsed
        self.write_paused = False
        self.reading_paused = False
        self.in_message = False  # a request has begun but not fully arrived
        self.in_head = False
        self.head_bytes = 0
        self.since = self.loop.time()  # when the current state (idle, or the message) began
        self.continue_due = False  # the current message awaits 100 Continue
        self.current: Request | None = None  # the request being answered
        self._url = b""
        self._names: list = []  # header names and values as sent, in order (llhttp's callbacks)
        self._values: list = []
        self._head: tuple = ((), (), ())  # (lower-case names, names, values) once the head is complete
        self._fields: dict = {}
        self._body: list = []
        self._body_size = 0
        self._declined: bytes | None = None  # the head of a request read again without its Upgrade
        self.eof = False  # the client half-closed: answer what arrived, then close
        self.refused: Refused | None = None  # raised in a parser callback, read in data_received
        self._authorized = True  # the current request's credentials (server.authorize), checked on its head
        self.trusted = False  # a request head with valid credentials came (or none are asked): see HttpServer.admit
        self.waiting_since = self.since  # its start, or its last answer: an untrusted connection has head_s from then
        self.peer = None  # peers.Peer, once connected
        self.handshaking = False  # TLS: admitted, its handshake not done (the transport is the raw one)
        self.early: list = []  # TLS: bytes decrypted before the TLS transport was taken (see _secure)

    # ---- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        server = self.server
        self.peer = peer_of(transport, server.listen)
        if not server.admit(self):  # its descriptor is freed at once
            self.turn_away()
        elif server.tls is not None:
            self.handshaking = self.stopped_reading = True
            start_tls_now(
                self.loop,
                transport,
                self,
                server.tls.context,
                server.head_s,
                functools.partial(self._secured, transport),
            )

    def _secured(self, raw, transport, error) -> None:
        """The handshake is done (`transport`: the TLS one) or failed (`error`: SSLError, a reset, the timeout,
        closed by a sweep or turned away, all alike: the connection closes without a byte of HTTP)."""
        if error is not None or transport is None:  # (None: asyncio's, when closed during the handshake)
            self.server.tls.handshakes_failed += 1
            raw.close()
            self.connection_lost(None)
            return
        self.handshaking = self.stopped_reading = False
        if self.closed:
            transport.close()
            return
        self.transport = transport
        early, self.early = self.early, []
        for data in early:  # what the TLS protocol decrypted before this callback ran
            self.data_received(data)

    def turn_away(self) -> None:
        """503 and close: the connection limit is reached (a new connection), or room is made for a new one
        (the oldest connection that has sent no request head with valid credentials)."""
        server = self.server
        server.turned_away += 1
        server.connections.discard(self)
        server.untrusted.pop(self, None)
        if self.busy or self.handshaking:  # (a TLS client waits for a handshake, not for HTTP)
            self.close()
            return
        self.queue.clear()
        self._refuse(
            503,
            f"the endpoint has {len(server.connections)} connections open, its limit "
            f"(MLCTL_HOST_MAX_CONNECTIONS): try again shortly",
            json_response(
                503,
                {"message": "the endpoint has too many connections open: try again shortly"},
                [("Retry-After", "1")],
            ),
        )

    def connection_lost(self, exc) -> None:
        if self.parser is None:
            return  # (called already: a failed handshake)
        self.closed = True
        server = self.server
        if self.in_message:
            server.budget.give(self._body_size, self._authorized)
        for item in self.queue:
            if item.__class__ is Request:
                server.budget.give(len(item.body), item.authorized)
        self.queue.clear()
        server.connections.discard(self)
        server.untrusted.pop(self, None)
        # the parser holds this protocol's callbacks: break the cycle so a partial body is freed now
        self.parser = None
        self._body = []

    def close(self) -> None:
        """Close the connection: nothing more is written or read."""
        self.closed = True
        self.transport.close()

    def eof_received(self):
        """The client sent all it will (shutdown(SHUT_WR)): answer what arrived in full, then close."""
        self.eof = True
        if self.busy or self.queue:
            return True  # keep the transport open for the answers
        return None

    def pause_writing(self) -> None:
        self.write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._update_reading()

    # ---- answering -----------------------------------------------------------------------------
    def _send_continue(self) -> None:
        """100 Continue, only when this message is next in line (earlier answers come first)."""
        if self.continue_due and not self.busy and not self.queue and not self.closed:
            self.continue_due = False
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _refuse(self, status: int, message: str, response: Response | None = None) -> None:
        self.stopped_reading = True
        if self.in_message:  # the partial body is dropped
            self.server.budget.give(self._body_size, self._authorized)
            self._body, self._body_size = [], 0
        self.in_message = self.in_head = False
        self.queue.append(response or json_response(status, {"message": message}))
        if not self.busy:
            self._next()

    def _next(self) -> None:
        """Answer the queued requests in order, one at a time: those answered at once in this loop (no
        recursion however many are pipelined), the first one answered later by its callback or task."""
        while self.queue and not self.closed and not self.busy:
            item = self.queue.popleft()
            if isinstance(item, Response):  # a refusal: the last answer on this connection
                self._write(item, keep_alive=False, head_only=False, http10=False)
                if item.after is not None:
                    item.after()
                return
            self.busy = True
            self.current = item
            try:
                answer = self.server.handler(item)
            except Exception:
                answer = self._failed(item)
            if answer.__class__ is Response:
                self._answered(answer, go_on=False)
            elif isinstance(answer, Pending):
                if answer.response is not None:  # resolved already
                    self._answered(answer.response, go_on=False)
                else:
                    answer.callback = self._answered
            else:  # a coroutine
                task = self.loop.create_task(self._await(answer))
                self.server.tasks.add(task)
                task.add_done_callback(self.server.tasks.discard)

    def _failed(self, request: Request) -> Response:
        log.exception("public port: %s %s failed", request.method, request.path)
        return json_response(500, {"message": "the gateway failed to answer this request"})

    async def _await(self, coroutine) -> None:
        try:
            response = await coroutine
        except Exception:
            response = self._failed(self.current)
        self._answered(response)

    def _answered(self, response: Response, go_on: bool = True) -> None:
        """Write the answer to the current request, run its bookkeeping, go on with the next one
        (unless `go_on` is false: _next's loop does)."""
        request, self.current = self.current, None
        self.busy = False
        self.server.budget.give(len(request.body), request.authorized)
        keep_alive = request.keep_alive and not self.server.closing and not self.closed
        if not self.closed:
            self._write(response, keep_alive, request.method == "HEAD", request.http10)
        if response.after is not None:
            try:
                response.after()
            except Exception:
                log.exception("public port: bookkeeping after %s %s failed", request.method, request.path)
        if keep_alive and not self.closed:
            self.since = self.waiting_since = self.loop.time()
            self._update_reading()
            if self.queue:
                if go_on:
                    self._next()
            elif self.eof:
                self.close()
            else:
                self._send_continue()

    def _write(self, response: Response, keep_alive: bool, head_only: bool, http10: bool) -> None:
        head = [
            _STATUS_LINES.get(response.status) or f"HTTP/1.1 {response.status} Unknown\r\n".encode(),
            self.server.date_line,
            response.raw,
        ]
        for name, value in response.headers:
            head.append(f"{name}: {value}\r\n".encode("latin-1"))
        if keep_alive:
            # an HTTP/1.0 client asked for keep-alive: say it is granted (1.1 keeps alive by default)
            if http10:
                head.append(b"Connection: keep-alive\r\n")
        else:
            head.append(b"Connection: close\r\n")
        head.append(b"Content-Length: %d\r\n\r\n" % len(response.body))
        if not head_only:
            head.append(response.body)
        self.transport.write(b"".join(head))
        if not keep_alive:
            self.close()

    def _update_reading(self) -> None:
        want_paused = self.write_paused or len(self.queue) >= PIPELINE_MAX
        if want_paused != self.reading_paused and not self.closed:
            self.reading_paused = want_paused
            (self.transport.pause_reading if want_paused else self.transport.resume_reading)()

    # ---- timers (called by the server's sweep) -------------------------------------------------
    def sweep(self, now: float, idle_s: float, head_s: float) -> None:
        """Close a connection idle too long, answer 408 to a request too slow: a head must be complete head_s
        after it began, a body idle_s; a connection without credentials has head_s in all (from its start or
        its last answer) to send a complete request. (Neither limit is ever longer than idle_s.)"""
        if self.busy or self.closed or self.queue:
            return
        head_s = min(head_s, idle_s)
        if not self.trusted:
            if now - self.waiting_since < head_s:
                return
            if self.in_message:
                self._refuse(408, f"request not received in full within {head_s:g} s (MLCTL_HOST_HEAD_TIMEOUT_S)")
            else:
                self.close()
        elif self.in_head:
            if now - self.since >= head_s:
                self._refuse(408, f"request head not received in full within {head_s:g} s (MLCTL_HOST_HEAD_TIMEOUT_S)")
        elif now - self.since >= idle_s:
            if self.in_message:
                self._refuse(408, f"request not received in full within {idle_s:g} s")
            else:
                self.close()


class HttpServer:
    """Serves `handler` on a listening socket; keeps the Date line and sweeps idle connections each second."""

    def __init__(
        self,
        handler,
        idle_s: float | None = None,
        authorize=None,
        unauthorized=None,
        max_connections: int = 4096,
        listen=None,
        tls=None,
    ):
        """`authorize(authorization header or None) -> bool` runs when a request's head arrives (its
        answer is the Request's `authorized`). When it says no and the body may be large (over
        limits.MAX_UNAUTHORIZED_BODY, chunked, or awaiting 100-continue), `unauthorized(request)` (its body
        empty) gives the answer sent at once, before the body is read (the connection then closes), or
        None to read the request and let `handler` decide; a small body is read and `handler` answers.
        `listen` (listen.ListenSettings) says which peers are trusted proxies; `tls` (tls.Tls), when given,
        makes every connection TLS with its context of the moment."""
        self.handler = handler
        self.authorize, self.unauthorized = authorize, unauthorized
        self.budget = BodyBudget()  # request bodies held (being read, or read and not yet answered)
        self.max_connections = max_connections  # past it a new connection gets 503 and is closed
        # connections without a request head with valid credentials yet, oldest first: at most untrusted_cap
        self.untrusted: dict[Connection, None] = {}
        self.untrusted_cap = untrusted_connections(max_connections)
        self.turned_away = 0
        self.listen, self.tls = listen, tls
        self.loop = asyncio.get_running_loop()
        self.idle_s = idle_s or idle_seconds()
        self.head_s = head_seconds()
        self.connections: set[Connection] = set()
        self.tasks: set[asyncio.Task] = set()
        self.closing = False
        self.server: asyncio.AbstractServer | None = None
        self.date_line = b""
        self._timer = None

    def admit(self, conn: Connection) -> bool:
        """Take a new connection (it starts untrusted), making room when connections without credentials hold
        their share or all: the oldest of them is turned away (a slow or idle one, most likely; a client
        sends its head at once). False when every connection is trusted and the limit is reached."""
        untrusted = self.untrusted
        if untrusted and (len(untrusted) >= self.untrusted_cap or len(self.connections) >= self.max_connections):
            next(iter(untrusted)).turn_away()
        if len(self.connections) >= self.max_connections:
            return False
        self.connections.add(conn)
        untrusted[conn] = None
        return True

    def trust(self, conn: Connection) -> None:
        """`conn` sent a request head with valid credentials (or none are asked): it no longer counts against
        the untrusted share, and has idle_s between requests."""
        conn.trusted = True
        self.untrusted.pop(conn, None)

    @property
    def buffered(self) -> int:
        """Bytes of request bodies held now."""
        return self.budget.held

    async def start(self, sock) -> None:
        self._tick()
        # the backlog bounds the connections accepted in one go too (filelimit.ACCEPT_BURST)
        self.server = await self.loop.create_server(lambda: Connection(self), sock=sock, backlog=ACCEPT_BURST)

    def _tick(self) -> None:
        self.date_line = f"Date: {email.utils.formatdate(usegmt=True)}\r\n".encode()
        now = self.loop.time()
        for conn in list(self.connections):
            conn.sweep(now, self.idle_s, self.head_s)
        self._timer = self.loop.call_later(min(1.0, self.idle_s / 2, self.head_s / 2), self._tick)

    async def close(self, drain_s: float = 10.0) -> None:
        """Stop accepting, close idle connections, let answers in progress finish (up to `drain_s`)."""
        self.closing = True
        if self.server is not None:
            self.server.close()
        for conn in list(self.connections):
            if not conn.busy and not conn.queue:
                conn.close()
        deadline = self.loop.time() + drain_s
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=drain_s)
        # answers resolved by callbacks (no task): poll until they are written
        while any(c.busy for c in self.connections) and self.loop.time() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(self.connections):
            conn.transport.close()
        if self._timer is not None:
            self._timer.cancel()
