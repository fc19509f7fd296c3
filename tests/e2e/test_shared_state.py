"""Issue 25: a team's shared state in Azure Blob Storage, against a real Azurite, with real applies on the local
runtime: two project folders (two "machines") sharing one state, racing applies, an apply SIGKILLed holding
the lease, and Azurite stopped in the middle of an apply (errored state saved, pushed back, converged)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import uuid

import pytest
from e2e_support import SplitProject, alive, cleanup, host_pids, mlctl, wait_until

from mlctl.state.azureblob import AzureBlobBackend
from mlctl.state.statefile import read_state

GATED_SCORE = """\
import os, time

def init():  # waits (at most 300 s) until the test opens the gate: the apply holds the lock meanwhile
    deadline = time.monotonic() + 300
    while not os.path.exists(os.environ["GATE"]) and time.monotonic() < deadline:
        time.sleep(0.05)

def run(raw_data):
    return {"who": os.environ.get("WHO", "?")}
"""


@pytest.fixture
def box(azurite, monkeypatch):
    """A container of its own on the session's Azurite, its connection string in the environment of every
    mlctl the test runs (and of the cleanup's)."""
    name = f"e{uuid.uuid4().hex[:12]}"
    azurite.service().create_container(name)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    return azurite, name


def shared_project(root, container, gate) -> SplitProject:
    """A project whose deployment's init() waits for the file `gate` to exist, its state in the blob."""
    p = SplitProject(root, "shared")
    (root / "code" / "score.py").write_text(GATED_SCORE)
    p.write({"blue": 100}, {"blue": {"count": 1}})
    deploy = root / "deploy-blue.yml"
    deploy.write_text(deploy.read_text().replace("  WHO: blue\n", f"  WHO: blue\n  GATE: {gate}\n"))
    # local.instance_user: mlctl (the opt-out): init() waits for a gate file in this test's /tmp folder, which a
    # confined instance (as root) cannot see; these tests are about the shared state, not confinement
    (root / "mlctl.yaml").write_text(
        f"state:\n  backend: azure_blob\n  container: {container}\n  name: team/shared.json\n  lease_seconds: 15\n"
        "local: {instance_user: mlctl}\n"
    )
    return p


def blob_backend(container) -> AzureBlobBackend:
    return AzureBlobBackend({"container": container, "name": "team/shared.json", "lease_seconds": 15}, "x")


def start_apply(root, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mlctl.cli", "-C", str(root), "apply", "--auto-approve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def changes(root) -> list:
    plan = json.loads(mlctl(root, "plan", "--json", check=False).stdout)
    return [(c["address"], c["actions"]) for c in plan["resource_changes"] if c["actions"] != ["no-op"]]


def test_two_folders_share_the_state_and_never_plan_to_recreate_the_others_endpoints(box, tmp_path):
    azurite, container = box
    (tmp_path / "gate").touch()
    a = shared_project(tmp_path / "a", container, tmp_path / "gate").root
    b = shared_project(tmp_path / "b", container, tmp_path / "gate").root
    try:
        mlctl(a, "apply", "--auto-approve")
        assert read_state(blob_backend(container)).resources  # the state is in the blob, not in a/.mlctl
        assert not (a / ".mlctl" / "state.json").exists()
        # a pull-request plan from the other folder reads the shared state: no changes
        assert mlctl(b, "plan", "--refresh=false", "--detailed-exitcode", check=False).returncode == 0
        for args in (["plan"], ["apply", "--auto-approve"], ["destroy", "--auto-approve"]):
            out = mlctl(b, *args, check=False)
            assert out.returncode == 1 and "Traceback" not in out.stderr, (args, out.stderr)
            assert "the endpoints in the shared state run on the machine " in out.stderr, out.stderr
            assert str(a / ".mlctl") in out.stderr and "--refresh=false" in out.stderr
        assert mlctl(a, "plan", "--detailed-exitcode", check=False).returncode == 0
        mlctl(a, "destroy", "--auto-approve")
        assert read_state(blob_backend(container)).resources == {}
        # once nothing is deployed, the other folder applies, plans and destroys
        mlctl(b, "apply", "--auto-approve")
        assert mlctl(b, "plan", "--detailed-exitcode", check=False).returncode == 0
        mlctl(b, "destroy", "--auto-approve")
        versions = mlctl(b, "state", "versions").stdout.splitlines()
        assert len(versions) == read_state(blob_backend(container)).serial  # every write kept
    finally:
        cleanup(a)
        cleanup(b)


def test_racing_applies_one_fails_naming_the_holder_one_waits(box, tmp_path):
    azurite, container = box
    gate = tmp_path / "gate"
    root = shared_project(tmp_path / "p", container, gate).root
    first = start_apply(root)
    waiter = None
    try:
        assert wait_until(lambda: blob_backend(container).holder() is not None, timeout=120)
        held = blob_backend(container).holder()
        second = mlctl(root, "apply", "--auto-approve", check=False)
        assert second.returncode == 1 and f"pid {first.pid} (operation 'apply'" in second.stderr
        assert held.id in second.stderr
        waiter = start_apply(root, "--lock-timeout", "5m")
        said = waiter.stderr.readline()  # it says whom it waits for, then waits
        assert said.startswith("Waiting up to 300s for the state lock held by ") and held.id in said
        assert first.poll() is None  # the first still holds the lock (its deployment waits for the gate)
        gate.touch()
        out, err = first.communicate(timeout=300)
        assert first.returncode == 0, err
        out, err = waiter.communicate(timeout=300)
        assert waiter.returncode == 0, err
        assert "No changes" in out  # it planned from the state the first wrote: nothing left to do
        assert changes(root) == []
    finally:
        for proc in (first, waiter):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        cleanup(root)


def test_an_apply_killed_holding_the_lease_blocks_only_until_it_expires(box, tmp_path):
    azurite, container = box
    gate = tmp_path / "gate"
    root = shared_project(tmp_path / "p", container, gate).root
    killed = start_apply(root)
    try:
        assert wait_until(lambda: read_state(blob_backend(container)).pending is not None, timeout=120)
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
        held = blob_backend(container).holder()
        assert held is not None and f"pid {killed.pid}" in held.who  # the lease outlives its holder...
        refused = mlctl(root, "apply", "--auto-approve", check=False)
        assert refused.returncode == 1 and f"pid {killed.pid}" in refused.stderr
        assert "frees it within 15s" in refused.stderr
        # ...until it expires: the next apply waits for it, then carries on from the recorded intent
        gate.touch()
        after = mlctl(root, "apply", "--auto-approve", "--lock-timeout", "2m", check=False)
        assert after.returncode == 0, after.stderr
        assert "Waiting up to 120s for the state lock held by" in after.stderr
        assert read_state(blob_backend(container)).pending is None
        assert changes(root) == []
    finally:
        cleanup(root)


def test_storage_stopped_mid_apply_saves_the_state_to_push_back(tmp_path, monkeypatch):
    from azurite_server import started

    azurite = started(tmp_path / "azurite")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    azurite.service().create_container("box")
    gate = tmp_path / "gate"
    root = shared_project(tmp_path / "p", "box", gate).root
    try:
        apply = start_apply(root)
        backend = blob_backend("box")

        def intent_kept() -> bool:  # the deployment's intent written, and its copy kept (the write is over)
            state = read_state(backend)
            kept = backend.versions()
            return (state.pending or {}).get("address") == "deployment.shared.blue" and kept[-1].serial == state.serial

        assert wait_until(intent_kept, timeout=120)
        azurite.stop()  # the deployment's instance is starting: its result cannot be written
        gate.touch()
        out, err = apply.communicate(timeout=300)
        assert apply.returncode == 1 and "Traceback" not in err
        errored = root / ".mlctl" / "errored-state.json"
        assert "apply stopped: the state could not be written" in err and f"mlctl state push {errored}" in err
        assert stat.S_IMODE(os.stat(errored).st_mode) == 0o600
        saved = json.loads(errored.read_text())
        assert saved["resources"]["deployment.shared.blue"]["status"] == "ready", (err, saved)  # kept
        hosts = host_pids(root)  # from the endpoint host's run record (the state store is down)
        assert hosts and all(alive(pid) for pid in hosts)
        azurite.start()
        pushed = mlctl(root, "state", "push", str(errored), "--lock-timeout", "1m")
        assert "Pushed" in pushed.stdout
        assert ("deployment.shared.blue", ["create"]) not in changes(root)  # never started twice
        mlctl(root, "apply", "--auto-approve")
        assert changes(root) == []
        assert json.loads(mlctl(root, "show", "shared", "--json").stdout)["host"]["pid"] in hosts
    finally:
        if azurite.proc is None:
            azurite.start()
        cleanup(root)
        azurite.stop()
