"""Normalizing: one validated document of either Azure form -> specs (defaults filled, paths resolved and checked)."""

from __future__ import annotations

import os
from pathlib import Path

from mlctl import scalesettings
from mlctl.errors import Diagnostic
from mlctl.sizing import read_resources
from mlctl.serversettings import SERVER_VARIABLES, SettingsError, parse_settings
from mlctl.schemas.documents import Document, format_field
from mlctl.schemas.specs import (
    DeploymentSpec,
    EndpointSpec,
    EnvSpec,
    ModelSpec,
    Specs,
    Where,
    check_existing,
    joined,
    parse_ref,
    to_str_map,
    to_version,
)
from mlctl.schemas.validate import apply_defaults, find_ignored, load_schema, validate_document


def _named_path_problems(doc: Document, path: tuple, raw: dict) -> list[Diagnostic]:
    """The missing files and folders a deployment mapping names (code, model path, conda file), where the
    fields have the right type: checked even when the document has other errors."""
    out: list[Diagnostic] = []
    cc, model, env = raw.get("code_configuration"), raw.get("model"), raw.get("environment")
    code = cc.get("code") if isinstance(cc, dict) else None
    if isinstance(code, dict):
        code, at = code.get("local_path"), ("code_configuration", "code", "local_path")
    else:
        at = ("code_configuration", "code")
    if isinstance(code, str) and code:
        check_existing(doc, path + at, code, out, want_dir=True)
    for key in ("path", "local_path"):
        if isinstance(model, dict) and isinstance(model.get(key), str) and model[key]:
            check_existing(doc, path + ("model", key), model[key], out)
    conda = env.get("conda_file") if isinstance(env, dict) else None
    if isinstance(conda, str) and conda:
        check_existing(doc, path + ("environment", "conda_file"), conda.removeprefix("file:"), out, want_dir=False)
    return out


def normalize_model(doc, path, raw, full, default_name, diags) -> ModelSpec | None:
    """A model mapping (standalone YAML at path=() or inline in a deployment) -> ModelSpec."""
    if "path" in raw and "local_path" in raw:
        diags.append(
            Diagnostic(
                "both 'path' and 'local_path' are set",
                "Keep 'path' (local_path is the 2021 name).",
                **doc.at(path + ("local_path",)),
            )
        )
        return None
    key = "path" if "path" in raw else "local_path" if "local_path" in raw else None
    if key is None:
        diags.append(
            Diagnostic(
                "missing required field 'path'" + (" in 'model'" if path else ""),
                "Add 'path:' naming the model file or folder.",
                **doc.at(path, field=_field(path, "path")),
            )
        )
        return None
    p = check_existing(doc, path + (key,), raw[key], diags)
    return ModelSpec(
        name=str(full.get("name") or default_name),
        version=to_version(full.get("version")),
        path=p,
        type=full["type"],
        description=full["description"],
        tags=to_str_map(full["tags"]),
        where=Where(doc, path),
        ignored=find_ignored(load_schema("model"), "model", raw),
    )


def normalize_environment(doc, path, raw, full, default_name, diags) -> EnvSpec:
    """An environment mapping (standalone YAML or inline) -> EnvSpec; both image forms are accepted."""
    conda = None
    if "conda_file" in raw:
        conda = check_existing(doc, path + ("conda_file",), raw["conda_file"], diags, want_dir=False)
    image = full.get("image") or (full.get("docker") or {}).get("image")
    return EnvSpec(
        name=str(full.get("name") or default_name),
        version=to_version(full.get("version")),
        conda_file=conda,
        image=image,
        description=full["description"],
        tags=to_str_map(full["tags"]),
        where=Where(doc, path),
        ignored=find_ignored(load_schema("environment"), "environment", raw),
        build=_build_context(doc, path, raw.get("build"), diags),
        inference_config=_inference_config(doc, path, raw.get("inference_config"), image, diags),
    )


