"""The project file (`mlctl.yaml` or `mlctl.yml` in the project folder): the runtime plan and apply use, and its
settings.

The file is optional: without it the runtime is "local" with its defaults (mlctl's behaviour before the
file existed). For one run, `--runtime NAME` (`Project.runtime_override`) and the MLCTL_RUNTIME variable
override its `runtime:`; precedence: --runtime > MLCTL_RUNTIME > the file's `computes:` (the runtime the
endpoints' `compute: azureml:NAME` map to, mlctl/computes.py) > its `runtime:` > "local". Its schema is
`schemas/project.schema.json`. It is never read as an endpoint document (`schemas/discovery.py` skips it).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath
from types import MappingProxyType
from typing import Any, Mapping

from mlctl import __version__
from mlctl.errors import Diagnostic, MlctlError
from mlctl.listen import ListenBlock, read_listen
from mlctl.projectpaths import Project
from mlctl import runtimerecords
from mlctl.schemas.documents import DISPLAY_ROOT, Document, read_document, show_path
from mlctl.schemas.validate import apply_defaults, did_you_mean, load_schema, validate_document

FILE_NAMES = ("mlctl.yaml", "mlctl.yml")  # the first one found is read; both at once is an error
OPTION = "--runtime"
ENV_VAR = "MLCTL_RUNTIME"
DEFAULT_RUNTIME = runtimerecords.DEFAULT


def known_in_files() -> frozenset[str]:
    """The runtimes a project file may name (the schema's `runtime` enum): those of the runtime records."""
    return frozenset(runtimerecords.settings_blocks())


def __getattr__(name: str):
    if name == "KNOWN":  # read when asked: installed runtimes are found on first use
        return known_in_files()
    raise AttributeError(name)


@dataclass(frozen=True)
class ProjectSettings:
    """The runtime a run uses and that runtime's settings block (the schema's defaults filled in).

    source: where `runtime` came from: the project file (as messages show it), "--runtime" or
            "MLCTL_RUNTIME"; None when it is the default ("local").
    file:   the project file's absolute path when there is one (its settings blocks are read even
            when the runtime is overridden); `line`: the line of its `runtime:` field when the
            runtime came from it. `digest`: "sha256:<hex>" of the file's text (a saved plan binds to it).
    computes: the file's `computes:` map (Azure compute name -> runtime; mlctl/computes.py).
    """

    runtime: str = DEFAULT_RUNTIME
    settings: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    source: str | None = None
    file: str | None = None
    line: int | None = None
    digest: str | None = None
    state: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({"backend": "local"}), hash=False)
    computes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    listen: ListenBlock = field(default_factory=ListenBlock, hash=False)  # the `listen:` block (mlctl.listen)


def is_project_file(path: str | os.PathLike) -> bool:
    """Pure: whether a file's name is the project file's (never an endpoint document)."""
    return (path if isinstance(path, PurePath) else Path(path)).name in FILE_NAMES


def load_project_file(project: Project, environ: Mapping[str, str] | None = None) -> ProjectSettings:
    """The project's runtime and settings; MlctlError listing every problem (file, line, field, what
    to do) in the file and in the overrides. `environ`: the environment to read MLCTL_RUNTIME from
    (default os.environ)."""
    settings, diags = read_project_settings(project, environ)
    if settings is None:
        raise MlctlError(*(d for d in diags if d.severity == "error"))
    return settings


def read_project_settings(
    project: Project, environ: Mapping[str, str] | None = None
) -> tuple[ProjectSettings | None, list[Diagnostic]]:
    """(settings, []) or (None, the errors): as load_project_file, for a caller that collects
    diagnostics (load_config). Never raises for bad input."""
    token = DISPLAY_ROOT.set(str(project.root))
    try:
        return _read(project, os.environ if environ is None else environ)
    finally:
        DISPLAY_ROOT.reset(token)


