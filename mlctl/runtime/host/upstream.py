"""A lean HTTP/1.1 client for instances (on unix sockets or TCP): pooled keep-alive connections, one request each.

The gateway's hot path: cheaper than a general client (no URL objects, cookie jars or tracing).
A request returns a future for (status, reason, header lines, body); the connection goes back
to the pool when the answer is complete, even if the gateway stopped waiting for it (408): the
future may be completed early by its awaiter (a timeout) while the exchange goes on, and the
request's `on_done` callback runs when the exchange really ends (answered or failed).

Answers are read by llhttp (httptools.HttpResponseParser, the parser that reads the public port's
requests): framing by Content-Length, chunks or the end of the connection, interim 1xx answers
skipped. An answer llhttp refuses (a malformed chunk size, conflicting lengths, a head over
MAX_HEAD) fails the exchange with ConnectionFailed, which the gateway answers 502.
"""

from __future__ import annotations

import asyncio
import functools

import httptools

MAX_HEAD = 64 * 1024
# An idle connection is reused only this long: the scoring server closes a kept-alive connection after
# 75 s (aiohttp's keepalive_timeout), and a request sent on one it is closing would be lost (a 502:
# a request that reached an instance is never sent again).
REUSE_IDLE_S = 50.0

# an answer's framing and hop-by-hop headers, and its x-request-id (the gateway writes its own): not passed on
NOT_PASSED = frozenset(
    (b"content-length", b"transfer-encoding", b"connection", b"keep-alive", b"date", b"server", b"x-request-id")
)


class ConnectionFailed(ConnectionError):
    """The connection broke before a complete answer arrived (`answered` says whether any byte did), or
    could not be made (`sent` false: the request never reached the instance)."""

    def __init__(self, message: str, answered: bool = False, sent: bool = True):
        super().__init__(message)
        self.answered, self.sent = answered, sent
        self.instance = None  # the instance the request was sent to (set by the exchange)


class _Connection(asyncio.Protocol):
    """One kept-alive connection to an instance; llhttp's callbacks (on_*) build the current answer."""

    def __init__(self, pool: "Pool"):
        self.pool = pool
        self.transport = None
        self.closed = False
        self.future: asyncio.Future | None = None
        self.parser = None  # a fresh llhttp response parser per exchange
        self.serial = 0
        self.on_done = None  # called once when the current exchange ends
        self.idle_since = 0.0  # loop time it went back to the pool
        self.received = 0  # bytes of the current answer so far
        self.headed = False  # the current answer's head is complete
        self.complete = False  # the current answer is complete (finished after feed_data returns)
        self.extra = False  # bytes came after the answer: the connection is not reused
        self.status = 0
        self.reason = b""
        self.passed: list = []  # the header lines passed on, each ending in CRLF
        self.body: list = []
        self.framed = False  # a Content-Length or chunked answer (else: read to the end of the connection)
        self.close_after = False

    def connection_made(self, transport):
        self.transport = transport

    def send(self, data: bytes, on_done=None) -> tuple["_Connection", int, asyncio.Future]:
        self.serial += 1
        self.on_done = on_done
        self.future = self.pool.loop.create_future()
        self._expect()
        self.transport.write(data)
        return self, self.serial, self.future

    def _expect(self) -> None:
        """Ready for the next answer (the first one, or the real one after an interim 1xx)."""
        self.parser = httptools.HttpResponseParser(self)
        self.received = 0
        self.headed = self.complete = self.extra = self.framed = False
        self.reason, self.passed, self.body = b"", [], []

    def abort(self, serial: int) -> None:
        """Give up on request `serial` if it is still unanswered (closes the connection)."""
        if self.serial == serial and self.future is not None:
            self._fail("abandoned: no answer in time", bool(self.received))

    # ---- llhttp's callbacks (during feed_data) -------------------------------------------------
    def on_message_begin(self) -> None:
        if self.complete:  # a second answer to one request
            self.extra = True

    def on_status(self, reason: bytes) -> None:
        if not self.complete:
            self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.headed:  # a chunked answer's trailer fields: neither used nor passed on
            return
        lower = name.lower()
        if lower not in NOT_PASSED:
            self.passed.append(b"%s: %s\r\n" % (name, value))
        elif lower == b"content-length" or lower == b"transfer-encoding":
            self.framed = True

    def on_headers_complete(self) -> None:
        if self.complete:
            return
        self.headed = True
        parser = self.parser
        self.status = parser.get_status_code()
        self.close_after = not parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        if not self.complete:
            self.body.append(body)

    def on_message_complete(self) -> None:
        if self.complete:
            return
        if self.status < 200:  # an interim answer (100 Continue): the real one follows on this parser
            self.headed = self.framed = False
            self.received = 0
            self.reason, self.passed, self.body = b"", [], []
            return
        self.complete = True

    # ---- the transport ---------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.future is None:  # nothing asked: the server should not talk
            self.transport.close()
            return
        self.received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            if not self.complete:
                self._fail(f"bad answer: {e}", True)
                return
            self.extra = True  # garbage after a complete answer: answered, then closed
        if self.complete:
            self._finish(self.extra or self.close_after)
        elif not self.headed and self.received > MAX_HEAD:
            self._fail("answer head too large", True)

    def _answer(self) -> tuple:
        body = self.body
        data = body[0] if len(body) == 1 else b"".join(body)
        return self.status, self.reason.decode("latin-1"), b"".join(self.passed), data

    def _finish(self, close: bool) -> None:
        answer = self._answer()
        fut, self.future = self.future, None
        self.body = []
        if close:
            self.closed = True
            self.transport.close()
        else:
            self.idle_since = self.pool.loop.time()
            self.pool.idle.append(self)
        if not fut.done():
            fut.set_result(answer)
        self._done()

    def _fail(self, message: str, answered: bool) -> None:
        self.closed = True
        if self.transport:
            self.transport.close()
        fut, self.future = self.future, None
        self.body = []
        if fut is not None:
            if not fut.done():
                fut.set_exception(ConnectionFailed(message, answered))
            self._done()

    def _done(self) -> None:
        on_done, self.on_done = self.on_done, None
        if on_done is not None:
            on_done()

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self in self.pool.idle:
            self.pool.idle.remove(self)
        if self.future is not None and self.headed and not self.framed:
            self._finish(True)  # an answer read to the end of the connection
            return
        if self.future is not None:  # lost while holding a request: the instance may be gone, and its
            self.pool.drop_idle()  # idle connections with it (a request sent on one would be lost too)
        self._fail(f"connection lost{': ' + str(exc) if exc else ''}", bool(self.received))


