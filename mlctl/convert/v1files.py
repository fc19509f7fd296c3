"""The v1 files: inferenceconfig.json and deploymentconfig.json read with a line for every field and
checked against v1's schema (the field table, `fieldmap.TABLE`) and v1's own rules; every problem is
a diagnostic naming file, line and field, all of them reported together.

A value is never shown in a message (a key, password or certificate must not reach a terminal).
"""

from __future__ import annotations

import bisect
import dataclasses
import difflib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlctl.boundary import describe, is_inside, project_boundary
from mlctl.convert.fieldmap import DC, IC, children, lookup
from mlctl.errors import Diagnostic, MlctlError
from mlctl.schemas.documents import read_config_text, read_document

COMPUTE_TYPES = ("local", "aci", "aks")
_TYPES = {
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "any": lambda v: True,
}
# v1 ignores these inferenceconfig.json fields when an `environment` block is given
IGNORED_WITH_ENVIRONMENT = (
    "condaFile",
    "baseImage",
    "baseImageRegistry",
    "extraDockerfileSteps",
    "extraDockerFileSteps",
    "enableGpu",
    "cudaVersion",
)
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+')


@dataclass
class V1File:
    """One parsed v1 file: `kind` (IC or DC), its data and the 1-based line of every field (dotted)."""

    path: Path
    shown: str
    kind: str
    data: dict
    lines: dict[str, int] = field(default_factory=dict)

    def line(self, name: str) -> int | None:
        """The line of field `name`, else of its closest ancestor present, else 1."""
        while name:
            if name in self.lines:
                return self.lines[name]
            name = name.rpartition("[")[0] if name.endswith("]") else name.rpartition(".")[0]
        return 1

    def get(self, name: str, default: Any = None) -> Any:
        """The value at dotted `name`; `default` when absent or null (v1 writes absent fields as null)."""
        value: Any = self.data
        for part in name.split("."):
            if not isinstance(value, dict) or value.get(part) is None:
                return default
            value = value[part]
        return value

    def has(self, name: str) -> bool:
        """Is field `name` given: not null, and for an object or list, something in it given?"""
        return _given(self.get(name))

    def error(self, summary: str, detail: str, name: str | None) -> Diagnostic:
        return Diagnostic(summary, detail, file=self.shown, line=self.line(name or ""), field=name)

    @property
    def base(self) -> Path:
        return self.path.parent


@dataclass
class V1Input:
    """Both v1 files of one service, checked: `compute` is the deploymentconfig.json computeType
    (lower case), or None without one."""

    ic: V1File
    dc: V1File | None
    boundary: str | None = None  # the project's boundary (mlctl.boundary): every path must be inside it

    @property
    def compute(self) -> str | None:
        return self.dc.get("computeType", "").lower() if self.dc else None

    def file(self, kind: str) -> V1File | None:
        return self.ic if kind == IC else self.dc

    def value(self, kind: str, name: str, default: Any = None) -> Any:
        f = self.file(kind)
        return f.get(name, default) if f else default

    def source_dir(self) -> Path | None:
        """sourceDirectory, relative to inferenceconfig.json's folder."""
        s = self.ic.get("sourceDirectory")
        return (self.ic.base / _posix(s)).resolve() if s else None

    def in_source(self, name: str) -> Path | None:
        """The file an inferenceconfig.json path field names: relative to sourceDirectory when it is
        given (as in v1: entryScript, condaFile, extraDockerfileSteps), else to the file's folder."""
        value = self.ic.get(name)
        return ((self.source_dir() or self.ic.base) / _posix(value)).resolve() if value else None

    def dependencies_base(self) -> Path:
        return self.source_dir() or self.ic.base

    def dependencies(self) -> list[Path]:
        """The files and folders `dependencies` names, relative to sourceDirectory when given (as entryScript)."""
        base = self.dependencies_base()
        return [(base / _posix(d)).resolve() for d in self.ic.get("dependencies", []) if isinstance(d, str) and d]

    def uses_environment(self) -> bool:
        """Does the inference configuration give an `environment` block (v1 then ignores condaFile,
        baseImage, enableGpu, ...)?"""
        return self.ic.has("environment")

    def ignored(self, name: str) -> bool:
        """Does v1 ignore inferenceconfig.json field `name` (top level or below it) here?"""
        return self.uses_environment() and name.split(".")[0] in IGNORED_WITH_ENVIRONMENT


