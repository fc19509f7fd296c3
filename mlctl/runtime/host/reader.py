"""The request parser: llhttp (httptools) turns a connection's bytes into Requests, and the checks made on
each request's head and body as they arrive (sizes, Host, versions, expectations, credentials, the body
budget). A request that fails one is refused: answered with its status, then the connection closes.

`RequestReader` is the reading half of protocol.py's Connection (a base class, so llhttp calls its
callbacks directly: the hot path has no extra hop); the answering half is protocol.py's."""

from __future__ import annotations

import logging

import httptools

from .limits import MAX_BODY, MAX_HEAD, MAX_UNAUTHORIZED_BODY, PIPELINE_MAX
from .messages import Request, Response

log = logging.getLogger("mlctl.host")


class Refused(Exception):
    """Raised inside a parser callback: stop reading, answer `status` (or `response`) and close."""

    def __init__(self, status: int, message: str, response: Response | None = None):
        super().__init__(message)
        self.status, self.response = status, response


class RequestReader:
    """Feeds llhttp and queues complete requests (the state it uses is set up by protocol.Connection)."""

    def data_received(self, data: bytes) -> None:
        if self.stopped_reading:
            if self.handshaking:  # TLS: decrypted bytes that came before protocol.py took the TLS transport
                self.early.append(data)
            return
        if self.in_head or not self.in_message:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            # the refusal is kept on the connection: the exception's __context__ is not reliable (an
            # exception being handled around the loop, such as an ImportError, replaces it)
            refusal, self.refused = self.refused, None
            if refusal is not None:
                self._refuse(refusal.status, str(refusal), refusal.response)
            else:
                log.exception("public port: request parsing failed")
                self._refuse(500, "the gateway failed to read the request")
            return
        except httptools.HttpParserUpgrade as e:
            # an Upgrade offer (h2c, websocket) is declined (RFC 9110 7.8: a server may ignore it):
            # the request is read again without it, from a fresh parser
            head, self._declined = self._declined, None
            self.parser = httptools.HttpRequestParser(self)
            self.head_bytes = 0
            if head is not None:
                self.data_received(head + data[e.args[0] :])
            return
        except httptools.HttpParserError as e:
            self._refuse(400, f"malformed HTTP request: {e}")
            return
        if self.in_head and self.head_bytes > MAX_HEAD:  # a head that never ends: bounded memory
            self._refuse(431, f"request head over {MAX_HEAD} bytes")

    # ---- llhttp callbacks ----------------------------------------------------------------------
    def _refusal(self, status: int, message: str, response: Response | None = None) -> Refused:
        """The exception a callback raises to refuse the request (kept for data_received to answer)."""
        self.refused = Refused(status, message, response)
        return self.refused

    def _request(self, body: bytes) -> Request:
        """The current message as a Request (its head complete) with `body`."""
        parser = self.parser
        return Request(
            parser.get_method().decode("latin-1"),
            self._url,
            self._head,
            self._fields,
            body,
            parser.should_keep_alive(),
            parser.get_http_version() == "1.0",
            self._authorized,
            self.peer,
        )

    def on_message_begin(self) -> None:
        self.in_message = self.in_head = True
        self.since = self.loop.time()
        self._url, self._names, self._values, self._body = b"", [], [], []
        self._body_size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # called per header: kept to two appends, the head is built in C in on_headers_complete
        self._names.append(name)
        self._values.append(value)

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.head_bytes = 0
        names, values = self._names, self._values
        self._names, self._values = [], []  # a chunked body's trailer fields land here: neither used nor forwarded
        if sum(map(len, names)) + sum(map(len, values)) + 4 * len(names) + len(self._url) > MAX_HEAD:
            raise self._refusal(431, f"request head over {MAX_HEAD} bytes")
        lowers = list(map(bytes.lower, names))
        self._head = (lowers, names, values)
        fields = self._fields = dict(zip(lowers, values))
        if self.parser.should_upgrade():
            self._declined = self._head_without_upgrade()
            return
        version = self.parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise self._refusal(505, f"HTTP/{version} is not supported: send HTTP/1.1 (or 1.0)")
        hosts = lowers.count(b"host")
        if hosts != 1 and (hosts or version == "1.1"):
            raise self._refusal(400, "an HTTP/1.1 request needs exactly one Host header (RFC 9112 3.2)")
        length = fields.get(b"content-length")  # llhttp refused duplicates and bad values already
        size = 0 if length is None else int(length)
        if size > MAX_BODY:
            raise self._refusal(413, f"request body over {MAX_BODY} bytes")
        expect = fields.get(b"expect")
        # RFC 9110 10.1.1 (an empty list of expectations expects nothing)
        if expect and expect.strip().lower() != b"100-continue":
            raise self._refusal(
                417, f"expectation {expect[:100].decode('latin-1')!r} cannot be met: only 100-continue is understood"
            )
        server = self.server
        if server.authorize is not None:  # credentials checked now: an unauthorized large body is never read
            self._authorized = server.authorize(fields.get(b"authorization"))
            if not self._authorized and (size > MAX_UNAUTHORIZED_BODY or expect or b"transfer-encoding" in fields):
                answer = server.unauthorized(self._request(b""))
                if answer is not None:
                    raise self._refusal(answer.status, "", answer)
        if size and not server.budget.fits(size, self._authorized):
            raise self._over_budget()
        if self._authorized and not self.trusted:  # from now on it may hold a slot of the room kept for clients
            server.trust(self)
        if expect and (size or b"transfer-encoding" in fields) and version != "1.0":
            self.continue_due = True
            self._send_continue()

    def _over_budget(self) -> Refused:
        return self._refusal(503, *self.server.budget.refusal(self._authorized))

    def _head_without_upgrade(self) -> bytes:
        """This request's head with its Upgrade header and the `upgrade` token of Connection taken out."""
        method = self.parser.get_method()
        if method == b"CONNECT":
            raise self._refusal(405, "CONNECT is not allowed: this is an endpoint, not a proxy")
        lines = [b"%s %s HTTP/%s\r\n" % (method, self._url, self.parser.get_http_version().encode())]
        for lower, name, value in zip(*self._head):
            if lower == b"upgrade":
                continue
            if lower == b"connection":
                value = b", ".join(t.strip() for t in value.split(b",") if t.strip().lower() != b"upgrade")
                if not value:
                    continue
            lines.append(name + b": " + value + b"\r\n")
        return b"".join(lines) + b"\r\n"

    def on_body(self, body: bytes) -> None:
        size = len(body)
        self._body_size += size
        budget = self.server.budget
        budget.held += size
        if not self._authorized:
            budget.unauthenticated += size
        if self._body_size > MAX_BODY:
            raise self._refusal(413, f"request body over {MAX_BODY} bytes")
        if budget.held > budget.total or budget.unauthenticated > budget.unauthenticated_total:
            raise self._over_budget()
        self._body.append(body)
        self.continue_due = False  # the client did not wait for it

    def on_message_complete(self) -> None:
        self.in_message = False
        self.continue_due = False
        if self._declined is not None:  # read again without its Upgrade (data_received)
            return
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._body = []
        self.queue.append(self._request(body))  # its body stays in server.buffered until it is answered
        if not self.busy:
            self._next()
        elif len(self.queue) >= PIPELINE_MAX:
            self._update_reading()
