"""The public port's requests and answers as values (no I/O): what protocol.py parses and writes."""

from __future__ import annotations

import json

import httptools


class Request:
    """One parsed request: method, target, path, query, headers, body, keep-alive, and whether its
    credentials were accepted (`authorized`: checked when its head arrived, see protocol.HttpServer), and
    who sent it (`peer`: its connection's peers.Peer).

    The headers are three parallel lists in the order sent (bytes): `lowers` (lower-case names),
    `names` (as sent) and `values`; `fields` maps each lower-case name to its last value."""

    __slots__ = (
        "method",
        "target",
        "path",
        "query",
        "lowers",
        "names",
        "values",
        "fields",
        "body",
        "keep_alive",
        "http10",
        "authorized",
        "peer",
    )

    def __init__(
        self,
        method: str,
        target: bytes,
        head: tuple,
        fields: dict,
        body: bytes,
        keep_alive: bool,
        http10: bool = False,
        authorized: bool = True,
        peer=None,
    ):
        self.method, self.fields, self.body = method, fields, body
        self.lowers, self.names, self.values = head
        self.keep_alive, self.http10, self.authorized = keep_alive, http10, authorized
        self.peer = peer  # its connection's peers.Peer (None: made without a connection)
        if target[:1] != b"/":  # absolute form (http://host/score?x) or "*": keep the path and query
            target = _origin_form(target)
        self.target = target.decode("latin-1")
        self.path, _, self.query = self.target.partition("?")

    def header(self, lower_name: bytes) -> str | None:
        """The last value of a header (give the name in lower case), or None."""
        value = self.fields.get(lower_name)
        return None if value is None else value.decode("latin-1")


def _origin_form(target: bytes) -> bytes:
    try:
        url = httptools.parse_url(target)
    except httptools.HttpParserInvalidURLError:
        return target
    return (url.path or b"/") + (b"?" + url.query if url.query else b"")


class Response:
    """An answer: status, body, headers [(name, value)] and ready-made header lines `raw` (bytes, each
    ending in CRLF: an instance's, passed on as they came); Content-Length, Date, Connection are added.

    `after`, when set, is called once the answer is on its way (or the client is gone): bookkeeping
    there (metrics, access log) does not delay the answer."""

    __slots__ = ("status", "body", "headers", "raw", "after")

    def __init__(self, status: int, body: bytes = b"", headers: list | None = None, raw: bytes = b""):
        self.status, self.body, self.raw = status, body, raw
        self.headers = headers if headers is not None else []
        self.after = None


class Pending:
    """An answer still to come: a handler returns it, and `resolve(response)` is called once, later,
    from a callback (protocol.py then writes the answer: no task between an instance's answer and the
    client's)."""

    __slots__ = ("callback", "response")

    def __init__(self):
        self.callback = None  # set by protocol.py: called with the response
        self.response: Response | None = None

    def resolve(self, response: Response) -> None:
        if self.response is not None:
            return  # answered already (a timeout, then the late answer)
        self.response = response
        callback, self.callback = self.callback, None
        if callback is not None:
            callback(response)


def json_response(status: int, data, headers: list | None = None) -> Response:
    return Response(
        status, json.dumps(data).encode(), [("Content-Type", "application/json; charset=utf-8")] + (headers or [])
    )
