"""The sizing a profile implies, with its arithmetic: instance_count, max_concurrent_requests_per_instance,
CPU and memory per instance with headroom, and the smallest Azure instance_type that holds them. Pure.

The basis is one measured step: among the steps without errors (and within --target-p99-ms when given),
the lowest concurrency whose throughput is within KNEE of the best (more concurrency than that only
queues). The load to hold is --target-rps, else the basis's measured throughput; HEADROOM is kept on
the instance count, the CPU and the memory, so instances run at about 80% of what was measured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from mlctl import instance_types
from mlctl.profiling.figures import Step

HEADROOM = 1.25
KNEE = 0.95  # within 5% of the best throughput counts as the best
MAX_ERROR_RATE = 0.01  # a step with more errors than this is no basis
GIB = 1024**3


@dataclass(frozen=True)
class Recommendation:
    """What to write in the deployment YAML, why (`arithmetic`, one line per figure) and any caveat."""

    basis_concurrency: int
    target_rps: float
    instance_count: int
    max_concurrent_requests_per_instance: int
    cpu_cores: float
    memory_gib: float
    instance_type: str | None
    meets_target_p99: bool | None
    arithmetic: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def capacity_rps(self, basis: Step) -> float:
        """The throughput the recommended instances measured together (before headroom)."""
        return self.instance_count * basis.rps / basis.instances


def basis_of(steps: Sequence[Step], target_p99_ms: float | None) -> tuple[Step | None, list[str]]:
    """Pure: the step the recommendation rests on, and notes on the choice (None when no step answered)."""
    notes = []
    usable = [s for s in steps if s.requests and s.error_rate <= MAX_ERROR_RATE and s.instances]
    if not usable:
        return None, ["no step answered without errors: nothing to size from"]
    if len(usable) < len(steps):
        notes.append(
            "steps with more than 1% errors are no basis: concurrency "
            + ", ".join(str(s.concurrency) for s in steps if s not in usable)
        )
    if any("HTTP 429" in s.errors for s in steps):
        notes.append(
            "HTTP 429: the endpoint turned requests away at the deployment's limit "
            "(request_settings.max_concurrent_requests_per_instance x instance_count); raise it and "
            "apply to profile higher concurrency"
        )
    if target_p99_ms is not None:
        within = [s for s in usable if s.p99_ms <= target_p99_ms]
        if not within:
            best = min(usable, key=lambda s: (s.p99_ms, s.concurrency))
            notes.append(
                f"no concurrency kept p99 within {target_p99_ms:g} ms; the lowest p99 measured "
                f"({best.p99_ms:.1f} ms at concurrency {best.concurrency}) is the basis: a faster "
                f"model, code or instance is needed for the target"
            )
            return best, notes
        usable = within
    best = max(s.rps for s in usable)
    return min((s for s in usable if s.rps >= KNEE * best), key=lambda s: s.concurrency), notes


def recommend(
    steps: Sequence[Step], target_rps: float | None = None, target_p99_ms: float | None = None
) -> Recommendation | None:
    """Pure: the sizing for `target_rps` (else the measured load) within `target_p99_ms`, None when no
    step can be a basis."""
    basis, notes = basis_of(steps, target_p99_ms)
    if basis is None:
        return None
    n, c = basis.instances, basis.concurrency
    per_instance = basis.rps / n
    best = max(s.rps for s in steps)
    lines = [
        f"basis: concurrency {c} on {n} instance(s), {basis.rps:.1f} req/s, p99 {basis.p99_ms:.1f} ms "
        f"(the lowest concurrency within {100 - KNEE * 100:.0f}% of the best throughput, {best:.1f} req/s"
        + (f", among those with p99 <= {target_p99_ms:g} ms)" if target_p99_ms is not None else ")"),
        f"per instance: {basis.rps:.1f} req/s / {n} = {per_instance:.1f} req/s",
    ]
    load = target_rps if target_rps is not None else basis.rps
    count = max(1, math.ceil(load * HEADROOM / per_instance))
    lines.append(
        f"instance_count = ceil({load:.1f} req/s ({'--target-rps' if target_rps is not None else 'measured'})"
        f" x {HEADROOM} headroom / {per_instance:.1f} req/s per instance) = {count}"
    )
    per_request = math.ceil(c / n)
    lines.append(f"max_concurrent_requests_per_instance = ceil(concurrency {c} / {n} instance(s)) = {per_request}")
    cores_measured = max(basis.cpu_cores_per_instance, 0.0)
    cores = max(0.1, math.ceil(cores_measured * HEADROOM * 10) / 10)
    lines.append(f"cpu per instance = {cores_measured:.2f} cores measured x {HEADROOM} = {cores:.1f} cores")
    peak = max(s.peak_memory_bytes for s in steps)
    memory = max(0.1, math.ceil(peak * HEADROOM / GIB * 10) / 10)
    lines.append(f"memory per instance = {peak / GIB:.3f} GiB peak x {HEADROOM} = {memory:.1f} GiB")
    fit = instance_types.smallest_fitting(cores, memory)
    lines.append(
        f"instance_type = the smallest with >= {cores:.1f} vCPUs and >= {memory:.1f} GiB: "
        + (f"{fit.name} ({fit.vcpus} vCPUs, {fit.memory_gib:g} GiB)" if fit else "none in the table")
    )
    if fit is None:
        notes.append("no Azure instance type holds this instance; spread the load over more instances")
    if peak == 0:
        notes.append("the runtime reported no memory figure; the memory recommendation is a floor")
    return Recommendation(
        basis_concurrency=c,
        target_rps=load,
        instance_count=count,
        max_concurrent_requests_per_instance=per_request,
        cpu_cores=cores,
        memory_gib=memory,
        instance_type=fit.name if fit else None,
        meets_target_p99=None if target_p99_ms is None else basis.p99_ms <= target_p99_ms,
        arithmetic=lines,
        notes=notes,
    )