def _inference_config(doc, path, config, image, diags) -> dict | None:
    """A custom container's routes ({liveness, readiness, scoring: {port, path}}), checked beyond the
    schema: it needs an image (or a build) to run, and mlctl forwards to one port (the scoring route's)."""
    if not isinstance(config, dict):
        return None
    routes = {k.removesuffix("_route"): dict(v) for k, v in config.items() if isinstance(v, dict)}
    ports = {r.get("port") for r in routes.values()}
    if len(ports) > 1:
        diags.append(
            Diagnostic(
                "the routes of inference_config use different ports ("
                + ", ".join(f"{k} {r.get('port')}" for k, r in routes.items())
                + "): mlctl reaches a custom container on one port",
                "Serve the liveness, readiness and scoring routes on the scoring route's port.",
                **doc.at(path + ("inference_config",)),
            )
        )
        return None
    return routes


def _build_context(doc, path, build, diags) -> tuple[Path, str] | None:
    """(context folder, Dockerfile path) of an environment's `build:`, checked: the folder exists and
    holds the Dockerfile. None (with an error in `diags` when it is unusable) when there is none."""
    if not isinstance(build, dict) or not isinstance(build.get("path"), str):
        return None
    folder = check_existing(doc, path + ("build", "path"), build["path"], diags, want_dir=True)
    dockerfile = build.get("dockerfile_path") or "Dockerfile"
    if folder.is_dir() and not (folder / dockerfile).is_file():
        key = "dockerfile_path" if "dockerfile_path" in build else "path"
        diags.append(
            Diagnostic(
                f"the build context {build['path']} has no {dockerfile} (looked for {folder / dockerfile})",
                "Add the Dockerfile to the folder, or name it with build.dockerfile_path (relative to build.path).",
                **doc.at(path + ("build", key)),
            )
        )
        return None
    return (folder, dockerfile) if folder.is_dir() else None


def normalize_deployment(
    doc: Document, path: tuple, raw: dict, full: dict, endpoint: str, diags: list[Diagnostic]
) -> DeploymentSpec | None:
    """A deployment mapping of either form -> DeploymentSpec (references left unresolved)."""
    where, name, errors = Where(doc, path), full["name"], []
    model = None
    if "model" not in raw:
        errors.append(
            Diagnostic(
                "missing required field 'model'",
                "Add 'model:' (path: FOLDER, or azureml:NAME:VERSION).",
                **doc.at(path, field=_field(path, "model")),
            )
        )
    elif isinstance(raw["model"], str):
        model = parse_ref("model", raw["model"], Where(doc, path + ("model",)), errors)
    else:
        model = normalize_model(doc, path + ("model",), raw["model"], full["model"], f"{endpoint}-{name}-model", errors)
    env = None
    if isinstance(raw.get("environment"), str):
        env = parse_ref("environment", raw["environment"], Where(doc, path + ("environment",)), errors)
    elif isinstance(raw.get("environment"), dict):
        env = normalize_environment(
            doc, path + ("environment",), raw["environment"], full["environment"], f"{endpoint}-{name}-env", errors
        )
    code = script = None
    cc = raw.get("code_configuration")
    if cc is not None:  # without it: an MLflow model's no-code deployment, else an error (build_deployment)
        code_value = cc["code"] if isinstance(cc["code"], str) else cc["code"]["local_path"]
        code_path = path + ("code_configuration", "code") + (() if isinstance(cc["code"], str) else ("local_path",))
        code = check_existing(doc, code_path, code_value, errors, want_dir=True)
        script = cc["scoring_script"]
        target = joined(str(code), script)
        if os.path.isdir(code) and (not is_below(target, code) or not os.path.isfile(target)):
            errors.append(
                Diagnostic(
                    f"scoring_script '{script}' is not a file in the code folder {code_value}",
                    f"Put {script} in {code} or fix 'scoring_script' (it is relative to the code folder).",
                    **doc.at(path + ("code_configuration", "scoring_script")),
                )
            )
    count = raw.get("instance_count")
    legacy_count = (raw.get("scale_settings") or {}).get("instance_count")
    if count is not None and legacy_count is not None and count != legacy_count:
        errors.append(
            Diagnostic(
                f"instance_count {count} contradicts scale_settings.instance_count {legacy_count}",
                "Keep one of them (instance_count is the current form).",
                **doc.at(path + ("scale_settings", "instance_count")),
            )
        )
    sizing, problems = read_resources(raw.get("resources"))
    for problem in problems:
        errors.append(Diagnostic(problem.message, problem.hint, **doc.at(path + ("resources",) + problem.field)))
    autoscale = scalesettings.autoscale_of(raw.get("scale_settings"))
    for key, summary, hint in scalesettings.range_errors(autoscale):
        errors.append(Diagnostic(summary, hint, **doc.at(path + ("scale_settings", key))))
    errors.extend(_server_variable_errors(doc, path, full["environment_variables"]))
    errors.extend(_variable_size_errors(doc, path, full["environment_variables"]))
    diags.extend(errors)
    if errors:
        return None
    settings = {
        "instance_count": next(c for c in (count, legacy_count, full["instance_count"]) if c is not None),
        "request_settings": full["request_settings"],
        "liveness_probe": full["liveness_probe"],
        "readiness_probe": full["readiness_probe"],
        "environment_variables": to_str_map(full["environment_variables"]),
        "description": full["description"],
        "tags": to_str_map(full["tags"]),
        **({"resources": sizing.to_json()} if raw.get("resources") is not None else {}),
        **({"scale_settings": autoscale} if autoscale else {}),
    }
    own = {k: v for k, v in raw.items() if k not in ("model", "environment")}
    return DeploymentSpec(
        endpoint,
        name,
        model,
        code,
        script,
        env,
        settings,
        where,
        find_ignored(load_schema("deployment"), "deployment", own),
        raw.get("instance_type"),
        raw.get("type") == "kubernetes" or "kubernetesonlinedeployment" in str(doc.get(("$schema",), "")).lower(),
    )


