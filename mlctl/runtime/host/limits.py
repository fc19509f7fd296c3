"""The public port's connection limits: sizes of heads and bodies, pipelining, and how long a connection may
sit idle or take to send a request (each with its MLCTL_HOST_* setting where it has one)."""

from __future__ import annotations

import os

MAX_HEAD = 64 * 1024  # a request head over this is 431
MAX_BODY = 64 * 1024 * 1024  # a request body over this is 413
PIPELINE_MAX = 16  # reading pauses past this many queued requests on a connection
MAX_UNAUTHORIZED_BODY = 64 * 1024  # larger (or chunked, or awaiting 100) without credentials: refused on its head
IDLE_S = 75.0  # as aiohttp's keep-alive timeout


def setting(name: str, default: float) -> float:
    """The positive number in environment variable `name`, or `default` when it is unset, not a number or not
    positive."""
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default


def idle_seconds() -> float:
    """MLCTL_HOST_IDLE_S (seconds an idle keep-alive connection or an unfinished request may last)."""
    return setting("MLCTL_HOST_IDLE_S", IDLE_S)
