"""The v1 field table: every field of inferenceconfig.json and deploymentconfig.json, its type, the
compute types it belongs to, and the current field it becomes, or why it is not carried over.

This table is the one source of the field checks (`v1files`), of the conversion (`v1build`) and
of the table in docs/migrate-v1.md (`markdown_table`; a test keeps the page equal to it).

`target` names a field of a generated document as `DOC.dotted.path` (DOC: endpoint, deployment,
environment). `how` is `copy` (the value as it is, through `transform` when one is named) or
`derived` (the value comes from several v1 fields together: `v1build.DERIVED` computes it).
A row whose `target` is None is not carried over: when the field is present its `note` is listed
at the top of the generated file named by `where`. `target` "" means there is nothing to carry
(the field only selects what v1 did, and the current form needs no field for it).
"""

from __future__ import annotations

from dataclasses import dataclass

IC = "inferenceconfig.json"
DC = "deploymentconfig.json"
ALL = ("local", "aci", "aks")
CLOUD = ("aci", "aks")
AKS = ("aks",)
ACI = ("aci",)


@dataclass(frozen=True)
class V1Field:
    """One v1 field: `file` (IC or DC), `path` (dotted, camelCase as v1 reads it), `type` (a JSON
    type name, or "any"), where it goes (`target`, `how`, `transform`) or why not (`note`)."""

    file: str
    path: str
    type: str
    target: str | None
    note: str
    how: str = "copy"
    transform: str | None = None
    compute: tuple[str, ...] = ALL  # deploymentconfig.json: the computeTypes that have the field
    free_form: bool = False  # its members are the user's (tags, conda dependencies): not checked
    secret: bool = False  # a key, password or certificate: its value is never written or shown
    where: str = "deployment"  # the generated file whose header lists it when not carried over

    @property
    def carried(self) -> bool:
        return bool(self.target)


def _ic(path, type_, target, note, **kw) -> V1Field:
    return V1Field(IC, path, type_, target, note, **kw)


def _dc(path, type_, compute, target, note, **kw) -> V1Field:
    return V1Field(DC, path, type_, target, note, compute=compute, **kw)


_SIZE = (
    "the smallest Azure size holding the CPU, memory and GPUs (mlctl/instance_types.py); v1's defaults 0.1 CPU, 0.5 GB"
)
_REGISTRY = (
    "registry credentials are never written: log in to the registry (docker login, az acr login) "
    "where the image is built"
)
_AUTOSCALE = "scale_settings of a Kubernetes online deployment, honoured by the endpoint host's autoscaler"
_PROBE = "liveness_probe ({}); mlctl's host probes instances with it"

