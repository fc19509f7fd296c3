"""A profile shown: a rich table of the steps and the recommendation with its arithmetic, or the same as
one JSON document, `mlctl.profile/v1` (schema: mlctl/schemas/profile.schema.json). Pure but for printing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mlctl import __version__
from mlctl.profiling.figures import Step
from mlctl.profiling.recommendation import HEADROOM, Recommendation

FORMAT = "mlctl.profile/v1"
MIB = 1024**2


@dataclass(frozen=True)
class Profile:
    """One run of `mlctl profile`: what was asked, what each step measured, and the sizing."""

    endpoint: str
    deployment: str
    runtime: str
    duration_s: float
    max_requests: int
    target_rps: float | None
    target_p99_ms: float | None
    steps: Sequence[Step]
    recommendation: Recommendation | None


def _step(s: Step) -> dict:
    r = lambda x: round(x, 3)  # noqa: E731
    return {
        "concurrency": s.concurrency,
        "requests": s.requests,
        "errors": sum(s.errors.values()),
        "error_kinds": dict(sorted(s.errors.items())),
        "duration_s": r(s.duration_s),
        "rps": r(s.rps),
        "latency_ms": {
            "mean": r(s.mean_ms),
            "p50": r(s.p50_ms),
            "p90": r(s.p90_ms),
            "p99": r(s.p99_ms),
            "max": r(s.max_ms),
        },
        "instances": s.instances,
        "cpu_cores": r(s.cpu_cores),
        "cpu_cores_per_instance": r(s.cpu_cores_per_instance),
        "peak_memory_bytes": s.peak_memory_bytes,
    }


def document(p: Profile) -> dict:
    """Pure: the profile as the `--json` document."""
    rec = p.recommendation
    return {
        "format": FORMAT,
        "mlctl_version": __version__,
        "endpoint": p.endpoint,
        "deployment": p.deployment,
        "runtime": p.runtime,
        "settings": {
            "concurrency": [s.concurrency for s in p.steps],
            "duration_s": p.duration_s,
            "max_requests": p.max_requests,
            "target_rps": p.target_rps,
            "target_p99_ms": p.target_p99_ms,
        },
        "steps": [_step(s) for s in p.steps],
        "recommendation": None
        if rec is None
        else {
            "basis_concurrency": rec.basis_concurrency,
            "target_rps": round(rec.target_rps, 3),
            "headroom": HEADROOM,
            "instance_count": rec.instance_count,
            "max_concurrent_requests_per_instance": rec.max_concurrent_requests_per_instance,
            "cpu_cores": rec.cpu_cores,
            "memory_gib": rec.memory_gib,
            "instance_type": rec.instance_type,
            "meets_target_p99": rec.meets_target_p99,
            "arithmetic": list(rec.arithmetic),
            "notes": list(rec.notes),
        },
    }


def print_profile(p: Profile, console) -> None:
    """The steps as a table, then the recommendation, its arithmetic and a YAML excerpt to copy."""
    from rich import box
    from rich.table import Table

    table = Table(
        title=f"profile of {p.endpoint}/{p.deployment} ({p.runtime} runtime)", title_justify="left", box=box.SIMPLE_HEAD
    )
    for name in ("concurrency", "req/s", "p50 ms", "p90 ms", "p99 ms", "errors", "CPU cores", "peak MiB"):
        table.add_column(name, justify="right", min_width=len(name))
    for s in p.steps:
        table.add_row(
            str(s.concurrency),
            f"{s.rps:.1f}",
            f"{s.p50_ms:.1f}",
            f"{s.p90_ms:.1f}",
            f"{s.p99_ms:.1f}",
            str(sum(s.errors.values())),
            f"{s.cpu_cores:.2f}",
            f"{s.peak_memory_bytes / MIB:.0f}",
        )
    console.print(table)
    for s in p.steps:
        if s.errors:
            console.print(
                f"  errors at concurrency {s.concurrency}: "
                + ", ".join(f"{k} x {v}" for k, v in sorted(s.errors.items())),
                markup=False,
            )
    rec = p.recommendation
    if rec is None:
        console.print("No recommendation: no step answered without errors.")
        return
    console.print(
        "\nRecommendation"
        + (f" for {p.target_rps:g} req/s" if p.target_rps is not None else "")
        + (f" within p99 {p.target_p99_ms:g} ms" if p.target_p99_ms is not None else "")
        + ":"
    )
    for line in rec.arithmetic:
        console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
    for note in rec.notes:
        console.print(f"  Note: {note}", markup=False, highlight=False, soft_wrap=True)
    console.print("\n  # in the deployment YAML", markup=False, highlight=False)
    for line in (
        f"instance_type: {rec.instance_type or '(none fits)'}",
        f"instance_count: {rec.instance_count}",
        "request_settings:",
        f"  max_concurrent_requests_per_instance: {rec.max_concurrent_requests_per_instance}",
    ):
        console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
