"""The docker runtime's drivers, one per kind. The endpoint host is the local runtime's (every runtime
fronts its instances with it), so models, endpoints, deployments and traffic use the local drivers
as they are; a deployment's serving spec names the "container" launcher with the image, Azure's layout
and the limits of its `instance_type`. Images are `imagedriver.py`'s.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

from mlctl.resources import Kind
from mlctl.runtime.contract import RuntimeContext
from mlctl.runtime.docker import containers, engine, images, limits
from mlctl.runtime.docker.imagedriver import ImageDriver
from mlctl.runtime.host.runfiles import endpoint_tag
from mlctl.runtime.local import drivers as local
from mlctl.runtime.local.serving import serving_spec
from mlctl.runtime.observed import EnvironmentObserved

APP_ROOT = "/var/azureml-app"


def machine(ctx: RuntimeContext) -> tuple[int, int]:
    """(CPUs, memory bytes) of the engine's machine, read once per run."""
    if "docker:machine" not in ctx.memo:
        info = engine.client_of(ctx).info()
        ctx.memo["docker:machine"] = (int(info.get("NCPU") or 0), int(info.get("MemTotal") or 0))
    return ctx.memo["docker:machine"]


def lineage(ctx: RuntimeContext) -> str:
    """The project's state lineage (its containers' `mlctl.project` label)."""
    if "docker:lineage" not in ctx.memo:
        from mlctl.state.backends import state_backend
        from mlctl.state.statefile import read_state

        ctx.memo["docker:lineage"] = read_state(state_backend(ctx.project)).lineage
    return ctx.memo["docker:lineage"]


def layout(a: dict) -> dict:
    """Pure: where a deployment's model and code are inside its containers (Azure's layout)."""
    code = (Path(a["code"]).name if a.get("code") else "") or "code"
    return {
        "model_target": f"{APP_ROOT}/azureml-models/{a['model']}/{a['model_version']}",
        "code_target": f"{APP_ROOT}/{code}",
    }


def container_spec(ctx: RuntimeContext, a: dict) -> dict:
    """The endpoint host's serving spec of deployment attributes `a`: containers of its image, with
    Azure's layout, labelled with the project's lineage, limited as its instance_type says (else to
    docker.memory), confined as the project's docker settings say (containers.confinement)."""
    address = f"deployment.{a['endpoint']}.{a['name']}"
    say = functools.partial(ctx.progress, address)
    try:
        built = images.deployment_image(
            engine.client_of(ctx), ctx.data_dir, a.get("image_digest"), ctx.settings, say=say
        )
        memory = limits.memory_bytes((ctx.settings or {}).get("memory"))
        fit = limits.container_limits(a.get("instance_type"), *machine(ctx), default_memory=memory)
    except engine.engine_errors() as e:
        raise engine.failure(f"{address}: preparing its containers failed", e) from None
    for note in fit.notes:
        say(note)
    if a.get("instance_type"):
        say(f"containers of instance_type {a['instance_type']}: {fit.describe()}")
    launch = {
        "image": built.tag,
        "python": built.python,
        **layout(a),
        "instance_type": a.get("instance_type"),
        "nano_cpus": fit.nano_cpus,
        "memory_bytes": fit.memory_bytes,
        "pids_limit": (ctx.settings or {}).get("pids_limit") or containers.PIDS_LIMIT,
        "read_only": (ctx.settings or {}).get("read_only_root", True),
        "labels": {containers.LABEL_PROJECT: lineage(ctx)},
    }
    return serving_spec(ctx, a, built.python, "container", launch)


class DeploymentDriver(local.DeploymentDriver):
    """The local deployment driver on containers; `read` also reports containers changed outside mlctl
    (image or limits not those applied: drift, which a roll replaces)."""

    def __init__(self):
        super().__init__(container_spec)

    def read(self, address, prior, ctx):
        observed = super().read(address, prior, ctx)
        if not observed or not observed.instances:
            return observed
        try:
            changed = containers.changes(engine.client_of(ctx).api, observed.instances)
        except engine.engine_errors() as e:
            raise engine.failure(f"reading {address}", e) from None
        return dataclasses.replace(observed, changed_outside=changed) if changed else observed


class EnvironmentDriver(local.EnvironmentDriver):
    """An environment is a recorded spec; its image (base image included) is the image driver's."""

    def create(self, resource, prior, ctx):
        return EnvironmentObserved(spec_digest=resource.attributes.get("spec_digest"), not_used_by_runtime=[])

    update = roll = recreate = create


class EndpointDriver(local.EndpointDriver):
    """The local endpoint host; deleting it also removes containers a killed host left behind."""

    def delete(self, address, prior, ctx, keep_identity=False):
        super().delete(address, prior, ctx, keep_identity)
        try:
            containers.remove_leftovers(endpoint_tag(ctx.data_dir, address.name))
        except engine.engine_errors() as e:
            raise engine.failure(f"{address}: removing its containers failed", e) from None


def docker_drivers() -> dict:
    """{Kind: driver} of the docker runtime."""
    drivers = {
        Kind.MODEL: local.ModelDriver(),
        Kind.ENVIRONMENT: EnvironmentDriver(),
        Kind.IMAGE: ImageDriver(),
        Kind.ENDPOINT: EndpointDriver(),
        Kind.DEPLOYMENT: DeploymentDriver(),
        Kind.TRAFFIC: local.TrafficDriver(),
    }
    return {kind: local.Guarded(d) for kind, d in drivers.items()}
