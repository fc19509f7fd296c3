"""Azure's Kubernetes example (the corpus case kubernetes-blue, its files unmodified) on the local runtime:
each instance in its own cgroup holding `resources.limits` and `requests` (shown with a small deployment of
the same kind beside Azure's endpoint, which starts in seconds); an instance that outgrows its limit is a
clear error while the old instance keeps serving; Azure's own limit this machine cannot give, or cannot
enforce (the cgroup file system read-only, in a mount namespace of the test's own), is a plan error naming
file, line and field. The case itself (validate, plan, apply, score, destroy) runs in test_corpus.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from corpus_support import CASES, Case, mlctl, prepare

from mlctl.runtime.kit import cgroups

CASE = Case.read(CASES / "kubernetes-blue")
FILES = ["-f", "kubernetes-endpoint.yml", "-f", "kubernetes-blue-deployment.yml"]
TRAFFIC = ["--set", "kubernetes-endpoint.yml:traffic.blue=100"]
DEPLOYMENT = "kubernetes-blue-deployment.yml"
MI = 2**20


@pytest.fixture
def project(tmp_path, mlctl_cache) -> Path:
    project = prepare(CASE, tmp_path / "files", mlctl_cache)
    yield project
    mlctl(project, *FILES, "destroy", "--auto-approve", *TRAFFIC, check=False)


@pytest.fixture(scope="module")
def unapplied(tmp_path_factory, mlctl_cache) -> Path:
    """The case's project for the tests that only plan it (their plans change nothing: no destroy after them)."""
    return prepare(CASE, tmp_path_factory.mktemp("unapplied") / "files", mlctl_cache)


def instance_groups(project: Path, files: list[str], deployment: str) -> dict[str, Path]:
    """{controller: the folder of the cgroup} of the deployment's one instance, read from /proc/PID/cgroup."""
    shown = json.loads(mlctl(project, *files, "show", "my-endpoint", "--json").stdout)
    (instance,) = shown["deployments"][deployment]["instances"]
    found = cgroups.own_hierarchies(Path(f"/proc/{instance['pid']}/cgroup").read_text())
    ours = cgroups.current()
    return {c: h.group for c, h in found.items() if c in ours and h.group.name.startswith(cgroups.PREFIX)}


def read(group: Path, *names: str) -> str:
    return next((group / n).read_text().strip() for n in names if (group / n).exists())


SIZED = """\
$schema: https://azuremlschemas.azureedge.net/latest/kubernetesOnlineDeployment.schema.json
name: sized
type: kubernetes
endpoint_name: my-endpoint
model:
  path: ../model-1/model/
code_configuration:
  code: hog/
  scoring_script: score.py
environment_variables:
  HOG_MB: "{hog}"
readiness_probe:
  initial_delay: 0
  period: 1
resources:
  requests:
    # a whole CPU's weight (cpu.shares 1024, cpu.weight 100): at 100m (102, 10) the instance, beside the
    # machine's own tasks, took 91 s to start at load 10-20 and was not ready in its probe's budget
    cpu: "1"
    memory: 0.1Gi
  limits:
    cpu: "1"
    memory: 200Mi
"""
HOG = """\
import os


def init():
    global hog
    hog = [b"x" * 2**20 for _ in range(int(os.environ["HOG_MB"]))]  # every page written


def run(raw_data):
    return len(hog)
"""


