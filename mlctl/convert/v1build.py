"""The conversion itself: checked v1 files and `-m` models -> the current-form documents (endpoint,
deployment `blue`, environment, model) with a header comment each, driven by the field table.

Rows of `fieldmap.TABLE` marked `copy` are copied (through `TRANSFORMS`); rows marked `derived`
are computed by `DERIVED` from several fields; the others are listed, when present, in the header
of the file their row names. Nothing here writes: `writing` does.
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from mlctl.boundary import describe, is_inside
from mlctl.convert.fieldmap import DC, IC, TABLE, V1Field
from mlctl.convert.modelargs import ModelArg, sanitized
from mlctl.convert.v1files import V1Input
from mlctl.errors import Diagnostic, MlctlError
from mlctl.instance_types import smallest_fitting

SCHEMA = "https://azuremlschemas.azureedge.net/latest/{}.schema.json"
DEPLOYMENT = "blue"
MAX_TIMEOUT_MS = 180_000
V1_AKS_TIMEOUT_MS = 60_000  # AksWebservice's scoring_timeout_ms default
V1_DEFAULT_CPU, V1_DEFAULT_MEMORY_GB = 0.1, 0.5
AUTOSCALE_DEFAULTS = {
    "min_instances": 1,
    "max_instances": 10,
    "target_utilization_percentage": 70,
    "polling_interval": 1,
}
ORDER = {
    "endpoint": ("$schema", "name", "description", "auth_mode", "port", "traffic"),
    "deployment": (
        "$schema",
        "name",
        "endpoint_name",
        "description",
        "model",
        "code_configuration",
        "environment",
        "instance_type",
        "instance_count",
        "scale_settings",
        "request_settings",
        "liveness_probe",
        "environment_variables",
        "app_insights_enabled",
    ),
    "environment": ("$schema", "name", "version", "image", "conda_file"),
    "model": ("$schema", "name", "path", "description"),
}


@dataclass
class Conversion:
    """What one conversion produces: `docs` (endpoint, deployment, environment, model: the YAML
    mappings, an absent kind left out), `notes` per document (the header's list), `extra` texts to
    write beside them (a conda file), `trees` ({folder: [(source file, path inside)]}, the
    multi-model folder), and `files` ({document kind: file name})."""

    service: str
    out: Path
    docs: dict[str, dict] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(
        default_factory=lambda: {"endpoint": [], "deployment": [], "environment": [], "model": []}
    )
    extra: dict[str, str] = field(default_factory=dict)
    trees: dict[str, list[tuple[Path, str]]] = field(default_factory=dict)
    boundary: str | None = None  # the project's boundary (mlctl.boundary): no file beyond it is copied

    @property
    def files(self) -> dict[str, str]:
        return {kind: f"{self.service}-{'blue-deployment' if kind == 'deployment' else kind}.yml" for kind in self.docs}

    def rel(self, path: Path) -> str:
        """A path as the new files name it: relative to the output folder, with a trailing / for a folder."""
        r = os.path.relpath(path, self.out)
        return r + "/" if path.is_dir() else r


def put(doc: dict, dotted: str, value: Any) -> None:
    """Set `doc[a][b]... = value` for dotted 'a.b...', making the mappings on the way (None: nothing)."""
    if value is None:
        return
    *parents, last = dotted.split(".")
    for p in parents:
        doc = doc.setdefault(p, {})
    doc[last] = value


# --- copy transforms: (value, conversion) -> value ---------------------------------------------


TRANSFORMS: dict[str, Callable[[Any, Conversion], Any]] = {
    "version": lambda v, c: str(v),
    "strings": lambda v, c: {
        str(k): ("true" if x is True else "false" if x is False else str(x)) for k, x in v.items()
    },
}


# --- derived targets: (v1, models, conversion) -> value ----------------------------------------


def _request_timeout(v1: V1Input, c: Conversion) -> int | None:
    """scoringTimeoutMs (at most MAX_TIMEOUT_MS), or v1's AKS default when an AKS service had none."""
    value = v1.value(DC, "scoringTimeoutMs")
    if value is None:
        return V1_AKS_TIMEOUT_MS if v1.compute == "aks" else None
    if value > MAX_TIMEOUT_MS:
        c.notes["deployment"].append(
            f"scoringTimeoutMs {value} is more than current deployments allow: request_timeout_ms is {MAX_TIMEOUT_MS}"
        )
        return MAX_TIMEOUT_MS
    return value


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _code(v1: V1Input, c: Conversion) -> tuple[str, str]:
    """(code folder, scoring script) in v1's layout. With sourceDirectory, the folder SERVICE-app/ holding
    a copy of it under its own name (v1 ran the script with the source directory inside the working
    folder) and the dependencies outside it; without, the entry script's own folder, or SERVICE-app/
    holding the script and its dependencies when some are outside that folder."""
    script, src = v1.in_source("entryScript"), v1.source_dir()
    deps = v1.dependencies()
    if src is None and all(_inside(d, script.parent) for d in deps):
        return c.rel(script.parent), script.name
    app = f"{c.service}-app"
    if src is not None:
        tree = _files(src, c.boundary, v1.ic.error("", "", "sourceDirectory"))  # its files under its own name
        scoring = f"{src.name}/{os.path.relpath(script, src)}"
        c.notes["deployment"].append(
            f"{v1.ic.shown} sourceDirectory: copied to {app}/{src.name}/; {app}/ is the code folder and the "
            f"working folder, as in v1 (./{src.name}/... paths resolve): edit the code there"
        )
    else:
        tree, scoring = [(script, script.name)], script.name
    base = src if src is not None else script.parent
    outside = [d for d in deps if not _inside(d, base)]
    for d in outside:
        tree += _files(d, c.boundary, v1.ic.error("", "", "dependencies"))
    if outside:
        c.notes["deployment"].append(
            f"{v1.ic.shown} dependencies: "
            + ", ".join(os.path.relpath(d, v1.ic.base) for d in outside)
            + f" copied into {app}/ under their own names"
        )
    c.trees[app] = tree
    return app + "/", scoring


MAX_CONDA_DEPTH = 16  # a conda specification is 4 levels deep (mapping, dependencies, pip, item)


def depth(value: Any) -> int:
    """Pure: how deeply lists and mappings nest in `value` (a scalar is 0), counted without recursion."""
    deepest, todo = 0, [(value, 0)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, (list, dict)):
            level += 1
            deepest = max(deepest, level)
            todo.extend((v, level) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _conda_file(v1: V1Input, c: Conversion) -> str | None:
    if v1.uses_environment():
        deps = v1.ic.get("environment.python.condaDependencies")
        if deps is not None:
            if depth(deps) > MAX_CONDA_DEPTH:
                raise MlctlError(
                    v1.ic.error(
                        f"environment.python.condaDependencies is nested more than {MAX_CONDA_DEPTH} levels deep",
                        "A conda specification is a mapping of name, channels and dependencies (strings, and one "
                        "`pip` list of strings); write it so.",
                        "environment.python.condaDependencies",
                    )
                )
            name = f"{c.service}-env/conda.yml"
            c.extra[name] = (
                "# written by mlctl convert v1 from environment.python.condaDependencies of "
                f"{v1.ic.shown}\n" + yaml.safe_dump(deps, sort_keys=False)
            )
            return name
        path = v1.in_source("environment.python.condaDependenciesFile")
    else:
        path = v1.in_source("condaFile")
    return c.rel(path) if path else None


def _image(v1: V1Input, c: Conversion) -> str | None:
    if v1.uses_environment():
        return v1.ic.get("environment.docker.baseImage")
    image, registry = v1.ic.get("baseImage"), v1.ic.get("baseImageRegistry.address")
    if image and registry and not image.startswith(registry.rstrip("/") + "/"):
        image = f"{registry.rstrip('/')}/{image}"
    return image


def _instance_type(v1: V1Input, c: Conversion) -> str:
    def want(name, default=0):
        return v1.value(DC, f"containerResourceRequirements.{name}", default)

    cpus = max(want("cpu", V1_DEFAULT_CPU), want("cpuLimit"))
    memory = max(want("memoryInGB", V1_DEFAULT_MEMORY_GB), want("memoryInGBLimit"))
    gpu_default = 1 if v1.ic.get("enableGpu") is True and not v1.ignored("enableGpu") else 0
    gpus = max(want("gpu", gpu_default), v1.value(DC, "gpuCores", 0))
    size = smallest_fitting(cpus, memory, gpus)
    if size is None:
        raise MlctlError(
            Diagnostic(
                f"no Azure instance type holds {cpus} CPUs, {memory} GB and {gpus} GPUs",
                "Lower containerResourceRequirements to what one instance needs (scale out with numReplicas).",
                file=v1.dc.shown if v1.dc else None,
                field="containerResourceRequirements",
            )
        )
    return size.name


def _autoscaled(v1: V1Input) -> bool:
    """v1 AKS autoscales when autoScaler.autoscaleEnabled says so, and by default when numReplicas is absent."""
    if v1.compute != "aks":
        return False
    return v1.value(DC, "autoScaler.autoscaleEnabled", v1.value(DC, "numReplicas") is None)


def _instance_count(v1: V1Input, c: Conversion) -> int:
    replicas = v1.value(DC, "numReplicas")
    if replicas is not None:
        return max(replicas, 1)
    return max(v1.value(DC, "autoScaler.minReplicas", 1), 1) if _autoscaled(v1) else 1


def _scale_settings(v1: V1Input, c: Conversion) -> dict | None:
    if not _autoscaled(v1):
        if v1.dc is not None and v1.dc.has("autoScaler"):
            c.notes["deployment"].append(
                f"{v1.dc.shown} autoScaler: autoscaleEnabled is false, so v1 did not autoscale"
            )
        return None
    settings = {"type": "target_utilization"}
    for v1_name, name in (
        ("minReplicas", "min_instances"),
        ("maxReplicas", "max_instances"),
        ("targetUtilization", "target_utilization_percentage"),
        ("refreshPeriodInSeconds", "polling_interval"),
    ):
        settings[name] = v1.value(DC, f"autoScaler.{v1_name}", AUTOSCALE_DEFAULTS[name])
    return settings


def unauthenticated(v1: V1Input) -> bool:
    """Did v1 serve the service without authentication? authEnabled false (the aci default, and a
    local service has no auth at all), and no token auth."""
    if v1.value(DC, "tokenAuthEnabled") is True:
        return False
    default = v1.compute == "aks"
    return not v1.value(DC, "authEnabled", default)


def _auth_mode(v1: V1Input, c: Conversion) -> str:
    if v1.value(DC, "tokenAuthEnabled") is True:
        return "aml_token"
    if unauthenticated(v1):
        c.notes["endpoint"].append(
            f"v1 served {c.service} without authentication (authEnabled: false); current endpoints always "
            f"authenticate: auth_mode is key, send the key (`mlctl keys {c.service}`) as 'Authorization: Bearer KEY'"
        )
    return "key"


DERIVED: dict[str, Callable[[V1Input, Conversion], Any]] = {
    "deployment.code_configuration": lambda v1, c: dict(zip(("code", "scoring_script"), _code(v1, c))),
    "environment.conda_file": _conda_file,
    "environment.image": _image,
    "environment.name": lambda v1, c: sanitized(v1.ic.get("environment.name", "")) or f"{c.service}-env",
    "deployment.instance_type": _instance_type,
    "deployment.instance_count": _instance_count,
    "deployment.scale_settings": _scale_settings,
    "endpoint.auth_mode": _auth_mode,
    "deployment.request_settings.request_timeout_ms": _request_timeout,
}


def _skipped(v1: V1Input, row: V1Field) -> str | None:
    """Why a present field is not converted: its row's note, or v1's own rule that ignored it."""
    if row.file == IC and v1.ignored(row.path):
        return "v1 ignores it when an environment block is given"
    return None if row.carried or row.target == "" else row.note


def _skeletons(c: Conversion, v1: V1Input, has_environment: bool) -> None:
    c.docs["endpoint"] = {"$schema": SCHEMA.format("managedOnlineEndpoint"), "name": c.service}
    c.docs["deployment"] = {
        "$schema": SCHEMA.format("managedOnlineDeployment"),
        "name": DEPLOYMENT,
        "endpoint_name": c.service,
    }
    if has_environment:
        c.docs["environment"] = {"$schema": SCHEMA.format("environment")}


def _has_environment(v1: V1Input) -> bool:
    return v1.uses_environment() or v1.ic.has("condaFile") or v1.ic.has("baseImage")


def _model(c: Conversion, models: list[ModelArg]) -> str:
    """The deployment's `model` field; a model YAML (and, for several, the NAME/VERSION folder) as needed."""
    if len(models) == 1 and models[0].registered:
        return f"azureml:{models[0].name}:{models[0].version}"
    if len(models) == 1:
        m = models[0]
        c.docs["model"] = {"$schema": SCHEMA.format("model"), "name": m.name, "path": c.rel(m.path)}
        return f"azureml:{m.name}@latest"
    folder = f"{c.service}-models"
    c.trees[folder] = [
        (src, f"{m.name}/{m.version or '1'}/{inside}") for m in models for src, inside in _files(m.path, c.boundary)
    ]
    c.docs["model"] = {
        "$schema": SCHEMA.format("model"),
        "name": folder,
        "path": folder + "/",
        "description": "v1 models " + ", ".join(m.given for m in models) + ", laid out NAME/VERSION/ "
        "as v1 deployed several models (Model.get_model_path(NAME) finds each)",
    }
    return f"azureml:{folder}@latest"


def _files(path: Path, boundary: str | None, where: Diagnostic | None = None) -> list[tuple[Path, str]]:
    """A model's files and their path inside its NAME/VERSION folder: a file by its name, a folder's
    files under the folder's name (a registered folder keeps its name, in v1 as now). MlctlError (at
    `where`'s file, line and field) for a symbolic link out of the project's `boundary`, or a loop."""
    from mlctl.digests import LinkRefused, list_files

    if not path.is_dir():
        return [(path, path.name)]
    try:
        listed = list_files(path, boundary=boundary)
    except LinkRefused as e:
        what = "out of the project" if e.why == "out" else "to a folder that holds it"
        at = {"file": where.file, "line": where.line, "field": where.field} if where else {}
        raise MlctlError(
            Diagnostic(
                f"{e.link} is a symbolic link {what} ({e.target}); mlctl copies nothing beyond {boundary}",
                "Replace the link with the files it should hold, or point it inside the project.",
                **at,
            )
        ) from None
    return [(Path(full), f"{path.name}/{rel}") for rel, full in sorted(listed.items())]


def convert(v1: V1Input, models: list[ModelArg], service: str, out: Path) -> Conversion:
    """Build every document of the conversion (no I/O but reading the model folders' listings)."""
    c = Conversion(service, out, boundary=v1.boundary)
    for m in models:
        if v1.boundary and not m.registered and not is_inside(os.path.realpath(m.path), v1.boundary):
            raise MlctlError(
                Diagnostic(
                    f"the model {m.given} is outside the project ({m.path}): mlctl reads nothing beyond "
                    f"{describe(v1.boundary)}",
                    "Give a model path (-m) inside the project.",
                )
            )
    has_environment = _has_environment(v1)
    _skeletons(c, v1, has_environment)
    for row in TABLE:
        f = v1.file(row.file)
        if f is None or not f.has(row.path):
            continue
        why = _skipped(v1, row)
        doc = row.target.split(".")[0] if row.target else ""
        if why:
            c.notes[row.where].append(f"{f.shown} {row.path}: {why}")
        elif row.how == "copy" and row.target and (doc != "environment" or has_environment):
            value = f.get(row.path)
            put(
                c.docs[doc],
                row.target.partition(".")[2],
                TRANSFORMS[row.transform](value, c) if row.transform else value,
            )
    put(c.docs["deployment"], "model", _model(c, models))
    for target, compute in DERIVED.items():
        doc, _, name = target.partition(".")
        if doc in c.docs:
            put(c.docs[doc], name, compute(v1, c))
    if has_environment:
        put(c.docs["deployment"], "environment", f"azureml:{c.docs['environment']['name']}@latest")
    c.docs["endpoint"]["traffic"] = {DEPLOYMENT: 100}
    c.docs = {kind: _ordered(doc, ORDER[kind]) for kind, doc in c.docs.items()}
    return c


def _ordered(doc: dict, order: tuple[str, ...]) -> dict:
    """Pure: `doc` with its keys in the order the Azure examples write them (others after, as they came)."""
    return dict(sorted(doc.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))


def header(c: Conversion, kind: str, sources: str) -> str:
    """Pure: the comment at the top of one generated file: where it came from, and what was not carried over."""
    lines = [f"Converted by `mlctl convert v1` from {sources}."]
    notes = c.notes[kind]
    if notes:
        lines.append("Not carried over, or changed:")
        lines += [f"  - {n}" for n in notes]
    wrapped = [
        w
        for line in lines
        for w in textwrap.wrap(line, 98, subsequent_indent="    " if line.startswith("  -") else "  ")
    ]
    return "".join(f"# {w}\n" for w in wrapped)


def render(c: Conversion, sources: str) -> dict[str, str]:
    """Pure: {file name: text} of every generated file (the documents with their headers, and the extra files)."""
    texts = {
        c.files[kind]: header(c, kind, sources) + yaml.safe_dump(doc, sort_keys=False, width=1000)
        for kind, doc in c.docs.items()
    }
    texts.update(c.extra)
    return texts
