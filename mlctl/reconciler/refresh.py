"""Refresh: ask the runtime what is really running, for the plan's `observed`; check the machine.

`refresh()` reads every recorded resource through its driver (endpoint hosts alive and on which
port, deployments with their ready instances and served digests, traffic, virtualenvs present)
and, given the desired configuration, checks what only this machine can answer (an interpreter
for each environment's Python version), so apply fails before changing anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from mlctl.errors import Diagnostic, MlctlError
from mlctl.resources import Address, Kind
from mlctl.runtime.drivers import DriverError, RuntimeContext, load_runtime


def check_machine(resources: Iterable) -> None:
    """MlctlError listing every image whose Python version no interpreter here satisfies."""
    from mlctl.runtime.local.envs import read_built
    from mlctl.runtime.local.pythons import find_python

    problems = []
    resources = list(resources)
    conda_files = {r.attributes.get("name"): r.attributes.get("conda_file")
                   for r in resources if r.kind is Kind.ENVIRONMENT}
    for r in resources:
        if r.kind is not Kind.IMAGE:
            continue
        a = r.attributes
        if read_built(a.get("spec_digest", "")) is not None:
            continue                      # already built: its interpreter exists
        try:
            find_python(a.get("python"))
        except MlctlError as e:
            d = e.diagnostics[0]
            conda = conda_files.get(a.get("environment"))
            detail = d.detail.replace("in the conda file", f"in the conda file {conda}") if conda else d.detail
            problems.append(Diagnostic(d.summary, detail, file=r.source.file if r.source else None,
                                       line=r.source.line if r.source else None, address=str(r.address)))
    if problems:
        raise MlctlError(*problems)


def refresh(project, state, desired=None, *, runtime: Mapping | None = None) -> dict[str, dict | None]:
    """{address: observed dict, or None when the runtime says it is gone} for every resource in
    `state`; with `desired` (a loaded Config or its resources) also check_machine() first."""
    if desired is not None:
        check_machine(getattr(desired, "resources", desired))
    runtime = runtime if runtime is not None else load_runtime()
    ctx = RuntimeContext(project, prior=dict(state.resources))
    observed: dict[str, dict | None] = {}
    for address, rs in sorted(state.resources.items()):
        try:
            observed[address] = runtime[Kind(rs.kind)].read(Address.parse(address), rs, ctx)
        except DriverError as e:
            raise MlctlError(Diagnostic(f"refresh could not read {address}: {e.summary}",
                                        e.detail or "Check the runtime, or plan with --refresh=false.",
                                        address=address)) from None
    return observed
