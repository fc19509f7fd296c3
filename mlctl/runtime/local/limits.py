"""The local runtime's checks of what this machine must give deployments, before planning: each request and limit
within this machine, and a memory limit only where a child cgroup can hold it (errors); a CPU limit where the CPU
controller is not writable is enforced nowhere, which `plan` notes; confinement (as root) where this machine
cannot make mount namespaces (an error). The instances' groups are made by the kit's process launcher
(`mlctl.runtime.kit.cgroups`)."""

from __future__ import annotations

import os
from typing import Iterable

from mlctl.errors import Diagnostic, Severity
from mlctl.resources import Kind
from mlctl.runtime.kit import capacity, cgroups, confinement
from mlctl.sizing import Sizing


def _sized(resources: Iterable) -> list:
    return [r for r in resources if r.kind is Kind.DEPLOYMENT and r.attributes.get("resources")]


def _at(r, field: str) -> dict:
    return {
        "file": r.source.file if r.source else None,
        "line": r.source.line_of(field) if r.source else None,
        "field": field,
        "address": str(r.address),
    }


def resource_problems(resources: Iterable) -> list[Diagnostic]:
    """Errors for the requests and limits this machine cannot give or enforce (file, line, field)."""
    sized = _sized(resources)
    if not sized:
        return []
    problems = capacity.sizing_problems(sized, capacity.this_machine(), "local")
    memory = [r for r in sized if Sizing.of(r.attributes).limits.memory is not None]
    why = cgroups.why_not(cgroups.current().get("memory")) if memory else None
    for r in memory if why else []:
        problems.append(
            Diagnostic(
                f"{r.address}: resources.limits.memory needs a cgroup on the local runtime, and {why}",
                "Run mlctl where it may make child cgroups (as root, or in a cgroup v2 group that delegates "
                "the memory controller: systemd-run --user --scope -p Delegate=yes mlctl ...), use the docker "
                "runtime, or remove resources.limits.memory.",
                **_at(r, "resources.limits.memory"),
            )
        )
    return problems


def confinement_problems(resources: Iterable, settings: dict) -> list[Diagnostic]:
    """One error when mlctl runs as root, the project did not opt out of confinement, and this machine cannot
    confine instances (`confinement.why_not_here`): said at plan, before anything is created."""
    if os.geteuid() != 0 or (settings or {}).get("instance_user") == confinement.OPT_OUT:
        return []
    deployments = [r for r in resources if r.kind is Kind.DEPLOYMENT]
    why = confinement.why_not_here() if deployments else None
    if why is None:
        return []
    return [
        Diagnostic(
            f"mlctl runs as root, so each local deployment runs under a uid of its own in a private mount "
            f"namespace, and this machine cannot do that: {why}",
            "Run mlctl where it may (as root on the machine itself, or in a container given CAP_SYS_ADMIN), "
            f"install util-linux if a tool is missing, or set 'local: {{instance_user: {confinement.OPT_OUT}}}' "
            "in mlctl.yaml to run instances as mlctl's own user, unconfined (docs/threat-model.md).",
            address=str(deployments[0].address),
        )
    ]


def resource_notes(resources: Iterable) -> list[Diagnostic]:
    """Notes for CPU limits and requests, and memory requests without a limit, that this machine does not
    enforce (no writable cgroup controller)."""
    notes = []
    for controller, what in (("cpu", "cpu"), ("memory", "requests.memory")):
        sized = [r for r in _sized(resources) if _asks(Sizing.of(r.attributes), controller)]
        why = cgroups.why_not(cgroups.current().get(controller), controller) if sized else None
        notes += [
            Diagnostic(
                f"{r.address}: resources {what} is not enforced on the local runtime here: {why}",
                severity=Severity.NOTE,
                **_at(r, "resources"),
            )
            for r in (sized if why else [])
        ]
    return notes


def _asks(sizing: Sizing, controller: str) -> bool:
    """Pure: whether `sizing` asks `controller` for something beyond a memory limit (an error, not a note)."""
    if controller == "cpu":
        return sizing.limits.cpu is not None or sizing.requests.cpu is not None
    return sizing.limits.memory is None and sizing.requests.memory is not None
