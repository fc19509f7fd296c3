"""A deployment as the host receives it from the runtime (validated, defaults from the JSON Schema filled in)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from mlctl import scalesettings
from mlctl.sizing import Sizing
from mlctl.schemas.validate import load_schema

from .launcher import DEFAULT_LAUNCHER, UnknownLauncher, check_launcher


def schema_defaults(node: dict) -> dict:
    """Pure: the `default` of each property of a JSON Schema object node that has one."""
    return {key: prop["default"] for key, prop in node["properties"].items() if "default" in prop}


_DEPLOYMENT = load_schema("deployment")
PROBE_DEFAULTS = schema_defaults(_DEPLOYMENT["$defs"]["probe"])
REQUEST_DEFAULTS = schema_defaults(_DEPLOYMENT["properties"]["request_settings"])


def routes_of(inference_config: dict | None) -> dict:
    """Pure: the host's routes ({liveness, readiness, scoring: path}) and the port, of an inference_config."""
    if not inference_config:
        return {}
    return {
        "liveness": inference_config["liveness"]["path"],
        "readiness": inference_config["readiness"]["path"],
        "scoring": inference_config["scoring"]["path"],
        "port": int(inference_config["scoring"]["port"]),
    }


class SpecError(ValueError):
    """A deployment spec the host cannot run (the message says which field)."""