def _read(project: Project, environ: Mapping[str, str]) -> tuple[ProjectSettings | None, list[Diagnostic]]:
    diags: list[Diagnostic] = []
    found = [project.root / n for n in FILE_NAMES if (project.root / n).exists()]
    if len(found) > 1:
        diags.append(
            Diagnostic(
                f"two project files: {FILE_NAMES[0]} and {FILE_NAMES[1]}",
                f"Keep one of them (mlctl reads either name, never both); merge {FILE_NAMES[1]} into {FILE_NAMES[0]}.",
                file=show_path(found[1]),
            )
        )
    doc, data = None, {}
    if found:
        doc, problems = read_document(found[0])
        diags.extend(problems)
        data = _checked(doc, diags) if doc is not None else None
    runtime, source, line = _chosen(project, environ, doc, data, diags)
    listen = ListenBlock()
    if data is not None and doc is not None:
        _check_state_block(doc, data.get("state") or {}, diags)
        listen, problems = read_listen(doc, data)
        diags.extend(problems)
    if diags or data is None:
        return None, diags
    block = data.get(runtime) or {}
    schema = load_schema("project")["properties"].get(runtime, {})  # a runtime registered at run time has none
    settings = apply_defaults(schema, "project", block)
    state = apply_defaults(load_schema("project")["properties"]["state"], "project", data.get("state") or {})
    return ProjectSettings(
        runtime,
        MappingProxyType(settings),
        source,
        str(doc.path) if doc else None,
        line,
        "sha256:" + hashlib.sha256(doc.text.encode("utf-8")).hexdigest() if doc else None,
        MappingProxyType(state),
        MappingProxyType(dict(data.get("computes") or {})),
        listen,
    ), diags


AZURE_ONLY = ("account_url", "container", "name", "lease_seconds")


def _check_state_block(doc: Document, block: dict, diags: list[Diagnostic]) -> None:
    """What the schema cannot say of a `state:` block: azure_blob needs a container; local takes no
    azure_blob setting."""
    if not isinstance(block, dict):
        return
    backend = block.get("backend", "local")
    if backend == "azure_blob" and "container" not in block:
        diags.append(
            Diagnostic(
                "the azure_blob state backend needs a container",
                "Add 'container: NAME' (an existing blob container) to the state: block (see docs/state.md).",
                **doc.at(("state", "backend") if "backend" in block else ("state",)),
            )
        )
    if backend == "local":
        for key in AZURE_ONLY:
            if key in block:
                diags.append(
                    Diagnostic(
                        f"'{key}' is a setting of the azure_blob state backend, not of local",
                        "Write 'backend: azure_blob' in the state: block, or remove the line.",
                        **doc.at(("state", key)),
                    )
                )


def _checked(doc: Document, diags: list[Diagnostic]) -> dict | None:
    """The file's mapping when it has the schema's shape (an empty file is an empty mapping), else
    None with the problems appended to `diags`."""
    data = {} if doc.data is None else doc.data
    if not isinstance(data, dict):
        diags.append(
            Diagnostic(
                f"the project file {doc.display} is not a mapping",
                "Write 'runtime: NAME' and each runtime's settings block as 'NAME: {...}' "
                '(see docs/config.md, "The project file").',
                **doc.at(()),
            )
        )
        return None
    names = {k for k in data if isinstance(k, str) and k not in load_schema("project")["properties"]}
    if isinstance(data.get("runtime"), str):
        names.add(data["runtime"])
    if isinstance(data.get("computes"), dict):
        names.update(v for v in data["computes"].values() if isinstance(v, str))
    runtimerecords.find(names)  # an installed runtime the file names is read before the file is checked
    problems = [_reworded(d, data, doc) for d in validate_document(doc, "project", data)]
    diags.extend(problems)
    return None if problems else data


