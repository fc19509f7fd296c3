"""One local deployment against another when mlctl runs as root (docs/threat-model.md): each deployment's
instances run under a uid of their own in a mount namespace that shows them only what they need
(mlctl/runtime/kit/confinement.py). A hostile `score.py` in blue, asked by requests, tries to read the
endpoint's secrets, the state, green's code snapshot and log, and to connect to green's socket; everything is
refused while blue still scores, logs, restarts, rolls and reports usage. `local.instance_user: mlctl` opts
out. The same assertions run on instances forked by their confined fork server (the default) and on fresh ones
(`local.fork_server: false`). Real CLI, real endpoint host, real processes; needs root (never skipped in CI)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_support import Endpoint, keys, mlctl, wait_until

from mlctl.runtime.host.client import HostClient, find_host
from mlctl.runtime.host.identities import deployment_uid
from mlctl.runtime.host.runfiles import endpoint_tag, run_folder

HOSTILE = """\
import json, os, socket

def init():
    print("blue init as uid", os.getuid(), flush=True)

def attempt(how, target):
    try:
        if how == "read":
            with open(target, "rb") as f:
                f.read(1)
        elif how == "list":
            return "done: " + " ".join(sorted(os.listdir(target)))
        else:
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(target)
            finally:
                s.close()
        return "done"
    except OSError as e:
        return "refused: " + type(e).__name__

def run(raw_data):
    asked = json.loads(raw_data)
    tried = {how + " " + t: attempt(how, t) for how, t in asked.get("try", [])}
    return {"who": "blue VERSION", "uid": os.getuid(), "tried": tried, "home": os.environ.get("HOME")}
"""

GREEN = """\
import os

def init():
    pass

def run(raw_data):
    return {"who": "green", "uid": os.getuid()}
"""

DEPLOYMENT = """\
kind: deployment
name: {name}
endpoint_name: iso
model:
  path: model/
code_configuration:
  code: {name}/
  scoring_script: score.py
instance_count: 1
"""

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 and not os.environ.get("CI"), reason="needs root (CI runs it as root)"
)


def write_project(root: Path, version: str = "1") -> None:
    (root / "model").mkdir(parents=True, exist_ok=True)
    (root / "model" / "weights.txt").write_text("w")
    for name, script in (("blue", HOSTILE.replace("VERSION", version)), ("green", GREEN)):
        (root / name).mkdir(exist_ok=True)
        (root / name / "score.py").write_text(script)
        (root / f"deploy-{name}.yml").write_text(DEPLOYMENT.format(name=name))
    (root / "endpoint.yml").write_text("kind: endpoint\nname: iso\nauth_mode: key\ntraffic: {blue: 50, green: 50}\n")


def status(root: Path) -> dict:
    info = find_host(root / ".mlctl", "iso")
    assert info is not None
    return HostClient(info).status()


def instance(root: Path, deployment: str) -> dict:
    return status(root)["deployments"][deployment]["instances"][0]


def targets(root: Path) -> list[list[str]]:
    """What blue's score.py tries: the secrets, the state, green's code snapshot, green's log and green's socket."""
    data = root / ".mlctl"
    green_code = next(p for p in (data / "code").iterdir() if (p / "score.py").read_text() == GREEN)
    green_socket = next((run_folder() / endpoint_tag(data, "iso")).glob("green-*/*.sock"))
    green_logs = data / "logs" / "iso" / "green"
    return [
        ["read", str(data / "secrets" / "iso.json")],
        ["read", str(data / "state.json")],
        ["read", str(green_code / "score.py")],
        ["list", str(green_logs)],
        ["connect", str(green_socket)],
        ["read", f"/proc/{instance(root, 'green')['pid']}/environ"],
    ]


def blue_code(root: Path) -> Path:
    """Blue's code snapshot (the one holding the hostile score.py)."""
    return next(p for p in (root / ".mlctl" / "code").iterdir() if "def attempt" in (p / "score.py").read_text())


def ask_blue(ep: Endpoint, key: str, tried: list) -> dict:
    code, body = ep.score(json.dumps({"try": tried}).encode(), key=key, deployment="blue")
    assert code == 200, body
    return json.loads(body)


@pytest.fixture
def iso_project(tmp_path):
    from e2e_support import cleanup

    root = tmp_path / "iso"
    write_project(root)
    yield root
    cleanup(root)


def proc_status(pid: int) -> dict:
    return dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())


def parent_of(pid: int) -> int:
    return int(proc_status(pid)["PPid"])


def assert_confined(pid: int, uid: int) -> None:
    """The process runs under `uid` only, with no capability at all and no_new_privs."""
    status = proc_status(pid)
    assert set(status["Uid"].split()) == set(status["Gid"].split()) == {str(uid)}, status["Uid"]
    assert int(status["CapEff"], 16) == int(status["CapPrm"], 16) == int(status["CapBnd"], 16) == 0
    assert status["NoNewPrivs"].strip() == "1"


