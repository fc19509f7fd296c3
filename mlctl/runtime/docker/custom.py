"""Azure's custom containers on the docker runtime: an environment with `inference_config` (liveness,
readiness and scoring routes on one port) runs its image's own server, not mlctl's scoring server.

The image is the environment's `build:` context built by the engine (`contexts.build`, no network) or its
`image` as the engine has it (no registry is reached), used as it is: no packages are added. Each instance
is a container of it with Azure's layout (the model read-only at
`/var/azureml-app/azureml-models/NAME/VERSION`, `AZUREML_MODEL_DIR`; the deployment's environment
variables), confined as mlctl's own instances are (capabilities dropped, no new privileges, read-only root
with a /tmp), running as the image's own user, its scoring port published on 127.0.0.1 only (a port the
engine picks). The endpoint host probes the liveness and readiness paths and forwards /score to the scoring
path (`ServingSpec.routes`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from typing import Any

from mlctl.runtime.contract import DriverError
from mlctl.runtime.docker import contexts

PYTHON = "none"  # BuiltImage.python of a custom image: mlctl runs no Python in it
REASON = "a custom container: its image serves as it is (inference_config)"


def custom_image(client, request, settings: Mapping[str, Any] | None, say=None):
    """The BuiltImage of a custom container's environment: its build context built, else its image found in
    the engine. DriverError when neither is there."""
    import docker

    if request.build_context:
        network = (settings or {}).get("build_network")
        image = contexts.build(
            client, request.build_context, request.dockerfile_path, request.spec_digest, say, network=network
        )
        tag = contexts.context_tag(request.spec_digest or "")
    elif request.base_image:
        try:
            image = client.images.get(request.base_image)
        except docker.errors.ImageNotFound:
            raise DriverError(
                f"the custom container's image {request.base_image} is not in the Docker engine",
                "Build or load it into the engine first (docker build / docker load): mlctl reaches no "
                "registry; or give the environment a build: context (a folder with its Dockerfile).",
            ) from None
        tag = request.base_image
    else:
        raise DriverError(
            f"environment {request.environment} has inference_config but neither image nor build",
            "Name the custom container's image (image:) or its build context (build: {path: FOLDER}).",
        )
    return _built(tag, image.id, request.spec_digest)


def _built(tag: str, image_id: str, spec_digest: str | None):
    from mlctl.runtime.docker.images import BuiltImage

    return BuiltImage(
        tag=tag,
        image_id=image_id,
        content_digest=spec_digest or image_id,
        spec_digest=spec_digest,
        base=tag,
        base_id=image_id,
        base_reason=REASON,
        python=PYTHON,
        python_version="",
        built_at=time.time(),
    )


def find_custom(client, tag: str, spec_digest: str | None):
    """The custom image tagged `tag` as the engine has it now, or None when it is gone."""
    import docker

    try:
        return _built(tag, client.images.get(tag).id, spec_digest)
    except docker.errors.ImageNotFound:
        return None


def run_container(api, spec, name: str, labels: dict, env: dict, mounts: list, host_extra: dict):
    """Create and start a custom container with its scoring port published on 127.0.0.1 (a port the engine
    picks): (id, main pid, start time, host port)."""
    port = int(spec.routes["port"])
    host_config = api.create_host_config(
        mounts=mounts,
        port_bindings={port: ("127.0.0.1", None)},
        init=True,
        **host_extra,
    )
    create = functools.partial(
        api.create_container,
        spec.launch["image"],
        name=name,
        environment=env,
        labels=labels,
        ports=[port],
        host_config=host_config,
    )
    try:
        cid = create()["Id"]
    except Exception as e:
        if getattr(e, "status_code", None) != 409:  # a container of that name is left from a dead host
            raise
        api.remove_container(name, force=True)
        cid = create()["Id"]
    started = time.time()
    try:
        api.start(cid)
        info = api.inspect_container(cid)
        bound = (info["NetworkSettings"]["Ports"] or {}).get(f"{port}/tcp") or []
        host_port = int(next(b["HostPort"] for b in bound if b.get("HostIp") in ("127.0.0.1", "")))
    except BaseException:
        api.remove_container(cid, force=True)
        raise
    return cid, info["State"].get("Pid") or None, started, host_port