def _reworded(d: Diagnostic, data: dict, doc: Document) -> Diagnostic:
    """A schema error said in the project file's terms: an unknown runtime, a setting a runtime lacks."""
    if d.field == "runtime" and isinstance(data.get("runtime"), str) and data["runtime"] not in known_in_files():
        return _unknown(data["runtime"], "", doc.at(("runtime",)))
    block, _, key = (d.field or "").rpartition(".")
    if (block and block not in known_in_files()) or "." in block or not d.summary.startswith("unknown field"):
        return d
    owners = [rt for rt in sorted(known_in_files()) if rt != block and key in _setting_names(rt)]
    move = f"'{key}' is a setting of the {owners[0]} runtime: move it into the '{owners[0]}:' block." if owners else ""
    if not block:  # a runtime's setting written at the top level
        return replace(d, detail=move) if move else d
    mine = _setting_names(block)
    detail = f"The {block} runtime's settings: {', '.join(mine) or 'none'}. "
    detail += move or "Remove it or fix its spelling." + did_you_mean(key, mine)
    return replace(d, summary=f"the {block} runtime has no setting '{key}'", detail=detail)


def _setting_names(runtime: str) -> list[str]:
    return sorted(load_schema("project")["properties"][runtime].get("properties", {}))


def _chosen(
    project: Project, environ: Mapping[str, str], doc: Document | None, data: dict | None, diags: list[Diagnostic]
) -> tuple[str, str | None, int | None]:
    """(runtime, source, line) by precedence; an unknown or unavailable choice appended to `diags`."""
    if project.runtime_override is not None:
        name, source, where, how = project.runtime_override, OPTION, {"field": OPTION}, f"given with {OPTION}"
    elif environ.get(ENV_VAR):
        name, source, where, how = environ[ENV_VAR], ENV_VAR, {"field": ENV_VAR}, f"in {ENV_VAR}"
    elif doc is not None and isinstance(data, dict) and (mapped := _mapped(project, doc, data, diags)) is not None:
        name, source, where, how = mapped, doc.display, doc.at(("computes",)), "by computes"
    elif doc is not None and isinstance(data, dict) and "runtime" in data:
        name, source, where, how = data["runtime"], doc.display, doc.at(("runtime",)), ""
    else:
        return DEFAULT_RUNTIME, None, None
    found = runtimerecords.record(name)
    if found is None:  # only from an override: the file's own is in the schema's enum
        diags.append(_unknown(name, how, where))
    elif not found.available:
        diags.append(_unavailable(name, how, where, source))
    return name, source, where.get("line")


def _mapped(project: Project, doc: Document, data: dict, diags: list[Diagnostic]) -> str | None:
    """The runtime the file's `computes:` sends the configuration's endpoints to (mlctl.computes), None when it
    names none of their computes; computes sent to several runtimes, or to an unknown one, appended to `diags`."""
    from mlctl.computes import configured_computes, mapped_runtime

    mapping = data.get("computes")
    if not isinstance(mapping, dict) or not mapping:
        return None
    known = known_in_files()
    for compute, runtime in mapping.items():
        if runtime not in known:
            diags.append(_unknown(str(runtime), f"for compute {compute!r}", doc.at(("computes", compute))))
    runtime, several = mapped_runtime(mapping, configured_computes(project))
    if several:
        diags.append(
            Diagnostic(
                f"the endpoints' computes map to several runtimes ({', '.join(several)})",
                "mlctl applies one runtime per run: keep the endpoints of each runtime in a project of their own, "
                "or map their computes to one runtime.",
                **doc.at(("computes",)),
            )
        )
    return runtime if runtime in known else None


def _unknown(name: str, how: str, where: dict) -> Diagnostic:
    known = sorted(known_in_files())
    return Diagnostic(
        f"unknown runtime {name!r}" + (f" ({how})" if how else ""),
        f"Use one of: {', '.join(known)}." + did_you_mean(name, known),
        **where,
    )


def _unavailable(name: str, how: str, where: dict, source: str) -> Diagnostic:
    runs = ", ".join(runtimerecords.available())
    instead = {
        OPTION: f"use {OPTION} {DEFAULT_RUNTIME} (or leave the option out)",
        ENV_VAR: f"set {ENV_VAR}={DEFAULT_RUNTIME} or unset it",
    }.get(source, f"write 'runtime: {DEFAULT_RUNTIME}' (or remove the line)")
    return Diagnostic(
        f"the {name} runtime is not in this version of mlctl" + (f" ({how})" if how else ""),
        f"This version ({__version__}) runs: {runs}. To run here, {instead}; or install a version of mlctl "
        f"that has the {name} runtime.",
        **where,
    )
