"""The docker runtime's drivers: the kit's (models, environments, endpoint hosts, deployments, traffic) with
deployments on the "container" launcher, whose serving spec names the image, Azure's layout and the limits
of its `instance_type`; images are `imagedriver.py`'s.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

from mlctl.resources import Kind
from mlctl.sizing import Sizing
from mlctl.runtime.docker import containers, engine, images, limits
from mlctl.runtime.docker.imagedriver import ImageDriver
from mlctl.runtime.docker.runcontext import DockerContext
from mlctl.runtime.host.runfiles import endpoint_tag
from mlctl.runtime.kit.drivers import DeploymentDriver, Platform, TrafficDriver, guarded
from mlctl.runtime.kit.endpoints import EndpointDriver
from mlctl.runtime.kit.records import EnvironmentDriver, ModelDriver
from mlctl.runtime.kit.servingspec import serving_spec

APP_ROOT = "/var/azureml-app"


def layout(a: dict) -> dict:
    """Pure: where a deployment's model and code are inside its containers (Azure's layout)."""
    code = (Path(a["code"]).name if a.get("code") else "") or "code"
    return {
        "model_target": f"{APP_ROOT}/azureml-models/{a['model']}/{a['model_version']}",
        "code_target": f"{APP_ROOT}/{code}",
    }


def container_spec(ctx: DockerContext, a: dict, launcher: str) -> dict:
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
        fit = limits.container_limits(a.get("instance_type"), *ctx.machine, default_memory=memory, sizing=Sizing.of(a))
    except engine.engine_errors() as e:
        raise engine.failure(f"{address}: preparing its containers failed", e) from None
    for note in fit.notes:
        say(note)
    if a.get("resources"):
        say(f"containers sized by resources: {fit.describe()}")
    elif a.get("instance_type"):
        say(f"containers of instance_type {a['instance_type']}: {fit.describe()}")
    launch = {
        "image": built.tag,
        "python": built.python,
        **layout(a),
        "instance_type": a.get("instance_type"),
        "nano_cpus": fit.nano_cpus,
        "memory_bytes": fit.memory_bytes,
        **({"memory_reservation": fit.memory_reservation} if fit.memory_reservation else {}),
        **({"cpu_shares": fit.cpu_shares} if fit.cpu_shares else {}),
        "pids_limit": (ctx.settings or {}).get("pids_limit") or containers.PIDS_LIMIT,
        "read_only": (ctx.settings or {}).get("read_only_root", True),
        **({"spare_container": True} if (ctx.settings or {}).get("spare_container") is True else {}),
        "labels": {containers.LABEL_PROJECT: ctx.lineage},
    }
    return serving_spec(ctx, a, built.python, launcher, launch)


class Containers(Platform):
    """The host's launcher runs the containers; reading a deployment also reports containers changed outside
    mlctl (image or limits not those applied: drift, which a roll replaces)."""

    def observe(self, attributes, host, prior, ctx):
        observed = super().observe(attributes, host, prior, ctx)
        if not observed or not observed.instances:
            return observed
        address = f"deployment.{attributes['endpoint']}.{attributes['name']}"
        try:
            changed = containers.changes(engine.client_of(ctx).api, observed.instances)
        except engine.engine_errors() as e:
            raise engine.failure(f"reading {address}", e) from None
        return dataclasses.replace(observed, changed_outside=changed) if changed else observed


def remove_leftover_containers(address, ctx) -> None:
    """After an endpoint host stopped: the containers a killed host left behind."""
    try:
        containers.remove_leftovers(endpoint_tag(ctx.data_dir, address.name))
    except engine.engine_errors() as e:
        raise engine.failure(f"{address}: removing its containers failed", e) from None


def docker_drivers(runtime: str, launcher: str) -> dict:
    """{Kind: driver} of the docker runtime."""
    return guarded(
        {
            Kind.MODEL: ModelDriver(),
            Kind.ENVIRONMENT: EnvironmentDriver(runtime, uses_base_image=True),
            Kind.IMAGE: ImageDriver(),
            Kind.ENDPOINT: EndpointDriver(after_delete=remove_leftover_containers),
            Kind.DEPLOYMENT: DeploymentDriver(container_spec, launcher, Containers()),
            Kind.TRAFFIC: TrafficDriver(),
        }
    )