def _message(method: str, target: str, headers: bytes, body: bytes) -> bytes:
    # the target is the client's bytes as latin-1 text (messages.Request): encoded back byte for byte
    return (
        b"%s %s HTTP/1.1\r\nHost: instance\r\nContent-Length: %d\r\n"
        % (method.encode(), target.encode("latin-1"), len(body))
        + headers
        + b"\r\n"
        + body
    )


class Pool:
    """Kept-alive connections to one instance at `address`: "unix:/path.sock", "tcp:HOST:PORT" or a socket path.
    A TCP address may end in a path prefix, "tcp:HOST:PORT/PREFIX" (an application behind a proxy that
    routes by path, such as Ray Serve's): every request target is sent under it. `hop` is a header line (with its
    CRLF) sent first on every request: the ray runtime's hop secret, which its scoring servers require."""

    def __init__(self, address: str, routes: dict[str, str] | None = None, hop: bytes = b""):
        self.path = address
        self.hop = hop
        self.routes = routes or {}  # request path -> the instance's own (a custom container's scoring route)
        self.loop = asyncio.get_running_loop()
        self.idle: list[_Connection] = []
        self.all: set[_Connection] = set()
        self.prefix = ""
        if address.startswith("tcp:"):
            hostport, slash, prefix = address[4:].partition("/")
            self.prefix = (slash + prefix).rstrip("/")
            host, _, port = hostport.rpartition(":")
            self._connect = functools.partial(self.loop.create_connection, host=host, port=int(port))
        else:
            self._connect = functools.partial(self.loop.create_unix_connection, path=address.removeprefix("unix:"))

    def send(self, method: str, target: str, headers: bytes, body: bytes, on_done=None):
        """Send on a kept-alive connection at once: (connection, serial, future), or None when none is idle."""
        if self.routes:
            target = self.route(target)
        if self.prefix:
            target = self.prefix + target
        while self.idle:
            conn = self.idle.pop()
            if conn.closed or conn.transport.is_closing():
                continue
            if self.loop.time() - conn.idle_since > REUSE_IDLE_S:  # the instance may be closing it now
                conn.closed = True
                conn.transport.close()
                continue
            return conn.send(_message(method, target, self.hop + headers, body), on_done)
        return None

    async def request(self, method: str, target: str, headers: bytes, body: bytes, on_done=None):
        """Send a request: (connection, serial, future of the answer). `headers` are ready-made lines;
        `on_done()` runs once the exchange ends (not when it fails to start: ConnectionFailed then)."""
        sent = self.send(method, target, headers, body, on_done)
        if sent is not None:
            return sent
        data = _message(method, self.prefix + (self.route(target) if self.routes else target), self.hop + headers, body)
        try:
            _, conn = await self._connect(lambda: _Connection(self))
        except OSError as e:
            raise ConnectionFailed(f"cannot connect to {self.path}: {e.strerror or e}", sent=False) from None
        self.all = {c for c in self.all if not c.closed}
        self.all.add(conn)
        return conn.send(data, on_done)

    def route(self, target: str) -> str:
        """`target` with its path replaced as `routes` says (the query string kept)."""
        path, sep, query = target.partition("?")
        return self.routes.get(path, path) + sep + query

    def drop_idle(self) -> None:
        """Close the idle connections: the next request connects anew (refused at once by a dead instance)."""
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.closed = True
            conn.transport.close()

    def close(self) -> None:
        for conn in list(self.all):
            if conn.transport:
                conn.transport.close()
        self.idle.clear()
        self.all.clear()
