"""Whether this machine can hold more instances of a deployment: the autoscaler asks before each scale-up, and
a scale-up the machine cannot hold is logged and refused (instead of instances that thrash or are OOM-killed).

Memory: an instance needs its memory request, else the peak memory its running siblings reached, else (none
runs) its limit; the machine has `MemAvailable` (/proc/meminfo). CPU: only CPUs that are
reserved count (`resources.requests.cpu` of autoscaled deployments of this host, as the scheduler of a
Kubernetes node counts requests), against the CPUs this process may run on. `refusal` is pure; `room_for`
reads the machine and carries it out.
"""

from __future__ import annotations

import os
from typing import Iterable

MIB = 1024 * 1024


def refusal(
    added: int,
    memory_each: int | None,
    memory_available: int | None,
    cpu_each: float | None,
    cpu_reserved: float,
    cpus: int,
) -> str | None:
    """Pure: why `added` more instances do not fit (None when they do); unknown needs are not held against
    them. Carried out by `room_for`."""
    if memory_each and memory_available is not None and added * memory_each > memory_available:
        return (
            f"{added} more instance(s) need about {added * memory_each // MIB} MiB "
            f"({memory_each // MIB} MiB each) and the machine has {memory_available // MIB} MiB available"
        )
    if cpu_each and cpu_reserved + added * cpu_each > cpus + 1e-9:
        return (
            f"{added} more instance(s) reserve {added * cpu_each:g} CPU(s) (resources.requests.cpu) and "
            f"{cpu_reserved:g} of the machine's {cpus} are reserved already"
        )
    return None


def memory_available() -> int | None:
    """MemAvailable of /proc/meminfo in bytes (None where there is none)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def memory_each(d) -> int | None:
    """What one more instance of deployment `d` needs, as a scheduler counts it: its memory request (a
    process's cgroup sizing), else the highest peak its running instances reached (measured), else its limit
    (a container's, a process's cgroup's) when none runs, as at zero instances."""
    sizing = d.spec.launch.get("resources") or {}  # a process's cgroup sizing (local runtime)
    request = (sizing.get("requests") or {}).get("memory")
    if isinstance(request, int) and request > 0:
        return request
    peaks = []
    for inst in d.instances:
        usage = inst.launcher.usage(inst.key)
        if usage is not None and usage.peak_memory_bytes:
            peaks.append(usage.peak_memory_bytes)
    if peaks:
        return max(peaks)
    for limit in (d.spec.launch.get("memory_bytes"), (sizing.get("limits") or {}).get("memory")):
        if isinstance(limit, int) and limit > 0:
            return limit
    return None


def room_for(d, added: int, deployments: Iterable) -> str | None:
    """None when the machine can hold `added` more instances of `d` (a supervisor.Deployment), else why not."""
    cpu_each = (d.spec.scale_settings or {}).get("cpu_request")
    reserved = sum(
        (x.spec.scale_settings or {}).get("cpu_request", 0) * len(x.instances) for x in deployments if x.spec
    )
    return refusal(added, memory_each(d), memory_available(), cpu_each, reserved, cpus())
