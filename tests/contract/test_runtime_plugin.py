"""A runtime shipped as a package of its own is found through the `mlctl.runtimes` entry points: the fourth
runtime's package (fourth_runtime.py) with a real dist-info on PYTHONPATH, and the real CLI in a subprocess:
its name is accepted in mlctl.yaml, its settings block is checked against its record's schema, plan and apply
run on it (its endpoint host loads its launcher by the record's name), and without the package it is unknown."""

from __future__ import annotations

import json
import os

import fourth_runtime
from e2e_support import SplitProject, cleanup, mlctl


def env_with(package_dir) -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(package_dir), os.environ.get("PYTHONPATH")]))}


def test_an_installed_runtime_is_planned_applied_and_checked_by_its_record(tmp_path):
    package = fourth_runtime.write_package(tmp_path / "site")
    split = SplitProject(tmp_path / "proj", "plug")
    split.write({"blue": 100}, {"blue": {"count": 1}})
    (split.root / "mlctl.yaml").write_text("runtime: fourth\nfourth: {bogus: 1}\n")
    bad = mlctl(split.root, "plan", check=False, env=env_with(package))
    assert bad.returncode == 1 and "the fourth runtime has no setting 'bogus'" in bad.stderr, bad.stderr

    (split.root / "mlctl.yaml").write_text("runtime: fourth\n")
    unknown = mlctl(split.root, "plan", check=False)  # without the package on the path
    assert unknown.returncode == 1 and "'fourth'" in unknown.stderr, unknown.stderr

    try:
        mlctl(split.root, "apply", "--auto-approve", env=env_with(package))
        state = json.loads((split.root / ".mlctl" / "state.json").read_text())
        assert {r["runtime"] for r in state["resources"].values()} == {"fourth"}
        shown = json.loads(mlctl(split.root, "show", "plug", "--json", env=env_with(package)).stdout)
        assert shown["deployments"]["blue"]["ready_instances"] == 1, shown
    finally:
        mlctl(split.root, "destroy", "--auto-approve", check=False, env=env_with(package))
        cleanup(split.root)
