"""Apply: carry out a plan's changes through the runtimes' drivers, recording state around each one.

For every change, in plan order: write the intent (`state.pending`), give the runtime the change's
order (`Change.order`, chosen by the plan; see `mlctl.runtime.contract`), write the result
(resource recorded with the runtime that made it, intent cleared). A failed change is recorded
(status "failed", so the next plan retries it) and apply stops: later changes, such as moving
traffic to a deployment that did not become ready, are not made. The engine never prints; it
reports through `Hooks`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mlctl.errors import Diagnostic, MlctlError
from mlctl.reconciler import hooks as H
from mlctl.reconciler.actions import Action
from mlctl.runtime.contract import Driver, DriverError, Order, RuntimeContext
from mlctl.runtime.registry import Runtimes
from mlctl.state.statefile import ResourceState, Status
from mlctl.state.writes import StateWriter

if TYPE_CHECKING:
    from mlctl.resources import Resource
    from mlctl.observed import Observed


class ApplyFailed(MlctlError):
    """A change failed; the state records it. Carries the address, the error and the log tail."""

    def __init__(self, address: str, summary: str, detail: str = "", log_tail: str = ""):
        text = detail + (f"\n\n{log_tail}" if log_tail else "")
        super().__init__(Diagnostic(f"apply failed at {address}: {summary}", text, address=address))
        self.address, self.summary, self.log_tail = address, summary, log_tail


def check_allowed(plan, allow_destroy: bool) -> None:
    """MlctlError when the plan deletes an endpoint, or moves one to another runtime, without
    --allow-destroy or a --destroy plan."""
    doomed = [str(c.address) for c in plan.endpoint_deletions()]
    moved = [str(c.address) for c in plan.runtime_moves()]
    if (doomed or moved) and not (allow_destroy or plan.destroy):
        what = []
        if doomed:
            what.append(f"deletes endpoint(s) {', '.join(doomed)}")
        if moved:
            what.append(
                f"recreates endpoint(s) {', '.join(moved)} on the {plan.runtime} runtime "
                "(their instances stop and start again there)"
            )
        raise MlctlError(
            Diagnostic(
                f"the plan {' and '.join(what)}; nothing was changed",
                "An endpoint is deleted or moved to another runtime only when you say so: run "
                "`mlctl apply --allow-destroy`, or `mlctl destroy` to delete everything.",
            )
        )


def _carry_out(change, order: Order, runtimes: Runtimes, contexts, prior: ResourceState | None):
    """Give the change's order to the runtime that owns the resource; across runtimes, the new one
    creates and the old one deletes (in the order the action says)."""
    new = runtimes.main
    old = runtimes.get(prior.runtime) if prior is not None else new
    if order is Order.DELETE:
        if prior is not None:
            old.driver(change.kind).delete(change.address, prior, contexts(old))
        return None
    if prior is None or order is Order.CREATE:
        return new.driver(change.kind).create(change.resource, prior, contexts(new))
    if old is new:
        return _in_place(new.driver(change.kind), order)(change.resource, prior, contexts(new))
    if order is Order.RECREATE:  # the old one goes first, keeping identity (an endpoint's port and keys)
        old.driver(change.kind).delete(change.address, prior, contexts(old), keep_identity=True)
        return new.driver(change.kind).create(change.resource, prior, contexts(new))
    observed = new.driver(change.kind).create(change.resource, prior, contexts(new))
    if order is Order.ROLL:
        old.driver(change.kind).delete(change.address, prior, contexts(old), keep_identity=True)
    return observed


def _in_place(driver: Driver[Any], order: Order) -> Callable[[Resource, ResourceState, RuntimeContext], Observed]:
    """The driver method of an order carried out by the runtime that made the resource."""
    match order:
        case Order.UPDATE:
            return driver.update
        case Order.SCALE:
            return driver.scale
        case Order.ROLL:
            return driver.roll
        case Order.RECREATE:
            return driver.recreate
    raise DriverError(f"apply cannot give the order {order.value!r} to a driver")


def apply(
    plan,
    project,
    state,
    runtimes: Runtimes,
    hooks: H.Hooks | None = None,
    *,
    allow_destroy: bool = False,
    timeout: float = 600.0,
):
    """Make the runtimes match `plan`, starting from `state` (read under the caller's lock);
    returns the final State. Raises ApplyFailed (state records the failure) or MlctlError."""
    hooks = hooks or H.Hooks()
    check_allowed(plan, allow_destroy)
    write_state = StateWriter(project)
    made: dict[str, object] = {}

    def contexts(runtime):
        if runtime.name not in made:
            made[runtime.name] = runtime.context(project, progress=hooks.progress, timeout=timeout)
        return made[runtime.name]

    if state.pending:
        hooks.event("pending_found", **state.pending)
    hooks.fire(H.APPLY_STARTED)
    for change in plan.changes:
        order = change.order
        if order is None:
            continue
        address = str(change.address)
        prior = state.resources.get(change.address)
        state.pending = {
            "address": address,
            "action": change.action.value,
            "order": order.value,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "pid": os.getpid(),
        }
        state = write_state(state)
        hooks.fire(H.INTENT_WRITTEN, address=address, action=change.action.value, reason=_reason(change))
        try:
            observed = _carry_out(change, order, runtimes, contexts, prior)
        except (DriverError, MlctlError) as e:
            summary = e.summary if isinstance(e, DriverError) else str(e)
            detail = e.detail if isinstance(e, DriverError) else ""
            tail = getattr(e, "log_tail", "")
            if order is Order.ROLL and prior is not None and prior.status == Status.READY and change.resource:
                # the old version keeps serving: it stays the record, so reverting the change plans nothing
                state.resources[change.address] = dataclasses.replace(prior, failed_roll=change.resource.digest)
            elif change.resource is not None:
                state.resources[change.address] = ResourceState.from_resource(
                    change.resource,
                    status=Status.FAILED,
                    runtime=prior.runtime if prior else runtimes.main.name,
                    observed=prior.observed if prior else None,
                )
            state.pending = None
            state = write_state(state)
            hooks.fire(H.CHANGE_FAILED, address=address, action=change.action.value, summary=summary, log_tail=tail)
            raise ApplyFailed(address, summary, detail, tail) from None
        hooks.fire(H.CHANGE_DONE, address=address, action=change.action.value)
        if change.action is Action.DELETE:
            state.resources.pop(change.address, None)
        else:
            state.resources[change.address] = ResourceState.from_resource(
                change.resource, runtime=runtimes.main.name, observed=observed
            )
        state.pending = None
        state = write_state(state)
        hooks.fire(H.RESULT_WRITTEN, address=address, action=change.action.value)
    if state.pending:  # an interrupted apply's intent with nothing left to do
        state.pending = None
        state = write_state(state)
    hooks.fire(H.APPLY_FINISHED)
    return state


def _reason(change) -> str:
    return change.reason.value if change.reason is not None else ""
