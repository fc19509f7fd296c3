"""Helpers of the docker instance tests: projects with `runtime: docker` in mlctl.yaml, applied with the
real CLI on the real engine, and what the engine runs for a project (its instance containers, by label).

Imported by the test modules (the fixtures below are used by name there) and by the contract suite's
conftest; the engine fixtures shared with the image tests are in conftest.py. `engine_api` is the
engine's low-level client; without an engine it skips on a developer's machine and fails in CI
(`CI` set), where `.ci/run` starts one (as conftest's `docker_engine` does, for tests outside tests/docker).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_support import EXAMPLE, SplitProject, cleanup  # noqa: E402

RUNTIME_FILE = "runtime: docker\n"


@pytest.fixture
def engine_api(mlctl_cache):
    """The engine's low-level client (docker.APIClient); skips without an engine (fails in CI)."""
    from mlctl.errors import MlctlError
    from mlctl.runtime.docker import engine

    try:
        return engine.connect().api
    except MlctlError as e:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the docker tests on a real engine (.ci/run starts one): {e}")
        pytest.skip(f"no Docker engine: {e}")


def containers_of(api, root, every: bool = True) -> list[dict]:
    """The instance containers of the project at `root` (running or not unless `every` is False)."""
    data_dir = os.path.realpath(Path(root) / ".mlctl")
    return api.containers(
        all=every, filters={"label": ["mlctl.managed=1", "mlctl.kind=instance", f"mlctl.data-dir={data_dir}"]}
    )


def docker_cleanup(api, root) -> None:
    """Destroy the project; remove (by id) any container of it that a failed test left."""
    cleanup(root)
    for c in containers_of(api, root):
        api.remove_container(c["Id"], force=True)


@pytest.fixture
def docker_split(tmp_path, engine_api):
    """A split-form project (no environment: the scoring server image) on the docker runtime."""
    p = SplitProject(tmp_path / "proj", "dsplit")
    (p.root / "mlctl.yaml").write_text(RUNTIME_FILE)
    yield p
    docker_cleanup(engine_api, p.root)


@pytest.fixture
def docker_example(tmp_path, trained_model, engine_api):
    """A copy of examples/diabetes with its model trained and `runtime: docker` in mlctl.yaml."""
    root = tmp_path / "diabetes"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".mlctl", "__pycache__", "model.pkl"))
    (root / "model").mkdir(exist_ok=True)
    shutil.copy(trained_model, root / "model" / "model.pkl")
    (root / "mlctl.yaml").write_text(RUNTIME_FILE)
    yield root
    docker_cleanup(engine_api, root)