PATH_FIELDS = ("sourceDirectory", "entryScript", "condaFile", "environment.python.condaDependenciesFile")


def _posix(path: str) -> str:
    """Pure: a v1 path written on Windows (`src\\score.py`) as this machine reads it."""
    return path.replace("\\", "/")


def _given(value: Any) -> bool:
    """Pure: v1 writes absent fields as null, and absent sections as objects of nulls."""
    if isinstance(value, dict):
        return any(_given(v) for v in value.values())
    if isinstance(value, list):
        return bool(value)
    return value is not None


def _shown(path: Path, root: Path) -> str:
    rel = os.path.relpath(path, root)
    return str(path) if rel.startswith("..") else rel


def _field_lines(text: str) -> tuple[dict[str, int], list[tuple[str, int]]]:
    """Pure: the 1-based line of every object member of valid JSON `text`, by dotted path (list items
    as `[i]`), and the members given twice (JSON readers keep the last silently)."""
    newlines = [i for i, c in enumerate(text) if c == "\n"]
    lines: dict[str, int] = {}
    twice: list[tuple[str, int]] = []
    stack: list[dict] = []  # frames: {"array": bool, "path": str, "key": str, "index": int, "want_key": bool}
    for m in _TOKEN.finditer(text):
        tok, top = m.group(), (stack[-1] if stack else None)
        if top is not None and not top["array"] and top["want_key"] and tok.startswith('"'):
            key = json.loads(tok)
            path = f"{top['path']}.{key}" if top["path"] else key
            line = bisect.bisect_left(newlines, m.start()) + 1
            (twice.append((path, line)) if path in lines else lines.__setitem__(path, line))
            top.update(key=key, want_key=False)
        elif tok in "{[":
            if top is None:
                path = ""
            elif top["array"]:
                path = f"{top['path']}[{top['index']}]"
            else:
                path = f"{top['path']}.{top['key']}" if top["path"] else top["key"]
            stack.append({"array": tok == "[", "path": path, "key": "", "index": 0, "want_key": tok == "{"})
        elif tok in "}]":
            stack.pop()
        elif tok == "," and top is not None:
            top["index"] += 1
            top["want_key"] = not top["array"]
    return lines, twice


