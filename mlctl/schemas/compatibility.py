"""What mlctl does with each Azure YAML field: honoured, mapped, ignored with a note, or refused with why.

The answer comes from the tables the loader itself runs on: the JSON Schemas of this package (a field they
do not have is refused with file and line; `x-mlctl-ignored` marks a cloud-only field, accepted and reported
as ignored; `x-mlctl-honoured-by` names the runtimes that honour it all the same) and `NOTES`, one line per
field whose handling needs saying (read from another form, honoured with a difference). docs/compatibility.md
shows the table for every field of the corpus's files (tests/corpus keeps it equal). Adding a row for a new
field is one line in `NOTES`. Everything here is pure.
"""

from __future__ import annotations

from mlctl.schemas.validate import load_schema, resolve

HONOURED, MAPPED, IGNORED, REFUSED = "honoured", "mapped", "ignored", "refused"

# "KIND.dotted.field" -> (status, note). Fields not named here get their status from the schemas.
NOTES: dict[str, tuple[str, str]] = {
    "endpoint.auth_mode": (HONOURED, "key and aml_token; read case-insensitively, as Azure does ('Key')"),
    "endpoint.compute": (
        MAPPED,
        "azureml:NAME runs on the runtime the project file's computes: maps NAME to, else on the project's "
        "runtime (a note says so once)",
    ),
    "endpoint.deployments": (MAPPED, "the 2021 form's inline deployments: each read as a deployment YAML"),
    "endpoint.traffic": (HONOURED, "weights across the deployments; --set traffic.NAME=N as Azure's --all-traffic"),
    "endpoint.name": (HONOURED, "placeholders (<NAME>, {{NAME}}) filled with --var, or replaced with --set"),
    "deployment.endpoint_name": (HONOURED, "placeholders filled with --var, or replaced with --set"),
    "deployment.model": (HONOURED, "a mapping (path) or a reference NAME:VERSION to a model YAML of the project"),
    "deployment.model.local_path": (MAPPED, "the 2021 form's model path: read as model.path"),
    "deployment.model.path": (
        HONOURED,
        "registered in the local model store, under AZUREML_MODEL_DIR as Azure lays it",
    ),
    "deployment.model.type": (
        HONOURED,
        "mlflow_model without code_configuration and environment: Azure's no-code MLflow deployment (its "
        "environment from the model's conda.yaml, mlctl's MLflow scoring script; docs/mlflow.md)",
    ),
    "deployment.code_configuration.code.local_path": (MAPPED, "the 2021 form's code folder: read as code"),
    "deployment.environment.conda_file": (
        HONOURED,
        "installed from PyPI with uv (a 2021 'file:' prefix dropped); python 3.7 and later (3.6 refused at "
        "validate); numpy bounds that conda's builds carry kept (see 'Environments')",
    ),
    "deployment.environment.docker": (MAPPED, "the 2021 form's image block: docker.image read as image"),
    "deployment.environment.path": (
        IGNORED,
        "the 2021 form's build folder of a conda-only environment: nothing in it is read",
    ),
    "deployment.instance_type": (
        IGNORED,
        "cloud-only (VM size); honoured by the docker runtime as its containers' limits (after resources.limits); "
        "on a Kubernetes deployment it names a cluster's instance type, which mlctl has no table for: a note",
    ),
    "deployment.resources": (
        HONOURED,
        "requests and limits (cpu, memory, nvidia.com/gpu) as each instance's reservation and limit: cgroups on "
        "local and docker, Ray's placement on ray (see docs/resources.md)",
    ),
    "deployment.scale_settings.instance_count": (MAPPED, "the 2021 form's count: read as instance_count"),
    "deployment.scale_settings.scale_type": (
        MAPPED,
        "the 2021 form's scale type: manual is a fixed count, auto is type: target_utilization",
    ),
    "deployment.scale_settings.type": (
        HONOURED,
        "target_utilization: the endpoint host scales instances within [min_instances, max_instances] on local, "
        "docker and ray (Serve's replica count; docs/autoscaling.md)",
    ),
    **{
        f"deployment.scale_settings.{name}": (
            HONOURED,
            "with type: target_utilization (or the 2021 form's scale_type: auto) on local, docker and ray "
            "(docs/autoscaling.md); not used with a fixed count",
        )
        for name in ("min_instances", "max_instances", "target_utilization_percentage", "polling_interval")
    },
    "environment.conda_file": (HONOURED, "as a deployment's environment.conda_file"),
    "model.version": (HONOURED, "a registered version is immutable; {{MODEL_VERSION}} filled with --var"),
}


def _node(kind: str, dotted: str) -> tuple[dict, str] | None:
    """The resolved schema node of `dotted` in `kind`'s schema (following $refs across kinds), or None."""
    node, k = resolve(load_schema(kind), kind)
    for part in dotted.split("."):
        props = node.get("properties") or {}
        if part not in props:
            return None
        node, k = resolve(props[part], k)
    return node, k


def is_free_form(kind: str, dotted: str) -> bool:
    """Pure: are the members of this field the user's own names (tags, environment_variables, traffic)?"""
    found = _node(kind, dotted)
    if found is None:
        return False
    node = found[0]
    return (
        not node.get("properties")
        and isinstance(node.get("additionalProperties"), dict)
        or bool(node.get("propertyNames"))
    )


def field_status(kind: str, dotted: str) -> tuple[str, str]:
    """Pure: (status, note) of the field `dotted` of a `kind` document (deployment, endpoint, model,
    environment)."""
    if f"{kind}.{dotted}" in NOTES:
        return NOTES[f"{kind}.{dotted}"]
    found = _node(kind, dotted)
    if found is None:
        return REFUSED, "not a field of the Azure schema: an error naming file, line and field"
    node = found[0]
    if "x-mlctl-ignored" in node:
        honoured_by = node.get("x-mlctl-honoured-by")
        note = node["x-mlctl-ignored"] + (f"; honoured by the {', '.join(honoured_by)} runtime" if honoured_by else "")
        return IGNORED, note + " (reported by validate and plan)"
    return HONOURED, node.get("description", "")


def markdown_table(fields: dict[tuple[str, str], list[str]]) -> str:
    """Pure: the docs' table: {(kind, dotted field): [where it appears]} -> one row per field, by kind."""
    lines = ["| field | mlctl | note | in |", "|---|---|---|---|"]
    for (kind, dotted), where in sorted(fields.items()):
        status, note = field_status(kind, dotted)
        lines.append(f"| `{kind}.{dotted}` | {status} | {note} | {', '.join(sorted(set(where)))} |")
    return "\n".join(lines) + "\n"
