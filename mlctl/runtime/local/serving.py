"""The serving spec a local deployment's instances run: its interpreter, code snapshot, model folder,
variables and settings, as the endpoint host receives it."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from mlctl.runtime.contract import DriverError
from mlctl.runtime.local import envs, snapshot, store


def serving_digest(spec: dict) -> str:
    """Pure: the identity of what a deployment's instances run (everything but instance_count),
    so a scale is not mistaken for a replace."""
    body = {k: v for k, v in spec.items() if k not in ("instance_count", "digest")}
    return "sha256:" + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def deployment_python(ctx, a: dict) -> str:
    """The interpreter of a deployment: its image's virtualenv, or mlctl's own without an environment."""
    if not a.get("environment"):
        return sys.executable
    built = envs.read_built(a["image_digest"]) if a.get("image_digest") else None
    if built is None:
        raise DriverError(
            f"the virtualenv of environment {a['environment']!r} is not built",
            "Run `mlctl apply` again: the plan rebuilds the image first.",
        )
    return built.python_executable


def deployment_spec(ctx, a: dict) -> dict:
    """The endpoint host's serving spec for deployment attributes `a`: processes on the deployment's
    interpreter (snapshots the code)."""
    return serving_spec(ctx, a, deployment_python(ctx, a))


def serving_spec(ctx, a: dict, python: str, launcher: str = "process", launch: dict | None = None) -> dict:
    """The endpoint host's serving spec for deployment attributes `a`, its instances run by `launcher`
    on `python` (`launch`: what that launcher alone reads); snapshots the code."""
    code_dir = snapshot.snapshot_code(ctx.data_dir, a["code"], a["code_digest"]) if a.get("code") else None
    spec = {
        "name": a["name"],
        "python": python,
        "code_dir": str(code_dir or Path(a.get("code") or ".")),
        "scoring_script": a["scoring_script"],
        "model_dir": str(store.model_dir(ctx.data_dir, a["model"], a["model_version"])),
        "model_digest": a.get("model_digest"),
        "code_digest": a.get("code_digest"),
        "instance_count": a["instance_count"],
        "environment_variables": {str(k): str(v) for k, v in (a.get("environment_variables") or {}).items()},
        "request_settings": a.get("request_settings") or {},
        "liveness_probe": a.get("liveness_probe") or {},
        "readiness_probe": a.get("readiness_probe") or {},
        "launcher": launcher,
    }
    if a.get("inference_config"):  # a custom container: the host probes and forwards to its own routes
        from mlctl.runtime.host.spec import routes_of

        spec["routes"] = routes_of(a["inference_config"])
    if launch:
        spec["launch"] = launch
    spec["digest"] = serving_digest(spec)
    return spec
