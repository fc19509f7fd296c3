"""Closed-loop HTTP load with an aiohttp client: C workers, each sends its next request when the last answers.

Bounded by a request count and a time limit, whichever comes first; reports req/s, p50/p99, errors.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Dict, List

import aiohttp


@dataclass
class LoadResult:
    concurrency: int
    requests: int
    seconds: float
    latencies_ms: List[float]
    errors: Dict[str, int]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


async def _drive(url: str, body: bytes, concurrency: int, max_requests: int, max_seconds: float,
                 warmup_s: float) -> LoadResult:
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    headers = {"Content-Type": "application/json"}
    latencies: List[float] = []
    errors: Dict[str, int] = {}
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        async def one() -> None:
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors[str(resp.status)] = errors.get(str(resp.status), 0) + 1
                        return
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
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


def drive(url: str, body: bytes, concurrency: int, max_requests: int = 20000, max_seconds: float = 10.0,
          warmup_s: float = 1.0) -> LoadResult:
    """Run one closed-loop load level against url (stops by itself: count or time)."""
    try:
        import uvloop
        return uvloop.run(_drive(url, body, concurrency, max_requests, max_seconds, warmup_s))
    except ImportError:
        return asyncio.run(_drive(url, body, concurrency, max_requests, max_seconds, warmup_s))
