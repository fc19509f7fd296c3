"""mlctl's own files in the data folder are never written, reused or chmod-ed through a symbolic link
(mlctl.privatefiles): the state's backup and temp file, the secrets file and folder, run records, logs."""

from __future__ import annotations

import os
import stat

import pytest

from mlctl.errors import MlctlError
from mlctl.privatefiles import write_atomic
from mlctl.runtime.host import secrets
from mlctl.runtime.host.logfiles import RotatingLog, log_files
from mlctl.runtime.host.runfiles import read_run_record, run_file, write_run_record
from mlctl.state.statefile import State, backup_path, read_state, write_state

VICTIM = b"the runner's own file\n"


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "outside" / "victim"
    path.parent.mkdir()
    path.write_bytes(VICTIM)
    os.chmod(path, 0o644)
    return path


def test_a_temp_file_planted_under_the_old_predictable_name_is_not_written_through(tmp_path, victim):
    path = tmp_path / "state.json"
    os.symlink(victim, tmp_path / f".state.json.{os.getpid()}.tmp")
    write_atomic(path, b"{}\n")
    assert path.read_bytes() == b"{}\n" and not path.is_symlink()
    assert victim.read_bytes() == VICTIM


def test_write_atomic_refuses_a_link_at_the_path(tmp_path, victim):
    os.symlink(victim, tmp_path / "state.json")
    with pytest.raises(MlctlError, match="is a symbolic link"):
        write_atomic(tmp_path / "state.json", b"{}")
    assert victim.read_bytes() == VICTIM


def test_a_backup_shipped_as_a_link_is_refused(tmp_path, victim):
    path = tmp_path / ".mlctl" / "state.json"
    state = write_state(path, State())
    os.symlink(victim, backup_path(path))
    with pytest.raises(MlctlError, match="state.json.backup is a symbolic link"):
        write_state(path, read_state(path))
    assert victim.read_bytes() == VICTIM
    assert read_state(path).serial == state.serial


def test_a_secrets_file_shipped_as_a_link_is_neither_reused_nor_chmod_ed(tmp_path, victim):
    data = tmp_path / ".mlctl"
    (data / "secrets").mkdir(parents=True)
    os.symlink(victim, secrets.secrets_path(data, "shop"))
    with pytest.raises(MlctlError, match="shop.json is a symbolic link"):
        secrets.ensure_keys(data, "shop")
    with pytest.raises(MlctlError, match="shop.json is a symbolic link"):
        secrets.read_keys(data, "shop")
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644 and victim.read_bytes() == VICTIM


def test_a_secrets_folder_shipped_as_a_link_is_refused(tmp_path):
    data = tmp_path / ".mlctl"
    data.mkdir()
    outside = tmp_path / "outside-folder"
    outside.mkdir(mode=0o755)
    os.symlink(outside, data / "secrets")
    with pytest.raises(MlctlError, match="secrets is a symbolic link"):
        secrets.ensure_keys(data, "shop")
    assert list(outside.iterdir()) == [] and stat.S_IMODE(outside.stat().st_mode) == 0o755


def test_a_secrets_file_found_as_a_regular_file_is_kept_and_made_private(tmp_path):
    data = tmp_path / ".mlctl"
    secrets.ensure_keys(data, "shop")
    path = secrets.secrets_path(data, "shop")
    keys = secrets.read_keys(data, "shop")
    os.chmod(path, 0o644)
    secrets.ensure_keys(data, "shop")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and secrets.read_keys(data, "shop") == keys


def test_run_records_and_logs_are_not_read_or_written_through_links(tmp_path, victim):
    data = tmp_path / ".mlctl"
    (data / "run").mkdir(parents=True)
    victim.write_text('{"pid": 1, "port": 1, "admin_socket": "/var/run/docker.sock"}')
    os.symlink(victim, run_file(data, "shop"))
    assert read_run_record(data, "shop") is None
    with pytest.raises(MlctlError, match="shop.json is a symbolic link"):
        write_run_record(data, "shop", {"pid": 2})
    logs = data / "logs" / "shop"
    logs.mkdir(parents=True)
    os.symlink(victim, logs / "host.log")
    with pytest.raises(MlctlError, match="no logs"):
        log_files(data, "shop", None, None)
    with pytest.raises(OSError):
        RotatingLog(logs / "host.log")
    assert victim.read_text().startswith('{"pid": 1')