TABLE: tuple[V1Field, ...] = (
    # inferenceconfig.json
    _ic(
        "entryScript",
        "string",
        "deployment.code_configuration.scoring_script",
        "relative to sourceDirectory when both are given",
        how="derived",
    ),
    _ic(
        "sourceDirectory",
        "string",
        "deployment.code_configuration.code",
        "copied to SERVICE-app/NAME/ (NAME: its folder name), SERVICE-app/ the code folder and working "
        "folder, as v1 laid it out (./NAME/file paths resolve); without it, the folder of entryScript",
        how="derived",
    ),
    _ic("runtime", "string", "", "python is the only runtime of current deployments (spark-py is an error)"),
    _ic(
        "schemaFile",
        "string",
        None,
        "v1's generated input/output schema; a current deployment's /swagger.json comes from the "
        "inference-schema decorators of the scoring script (mlctl serves it from them)",
    ),
    _ic(
        "dependencies",
        "array",
        "deployment.code_configuration.code",
        "files and folders the script needs (relative to sourceDirectory when given): inside the source "
        "directory they come with it; others are copied into SERVICE-app/ at their v1 place",
        how="derived",
    ),
    _ic(
        "condaFile",
        "string",
        "environment.conda_file",
        "relative to sourceDirectory when given, as in v1",
        how="derived",
        where="environment",
    ),
    _ic(
        "extraDockerfileSteps",
        "string",
        None,
        "current environments build from a Dockerfile (environment build:); "
        "the local runtime builds a virtualenv from the conda file",
        where="environment",
    ),
    _ic(
        "extraDockerFileSteps",
        "string",
        None,
        "current environments build from a Dockerfile (environment build:); "
        "the local runtime builds a virtualenv from the conda file",
        where="environment",
    ),
    _ic("baseImage", "string", "environment.image", "the environment's base image", how="derived", where="environment"),
    _ic(
        "baseImageRegistry",
        "object",
        None,
        _REGISTRY + " (its address is kept, in the image name)",
        where="environment",
    ),
    _ic(
        "baseImageRegistry.address",
        "string",
        "environment.image",
        "prefixes baseImage (REGISTRY/IMAGE) unless it already does",
        how="derived",
        where="environment",
    ),
    _ic("baseImageRegistry.username", "string", None, _REGISTRY, secret=True, where="environment"),
    _ic("baseImageRegistry.password", "string", None, _REGISTRY, secret=True, where="environment"),
    _ic("enableGpu", "boolean", "deployment.instance_type", "true asks for a size with a GPU", how="derived"),
    _ic(
        "cudaVersion",
        "string",
        None,
        "CUDA comes with the base image in current environments (choose an image with it)",
        where="environment",
    ),
    _ic("description", "string", "deployment.description", "the deployment's description"),
    _ic("environment", "object", "", "an environment definition: its fields below"),
    _ic(
        "environment.name", "string", "environment.name", "the environment's name (default SERVICE-env)", how="derived"
    ),
    _ic(
        "environment.version",
        "any",
        "environment.version",
        "kept as a string; left out, mlctl derives it from the content",
        transform="version",
    ),
    _ic(
        "environment.environmentVariables",
        "object",
        "deployment.environment_variables",
        "set for the scoring script",
        free_form=True,
        transform="strings",
    ),
    _ic("environment.python", "object", "", "the Python section: its fields below"),
    _ic(
        "environment.python.condaDependencies",
        "object",
        "environment.conda_file",
        "written as SERVICE-env/conda.yml beside the new files",
        how="derived",
        free_form=True,
    ),
    _ic(
        "environment.python.condaDependenciesFile",
        "string",
        "environment.conda_file",
        "relative to sourceDirectory when given",
        how="derived",
    ),
    _ic(
        "environment.python.userManagedDependencies",
        "boolean",
        None,
        "current environments always install their conda file; "
        "without one mlctl runs the script in its own interpreter",
        where="environment",
    ),
    _ic(
        "environment.python.interpreterPath",
        "string",
        None,
        "the environment's Python comes from its conda file",
        where="environment",
    ),
    _ic(
        "environment.python.baseCondaEnvironment",
        "string",
        None,
        "current environments are built from the conda file alone",
        where="environment",
    ),
    _ic("environment.docker", "object", "", "the Docker section: its fields below"),
    _ic("environment.docker.baseImage", "string", "environment.image", "the environment's base image", how="derived"),
    _ic(
        "environment.docker.baseDockerfile",
        "string",
        None,
        "a Dockerfile build is an environment build: context, not converted",
        where="environment",
    ),
    _ic(
        "environment.docker.baseImageRegistry",
        "object",
        None,
        _REGISTRY,
        free_form=True,
        secret=True,
        where="environment",
    ),
    _ic(
        "environment.docker.buildContext",
        "object",
        None,
        "a Dockerfile build is an environment build: context, not converted",
        free_form=True,
        where="environment",
    ),
    _ic(
        "environment.docker.platform",
        "object",
        None,
        "online deployments run Linux on x64",
        free_form=True,
        where="environment",
    ),
    _ic(
        "environment.docker.enabled",
        "boolean",
        None,
        "a training-run setting; deployments always run in a container on Azure",
        where="environment",
    ),
    _ic("environment.docker.sharedVolumes", "boolean", None, "a training-run setting", where="environment"),
    _ic("environment.docker.shmSize", "string", None, "a training-run setting", where="environment"),
    _ic("environment.docker.arguments", "array", None, "a training-run setting", where="environment"),
    _ic(
        "environment.spark",
        "object",
        None,
        "Spark packages have no place in an online deployment",
        free_form=True,
        where="environment",
    ),
    _ic(
        "environment.databricks",
        "object",
        None,
        "Databricks libraries have no place in an online deployment",
        free_form=True,
        where="environment",
    ),
    _ic(
        "environment.r",
        "object",
        None,
        "R environments are not served by online deployments",
        free_form=True,
        where="environment",
    ),
    _ic(
        "environment.inferencingStackVersion",
        "string",
        None,
        "the inference server is part of every deployment (mlctl serves the Azure routes itself)",
        where="environment",
    ),
    # deploymentconfig.json
    _dc(
        "computeType",
        "string",
        ALL,
        "",
        "one deployment YAML serves every compute; mlctl runs it on the runtime mlctl.yaml names",
    ),
    _dc(
        "port",
        "integer",
        ("local",),
        "endpoint.port",
        "mlctl's endpoint port (on listen.address, 127.0.0.1 by default)",
    ),
    _dc("containerResourceRequirements", "object", CLOUD, "", "its fields below"),
    _dc("containerResourceRequirements.cpu", "number", CLOUD, "deployment.instance_type", _SIZE, how="derived"),
    _dc("containerResourceRequirements.memoryInGB", "number", CLOUD, "deployment.instance_type", _SIZE, how="derived"),
    _dc(
        "containerResourceRequirements.cpuLimit",
        "number",
        CLOUD,
        "deployment.instance_type",
        "the size holds the limit when it is larger",
        how="derived",
    ),
    _dc(
        "containerResourceRequirements.memoryInGBLimit",
        "number",
        CLOUD,
        "deployment.instance_type",
        "the size holds the limit when it is larger",
        how="derived",
    ),
    _dc(
        "containerResourceRequirements.gpu",
        "integer",
        CLOUD,
        "deployment.instance_type",
        "a size with at least this many GPUs",
        how="derived",
    ),
    _dc("gpuCores", "integer", CLOUD, "deployment.instance_type", "a size with at least this many GPUs", how="derived"),
    _dc("numReplicas", "integer", AKS, "deployment.instance_count", "instances of the deployment", how="derived"),
    _dc("autoScaler", "object", AKS, "", "its fields below"),
    _dc(
        "autoScaler.autoscaleEnabled",
        "boolean",
        AKS,
        "deployment.scale_settings.type",
        "target_utilization when enabled (v1: enabled when numReplicas is absent)",
        how="derived",
    ),
    _dc(
        "autoScaler.minReplicas",
        "integer",
        AKS,
        "deployment.scale_settings.min_instances",
        _AUTOSCALE + "; also instance_count when numReplicas is absent",
        how="derived",
    ),
    _dc("autoScaler.maxReplicas", "integer", AKS, "deployment.scale_settings.max_instances", _AUTOSCALE, how="derived"),
    _dc(
        "autoScaler.targetUtilization",
        "integer",
        AKS,
        "deployment.scale_settings.target_utilization_percentage",
        _AUTOSCALE,
        how="derived",
    ),
    _dc(
        "autoScaler.refreshPeriodInSeconds",
        "integer",
        AKS,
        "deployment.scale_settings.polling_interval",
        _AUTOSCALE,
        how="derived",
    ),
    _dc(
        "scoringTimeoutMs",
        "integer",
        AKS,
        "deployment.request_settings.request_timeout_ms",
        "at most 180000 now (a larger v1 value is lowered to it, and said so); absent, v1's AKS default "
        "60000 is written (the current default is 5000)",
        how="derived",
    ),
    _dc(
        "maxConcurrentRequestsPerContainer",
        "integer",
        AKS,
        "deployment.request_settings.max_concurrent_requests_per_instance",
        "per instance",
    ),
    _dc("maxQueueWaitMs", "integer", AKS, "deployment.request_settings.max_queue_wait_ms", "then 503, as in v1"),
    _dc("livenessProbeRequirements", "object", AKS, "", "its fields below"),
    _dc(
        "livenessProbeRequirements.periodSeconds",
        "integer",
        AKS,
        "deployment.liveness_probe.period",
        _PROBE.format("seconds"),
    ),
    _dc(
        "livenessProbeRequirements.initialDelaySeconds",
        "integer",
        AKS,
        "deployment.liveness_probe.initial_delay",
        _PROBE.format("seconds"),
    ),
    _dc(
        "livenessProbeRequirements.timeoutSeconds",
        "integer",
        AKS,
        "deployment.liveness_probe.timeout",
        _PROBE.format("seconds"),
    ),
    _dc(
        "livenessProbeRequirements.successThreshold",
        "integer",
        AKS,
        "deployment.liveness_probe.success_threshold",
        _PROBE.format("count"),
    ),
    _dc(
        "livenessProbeRequirements.failureThreshold",
        "integer",
        AKS,
        "deployment.liveness_probe.failure_threshold",
        _PROBE.format("count"),
    ),
    _dc(
        "authEnabled",
        "boolean",
        CLOUD,
        "endpoint.auth_mode",
        "key; false is said in the endpoint file's header (current endpoints always authenticate)",
        how="derived",
    ),
    _dc("tokenAuthEnabled", "boolean", AKS, "endpoint.auth_mode", "true: aml_token", how="derived"),
    _dc(
        "appInsightsEnabled",
        "boolean",
        CLOUD,
        "deployment.app_insights_enabled",
        "Application Insights (cloud-only; mlctl keeps its own logs)",
    ),
    _dc("description", "string", CLOUD, "endpoint.description", "the endpoint's description"),
    _dc(
        "sslEnabled",
        "boolean",
        CLOUD,
        None,
        "Azure serves https with its own certificate; mlctl's TLS is listen.tls in mlctl.yaml (docs/tls.md)",
        where="endpoint",
    ),
    _dc(
        "sslCertificate",
        "string",
        ACI,
        None,
        "certificates are never written: TLS is the endpoint's own",
        secret=True,
        where="endpoint",
    ),
    _dc(
        "sslKey",
        "string",
        ACI,
        None,
        "certificate keys are never written: TLS is the endpoint's own",
        secret=True,
        where="endpoint",
    ),
    _dc(
        "cname", "string", ACI, None, "the endpoint's host name is NAME.REGION.inference.ml.azure.com", where="endpoint"
    ),
    _dc(
        "dnsNameLabel",
        "string",
        ACI,
        None,
        "the endpoint's host name is NAME.REGION.inference.ml.azure.com",
        where="endpoint",
    ),
    _dc("location", "string", ACI, None, "an endpoint is created in its workspace's region", where="endpoint"),
    _dc(
        "keys",
        "object",
        AKS,
        None,
        "keys are never written: the endpoint makes its own (mlctl keys SERVICE; --regenerate)",
        free_form=True,
        secret=True,
        where="endpoint",
    ),
    _dc(
        "primaryKey",
        "string",
        CLOUD,
        None,
        "keys are never written: the endpoint makes its own (mlctl keys SERVICE)",
        secret=True,
        where="endpoint",
    ),
    _dc(
        "secondaryKey",
        "string",
        CLOUD,
        None,
        "keys are never written: the endpoint makes its own (mlctl keys SERVICE)",
        secret=True,
        where="endpoint",
    ),
    _dc(
        "tags",
        "object",
        CLOUD,
        None,
        "v1 service tags are workspace metadata; add them to the endpoint's tags if you still want them",
        free_form=True,
        where="endpoint",
    ),
    _dc(
        "properties",
        "object",
        CLOUD,
        None,
        "v1 service properties are workspace metadata",
        free_form=True,
        where="endpoint",
    ),
    _dc(
        "dataCollection",
        "object",
        CLOUD,
        None,
        "v1 model data collection; current deployments collect with data_collector (set it up anew)",
        free_form=True,
    ),
    _dc(
        "namespace",
        "string",
        AKS,
        None,
        "the Kubernetes namespace belongs to the cluster's compute, not the deployment",
    ),
    _dc(
        "computeTargetName",
        "string",
        AKS,
        None,
        "the cluster is chosen when the endpoint is created (compute:), not in the deployment",
    ),
)

BY_PATH: dict[tuple[str, str], V1Field] = {(f.file, f.path): f for f in TABLE}


def lookup(file: str, path: str) -> V1Field | None:
    """Pure: the row of `path` in `file` (IC or DC), or None when v1 has no such field."""
    return BY_PATH.get((file, path))


def children(file: str, parent: str) -> list[str]:
    """Pure: the known member names directly under `parent` ("" for the top level) of `file`."""
    prefix = parent + "." if parent else ""
    return [
        f.path[len(prefix) :]
        for f in TABLE
        if f.file == file and f.path.startswith(prefix) and "." not in f.path[len(prefix) :]
    ]


def _target_cell(f: V1Field) -> str:
    if f.target is None:
        return "not carried over"
    if f.target == "":
        return "(nothing to carry)"
    return f"`{f.target}`"


def markdown_table(file: str) -> str:
    """Pure: the docs' table for `file`: v1 field, compute types (deploymentconfig.json), current field, note."""
    dc = file == DC
    head = ["v1 field"] + (["computeType"] if dc else []) + ["current field", "how, or why not"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for f in TABLE:
        if f.file != file:
            continue
        cells = [f"`{f.path}`"] + ([", ".join(f.compute)] if dc else []) + [_target_cell(f), f.note]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
