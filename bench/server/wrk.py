"""Closed-loop HTTP load with `wrk` (Debian package `wrk`), the compiled load generator beside load.py.

One wrk thread, C keep-alive connections (wrk reconnects when the server answers `Connection: close`,
as the Azure server does), a POST body from a generated Lua script; parses req/s, p50/p99 and errors
into a result with the interface of load.LoadResult (cells, error_cells, rps, percentile).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


@dataclass
class WrkResult:
    concurrency: int
    requests: int
    seconds: float
    p50s: list[float] = field(default_factory=list)
    p99s: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """p50: the median of the runs' p50s; p99: the worst run's p99 (wrk reports percentiles, not samples)."""
        xs = sorted(self.p50s if p == 50 else self.p99s)
        if not xs:
            return float("nan")
        return xs[len(xs) // 2] if p == 50 else xs[-1]

    def cells(self) -> str:
        return f"{self.rps:>9.0f} {self.percentile(50):>8.2f} {self.percentile(99):>8.2f}"

    def error_cells(self) -> str:
        errs = sum(self.errors.values())
        return f"{errs:>6}{' ' + json.dumps(self.errors) if errs else ''}"

    def merged(self, other: "WrkResult") -> "WrkResult":
        errors = dict(self.errors)
        for k, v in other.errors.items():
            errors[k] = errors.get(k, 0) + v
        return WrkResult(
            self.concurrency,
            self.requests + other.requests,
            self.seconds + other.seconds,
            self.p50s + other.p50s,
            self.p99s + other.p99s,
            errors,
        )


def wrk_binary() -> str | None:
    return shutil.which("wrk")


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    return float(m.group(1)) * UNITS_MS[m.group(2)] if m else float("nan")


def parse(out: str, concurrency: int) -> WrkResult:
    """Pure: wrk's --latency report as a WrkResult."""
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    if total is None:
        raise RuntimeError(f"wrk gave no result:\n{out}")
    requests, seconds = int(total.group(1)), _ms(total.group(2) + total.group(3)) / 1000.0
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    errors: dict[str, int] = {}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        errors["non-2xx"] = int(non2xx.group(1))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        for name, n in zip(("connect", "read", "write", "timeout"), sock.groups()):
            if int(n):
                errors[name] = int(n)
    return WrkResult(
        concurrency, requests, seconds, [_ms(p50.group(1))] if p50 else [], [_ms(p99.group(1))] if p99 else [], errors
    )


def drive_wrk(url: str, body: bytes, concurrency: int, seconds: float, headers: dict | None = None) -> WrkResult:
    """One wrk run of `seconds` at `concurrency` connections, POSTing `body` as JSON (plus `headers`)."""
    binary = wrk_binary()
    if binary is None:
        raise SystemExit("bench: wrk is not installed (Debian: apt-get install wrk); or use --load python")
    lua = (
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body.decode())}\n"
        + "".join(
            f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n"
            for k, v in (headers or {}).items()
            if k.lower() != "content-type"
        )
    )
    with tempfile.TemporaryDirectory(prefix="mlctl-wrk-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(lua)
        out = subprocess.run(
            [binary, "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script), url],
            capture_output=True,
            text=True,
            check=False,
            timeout=seconds + 60,
        )
    return parse(out.stdout + out.stderr, concurrency)
