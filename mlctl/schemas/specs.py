"""Specs: the one shape per kind that documents of either Azure form are normalized into (no hashing yet)."""

from __future__ import annotations

import contextvars
import errno
import os
import re
import stat
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from mlctl.errors import Diagnostic
from mlctl.resources import Source
from mlctl.schemas.documents import Document, format_field

REF = re.compile(r"^(?P<azureml>azureml:)?(?P<name>[^:@/]+)(?::(?P<version>[^:@/]+)|@(?P<label>[^:@/]+))?$")


@dataclass(frozen=True)
class Where:
    """A place in a document: `at(*sub)` gives the Diagnostic location of a field below it."""

    doc: Document
    path: tuple = ()

    def at(self, *sub) -> dict:
        return self.doc.at(self.path + sub)

    def line(self) -> int:
        return self.doc.line(self.path)

    def text(self) -> str:
        return f"{self.doc.display}:{self.line()}"

    def source(self) -> Source:
        """The Source of a resource declared here, with the line of every field below it."""
        n = len(self.path)
        fields = {format_field(p[n:]): line for p, line in self.doc.lines.items() if len(p) > n and p[:n] == self.path}
        return Source(self.doc.display, self.line(), fields)


@dataclass
class Ref:
    """A reference to a model or environment YAML: azureml:NAME:VERSION, NAME:VERSION, azureml:NAME@latest."""

    kind: str
    name: str
    version: str | None
    text: str
    where: Where


@dataclass
class ModelSpec:
    name: str
    version: str | None
    path: Path
    type: str
    description: str | None
    tags: dict
    where: Where
    ignored: list = field(default_factory=list)


@dataclass
class EnvSpec:
    name: str
    version: str | None
    conda_file: Path | None
    image: str | None
    description: str | None
    tags: dict
    where: Where
    ignored: list = field(default_factory=list)
    build: tuple[Path, str] | None = None  # (context folder, Dockerfile path in it): Azure's `build:`
    inference_config: dict | None = None  # a custom container's routes: {liveness, readiness, scoring: {port, path}}


@dataclass
class EndpointSpec:
    name: str
    auth_mode: str
    port: int | None
    description: str | None
    tags: dict
    traffic: dict
    mirror_traffic: dict
    where: Where
    ignored: list = field(default_factory=list)


@dataclass
class DeploymentSpec:
    endpoint: str
    name: str
    model: ModelSpec | Ref
    code: Path | None  # None: no code_configuration (an MLflow model's no-code deployment)
    scoring_script: str | None
    environment: EnvSpec | Ref | None
    settings: dict  # instance_count, request_settings, probes, environment_variables, description, tags
    where: Where
    ignored: list = field(default_factory=list)
    instance_type: str | None = None  # an Azure VM size: honoured by the runtimes the schema names
    kubernetes: bool = False  # a Kubernetes online deployment: its instance_type names a cluster's instance type


@dataclass
class Specs:
    """Everything the documents declare, plus the names of those that failed validation (no cascades)."""

    endpoints: list[EndpointSpec] = field(default_factory=list)
    deployments: list[DeploymentSpec] = field(default_factory=list)
    models: list[ModelSpec] = field(default_factory=list)
    environments: list[EnvSpec] = field(default_factory=list)
    incomplete: bool = False  # some config file could not be parsed: unknown names may be declared there
    explicit: bool = False  # the files were named with -f: a name may be declared in a file not named
    invalid: dict[str, set] = field(
        default_factory=lambda: {k: set() for k in ("endpoint", "model", "environment", "deployment")}
    )

    def mark_invalid(self, kind: str, data: Any, endpoint: str | None = None) -> None:
        """Remember the name of a document that failed, so references to it raise no second error."""
        name = data.get("name") if isinstance(data, dict) else None
        if isinstance(name, str):
            self.invalid[kind].add((endpoint, name) if kind == "deployment" else name)


