"""Which project location a state belongs to: the data folder (and machine) recorded in the state, and the
check each command that reaches a runtime makes first, so a copied project (`cp -r` copies `.mlctl/`) never
operates the original's endpoints. The endpoint host's run records carry the same check
(mlctl.runtime.host.runfiles). See docs/plan.md, "A copied or moved project".
"""

from __future__ import annotations

import os
import shlex
import socket
from pathlib import Path

from mlctl.errors import Diagnostic, MlctlError


def here(data_dir) -> dict:
    """The location of a data folder as a state records it: {"path": its real path, "host": this machine}."""
    return {"path": os.path.realpath(data_dir), "host": socket.gethostname()}


def recorded_elsewhere(state, data_dir) -> dict | None:
    """The location `state` records when it is not `data_dir` on this machine; None when it is, when the
    state records none (written before mlctl recorded it) or records nothing deployed."""
    recorded = state.location
    if not recorded or not (state.resources or state.pending):
        return None
    now = here(data_dir)
    if recorded.get("path") == now["path"] and recorded.get("host", now["host"]) == now["host"]:
        return None
    return recorded


def _mlctl(project, *args: str) -> str:
    """Pure but for the working directory: the command line a user types for `mlctl ARGS` on `project`."""
    words = ["mlctl"]
    if Path.cwd().resolve() != project.root:
        words += ["-C", _shown(project.root)]
    if project.state_path != project.root / ".mlctl" / "state.json":
        words += ["--state", _shown(project.state_path)]
    return shlex.join(words + list(args))


def _shown(path: Path) -> str:
    try:
        return os.path.relpath(path) if Path(path).resolve().is_relative_to(Path.cwd().resolve()) else str(path)
    except ValueError:
        return str(path)


def fresh_start(project) -> str:
    """The command that starts this folder afresh: its data folder removed (only its own copy of state,
    keys, logs and models; the original's are elsewhere), or the state file alone when --state points
    outside the project."""
    data = project.data_dir
    if data == project.root / ".mlctl":
        return f"rm -r {shlex.quote(_shown(data))}"
    state = _shown(project.state_path)
    return f"rm {shlex.quote(state)} {shlex.quote(state + '.backup')}"


def is_bound_to_location(project, state) -> bool:
    """Do the state's endpoints live where they were applied (endpoint hosts on that machine)? False when every
    recorded endpoint's runtime keeps them elsewhere (the ray runtime with `ingress: cluster`: any machine with the
    state and a route to the cluster operates them, docs/runtime.md); True when a runtime cannot be made."""
    from mlctl.reconciler.operations import runtime_of

    endpoints = [rs for rs in state.resources.values() if rs.kind == "endpoint"]
    try:
        return not endpoints or any(getattr(runtime_of(project, rs), "hosts_here", True) for rs in endpoints)
    except MlctlError:
        return True


def check_here(project, state) -> None:
    """MlctlError when `state` belongs to another project location (a copy of this project, or this project
    moved): what happened and the two ways out. Called before any runtime is read or changed."""
    recorded = recorded_elsewhere(state, project.data_dir)
    if recorded is None or not is_bound_to_location(project, state):
        return
    origin = recorded.get("path", "?")
    host = recorded.get("host")
    _check_shared(project, origin, host)
    if host and host != socket.gethostname():
        what = f"it was recorded on the machine {host!r} (in {origin})"
        why = "This project was copied from that machine"
    elif os.path.exists(origin):
        what = f"it was recorded by the project whose data folder is {origin}"
        why = "This folder is a copy of that project, and the original still exists"
    else:
        what = f"it was recorded in {origin}, which no longer exists"
        why = "The project was moved or renamed"
    raise MlctlError(
        Diagnostic(
            f"the state here belongs to another project location: {what}",
            f"{why}. mlctl does not read, stop or change the endpoints recorded there from here; "
            "the original keeps serving. Choose one:\n"
            f"    start fresh here (new endpoints, new keys):  {fresh_start(project)}  "
            f"then  {_mlctl(project, 'plan')}\n"
            f"    adopt the state here (carry on its history and keys; apply starts this folder's own endpoint "
            f"hosts):  {_mlctl(project, 'state', 'adopt')}  then  {_mlctl(project, 'plan')}",
            file=str(project.state_path),
        )
    )


def _check_shared(project, origin: str, host: str | None) -> None:
    """With a shared state backend, another location is not a copy: the endpoints run where they were applied
    (the local and docker runtimes' hosts and keys live in that machine's data folder). MlctlError naming it."""
    from mlctl.state.backends import configured

    backend = configured(project)
    if backend.config.get("backend") == "local":
        return
    machine = f"the machine {host!r}" if host else "another machine"
    raise MlctlError(
        Diagnostic(
            f"the endpoints in the shared state run on {machine}, in {origin}; this is {socket.gethostname()!r}, "
            f"in {os.path.realpath(project.data_dir)}",
            "Their hosts, instances and keys live where they were applied: mlctl neither reaches them from here "
            "nor plans to recreate them. Run plan, apply and destroy there; here, "
            f"`{_mlctl(project, 'plan', '--refresh=false')}` plans from the state alone. To serve them from this "
            f"machine instead: `{_mlctl(project, 'state', 'adopt')}` (the hosts there keep running until stopped).",
            file=backend.where,
        )
    )
