"""A project: the folder, its config files and its state/data folder (paths only, no I/O at creation)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mlctl.overrides import Overrides


@dataclass(frozen=True)
class Project:
    root: Path  # the project directory (-C)
    files: tuple[Path, ...]  # explicit -f files (empty = every known YAML in root)
    state_path: Path  # DIR/.mlctl/state.json unless --state
    runtime_override: str | None = None  # --runtime NAME: the runtime for this run, over the project file's
    boundary: Path | None = None  # what its files may reach (mlctl.boundary); None: found from `root`
    overrides: Overrides = Overrides()  # --set and --var of validate, plan and apply (mlctl.overrides)

    @classmethod
    def at(cls, directory: str | os.PathLike = ".", files=(), state_path=None, runtime_override=None) -> "Project":
        root = Path(directory).resolve()
        fs = tuple((root / f).resolve() if not os.path.isabs(f) else Path(f) for f in files)
        sp = Path(state_path).resolve() if state_path else root / ".mlctl" / "state.json"
        return cls(root, fs, sp, runtime_override)

    @property
    def data_dir(self) -> Path:
        """Everything mlctl writes for the project lives here (the state file's folder)."""
        return self.state_path.parent

    def ensure_data_dir(self) -> Path:
        """Make the data folder (with its .gitignore); MlctlError when it, or the .gitignore, is a
        symbolic link out of the project (mlctl.privatefiles)."""
        from mlctl.privatefiles import check_data_folder, create_once

        d = self.data_dir
        check_data_folder(d)
        create_once(d / ".gitignore", b"# written by mlctl: nothing here belongs in version control\n*\n")
        return d