def to_str_map(values: dict) -> dict:
    """Pure: YAML scalars as the strings a process environment or a tag holds (true -> 'true')."""
    return {str(k): (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in (values or {}).items()}


def to_version(value: Any) -> str | None:
    return None if value is None else str(value)


def resolve_path(doc: Document, value: str) -> Path:
    """A path named in `doc`, absolute, relative to the doc's folder; the 2021 'file:' prefix dropped (a leading
    '~' is the home folder of the environment now; everything else is pure)."""
    value = value.removeprefix("file:")
    if value.startswith("~"):
        return Path(os.path.normpath(os.path.join(doc.base, os.path.expanduser(value))))
    return joined(os.path.dirname(str(doc.path)), value)


@lru_cache(maxsize=4096)
def joined(base: str, value: str) -> Path:
    """Pure: the normalized `value` relative to `base` (5,000 deployments name the same code folder: made once)."""
    return Path(os.path.normpath(os.path.join(base, value)))


def parse_ref(kind: str, text: str, where: Where, diags: list[Diagnostic]) -> Ref | None:
    """A reference string -> Ref, or None with an error explaining the accepted forms."""
    m = REF.match(text.strip())
    forms = "'azureml:NAME:VERSION', 'NAME:VERSION' or 'azureml:NAME@latest'"
    if text.startswith(("azureml:/", "azureml://")) or "/" in text and ":" in text:
        diags.append(
            Diagnostic(
                f"{kind} reference '{text}' names a cloud asset, which mlctl cannot fetch",
                f"Define the {kind} in a {kind} YAML in the project and refer to it as {forms}.",
                **where.at(),
            )
        )
        return None
    if not m or not (m["version"] or m["label"]):
        mapping = "model: {path: FOLDER}" if kind == "model" else "environment: {conda_file: FILE}"
        diags.append(
            Diagnostic(
                f"{kind} '{text}' is neither a reference with a version nor a mapping",
                f"Write {forms} to refer to a {kind} YAML, or '{mapping}' to define it here.",
                **where.at(),
            )
        )
        return None
    if m["label"] and m["label"] != "latest":
        diags.append(
            Diagnostic(
                f"unsupported label '@{m['label']}' in {kind} reference '{text}'",
                "mlctl knows the label '@latest' only; name a version instead.",
                **where.at(),
            )
        )
        return None
    return Ref(kind, m["name"], m["version"], text, where)


# The paths a load looks at on disk (named files and folders, what the builder hashes), collected while it is
# set: the plan memo (mlctl.reconciler.planmemo) compares them again before it reuses a plan.
PROBED: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("PROBED", default=None)


def probed(path) -> None:
    """Note that the load looked at `path` on disk (when PROBED is set)."""
    seen = PROBED.get()
    if seen is not None:
        seen.add(str(path))


def check_existing(doc, path_in_doc, value, diags, want_dir=None) -> Path:
    p = resolve_path(doc, value)
    probed(p)
    what = {True: "folder", False: "file", None: "file or folder"}[want_dir]
    mode = _mode(p)
    if mode is None:
        diags.append(
            Diagnostic(
                f"{what} not found: {value} (resolved to {p})",
                f"Paths are relative to the file that names them ({doc.display}); fix the path "
                "or create the " + what + ".",
                **doc.at(path_in_doc),
            )
        )
    elif not stat.S_ISDIR(mode) and not stat.S_ISREG(mode):  # a FIFO or a device (/dev/zero) would hang or never end
        diags.append(
            Diagnostic(
                f"{value} is not a regular {what} (a FIFO, device or socket)",
                f"Name a regular {what}; mlctl reads and hashes regular files only.",
                **doc.at(path_in_doc),
            )
        )
    elif want_dir is True and not stat.S_ISDIR(mode):
        diags.append(
            Diagnostic(
                f"{value} is a file, expected a folder", "Name the folder that holds the code.", **doc.at(path_in_doc)
            )
        )
    elif want_dir is False and not stat.S_ISREG(mode):
        diags.append(
            Diagnostic(f"{value} is a folder, expected a file", "Name the file itself.", **doc.at(path_in_doc))
        )
    return p


def _mode(p: Path) -> int | None:
    """The st_mode of what `p` names, links followed (as Path.exists, is_dir and is_file answer), in one stat;
    None when it does not exist (other errors are raised, as pathlib raises them)."""
    try:
        return os.stat(p).st_mode
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP):
            return None
        raise
    except ValueError:  # a NUL in the path
        return None
