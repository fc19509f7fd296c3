"""An environment's own Docker build context (Azure's `build: {path, dockerfile_path}`), built by the
engine as given, tagged and labelled by the environment's spec digest (which covers the context's
files), once per engine, with no network (`RUN` steps reach nothing; `docker.build_network` in the
project file names a network for Dockerfiles that download). The image it makes is the base of the
environment's image (`base.py`); its output is kept in a log that the environment image's build log
starts with.
"""

from __future__ import annotations

from pathlib import Path

from mlctl.runtime.contract import DriverError
from mlctl.runtime.docker import labels, steps

REPOSITORY = "mlctl/context"
DEFAULT_DOCKERFILE = "Dockerfile"


def context_tag(spec_digest: str) -> str:
    """Pure: the tag of the image an environment's build context makes."""
    return f"{REPOSITORY}:{spec_digest.split(':', 1)[-1][:24]}"


def context_log(spec_digest: str | None) -> Path:
    """The log of building an environment's context."""
    return steps.log_path(f"context-{(spec_digest or '').split(':', 1)[-1][:24]}")


def dockerfile_problem(context: str, dockerfile_path: str | None) -> str | None:
    """Why the context cannot be built as given (a missing folder, no Dockerfile), None when it can."""
    folder = Path(context)
    if not folder.is_dir():
        return (
            f"the build context {context} is not a folder"
            if folder.exists()
            else f"the build context {context} does not exist"
        )
    dockerfile = folder / (dockerfile_path or DEFAULT_DOCKERFILE)
    if not dockerfile.is_file():
        return f"the build context {context} has no {dockerfile_path or DEFAULT_DOCKERFILE}"
    return None


def build(
    client, context: str, dockerfile_path: str | None, spec_digest: str | None, say=None, network: str | None = None
):
    """The image of the context (built by the engine when it does not have it yet), on `network` (None: no
    network). DriverError when the context is unusable or its Dockerfile fails, with the build log's tail."""
    import docker

    problem = dockerfile_problem(context, dockerfile_path)
    if problem:
        raise DriverError(problem, "Fix the environment's build.path / build.dockerfile_path.")
    tag = context_tag(spec_digest or "")
    try:
        image = client.images.get(tag)
        if labels.is_managed(image.labels, "context") and labels.value(image.labels, "spec-digest") == spec_digest:
            return image
    except docker.errors.ImageNotFound:
        pass
    dockerfile = dockerfile_path or DEFAULT_DOCKERFILE
    log_file = context_log(spec_digest)
    if say:
        say(f"building the environment's build context {context} ({dockerfile})")
    with steps.machine_lock(f"context-{tag.rsplit(':', 1)[1]}", say), open(log_file, "w") as log:
        log.write(f"building {Path(context) / dockerfile} (context {context})\n")
        try:
            steps.engine_build(
                client,
                log,
                say,
                path=context,
                dockerfile=dockerfile,
                tag=tag,
                labels=labels.managed("context", spec_digest=spec_digest),
                network_mode=network or "none",
            )
        except steps.EngineBuildFailed as e:
            raise DriverError(
                f"the environment's Dockerfile {Path(context) / dockerfile} failed: {e}",
                f"Fix the Dockerfile (the environment's build.dockerfile_path) and apply again; "
                f"the build log is {log_file}. It is built with no network"
                f"{'' if network else ' unless docker.build_network in mlctl.yaml names one (e.g. default)'}.",
                steps.tail(log_file),
            ) from None
    return client.images.get(tag)
