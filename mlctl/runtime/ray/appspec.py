"""What one version of a deployment is on Ray Serve: its application, the replicas' options and runtime_env,
and the endpoint host's spec that reaches its scoring servers directly.

The mapping (docs/runtime.md): `instance_count` -> `num_replicas`; `max_concurrent_requests_per_instance`
-> `max_ongoing_requests`; the liveness probe's period and timeout -> Serve's health check; the request
timeout -> the scoring server's own timeout inside each replica (the gateway answers 408 first) and
the replicas' graceful shutdown; `environment_variables` -> the scoring server's environment; the
environment -> the virtualenv mlctl built (its interpreter runs the scoring server in each replica);
the model and the code -> the replicas' runtime_env `working_dir` (`model/`, `code/`), uploaded to
the cluster's store by content; mlctl itself -> a `py_modules` package.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import mlctl
from mlctl.runtime.host.spec import ServingSpec
from mlctl.runtime.kit.store import copy_tree
from mlctl.runtime.kit.virtualenvimages import virtualenv_spec
from mlctl.runtime.ray import apps, directory, packages
from mlctl.sizing import Sizing

EXCLUDES = ["__pycache__", "*.pyc"]  # bytecode written after an upload must not change mlctl's package digest


def host_spec(ctx, a: dict, launcher: str) -> dict:
    """The endpoint host's spec of a deployment's version, naming `launcher` (the runtime's: "serve").
    Replicas run the deployment's virtualenv interpreter, or Ray's own ("") without an environment."""
    return virtualenv_spec(ctx, a, launcher, without_environment="")


def application(owner: str, a: dict, spec: dict) -> apps.AppName:
    """Pure: the Serve application that serves version `spec` of deployment attributes `a`."""
    return apps.app_name(owner, a["endpoint"], a["name"], spec["digest"])


def with_servers(spec: dict, cluster: str, app: apps.AppName, secret: str, servers: list[dict]) -> dict:
    """Pure: `spec` reaching the application's running `servers` (directory.servers) directly, with the hop
    secret; `cluster` is the GCS address the host's launcher reads replacements through."""
    return {
        **spec,
        "python": spec["python"] or "ray",
        "launch": {
            **(spec.get("launch") or {}),
            "cluster": cluster,
            "application": str(app),
            "servers": servers,
            "hop_secret": secret,
        },
    }


def replica_spec(spec: dict, secret: str, environment: dict | None = None) -> dict:
    """Pure: what each replica's constructor gets (the scoring server's settings, the endpoint's hop secret and
    the environment's EnvRef, which nodeenv.materialize makes a virtualenv on the node; paths are the
    replica's). Constructor arguments are not in Serve's details, unlike the runtime_env."""
    s = ServingSpec.from_dict({**spec, "python": spec["python"] or "ray"})
    return {
        "name": s.name,
        "digest": s.digest,
        "hop_secret": secret,
        "environment": environment,
        "python": spec["python"],
        "scoring_script": s.scoring_script,
        "max_concurrent": s.max_concurrent,
        "instance_timeout_ms": s.instance_timeout_ms,
        "ready_within_s": s.readiness_budget_s,
        "environment_variables": s.environment_variables,
    }


def replica_options(spec: dict, runtime_env: dict, cpus: float) -> dict:
    """Pure: the Serve deployment options of the application's one deployment. Each replica's placement
    reserves the deployment's `resources.requests` (a request left out is its limit, mlctl.sizing): its CPUs
    (else `cpus`, the project's ray.replica_cpus), memory and GPUs; Ray schedules by these and enforces none."""
    s = ServingSpec.from_dict({**spec, "python": spec["python"] or "ray"})
    live = s.liveness_probe
    asked = Sizing.from_json((spec.get("launch") or {}).get("resources")).requests
    actor = {"num_cpus": asked.cpu if asked.cpu is not None else cpus, "runtime_env": runtime_env}
    if asked.memory:
        actor["memory"] = asked.memory
    if asked.gpu:
        actor["num_gpus"] = asked.gpu
    return {
        "num_replicas": s.instance_count,
        "max_ongoing_requests": s.max_concurrent,
        "health_check_period_s": max(1.0, float(live["period"])),
        "health_check_timeout_s": max(1.0, float(live["timeout"])),
        # a stopping replica waits for its host's release (directory.RELEASE_S), then drains its requests
        "graceful_shutdown_timeout_s": directory.RELEASE_S + s.instance_timeout_ms / 1000 + 2,
        "ray_actor_options": actor,
    }


def marks(owner: str, spec: dict) -> dict:
    """Pure: the runtime_env variables that mark an application as mlctl's and say what it serves."""
    return {
        apps.OWNER_VAR: owner,
        "MLCTL_SERVING_DIGEST": spec["digest"],
        "MLCTL_MODEL_DIGEST": spec.get("model_digest") or "",
        "MLCTL_CODE_DIGEST": spec.get("code_digest") or "",
    }


def staged(data_dir, spec: dict) -> Path:
    """A folder holding `model/` and `code/` of the spec (what the replicas' working_dir becomes);
    the caller removes it once uploaded."""
    stage = Path(data_dir) / "ray" / f"stage-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    copy_tree(Path(spec["model_dir"]), stage / "model")
    copy_tree(Path(spec["code_dir"]), stage / "code")
    return stage


def runtime_env(stage: Path, owner: str, spec: dict, environment: dict | None = None) -> dict:
    """Pure: the replicas' runtime_env before upload (local folders; `cluster.upload` makes them URIs), with the
    packages of the deployment's environment (`environment`, packages.ship's EnvRef) when it has one."""
    return {
        "working_dir": str(stage),
        "py_modules": [os.path.dirname(mlctl.__file__), *(packages.py_modules(environment) if environment else [])],
        "excludes": EXCLUDES,
        # Serve's own log lines stay in the replica's log file, off the worker's stderr, which Ray's log monitor
        # follows on every node (it cost about 2 ms of CPU per request when Serve logged each request, issue 28)
        "env_vars": {**marks(owner, spec), "RAY_SERVE_LOG_TO_STDERR": "0"},
    }
