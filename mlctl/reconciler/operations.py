"""The engine's use cases on a project: plan, apply (of a fresh or a saved plan) and destroy.

Each loads the configuration, takes the state lock, reads the state, runs the runtime's preflight
and refresh, plans and (for apply) carries the plan out. Commands parse arguments, call these, and
print; these never print (apply reports through `Hooks`, and `review` lets the caller show the plan
and ask before anything changes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

from mlctl.errors import MlctlError
from mlctl.reconciler import apply as engine
from mlctl.reconciler.hooks import Hooks
from mlctl.reconciler.plans import drift_plan, plan
from mlctl.reconciler.refresh import refresh
from mlctl.resources import Kind
from mlctl.runtime.registry import Runtimes, load_runtime
from mlctl.state.backends import note_used, state_backend
from mlctl.state.location import check_here, here
from mlctl.state.statefile import read_state


def load_valid_config(project):
    """The project's configuration, or MlctlError listing every config error and, in the same run,
    what is wrong with the state file (so a user fixes both at once).

    Reads only: the state is read without its lock (state writes are atomic), nothing is written."""
    from mlctl.schemas.load import load_config

    config = load_config(project)
    if config.has_errors():
        errors = list(config.errors)
        try:
            read_state(state_backend(project))
        except MlctlError as e:  # the project file's own errors are among the config's already
            errors += [d for d in e.diagnostics if d not in errors]
        raise MlctlError(*errors)
    return config


def project_runtimes(project) -> Runtimes:
    """The project's runtime (which plans and applies), with the runtimes recorded in state loaded on
    demand, each with its settings block of the project file."""
    from mlctl.projectfile import load_project_file

    chosen = load_project_file(project)
    return Runtimes(load_runtime(chosen.runtime, chosen.settings), lambda name: named_runtime(project, name))


def named_runtime(project, name: str):
    """The runtime `name` with its settings block of the project file, whatever --runtime says."""
    from dataclasses import replace

    from mlctl.projectfile import load_project_file

    chosen = load_project_file(replace(project, runtime_override=name), environ={})
    return load_runtime(chosen.runtime, chosen.settings)


def _errors_raised(result) -> None:
    errors = [d for d in result.diagnostics if d.severity == "error"]
    if errors:
        raise MlctlError(*errors)


def make_plan(
    project,
    *,
    refresh_first: bool = True,
    destroy: bool = False,
    replace=(),
    lock_timeout: float = 0,
    operation: str = "plan",
    refresh_only: bool = False,
):
    """Load the config, read the state under its lock, run the preflight and refresh, plan.
    Returns (config, state, plan). Raises MlctlError for bad input, a held lock, or a plan with errors."""
    config = load_valid_config(project)
    runtimes = project_runtimes(project)
    backend = state_backend(project)
    # a plan without refresh reads the state only: no lock (it runs with read-only credentials)
    with backend.lock(operation, timeout=lock_timeout) if refresh_first else contextlib.nullcontext():
        state = read_state(backend)
        note_used(project, backend)
        observed = None
        if refresh_first:  # the machine's checks (an interpreter, an engine) as apply makes them, also on a first plan
            if state.resources:
                check_here(project, state)
            runtimes.main.preflight(config.resources)
            if state.resources:
                observed = refresh(project, state, runtimes)
    if refresh_only:
        result = drift_plan(state, observed or {})
    else:
        result = plan(config, state, observed, destroy=destroy, replace=replace, runtime=runtimes.main.name)
        if refresh_first and not destroy:
            notes = tuple(runtimes.main.plan_notes(config.resources))
            result = dataclasses.replace(result, diagnostics=result.diagnostics + notes) if notes else result
    _errors_raised(result)
    return config, state, result


def apply_project(
    project,
    *,
    planfile=None,
    destroy: bool = False,
    allow_destroy: bool = False,
    lock_timeout: float = 0.0,
    hooks: Hooks | None = None,
    show: Callable = lambda plan, config: None,
    approve: Callable = lambda plan: None,
):
    """Plan (or load the saved `planfile`, relative to the project) and carry it out under the state
    lock. `show(plan, config)` is called once the plan is made, `approve(plan)` before the first change of a
    plan that has changes and is allowed; either may raise to stop (nothing changed then).
    Returns (plan, state). An interrupted apply's leftover intent is cleared."""
    config = load_valid_config(project)
    runtimes = project_runtimes(project)
    hooks = hooks or Hooks()
    if planfile:
        from mlctl.reconciler.planfile import plan_bytes

        path = project.root / planfile  # relative to the project (-C DIR), as `plan --out`
        planfile = path if os.path.lexists(path) or not os.path.lexists(planfile) else Path(planfile)
        plan_bytes(planfile)  # a FIFO or device is refused now, before the lock, never waited on under it
    backend = state_backend(project)
    with backend.lock("destroy" if destroy else "apply", timeout=lock_timeout):
        state = read_state(backend)
        note_used(project, backend)
        check_here(project, state)
        state.location = here(project.data_dir)  # recorded with the next write
        try:
            runtimes.main.preflight(config.resources)
        except MlctlError as e:
            raise (not_destroyed(e, state) if destroy and state.resources else e) from None
        if planfile:
            from mlctl.reconciler.planfile import load_plan

            result = load_plan(planfile, state, config, runtime=runtimes.main.name)
        else:
            observed = refresh(project, state, runtimes)
            result = plan(config, state, observed, destroy=destroy, runtime=runtimes.main.name)
        _errors_raised(result)
        show(result, config)
        if not result.has_changes():
            if state.pending:
                state = engine.apply(result, project, state, runtimes, hooks)
            return result, state
        engine.check_allowed(result, allow_destroy)
        approve(result)
        state = engine.apply(result, project, state, runtimes, hooks, allow_destroy=allow_destroy)
    return result, state


def not_destroyed(e: MlctlError, state) -> MlctlError:
    """Pure: `e` (the runtime cannot be reached, say) as `destroy`'s error: what it could not remove, and that it
    changed nothing (the state still records all of it, so a later `destroy` removes it)."""
    first = e.diagnostics[0]
    names = ", ".join(sorted(str(a) for a in state.resources))
    return MlctlError(
        f"destroy removed nothing: {first.summary}",
        *e.diagnostics[1:],
        detail=f"Not removed, still in the state: {names}. Nothing was changed here either. {first.detail}".strip(),
    )


def leftovers(project, state) -> list:
    """[(what, stop)] of anything of this project that runs but the state does not record, on the
    project's runtime and on every runtime the state names (for `destroy`)."""
    runtimes = project_runtimes(project)
    names = {rs.runtime for rs in state.resources.values()} | {runtimes.main.name}
    recorded = {a.name for a in state.resources if a.kind is Kind.ENDPOINT}
    found = []
    for name in sorted(names):
        found += runtimes.get(name).leftovers(project, recorded)
    return found


def left_behind(project, state) -> list[str]:
    """Notes from the project's runtime and every runtime the state names on what still runs for records
    copied from another location (`state adopt` reports them and touches nothing)."""
    runtimes = project_runtimes(project)
    names = {rs.runtime for rs in state.resources.values()} | {runtimes.main.name}
    return [note for name in sorted(names) for note in runtimes.get(name).left_behind(project)]


def runtime_of(project, recorded):
    """The runtime that made a recorded resource (a ResourceState), with its settings from the project
    file: every command but plan and apply operates a resource through it, whatever --runtime says."""
    return named_runtime(project, recorded.runtime)
