"""Shared test fixtures. Per-area fixtures live in each tests/<area>/conftest.py.

The ray fixtures are here because two areas use them (tests/ray and the contract suite on ray): one real Ray
cluster per test session, the three machines of tests/ray/raymachines.py (`ray_machines`), for tests marked `ray`;
`ray_cluster` puts a test on its client machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "ray"))
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "diabetes"


_AREA_SECONDS: dict[str, float] = {}
_FILE_SECONDS: dict[str, float] = {}
SLOWEST_FILES = 20


def pytest_runtest_logreport(report):
    """Add each test's setup, call and teardown time to its area (tests/AREA/...): fixtures included."""
    parts = report.nodeid.split("::", 1)[0].split("/")
    area = "/".join(parts[:2]) if len(parts) > 2 else parts[0]
    _AREA_SECONDS[area] = _AREA_SECONDS.get(area, 0.0) + report.duration
    file = report.nodeid.split("::", 1)[0]
    _FILE_SECONDS[file] = _FILE_SECONDS.get(file, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    """Where the session's time went, by area: each issue has a CI budget (README, "Tests")."""
    if not _AREA_SECONDS:
        return
    terminalreporter.section("time by area (setup + call + teardown)")
    for area, seconds in sorted(_AREA_SECONDS.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"{seconds:8.1f} s  {area}")
    terminalreporter.section(f"the {SLOWEST_FILES} slowest test files")
    for file, seconds in sorted(_FILE_SECONDS.items(), key=lambda item: -item[1])[:SLOWEST_FILES]:
        terminalreporter.write_line(f"{seconds:8.1f} s  {file}")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "ray: needs a real Ray cluster: run by `./dev test` inside a network "
        "namespace holding only loopback (unshare --net)",
    )


@pytest.fixture(scope="session")
def ray_machines(mlctl_cache, tmp_path_factory):
    """The session's Ray cluster of three machines (tests/ray/raymachines.py): the head and a worker node in
    network namespaces of their own that see no mlctl cache and no test folder, and the client machine where
    mlctl and load clients run (`ray_machines.client.run(argv)`, or `raymachines.joined`). Needs root: skipped
    without it, failed in CI (tests/netns.py)."""
    from netns import require_namespaces
    from raymachines import RayMachines

    require_namespaces()
    machines = RayMachines.start(mlctl_cache, tmp_path_factory.getbasetemp())
    yield machines
    machines.stop()


@pytest.fixture
def ray_cluster(ray_machines):
    """The session's one Ray cluster (`ray_machines`) for a test that runs as on its client machine: the test's
    thread is in the client's network namespace from its setup to its teardown (raymachines.joined), so what it
    starts meanwhile (the CLI, endpoint hosts, load clients' threads, an in-process driver's Ray and gRPC threads)
    is there too and reaches the cluster at `ray_cluster.address` and the hosts at 127.0.0.1. One cluster for
    every ray test: a second one cost minutes of CPU to start and kept its Ray processes busy all the run."""
    from raymachines import joined

    with joined(ray_machines.client):
        yield ray_machines


@pytest.fixture
def ray_machines_restored(ray_machines):
    """The session's three machines for a test that kills Ray nodes: each node not alive after it is started again."""
    yield ray_machines
    ray_machines.ensure_up()


@pytest.fixture(scope="session")
def mlctl_cache():
    """MLCTL_CACHE for the CLI subprocesses: CI's when set, else a cache kept across test sessions
    (`~/.cache/mlctl-tests`: virtualenvs and images are built once and reused)."""
    old = os.environ.get("MLCTL_CACHE")
    if not old:
        os.environ["MLCTL_CACHE"] = str(Path.home() / ".cache" / "mlctl-tests")
    yield Path(os.environ["MLCTL_CACHE"])
    if not old:
        os.environ.pop("MLCTL_CACHE", None)


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory):
    """The example's model trained once per session (no download: sklearn's bundled diabetes data), for
    the e2e, docker and ray tests alike."""
    out = tmp_path_factory.mktemp("trained")
    subprocess.run([sys.executable, str(EXAMPLE / "train.py"), str(out)], check=True, capture_output=True)
    return out / "model.pkl"


@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    """One Azurite for the session (tests/azurite_server.py); each test uses a container of its own."""
    from azurite_server import started

    server = started(tmp_path_factory.mktemp("azurite"))
    yield server
    server.stop()
