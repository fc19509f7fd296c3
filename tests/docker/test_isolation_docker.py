"""Containers cannot reach each other or the host (issue 24), on the real engine, driven as the endpoint host
drives its launcher: a hostile blue `score.py` tries to take green's socket and to plant the lock file that
decides what a starting host sweeps, and fails; every container runs confined (uid, capabilities,
no-new-privileges, read-only root with a private /tmp, pids and memory limits, no network), as the engine
reports and as seen from inside."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import tempfile
from pathlib import Path

import pytest
from docker_support import engine_api  # noqa: F401

from mlctl.runtime.host import sockets
from mlctl.runtime.host.identities import deployment_uid
from mlctl.runtime.host.launcher import InstanceKey, Place, make_launcher
from mlctl.runtime.host.runfiles import endpoint_tag
from mlctl.runtime.host.spec import ServingSpec

GREEN = """\
def init():
    pass

def run(raw_data):
    return "green"
"""

# Blue tries what worked when every container had the endpoint's whole socket folder: unlink green's socket
# and bind its own in its place (green's traffic, customer data included, would reach blue), and replace
# the host's `.owner` lock file with one nobody holds (the next starting host would sweep a live endpoint).
# run() reports what it did and what its container is like from inside.
BLUE = """\
import json, os, socket, subprocess

STOLEN = []
TRIED = {}

def _try(name, fn):
    try:
        fn()
        TRIED[name] = "done"
    except Exception as e:
        TRIED[name] = type(e).__name__

def _steal(path):
    os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(8)
    STOLEN.append(s)

def init():
    for folder in ("/run/mlctl", "/run/mlctl/.."):
        for name in os.listdir(folder):
            if name.startswith("green"):
                path = os.path.join(folder, name)
                if os.path.isdir(path):
                    path = os.path.join(path, "server.sock")
                _try("steal " + name, lambda p=path: _steal(p))
    def plant():
        if os.path.exists("/run/mlctl/.owner"):
            os.unlink("/run/mlctl/.owner")
            open("/run/mlctl/.owner", "w").close()
        else:
            raise FileNotFoundError("no .owner in sight")
    _try("plant .owner", plant)

def _writes(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        return True
    except OSError:
        return False

def run(raw_data):
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
    return json.dumps({
        "tried": TRIED,
        "stolen": len(STOLEN),
        "uid": os.getuid(),
        "gid": os.getgid(),
        "cap_eff": status["CapEff"].strip(),
        "cap_bnd": status["CapBnd"].strip(),
        "no_new_privs": status.get("NoNewPrivs", "").strip(),
        "writes_root": _writes("/score-was-here"),
        "writes_etc": _writes("/etc/score-was-here"),
        "writes_tmp": _writes("/tmp/score-was-here"),
        "sees": sorted(os.listdir("/run/mlctl")),
        "interfaces": sorted(os.listdir("/sys/class/net")),
    })
"""


def spec_of(tmp_path: Path, name: str, script: str, image) -> ServingSpec:
    code, model = tmp_path / f"code-{name}", tmp_path / f"model-{name}"
    code.mkdir()
    (code / "score.py").write_text(script)
    model.mkdir()
    for p in (code, code / "score.py", model):  # readable by the instance's own uid, as the store is
        p.chmod(0o755 if p.is_dir() else 0o644)
    return ServingSpec.from_dict(
        {
            "name": name,
            "digest": f"sha256:{name}",
            "python": image.python,
            "code_dir": str(code),
            "scoring_script": "score.py",
            "model_dir": str(model),
            "instance_count": 1,
            "launcher": "container",
            "launch": {
                "image": image.tag,
                "memory_bytes": 256 * 2**20,
                "model_target": f"/var/azureml-app/azureml-models/{name}/1",
                "code_target": "/var/azureml-app/code",
            },
        }
    )


def post(path: str, body: bytes = b"{}", timeout: float = 30) -> tuple[int, bytes]:
    """POST /score over the unix socket at `path`: (status, body)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(
            b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    if b"transfer-encoding: chunked" in head.lower():
        out, rest = b"", rest
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2 :]
        rest = out
    return status, rest


async def ready(path: str) -> None:
    """Until GET / answers 200 on the socket at `path` (bounded: 60 s)."""
    for _ in range(600):
        try:
            reader, writer = await asyncio.open_unix_connection(path)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            line = await reader.readline()
            writer.close()
            if b" 200 " in line:
                return
        except OSError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} did not become ready")


