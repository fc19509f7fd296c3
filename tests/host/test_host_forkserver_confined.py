"""The fork server of confined instances (mlctl as root, the default `local.instance_user`): the server itself runs
confined under the deployment's uid, so what it imports never runs as root, and an instance it forks has exactly
the confinement of a fresh start: its uid, no capability, no_new_privs, its private /tmp, no sight of the project's
data folder, its own cgroup. The same assertions run on a forked instance and a fresh one. Killing the fork server
leaves its instances serving; a roll under load fails no request. Needs root (CI runs as root)."""

from __future__ import annotations

import os
import signal
import textwrap
from pathlib import Path

import pytest

from mlctl.runtime.host.identities import deployment_uid
from mlctl.runtime.host.runfiles import endpoint_tag, is_alive

from hosttools import Host, body, hosts_of, send, wait_until

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 and not os.environ.get("CI"), reason="needs root (CI runs it as root)"
)

SCORE = textwrap.dedent('''
    """Reports what it is and what it sees: its uid and capabilities, its /tmp, its cgroup, the data folder."""
    import json, os, pickle
    import sklearn.linear_model
    model = None
    def init():
        global model
        with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl"), "rb") as f:
            model = pickle.load(f)
        with open(os.path.join(os.environ["HOME"], "mark"), "w") as f:
            f.write(str(os.getpid()))
    def attempt(path):
        try:
            with open(path, "rb") as f:
                f.read(1)
            return "done"
        except OSError as e:
            return "refused: " + type(e).__name__
    def run(raw_data):
        data = json.loads(raw_data)
        status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines())
        return {"pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgid(0), "uid": os.getuid(),
                "status": {k: status[k].strip() for k in ("Uid", "Gid", "CapEff", "CapPrm", "CapBnd", "NoNewPrivs")},
                "home": os.environ["HOME"], "tmpdir": os.environ.get("TMPDIR"), "tmp": sorted(os.listdir("/tmp")),
                "mark": open(os.path.join(os.environ["HOME"], "mark")).read(),
                "tried": {p: attempt(p) for p in data.get("try", [])},
                "cgroup": open("/proc/self/cgroup").read(),
                "prediction": model.predict(data["data"]).tolist() if "data" in data else None}
''')


@pytest.fixture
def confined_host(tmp_path, sklearn_model_dir):
    yield from hosts_of(tmp_path, sklearn_model_dir, SCORE, code_mode=0o755)


def spec(host: Host, name: str, *, fork: bool = True, **kw) -> dict:
    """A confined deployment (as root: a uid of its own), its instances forked or fresh."""
    s = host.spec(name, **kw)
    if not fork:
        s["launch"] = {**s.get("launch", {}), "fork_server": False}
    return s


def ask(host: Host, name: str, count: int = 1, **payload) -> list[dict]:
    import json

    host.client.set_traffic({name: 100})
    data = json.dumps(payload).encode()
    results = send(host.url + "/score", count, headers=host.auth(), payload=data)
    assert [status for status, _, _ in results] == [200] * count, results
    return [answer for _, answer, _ in results]


def instances(host: Host, name: str) -> list[dict]:
    return host.client.status()["deployments"][name]["instances"]


