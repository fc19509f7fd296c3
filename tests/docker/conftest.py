"""Fixtures of the docker runtime's tests: a real Docker engine and images shared by the whole session.

Every test here needs an engine (`docker_engine`, autouse; the tests are also marked `docker`, so
`-m "not docker"` leaves them out). Without one a test is skipped on a developer's machine but FAILS
when `CI` is set: CI starts its own engine (.ci/run), and the docker tests never skip there.

Helpers (example_copy, EXAMPLE) are in image_support.py. Stable fixture names (both halves of the docker runtime
use them):
- `docker_engine`   the engine's client (session)
- `docker_cache`    the MLCTL_CACHE of the session (CI's when set, else one kept across sessions)
- `mlctl_base`      mlctl's own base image (`base.Base`; built once per machine, reused after)
- `server_image`    the image of a deployment without an environment (`images.BuiltImage`)
- `example_image`   the image of examples/diabetes's environment (scikit-learn; `images.BuiltImage`)
- `example_request` that environment's `images.ImageRequest`
- `scratch_images`  a list: append the tags or ids of images a test makes for itself; removed after it
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from image_support import example_copy


def pytest_collection_modifyitems(config, items):
    here = str(Path(__file__).parent)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def docker_cache(mlctl_cache):
    """The session's MLCTL_CACHE (tests/conftest.py): CI's when set, else one kept across sessions."""
    return mlctl_cache


@pytest.fixture(scope="session")
def _engine_or_reason():
    from mlctl.errors import MlctlError
    from mlctl.runtime.docker import engine

    try:
        return engine.connect(), ""
    except MlctlError as e:
        return None, str(e)


@pytest.fixture(autouse=True)
def docker_engine(_engine_or_reason, docker_cache):
    """The engine's client; skips without an engine, except in CI (CI set), where it fails."""
    client, reason = _engine_or_reason
    if client is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the docker tests on a real engine (.ci/run starts one): {reason}")
        pytest.skip(f"no Docker engine: {reason}")
    return client


@pytest.fixture(scope="session")
def mlctl_base(_engine_or_reason, docker_cache):
    from mlctl.runtime.docker import baseimage as base

    client, _ = _engine_or_reason
    return base.choose(client, env_image=None, settings={}) if client else None


@pytest.fixture(scope="session")
def server_image(_engine_or_reason, docker_cache, mlctl_base):
    from mlctl.runtime.docker import images

    client, _ = _engine_or_reason
    return images.server_image(client, {}) if client else None


@pytest.fixture(scope="session")
def example_request(docker_cache, tmp_path_factory):
    """The ImageRequest of examples/diabetes's environment, from the example's own YAML."""
    from mlctl.projectpaths import Project
    from mlctl.resources import Kind
    from mlctl.runtime.docker import images
    from mlctl.schemas.load import load_config

    config = load_config(Project.at(example_copy(tmp_path_factory.mktemp("example") / "diabetes")))
    (image,) = [r for r in config.resources if r.kind is Kind.IMAGE]
    return images.ImageRequest.from_attributes(image.attributes)


@pytest.fixture(scope="session")
def example_image(_engine_or_reason, docker_cache, mlctl_base, example_request):
    from mlctl.runtime.docker import images

    client, _ = _engine_or_reason
    return images.ensure_image(client, example_request, {}) if client else None


@pytest.fixture
def scratch_images(docker_engine):
    """Images a test made for itself (tags or ids): removed when it ends (only these, never others)."""
    import docker

    made: list[str] = []
    yield made
    for ref in reversed(made):
        try:
            docker_engine.images.remove(ref, force=True)
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError:  # still used by a test's container: its own cleanup removes that
            pass
