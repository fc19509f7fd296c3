"""The public port's connection limits: sizes of heads and bodies, pipelining, and how long a connection may
sit idle or take to send a request (each with its MLCTL_HOST_* setting where it has one)."""

from __future__ import annotations

import math
import os

MAX_HEAD = 64 * 1024  # a request head over this is 431
MAX_BODY = 64 * 1024 * 1024  # a request body over this is 413
PIPELINE_MAX = 16  # reading pauses past this many queued requests on a connection
MAX_UNAUTHORIZED_BODY = 64 * 1024  # larger (or chunked, or awaiting 100) without credentials: refused on its head
IDLE_S = 75.0  # as aiohttp's keep-alive timeout


def setting(name: str, default: float) -> float:
    """The positive number in environment variable `name`, or `default` when it is unset, not a number, not
    finite or not positive."""
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if 0 < value < math.inf else default


def idle_seconds() -> float:
    """MLCTL_HOST_IDLE_S (seconds an idle keep-alive connection or an unfinished request may last)."""
    return setting("MLCTL_HOST_IDLE_S", IDLE_S)


HEAD_S = 5.0  # a request head must be complete this long after it began


def head_seconds() -> float:
    """MLCTL_HOST_HEAD_TIMEOUT_S: seconds a request head may take to arrive in full (slow heads get 408); a
    connection without credentials also has this long from its start, or its last answer, to a complete request."""
    return setting("MLCTL_HOST_HEAD_TIMEOUT_S", HEAD_S)


def untrusted_connections(max_connections: int) -> int:
    """Pure: how many of `max_connections` may be held by connections that have not sent a request head with
    valid credentials yet (new ones, slow ones, unauthenticated ones): MLCTL_HOST_UNTRUSTED_CONNECTIONS when
    set, else three quarters; never all of them, so room is kept for authenticated clients."""
    wanted = int(setting("MLCTL_HOST_UNTRUSTED_CONNECTIONS", max_connections * 3 // 4))
    return max(1, min(wanted, max_connections - max(1, max_connections // 16)))