def test_instances_run_in_a_cgroup_of_their_resources_and_a_limit_too_small_is_a_clear_error(project):
    """A small deployment of Azure's Kubernetes kind beside Azure's endpoint (no environment: it starts in
    seconds), first within its 200Mi, then rolled to an init() that needs more."""
    (project / "hog").mkdir()
    (project / "hog" / "score.py").write_text(HOG)
    files = ["-f", "kubernetes-endpoint.yml", "-f", "sized.yml"]
    traffic = ["--set", "kubernetes-endpoint.yml:traffic.sized=100"]
    (project / "sized.yml").write_text(SIZED.format(hog=20))
    if cgroups.why_not(cgroups.current().get("memory")) is not None:  # this machine's path: the plan error
        refused = mlctl(project, *files, "plan", *traffic, check=False)
        assert refused.returncode == 1 and "resources.limits.memory needs a cgroup" in refused.stderr
        return
    try:
        mlctl(project, *files, "apply", "--auto-approve", *traffic)
        groups = instance_groups(project, files, "sized")
        assert int(read(groups["memory"], "memory.max", "memory.limit_in_bytes")) == 200 * MI
        low = int(read(groups["memory"], "memory.low", "memory.soft_limit_in_bytes"))
        assert abs(low - 107374183) < 4096  # 0.1Gi, to the kernel's page
        if "cpu" in groups:  # a writable CPU controller (else plan notes that CPU is not enforced)
            assert read(groups["cpu"], "cpu.max", "cpu.cfs_quota_us").split()[0] == "100000"
            # inside its host's parent group, weighted as this machine's CPUs (cgroups.instances_parent)
            parent = groups["cpu"].parent
            assert re.fullmatch(r"mlctl-\d+-instances", parent.name), parent
            cpus = len(os.sched_getaffinity(0))
            assert read(parent, "cpu.weight", "cpu.shares") in (str(min(10000, 100 * cpus)), str(1024 * cpus))
        assert (
            mlctl(project, *files, "invoke", "my-endpoint", "--request-file", "sample-request.json").stdout.strip()
            == "20"
        )
        shown = json.loads(mlctl(project, *files, "show", "my-endpoint", "--json").stdout)
        (instance,) = shown["deployments"]["sized"]["instances"]
        assert (instance["cgroup"], instance["memory_bytes"], instance["cpus"]) == (
            str(groups["memory"]),
            200 * MI,
            1.0,
        )

        # init() now needs 300 MiB: the kernel kills it at its limit, mlctl says so; the old instance serves on
        (project / "sized.yml").write_text(SIZED.format(hog=300))
        failed = mlctl(project, *files, "apply", "--auto-approve", *traffic, check=False)
        assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr
        assert "was killed for running out of memory (its limit, resources.limits.memory, is 200Mi)" in failed.stderr
        said = mlctl(project, *files, "show", "my-endpoint").stdout
        assert "killed" not in said  # the failed roll's instance is gone; the serving one never ran out
        assert (
            mlctl(project, *files, "invoke", "my-endpoint", "--request-file", "sample-request.json").stdout.strip()
            == "20"
        )
    finally:
        mlctl(project, *files, "destroy", "--auto-approve", *traffic, check=False)
    assert not groups["memory"].exists()


def test_a_limit_beyond_this_machine_is_a_plan_error_naming_the_largest(unapplied):
    huge = [
        *TRAFFIC,
        "--set",
        f"{DEPLOYMENT}:resources.limits.memory=1Ei",
        "--set",
        f"{DEPLOYMENT}:resources.limits.cpu=4096",
    ]
    out = mlctl(unapplied, *FILES, "plan", *huge, check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert (
        "resources.limits.memory (1Ei) is more than this machine can give one instance on the local runtime: at most"
        in out.stderr
    )
    assert "resources.limits.cpu (4096 CPUs) is more than this machine" in out.stderr
    assert f"at {DEPLOYMENT}:21, field 'resources.limits.cpu'" in out.stderr
    assert f"at {DEPLOYMENT}:22, field 'resources.limits.memory'" in out.stderr


def test_a_memory_limit_where_no_cgroup_is_writable_is_a_plan_error(unapplied):
    """Where this machine can make memory cgroups, the test makes its cgroup file system read-only in a mount
    namespace of its own (root's `unshare`); where it cannot, the plan as it is shows the error."""
    command = [sys.executable, "-m", "mlctl.cli", *FILES, "plan", *TRAFFIC]
    memory = cgroups.current().get("memory")
    if cgroups.why_not(memory) is None:
        assert memory is not None and shutil.which("unshare") and shutil.which("findmnt"), "util-linux is needed"
        found = subprocess.run(
            ["findmnt", "-n", "-o", "TARGET", "-T", str(memory.group)], capture_output=True, text=True
        )
        script = f'mount -o remount,bind,ro "{found.stdout.strip()}" && exec "$@"'
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *command]
    out = subprocess.run(command, cwd=unapplied, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "resources.limits.memory needs a cgroup on the local runtime, and " in out.stderr
    assert f"at {DEPLOYMENT}:22, field 'resources.limits.memory'" in out.stderr
    assert "Run mlctl where it may make child cgroups" in out.stderr
