"""The figures of one load step: throughput, latency percentiles, errors, and the instances' CPU and
peak memory from the runtime's usage() sampled before and after the step. Pure."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from mlctl.profiling.load import Samples
from mlctl.runtime.contract import InstanceUsage


@dataclass(frozen=True)
class Step:
    """One concurrency's figures. `cpu_cores` is the CPU all instances used during the step divided by
    its wall time; `peak_memory_bytes` the largest instance's peak resident memory."""

    concurrency: int
    requests: int
    errors: dict
    duration_s: float
    rps: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    instances: int
    cpu_cores: float
    peak_memory_bytes: int

    @property
    def error_rate(self) -> float:
        total = self.requests + sum(self.errors.values())
        return sum(self.errors.values()) / total if total else 1.0

    @property
    def cpu_cores_per_instance(self) -> float:
        return self.cpu_cores / self.instances if self.instances else 0.0


def percentile(ordered: Sequence[float], q: float) -> float:
    """Pure: the nearest-rank `q` percentile (0 < q <= 100) of ascending `ordered`; 0.0 when empty."""
    if not ordered:
        return 0.0
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def cpu_seconds_used(before: Sequence[InstanceUsage], after: Sequence[InstanceUsage]) -> float:
    """Pure: CPU seconds the instances used between two samples, matched by index (an instance that
    restarted in between, its counter lower than before, counts from zero)."""
    earlier = {u.index: u.cpu_seconds for u in before}
    used = 0.0
    for u in after:
        start = earlier.get(u.index, 0.0)
        used += u.cpu_seconds - start if u.cpu_seconds >= start else u.cpu_seconds
    return used


def summarize(
    samples: Samples, before: Sequence[InstanceUsage], after: Sequence[InstanceUsage], sampled_s: float
) -> Step:
    """Pure: the figures of a step from its samples and the usage sampled `sampled_s` seconds apart."""
    ordered = sorted(samples.latencies_s)
    ms = [x * 1000 for x in ordered]
    elapsed = samples.elapsed_s or 1e-9
    return Step(
        concurrency=samples.concurrency,
        requests=len(ordered),
        errors=dict(samples.errors),
        duration_s=round(samples.elapsed_s, 3),
        rps=len(ordered) / elapsed,
        mean_ms=sum(ms) / len(ms) if ms else 0.0,
        p50_ms=percentile(ms, 50),
        p90_ms=percentile(ms, 90),
        p99_ms=percentile(ms, 99),
        max_ms=ms[-1] if ms else 0.0,
        instances=len(after),
        cpu_cores=cpu_seconds_used(before, after) / (sampled_s or 1e-9),
        peak_memory_bytes=max((u.peak_memory_bytes for u in after), default=0),
    )
