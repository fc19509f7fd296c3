"""`local.fork_server` in mlctl.yaml: true or false, anything else an error naming the file, line and field
through the real CLI; false reaches the serving spec, so the host starts each instance fresh."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from mlctl.runtime.kit.virtualenvimages import virtualenv_spec

from test_project_file import mlctl, small_project


def test_a_fork_server_setting_that_is_not_a_boolean_is_an_error_at_its_line(tmp_path):
    root = small_project(tmp_path)
    (root / "mlctl.yaml").write_text("runtime: local\nlocal:\n  fork_server: no-thanks\n")
    r = mlctl("-C", str(root), "validate")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "at mlctl.yaml:3, field 'local.fork_server'" in r.stderr and "fork_server is true" in r.stderr, r.stderr
    (root / "mlctl.yaml").write_text("runtime: local\nlocal:\n  fork_server: false\n")
    r = mlctl("-C", str(root), "validate")
    assert r.returncode == 0, r.stderr


def test_fork_server_false_reaches_the_serving_spec(tmp_path):
    a = {"name": "blue", "scoring_script": "score.py", "model": "m", "model_version": "1", "instance_count": 1}
    for settings, launch in (
        ({"fork_server": False}, {"fork_server": False}),
        ({"fork_server": True}, None),
        ({}, None),
    ):
        ctx = SimpleNamespace(settings=settings, data_dir=Path(tmp_path))
        assert virtualenv_spec(ctx, a, "process").get("launch") == launch
