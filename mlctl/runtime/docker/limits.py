"""A container's CPU and memory limits from a deployment's `resources.limits`, else its `instance_type` (an
Azure VM size), fitted to the engine's machine: a size larger than the machine is clamped to it (the engine
refuses more CPUs than its machine has; a `resources` limit above the machine is refused before, by
preflight). Without either a container still gets a memory limit: the project's `docker.memory` (default
2 GiB), and no CPU limit. `resources.requests` become the engine's reservation: a memory reservation (the
soft limit the kernel reclaims down to under pressure) and CPU shares (1024 a CPU, the weight under
contention). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlctl.instance_types import lookup
from mlctl.quantities import describe_bytes
from mlctl.sizing import Sizing

GIB = 2**30
DEFAULT_MEMORY = 2 * GIB  # a container's memory without an instance_type (docker.memory changes it)
UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


@dataclass(frozen=True)
class Limits:
    nano_cpus: int | None  # CPUs x 10^9 (the engine's unit), None: no limit
    memory_bytes: int | None
    notes: tuple[str, ...] = ()  # what the user should know (unknown size, clamped)
    memory_reservation: int | None = None  # bytes (resources.requests.memory)
    cpu_shares: int | None = None  # 1024 a CPU (resources.requests.cpu)

    def describe(self) -> str:
        """Pure: "2 CPUs, 7.0 GiB of memory" (or "no CPU or memory limit")."""
        if not self.nano_cpus and not self.memory_bytes:
            return "no CPU or memory limit"
        cpus = f"{self.nano_cpus / 1e9:g} CPUs" if self.nano_cpus else "no CPU limit"
        memory = f"{self.memory_bytes / GIB:.1f} GiB of memory" if self.memory_bytes else "no memory limit"
        reserved = [f"{self.cpu_shares} CPU shares"] if self.cpu_shares else []
        if self.memory_reservation:
            reserved.append(f"{describe_bytes(self.memory_reservation)} of memory")
        return f"{cpus}, {memory}" + (f", reserving {' and '.join(reserved)}" if reserved else "")


def memory_bytes(setting: int | str | None) -> int:
    """Pure: bytes of a `docker.memory` setting (an integer of bytes, or "512Mi", "2GiB", "2g", "1.5G": binary
    units); DEFAULT_MEMORY when absent. The schema admits only what this reads."""
    if setting is None:
        return DEFAULT_MEMORY
    if isinstance(setting, int):
        return setting
    text = setting.strip().lower().removesuffix("b").removesuffix("i")
    unit = text[-1] if text and text[-1] in UNITS else ""
    return int(float(text[: len(text) - len(unit)]) * UNITS[unit])


def container_limits(
    instance_type: str | None,
    machine_cpus: int,
    machine_memory: int,
    default_memory: int = DEFAULT_MEMORY,
    sizing: Sizing | None = None,
) -> Limits:
    """Pure: the limits of a container sized by `sizing` (resources.limits and requests), else of
    `instance_type`, on a machine with `machine_cpus` CPUs and `machine_memory` bytes; `default_memory`
    (clamped to the machine) when neither gives a memory limit. Precedence: resources.limits, then
    instance_type, then the default, field by field."""
    sized = _by_instance_type(instance_type, machine_cpus, machine_memory, default_memory)
    if sizing is None or sizing.is_empty():
        return sized
    cap, asked = sizing.limits, sizing.requests
    memory = cap.memory if cap.memory is not None else sized.memory_bytes
    return Limits(
        int(cap.cpu * 1e9) if cap.cpu is not None else sized.nano_cpus,
        memory,
        sized.notes if cap.cpu is None or cap.memory is None else (),
        min(asked.memory, memory) if asked.memory is not None and memory else asked.memory,
        max(2, round(asked.cpu * 1024)) if asked.cpu is not None else None,
    )


def _by_instance_type(
    instance_type: str | None, machine_cpus: int, machine_memory: int, default_memory: int = DEFAULT_MEMORY
) -> Limits:
    """Pure: the limits of a container of `instance_type` on a machine with `machine_cpus` CPUs and
    `machine_memory` bytes; `default_memory` (clamped to the machine) when there is no known size."""
    fallback = min(default_memory, machine_memory) if machine_memory else default_memory
    if not instance_type:
        return Limits(None, fallback)
    size = lookup(instance_type)
    if size is None:
        return Limits(
            None,
            fallback,
            (
                f"instance_type {instance_type} is not an Azure VM size mlctl knows: no CPU limit is set, "
                f"and the memory limit is docker.memory ({fallback / GIB:.1f} GiB)",
            ),
        )
    cpus, memory, notes = size.vcpus, int(size.memory_gib * GIB), []
    if machine_cpus and cpus > machine_cpus:
        notes.append(f"{size.name} has {cpus} vCPUs, this machine {machine_cpus}: limited to {machine_cpus} CPUs")
        cpus = machine_cpus
    if machine_memory and memory > machine_memory:
        notes.append(
            f"{size.name} has {size.memory_gib:g} GiB of memory, this machine "
            f"{machine_memory / GIB:.1f} GiB: limited to that"
        )
        memory = machine_memory
    return Limits(int(cpus * 1e9), memory, tuple(notes))
