"""The "container" launcher on the real engine, driven as the endpoint host drives it (issue 14): an
instance over the limit of its memory is reported killed for running out of memory (health, log file,
describe) and restarts; and the pure pieces: limits from instance_type, instance_type honoured under
docker only, the `show` line of a container."""

import asyncio
import sys
from pathlib import Path

from docker_support import engine_api  # noqa: F401

from mlctl.commands.show import instance_line
from mlctl.runtime.docker.limits import GIB, Limits, container_limits, memory_bytes
from mlctl.runtime.host.launcher import InstanceKey, Place, make_launcher
from mlctl.runtime.host.spec import ServingSpec
from mlctl.runtime.host.upstream import Pool

GREEDY = """\
def init():
    pass

def run(raw_data):
    hog = [b"x" * (1024 * 1024) for _ in range(400)]   # 400 MiB, every page written
    return len(hog)
"""


async def drive(tmp_path: Path, tag: str, python: str) -> dict:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "score.py").write_text(GREEDY)
    (tmp_path / "model").mkdir()
    sockets = tmp_path / "s"
    sockets.mkdir(mode=0o700)
    spec = ServingSpec.from_dict(
        {
            "name": "hog",
            "digest": "sha256:test",
            "python": python,
            "code_dir": str(tmp_path / "code"),
            "scoring_script": "score.py",
            "model_dir": str(tmp_path / "model"),
            "instance_count": 1,
            "launcher": "container",
            "launch": {
                "image": tag,
                "memory_bytes": 128 * 2**20,
                "nano_cpus": 10**9,
                "model_target": "/var/azureml-app/azureml-models/m/1",
                "code_target": "/var/azureml-app/code",
            },
        }
    )
    launcher = make_launcher("container", Place(tmp_path / "data", "oom", sockets), "hog")
    key = InstanceKey(0, 0)
    seen = {}
    try:
        (address,) = await launcher.start(spec, [key])
        pool = Pool(address)
        for _ in range(400):  # ready: GET / answers (bounded)
            try:
                _, _, answer = await pool.request("GET", "/", b"", b"")
                if (await answer)[0] == 200:
                    break
            except OSError:
                pass
            await asyncio.sleep(0.05)
        seen["described"] = launcher.describe(key)
        try:
            _, _, answer = await pool.request("POST", "/score", b"content-type: application/json\r\n", b"{}")
            await answer
        except Exception:
            pass  # the container died under the request
        pool.close()
        seen["gone"] = await asyncio.wait_for(launcher.gone(key), 60)
        seen["after"] = launcher.describe(key)
        seen["restarted"] = await launcher.restart(key)
        seen["health"] = launcher.health(key)
    finally:
        await launcher.close()
    seen["log"] = (tmp_path / "data" / "logs" / "oom" / "hog" / "instance-0.log").read_text()
    return seen


def test_an_instance_over_its_memory_limit_is_reported_and_restarts(tmp_path, engine_api, server_image):
    seen = asyncio.run(drive(tmp_path, server_image.tag, server_image.python))
    assert seen["described"]["memory_bytes"] == 128 * 2**20 and seen["described"]["cpus"] == 1
    assert seen["gone"].startswith("was killed for running out of memory (its memory limit is 128 MiB)")
    assert seen["after"]["oom_kills"] == 1 and seen["after"]["stopped_outside_mlctl"] is False
    assert "was killed for running out of memory" in seen["log"]  # what `mlctl logs` shows
    assert seen["restarted"] and seen["restarted"].startswith("unix:") and seen["health"] is None
    assert engine_api.containers(all=True, filters={"label": ["mlctl.endpoint=oom"]}) == []


