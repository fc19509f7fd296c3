"""A lean HTTP/1.1 client for instances (on unix sockets or TCP): pooled keep-alive connections, one request each.

The gateway's hot path: cheaper than a general client (no URL objects, cookie jars or tracing).
A request returns a future for (status, reason, header lines, body); the connection goes back
to the pool when the answer is complete, even if the gateway stopped waiting for it (408): the
future may be completed early by its awaiter (a timeout) while the exchange goes on, and the
request's `on_done` callback runs when the exchange really ends (answered or failed).
"""

from __future__ import annotations

import asyncio
import functools
import re

MAX_HEAD = 64 * 1024
# An idle connection is reused only this long: the scoring server closes a kept-alive connection after
# 75 s (aiohttp's keepalive_timeout), and a request sent on one it is closing would be lost (a 502:
# a request that reached an instance is never sent again).
REUSE_IDLE_S = 50.0


class ConnectionFailed(ConnectionError):
    """The connection broke before a complete answer arrived (`answered` says whether any byte did), or
    could not be made (`sent` false: the request never reached the instance)."""

    def __init__(self, message: str, answered: bool = False, sent: bool = True):
        super().__init__(message)
        self.answered, self.sent = answered, sent
        self.instance = None  # the instance the request was sent to (set by the exchange)


class _Connection(asyncio.Protocol):
    def __init__(self, pool: "Pool"):
        self.pool = pool
        self.transport = None
        self.closed = False
        self.future: asyncio.Future | None = None
        self.buffer = bytearray()
        self.head = None  # (status, reason, headers, length, chunked, close)
        self.serial = 0
        self.on_done = None  # called once when the current exchange ends
        self.idle_since = 0.0  # loop time it went back to the pool

    def connection_made(self, transport):
        self.transport = transport

    def send(self, data: bytes, on_done=None) -> tuple["_Connection", int, asyncio.Future]:
        self.serial += 1
        self.on_done = on_done
        self.future = self.pool.loop.create_future()
        self.buffer.clear()
        self.head = None
        self.transport.write(data)
        return self, self.serial, self.future

    def abort(self, serial: int) -> None:
        """Give up on request `serial` if it is still unanswered (closes the connection)."""
        if self.serial == serial and self.future is not None:
            self._fail("abandoned: no answer in time", bool(self.head or self.buffer))

    def data_received(self, data: bytes) -> None:
        if self.future is None:  # nothing asked: the server should not talk
            self.transport.close()
            return
        if self.head is None and not self.buffer:  # the usual case: a whole answer in one read, no copies
            end = data.find(b"\r\n\r\n")
            if end > 0:
                try:
                    head = _parse_head(data[:end])
                except ValueError:
                    head = None
                if head is not None and head[0] >= 200 and head[3] == len(data) - end - 4 and not head[4]:
                    self._finish((head[0], head[1], head[2], data[end + 4 :]), head[5])
                    return
        self.buffer += data
        if self.head is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self._fail("answer head too large", True)
                return
            try:
                self.head = _parse_head(bytes(self.buffer[:end]))
            except ValueError as e:
                self._fail(f"bad answer: {e}", True)
                return
            del self.buffer[: end + 4]
            if 100 <= self.head[0] < 200:  # an interim answer (100 Continue): the real one follows
                self.head = None
                if self.buffer:
                    self.data_received(b"")
                return
        status, reason, headers, length, chunked, close = self.head
        if chunked:
            body = _dechunk(self.buffer)
            if body is None:
                return
        elif length is not None:
            if len(self.buffer) < length:
                return
            body = bytes(self.buffer[:length])
        elif status in (204, 304):  # no body by definition
            body = b""
        else:
            return  # read to EOF (connection_lost finishes it)
        self._finish((status, reason, headers, body), close)

    def _finish(self, answer, close: bool) -> None:
        fut, self.future = self.future, None
        self.buffer.clear()
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
        if self.future is not None and self.head is not None and self.head[3] is None and not self.head[4]:
            status, reason, headers, _, _, _ = self.head
            self._finish((status, reason, headers, bytes(self.buffer)), True)
            return
        if self.future is not None:  # lost while holding a request: the instance may be gone, and its
            self.pool.drop_idle()  # idle connections with it (a request sent on one would be lost too)
        self._fail(f"connection lost{': ' + str(exc) if exc else ''}", bool(self.head or self.buffer))


