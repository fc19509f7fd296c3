"""Capacity: whether each deployment's `resources` (one instance's requests and limits) fit what a runtime can
give one instance: the CPUs, memory and GPUs of this machine, of the Docker engine's machine, or of the Ray
cluster's largest node (a request: what Ray places by). A request or limit above it is a plan error naming
the largest possible. Pure, but `this_machine`, which reads /proc and the cgroup file system.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from mlctl import quantities
from mlctl.errors import Diagnostic
from mlctl.resources import Kind
from mlctl.sizing import KEYS, Sizing


@dataclass(frozen=True)
class Machine:
    """What one instance can have at most: `cpus`, `memory` (bytes), `gpus`; `what` names it in messages."""

    cpus: float
    memory: int
    gpus: int
    what: str


def sizing_problems(resources: Iterable, machine: Machine, runtime: str) -> list[Diagnostic]:
    """Pure: an error for each deployment request or limit above `machine` (file, line, field, the largest
    possible); a request left out, which is its limit, is reported once, as the limit."""
    out = []
    for r in resources:
        if r.kind is not Kind.DEPLOYMENT or not r.attributes.get("resources"):
            continue
        sizing = Sizing.of(r.attributes)
        for key, name in KEYS.items():
            cap = getattr(machine, name + "s") if name != "memory" else machine.memory
            limit, request = getattr(sizing.limits, name), getattr(sizing.requests, name)
            for part, value in (("limits", limit), ("requests", request)):
                if value is None or value <= cap or (part == "requests" and value == limit):
                    continue
                most = _show(name, cap)
                field = f"resources.{part}.{key}"
                out.append(
                    Diagnostic(
                        f"{r.address}: {field} ({_show(name, value)}) is more than {machine.what} can give one "
                        f"instance on the {runtime} runtime: at most {most}",
                        f"Lower {field} to {most} or less, or run the deployment where it fits.",
                        file=r.source.file if r.source else None,
                        line=r.source.line_of(field) if r.source else None,
                        field=field,
                        address=str(r.address),
                    )
                )
    return out


def _show(name: str, value: float | int) -> str:
    """Pure: an amount of resource `name` in Kubernetes' terms."""
    if name == "cpu":
        return quantities.describe_cpus(float(value))
    if name == "memory":
        return quantities.describe_bytes(int(value))
    return f"{int(value)} GPU" + ("s" if value != 1 else "")


def largest_node(nodes: Iterable[dict]) -> Machine:
    """Pure: the most one Ray replica can reserve on a cluster of `nodes` (ray.nodes(): the alive ones'
    `Resources`: CPU, memory in bytes, GPU), per resource, on whichever alive node has most of it."""
    alive = [n.get("Resources") or {} for n in nodes if n.get("Alive")]
    return Machine(
        max((float(r.get("CPU", 0)) for r in alive), default=0.0),
        int(max((float(r.get("memory", 0)) for r in alive), default=0.0)),
        int(max((float(r.get("GPU", 0)) for r in alive), default=0.0)),
        "the Ray cluster's largest node",
    )


def this_machine() -> Machine:
    """This machine as the local runtime sees it: the CPUs this process may run on, the memory of the machine
    or of the cgroup it runs in (the smaller), the NVIDIA GPUs its /dev shows."""
    from mlctl.runtime.kit import cgroups

    cpus = len(os.sched_getaffinity(0))
    memory = _meminfo_total()
    group = cgroups.current().get("memory")
    if group is not None:
        for name in ("memory.max", "memory.limit_in_bytes"):
            try:
                text = (group.group / name).read_text().strip()
            except OSError:
                continue
            if text.isdigit() and 0 < int(text) < memory:
                memory = int(text)
    gpus = len([p for p in glob.glob("/dev/nvidia*") if Path(p).name[len("nvidia") :].isdigit()])
    return Machine(cpus, memory, gpus, "this machine")


def _meminfo_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