def scale_settings_of(raw) -> dict | None:
    """Validated autoscaling settings of a spec or an order (None: a fixed count); SpecError names the field."""
    if raw is None:
        return None
    settings = scalesettings.autoscale_of(raw) if isinstance(raw, dict) else None
    if settings is None:
        raise SpecError(f"scale_settings must be an object with type {scalesettings.AUTOSCALED!r}, got {raw!r}")
    for key, low in (
        ("min_instances", 0),
        ("max_instances", 1),
        ("target_utilization_percentage", 1),
        ("polling_interval", 1),
        ("stabilization_window", 0),
    ):
        value = settings[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise SpecError(f"scale_settings.{key} must be an integer >= {low}, got {value!r}")
    for _, summary, _ in scalesettings.range_errors(settings):
        raise SpecError(f"scale_settings: {summary}")
    cpu = raw.get("cpu_request")
    if cpu is not None and (not isinstance(cpu, (int, float)) or isinstance(cpu, bool) or cpu <= 0):
        raise SpecError(f"scale_settings.cpu_request must be a number of CPUs > 0, got {cpu!r}")
    return {**settings, **({"cpu_request": float(cpu)} if cpu is not None else {})}


def check_sizing(launch: dict) -> None:
    """SpecError unless `launch.resources` is a sizing in numbers (CPUs, bytes, GPUs: what the runtimes send, after
    the plan read Kubernetes quantities) and `launch.memory_bytes` a number of bytes; pure."""
    try:
        Sizing.from_json(launch.get("resources"))
    except (AttributeError, TypeError, ValueError):
        raise SpecError(
            "deployment spec field 'launch.resources' must be {requests: {cpu, memory, gpu}, limits: {...}} "
            f"in CPUs, bytes and GPUs (numbers; a plan reads Kubernetes quantities such as 1Gi), got "
            f"{launch.get('resources')!r}"
        ) from None
    memory = launch.get("memory_bytes")
    if memory is not None and (not isinstance(memory, int) or isinstance(memory, bool) or memory < 1):
        raise SpecError(f"deployment spec field 'launch.memory_bytes' must be an integer >= 1, got {memory!r}")


@dataclass(frozen=True)
class ServingSpec:
    """What the host serves for one deployment: its instances' code, model, interpreter, settings, launcher."""

    name: str
    digest: str
    python: str
    code_dir: str
    scoring_script: str
    model_dir: str
    instance_count: int
    model_digest: str | None = None
    code_digest: str | None = None
    environment_variables: dict = field(default_factory=dict)
    request_settings: dict = field(default_factory=lambda: dict(REQUEST_DEFAULTS))
    liveness_probe: dict = field(default_factory=lambda: dict(PROBE_DEFAULTS))
    readiness_probe: dict = field(default_factory=lambda: dict(PROBE_DEFAULTS))
    launcher: str = DEFAULT_LAUNCHER
    routes: dict = field(default_factory=dict)  # a custom container's {liveness, readiness, scoring: path, port}
    launch: dict = field(default_factory=dict)  # what this spec's launcher alone reads (a container's image,
    # mounts, labels, limits; Serve's proxy address); the host passes it on untouched
    scale_settings: dict | None = None  # autoscaling (scalesettings.py's fields, + cpu_request); None: fixed

    @classmethod
    def from_dict(cls, raw: dict) -> "ServingSpec":
        """Validate and fill defaults; SpecError names the first bad field."""
        if not isinstance(raw, dict):
            raise SpecError("deployment spec must be a JSON object")
        for key in ("name", "digest", "python", "code_dir", "scoring_script", "model_dir"):
            if not isinstance(raw.get(key), str) or not raw[key]:
                raise SpecError(f"deployment spec field {key!r} must be a non-empty string")
        count = raw.get("instance_count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise SpecError(f"deployment spec field 'instance_count' must be an integer >= 1, got {count!r}")
        env = raw.get("environment_variables") or {}
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise SpecError("deployment spec field 'environment_variables' must map strings to strings")
        request = {**REQUEST_DEFAULTS, **(raw.get("request_settings") or {})}
        for key in ("request_timeout_ms", "max_concurrent_requests_per_instance"):
            if not isinstance(request[key], int) or request[key] < 1:
                raise SpecError(f"request_settings.{key} must be an integer >= 1, got {request[key]!r}")
        probes = {}
        for probe in ("liveness_probe", "readiness_probe"):
            probes[probe] = {**PROBE_DEFAULTS, **(raw.get(probe) or {})}
            for key, value in probes[probe].items():
                if not isinstance(value, (int, float)) or value < 0:
                    raise SpecError(f"{probe}.{key} must be a number >= 0, got {value!r}")
        launcher = raw.get("launcher", DEFAULT_LAUNCHER)
        try:
            check_launcher(launcher)
        except UnknownLauncher as e:
            raise SpecError(f"deployment spec field 'launcher': {e}") from None
        routes = raw.get("routes") or {}
        if routes and not (
            all(
                isinstance(routes.get(k), str) and routes[k].startswith("/")
                for k in ("liveness", "readiness", "scoring")
            )
            and isinstance(routes.get("port"), int)
        ):
            raise SpecError("deployment spec field 'routes' must give liveness, readiness and scoring paths and a port")
        launch = raw.get("launch") or {}
        if not isinstance(launch, dict):
            raise SpecError("deployment spec field 'launch' must be a JSON object")
        check_sizing(launch)
        scale_settings = scale_settings_of(raw.get("scale_settings"))
        return cls(
            name=raw["name"],
            digest=raw["digest"],
            python=raw["python"],
            code_dir=raw["code_dir"],
            scoring_script=raw["scoring_script"],
            model_dir=raw["model_dir"],
            instance_count=count,
            model_digest=raw.get("model_digest"),
            code_digest=raw.get("code_digest"),
            environment_variables=dict(env),
            request_settings=request,
            launcher=launcher,
            routes=dict(routes),
            launch=dict(launch),
            scale_settings=scale_settings,
            **probes,
        )

    # cached (the spec is frozen): the request path reads these on every request
    @cached_property
    def timeout_s(self) -> float:
        return self.request_settings["request_timeout_ms"] / 1000

    @cached_property
    def max_concurrent(self) -> int:
        return self.request_settings["max_concurrent_requests_per_instance"]

    @property
    def instance_timeout_ms(self) -> int:
        """The scoring timeout the instance gets: slightly longer than the gateway's (so 408 comes first)."""
        ms = self.request_settings["request_timeout_ms"]
        return ms + max(250, min(ms // 10, 5000))

    def probe_path(self, kind: str) -> str:
        """The path the host probes for `kind` (liveness, readiness): GET / but for a custom container."""
        return self.routes.get(kind, "/")

    @property
    def readiness_budget_s(self) -> float:
        """How long an instance may take to become ready: initial_delay + period x failure_threshold."""
        p = self.readiness_probe
        return p["initial_delay"] + p["period"] * max(1, p["failure_threshold"])
