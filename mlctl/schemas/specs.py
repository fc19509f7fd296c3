"""Specs: validated documents of either Azure form normalized into one shape per kind (no hashing yet)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlctl.errors import Diagnostic
from mlctl.schemas.documents import Document
from mlctl.schemas.validate import apply_defaults, ignored_fields, property_schema, schema, schema_diagnostics

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
    code: Path
    scoring_script: str
    environment: EnvSpec | Ref | None
    settings: dict            # instance_count, request_settings, probes, environment_variables, description, tags
    where: Where
    ignored: list = field(default_factory=list)


@dataclass
class Specs:
    """Everything the documents declare, plus the names of those that failed validation (no cascades)."""

    endpoints: list[EndpointSpec] = field(default_factory=list)
    deployments: list[DeploymentSpec] = field(default_factory=list)
    models: list[ModelSpec] = field(default_factory=list)
    environments: list[EnvSpec] = field(default_factory=list)
    incomplete: bool = False  # some config file could not be parsed: unknown names may be declared there
    invalid: dict[str, set] = field(default_factory=lambda: {k: set() for k in ("endpoint", "model", "environment",
                                                                                "deployment")})

    def mark_invalid(self, kind: str, data: Any, endpoint: str | None = None) -> None:
        """Remember the name of a document that failed, so references to it raise no second error."""
        name = data.get("name") if isinstance(data, dict) else None
        if isinstance(name, str):
            self.invalid[kind].add((endpoint, name) if kind == "deployment" else name)


def _str_map(values: dict) -> dict:
    """Pure: YAML scalars as the strings a process environment or a tag holds (true -> 'true')."""
    return {str(k): (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in (values or {}).items()}


def _version(value: Any) -> str | None:
    return None if value is None else str(value)


def local_path(doc: Document, value: str) -> Path:
    """Pure: a path named in `doc`, absolute, relative to the doc's folder; the 2021 'file:' prefix dropped."""
    value = os.path.expanduser(value.removeprefix("file:"))
    return Path(os.path.normpath(os.path.join(doc.base, value)))


def parse_ref(kind: str, text: str, where: Where, diags: list[Diagnostic]) -> Ref | None:
    """A reference string -> Ref, or None with an error explaining the accepted forms."""
    m = REF.match(text.strip())
    forms = f"'azureml:NAME:VERSION', 'NAME:VERSION' or 'azureml:NAME@latest'"
    if text.startswith(("azureml:/", "azureml://")) or "/" in text and ":" in text:
        diags.append(Diagnostic(f"{kind} reference '{text}' names a cloud asset, which mlctl cannot fetch",
                                f"Define the {kind} in a {kind} YAML in the project and refer to it as {forms}.",
                                **where.at()))
        return None
    if not m or not (m["version"] or m["label"]):
        mapping = "model: {path: FOLDER}" if kind == "model" else "environment: {conda_file: FILE}"
        diags.append(Diagnostic(f"{kind} '{text}' is neither a reference with a version nor a mapping",
                                f"Write {forms} to refer to a {kind} YAML, or '{mapping}' to define it here.",
                                **where.at()))
        return None
    if m["label"] and m["label"] != "latest":
        diags.append(Diagnostic(f"unsupported label '@{m['label']}' in {kind} reference '{text}'",
                                "mlctl knows the label '@latest' only; name a version instead.", **where.at()))
        return None
    return Ref(kind, m["name"], m["version"], text, where)


def _existing(doc, path_in_doc, value, diags, want_dir=None) -> Path:
    p = local_path(doc, value)
    what = {True: "folder", False: "file", None: "file or folder"}[want_dir]
    if not p.exists():
        diags.append(Diagnostic(f"{what} not found: {value} (resolved to {p})",
                                f"Paths are relative to the file that names them ({doc.display}); fix the path "
                                "or create the " + what + ".", **doc.at(path_in_doc)))
    elif want_dir is True and not p.is_dir():
        diags.append(Diagnostic(f"{value} is a file, expected a folder", "Name the folder that holds the code.",
                                **doc.at(path_in_doc)))
    elif want_dir is False and not p.is_file():
        diags.append(Diagnostic(f"{value} is a folder, expected a file", "Name the file itself.", **doc.at(path_in_doc)))
    return p


