"""What decides whether and how an environment is shipped to Ray's nodes (mlctl/runtime/ray/packages.py, nodeenv.py),
on real files: the zip is the same for the same files, never holds a symbolic link, and stops at the size limit;
which interpreters can move; which nodes can run an environment. (Shipping itself: tests/ray/test_packages.py.)"""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path

import pytest

from mlctl.resources import Address, Kind, Resource, Source
from mlctl.runtime.ray import nodeenv, packages

REF = {"python_version": "3.9.18", "machine": "x86_64", "glibc": "2.36", "interpreter": None}


def a_virtualenv(root: Path) -> Path:
    site = root / "lib" / "python3.9" / "site-packages"
    (site / "pkg" / "__pycache__").mkdir(parents=True)
    (site / "pkg" / "__init__.py").write_text("X = 1\n")
    (site / "pkg" / "__pycache__" / "__init__.cpython-39.pyc").write_bytes(b"bytecode")
    (site / "pkg" / "tool").write_text("#!/bin/sh\n")
    (site / "pkg" / "tool").chmod(0o755)
    (site / "secret-link").symlink_to("/etc/hostname")
    (root / "pyvenv.cfg").write_text("home = /opt/python-3.9/bin\ninclude-system-site-packages = false\n")
    return root


def test_the_same_files_make_the_same_zip_without_links_or_bytecode_and_modes_kept(tmp_path):
    env = a_virtualenv(tmp_path / "env")
    first = packages.pack(packages.env_entries(env, "mlctl_env_x"), tmp_path / "a.zip")
    os.utime(env / "lib" / "python3.9" / "site-packages" / "pkg" / "__init__.py", (1, 1))  # times do not count
    second = packages.pack(packages.env_entries(env, "mlctl_env_x"), tmp_path / "b.zip")
    assert first == second and first.startswith("sha256:")
    with zipfile.ZipFile(tmp_path / "a.zip") as z:
        names = z.namelist()
        modes = {i.filename: i.external_attr >> 16 & 0o777 for i in z.infolist()}
    assert names == [
        "mlctl_env_x/lib/python3.9/site-packages/pkg/__init__.py",
        "mlctl_env_x/lib/python3.9/site-packages/pkg/tool",
    ]
    assert modes["mlctl_env_x/lib/python3.9/site-packages/pkg/tool"] == 0o755
    assert packages.base_prefix(env) == Path("/opt/python-3.9")


def test_a_package_over_the_limit_is_a_clear_error_and_leaves_no_file(tmp_path):
    env = a_virtualenv(tmp_path / "env")
    (env / "lib" / "python3.9" / "site-packages" / "big.bin").write_bytes(os.urandom(200_000))
    with pytest.raises(packages.PackageError) as e:
        packages.pack(packages.env_entries(env, "top"), tmp_path / "big.zip", limit=100_000)
    assert "larger than Ray's limit of 0 MiB" in e.value.diagnostics[0].summary
    assert "docs/runtime.md" in e.value.diagnostics[0].detail
    assert list(tmp_path.glob("big.zip*")) == []


def test_which_interpreters_can_move(tmp_path):
    assert "system's Python installation" in packages.interpreter_problem(Path("/usr"), "3.11")
    assert "not a self-contained" in packages.interpreter_problem(tmp_path, "3.9")
    prefix = Path(sys.base_prefix)
    xy = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if prefix.resolve() != Path("/usr"):
        assert packages.interpreter_problem(prefix, xy) is None
        entries = [name for _, name in packages.interpreter_entries(prefix, xy, "top")]
        assert f"top/bin/python{xy}" in entries and f"top/lib/python{xy}/os.py" in entries
        assert not any("/site-packages/" in n or "/test/" in n or n.endswith(".a") for n in entries)


def test_which_nodes_can_run_an_environment():
    assert nodeenv.compatibility_problem(REF, "x86_64", "2.36", "3.11").endswith("needs Python 3.9.18, not shipped")
    assert nodeenv.compatibility_problem({**REF, "interpreter": {"uri": "u"}}, "x86_64", "2.39", "3.11") is None
    assert "CPU architecture is aarch64" in nodeenv.compatibility_problem(REF, "aarch64", "2.36", "3.9")
    assert "glibc 2.31, older than the glibc 2.36" in nodeenv.compatibility_problem(REF, "x86_64", "2.31", "3.9")
    assert nodeenv.compatibility_problem(REF, "x86_64", "2.36", "3.9") is None


def test_package_names_are_under_the_owner_prefix_and_name_the_content():
    uri = packages.package_uri("0123abcd", "env", "sha256:" + "ab" * 32)
    assert uri == "gcs://_ray_pkg_mlctl-0123abcd-env-" + "ab" * 12 + ".zip"
    ref = {"env": {"uri": uri}, "interpreter": {"uri": "gcs://p.zip"}}
    assert packages.py_modules(ref) == [uri, "gcs://p.zip"] and packages.py_modules({**ref, "interpreter": None}) == [
        uri
    ]


def a_built_image(cache: Path, monkeypatch, version: str, home: str) -> Resource:
    """An image resource whose virtualenv is recorded built in `cache` on Python `version` made from `home`."""
    import json

    from mlctl.runtime.kit import virtualenvs

    monkeypatch.setenv("MLCTL_CACHE", str(cache))
    digest = "sha256:" + "9" * 64
    env = virtualenvs.env_path(digest)
    env.mkdir(parents=True)
    (env / "pyvenv.cfg").write_text(f"home = {home}\n")
    record = {"path": str(env), "python_executable": sys.executable, "python_version": version, "platform": "p"}
    record.update(frozen=[], built_with="uv", notes=[], built_at=1.0)
    (env / virtualenvs.COMPLETE).write_text(json.dumps(record))
    attributes = {"environment": "model-1-env", "spec_digest": digest, "python": version}
    return Resource(Address(Kind.IMAGE, "model-1-env"), attributes, "d", source=Source("model-1/env.yml", 4))


def test_an_environment_on_a_system_python_the_nodes_lack_is_a_plan_error_naming_nodes_and_versions(
    tmp_path, monkeypatch
):
    image = a_built_image(tmp_path, monkeypatch, "3.9.2", "/usr/bin")
    (problem,) = packages.shipping_problems([image], "the cluster's nodes 10.0.0.5, 10.0.0.6")
    cluster = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert problem.summary.startswith(f"the cluster's nodes 10.0.0.5, 10.0.0.6 run Python {cluster} and ")
    assert "environment 'model-1-env' needs Python 3.9.2" in problem.summary and "system's Python" in problem.summary
    assert (problem.file, problem.line, problem.address) == ("model-1/env.yml", 4, "image.model-1-env")
    assert "uv python install 3.9" in problem.detail


def test_an_environment_on_the_nodes_python_or_a_movable_one_is_no_problem(tmp_path, monkeypatch):
    same = f"{sys.version_info[0]}.{sys.version_info[1]}.0"
    assert packages.shipping_problems([a_built_image(tmp_path / "a", monkeypatch, same, "/usr/bin")], "n") == []
    movable = tmp_path / "python-3.9"
    (movable / "bin").mkdir(parents=True)
    (movable / "bin" / "python3.9").write_text("")
    (movable / "lib" / "python3.9").mkdir(parents=True)
    (movable / "lib" / "python3.9" / "os.py").write_text("")
    image = a_built_image(tmp_path / "b", monkeypatch, "3.9.2", str(movable / "bin"))
    assert packages.shipping_problems([image], "n") == []
