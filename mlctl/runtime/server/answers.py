"""Building answers: JSON error bodies, request-id and server headers, CORS headers."""

from __future__ import annotations

import os
import random
from typing import Dict, Optional, Tuple

from aiohttp import web

from mlctl import __version__
from mlctl.runtime.server import jsoncodec

HEADER_LIMIT = 100
JSON = "application/json"
SERVER_VERSION = f"mlctl/{__version__}"


class HeaderTooLarge(Exception):
    """A request-id header is over HEADER_LIMIT characters: 431."""


_ids = random.Random(random.SystemRandom().getrandbits(64))


def _reseed() -> None:
    """A forked worker (WORKER_COUNT) must not repeat its parent's, and its siblings', request ids."""
    _ids.seed(random.SystemRandom().getrandbits(64))


os.register_at_fork(after_in_child=_reseed)


_KEEP = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)  # UUID4: version 4, RFC 4122 variant
_SET = (0x4000 << 64) | (0x8000 << 48)


def new_request_id() -> str:
    """A random UUID4 string. Not for secrets: Mersenne Twister seeded from os.urandom, which
    avoids a getrandom() syscall (and a GIL hand-off to the worker) per request; formatted by hand
    (what ``str(uuid.UUID(int=..., version=4))`` gives, at a third of its cost)."""
    h = "%032x" % ((_ids.getrandbits(128) & _KEEP) | _SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def error(status: int, message: str, run_failed: bool = False) -> web.Response:
    """An error answer with the body ``{"message": ...}``."""
    return web.Response(
        status=status,
        body=jsoncodec.dumps({"message": message}),
        content_type=JSON,
        headers={"x-ms-run-function-failed": "True" if run_failed else "False"},
    )


def request_ids(headers: "web.BaseRequest.headers") -> Tuple[str, str, str]:  # type: ignore[name-defined]
    """(x-request-id, x-ms-request-id, x-ms-client-request-id) per Azure's rules; HeaderTooLarge."""
    request_id = headers.get("x-request-id") or new_request_id()
    if len(request_id) > HEADER_LIMIT:
        raise HeaderTooLarge(f"x-request-id must not exceed {HEADER_LIMIT} characters")
    legacy = headers.get("x-ms-request-id", "")
    client = headers.get("x-ms-client-request-id", "")
    if legacy:
        client = client or legacy
    else:
        legacy = client or request_id
    if len(legacy) > HEADER_LIMIT or len(client) > HEADER_LIMIT:
        raise HeaderTooLarge(f"x-ms-request-id and x-ms-client-request-id must not exceed {HEADER_LIMIT} characters")
    return request_id, legacy, client


def id_headers(ids: Tuple[str, str, str], server_version: str) -> Dict[str, str]:
    """Pure: the request-id and server-version headers of an answer."""
    h = {"x-ms-server-version": server_version, "x-request-id": ids[0]}
    if ids[1]:
        h["x-ms-request-id"] = ids[1]
    if ids[2]:
        h["x-ms-client-request-id"] = ids[2]
    return h


def add_ids(resp: web.StreamResponse, ids: Tuple[str, str, str], server_version: str) -> None:
    """Add the request-id and server-version headers to an answer."""
    resp.headers.update(id_headers(ids, server_version))


def cors_headers(
    origins: Tuple[str, ...], origin: Optional[str], preflight: bool, request_headers: Optional[str]
) -> Dict[str, str]:
    """Pure: the CORS headers for a request from ``origin`` (empty when it is not allowed)."""
    if not origins or not origin:
        return {}
    if "*" in origins:
        allow = "*"
    elif origin in origins:
        allow = origin
    else:
        return {}
    out = {"Access-Control-Allow-Origin": allow, "Vary": "Origin"}
    if preflight:
        out["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        if request_headers:
            out["Access-Control-Allow-Headers"] = request_headers
    return out
