"""Apply: carry out a plan's changes through the runtime's drivers, recording state around each one.

For every change, in plan order: write the intent (`state.pending`), call the driver, write the
result (resource recorded, intent cleared). A failed change is recorded (status "failed", so the
next plan retries it) and apply stops: later changes, such as moving traffic to a deployment that
did not become ready, are not made. The engine never prints; it reports through `Hooks`.
"""

from __future__ import annotations

import os
import time

from mlctl.errors import Diagnostic, MlctlError
from mlctl.reconciler import hooks as H
from mlctl.reconciler.plans import Action
from mlctl.runtime.drivers import DriverError, RuntimeContext
from mlctl.state.statefile import ResourceState, write_state


class ApplyFailed(MlctlError):
    """A change failed; the state records it. Carries the address, the error and the log tail."""

    def __init__(self, address: str, summary: str, detail: str = "", log_tail: str = ""):
        text = detail + (f"\n\n{log_tail}" if log_tail else "")
        super().__init__(Diagnostic(f"apply failed at {address}: {summary}", text, address=address))
        self.address, self.summary, self.log_tail = address, summary, log_tail


def check_allowed(plan, allow_destroy: bool) -> None:
    """MlctlError when the plan deletes an endpoint without --allow-destroy or a --destroy plan."""
    doomed = [str(c.address) for c in plan.endpoint_deletions()]
    if doomed and not (allow_destroy or plan.destroy):
        raise MlctlError(Diagnostic(
            f"the plan deletes endpoint(s) {', '.join(doomed)}; nothing was changed",
            "An endpoint removed from the configuration is deleted only when you say so: run "
            "`mlctl apply --allow-destroy`, or `mlctl destroy` to delete everything."))


def _run(change, runtime, ctx: RuntimeContext, prior: ResourceState | None) -> dict | None:
    driver = runtime[change.kind]
    action = change.action
    if action is Action.CREATE or action is Action.REPLACE:
        return driver.create(change.resource, ctx)
    if action is Action.UPDATE:
        return driver.update(change.resource, prior, ctx) if prior else driver.create(change.resource, ctx)
    if action is Action.RECREATE:
        if prior is not None:
            ctx.replacing = True
            try:
                driver.delete(change.address, prior, ctx)
            finally:
                ctx.replacing = False
        return driver.create(change.resource, ctx)
    if action is Action.DELETE:
        if prior is not None:
            driver.delete(change.address, prior, ctx)
        return None
    raise ValueError(f"unknown action {action}")


def apply(plan, project, state, runtime, hooks: H.Hooks | None = None, *, allow_destroy: bool = False,
          timeout: float = 600.0):
    """Make the runtime match `plan`, starting from `state` (read under the caller's lock);
    returns the final State. Raises ApplyFailed (state records the failure) or MlctlError."""
    hooks = hooks or H.Hooks()
    check_allowed(plan, allow_destroy)
    path = project.state_path
    ctx = RuntimeContext(project, prior=dict(state.resources), progress=hooks.progress, timeout=timeout)
    if state.pending:
        hooks.event("pending_found", **state.pending)
    hooks.fire(H.APPLY_STARTED)
    for change in plan.changes:
        if change.action is Action.NOOP:
            continue
        address = str(change.address)
        prior = state.resources.get(address)
        state.pending = {"address": address, "action": change.action.value,
                         "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "pid": os.getpid()}
        state = write_state(path, state)
        hooks.fire(H.INTENT_WRITTEN, address=address, action=change.action.value, reason=_reason(change))
        try:
            observed = _run(change, runtime, ctx, prior)
        except (DriverError, MlctlError) as e:
            summary = e.summary if isinstance(e, DriverError) else str(e)
            detail = e.detail if isinstance(e, DriverError) else ""
            tail = getattr(e, "log_tail", "")
            if change.resource is not None:
                state.resources[address] = ResourceState.from_resource(
                    change.resource, status="failed", observed=prior.observed if prior else {})
            state.pending = None
            state = write_state(path, state)
            hooks.fire(H.CHANGE_FAILED, address=address, action=change.action.value, summary=summary,
                       log_tail=tail)
            raise ApplyFailed(address, summary, detail, tail) from None
        hooks.fire(H.CHANGE_DONE, address=address, action=change.action.value)
        if change.action is Action.DELETE:
            state.resources.pop(address, None)
        else:
            state.resources[address] = ResourceState.from_resource(change.resource, observed=observed or {})
        ctx.prior[address] = state.resources.get(address)
        state.pending = None
        state = write_state(path, state)
        hooks.fire(H.RESULT_WRITTEN, address=address, action=change.action.value)
    if state.pending:            # an interrupted apply's intent with nothing left to do
        state.pending = None
        state = write_state(path, state)
    hooks.fire(H.APPLY_FINISHED)
    return state


def _reason(change) -> str:
    return change.reason.value if change.reason is not None else ""

