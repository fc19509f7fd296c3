"""Azure's Kubernetes example (the corpus cases kubernetes-blue and kubernetes-green, their files unmodified) on
the docker runtime: validate, plan, apply, score, destroy with the real CLI, both deployments in one apply, as
Azure's safe-rollout script has them (blue with all the traffic, green scored by its name). Blue's container
holds the deployment's resources as its limits (Memory, NanoCpus) and reservation (MemoryReservation,
CpuShares), and a limit above the engine's machine is a plan error; green (requests only, scale_settings
target_utilization [1, 3]) runs autoscaled on CPU against its request, its container holding the reservation.
Their conda files ask for Python 3.12, and the engine has no registry here: the project file names a base image
with this machine's Python 3.12 (built once per engine for the tests, FROM mlctl's own Debian base, tagged by
what went in)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "corpus"))
from corpus_support import CASES, Case, mlctl, prepare  # noqa: E402
from images import python_base  # noqa: E402

CASES_USED = [Case.read(CASES / "kubernetes-blue"), Case.read(CASES / "kubernetes-green")]
FILES = [
    "-f",
    "kubernetes-endpoint.yml",
    "-f",
    "kubernetes-blue-deployment.yml",
    "-f",
    "kubernetes-green-deployment.yml",
]
TRAFFIC = ["--set", "kubernetes-endpoint.yml:traffic.blue=100"]


@pytest.fixture(scope="session")
def python312_base(_engine_or_reason, mlctl_base) -> str:
    """A base image whose `python3` is this machine's Python 3.12 (its installation copied in, FROM mlctl's base)."""
    client, _ = _engine_or_reason
    return python_base(client, "3.12")


@pytest.fixture
def project(tmp_path, mlctl_cache, python312_base) -> Path:
    """Both cases' files in one work tree of Azure's repository (model-1 for blue, model-2 for green)."""
    project = next(iter({prepare(case, tmp_path / "files", mlctl_cache) for case in CASES_USED}))
    (project / "mlctl.yaml").write_text(f"runtime: docker\ndocker:\n  base_image: {python312_base}\n")
    yield project
    mlctl(project, *FILES, "destroy", "--auto-approve", *TRAFFIC, check=False)


def scored(project: Path, *deployment: str) -> list:
    out = mlctl(project, *FILES, "invoke", "my-endpoint", "--request-file", "sample-request.json", *deployment)
    answer = json.loads(out.stdout)
    assert len(answer) == 2 and all(isinstance(x, float) for x in answer), answer
    return answer


def test_azures_kubernetes_example_runs_in_containers_sized_by_its_resources_green_autoscaled(project, docker_engine):
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
    assert '"type": "target_utilization", "min_instances": 1, "max_instances": 3' in plan.stdout, plan.stdout
    ignored = plan.stdout.split("Ignored fields", 1)[-1].split("\n\n", 1)[0]
    assert "min_instances" not in ignored and "scale_settings" not in ignored, ignored  # honoured on docker
    applied = mlctl(project, *FILES, "apply", "--auto-approve", *TRAFFIC)
    assert "Traceback" not in applied.stderr, applied.stderr
    assert "containers sized by resources: 0.2 CPUs" in applied.stdout + applied.stderr
    scored(project)  # blue, with all the traffic: model-1's regression
    assert scored(project, "--deployment", "green") == [0.5, 0.5]  # model-2's score.py answers a constant

    shown = json.loads(mlctl(project, *FILES, "show", "my-endpoint", "--json").stdout)["deployments"]
    (blue,) = shown["blue"]["instances"]
    host = docker_engine.api.inspect_container(blue["container"])["HostConfig"]
    assert (host["Memory"], host["MemorySwap"], host["NanoCpus"]) == (200 * 2**20, 200 * 2**20, 2 * 10**8)
    assert (host["MemoryReservation"], host["CpuShares"]) == (107374183, 102)  # 0.1Gi, 0.1 CPU
    green = shown["green"]
    assert green["autoscale"]["range"] == [1, 3], green["autoscale"]
    assert green["autoscale"]["metric"] == "CPU (resources.requests.cpu 0.1 per instance)", green["autoscale"]
    (instance,) = green["instances"]
    host = docker_engine.api.inspect_container(instance["container"])["HostConfig"]
    assert (host["MemoryReservation"], host["CpuShares"]) == (107374183, 102)  # 0.1Gi, 0.1 CPU
    text = mlctl(project, *FILES, "show", "my-endpoint").stdout
    assert "autoscaling: 1..3 instance(s), now 1" in text, text

    again = mlctl(project, *FILES, "plan", "--detailed-exitcode", *TRAFFIC, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    mlctl(project, *FILES, "destroy", "--auto-approve", *TRAFFIC)
    state = json.loads((project / ".mlctl" / "state.json").read_text())
    assert state["resources"] == {}
