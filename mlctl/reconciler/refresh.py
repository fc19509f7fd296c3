"""Refresh: ask the runtimes what is really running, for the plan's `observed`.

`refresh()` reads every recorded resource through the driver of the runtime that made it (endpoint
hosts alive and on which port, deployments with their ready instances and served digests, traffic,
images present) and returns the typed observed values (`mlctl.observed`) by address.
"""

from __future__ import annotations

from mlctl.errors import Diagnostic, MlctlError
from mlctl.runtime.contract import DriverError, RuntimeContext
from mlctl.runtime.registry import Runtimes


def refresh(project, state, runtimes: Runtimes) -> dict:
    """{Address: observed value, or None when the runtime says it is gone} for every resource in
    `state`, each read by the runtime recorded for it."""
    contexts: dict[str, RuntimeContext] = {}
    observed = {}
    by_runtime: dict[str, list] = {}
    for address, rs in state.resources.items():
        by_runtime.setdefault(rs.runtime, []).append(address)
    for name, addresses in sorted(by_runtime.items()):  # what many resources share, read at once
        runtime = runtimes.get(name)
        contexts.setdefault(runtime.name, runtime.context(project)).read_ahead(addresses)
    for address, rs in sorted(state.resources.items()):
        runtime = runtimes.get(rs.runtime)
        ctx = contexts.setdefault(runtime.name, runtime.context(project))
        try:
            observed[address] = runtime.driver(address.kind).read(address, rs, ctx)
        except DriverError as e:
            raise MlctlError(
                Diagnostic(
                    f"refresh could not read {address}: {e.summary}",
                    e.detail or "Check the runtime, or plan with --refresh=false.",
                    address=str(address),
                )
            ) from None
    return observed
