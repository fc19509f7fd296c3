"""The contract suite's fixtures: one project, applied through the engine on each runtime in turn.

`harness` is parametrized over the runtimes the suite runs on: the in-memory fake (fake_runtime.py),
the real local runtime (endpoint hosts and scoring servers as processes on 127.0.0.1), the real
docker runtime (the same hosts, instances as containers on the Docker engine; marked `docker`, skipped
without an engine but in CI) and the ray runtime on the session's real Ray cluster, from its client
machine (`ray_cluster`, marked `ray`: `./dev test` runs it inside a loopback-only network namespace).
The project is the e2e tests' split-form project without an environment (mlctl's own interpreter locally and
on ray, the scoring server image on docker).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docker"))

from contract_harness import Harness  # noqa: E402
from docker_support import docker_cleanup, engine_api  # noqa: E402,F401
from e2e_support import cleanup  # noqa: E402
import fourth_runtime  # noqa: E402
from fake_runtime import FakeWorld  # noqa: E402

from mlctl.runtime import registry  # noqa: E402

from mlctl import runtimerecords  # noqa: E402

MARKS = {"docker": pytest.mark.docker, "ray": pytest.mark.ray}  # what each runtime's tests need
RUNTIMES = (
    "fake",
    *(pytest.param(name, marks=MARKS.get(name, ())) for name in runtimerecords.available()),
    fourth_runtime.NAME,  # written from docs/architecture.md, installed with an entry point
)


@pytest.fixture
def world():
    """A fake world registered as runtime "fake" for this test."""
    w = FakeWorld()
    registry.register("fake", w.runtime("fake"))
    yield w
    registry.unregister("fake")


@pytest.fixture(scope="session")
def fourth_package(tmp_path_factory):
    """The fourth runtime's package with its dist-info, written once."""
    return fourth_runtime.write_package(tmp_path_factory.mktemp("fourth-runtime"))


@pytest.fixture(params=RUNTIMES)
def harness(request, tmp_path, world, monkeypatch):
    api = request.getfixturevalue("engine_api") if request.param == "docker" else None
    if request.param == fourth_runtime.NAME:
        fourth_runtime.install(request.getfixturevalue("fourth_package"), monkeypatch)
        request.addfinalizer(fourth_runtime.uninstall)
    h = Harness(tmp_path / "proj", request.param)
    if request.param == "ray":
        address = request.getfixturevalue("ray_cluster").address
        (h.project.root / "mlctl.yaml").write_text(f'ray:\n  address: "{address}"\n  replica_cpus: 0.25\n')
    yield h
    if request.param in ("local", "ray", fourth_runtime.NAME):
        cleanup(h.project.root)
    if api is not None:
        docker_cleanup(api, h.project.root)