@pytest.mark.parametrize("fork_server", [True, False], ids=["forked", "fresh"])
def test_a_deployment_cannot_reach_another_or_the_secrets_and_the_opt_out_runs_as_mlctl(iso_project, fork_server):
    root = iso_project
    settings = "" if fork_server else "  fork_server: false\n"
    if not fork_server:
        (root / "mlctl.yaml").write_text("local:\n" + settings)
    mlctl(root, "apply", "--auto-approve")
    key = keys(root, "iso")["primaryKey"]
    ep = Endpoint(root, "iso")
    tag = endpoint_tag(root / ".mlctl", "iso")
    tried = targets(root)
    # the same targets are reachable by mlctl itself: the refusals below are blue's confinement, not missing files
    for how, target in tried:
        if how == "read":
            Path(target).open("rb").close()
        elif how == "list":
            os.listdir(target)

    answer = ask_blue(ep, key, tried)
    assert answer["uid"] == deployment_uid(tag, "blue") != 0
    # HOME: its private /tmp; forked, a folder of its own there (its fork server's /tmp is its deployment's)
    assert answer["home"].startswith("/tmp/blue-g") if fork_server else answer["home"] == "/tmp", answer["home"]
    assert all(outcome.startswith("refused") for outcome in answer["tried"].values()), answer["tried"]
    seen = ask_blue(ep, key, [["list", str(root / ".mlctl")], ["list", str(root / ".mlctl" / "code")]])["tried"]
    assert seen[f"list {root / '.mlctl'}"] == "done: code models"  # the data folder: only the way to its own
    assert seen[f"list {root / '.mlctl' / 'code'}"] == f"done: {blue_code(root).name}"
    code, body = ep.score(b"{}", key=key, deployment="green")
    assert code == 200 and json.loads(body)["uid"] == deployment_uid(tag, "green") not in (0, answer["uid"])

    # the host still sees it: its pid, its usage figures, its log
    blue = instance(root, "blue")
    assert blue["pid"] and blue["cpu_seconds"] is not None and blue["peak_memory_bytes"]
    assert os.stat(f"/proc/{blue['pid']}").st_uid == answer["uid"]
    assert blue["forked"] is fork_server
    assert_confined(blue["pid"], answer["uid"])
    if fork_server:  # its fork server: confined as it is (what it imported never ran as root), not the host
        server = parent_of(blue["pid"])
        assert (
            server != status(root)["pid"]
            and b"mlctl.runtime.server.zygote" in Path(f"/proc/{server}/cmdline").read_bytes()
        )
        assert_confined(server, answer["uid"])
        assert os.readlink(f"/proc/{server}/ns/mnt") == os.readlink(f"/proc/{blue['pid']}/ns/mnt")
    assert os.readlink(f"/proc/{blue['pid']}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    folder = os.stat(Path(blue["socket"]).parent)  # its socket in a folder of its own, 0700, owned by its uid
    assert folder.st_uid == answer["uid"] and folder.st_mode & 0o777 == 0o700
    logs = mlctl(root, "logs", "iso", "--deployment", "blue", "--lines", "200").stdout
    assert f"blue init as uid {answer['uid']}" in logs

    # killed, it is restarted (a new pid), confined again
    os.kill(blue["pid"], signal.SIGKILL)
    assert wait_until(lambda: (i := instance(root, "blue"))["ready"] and i["pid"] != blue["pid"], timeout=60)
    again = ask_blue(ep, key, targets(root))
    assert again["uid"] == answer["uid"] and all(o.startswith("refused") for o in again["tried"].values())

    # a rollout (new code) runs confined too, and the old instance's socket folder is gone
    old_socket = Path(instance(root, "blue")["socket"])
    write_project(root, version="2")
    mlctl(root, "apply", "--auto-approve")
    rolled = ask_blue(ep, key, targets(root))
    assert rolled["who"] == "blue 2" and rolled["uid"] == answer["uid"]
    assert all(o.startswith("refused") for o in rolled["tried"].values()), rolled["tried"]
    # (forked: the socket was in its fork server's folder, which serves the new version too)
    assert not (old_socket if fork_server else old_socket.parent).exists()
    if fork_server:
        assert parent_of(instance(root, "blue")["pid"]) == server  # the new version forked by the same server

    # the opt-out: instances started after it (here: blue's next roll) run as mlctl's own user, who can read what
    # blue could not
    (root / "mlctl.yaml").write_text("runtime: local\nlocal:\n  instance_user: mlctl\n" + settings)
    write_project(root, version="3")
    mlctl(root, "apply", "--auto-approve")
    opted = ask_blue(ep, key, targets(root))
    assert opted["uid"] == 0
    assert opted["tried"][f"read {root / '.mlctl' / 'secrets' / 'iso.json'}"] == "done"
    assert any(k.startswith("connect ") and v == "done" for k, v in opted["tried"].items())
    ep.close()


def test_a_machine_that_cannot_confine_is_a_plan_error_before_anything_is_made_and_the_opt_out_plans(iso_project):
    """As in a container without CAP_SYS_ADMIN: root that may not make a mount namespace. The real CLI runs with
    that capability dropped from its bounding set (setpriv), so `unshare --mount` fails as it would there."""
    root = iso_project
    argv = ["setpriv", "--bounding-set", "-sys_admin", "--", sys.executable, "-m", "mlctl.cli", "-C", str(root)]
    refused = subprocess.run([*argv, "apply", "--auto-approve"], capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "cannot do that: it may not make a mount namespace" in refused.stderr
    assert "instance_user: mlctl" in refused.stderr
    assert not (root / ".mlctl" / "state.json").exists() and find_host(root / ".mlctl", "iso") is None
    (root / "mlctl.yaml").write_text("local:\n  instance_user: mlctl\n")  # the opt-out: plans as mlctl's user
    planned = subprocess.run([*argv, "plan"], capture_output=True, text=True, timeout=300)
    assert planned.returncode == 0 and "deployment" in planned.stdout, planned.stderr
