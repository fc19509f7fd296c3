"""The fork server: instances of the local runtime forked from a pre-started interpreter of their environment,
their init() run after the fork, each in its own process group and cgroup, alive when the fork server is killed;
a script whose import starts a thread starts fresh and the host log says why; a roll under load fails nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from mlctl.runtime.host.runfiles import is_alive

from hosttools import Host, body, hosts_of, send, wait_until

SCORE = textwrap.dedent('''
    """Records the pid init() ran in; answers with it, its own pid, parent and process group."""
    import json, os, pickle
    import sklearn.linear_model
    model = None
    init_pid = None
    def init():
        global model, init_pid
        init_pid = os.getpid()
        with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl"), "rb") as f:
            model = pickle.load(f)
    def run(raw_data):
        data = json.loads(raw_data)
        return {"init_pid": init_pid, "pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgid(0),
                "who": os.environ.get("WHO"), "prediction": model.predict(data["data"]).tolist()}
''')

THREAD_AT_IMPORT = "import threading, time\nthreading.Thread(target=time.sleep, args=(3600,), daemon=True).start()\n"


@pytest.fixture
def fork_host(tmp_path, sklearn_model_dir):
    yield from hosts_of(tmp_path, sklearn_model_dir, SCORE)


def spec(host: Host, name: str, *, fork: bool = True, python: str = sys.executable, **kw) -> dict:
    """An unconfined deployment (confined ones start fresh) of this module's score.py, forked or not."""
    s = host.spec(name, unconfined=True, **kw)
    s["python"] = python
    s["launch"] = {**s["launch"], **({} if fork else {"fork_server": False})}
    return s


def answers(host: Host, name: str, count: int = 4) -> list[dict]:
    host.client.set_traffic({name: 100})
    results = send(host.url + "/score", count, headers=host.auth())
    assert [status for status, _, _ in results] == [200] * count, results
    return [data for _, data, _ in results]


def instances(host: Host, name: str) -> list[dict]:
    return host.client.status()["deployments"][name]["instances"]


def test_forked_instances_answer_as_fresh_ones_with_init_after_the_fork(fork_host, loop_mode):
    host = fork_host()
    host.client.create_deployment(spec(host, "fresh", fork=False), timeout=60)
    host.client.create_deployment(spec(host, "forked", count=2), timeout=60)
    host.remember()
    fresh, forked = answers(host, "fresh")[0], answers(host, "forked", 8)
    assert [i["forked"] for i in instances(host, "fresh")] == [False]
    assert [i["forked"] for i in instances(host, "forked")] == [True, True]
    assert fresh["ppid"] == host.info.pid  # a fresh start is the host's child ...
    zygotes = {a["ppid"] for a in forked}
    assert len(zygotes) == 1 and host.info.pid not in zygotes  # ... a forked one the fork server's
    zygote = zygotes.pop()
    assert Path(f"/proc/{zygote}/cmdline").read_bytes().split(b"\0")[1:3] == [b"-m", b"mlctl.runtime.server.zygote"]
    assert {a["pid"] for a in forked} == {i["pid"] for i in instances(host, "forked")}
    for a in forked:  # init() ran in the instance itself, after the fork; its own process group
        assert a["init_pid"] == a["pid"] == a["pgid"] != zygote
        assert a["prediction"] == fresh["prediction"] and a["who"] == "forked"
    assert _imports_sklearn(zygote)
    host.client.shutdown(timeout=20)  # stopped with the host: the fork server and every instance
    wait_until(lambda: not any(is_alive(p) for p in [zygote, *(a["pid"] for a in forked)]), 20, "no process left")


def _imports_sklearn(pid: int) -> bool:
    """The fork server loaded scikit-learn's compiled extensions (mapped in its memory) before forking."""
    return "sklearn" in Path(f"/proc/{pid}/maps").read_text()


def test_killing_the_fork_server_leaves_its_instances_and_a_roll_starts_a_new_one(fork_host, loop_mode):
    host = fork_host()
    host.assert_loop(loop_mode)  # the old instance's end is seen through a pidfd on the host's loop
    host.client.create_deployment(spec(host, "blue"), timeout=60)
    host.remember()
    first = answers(host, "blue")[0]
    os.kill(first["ppid"], signal.SIGKILL)
    wait_until(lambda: not is_alive(first["ppid"]), 10, "the fork server gone")
    assert {a["pid"] for a in answers(host, "blue")} == {first["pid"]}  # the instance serves on
    host.client.roll_deployment(spec(host, "blue", digest="sha256:blue-2"), timeout=60)  # the same environment
    host.remember()
    after = answers(host, "blue")[0]
    assert after["pid"] != first["pid"] and after["ppid"] not in (first["ppid"], host.info.pid)
    wait_until(lambda: not is_alive(first["pid"]), 20, "the old instance stopped by the roll")
    assert "fork server of deployment blue ended; starting it again" in host.log()


def test_instances_are_in_cgroups_of_their_own_under_their_limit(fork_host):
    host = fork_host()
    s = spec(host, "sized", count=2)
    s["launch"]["resources"] = {"limits": {"memory": 1 << 30}}
    host.client.create_deployment(s, timeout=60)
    host.remember()
    got = answers(host, "sized", 6)
    groups = {a["pid"]: _memory_cgroup(a["pid"]) for a in got}
    assert len(groups) == 2 and len(set(groups.values())) == 2
    described = {i["pid"]: i["cgroup"] for i in instances(host, "sized")}
    for pid, group in groups.items():
        assert described[pid].endswith(group)
    zygote = got[0]["ppid"]
    assert _memory_cgroup(zygote) not in groups.values() and "zygote" in _memory_cgroup(zygote)