def model_spec(doc, path, raw, full, default_name, diags) -> ModelSpec | None:
    """A model mapping (standalone YAML at path=() or inline in a deployment) -> ModelSpec."""
    if "path" in raw and "local_path" in raw:
        diags.append(Diagnostic("both 'path' and 'local_path' are set", "Keep 'path' (local_path is the 2021 name).",
                                **doc.at(path + ("local_path",))))
        return None
    key = "path" if "path" in raw else "local_path" if "local_path" in raw else None
    if key is None:
        diags.append(Diagnostic("missing required field 'path'" + (" in 'model'" if path else ""),
                                "Add 'path:' naming the model file or folder.", **doc.at(path, field=".".join(map(str, path + ("path",))))))
        return None
    p = _existing(doc, path + (key,), raw[key], diags)
    node, kind = (schema("model"), "model")
    return ModelSpec(name=str(full.get("name") or default_name), version=_version(full.get("version")), path=p,
                     type=full["type"], description=full["description"], tags=_str_map(full["tags"]),
                     where=Where(doc, path), ignored=ignored_fields(node, kind, raw))


def env_spec(doc, path, raw, full, default_name, diags) -> EnvSpec:
    """An environment mapping (standalone YAML or inline) -> EnvSpec; both image forms are accepted."""
    conda = None
    if "conda_file" in raw:
        conda = _existing(doc, path + ("conda_file",), raw["conda_file"], diags, want_dir=False)
    image = full.get("image") or (full.get("docker") or {}).get("image")
    return EnvSpec(name=str(full.get("name") or default_name), version=_version(full.get("version")),
                   conda_file=conda, image=image, description=full["description"], tags=_str_map(full["tags"]),
                   where=Where(doc, path), ignored=ignored_fields(schema("environment"), "environment", raw))


def deployment_spec(doc: Document, path: tuple, raw: dict, full: dict, endpoint: str, diags) -> DeploymentSpec | None:
    """A deployment mapping of either form -> DeploymentSpec (references left unresolved)."""
    where, name, errors = Where(doc, path), full["name"], []
    model = None
    if "model" not in raw:
        errors.append(Diagnostic("missing required field 'model'", "Add 'model:' (path: FOLDER, or azureml:NAME:VERSION).",
                                 **doc.at(path, field=_field(path, "model"))))
    elif isinstance(raw["model"], str):
        model = parse_ref("model", raw["model"], Where(doc, path + ("model",)), errors)
    else:
        model = model_spec(doc, path + ("model",), raw["model"], full["model"], f"{endpoint}-{name}-model", errors)
    env = None
    if isinstance(raw.get("environment"), str):
        env = parse_ref("environment", raw["environment"], Where(doc, path + ("environment",)), errors)
    elif isinstance(raw.get("environment"), dict):
        env = env_spec(doc, path + ("environment",), raw["environment"], full["environment"],
                       f"{endpoint}-{name}-env", errors)
    code = script = None
    cc = raw.get("code_configuration")
    if cc is None:
        errors.append(Diagnostic("missing required field 'code_configuration'",
                                 "Add 'code_configuration: {code: FOLDER, scoring_script: score.py}'.",
                                 **doc.at(path, field=_field(path, "code_configuration"))))
    else:
        code_value = cc["code"] if isinstance(cc["code"], str) else cc["code"]["local_path"]
        code_path = path + ("code_configuration", "code") + (() if isinstance(cc["code"], str) else ("local_path",))
        code = _existing(doc, code_path, code_value, errors, want_dir=True)
        script = cc["scoring_script"]
        target = Path(os.path.normpath(code / script))
        if code.is_dir() and (code not in target.parents or not target.is_file()):
            errors.append(Diagnostic(
                f"scoring_script '{script}' is not a file in the code folder {cc['code'] if isinstance(cc['code'], str) else code_value}",
                f"Put {script} in {code} or fix 'scoring_script' (it is relative to the code folder).",
                **doc.at(path + ("code_configuration", "scoring_script"))))
    count = raw.get("instance_count")
    legacy_count = (raw.get("scale_settings") or {}).get("instance_count")
    if count is not None and legacy_count is not None and count != legacy_count:
        errors.append(Diagnostic(f"instance_count {count} contradicts scale_settings.instance_count {legacy_count}",
                                 "Keep one of them (instance_count is the current form).",
                                 **doc.at(path + ("scale_settings", "instance_count"))))
    diags.extend(errors)
    if errors:
        return None
    settings = {
        "instance_count": count if count is not None else legacy_count if legacy_count is not None else full["instance_count"],
        "request_settings": full["request_settings"],
        "liveness_probe": full["liveness_probe"],
        "readiness_probe": full["readiness_probe"],
        "environment_variables": _str_map(full["environment_variables"]),
        "description": full["description"],
        "tags": _str_map(full["tags"]),
    }
    own = {k: v for k, v in raw.items() if k not in ("model", "environment")}
    return DeploymentSpec(endpoint, name, model, code, script, env, settings, where,
                          ignored_fields(schema("deployment"), "deployment", own))