async def drive(tmp_path: Path, image, data_dir: Path) -> dict:
    folder = sockets.claim_socket_folder(data_dir, "iso")  # as the endpoint host claims it: locked .owner
    place = Place(data_dir, "iso", folder.path)
    green = make_launcher("container", place, "green")
    blue = make_launcher("container", place, "blue")
    key = InstanceKey(0, 0)
    seen: dict = {"folder": folder.path}
    try:
        (green_at,) = await green.start(spec_of(tmp_path, "green", GREEN, image), [key])
        green_path = green_at.removeprefix("unix:")
        await ready(green_path)
        seen["green_inode"] = os.stat(green_path).st_ino
        (blue_at,) = await blue.start(spec_of(tmp_path, "blue", BLUE, image), [key])
        await ready(blue_at.removeprefix("unix:"))
        seen["blue"] = json.loads(json.loads((await asyncio.to_thread(post, blue_at.removeprefix("unix:")))[1]))
        seen["green_answers"] = await asyncio.to_thread(post, green_path)
        seen["green_inode_after"] = os.stat(green_path).st_ino
        seen["owner_held"] = sockets._holds(folder.path, folder.owner)
        seen["swept"] = await asyncio.to_thread(sockets.sweep_run_folder)
        seen["green_after_sweep"] = os.path.exists(green_path)
        seen["containers"] = [green.containers[key].id, blue.containers[key].id]
        seen["engine"] = {}
        from mlctl.runtime.docker import containers

        for name, launcher in (("green", green), ("blue", blue)):
            seen["engine"][name] = containers.engine().inspect_container(launcher.containers[key].id)
    finally:
        await blue.close()
        await green.close()
        folder.release()
    seen["left"] = sorted(os.listdir(folder.path)) if folder.path.exists() else []
    return seen


@pytest.fixture(scope="module")
def driven(tmp_path_factory, server_image, _engine_or_reason):
    """Green and hostile blue driven once for the module, in a short run folder of their own
    (MLCTL_RUN_FOLDER), so the sweep touches nothing of others."""
    if _engine_or_reason[0] is None:
        pytest.skip("no Docker engine")  # (docker_engine, autouse, fails instead in CI)
    import shutil

    path = tempfile.mkdtemp(prefix="mlr", dir="/tmp")
    before = os.environ.get("MLCTL_RUN_FOLDER")
    os.environ["MLCTL_RUN_FOLDER"] = path
    tmp_path = tmp_path_factory.mktemp("iso")
    try:
        yield tmp_path, asyncio.run(drive(tmp_path, server_image, tmp_path / "data"))
    finally:
        if before is None:
            os.environ.pop("MLCTL_RUN_FOLDER", None)
        else:
            os.environ["MLCTL_RUN_FOLDER"] = before
        shutil.rmtree(path, ignore_errors=True)


def test_a_hostile_instance_can_neither_take_a_neighbours_socket_nor_make_a_host_sweep_it(driven):
    _, seen = driven
    blue = seen["blue"]
    # what blue could see of the socket folder: its own socket and output, nothing of green's or the host's
    assert blue["sees"] == ["server.out", "server.sock"]
    assert blue["stolen"] == 0 and not any(v == "done" for v in blue["tried"].values()), blue["tried"]
    # green still answers green's traffic on its own socket; the host's lock is still the one it holds
    assert seen["green_answers"] == (200, b'"green"')
    assert seen["green_inode_after"] == seen["green_inode"]
    assert seen["owner_held"] is True and seen["swept"] == 0 and seen["green_after_sweep"] is True
    assert seen["left"] == []  # every instance folder removed with its container


def test_containers_run_confined(driven):
    tmp_path, seen = driven
    blue, host = seen["blue"], seen["engine"]["blue"]["HostConfig"]
    tag = endpoint_tag(tmp_path / "data", "iso")
    if os.geteuid() == 0:  # CI runs as root: a uid of the deployment's own, not root
        uid = deployment_uid(tag, "blue")
        assert blue["uid"] == blue["gid"] == uid != deployment_uid(tag, "green")
        assert seen["engine"]["blue"]["Config"]["User"] == f"{uid}:{uid}"
    else:
        assert blue["uid"] == os.getuid()
    assert blue["uid"] != 0
    assert blue["cap_eff"] == blue["cap_bnd"] == "0000000000000000"  # every capability dropped
    assert blue["no_new_privs"] == "1"
    assert (blue["writes_root"], blue["writes_etc"], blue["writes_tmp"]) == (False, False, True)
    assert blue["interfaces"] == ["lo"]  # network none
    assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
    assert host["ReadonlyRootfs"] is True and "/tmp" in host["Tmpfs"]
    assert host["PidsLimit"] == 1024 and host["Memory"] == 256 * 2**20 and host["NetworkMode"] == "none"