def _dotted(path: tuple) -> str:
    """Pure: a YAML field path as the JSON reader names it (`a.b`, list items as `[i]`)."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _read_yaml(path: Path, shown: str, kind: str) -> tuple[V1File | None, list[Diagnostic]]:
    """A v1 file written as YAML (the v1 CLI read its --ic/--dc files as JSON or YAML)."""
    doc, problems = read_document(path)
    problems = [dataclasses.replace(d, file=shown) for d in problems]
    if doc is None or any(d.summary.startswith(("YAML", "cannot read")) for d in problems):
        return None, problems
    if not isinstance(doc.data, dict):
        return None, [
            Diagnostic(
                f"{shown} is not a mapping", f"A v1 {kind} is one JSON object or YAML mapping.", file=shown, line=1
            )
        ]
    lines = {_dotted(k): line for k, line in doc.lines.items() if k}
    return V1File(path, shown, kind, doc.data, lines), problems


def read_v1_file(path: Path, kind: str, root: Path) -> tuple[V1File | None, list[Diagnostic]]:
    """Read one v1 file (a regular file of at most 1 MiB, a JSON object or, as the v1 CLI also read
    them, a YAML mapping; no member given twice)."""
    shown = _shown(path, root)
    text, problems = read_config_text(path, shown)
    if text is None:
        return None, problems
    text = text.removeprefix("\ufeff")  # Windows editors save JSON with a byte-order mark
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        if not text.lstrip().startswith(("{", "[")):
            return _read_yaml(path, shown, kind)
        return None, [
            Diagnostic(
                f"{shown} is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})",
                "Fix the JSON at this line and column (double quotes, no trailing commas, no comments), "
                "or write the file as YAML.",
                file=shown,
                line=e.lineno,
            )
        ]
    except RecursionError:
        return None, [Diagnostic(f"cannot read {shown}: it is nested too deeply", "Write it flatter.", file=shown)]
    if not isinstance(data, dict):
        return None, [
            Diagnostic(f"{shown} is not a JSON object", f"A v1 {kind} is one JSON object {{...}}.", file=shown, line=1)
        ]
    lines, twice = _field_lines(text)
    f = V1File(path, shown, kind, data, lines)
    return f, [
        Diagnostic(
            f"field '{name}' is given twice in {shown}",
            "Keep one of them (JSON readers silently keep the last).",
            file=shown,
            line=line,
            field=name,
        )
        for name, line in twice
    ]


def _unknown(f: V1File, name: str, parent: str) -> Diagnostic:
    key = name.rpartition(".")[2]
    known = children(f.kind, parent)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    hint = f"Did you mean '{close[0]}'? " if close else ""
    where = f"'{parent}'" if parent else f"a v1 {'deployment' if f.kind == DC else 'inference'} configuration"
    return f.error(
        f"unknown field '{name}' in {f.shown}: v1's schema has no such field",
        f"{hint}The fields of {where} are: {', '.join(known)}.",
        name,
    )


def check_fields(f: V1File, compute: str | None) -> list[Diagnostic]:
    """Pure: every member of `f` against the field table: unknown, mistyped, of another computeType,
    negative where a count or duration is meant. Members of free-form fields (tags, conda
    dependencies) are the user's and not checked."""
    diags: list[Diagnostic] = []

    def walk(obj: dict, parent: str) -> None:
        for key, value in obj.items():
            name = f"{parent}.{key}" if parent else key
            row = lookup(f.kind, name)
            if row is None:
                diags.append(_unknown(f, name, parent))
                continue
            if value is None:
                continue
            if not _TYPES[row.type](value):
                diags.append(
                    f.error(
                        f"field '{name}' must be {'an' if row.type[0] in 'aeiou' else 'a'} {row.type}",
                        f"Write it as a JSON {row.type}, as v1 reads it.",
                        name,
                    )
                )
            elif f.kind == DC and compute in COMPUTE_TYPES and compute not in row.compute:
                diags.append(
                    f.error(
                        f"field '{name}' is not a field of a computeType '{compute}' deployment "
                        f"configuration (v1 reads it for computeType {' and '.join(row.compute)})",
                        "Remove it, or set computeType to the compute it was written for.",
                        name,
                    )
                )
            elif row.type in ("integer", "number") and value < 0:
                diags.append(
                    f.error(f"field '{name}' must not be negative", "Give a count or duration of 0 or more.", name)
                )
            elif isinstance(value, dict) and not row.free_form:
                walk(value, name)

    walk(f.data, "")
    return diags