def _field(path: tuple, name: str) -> str:
    from mlctl.schemas.documents import dotted

    return dotted(path + (name,))


def add_document(doc: Document, kind: str, specs: Specs, diags: list[Diagnostic]) -> None:
    """Validate one document and add what it declares to `specs`; problems go to `diags`."""
    problems = schema_diagnostics(doc, kind)
    raw = doc.data
    diags.extend(problems)
    # An unknown field does not change the shape of the rest: keep checking (files, references)
    # so all problems come out in one run. Any other schema error stops this document here.
    if any(not p.summary.startswith("unknown field") for p in problems):
        if kind == "deployment":
            endpoint = raw.get("endpoint_name")
            specs.mark_invalid(kind, raw, endpoint if isinstance(endpoint, str) else None)
        else:
            specs.mark_invalid(kind, raw)
        items = raw.get("deployments") if kind == "endpoint" else None
        for item in items if isinstance(items, list) else []:
            specs.mark_invalid("deployment", item, str(raw.get("name")))
        return
    full = apply_defaults(schema(kind), kind, raw)
    if kind == "endpoint":
        name = full["name"]
        specs.endpoints.append(EndpointSpec(
            name, full["auth_mode"], full["port"], full["description"], _str_map(full["tags"]),
            dict(full["traffic"]), dict(full["mirror_traffic"]), Where(doc),
            ignored_fields(schema("endpoint"), "endpoint", raw)))
        for i, item in enumerate(raw.get("deployments") or []):
            at = ("deployments", i)
            if item.get("endpoint_name", name) != name:
                diags.append(Diagnostic(f"deployment '{item['name']}' inside endpoint '{name}' names endpoint_name "
                                        f"'{item['endpoint_name']}'", "Remove endpoint_name from inline deployments.",
                                        **doc.at(at + ("endpoint_name",))))
                continue
            spec = deployment_spec(doc, at, item, full["deployments"][i], name, diags)
            if spec:
                specs.deployments.append(spec)
            else:
                specs.mark_invalid("deployment", item, name)
    elif kind == "deployment":
        if "endpoint_name" not in raw:
            diags.append(Diagnostic("missing required field 'endpoint_name'",
                                    "Add 'endpoint_name:' naming the endpoint this deployment belongs to.",
                                    **doc.at((), field="endpoint_name")))
            specs.mark_invalid("deployment", raw, None)
            return
        spec = deployment_spec(doc, (), raw, full, raw["endpoint_name"], diags)
        if spec:
            specs.deployments.append(spec)
        else:
            specs.mark_invalid("deployment", raw, raw["endpoint_name"])
    elif kind == "model":
        spec = model_spec(doc, (), raw, full, raw["name"], diags)
        if spec:
            specs.models.append(spec)
        else:
            specs.mark_invalid("model", raw)
    else:
        specs.environments.append(env_spec(doc, (), raw, full, raw["name"], diags))
