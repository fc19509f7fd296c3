"""`docker.spare_container` in mlctl.yaml: true or false, anything else an error naming the file, line and field
through the real CLI (validate reads no engine)."""

from __future__ import annotations


from test_project_file import mlctl, small_project


def test_a_spare_container_setting_that_is_not_a_boolean_is_an_error_at_its_line(tmp_path):
    root = small_project(tmp_path)
    (root / "mlctl.yaml").write_text("runtime: docker\ndocker:\n  spare_container: always\n")
    r = mlctl("-C", str(root), "validate")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "at mlctl.yaml:3, field 'docker.spare_container'" in r.stderr, r.stderr
    assert "spare_container is false" in r.stderr, r.stderr
    (root / "mlctl.yaml").write_text("runtime: docker\ndocker:\n  spare_container: true\n")
    r = mlctl("-C", str(root), "validate")
    assert r.returncode == 0, r.stderr
