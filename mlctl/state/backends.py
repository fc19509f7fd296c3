"""Which state backend a project uses (the project file's `state:` block), and whether it moved.

`state_backend(project)` is the Backend its commands read and write. The backend last used is recorded
in `.mlctl/backend.json` (its `config`, no secret); a project with a local state file and no record was
using the local backend. When the `state:` block names another store than the one recorded, commands
that read the state refuse (`MovedBackend`) until `mlctl state migrate` has copied it.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from mlctl.errors import Diagnostic, MlctlError
from mlctl.privatefiles import read_private, write_atomic
from mlctl.state.localfile import LocalBackend

RECORD = "backend.json"
_made: dict = {}  # one backend per (project, state block) in a process: its client and lock are reused


def configured(project):
    """The Backend the project file's `state:` block names (defaults: the local file)."""
    from mlctl.projectfile import load_project_file

    settings = load_project_file(project)
    block = dict(settings.state)
    key = (str(project.root), str(project.state_path), json.dumps(block, sort_keys=True))
    if key not in _made:
        if block.get("backend", "local") == "local":
            _made[key] = LocalBackend(project.state_path)
        else:
            _refuse_state_file(project, block, settings.file)
            from mlctl.state.signedblob import azure_blob_backend

            _made[key] = azure_blob_backend(block, default_name=f"{project.root.name}.mlctl-state.json")
    return _made[key]


def check_state_option(project) -> None:
    """The CLI's check of --state FILE, before a command reads or writes anything (its caches included):
    `_refuse_state_file`. A project file with errors is left to the command, which reports them all."""
    from mlctl.projectfile import load_project_file

    try:
        settings = load_project_file(project)
    except MlctlError:
        return
    if settings.state.get("backend", "local") != "local":
        _refuse_state_file(project, settings.state, settings.file)


def _refuse_state_file(project, block: Mapping[str, Any], file: str | None) -> None:
    """MlctlError when --state FILE names a local state file while the `state:` block keeps it elsewhere: as
    Terraform's -state, it is the local backend's option, and ignoring it would read and write another state than
    the one asked for."""
    if project.state_path != project.root / ".mlctl" / "state.json":
        raise MlctlError(
            Diagnostic(
                f"--state {project.state_path} names a local state file, but the state: block keeps the state in "
                f"{block.get('backend')} (container '{block.get('container')}')",
                "Leave out --state: it is for the local backend only. `mlctl state pull > FILE` copies the shared "
                "state to a file; `mlctl state push FILE` writes one to it (lineage and serial checked).",
                file=file,
                field="state.backend",
            )
        )


def holds_state(project) -> bool:
    """Whether the project's state store holds a state document: the local state file, or the shared document
    (one read, asked only of a folder with no configuration: its empty configuration then plans deleting what the
    state records, as Terraform's does). False when the store cannot be read; the state's own read says why."""
    try:
        backend = configured(project)
        if isinstance(backend, LocalBackend):
            return project.state_path.is_file()
        return backend.read().data is not None
    except MlctlError:
        return project.state_path.is_file()


def recorded(project) -> Mapping[str, Any] | None:
    """The config of the backend this project folder last used (None: none yet)."""
    try:
        data = json.loads(read_private(project.data_dir / RECORD, "state backend record"))
    except FileNotFoundError:
        return {"backend": "local"} if project.state_path.exists() else None
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def record(project, backend) -> None:
    """Remember `backend` as the one this project folder uses (best effort: a read-only checkout cannot)."""
    try:
        if recorded(project) != backend.config:
            project.ensure_data_dir()
            write_atomic(project.data_dir / RECORD, json.dumps(dict(backend.config)).encode(), what="state record")
    except (OSError, MlctlError):
        pass


def state_backend(project, *, check_moved: bool = True):
    """The project's Backend; MlctlError when the `state:` block moved the state and it was not migrated."""
    backend = configured(project)
    before = recorded(project)
    if check_moved and before is not None and dict(before) != dict(backend.config):
        raise MlctlError(
            Diagnostic(
                f"the state: block moved the state from {_shown(before)} to {_shown(backend.config)}",
                "Run `mlctl state migrate` to copy the state there (nothing is planned or changed until then), "
                "or restore the state: block.",
                field="state",
            )
        )
    return backend


def note_used(project, backend) -> None:
    """After a successful read: remember a shared backend as this folder's (a later `state:` change is then
    detected). The local backend needs no record: its file is its own."""
    if backend.config.get("backend") != "local" and recorded(project) is None:
        record(project, backend)


def _shown(config: Mapping[str, Any]) -> str:
    if config.get("backend") == "local":
        return "the local state file"
    return f"azure_blob {config.get('account_url')}/{config.get('container')}/{config.get('name')}"


def backend_from(project, config: Mapping[str, Any]):
    """A Backend for a recorded config (the source of a migration)."""
    if config.get("backend") == "local":
        return LocalBackend(project.state_path)
    from mlctl.state.signedblob import azure_blob_backend

    settings = {k: config[k] for k in ("container", "name") if k in config}
    return azure_blob_backend({**settings, "account_url": config.get("account_url")}, default_name=config["name"])
