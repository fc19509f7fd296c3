"""Closed-loop HTTP load with an aiohttp client: C workers, each sends its next request when the last answers.

Bounded by a request count and a time limit, whichever comes first; reports req/s, p50/p99, errors.
Shared by bench/server (TCP) and bench/gateway (TCP with an Authorization header, and unix sockets).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

JSON = {"Content-Type": "application/json"}


@dataclass
class LoadResult:
    concurrency: int
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: dict[str, int]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, round(p / 100.0 * (len(xs) - 1)))]

    def cells(self) -> str:
        """The req/s, p50 ms and p99 ms columns both benches print."""
        return f"{self.rps:>9.0f} {self.percentile(50):>8.2f} {self.percentile(99):>8.2f}"

    def error_cells(self) -> str:
        """The errors column: the count, then the errors by kind when there are any."""
        errs = sum(self.errors.values())
        return f"{errs:>6}{' ' + json.dumps(self.errors) if errs else ''}"


def tcp_connector(limit: int) -> aiohttp.BaseConnector:
    """Keep-alive TCP connections, at most `limit` (the default connector factory)."""
    return aiohttp.TCPConnector(limit=limit, force_close=False)


def unix_connector(path: str) -> Callable[[int], aiohttp.BaseConnector]:
    """A connector factory for a unix socket (the URL's host is then only a name)."""
    return lambda limit: aiohttp.UnixConnector(path=path, limit=limit)


async def _drive(
    url: str,
    body: bytes,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    warmup_s: float,
    headers: dict[str, str],
    connector: Callable[[int], aiohttp.BaseConnector],
) -> LoadResult:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    async with aiohttp.ClientSession(
        connector=connector(concurrency), timeout=aiohttp.ClientTimeout(total=30)
    ) as session:

        async def one() -> None:
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors[str(resp.status)] = errors.get(str(resp.status), 0) + 1
                        return
            except (TimeoutError, aiohttp.ClientError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                return
            if recording:
                latencies.append((time.perf_counter() - t0) * 1000.0)

        recording = False
        end_warm = time.perf_counter() + warmup_s

        async def warm_worker() -> None:
            while time.perf_counter() < end_warm:
                await one()

        await asyncio.gather(*(warm_worker() for _ in range(concurrency)))
        errors.clear()
        recording = True
        issued = 0
        start = time.perf_counter()
        deadline = start + max_seconds

        async def worker() -> None:
            nonlocal issued
            while issued < max_requests and time.perf_counter() < deadline:
                issued += 1
                await one()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    return LoadResult(concurrency, len(latencies) + sum(errors.values()), seconds, latencies, errors)


def drive(
    url: str,
    body: bytes,
    concurrency: int,
    max_requests: int = 20000,
    max_seconds: float = 10.0,
    warmup_s: float = 1.0,
    *,
    headers: dict[str, str] | None = None,
    connector: Callable[[int], aiohttp.BaseConnector] | None = None,
) -> LoadResult:
    """Run one closed-loop load level against url (stops by itself: count or time).

    `headers` replace the default `Content-Type: application/json`; `connector(limit)` makes the
    session's connector (default: keep-alive TCP; `unix_connector(path)` for a unix socket)."""
    coro = _drive(
        url,
        body,
        concurrency,
        max_requests,
        max_seconds,
        warmup_s,
        dict(JSON if headers is None else headers),
        connector or tcp_connector,
    )
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)
