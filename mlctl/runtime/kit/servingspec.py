"""The serving spec a deployment's instances run, as the endpoint host receives it: its interpreter, code
snapshot, model folder, variables and settings, the launcher that runs them and what that launcher alone reads.
Every runtime's spec maker ends here (`virtualenvimages.virtualenv_spec`, the docker runtime's
`container_spec`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mlctl.runtime.kit import snapshot, store
from mlctl.sizing import Sizing


def serving_digest(spec: dict) -> str:
    """Pure: the identity of what a deployment's instances run (everything but instance_count and the
    autoscaling range), so a scale or a new range is not mistaken for a replace."""
    body = {k: v for k, v in spec.items() if k not in ("instance_count", "scale_settings", "digest")}
    return "sha256:" + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def serving_spec(ctx, a: dict, python: str, launcher: str, launch: dict | None = None) -> dict:
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
    if a.get("scale_settings"):  # the endpoint host scales within the range (docs/autoscaling.md), on CPU
        spec["scale_settings"] = dict(a["scale_settings"])  # against resources.requests.cpu when one is set
        cpu = Sizing.of(a).requests.cpu
        if cpu:
            spec["scale_settings"]["cpu_request"] = cpu
    if a.get("inference_config"):  # a custom container: the host probes and forwards to its own routes
        from mlctl.runtime.host.spec import routes_of

        spec["routes"] = routes_of(a["inference_config"])
    if launch:
        spec["launch"] = launch
    spec["digest"] = serving_digest(spec)
    return spec
