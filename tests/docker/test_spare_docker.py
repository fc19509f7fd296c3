"""Warm spare containers (`docker.spare_container: true`, issue 30): an instance that claims its deployment's spare
is confined exactly as a fresh one. test_isolation_docker.py's own `drive` and assertions run here again, on a
hostile blue started from a spare (the launcher driven as the endpoint host drives it: a throwaway first instance
fresh, the spare started once it is ready, blue's instance claiming it); and a probe script reports what it sees
of its model, code, environment and working folder, the same started fresh and started from a spare. Through the
CLI: a new version's instance claims the spare, and destroy leaves no container."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import test_isolation_docker as isolation
from docker_support import containers_of, docker_split, engine_api  # noqa: F401
from e2e_support import Endpoint, keys, mlctl, wait_until
from test_isolation_docker import (  # noqa: F401 - the same assertions, on a spare-started blue (`driven` below)
    post,
    ready,
    spec_of,
    test_a_hostile_instance_can_neither_take_a_neighbours_socket_nor_make_a_host_sweep_it,
    test_containers_run_confined,
)

from mlctl.runtime.docker.launcher import Launcher
from mlctl.runtime.host import sockets
from mlctl.runtime.host.launcher import InstanceKey, Place, make_launcher

PROBE = """\
import json, os, sys

def init():
    pass

def _writes(path):
    try:
        with open(os.path.join(path, "x"), "w") as f:
            f.write("x")
        return True
    except OSError:
        return False

def run(raw_data):
    model, code = os.environ["AZUREML_MODEL_DIR"], os.environ["AML_APP_ROOT"]
    return json.dumps({
        "cwd": os.getcwd(),
        "model": model,
        "model_files": sorted(os.listdir(model)),
        "code_files": sorted(f for f in os.listdir(code) if f != "__pycache__"),
        "writes_model": _writes(model),
        "writes_code": _writes(code),
        "app_root": sorted(os.listdir("/var/azureml-app")),
        "path0": sys.path[0],
        "env": {k: os.environ.get(k) for k in ("AZUREML_ENTRY_SCRIPT", "AML_APP_ROOT", "HOME", "SERVICE_NAME", "MARK")},
        "uid": os.getuid(),
        "sees": sorted(os.listdir("/run/mlctl")),
    })
"""


def with_spare(spec):
    return dataclasses.replace(spec, launch={**spec.launch, "spare_container": True})


async def from_spare(launcher, spec) -> InstanceKey:
    """Start `spec`'s instance fresh (generation 0), let its spare start as the host does once it is ready, then
    start generation 1 from that spare and stop generation 0; generation 1's key."""
    first, second = InstanceKey(0, 0), InstanceKey(1, 0)
    (at,) = await launcher.start(spec, [first])
    await ready(at.removeprefix("unix:"))
    launcher.on_ready(first)
    assert launcher.spare is not None, launcher.spares_off
    await launcher.spare.ready
    (at,) = await launcher.start(spec, [second])
    await ready(at.removeprefix("unix:"))
    assert launcher.describe(second)["from_spare"] is True, launcher.logs(second)
    await launcher.stop([first], grace=0)
    return second


class BlueFromSpare(Launcher):
    """The docker launcher, with spares on; blue's instances claim a spare (started by a throwaway instance)."""

    async def start(self, spec, keys):
        spec = with_spare(spec)
        if self.deployment == "blue":
            warm = InstanceKey(9, 0)
            (at,) = await super().start(spec, [warm])
            await ready(at.removeprefix("unix:"))
            self.on_ready(warm)
            assert self.spare is not None, self.spares_off
            await self.spare.ready
            await self.stop([warm], grace=0)
        addresses = await super().start(spec, keys)
        if self.deployment == "blue":
            assert all(self.describe(k)["from_spare"] for k in keys), self.logs(keys[0])
            self.on_ready(keys[0])  # its next spare starts (the launcher's close removes it)
        return addresses


@pytest.fixture(scope="module")
def run_folder():
    """A short run folder of the module's own (MLCTL_RUN_FOLDER), so a sweep touches nothing of others."""
    path = tempfile.mkdtemp(prefix="mls", dir="/tmp")
    before = os.environ.get("MLCTL_RUN_FOLDER")
    os.environ["MLCTL_RUN_FOLDER"] = path
    yield path
    if before is None:
        os.environ.pop("MLCTL_RUN_FOLDER", None)
    else:
        os.environ["MLCTL_RUN_FOLDER"] = before
    shutil.rmtree(path, ignore_errors=True)


def _needs_root_and_engine(engine_or_reason) -> None:
    if engine_or_reason[0] is None:
        pytest.skip("no Docker engine")  # (docker_engine, autouse, fails instead in CI)
    if os.geteuid() != 0:
        pytest.skip("warm spares need mlctl to run as root (it binds the model and code into the spare)")


