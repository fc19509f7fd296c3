"""The load: a bounded closed loop of concurrent POSTs to one endpoint's /score, each request timed.

Closed loop: CONCURRENCY clients each send a request, wait for its answer and send the next, so
at most CONCURRENCY requests are in flight. A step stops by itself at its duration, at its request
cap, or at a hard deadline (duration + one request timeout), whichever comes first.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from mlctl.errors import MlctlError

MAX_DURATION_S = 120.0  # per step
MAX_REQUESTS = 100_000  # per step
MAX_CONCURRENCY = 256
REQUEST_TIMEOUT_S = 30.0


@dataclass
class Samples:
    """What one step measured: the latency of each answered request (seconds, status 200 only), the
    other outcomes by kind ("HTTP 503", "timeout", ...), and the wall time from first send to last answer."""

    concurrency: int
    elapsed_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)


@dataclass(frozen=True)
class Target:
    """Where the load goes: the endpoint's own scoring URL, its headers (Authorization, the
    deployment header) and the request body. The URL must be http(s)."""

    url: str
    headers: dict
    body: bytes
    ssl: Any = None  # https: the client context that verifies the endpoint's certificate
    server_hostname: str | None = None  # https: the name verified, when the URL names the host's address

    def __post_init__(self):
        if urlsplit(self.url).scheme not in ("http", "https"):
            raise MlctlError(f"cannot profile through {self.url!r}: not an http(s) URL")

    def options(self) -> dict:
        """The request options beside the URL: headers, body, and with TLS the context and name to verify."""
        tls = {"ssl": self.ssl, "server_hostname": self.server_hostname} if self.ssl is not None else {}
        return {"data": self.body, "headers": self.headers, **tls}


def _session(concurrency: int):
    import aiohttp

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
    )


async def _probe(target: Target) -> tuple[int, bytes]:
    async with _session(1) as session, session.post(target.url, **target.options()) as resp:
        return resp.status, await resp.read()


def probe(target: Target) -> tuple[int, bytes]:
    """One request (warms the instance up, and shows the request is answered): (status, body)."""
    import aiohttp

    try:
        return asyncio.run(_probe(target))
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
        raise MlctlError(f"cannot reach {target.url}: {type(e).__name__} {e}".rstrip()) from None


async def _step(target: Target, concurrency: int, duration_s: float, max_requests: int) -> Samples:
    import aiohttp

    samples = Samples(concurrency)
    budget = [max_requests]

    async def client(session) -> None:
        while budget[0] > 0 and time.perf_counter() < deadline:
            budget[0] -= 1
            t0 = time.perf_counter()
            try:
                async with session.post(target.url, **target.options()) as resp:
                    await resp.read()
                    if resp.status == 200:
                        samples.latencies_s.append(time.perf_counter() - t0)
                    else:
                        samples.errors[f"HTTP {resp.status}"] += 1
            except asyncio.TimeoutError:
                samples.errors["timeout"] += 1
            except (aiohttp.ClientError, OSError) as e:
                samples.errors[type(e).__name__] += 1

    async with _session(concurrency) as session:
        start = time.perf_counter()
        deadline = start + duration_s
        clients = [asyncio.ensure_future(client(session)) for _ in range(concurrency)]
        done, pending = await asyncio.wait(clients, timeout=duration_s + REQUEST_TIMEOUT_S + 5)
        for c in pending:  # the hard stop: never reached unless a request outlives its own timeout
            c.cancel()
        samples.elapsed_s = time.perf_counter() - start
        samples.errors["cancelled at the hard deadline"] += len(pending)
    samples.errors = +samples.errors
    return samples


def run_step(target: Target, concurrency: int, duration_s: float, max_requests: int) -> Samples:
    """Drive the closed loop at `concurrency` for `duration_s` (at most MAX_DURATION_S) or
    `max_requests` requests (at most MAX_REQUESTS), whichever ends first."""
    if not (
        1 <= concurrency <= MAX_CONCURRENCY and 0 < duration_s <= MAX_DURATION_S and 1 <= max_requests <= MAX_REQUESTS
    ):
        raise ValueError(f"a step beyond the caps: {concurrency=} {duration_s=} {max_requests=}")
    return asyncio.run(_step(target, concurrency, duration_s, max_requests))