# an answer's framing and hop-by-hop headers, and its x-request-id (the gateway writes its own): found
# and cut by regexes anchored on the line break (C speed: no Python-level step per header line)
_NOT_PASSED = re.compile(
    rb"\r\n(?:content-length|transfer-encoding|connection|keep-alive|date|server|x-request-id)"
    rb"[ \t]*:[^\r]*",
    re.IGNORECASE,
)
_LENGTH = re.compile(rb"\r\ncontent-length[ \t]*:[ \t]*([^\r]*)", re.IGNORECASE)
_RARE = re.compile(rb"\r\n(?:transfer-encoding|connection)[ \t]*:", re.IGNORECASE)  # absent from most answers
_CHUNKED = re.compile(rb"\r\ntransfer-encoding[ \t]*:[^\r]*chunked", re.IGNORECASE)
_CLOSE = re.compile(rb"\r\nconnection[ \t]*:[ \t]*close[ \t]*(?:\r|$)", re.IGNORECASE)


def _parse_head(raw: bytes):
    """(status, reason, passed header lines as bytes, content length, chunked?, close?) of an answer head
    (`raw` without its final blank line). The passed lines are the answer's headers but the framing,
    hop-by-hop and x-request-id ones, each ending in CRLF, ready to be written as they came.
    (The regexes run on the whole head: each is anchored on a line break, so the status line never matches.)"""
    first, _, rest = raw.partition(b"\r\n")
    parts = first.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"status line {first[:80]!r}")
    status = int(parts[1])
    reason = parts[2].decode("latin-1") if len(parts) > 2 else ""
    close = parts[0] == b"HTTP/1.0"
    if not rest:
        return status, reason, b"", None, False, close
    lengths = _LENGTH.findall(raw)
    if not lengths:
        length = None
    elif len(lengths) == 1 or len(set(map(int, lengths))) == 1:
        length = int(lengths[0])
    else:
        raise ValueError(f"conflicting Content-Length headers {lengths!r}")
    chunked = False
    if _RARE.search(raw) is not None:
        chunked = _CHUNKED.search(raw) is not None
        close = close or _CLOSE.search(raw) is not None
    passed = _NOT_PASSED.sub(b"", raw)[len(first) + 2 :]
    return status, reason, passed + b"\r\n" if passed else b"", length, chunked, close


def _dechunk(buffer: bytearray) -> bytes | None:
    """The body of a complete chunked message in `buffer`, or None while incomplete."""
    out, pos = bytearray(), 0
    while True:
        end = buffer.find(b"\r\n", pos)
        if end < 0:
            return None
        size = int(bytes(buffer[pos:end]).split(b";")[0], 16)
        start = end + 2
        if size == 0:
            return bytes(out) if buffer.find(b"\r\n\r\n", end) >= 0 or buffer.endswith(b"\r\n") else None
        if len(buffer) < start + size + 2:
            return None
        out += buffer[start : start + size]
        pos = start + size + 2


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
    routes by path, such as Ray Serve's): every request target is sent under it."""

    def __init__(self, address: str, routes: dict[str, str] | None = None):
        self.path = address
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
            return conn.send(_message(method, target, headers, body), on_done)
        return None

    async def request(self, method: str, target: str, headers: bytes, body: bytes, on_done=None):
        """Send a request: (connection, serial, future of the answer). `headers` are ready-made lines;
        `on_done()` runs once the exchange ends (not when it fails to start: ConnectionFailed then)."""
        sent = self.send(method, target, headers, body, on_done)
        if sent is not None:
            return sent
        data = _message(method, self.prefix + (self.route(target) if self.routes else target), headers, body)
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
