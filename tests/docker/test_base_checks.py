"""Issue 31: what the docker runtime checks before anything is created, and what plan asks of the network.

- mlctl's own base needs debootstrap, tar and root: the preflight says so before the first resource is
  created (not at apply after two were), once.
- A plan asks no registry about an image the engine lacks unless `docker: plan_asks_registry: true`.
"""

from __future__ import annotations

import os
import shutil

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