def _memory_cgroup(pid: int) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        number, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(",") or (number == "0" and controllers == ""):
            return path
    raise AssertionError(f"no memory cgroup for {pid}")


def test_a_package_that_starts_a_thread_at_import_falls_back_to_a_fresh_start(fork_host, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    (site / "parent.pth").write_text(sysconfig.get_path("purelib") + "\n")  # aiohttp, scikit-learn: this venv's
    (site / "threadstarter.py").write_text(THREAD_AT_IMPORT)
    host = fork_host()
    code = host.code_dir
    (code / "score.py").write_text("import threadstarter\n" + SCORE)
    host.client.create_deployment(spec(host, "threaded", python=str(venv / "bin" / "python")), timeout=60)
    host.remember()
    got = answers(host, "threaded")[0]
    assert got["ppid"] == host.info.pid and [i["forked"] for i in instances(host, "threaded")] == [False]
    log = host.log()
    assert (
        "instances start fresh, without a fork server" in log
        and "importing threadstarter started a Python thread" in log
    )


def test_a_roll_under_load_from_a_fork_server_fails_no_request(fork_host, loop_mode):
    host = fork_host()
    host.client.create_deployment(spec(host, "blue", count=2, concurrent=2), timeout=60)
    host.client.set_traffic({"blue": 100})
    host.remember()

    def roll():
        host.client.roll_deployment(
            spec(host, "blue", count=2, concurrent=2, digest="sha256:b2", env={"WHO": "b2"}), timeout=60
        )

    results = send(host.url + "/score", 20_000, concurrency=4, headers=host.auth(), payload=body(), during=roll)
    host.remember()
    statuses = [status for status, _, _ in results]
    assert statuses and set(statuses) == {200}, [r for r in results if r[0] != 200][:3]
    assert {data["who"] for _, data, _ in results[-4:]} == {"b2"}
    assert all(i["forked"] for i in instances(host, "blue"))


def test_a_killed_host_takes_its_forked_instances_and_its_fork_server(fork_host):
    host = fork_host()
    host.client.create_deployment(spec(host, "blue", count=2), timeout=60)
    host.remember()
    got = answers(host, "blue", 6)
    pids = {a["pid"] for a in got} | {a["ppid"] for a in got}
    assert len(pids) == 3 and all(is_alive(p) for p in pids)
    os.kill(host.info.pid, signal.SIGKILL)
    wait_until(lambda: not any(is_alive(p) for p in pids), 20, "no orphans: neither instances nor the fork server")


def test_a_roll_to_another_environment_stops_the_old_fork_server_once_unused(fork_host):
    host = fork_host()
    host.client.create_deployment(spec(host, "blue"), timeout=60)
    host.remember()
    old = answers(host, "blue")[0]["ppid"]
    # other variables, another environment (packages may read them at import): a fork server of its own
    host.client.roll_deployment(spec(host, "blue", digest="sha256:blue-2", env={"OMP_NUM_THREADS": "1"}), timeout=60)
    host.remember()
    new = answers(host, "blue")[0]["ppid"]
    assert new not in (old, host.info.pid)
    wait_until(lambda: not is_alive(old), 20, "the old environment's fork server stopped")
    assert is_alive(new)
    host.client.set_traffic({})
    host.client.remove_deployment("blue")  # no deployment uses it any more
    wait_until(lambda: not is_alive(new), 20, "the fork server stopped with its last deployment")


def test_a_module_of_the_code_folder_wins_over_one_another_deployment_had_preloaded(fork_host, tmp_path):
    host = fork_host()
    first = spec(host, "first")
    first["environment_variables"] = {}  # one environment for both: one fork server
    (host.code_dir / "score.py").write_text("import colorsys\n" + SCORE)  # preloads the standard library's
    host.client.create_deployment(first, timeout=60)
    other = tmp_path / "other"
    other.mkdir()
    (other / "colorsys.py").write_text("MARK = 'the code folder'\n")
    (other / "score.py").write_text(
        "import colorsys, json, os\ndef init():\n    pass\n"
        "def run(raw_data):\n    return {'mark': getattr(colorsys, 'MARK', None), 'ppid': os.getppid()}\n"
    )
    second = {**spec(host, "second"), "environment_variables": {}, "code_dir": str(other)}
    host.client.create_deployment(second, timeout=60)
    host.remember()
    one, two = answers(host, "first")[0], answers(host, "second")[0]
    assert two == {"mark": "the code folder", "ppid": one["ppid"]}  # forked by the same fork server


@pytest.mark.parametrize("server_loop", ["uvloop", "asyncio"])
def test_a_forked_instance_runs_the_event_loop_its_variables_ask_for(fork_host, server_loop):
    pytest.importorskip("uvloop")
    host = fork_host()
    s = spec(host, "blue", env={"MLCTL_SERVER_LOOP": server_loop})
    host.client.create_deployment(s, timeout=60)
    host.remember()
    got = answers(host, "blue")[0]
    assert got["ppid"] != host.info.pid and [i["forked"] for i in instances(host, "blue")] == [True]
    log = (host.data_dir / "logs" / "ep" / "blue" / "instance-0.log").read_text()
    assert f"uvloop {'on' if server_loop == 'uvloop' else 'off'})" in log, log[-2000:]
