"""The `-m MODEL` arguments of `mlctl convert v1`: a file or folder to register (named after it, or
NAME=PATH to give the name the script's Model.get_model_path asks for), or the NAME:VERSION of a model
the project already defines (as v1's `az ml model deploy -m NAME:VERSION` named one)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mlctl.errors import Diagnostic, MlctlError

_NAMED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_-]*)=(.+)$")  # NAME=PATH: the name Model.get_model_path asks for
_REFERENCE = re.compile(r"^(?:azureml:)?([A-Za-z0-9][A-Za-z0-9_-]*):([A-Za-z0-9][A-Za-z0-9_.-]*)$")


@dataclass(frozen=True)
class ModelArg:
    """One `-m`: `name` (the folder it gets in a multi-model layout, and the name v1's
    Model.get_model_path asks for), `version` (None: mlctl derives it), `path` (its files),
    `registered` (a NAME:VERSION the project defines)."""

    given: str
    name: str
    version: str | None
    path: Path
    registered: bool = False


def sanitized(name: str) -> str:
    """Pure: `name` as a model or environment name: what one cannot hold as '-', starting with a letter or digit."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", name).lstrip("-_")


def name_of(path: Path) -> str:
    """Pure: a model name from a file or folder name: its stem (up to the first '.'), sanitized."""
    return sanitized(path.name.split(".")[0] or path.name) or "model"


def _project_models(project) -> dict[tuple[str, str], Path]:
    """The models the project's configuration defines: (name, version) -> path. MlctlError with the
    configuration's errors when it has some (a NAME:VERSION cannot be looked up in it then)."""
    from mlctl.resources import Kind
    from mlctl.schemas.load import load_config

    config = load_config(project)
    if config.errors:
        if any("no configuration found" in d.summary for d in config.errors):
            return {}
        raise MlctlError(*config.errors)
    return {
        (r.attributes["name"], str(r.attributes["version"])): Path(r.attributes["path"])
        for r in config.resources
        if r.kind is Kind.MODEL
    }


def resolve_models(given: tuple[str, ...], project) -> list[ModelArg]:
    """Each `-m`, in order: a path relative to the project folder, else a NAME:VERSION of the project.
    MlctlError naming every `-m` that is neither, and two that would get one name."""
    found: list[ModelArg] = []
    diags: list[Diagnostic] = []
    models = None
    for arg in given:
        path = (project.root / arg).resolve()
        ref = _REFERENCE.match(arg)
        named = _NAMED.match(arg)
        if named and not path.exists():
            target = (project.root / named.group(2)).resolve()
            if target.is_file() or target.is_dir():
                found.append(ModelArg(arg, named.group(1), None, target))
            else:
                diags.append(
                    Diagnostic(
                        f"-m {arg}: no such file or folder {named.group(2)} (relative to {project.root})",
                        "Give NAME=PATH with the model's file or folder as PATH.",
                        field="-m",
                    )
                )
        elif path.exists() and (path.is_file() or path.is_dir()):
            found.append(ModelArg(arg, name_of(path), None, path))
        elif ref:
            models = _project_models(project) if models is None else models
            key = (ref.group(1), ref.group(2))
            if key in models:
                found.append(ModelArg(arg, key[0], key[1], models[key], registered=True))
            else:
                have = ", ".join(f"{n}:{v}" for n, v in sorted(models)) or "none"
                diags.append(
                    Diagnostic(
                        f"-m {arg}: the project defines no model {key[0]}:{key[1]}",
                        f"Name a model the project defines (it has: {have}), or give the "
                        "model's file or folder instead.",
                        field="-m",
                    )
                )
        else:
            diags.append(
                Diagnostic(
                    f"-m {arg}: no such file or folder (relative to {project.root}), and not a NAME:VERSION",
                    "Give the model's file or folder (NAME=PATH to name it), or NAME:VERSION of a model the "
                    "project defines.",
                    field="-m",
                )
            )
    names = [(m.name, m.version) for m in found]
    for name, _ in sorted({n for n in names if names.count(n) > 1}):
        diags.append(
            Diagnostic(
                f"two -m models would both be named '{name}'",
                "Name them apart with NAME=PATH (a model's name is otherwise its file or folder name: "
                "Model.get_model_path finds it by that name).",
                field="-m",
            )
        )
    if diags:
        raise MlctlError(*diags)
    return found
