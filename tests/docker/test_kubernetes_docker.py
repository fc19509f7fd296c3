"""Azure's Kubernetes example (the corpus case kubernetes-blue, its files unmodified) on the docker runtime:
validate, plan, apply, score, destroy with the real CLI; the container holds the deployment's resources as
its limits (Memory, NanoCpus) and reservation (MemoryReservation, CpuShares); a limit above the engine's
machine is a plan error. Its conda file asks for Python 3.12, and the engine has no registry here: the
project file names a base image with this machine's Python 3.12 (built once per engine for the tests, FROM
mlctl's own Debian base, tagged by what went in)."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "corpus"))
from corpus_support import CASES, Case, find_interpreter, mlctl, prepare  # noqa: E402

CASE = Case.read(CASES / "kubernetes-blue")
FILES = ["-f", "kubernetes-endpoint.yml", "-f", "kubernetes-blue-deployment.yml"]
TRAFFIC = ["--set", "kubernetes-endpoint.yml:traffic.blue=100"]
SKIPPED = ("test", "idlelib", "tkinter", "site-packages", "__pycache__", "ensurepip")


@pytest.fixture(scope="session")
def python312_base(_engine_or_reason, mlctl_base) -> str:
    """A base image whose `python3` is this machine's Python 3.12 (its installation copied in, FROM mlctl's base)."""
    import docker

    client, _ = _engine_or_reason
    prefix = Path(find_interpreter("3.12")).resolve().parents[1]
    recipe = hashlib.sha256(f"{prefix}:{mlctl_base.image_id}".encode()).hexdigest()[:12]
    tag = f"mlctl-test/python312:{recipe}"
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    dockerfile = (
        f"FROM {mlctl_base.image_id}\nCOPY python /opt/python3.12\nENV LD_LIBRARY_PATH=/opt/python3.12/lib\n"
        'RUN ["ln", "-sf", "/opt/python3.12/bin/python3.12", "/usr/local/bin/python3"]\n'
    )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        tar.add(prefix, "python", filter=lambda t: None if Path(t.name).name in SKIPPED else t)
    buffer.seek(0)
    client.images.build(fileobj=buffer, custom_context=True, tag=tag, network_mode="none", rm=True)
    return tag


@pytest.fixture
def project(tmp_path, mlctl_cache, python312_base) -> Path:
    project = prepare(CASE, tmp_path / "files", mlctl_cache)
    (project / "mlctl.yaml").write_text(f"runtime: docker\ndocker:\n  base_image: {python312_base}\n")
    yield project
    mlctl(project, *FILES, "destroy", "--auto-approve", *TRAFFIC, check=False)


def test_azures_kubernetes_example_runs_in_containers_sized_by_its_resources(project, docker_engine):
    mlctl(project, *FILES, "validate", *TRAFFIC)
    huge = [*TRAFFIC, "--set", "kubernetes-blue-deployment.yml:resources.limits.memory=1Pi"]
    refused = mlctl(project, *FILES, "plan", *huge, check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "resources.limits.memory (1Pi) is more than the Docker engine's machine can give one instance" in (
        refused.stderr
    )
    assert "at kubernetes-blue-deployment.yml:22, field 'resources.limits.memory'" in refused.stderr

    plan = mlctl(project, *FILES, "plan", *TRAFFIC)
    assert "to add" in plan.stdout and "docker runtime" in plan.stdout, plan.stdout
    applied = mlctl(project, *FILES, "apply", "--auto-approve", *TRAFFIC)
    assert "containers sized by resources: 0.2 CPUs" in applied.stdout + applied.stderr
    answer = json.loads(mlctl(project, *FILES, "invoke", "my-endpoint", "--request-file", "sample-request.json").stdout)
    assert len(answer) == 2 and all(isinstance(x, float) for x in answer)

    shown = json.loads(mlctl(project, *FILES, "show", "my-endpoint", "--json").stdout)
    (instance,) = shown["deployments"]["blue"]["instances"]
    host = docker_engine.api.inspect_container(instance["container"])["HostConfig"]
    assert (host["Memory"], host["MemorySwap"], host["NanoCpus"]) == (200 * 2**20, 200 * 2**20, 2 * 10**8)
    assert (host["MemoryReservation"], host["CpuShares"]) == (107374183, 102)  # 0.1Gi, 0.1 CPU

    mlctl(project, *FILES, "destroy", "--auto-approve", *TRAFFIC)
    state = json.loads((project / ".mlctl" / "state.json").read_text())
    assert state["resources"] == {}