def status_of(pid: int) -> dict:
    return {
        k: v.strip() for k, v in (line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    }


def assert_confined(status: dict, uid: int) -> None:
    assert set(status["Uid"].split()) == set(status["Gid"].split()) == {str(uid)}, status
    assert int(status["CapEff"], 16) == int(status["CapPrm"], 16) == int(status["CapBnd"], 16) == 0, status
    assert status["NoNewPrivs"] == "1", status


def memory_cgroup(text: str) -> str:
    for line in text.splitlines():
        number, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(",") or (number == "0" and controllers == ""):
            return path
    raise AssertionError(f"no memory cgroup in {text!r}")


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "fresh"])
def test_a_confined_instance_has_the_same_confinement_forked_or_fresh(confined_host, fork):
    host = confined_host()
    s = spec(host, "blue", fork=fork, count=2)
    s["launch"] = {**s.get("launch", {}), "resources": {"limits": {"memory": 1 << 30}}}
    host.client.create_deployment(s, timeout=90)
    host.remember()
    uid = deployment_uid(endpoint_tag(host.data_dir, "ep"), "blue")
    secrets = sorted(str(p) for p in (host.data_dir / "secrets").iterdir())
    assert secrets and all(Path(p).read_bytes() for p in secrets)  # there, and readable by mlctl itself
    got = {a["pid"]: a for a in ask(host, "blue", 8, data=[[0.0] * 10], **{"try": [*secrets, str(host.data_dir)]})}
    shown = instances(host, "blue")
    assert [i["forked"] for i in shown] == [fork, fork] and set(got) == {i["pid"] for i in shown}
    for pid, a in got.items():
        assert a["uid"] == uid != 0
        assert_confined(a["status"], uid)
        assert_confined(status_of(pid), uid)  # (as the host's side reads it too)
        assert all(o.startswith("refused") for o in a["tried"].values()), a["tried"]
        assert a["pgid"] == pid and a["mark"] == str(pid)  # its own session; its init() wrote its own HOME
        assert a["tmpdir"] == a["home"]
        assert not Path(a["home"], "mark").exists() or Path(a["home"], "mark").read_text() != str(pid)  # private
        assert a["prediction"] and len(a["prediction"]) == 1
    groups = {pid: memory_cgroup(a["cgroup"]) for pid, a in got.items()}
    assert len(set(groups.values())) == 2  # a cgroup of its own each ...
    for i in shown:  # ... the one the host made and shows
        assert i["cgroup"].endswith(groups[i["pid"]]) and i["memory_bytes"] == 1 << 30
        assert Path(i["socket"]).stat().st_uid == uid
    parents = {a["ppid"] for a in got.values()}
    if fork:  # forked by one fork server, itself confined, in a cgroup of its own; HOMEs apart in its /tmp
        (server,) = parents
        assert server != host.info.pid
        assert Path(f"/proc/{server}/cmdline").read_bytes().split(b"\0")[1:3] == [b"-m", b"mlctl.runtime.server.zygote"]
        assert_confined(status_of(server), uid)
        assert "sklearn" in Path(f"/proc/{server}/maps").read_text()  # imported, as the deployment's uid
        assert memory_cgroup(Path(f"/proc/{server}/cgroup").read_text()) not in groups.values()
        assert len({a["home"] for a in got.values()}) == 2 and all(a["home"].startswith("/tmp/") for a in got.values())
        assert os.readlink(f"/proc/{server}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    else:
        assert parents == {host.info.pid} and {a["home"] for a in got.values()} == {"/tmp"}
    for pid in got:  # a mount namespace of its own: not the host's
        assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    host.client.shutdown(timeout=30)
    wait_until(lambda: not any(is_alive(p) for p in [*got, *parents]), 20, "no process left")


def test_killing_a_confined_fork_server_leaves_its_instances_and_a_restart_forks_again(confined_host, loop_mode):
    host = confined_host()
    host.assert_loop(loop_mode)
    host.client.create_deployment(spec(host, "blue"), timeout=90)
    host.remember()
    first = ask(host, "blue")[0]
    server = first["ppid"]
    assert server != host.info.pid
    os.kill(server, signal.SIGKILL)
    wait_until(lambda: not is_alive(server), 10, "the fork server gone")
    assert {a["pid"] for a in ask(host, "blue", 4)} == {first["pid"]}  # the instance serves on
    os.kill(first["pid"], signal.SIGKILL)  # the host restarts it: from a new fork server of the same deployment
    wait_until(
        lambda: (i := instances(host, "blue")[0])["ready"] and i["pid"] != first["pid"], 60, "the instance restarted"
    )
    again = ask(host, "blue")[0]
    assert again["ppid"] not in (server, host.info.pid) and again["uid"] == first["uid"]
    assert_confined(status_of(again["ppid"]), first["uid"])
    assert instances(host, "blue")[0]["forked"] is True
    assert "fork server of deployment blue ended; starting it again" in host.log()


def test_a_confined_roll_under_load_fails_no_request_and_stops_the_old_fork_server(confined_host, loop_mode):
    host = confined_host()
    host.client.create_deployment(spec(host, "blue", count=2, concurrent=2), timeout=90)
    host.client.set_traffic({"blue": 100})
    host.remember()
    old = {i["pid"] for i in instances(host, "blue")}
    old_server = {int(status_of(p)["PPid"]) for p in old}
    assert len(old_server) == 1 and host.info.pid not in old_server

    def roll():
        host.client.roll_deployment(
            spec(host, "blue", count=2, concurrent=2, digest="sha256:b2", env={"WHO": "b2"}), timeout=90
        )

    results = send(host.url + "/score", 20_000, concurrency=4, headers=host.auth(), payload=body(), during=roll)
    host.remember()
    statuses = [status for status, _, _ in results]
    assert statuses and set(statuses) == {200}, [r for r in results if r[0] != 200][:3]
    new = instances(host, "blue")
    assert all(i["forked"] for i in new) and not {i["pid"] for i in new} & old
    wait_until(lambda: not any(is_alive(p) for p in old_server), 20, "the old environment's fork server stopped")


def test_a_new_version_is_forked_by_the_same_confined_server_with_its_own_folders_bound(confined_host, tmp_path):
    host = confined_host()
    host.client.create_deployment(spec(host, "blue"), timeout=90)
    host.remember()
    first = ask(host, "blue")[0]
    v2 = tmp_path / "code-v2"  # a new code snapshot and model version, folders the server's namespace lacked
    v2.mkdir(mode=0o755)
    (v2 / "score.py").write_text(SCORE.replace("def run(raw_data):", "VERSION = 2\ndef run(raw_data):"))
    model = tmp_path / "model-v2"
    model.mkdir(mode=0o755)
    (model / "model.pkl").write_bytes((host.model_dir / "model.pkl").read_bytes())
    rolled = {**spec(host, "blue", digest="sha256:blue-2"), "code_dir": str(v2), "model_dir": str(model)}
    host.client.roll_deployment(rolled, timeout=90)
    host.remember()
    secrets = [str(p) for p in (host.data_dir / "secrets").iterdir()]
    again = ask(host, "blue", data=[[0.0] * 10], **{"try": [*secrets, str(v2 / "score.py")]})[0]
    assert again["ppid"] == first["ppid"] and again["pid"] != first["pid"]  # the same fork server
    assert again["tried"][str(v2 / "score.py")] == "done"  # its new code, bound into the server's namespace
    assert all(again["tried"][p].startswith("refused") for p in secrets), again["tried"]
    assert_confined(again["status"], first["uid"])
    assert again["prediction"] and instances(host, "blue")[0]["forked"] is True
    mounts = Path(f"/proc/{again['pid']}/mountinfo").read_text()
    for folder in (v2, model):  # read-only
        (line,) = [m for m in mounts.splitlines() if m.split()[4] == str(folder)]
        assert "ro" in line.split()[5].split(","), line
