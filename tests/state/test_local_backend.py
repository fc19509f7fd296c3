"""The local backend behind the backend interface: conditional writes, versions, push, and the CLI's state commands."""

import json
import os
import subprocess
import sys

import pytest

from mlctl.errors import MlctlError
from mlctl.state.localfile import LocalBackend
from mlctl.state.statefile import read_state, write_state


def mlctl(root, *args):
    return subprocess.run(
        [sys.executable, "-m", "mlctl.cli", "-C", str(root), *args], capture_output=True, text=True, timeout=120
    )


def test_a_write_is_conditional_on_the_etag_it_was_read_at(tmp_path):
    backend = LocalBackend(tmp_path / ".mlctl" / "state.json")
    first = write_state(backend, read_state(backend))
    a, b = read_state(backend), read_state(backend)
    assert a.etag == b.etag == first.etag
    write_state(backend, a)
    with pytest.raises(MlctlError, match=r"the state changed since it was read \(serial 2, expected 1\)"):
        write_state(backend, b)  # b was read before a's write: refused, nothing written
    assert read_state(backend).serial == 2
    # the same with equal serials: a conditional write notices what a serial check cannot
    c, d = read_state(backend), read_state(backend)
    d.serial -= 1
    write_state(backend, c)
    with pytest.raises(MlctlError, match="changed since it was read"):
        write_state(backend, d)


def test_versions_are_the_file_and_its_backup(tmp_path):
    backend = LocalBackend(tmp_path / ".mlctl" / "state.json")
    state = read_state(backend)
    for _ in range(3):
        state = write_state(backend, state)
    assert [v.serial for v in backend.versions()] == [2, 3]
    assert json.loads(backend.read_version(2))["serial"] == 2
    with pytest.raises(MlctlError, match=r"(?s)no state version with serial 1 in .*the latest: 2, 3"):
        backend.read_version(1)


def test_state_commands_on_the_local_backend(tmp_path):
    backend = LocalBackend(tmp_path / ".mlctl" / "state.json")
    state = read_state(backend)
    for _ in range(2):
        state = write_state(backend, state)
    r = mlctl(tmp_path, "state", "versions")
    assert r.returncode == 0 and [line.split()[0] for line in r.stdout.splitlines()] == ["1", "2"]
    r = mlctl(tmp_path, "state", "pull", "--serial", "1")
    assert r.returncode == 0 and json.loads(r.stdout)["serial"] == 1
    older = tmp_path / "older.json"
    older.write_text(r.stdout)
    r = mlctl(tmp_path, "state", "push", str(older))
    assert r.returncode == 1 and "holds serial 2; " in r.stderr and "Traceback" not in r.stderr
    newer = json.loads(older.read_text()) | {"serial": 7}
    older.write_text(json.dumps(newer))
    r = mlctl(tmp_path, "state", "push", str(older))
    assert r.returncode == 0, r.stderr
    assert read_state(backend).serial == 7
    other = newer | {"lineage": "another", "serial": 9}
    older.write_text(json.dumps(other))
    r = mlctl(tmp_path, "state", "push", str(older))
    assert r.returncode == 1 and "is of lineage another" in r.stderr
    r = mlctl(tmp_path, "state", "force-unlock", "123")
    assert r.returncode == 1 and "cannot be broken, and never needs to be" in r.stderr


def test_a_state_block_naming_a_moved_store_refuses_plans_until_migrated(tmp_path):
    backend = LocalBackend(tmp_path / ".mlctl" / "state.json")
    write_state(backend, read_state(backend))
    (tmp_path / "mlctl.yaml").write_text("state:\n  backend: azure_blob\n  account_url: http://127.0.0.1:9/x\n")
    r = mlctl(tmp_path, "plan", "--refresh=false")
    assert r.returncode == 1
    assert "the azure_blob state backend needs a container" in r.stderr and "mlctl.yaml:2" in r.stderr
    (tmp_path / "mlctl.yaml").write_text("state:\n  backend: local\n  container: box\n")
    r = mlctl(tmp_path, "plan", "--refresh=false")
    assert r.returncode == 1 and "'container' is a setting of the azure_blob state backend" in r.stderr
    (tmp_path / "mlctl.yaml").write_text(
        "state:\n  backend: azure_blob\n  container: box\n  account_url: http://127.0.0.1:9/acct\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")} | {"AZURE_STORAGE_KEY": "a2V5"}
    r = subprocess.run(
        [sys.executable, "-m", "mlctl.cli", "-C", str(tmp_path), "plan", "--refresh=false"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 1
    assert "the state: block moved the state from the local state file to azure_blob http://127.0.0.1:9/acct" in (
        r.stderr
    )
    assert "mlctl state migrate" in r.stderr
