"""A container's CPU and memory limits from a deployment's `instance_type` (an Azure VM size), fitted to
the engine's machine: an unknown size sets no limit, a size larger than the machine is clamped to it
(the engine refuses more CPUs than its machine has). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlctl.instance_types import lookup

GIB = 2**30


@dataclass(frozen=True)
class Limits:
    nano_cpus: int | None  # CPUs x 10^9 (the engine's unit), None: no limit
    memory_bytes: int | None
    notes: tuple[str, ...] = ()  # what the user should know (unknown size, clamped)

    def describe(self) -> str:
        """Pure: "2 CPUs, 7.0 GiB of memory" (or "no CPU or memory limit")."""
        if not self.nano_cpus and not self.memory_bytes:
            return "no CPU or memory limit"
        cpus = f"{self.nano_cpus / 1e9:g} CPUs" if self.nano_cpus else "no CPU limit"
        memory = f"{self.memory_bytes / GIB:.1f} GiB of memory" if self.memory_bytes else "no memory limit"
        return f"{cpus}, {memory}"


def container_limits(instance_type: str | None, machine_cpus: int, machine_memory: int) -> Limits:
    """Pure: the limits of a container of `instance_type` on a machine with `machine_cpus` CPUs and
    `machine_memory` bytes."""
    if not instance_type:
        return Limits(None, None)
    size = lookup(instance_type)
    if size is None:
        return Limits(
            None,
            None,
            (f"instance_type {instance_type} is not an Azure VM size mlctl knows: no CPU or memory limit is set",),
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
