"""Apply's state writes, and what happens when one fails: the state is kept in a local file to push back.

Like Terraform's `errored.tfstate`: when a write to the backend fails in the middle of an apply (the
network, the storage account, a conflict), apply stops giving orders, the state it could not write
(what the runtime has really done) is saved to `.mlctl/errored-state.json` (mode 0600), and the error
says how to put it back: `mlctl state push FILE`, which checks lineage and serial.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlctl.errors import Diagnostic, MlctlError
from mlctl.privatefiles import write_atomic
from mlctl.state.statefile import State, encode, write_state

ERRORED = "errored-state.json"


class StateWriter:
    """`write(state)` -> the written State; on failure, the errored file is saved and MlctlError says so."""

    def __init__(self, project):
        from mlctl.state.backends import state_backend

        self.project = project
        self.backend = state_backend(project, check_moved=False)

    def __call__(self, state: State) -> State:
        try:
            return write_state(self.backend, state)
        except (MlctlError, OSError) as e:
            saved = save_errored(self.project, state)
            why = "; ".join(d.summary for d in e.diagnostics) if isinstance(e, MlctlError) else str(e)
            raise MlctlError(
                Diagnostic(
                    f"apply stopped: the state could not be written to {self.backend.where}: {why}",
                    f"No further change was made. What was done so far is saved in {saved} "
                    f"(serial {state.serial + 1}). "
                    f"Once the store answers again, run `mlctl state push {saved}` to put it back, then "
                    "`mlctl plan` / `mlctl apply` to finish.",
                    file=self.backend.where,
                )
            ) from None


def save_errored(project, state: State) -> Path:
    """Write the state an apply could not record (as the write that failed would have: serial + 1) to a
    0600 file in the project's data folder (the current folder when that cannot be written); its path."""
    state.serial += 1
    data = encode(state)
    state.serial -= 1
    for folder in (project.data_dir, Path(os.getcwd())):
        try:
            if folder == project.data_dir:
                project.ensure_data_dir()  # with its .gitignore: the file is never committed by mistake
            write_atomic(folder / ERRORED, data, mode=0o600, what="errored state")
            return folder / ERRORED
        except (OSError, MlctlError):
            continue
    raise MlctlError(Diagnostic("cannot save the errored state anywhere", encode(state).decode()[:2000]))