def _server_variable_errors(doc: Document, path: tuple, variables) -> list[Diagnostic]:
    """The scoring server's own variables among `environment_variables` (WORKER_COUNT, ...), checked now as
    every instance would check them when it starts (and exit 2)."""
    out = []
    for name in (n for n in SERVER_VARIABLES if n in variables):
        try:
            parse_settings([], {name: str(variables[name])})
        except SettingsError as exc:
            out.append(
                Diagnostic(
                    f"environment_variables.{name}: {exc}",
                    "Fix the value; the scoring server of every instance would refuse to start "
                    "with it (see docs/server.md).",
                    **doc.at(path + ("environment_variables", name)),
                )
            )
    return out


MAX_VARIABLE_BYTES = 32768  # one value, in UTF-8 (the kernel takes 128 KiB for NAME=VALUE: room is left)
MAX_VARIABLES_BYTES = 512 * 1024  # all of a deployment's NAME=VALUE strings (a process's arguments and
# environment share 2 MiB or less)


def _variable_size_errors(doc: Document, path: tuple, variables) -> list[Diagnostic]:
    """Pure: values longer than MAX_VARIABLE_BYTES, or variables together over MAX_VARIABLES_BYTES, counted in
    UTF-8 bytes as the kernel counts them when it starts an instance (a character may take four)."""
    out, total = [], 0
    for name, value in to_str_map(variables).items():
        size = len(value.encode("utf-8", "surrogatepass"))
        total += len(name) + 2 + size
        if size > MAX_VARIABLE_BYTES:
            out.append(
                Diagnostic(
                    f"environment_variables.{name} is {size} bytes long in UTF-8 ({len(value)} characters); "
                    f"at most {MAX_VARIABLE_BYTES} bytes",
                    "An instance's environment must fit what the OS passes to a process; put large values "
                    "in a file of the code folder and read it in init().",
                    **doc.at(path + ("environment_variables", name)),
                )
            )
    if total > MAX_VARIABLES_BYTES and not out:
        out.append(
            Diagnostic(
                f"environment_variables are {total} bytes together in UTF-8; at most {MAX_VARIABLES_BYTES} bytes",
                "Put large values in a file of the code folder and read it in init().",
                **doc.at(path + ("environment_variables",)),
            )
        )
    return out


