"""Builders of desired resources and recorded states for the reconciler's unit tests (no loader needed)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from mlctl.resources import Address, Resource
from mlctl.state.statefile import ResourceState, State

A = Address.parse


@dataclass(frozen=True)
class Cfg:
    """The shape of mlctl.schemas.load.Config that plan() reads."""

    resources: tuple
    diagnostics: tuple = ()
    inputs: dict = field(default_factory=dict)
    ignored: dict = field(default_factory=dict)


def model(name="m", version="1", content="sha256:c1", path="/src/model.pkl", files=None):
    return Resource(
        A(f"model.{name}"),
        {
            "name": name,
            "version": version,
            "path": path,
            "is_file": True,
            "type": "custom_model",
            "description": None,
            "tags": {},
            "content_digest": content,
        },
        f"dm-{name}-{version}-{content}",
        files=files or {"model/model.pkl": content},
    )


def environment(name="env", pip=("scikit-learn==1.5",), spec="sha256:s1"):
    return Resource(
        A(f"environment.{name}"),
        {
            "name": name,
            "version": "1",
            "conda_file": "/src/conda.yml",
            "image": None,
            "python": "3.11",
            "channels": [],
            "conda_packages": [],
            "pip_packages": list(pip),
            "description": None,
            "tags": {},
            "spec_digest": spec,
        },
        f"de-{spec}",
    )


def image(name="env", pip=("scikit-learn==1.5",), spec="sha256:s1"):
    return Resource(
        A(f"image.{name}"),
        {"environment": name, "spec_digest": spec, "python": "3.11", "conda_packages": [], "pip_packages": list(pip)},
        f"di-{spec}",
        depends_on=(A(f"environment.{name}"),),
    )


def endpoint(name="e", auth="key", port=None):
    return Resource(
        A(f"endpoint.{name}"),
        {"name": name, "auth_mode": auth, "port": port, "description": None, "tags": {}},
        f"dp-{name}-{auth}-{port}",
    )


def deployment(
    ep="e",
    name="blue",
    model_name="m",
    model_version="1",
    model_digest="sha256:c1",
    code_digest="sha256:k1",
    env="env",
    image_digest="sha256:s1",
    instances=1,
    code="/src/code",
    files=None,
    **extra,
):
    attrs = {
        "endpoint": ep,
        "name": name,
        "model": model_name,
        "model_version": model_version,
        "model_digest": model_digest,
        "code": code,
        "code_digest": code_digest,
        "scoring_script": "score.py",
        "environment": env,
        "image_digest": image_digest,
        "instance_count": instances,
        "request_settings": {
            "request_timeout_ms": 5000,
            "max_concurrent_requests_per_instance": 1,
            "max_queue_wait_ms": 500,
        },
        "environment_variables": {},
        "description": None,
        "tags": {},
    }
    attrs.update(extra)
    deps = [A(f"endpoint.{ep}"), A(f"model.{model_name}")] + ([A(f"image.{env}")] if env else [])
    return Resource(
        A(f"deployment.{ep}.{name}"),
        attrs,
        f"dd-{name}-{instances}-{code_digest}",
        depends_on=tuple(deps),
        files=files or {"code/score.py": f"h{code_digest[-2:]}", "model/model.pkl": f"h{model_digest[-2:]}"},
    )


def traffic(ep="e", weights=None, mirror=None, deployments=("blue",)):
    return Resource(
        A(f"traffic.{ep}"),
        {"endpoint": ep, "traffic": weights or {"blue": 100}, "mirror_traffic": mirror or {}},
        "dt",
        depends_on=(A(f"endpoint.{ep}"),) + tuple(A(f"deployment.{ep}.{d}") for d in deployments),
    )


def stack(**dep):
    """model, environment, image, endpoint, one deployment `blue` and its traffic."""
    return [model(), environment(), image(), endpoint(), deployment(**dep), traffic()]


def state_of(resources, **by_address) -> State:
    """The state apply writes after applying `resources` (status ready); by_address overrides fields,
    e.g. state_of(rs, **{"deployment.e.blue": {"status": "failed"}})."""
    s = State(serial=4, lineage="11111111-2222-4333-8444-555555555555")
    for r in resources:
        s.resources[r.address] = replace(ResourceState.from_resource(r), **by_address.get(str(r.address), {}))
    return s


def with_(r: Resource, **attrs) -> Resource:
    return replace(r, attributes={**r.attributes, **attrs})


def by_address(observed: dict) -> dict:
    """{"deployment.e.blue": ...} keyed by Address, as refresh reports observed values."""
    return {A(a): v for a, v in observed.items()}
