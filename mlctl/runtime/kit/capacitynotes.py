"""The plan's warning when the deployments of one machine could not all reach their maximum at once: the
most instances each may run (an autoscaled deployment's `max_instances`, else its `instance_count`) times what
one instance reserves (`resources.requests`, else `resources.limits`; one CPU when neither gives a CPU: a
scoring worker is one process), added up, against this machine's CPUs and memory. The endpoint host refuses a
scale-up the machine cannot hold when it comes to it (`runtime/host/capacity.py`); this says so at plan time.

`capacity_warnings` is pure; `HostedRuntime.plan_notes` reads the machine and calls it.
"""

from __future__ import annotations

from typing import Iterable

from mlctl import quantities, scalesettings
from mlctl.errors import Diagnostic, Severity
from mlctl.resources import Kind, Resource
from mlctl.sizing import Sizing

DEFAULT_CPU = 1.0


def _needs(r: Resource) -> tuple[int, float, int | None]:
    """(most instances, CPUs each, bytes each or None) of a deployment."""
    a = r.attributes
    settings = scalesettings.settings_of(a)
    most = settings["max_instances"] if settings else int(a.get("instance_count") or 1)
    sizing = Sizing.of(a)
    cpu = sizing.requests.cpu or sizing.limits.cpu or DEFAULT_CPU
    memory = sizing.requests.memory or sizing.limits.memory
    return most, cpu, memory


def capacity_warnings(resources: Iterable[Resource], cpus: int, memory_bytes: int | None) -> list[Diagnostic]:
    """Pure: a warning per resource (CPUs, memory) that the deployments' maximums together exceed, when at least
    one of them autoscales; none otherwise."""
    deployments = [r for r in resources if r.kind is Kind.DEPLOYMENT]
    autoscaled = [r for r in deployments if scalesettings.is_autoscaled(r.attributes)]
    if not autoscaled:
        return []
    needs = [(r, *_needs(r)) for r in deployments]
    parts = ", ".join(f"{r.address.name} {n} x {quantities.describe_cpus(c)}" for r, n, c, _ in needs)
    out = []
    cpu_total = sum(n * c for _, n, c, _ in needs)
    first = autoscaled[0]
    file, address = (first.source.file if first.source else None), str(first.address)
    if cpu_total > cpus + 1e-9:
        out.append(
            Diagnostic(
                f"at their maximums the deployments need {cpu_total:g} CPU(s) and this machine has {cpus}",
                f"({parts}; one CPU an instance unless resources.requests.cpu says otherwise.) The endpoint host "
                "will refuse a scale-up the machine cannot hold; lower max_instances or the CPU requests.",
                severity=Severity.WARNING,
                file=file,
                address=address,
            )
        )
    memory_total = sum(n * m for _, n, _, m in needs if m)
    if memory_bytes and memory_total > memory_bytes:
        out.append(
            Diagnostic(
                f"at their maximums the deployments reserve {quantities.describe_bytes(memory_total)} of memory "
                f"and this machine has {quantities.describe_bytes(memory_bytes)}",
                "The endpoint host will refuse a scale-up the machine cannot hold; lower max_instances or the "
                "memory requests.",
                severity=Severity.WARNING,
                file=file,
                address=address,
            )
        )
    return out