def is_below(path: Path, folder: Path) -> bool:
    """Pure: is the normalized absolute `path` strictly inside `folder` (as `folder in path.parents`)?"""
    top = str(folder)
    return str(path).startswith(top if top.endswith(os.sep) else top + os.sep) and str(path) != top


def _field(path: tuple, name: str) -> str:
    return format_field(path + (name,))


def add_document(doc: Document, kind: str, specs: Specs, diags: list[Diagnostic]) -> None:
    """Validate one document and add what it declares to `specs`; problems go to `diags`."""
    raw = doc.data
    if kind == "endpoint" and isinstance(raw.get("auth_mode"), str):
        raw["auth_mode"] = raw["auth_mode"].lower()  # Azure reads it case-insensitively ('Key' in its examples)
    problems = validate_document(doc, kind)
    diags.extend(problems)
    # An unknown field does not change the shape of the rest: keep checking (files, references)
    # so all problems come out in one run. Any other schema error stops this document here.
    if any(not p.summary.startswith("unknown field") for p in problems):
        # the document is not read further; the files it names are still checked, so that all of a file's
        # errors come out in one run (a bad name no longer hides a wrong code path, nor the other way)
        named = [((), raw)] if kind == "deployment" else []
        if kind == "endpoint" and isinstance(raw.get("deployments"), list):
            named = [(("deployments", i), item) for i, item in enumerate(raw["deployments"]) if isinstance(item, dict)]
        for at, item in named:
            diags.extend(_named_path_problems(doc, at, item))
        if kind == "deployment":
            endpoint = raw.get("endpoint_name")
            specs.mark_invalid(kind, raw, endpoint if isinstance(endpoint, str) else None)
        else:
            specs.mark_invalid(kind, raw)
        items = raw.get("deployments") if kind == "endpoint" else None
        for item in items if isinstance(items, list) else []:
            specs.mark_invalid("deployment", item, str(raw.get("name")))
        return
    full = apply_defaults(load_schema(kind), kind, raw)
    if kind == "endpoint":
        name = full["name"]
        specs.endpoints.append(
            EndpointSpec(
                name,
                full["auth_mode"],
                full["port"],
                full["description"],
                to_str_map(full["tags"]),
                dict(full["traffic"]),
                dict(full["mirror_traffic"]),
                Where(doc),
                find_ignored(load_schema("endpoint"), "endpoint", raw),
            )
        )
        for i, item in enumerate(raw.get("deployments") or []):
            at = ("deployments", i)
            if item.get("endpoint_name", name) != name:
                diags.append(
                    Diagnostic(
                        f"deployment '{item['name']}' inside endpoint '{name}' names endpoint_name "
                        f"'{item['endpoint_name']}'",
                        "Remove endpoint_name from inline deployments.",
                        **doc.at(at + ("endpoint_name",)),
                    )
                )
                specs.mark_invalid("deployment", item, name)
                continue
            spec = normalize_deployment(doc, at, item, full["deployments"][i], name, diags)
            if spec:
                specs.deployments.append(spec)
            else:
                specs.mark_invalid("deployment", item, name)
    elif kind == "deployment":
        if "endpoint_name" not in raw:
            diags.append(
                Diagnostic(
                    "missing required field 'endpoint_name'",
                    "Add 'endpoint_name:' naming the endpoint this deployment belongs to.",
                    **doc.at((), field="endpoint_name"),
                )
            )
            specs.mark_invalid("deployment", raw, None)
            return
        spec = normalize_deployment(doc, (), raw, full, raw["endpoint_name"], diags)
        if spec:
            specs.deployments.append(spec)
        else:
            specs.mark_invalid("deployment", raw, raw["endpoint_name"])
    elif kind == "model":
        spec = normalize_model(doc, (), raw, full, raw["name"], diags)
        if spec:
            specs.models.append(spec)
        else:
            specs.mark_invalid("model", raw)
    else:
        specs.environments.append(normalize_environment(doc, (), raw, full, raw["name"], diags))
