"""The runtime records: one per runtime, the one place that says what a runtime is. Everything that lists
runtimes is derived from them: the runtime registry (`mlctl.runtime.registry`), the project file's known
names and the schema's enum and settings blocks (`projectfile.py`, `schemas/validate.load_schema`), the
endpoint host's launchers (`runtime/host/launcher.py`), the instance fields `show` prints, and the contract
suite's parametrization.

Records come from three places, in this order: the built-in ones below; those of installed packages,
through the `mlctl.runtimes` entry-point group (each entry point names a RuntimeRecord, e.g.
`tiny = tiny_runtime:RECORD` in the package's entry_points.txt); and those registered in this process
(`register`, tests). This module imports no runtime: a record names modules, loaded on first use.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENTRY_POINT_GROUP = "mlctl.runtimes"
SCHEMAS = Path(__file__).parent / "schemas" / "runtimes"
DEFAULT = "local"  # the runtime of a project that names none


@dataclass(frozen=True)
class RuntimeRecord:
    """What a runtime is.

    name:            its name in mlctl.yaml (`runtime: NAME`), --runtime and MLCTL_RUNTIME
    module:          the module defining `runtime(settings) -> Runtime`; None for a runtime mlctl knows of but
                     this version does not have (a project naming it is told so)
    settings_schema: the closed JSON Schema of its settings block in mlctl.yaml (`NAME: {...}`): a mapping, or
                     the path of a JSON file holding it
    launcher:        the name of the launcher that runs its instances (a serving spec's `launcher`)
    launcher_module: the module with that launcher's class `Launcher` (the endpoint host loads it by name)
    instance_fields: the fields of an instance's status, beyond every launcher's, that `mlctl show` prints
    factory:         instead of `module`, `factory(settings) -> Runtime` (a runtime registered in-process)
    """

    name: str
    module: str | None
    settings_schema: Mapping[str, Any] | Path = field(default_factory=dict)
    launcher: str | None = None
    launcher_module: str | None = None
    instance_fields: tuple[str, ...] = ()
    factory: Callable[[Mapping[str, Any]], Any] | None = field(default=None, compare=False)

    def settings(self) -> dict:
        """Its settings block's JSON Schema (closed; an empty closed object when it declares none)."""
        if isinstance(self.settings_schema, Path):
            return json.loads(self.settings_schema.read_text(encoding="utf-8"))
        return dict(self.settings_schema) or {"type": "object", "additionalProperties": False}

    @property
    def available(self) -> bool:
        """Can this mlctl load it?"""
        return self.module is not None or self.factory is not None


BUILT_IN = (
    RuntimeRecord(
        "local",
        "mlctl.runtime.local.runtime",
        SCHEMAS / "local.schema.json",
        launcher="process",
        launcher_module="mlctl.runtime.local.launcher",
        # an instance sized by resources; and whether its fork server forked it (docs/runtime.md)
        instance_fields=("cgroup", "cpus", "memory_bytes", "oom_kills", "forked"),
    ),
    RuntimeRecord(
        "docker",
        "mlctl.runtime.docker.runtime",
        SCHEMAS / "docker.schema.json",
        launcher="container",
        launcher_module="mlctl.runtime.docker.launcher",
        instance_fields=(
            "container",
            "container_name",
            "image",
            "cpus",
            "memory_bytes",
            "last_exit",
            "oom_kills",
            "stopped_outside_mlctl",
            "from_spare",
        ),
    ),
    RuntimeRecord(
        "ray",
        "mlctl.runtime.ray.runtime",
        SCHEMAS / "ray.schema.json",
        launcher="serve",  # Ray Serve's replicas, their scoring servers reached directly
        launcher_module="mlctl.runtime.ray.launcher",
        # which Serve replica an instance is, its node, and its scoring server's address (the host's one hop)
        instance_fields=("replica_id", "node_id", "upstream"),
    ),
    # planned: known, so a project naming it is told it is not in this version
    RuntimeRecord("kubernetes", None, SCHEMAS / "kubernetes.schema.json"),
)

_registered: dict[str, RuntimeRecord] = {}


@functools.cache
def installed() -> tuple[RuntimeRecord, ...]:
    """The records of installed packages (the `mlctl.runtimes` entry points), read once per process; an entry
    point that does not load to a RuntimeRecord is left out (a broken plugin never stops mlctl)."""
    from importlib.metadata import entry_points

    found = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            record = ep.load()
        except Exception:  # noqa: BLE001 - a plugin that fails to import is not a runtime
            continue
        if isinstance(record, RuntimeRecord) and record.name == ep.name:
            found.append(record)
    return tuple(found)


def records(scan: bool = False) -> dict[str, RuntimeRecord]:
    """{name: record} of every runtime mlctl knows: built-in, installed, registered (a later one of the same
    name wins). The installed ones are read once they are asked for (`scan`, or a name that is not built in:
    reading every package's entry points costs more than a small plan, so a run that names only built-in
    runtimes never does)."""
    out = {r.name: r for r in BUILT_IN}
    if scan or installed.cache_info().currsize:
        for r in installed():
            out.setdefault(r.name, r)  # a plugin never replaces a built-in runtime
    out.update(_registered)
    return out


def record(name: str) -> RuntimeRecord | None:
    """The record of `name` (installed runtimes are looked for when it is not built in nor registered)."""
    found = records().get(name)
    return found if found is not None else records(scan=True).get(name)


def find(names) -> None:
    """Read the installed runtimes when any of `names` is not a runtime known without them (a project file
    naming an installed runtime, or its settings block)."""
    if not set(names) <= set(records()):
        installed()


def register(runtime: RuntimeRecord) -> None:
    """Make a runtime known for this process (tests)."""
    _registered[runtime.name] = runtime


def unregister(name: str) -> None:
    _registered.pop(name, None)


def known() -> tuple[str, ...]:
    """Names of every runtime mlctl knows, whether or not this version has it."""
    return tuple(sorted(records(scan=True)))


def available() -> tuple[str, ...]:
    """Names of the runtimes this mlctl can load."""
    return tuple(sorted(n for n, r in records(scan=True).items() if r.available))


def launcher_of(runtime: str) -> str:
    """The name of the launcher that runs the instances of `runtime` (its record's)."""
    found = record(runtime)
    if found is None or not found.launcher:
        raise LookupError(f"the {runtime} runtime's record names no launcher")
    return found.launcher


def launchers() -> dict[str, str]:
    """{launcher name: module with class Launcher} of every runtime's launcher."""
    return {r.launcher: r.launcher_module for r in records().values() if r.launcher and r.launcher_module}


def instance_fields() -> tuple[str, ...]:
    """The instance fields `show` prints beyond every launcher's, of every runtime, in record order."""
    return tuple(dict.fromkeys(f for r in records().values() for f in r.instance_fields))


def settings_blocks() -> dict[str, dict]:
    """{runtime name: the JSON Schema of its settings block} of the runtimes that declare one (not those
    registered in-process without a schema: a project file cannot configure those)."""
    return {n: r.settings() for n, r in records().items() if r.factory is None}