@pytest.fixture(scope="module")
def driven(tmp_path_factory, server_image, _engine_or_reason, run_folder):
    """test_isolation_docker's green and hostile blue, driven once for the module by its own `drive`, blue's instance
    claiming a spare (the isolation assertions run on that)."""
    _needs_root_and_engine(_engine_or_reason)
    tmp_path = tmp_path_factory.mktemp("iso")
    isolation.make_launcher = lambda name, place, deployment: BlueFromSpare(place, deployment)
    try:
        yield tmp_path, asyncio.run(isolation.drive(tmp_path, server_image, tmp_path / "data"))
    finally:
        isolation.make_launcher = make_launcher


async def probe(tmp_path: Path, image, how: str) -> tuple[dict, list[str]]:
    """What the probe script reports, started `how` (fresh or from its spare), and what its folder held."""
    data_dir = tmp_path / "data"  # (one endpoint: the same uid)
    folder = sockets.claim_socket_folder(data_dir, "probe")
    place = Place(data_dir, "probe", folder.path)
    launcher = make_launcher("container", place, "probe")
    spec = spec_of(tmp_path, f"probe-{how}", PROBE, image)
    launch = {**spec.launch, "spare_container": True, "model_target": "/var/azureml-app/azureml-models/probe/1"}
    spec = dataclasses.replace(spec, launch=launch, environment_variables={"MARK": "m"}, name="probe")
    try:
        if how == "spare":
            key = await from_spare(launcher, spec)
        else:
            key = InstanceKey(0, 0)
            (at,) = await launcher.start(
                dataclasses.replace(spec, launch={**spec.launch, "spare_container": False}), [key]
            )
            await ready(at.removeprefix("unix:"))
        status, body = await asyncio.to_thread(post, launcher.containers[key].address.removeprefix("unix:"))
        assert status == 200, body
        return json.loads(json.loads(body)), launcher.logs(key).splitlines()
    finally:
        await launcher.close()
        folder.release()


@pytest.fixture(scope="module")
def probed(tmp_path_factory, server_image, _engine_or_reason, run_folder):
    _needs_root_and_engine(_engine_or_reason)
    tmp_path = tmp_path_factory.mktemp("probe")
    return {how: asyncio.run(probe(tmp_path, server_image, how)) for how in ("fresh", "spare")}


def test_a_spare_started_instance_sees_what_a_fresh_one_sees(probed):
    fresh, spare = probed["fresh"][0], probed["spare"][0]
    assert spare == fresh
    assert fresh["model"] == "/var/azureml-app/azureml-models/probe/1" and fresh["model_files"] == []
    assert fresh["code_files"] == ["score.py"] and fresh["cwd"] == "/var/azureml-app/code" == fresh["path0"]
    assert fresh["writes_model"] is False and fresh["writes_code"] is False  # read-only, as bound
    assert fresh["app_root"] == ["azureml-models", "code"]
    assert fresh["env"]["MARK"] == "m" and fresh["env"]["HOME"] == "/tmp"
    assert fresh["sees"] == ["server.out", "server.sock"]


def test_a_new_version_claims_the_spare_and_destroy_leaves_no_container(docker_split, engine_api):
    if os.geteuid() != 0:
        pytest.skip("warm spares need mlctl to run as root (it binds the model and code into the spare)")
    p, root = docker_split, docker_split.root
    (root / "mlctl.yaml").write_text("runtime: docker\ndocker:\n  spare_container: true\n")
    p.write({"blue": 100}, {"blue": {}})
    mlctl(root, "apply", "--auto-approve")

    def spares() -> list[dict]:
        return [c for c in containers_of(engine_api, root) if c["Labels"].get("mlctl.instance") == "spare"]

    assert wait_until(lambda: len(spares()) == 1, timeout=120), containers_of(engine_api, root)
    (spare,) = spares()
    (root / "model" / "weights.txt").write_text("w2")  # a new model version: blue rolls
    mlctl(root, "apply", "--auto-approve")
    (inst,) = json.loads(mlctl(root, "show", "dsplit", "--json").stdout)["deployments"]["blue"]["instances"]
    assert inst["from_spare"] is True and inst["container"] == spare["Id"][:12]
    ep = Endpoint(root, "dsplit")
    assert json.loads(ep.score(key=keys(root, "dsplit")["primaryKey"])[1]) == {"who": "blue"}
    ep.close()
    assert wait_until(lambda: len(spares()) == 2, timeout=120)  # the claimed one (its labels kept) and the next
    assert mlctl(root, "plan", "--detailed-exitcode", check=False).returncode == 0
    mlctl(root, "destroy", "--auto-approve")
    assert containers_of(engine_api, root) == []
