"""Issue 31: what the docker runtime checks before anything is created, and what plan asks of the network.

- mlctl's own base needs debootstrap, tar and root: the preflight says so before the first resource is
  created (not at apply after two were), once.
- A plan asks no registry about an image the engine lacks unless `docker: plan_asks_registry: true`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

from docker_support import docker_split, engine_api  # noqa: F401 (fixtures)

from mlctl.runtime.docker import baseimage as base
from mlctl.runtime.docker.imagechecks import python_problems

MISSING = "mlctl-tests/never-built-or-pushed:0"  # no registry is reachable from here either


def test_build_problem_names_the_missing_tool(monkeypatch, tmp_path):
    for tool in ("tar",):  # a PATH holding tar alone: debootstrap is missing
        os.symlink(shutil.which(tool), tmp_path / tool)
    monkeypatch.setenv("PATH", str(tmp_path))
    problem = base.build_problem()
    assert problem is not None and "`debootstrap`, which is not installed" in problem.summary
    assert "apt-get install debootstrap" in problem.detail and "base_image" in problem.detail


def test_build_problem_is_none_on_a_machine_that_can_build(docker_engine):
    if shutil.which("debootstrap") and shutil.which("tar") and os.geteuid() == 0:
        assert base.build_problem() is None


def test_no_preflight_error_when_the_engine_has_the_base_already(docker_engine, mlctl_base, monkeypatch, tmp_path):
    """The check is made only when the base is still to be built: with it in the engine, a machine without
    debootstrap plans and applies."""
    from mlctl.resources import Address, Kind, Resource

    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH: no debootstrap, no tar
    deployment = Resource(Address(Kind.DEPLOYMENT, "e.blue"), {"endpoint": "e", "name": "blue"}, "sha256:0")
    assert python_problems(docker_engine, [deployment], {}) == []


def test_plan_asks_no_registry_unless_told(docker_engine):
    image, why = base.available(docker_engine, MISSING, pull=False)
    assert (image, why) == (base.PULLABLE, "")  # assumed pullable: apply pulls it, or falls back
    chosen = base.choose(docker_engine, env_image=MISSING, settings={}, build=False)
    assert chosen.source == "environment" and "pulled at apply" in chosen.reason
    asked, why = base.available(docker_engine, MISSING, pull=False, ask_registry=True)
    assert asked is None and "cannot pull it" in why
    told = base.choose(docker_engine, env_image=MISSING, settings={"plan_asks_registry": True}, build=False)
    assert told.source == "mlctl" and MISSING in told.reason


FRESH_ENGINE = textwrap.dedent("""
    import runpy, sys
    from mlctl.runtime.docker import baseimage
    baseimage.RECIPE["version"] = sys.argv[1]  # a recipe no engine has built: this engine lacks that base
    sys.argv = ["mlctl", *sys.argv[2:]]
    runpy.run_module("mlctl.cli", run_name="__main__")
""")


def test_apply_on_a_machine_without_debootstrap_stops_at_preflight_with_nothing_created(docker_split, tmp_path):
    """End to end (issue 31): the real CLI, a real engine that lacks mlctl's base (a recipe version it never
    built), and a PATH without debootstrap: apply says so once, before the first resource, and changes nothing."""
    version = f"never-built-{os.getpid()}"
    bare = tmp_path / "bin"
    bare.mkdir()
    os.symlink(shutil.which("tar"), bare / "tar")
    env = {**os.environ, "PATH": str(bare)}
    docker_split.write({"blue": 100}, {"blue": {}})
    root = docker_split.root
    ran = subprocess.run(
        [sys.executable, "-c", FRESH_ENGINE, version, "-C", str(root), "apply", "--auto-approve"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "Traceback" not in ran.stderr
    assert ran.stderr.count("building mlctl's base image needs `debootstrap`, which is not installed") == 1
    assert "Nothing was changed" in ran.stderr
    assert "Creating" not in ran.stdout and "created" not in ran.stdout.lower()
    data = root / ".mlctl"
    state = json.loads((data / "state.json").read_text()) if (data / "state.json").exists() else {}
    assert not state.get("resources"), state
    assert not (data / "models").exists() and not (data / "code").exists()
