"""HTTP/1.1 on the host's public port, byte for byte: keep-alive, pipelining, chunked and 100-continue
bodies, malformed and oversized input, closing rules, slow and vanishing clients, idle timeouts."""

from __future__ import annotations

import json
import select
import socket
import struct
import threading
import time
from email.utils import parsedate_to_datetime

from hosttools import body, sample, scrape, wait_until

RECV_S = 10  # every recv is bounded: a server that hangs fails the test instead of blocking it
BIG = 64 * 1024 * 1024 + 1  # one byte over the body limit
ONCE = frozenset(("content-length", "transfer-encoding", "date", "connection", "x-request-id"))  # never twice


class Answer:
    def __init__(self, version: str, status: int, headers: dict, data: bytes):
        self.version, self.status, self.headers, self.data = version, status, headers, data

    def json(self):
        assert self.headers.get("content-type", "").startswith("application/json"), (self.status, self.headers)
        return json.loads(self.data)

    def __repr__(self):
        return f"<{self.status} {self.headers} {self.data[:200]!r}>"


class Wire:
    """One raw TCP connection to a host's public port: exact bytes out, answers parsed by hand."""

    def __init__(self, host):
        self.sock = socket.create_connection(("127.0.0.1", host.info.port), timeout=RECV_S)
        self.buf = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError(f"server closed the connection; unparsed: {self.buf[:200]!r}")
        self.buf += chunk

    def answer(self, head_only: bool = False) -> Answer:
        """The next answer (a 1xx interim one too); a final answer must carry Content-Length and Date."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        first, *lines = head.decode("latin-1").split("\r\n")
        version, status = first.split(" ")[:2]
        headers = {}
        for line in lines:
            name, value = line.split(":", 1)
            name = name.strip().lower()
            assert name not in headers or name not in ONCE, (first, lines)
            headers[name] = value.strip()
        if int(status) < 200:
            return Answer(version, int(status), headers, b"")
        assert "content-length" in headers and "transfer-encoding" not in headers, (first, headers)
        parsedate_to_datetime(headers["date"])  # present and well formed
        size = 0 if head_only else int(headers["content-length"])
        while len(self.buf) < size:
            self._fill()
        data, self.buf = self.buf[:size], self.buf[size:]
        return Answer(version, int(status), headers, data)

    def trickle(self, data: bytes, pause: float) -> bool:
        """Send `data` a byte at a time, `pause` s apart; True when the server answers before the end."""
        for i in range(len(data)):
            self.send(data[i : i + 1])
            if select.select([self.sock], [], [], pause)[0]:
                return i < len(data) - 1
        return False

    def rest(self) -> bytes:
        """All the server sends until it closes (a reset counts as closed); b"" once it closed cleanly."""
        rest, self.buf = self.buf, b""
        try:
            while chunk := self.sock.recv(65536):
                rest += chunk
        except ConnectionResetError:
            pass
        return rest


def http(method: str, path: str, headers: dict | None = None, data: bytes = b"", version: str = "1.1") -> bytes:
    """A request's bytes; Content-Length is added for a body unless the headers frame it themselves."""
    headers = {"Host": "127.0.0.1", **(headers or {})}
    if data and not {"content-length", "transfer-encoding"} & {k.lower() for k in headers}:
        headers["Content-Length"] = str(len(data))
    lines = [f"{method} {path} HTTP/{version}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data


def score(host, rid: str | None = None, version: str = "1.1", data: bytes | None = None, **extra) -> bytes:
    """POST /score with the host's key (and an x-request-id when given)."""
    headers = host.auth(**({"x-request-id": rid} if rid else {}), **extra)
    return http("POST", "/score", headers, body() if data is None else data, version)


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def assert_scored(answer: Answer, rid: str | None = None, rows: int = 1) -> dict:
    assert answer.status == 200, answer
    result = answer.json()
    assert len(result["prediction"]) == rows
    if rid:
        assert answer.headers["x-request-id"] == rid and result["headers"]["x-request-id"] == rid
    return result


def assert_refused(answer: Answer, status: int, wire: Wire) -> None:
    """A JSON {"message"} answer with `status`, then the server closes having answered nothing more."""
    assert answer.status == status, answer
    assert answer.json()["message"]
    assert wire.rest() == b""


def serving(make_host, **kw):
    host = make_host()
    host.create("blue", **kw)
    host.client.set_traffic({"blue": 100})
    return host


def test_keep_alive_and_pipelined_requests_are_answered_in_order(make_host):
    host = serving(make_host)
    with Wire(host) as wire:
        for i in range(50):
            wire.send(score(host, f"ka-{i}"))
            assert_scored(wire.answer(), f"ka-{i}")
        # three requests in one write: three answers in request order, on the same connection
        wire.send(score(host, "p-1") + http("GET", "/", {"x-request-id": "p-2"}) + score(host, "p-3"))
        assert_scored(wire.answer(), "p-1")
        health = wire.answer()
        assert (health.status, health.data) == (200, b"Healthy")
        assert_scored(wire.answer(), "p-3")
        # 20 in one write, over the deployment's limit of 2 in flight: taken one after the other, no 429
        wire.send(b"".join(score(host, f"q-{i}") for i in range(20)))
        for i in range(20):
            assert_scored(wire.answer(), f"q-{i}")
        # a body on a GET is read past, not taken for the next request
        wire.send(http("GET", "/", data=b"hello") + http("GET", "/nowhere-1"))
        assert wire.answer().data == b"Healthy"
        assert "/nowhere-1" in wire.answer().json()["message"]
        # a slow request first: the quick one behind it is still answered second
        wire.send(score(host, "slow-first", data=body(sleep=0.3)) + http("GET", "/"))
        assert_scored(wire.answer(), "slow-first")
        assert wire.answer().data == b"Healthy"
        # 2,000 answered at once queued behind a slow one (sent in one write): all answered, in order,
        # when it ends (the answers made at once are taken in a loop, not by recursion)
        wire.send(
            score(host, "slow-head", data=body(sleep=0.3))
            + b"".join(http("GET", f"/nowhere-{i}") for i in range(2000))
            + http("GET", "/")
        )
        assert_scored(wire.answer(), "slow-head")
        for i in range(2000):
            assert f"'/nowhere-{i}'" in wire.answer().json()["message"]
        assert wire.answer().data == b"Healthy"
        # a body split across writes, the next request in the same write as the body's end
        raw = score(host, "split")
        wire.send(raw[:-10])
        time.sleep(0.05)
        wire.send(raw[-10:] + score(host, "behind"))
        assert_scored(wire.answer(), "split")
        assert_scored(wire.answer(), "behind")
        # a HEAD answer has no body (an error one neither): the next pipelined answer follows its head
        wire.send(http("HEAD", "/") + http("HEAD", "/score", host.auth()) + http("HEAD", "/nowhere") + http("GET", "/"))
        assert [wire.answer(head_only=True).status for _ in range(3)] == [200, 405, 404]
        health = wire.answer()
        assert (health.status, health.data) == (200, b"Healthy")
        # header values: UTF-8 and empty ones reach the instance as sent, a Latin-1 byte does no harm
        utf8 = score(host, "utf-8", **{"X-Name": "café", "X-Empty": ""}).replace(b"caf\xe9", "café".encode())
        wire.send(utf8 + score(host, "latin-1", **{"X-Name": "café"}))
        result = assert_scored(wire.answer(), "utf-8")
        assert (result["headers"]["x-name"], result["headers"]["x-empty"]) == ("café", "")
        assert_scored(wire.answer(), "latin-1")
        # an error answer keeps the connection; header names in any case; a query; an absolute-form target
        port = host.info.port
        wire.send(
            http("POST", "/score", {"x-request-id": "no-key"}, body())
            + http(
                "POST",
                "/score?trace=1",
                {"AUTHORIZATION": f"Bearer {host.key}", "X-REQUEST-ID": "upper", "CONTENT-LENGTH": str(len(body()))},
                body(),
            )
            + http("POST", f"http://127.0.0.1:{port}/score", host.auth(**{"x-request-id": "absolute"}), body())
        )
        refused = wire.answer()
        assert refused.status == 401 and refused.json()["message"] and refused.headers["x-request-id"] == "no-key"
        assert_scored(wire.answer(), "upper")
        assert_scored(wire.answer(), "absolute")  # RFC 9112 3.2.2: a server MUST accept the absolute form
    # 50 connections at once, each gets its own answer
    wires = []
    try:
        for i in range(50):
            wires.append(Wire(host))
            wires[-1].send(http("GET", f"/nowhere-{i}"))
        for i, wire in enumerate(wires):
            assert f"'/nowhere-{i}'" in wire.answer().json()["message"]
    finally:
        for wire in wires:
            wire.sock.close()


def test_a_client_that_reads_late_gets_every_answer_in_order(make_host):
    """200 pipelined requests with ~55 kB answers (11 MB) to a client with a small receive buffer that
    starts reading only after a while: the server's writing and reading both stall and resume."""
    host = serving(make_host)
    rows = json.dumps({"data": [[0.01] * 10] * 3_000}).encode()
    with Wire(host) as wire:
        wire.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        requests = [score(host, f"late-{i}", data=rows) for i in range(200)]
        sender = threading.Thread(target=lambda: wire.send(b"".join(requests)), daemon=True)
        sender.start()
        time.sleep(1.5)  # nothing read yet: the answers fill the kernel buffers and pile up at the server
        for i in range(200):
            assert_scored(wire.answer(), f"late-{i}", rows=3_000)
        sender.join(RECV_S)
        assert not sender.is_alive()


def test_chunked_bodies_and_expect_100_continue(make_host):
    host = serving(make_host)
    payload = body()
    parts = [payload[:7], payload[7:30], payload[30:]]
    with Wire(host) as wire:
        wire.send(score(host, "chunked-1", data=chunked(*parts), **{"Transfer-Encoding": "chunked"}))
        assert_scored(wire.answer(), "chunked-1")
        # the same body trickled in pieces, split inside chunk-size lines and inside the data
        raw = score(host, "chunked-2", data=chunked(*parts), **{"Transfer-Encoding": "chunked"})
        start = raw.index(b"\r\n\r\n") + 4
        cuts = [start - 3, start, start + 1, start + 12, len(raw) - 4, len(raw) - 1]
        for a, b in zip([0, *cuts], [*cuts, len(raw)]):
            wire.send(raw[a:b])
            time.sleep(0.05)
        result = assert_scored(wire.answer(), "chunked-2")
        assert "transfer-encoding" not in result["headers"]
        # chunk extensions are skipped; trailer fields are not headers: not forwarded, not used to route
        data = b"7;note=x\r\n" + parts[0] + b"\r\n" + chunked(parts[1] + parts[2])[:-2]
        wire.send(
            score(
                host,
                "trailers",
                data=data + b"X-Trailer: 1\r\nazureml-model-deployment: nope\r\n\r\n",
                **{"Transfer-Encoding": "chunked"},
            )
        )
        result = assert_scored(wire.answer(), "trailers")
        assert not {"x-trailer", "azureml-model-deployment"} & set(result["headers"]), result["headers"]
        wire.send(score(host, "after-trailers"))  # nor do they stick to the next request on the connection
        result = assert_scored(wire.answer(), "after-trailers")
        assert not {"x-trailer", "azureml-model-deployment"} & set(result["headers"]), result["headers"]
        # a 1 MB body with Content-Length, and chunked in 64 KiB chunks: answers of ~200 kB
        rows = json.dumps({"data": [[0.01] * 10] * 12_000}).encode()
        for rid, raw in (
            ("big", score(host, "big", data=rows)),
            (
                "big-chunked",
                score(
                    host,
                    "big-chunked",
                    **{"Transfer-Encoding": "chunked"},
                    data=chunked(*(rows[i : i + 65536] for i in range(0, len(rows), 65536))),
                ),
            ),
        ):
            wire.send(raw)
            assert_scored(wire.answer(), rid, rows=12_000)
        # Expect: 100-continue: the head alone gets 100, then the body gets the answer
        raw = score(host, "expect", Expect="100-continue")
        head, rest = raw.split(b"\r\n\r\n", 1)
        wire.send(head + b"\r\n\r\n")
        interim = wire.answer()
        assert (interim.version, interim.status) == ("HTTP/1.1", 100), interim
        wire.send(rest)
        result = assert_scored(wire.answer(), "expect")
        assert "expect" not in result["headers"]
        # behind a slow pipelined request, the 100 comes after that request's answer
        wire.send(score(host, "before", data=body(sleep=0.3)) + head + b"\r\n\r\n")
        assert_scored(wire.answer(), "before")
        assert wire.answer().status == 100
        wire.send(rest)
        assert_scored(wire.answer(), "expect")
        # a client that sends the body without waiting: a 100 is optional, the stream stays in step
        wire.send(raw + score(host, "in-step"))
        answer = wire.answer()
        assert_scored(wire.answer() if answer.status == 100 else answer, "expect")
        assert_scored(wire.answer(), "in-step")
    with Wire(host) as wire:  # RFC 9110 10.1.1: an HTTP/1.0 request's 100-continue is ignored (no 100)
        head, rest = score(host, "old", version="1.0", Expect="100-continue").split(b"\r\n\r\n", 1)
        wire.send(head + b"\r\n\r\n")
        time.sleep(0.1)  # the head arrives alone
        wire.send(rest)
        assert_scored(wire.answer(), "old")
    # over the body limit: 413, then the connection is closed; at once when Content-Length says so
    # (no 100 first, no wait for the body), once past the limit when chunked
    mib = b"x" * (1 << 20)
    for framing, pieces in (
        ({"Expect": "100-continue", "Content-Length": str(BIG)}, []),
        ({"Content-Length": str(BIG)}, [b'{"data": ']),
        ({"Transfer-Encoding": "chunked"}, [b"%x\r\n%s\r\n" % (len(mib), mib)] * 65),
    ):
        with Wire(host) as wire:
            wire.send(http("POST", "/score", host.auth(**framing)))
            try:
                for piece in pieces:
                    wire.send(piece)
            except OSError:  # refused before all was sent
                pass
            assert_refused(wire.answer(), 413, wire)
    with Wire(host) as wire:
        wire.send(score(host, "still"))
        assert_scored(wire.answer(), "still")


def test_malformed_and_oversized_requests_get_json_errors_and_a_closed_connection(make_host):
    host = make_host()  # no deployment: these never get past the parser
    smuggled = http("GET", "/", {"x-request-id": "smuggled"})
    cases = {
        "garbage request line": b"GARBAGE\r\n\r\n",
        "Content-Length and chunked": http(
            "POST",
            "/score",
            host.auth(**{"Content-Length": "5", "Transfer-Encoding": "chunked"}),
            b"0\r\n\r\n" + smuggled,
        ),
        "invalid chunk size": http(
            "POST", "/score", host.auth(**{"Transfer-Encoding": "chunked"}), b"zz\r\nhello\r\n0\r\n\r\n"
        ),
        "two Content-Lengths": http(
            "POST", "/score", host.auth(**{"Content-Length": "5", "content-length": "6"}), b"abcdef"
        ),
        "signed Content-Length": http("POST", "/score", host.auth(**{"Content-Length": "+5"}), b"abcde"),
        "chunked twice": http(
            "POST",
            "/score",
            host.auth(**{"Transfer-Encoding": "chunked", "transfer-encoding": "chunked"}),
            chunked(b"{}"),
        ),
        "chunked not last": http("POST", "/score", host.auth(**{"Transfer-Encoding": "chunked, gzip"}), b"abc"),
        "header without colon": b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nFoo\r\n\r\n",
        # RFC 9112 3.2: an HTTP/1.1 request without Host, or with two, MUST get 400
        "no Host": b"GET / HTTP/1.1\r\n\r\n",
        "two Hosts": http("GET", "/", {"host": "other"}),
        "HTTP/2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    }
    for what, raw in cases.items():
        with Wire(host) as wire:
            wire.send(raw)
            answer = wire.answer()
            assert answer.status == 400, (what, answer)
            assert answer.json()["message"], what
            assert wire.rest() == b"", what  # nothing more answered (no smuggled request), closed
    with Wire(host) as wire:
        wire.send(http("GET", "/", {"X-Huge": "a" * 70_000}))
        assert_refused(wire.answer(), 431, wire)
    # no other HTTP version is spoken here: 505 (RFC 9110 15.6.6) for those llhttp reads, 400 for the rest
    for version, status in (("2.0", 505), ("0.9", 505), ("1.2", 400)):
        with Wire(host) as wire:
            wire.send(http("GET", "/", version=version))
            assert_refused(wire.answer(), status, wire)
    # an expectation other than 100-continue cannot be met: 417 (RFC 9110 10.1.1), before any body is read
    with Wire(host) as wire:
        wire.send(http("POST", "/score", host.auth(**{"Expect": "200-ok"}), body()))
        assert_refused(wire.answer(), 417, wire)
    with Wire(host) as wire:
        wire.send(http("GET", "/"))
        assert wire.answer().status == 200


def test_connection_close_http_1_0_methods_routes_and_upgrade(make_host):
    host = serving(make_host)
    with Wire(host) as wire:
        wire.send(score(host, "bye", Connection="close"))
        answer = wire.answer()
        assert_scored(answer, "bye")
        assert answer.headers["connection"].lower() == "close"
        assert wire.rest() == b""
    with Wire(host) as wire:
        wire.send(score(host, "old", version="1.0"))
        answer = wire.answer()
        assert_scored(answer, "old")
        assert answer.headers.get("connection", "close").lower() == "close"
        assert wire.rest() == b""
    with Wire(host) as wire:
        for rid in ("old-ka-1", "old-ka-2"):
            wire.send(score(host, rid, version="1.0", Connection="keep-alive"))
            answer = wire.answer()
            assert_scored(answer, rid)
            assert answer.headers["connection"].lower() == "keep-alive"
    with Wire(host) as wire:
        wire.send(http("OPTIONS", "/score", host.auth()))
        answer = wire.answer()
        assert answer.status == 405 and "POST" in answer.headers["allow"] and answer.json()["message"]
        wire.send(http("GET", "/nowhere"))
        answer = wire.answer()
        assert answer.status == 404 and answer.json()["message"]
    # an upgrade offer is declined (RFC 9110 7.8; curl --http2 offers h2c): the request is answered as
    # plain HTTP/1.1, its body read, the connection kept; the offer's headers never reach the instance
    for upgrade in (
        {"Connection": "Upgrade, HTTP2-Settings", "Upgrade": "h2c", "HTTP2-Settings": "AAMAAABkAAQAAP__"},
        {
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    ):
        with Wire(host) as wire:
            wire.send(score(host, "up", **upgrade) + score(host, "after-up"))
            result = assert_scored(wire.answer(), "up")
            assert not {"upgrade", "connection", "http2-settings"} & set(result["headers"]), result["headers"]
            assert_scored(wire.answer(), "after-up")
    with Wire(host) as wire:
        wire.send(http("CONNECT", "127.0.0.1:443", host.auth()))
        assert_refused(wire.answer(), 405, wire)
    # headers the client names in Connection are hop-by-hop: not forwarded (RFC 9110 7.6.1)
    with Wire(host) as wire:
        wire.send(score(host, "hop", Connection="keep-alive, X-Hop", **{"X-Hop": "1", "X-Kept": "2"}))
        result = assert_scored(wire.answer(), "hop")
        assert "x-hop" not in result["headers"] and result["headers"]["x-kept"] == "2"
    # a client that half-closes after its requests (nc -N) still gets every answer, then the close
    with Wire(host) as wire:
        wire.send(score(host, "half-1") + score(host, "half-2"))
        wire.sock.shutdown(socket.SHUT_WR)
        assert_scored(wire.answer(), "half-1")
        assert_scored(wire.answer(), "half-2")
        assert wire.rest() == b""
    # RFC 9112 9.6: the request with "close" is answered; one pipelined behind it is not processed
    with Wire(host) as wire:
        wire.send(score(host, "last", Connection="close") + score(host, "ignored"))
        assert_scored(wire.answer(), "last")
        assert wire.rest() == b""


def test_slow_client_and_a_client_gone_mid_request(make_host):
    host = serving(make_host, timeout_ms=5000)
    with Wire(host) as wire:
        assert not wire.trickle(score(host, "slow"), 0.001)
        assert_scored(wire.answer(), "slow")

    def in_flight():
        return sample(scrape(host), "mlctl_requests_in_flight", deployment="blue")

    for reset in (False, True):  # the client closes (FIN) or resets (RST) while the instance works
        with Wire(host) as wire:
            wire.send(score(host, "gone", data=body(sleep=2.0)) + score(host, "queued") * 2)
            wait_until(lambda: in_flight() == 1, 10, "the request in flight")
            if reset:
                wire.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        wait_until(lambda: in_flight() == 0, 15, "in-flight back to 0 after the client left")
    with Wire(host) as wire:  # gone with half a body sent
        wire.send(score(host, "half")[:-20])
    with Wire(host) as wire:
        wire.send(score(host, "next"))
        assert_scored(wire.answer(), "next")


def test_idle_connections_are_closed_and_a_half_sent_head_gets_408(make_host, monkeypatch):
    monkeypatch.setenv("MLCTL_HOST_IDLE_S", "1")
    host = serving(make_host, timeout_ms=5000)
    with Wire(host) as wire:
        wire.send(http("GET", "/"))
        assert wire.answer().status == 200
        assert wire.rest() == b""  # closed by the server while idle (within RECV_S)
    with Wire(host) as wire:  # never sent a byte: closed too (quietly, or with a 408)
        rest = wire.rest()
        assert rest == b"" or rest.startswith(b"HTTP/1.1 408 "), rest
    with Wire(host) as wire:
        wire.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert_refused(wire.answer(), 408, wire)
    # a head, or a body, trickled a byte every 0.2 s: the limit is on the whole, not on each pause
    for what, raw in (("head", http("GET", "/", {"X-Slow": "s" * 60})), ("body", score(host, data=body() * 2))):
        with Wire(host) as wire:
            start = 0 if what == "head" else raw.index(b"\r\n\r\n") + 4
            wire.send(raw[:start])
            assert wire.trickle(raw[start:][:60], 0.2), what
            assert_refused(wire.answer(), 408, wire)
    with Wire(host) as wire:  # waiting for the instance (2 s) is not idling: the answer comes
        wire.send(score(host, "busy", data=body(sleep=2.0)))
        assert_scored(wire.answer(), "busy")