def check_rules(v1: V1Input) -> list[Diagnostic]:
    """v1's own rules beyond the field types: the files the inference configuration names exist,
    runtime is python, computeType is known, autoscaler bounds and auth switches agree."""
    ic, dc = v1.ic, v1.dc
    diags: list[Diagnostic] = []
    runtime = ic.get("runtime", "python")
    if isinstance(runtime, str) and runtime.lower() == "spark-py":
        diags.append(
            ic.error(
                "runtime 'spark-py' cannot be converted: current online deployments run Python scoring scripts, "
                "and v1's Spark images were retired with v1",
                "Rewrite the entry script to score in Python (pyspark can "
                "stay a conda dependency), then set runtime to python.",
                "runtime",
            )
        )
    elif isinstance(runtime, str) and runtime.lower() != "python":
        diags.append(
            ic.error(f"runtime must be python or spark-py, not '{runtime}'", "Set runtime to python.", "runtime")
        )
    if not ic.has("entryScript"):
        diags.append(
            ic.error(
                f"{ic.shown} has no entryScript",
                "Name the scoring script (init() and run()) in "
                "entryScript, relative to sourceDirectory when one is given.",
                "entryScript",
            )
        )
    if ic.has("sourceDirectory") and not v1.source_dir().is_dir():
        diags.append(
            ic.error(
                f"sourceDirectory {ic.get('sourceDirectory')} is not a folder",
                f"Give the folder of the scoring code, relative to {ic.shown}'s folder.",
                "sourceDirectory",
            )
        )
    else:
        for name, what in (
            ("entryScript", "entry script"),
            ("condaFile", "conda file"),
            ("environment.python.condaDependenciesFile", "conda file"),
        ):
            path = None if v1.ignored(name) else v1.in_source(name)
            if path is not None and not path.is_file():
                rel = "sourceDirectory" if ic.has("sourceDirectory") else f"{ic.shown}'s folder"
                diags.append(
                    ic.error(
                        f"the {what} {ic.get(name)} does not exist ({path})",
                        f"Give the path of the {what}, relative to {rel}, as v1 reads it.",
                        name,
                    )
                )
    source_ok = not ic.has("sourceDirectory") or v1.source_dir().is_dir()
    for i, dep in enumerate(ic.get("dependencies", []) if source_ok else []):
        name = f"dependencies[{i}]"
        if not isinstance(dep, str) or not dep:
            diags.append(ic.error(f"{name} must be a path", "List the files and folders as strings.", name))
        elif not (v1.dependencies_base() / _posix(dep)).resolve().exists():
            diags.append(
                ic.error(
                    f"the dependency {dep} does not exist ({(v1.dependencies_base() / _posix(dep)).resolve()})",
                    "Give the file or folder relative to "
                    + ("sourceDirectory" if ic.has("sourceDirectory") else f"{ic.shown}'s folder")
                    + ", or remove it from dependencies.",
                    name,
                )
            )
    if dc is not None:
        compute = dc.get("computeType")
        if compute is None:
            diags.append(
                dc.error(f"{dc.shown} has no computeType", "Set computeType to local, aci or aks.", "computeType")
            )
        elif isinstance(compute, str) and compute.lower() not in COMPUTE_TYPES:
            diags.append(
                dc.error(
                    f"computeType must be one of local, aci, aks, not '{compute}'",
                    "Set computeType to the compute the service was deployed to.",
                    "computeType",
                )
            )
        low, high = dc.get("autoScaler.minReplicas"), dc.get("autoScaler.maxReplicas")
        if isinstance(low, int) and isinstance(high, int) and low > high:
            diags.append(
                dc.error(
                    f"autoScaler.minReplicas ({low}) is larger than autoScaler.maxReplicas ({high})",
                    "Make minReplicas at most maxReplicas.",
                    "autoScaler.minReplicas",
                )
            )
        if dc.get("authEnabled") is True and dc.get("tokenAuthEnabled") is True:
            diags.append(
                dc.error(
                    "authEnabled and tokenAuthEnabled are both true; v1 allows one of them",
                    "Keep one: authEnabled for keys, tokenAuthEnabled for tokens.",
                    "tokenAuthEnabled",
                )
            )
        port = dc.get("port")
        if isinstance(port, int) and not isinstance(port, bool) and not 1 <= port <= 65535:
            diags.append(dc.error("port must be between 1 and 65535", "Give a TCP port, or leave port out.", "port"))
    return diags


def read_v1(ic_path: Path, dc_path: Path | None, root: Path) -> V1Input:
    """Read and check both files; MlctlError with every problem found (files named relative to `root`)."""
    diags: list[Diagnostic] = []
    ic, found = read_v1_file(ic_path, IC, root)
    diags += found
    dc = None
    if dc_path is not None:
        dc, found = read_v1_file(dc_path, DC, root)
        diags += found
    compute = dc.get("computeType", "").lower() if dc is not None and isinstance(dc.get("computeType"), str) else None
    for f in (ic, dc):
        if f is not None:
            diags += check_fields(f, compute)
    boundary = project_boundary(root)
    if ic is not None and not diags:
        diags += outside_paths(V1Input(ic, dc, boundary)) or check_rules(V1Input(ic, dc, boundary))
    if diags:
        raise MlctlError(*diags)
    return V1Input(ic, dc, boundary)


def outside_paths(v1: V1Input) -> list[Diagnostic]:
    """The path fields of inferenceconfig.json that name something outside the project's boundary (errors
    at their field): `sourceDirectory: "/"` would copy the whole disk into the new code folder."""
    out = []
    named = [(name, v1.in_source(name) if name != "sourceDirectory" else v1.source_dir()) for name in PATH_FIELDS]
    named += [(f"dependencies[{i}]", p) for i, p in enumerate(v1.dependencies())]
    for name, path in named:
        if path is not None and not is_inside(os.path.realpath(path), v1.boundary):
            out.append(
                v1.ic.error(
                    f"{name} {v1.ic.get(name) if '[' not in name else path} is outside the project ({path}): "
                    f"mlctl reads nothing beyond {describe(v1.boundary)}",
                    "Give a path inside the project, or run mlctl from a folder that holds both.",
                    name,
                )
            )
    return out