def test_limits_follow_the_instance_type_and_fit_the_machine():
    assert container_limits(None, 2, 8 * GIB) == container_limits("", 2, 8 * GIB)
    assert container_limits(None, 2, 8 * GIB) == Limits(None, 2 * GIB)  # docker.memory's default, no CPU limit
    assert container_limits(None, 2, GIB, default_memory=4 * GIB).memory_bytes == GIB  # fitted to the machine
    assert [memory_bytes(x) for x in (None, 512 * 2**20, "512Mi", "2GiB", "2g", "1.5G", "3k")] == [
        2 * GIB,
        512 * 2**20,
        512 * 2**20,
        2 * GIB,
        2 * GIB,
        3 * GIB // 2,
        3072,
    ]
    ds2 = container_limits("Standard_DS2_v2", 4, 64 * GIB)  # 2 vCPUs, 7 GiB
    assert (ds2.nano_cpus, ds2.memory_bytes, ds2.notes) == (2 * 10**9, 7 * GIB, ())
    assert container_limits("standard_ds2_v2", 4, 64 * GIB) == ds2  # Azure's names in any case
    big = container_limits("Standard_DS3_v2", 2, 8 * GIB)  # 4 vCPUs, 14 GiB on a smaller machine
    assert (big.nano_cpus, big.memory_bytes) == (2 * 10**9, 8 * GIB)
    assert "limited to 2 CPUs" in big.notes[0] and "limited to that" in big.notes[1]
    odd = container_limits("Standard_Nope", 2, 8 * GIB)
    assert (odd.nano_cpus, odd.memory_bytes) == (None, 2 * GIB) and "no CPU limit" in odd.notes[0]
    assert ds2.describe() == "2 CPUs, 7.0 GiB of memory" and odd.describe() == "no CPU limit, 2.0 GiB of memory"
    assert Limits(None, None).describe() == "no CPU or memory limit"


def test_instance_type_is_honoured_under_docker_only(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
    from e2e_support import SplitProject

    from mlctl.projectpaths import Project
    from mlctl.schemas.load import load_config

    p = SplitProject(tmp_path / "proj", "itype")
    p.write({"blue": 100}, {"blue": {}, "green": {}})
    for name, size in (("blue", "Standard_DS3_v2"), ("green", "Standard_Nope")):
        f = p.root / f"deploy-{name}.yml"
        f.write_text(f.read_text() + f"instance_type: {size}\n")
    local = load_config(Project.at(p.root))
    docker = load_config(Project.at(p.root, runtime_override="docker"))
    assert local.ignored["deployment.itype.blue"] == ("instance_type",)
    assert "instance_type" not in local.resource("deployment.itype.blue").attributes  # local plans unchanged
    assert "deployment.itype.blue" not in docker.ignored
    assert docker.resource("deployment.itype.blue").attributes["instance_type"] == "Standard_DS3_v2"
    (warning,) = [d for d in docker.diagnostics if "Standard_Nope" in d.summary]
    assert warning.severity == "warning" and warning.file.endswith("deploy-green.yml") and warning.line
    assert not [d for d in local.diagnostics if "Standard_Nope" in d.summary]


def test_the_2021_forms_docker_image_is_honoured_under_docker_only():
    from mlctl.schemas.validate import find_ignored, honoured_fields, load_schema

    env = {
        "name": "e",
        "conda_file": "conda.yml",
        "docker": {"image": "python:3.11-slim", "build": {"dockerfile": "FROM python:3.11-slim"}},
    }
    ignored = [f for f, _ in find_ignored(load_schema("environment"), "environment", env)]
    assert ignored == ["docker.image", "docker.build"]
    assert [f for f in ignored if f not in honoured_fields("environment", "docker")] == ["docker.build"]
    assert [f for f in ignored if f not in honoured_fields("environment", "local")] == ignored
    inline = [f for f, _ in find_ignored(load_schema("deployment"), "deployment", {"environment": env})]
    assert [f for f in inline if f not in honoured_fields("deployment", "docker")] == ["environment.docker.build"]


def test_show_says_which_container_and_how_it_last_ended():
    assert (
        instance_line({"index": 0, "pid": 5, "ready": True, "restarts": 0})
        == "    instance 0: pid 5, ready, 0 restart(s)"
    )
    line = instance_line(
        {
            "index": 1,
            "pid": 9,
            "ready": False,
            "restarts": 2,
            "container": "abc123def456",
            "oom_kills": 2,
            "last_exit": "was killed for running out of memory",
        }
    )
    assert line == (
        "    instance 1: container abc123def456, not ready, 2 restart(s), killed 2 time(s) for "
        "running out of memory; it was killed for running out of memory"
    )
