"""A container's CPU and memory limits from a deployment's `instance_type` (an Azure VM size), fitted to
the engine's machine: a size larger than the machine is clamped to it (the engine refuses more CPUs than
its machine has). Without a known size a container still gets a memory limit: the project's
`docker.memory` (default 2 GiB), and no CPU limit. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlctl.instance_types import lookup

GIB = 2**30
DEFAULT_MEMORY = 2 * GIB  # a container's memory without an instance_type (docker.memory changes it)
UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


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
