"""End-to-end helpers: real projects applied with the real CLI, real endpoint hosts and virtualenvs.

Virtualenvs go to MLCTL_CACHE (as set by CI), else `~/.cache/mlctl-tests`, keyed by image digest,
so each environment is built once and re-runs reuse it. Every test project is destroyed and every
host process it started is killed (by PID) when the test ends.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "diabetes"

SCORE = """\
import json, os

def init():
    global who
    who = os.environ.get("WHO", "?")
    if os.environ.get("FAIL_INIT"):
        raise RuntimeError("init failed on purpose in " + who)

def run(raw_data):
    return {"who": who}
"""

ENDPOINT = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
name: {name}
auth_mode: key
traffic: {traffic}
"""

DEPLOYMENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: {name}
endpoint_name: {endpoint}
model:
  path: model/
code_configuration:
  code: code/
  scoring_script: score.py
environment_variables:
  WHO: {name}
{extra}instance_count: {count}
"""


def mlctl(project, *args, check=True, input=None, timeout=300, env=None):
    """Run the real CLI in a subprocess; returns CompletedProcess (text)."""
    proc = subprocess.run(
        [sys.executable, "-m", "mlctl.cli", "-C", str(project), *args],
        capture_output=True,
        text=True,
        input=input,
        timeout=timeout,
        env=env,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"mlctl {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def recorded_hosts(project) -> set[int]:
    """PIDs of the endpoint hosts of a project, from their run records (.mlctl/run/*.json)."""
    pids = set()
    for record in (
        (Path(project) / ".mlctl" / "run").glob("*.json") if (Path(project) / ".mlctl" / "run").is_dir() else []
    ):
        try:
            pids.add(json.loads(record.read_text())["pid"])
        except (ValueError, KeyError, OSError):
            pass
    return pids


def host_pids(project) -> set[int]:
    """PIDs of the endpoint hosts and instances of a project (their run records and `mlctl show --json`)."""
    pids = recorded_hosts(project)
    listed = mlctl(project, "list", "--json", check=False)
    for ep in json.loads(listed.stdout or "[]") if listed.returncode == 0 else []:
        shown = json.loads(mlctl(project, "show", ep["name"], "--json").stdout)
        if shown["host"]["pid"]:
            pids.add(shown["host"]["pid"])
        for d in shown["deployments"].values():
            pids.update(i["pid"] for i in d["instances"] if i["pid"])
    return pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def cleanup(project) -> None:
    """`mlctl destroy`, then SIGKILL what the project left running: its hosts (run records) and its live processes
    (project_processes: instances, fork servers), found before the destroy in files and /proc. Not by asking the
    CLI (`list` and `show`): two interpreter starts for every test that cleans up, seconds each on a busy machine."""
    pids = recorded_hosts(project) | {int(line.split(":", 1)[0]) for line in project_processes(project)}
    mlctl(project, "destroy", "--auto-approve", check=False)
    for pid in pids:
        if alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


class SplitProject:
    """A split-form project on mlctl's own interpreter: endpoint.yml plus one YAML per deployment."""

    def __init__(self, root: Path, endpoint: str):
        self.root, self.endpoint = root, endpoint
        (root / "model").mkdir(parents=True)
        (root / "model" / "weights.txt").write_text("w")
        (root / "code").mkdir()
        (root / "code" / "score.py").write_text(SCORE)

    def write(self, traffic: dict, deployments: dict, mirror: dict | None = None, auth_mode: str = "key") -> None:
        """deployments: {name: {"count": N, "fail": bool, "concurrency": N, "timeout_ms": N}}; files of removed
        deployments are deleted."""
        text = ENDPOINT.format(name=self.endpoint, traffic=json.dumps(traffic)).replace(
            "auth_mode: key", f"auth_mode: {auth_mode}"
        )
        if mirror:
            text += f"mirror_traffic: {json.dumps(mirror)}\n"
        (self.root / "endpoint.yml").write_text(text)
        for f in self.root.glob("deploy-*.yml"):
            if f.stem[len("deploy-") :] not in deployments:
                f.unlink()
        for name, d in deployments.items():
            extra = '  FAIL_INIT: "1"\n' if d.get("fail") else ""
            settings = [f"  max_concurrent_requests_per_instance: {d['concurrency']}"] if d.get("concurrency") else []
            if d.get("timeout_ms"):
                settings.append(f"  request_timeout_ms: {d['timeout_ms']}")
            if settings:
                extra += "request_settings:\n" + "\n".join(settings) + "\n"

            body = DEPLOYMENT.format(name=name, endpoint=self.endpoint, extra=extra, count=d.get("count", 1))
            (self.root / f"deploy-{name}.yml").write_text(body)


class Endpoint:
    """A keep-alive HTTP client for an endpoint's scoring URI."""

    def __init__(self, project, name: str):
        shown = json.loads(mlctl(project, "show", name, "--json").stdout)
        self.port = shown["host"]["port"]
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def score(self, body: bytes = b"{}", key: str | None = None, deployment: str | None = None):
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        if deployment:
            headers["azureml-model-deployment"] = deployment
        self.conn.request("POST", "/score", body=body, headers=headers)
        resp = self.conn.getresponse()
        return resp.status, resp.read()

    def close(self):
        self.conn.close()


def keys(project, name: str) -> dict:
    return json.loads(mlctl(project, "keys", name, "--json").stdout)


def wait_until(predicate, timeout=30.0):
    """Poll `predicate` (bounded); True once it holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def project_processes(project) -> list[str]:
    """Live processes of a project (endpoint hosts, instances, fork servers): their command line names the project
    folder, or the socket folder of one of its endpoints (a fork server's names its socket there, and an instance it
    forked keeps that command line)."""
    from mlctl.runtime.host.runfiles import endpoint_tag, run_folder

    data_dir = Path(project) / ".mlctl"
    records = list((data_dir / "run").glob("*.json")) if (data_dir / "run").is_dir() else []
    marks = [str(project)] + [f"{run_folder() / endpoint_tag(data_dir, r.stem)}/" for r in records]
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if any(mark in cmd for mark in marks) and "mlctl.runtime" in cmd and alive(int(entry)):
            found.append(f"{entry}: {cmd}")
    return found


def orphans(project) -> tuple[set[int], set[int]]:
    """(the project's live processes, what `host_pids` names): equal when no process is orphaned. A fork server
    whose parent is one of the project's hosts is the host's own (no record names it) and is left out."""
    hosts = host_pids(project)
    running = set()
    for line in project_processes(project):
        pid, cmd = int(line.split(":", 1)[0]), line.split(":", 1)[1]
        if "mlctl.runtime.server.zygote" in cmd and parent_of(pid) in hosts:
            continue
        running.add(pid)
    return running, hosts


def parent_of(pid: int) -> int | None:
    """The parent PID of process `pid`, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


CLIENTS = 4
MAX_REQUESTS = 200_000  # per client: the load stops by itself even if the test hangs
MAX_SECONDS = 400


class Load:
    """`clients` (CLIENTS unless given) keep-alive clients of `host` (loopback unless given; HTTPS with the
    ssl `context` when given) sending requests until stopped (bounded in count and time)."""

    def __init__(
        self, port: int, key: str, body: bytes = b"{}", host: str = "127.0.0.1", clients: int = CLIENTS, context=None
    ):
        self.port, self.key, self.body, self.host, self.context = port, key, body, host, context
        self.stop = threading.Event()
        self.sent = [0] * clients
        self.failures: list[str] = []
        self.served = Counter()
        self.threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(clients)]

    def _connection(self) -> http.client.HTTPConnection:
        if self.context is None:
            return http.client.HTTPConnection(self.host, self.port, timeout=30)
        return http.client.HTTPSConnection(self.host, self.port, timeout=30, context=self.context)

    def _client(self, i: int) -> None:
        conn = self._connection()
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        deadline = time.monotonic() + MAX_SECONDS
        while not self.stop.is_set() and self.sent[i] < MAX_REQUESTS and time.monotonic() < deadline:
            try:
                conn.request("POST", "/score", body=self.body, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                if resp.status != 200:
                    self.failures.append(f"{resp.status} {body[:200]!r}")
                else:
                    answer = json.loads(body)
                    self.served[answer.get("who", "?") if isinstance(answer, dict) else "?"] += 1
            except (OSError, http.client.HTTPException) as e:
                self.failures.append(f"{type(e).__name__}: {e}")
                conn.close()
                conn = self._connection()
            self.sent[i] += 1
        conn.close()

    def total(self) -> int:
        return sum(self.sent)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)


def blue_to_green_under_load(project: SplitProject, endpoint: str, concurrency: int = 4) -> Load:
    """Apply `project` (a SplitProject) with blue at 100 %, then, under a Load, green beside it at 0 %, all traffic
    to green, blue removed, each step's apply complete with requests sent after it; the finished Load (its
    failures and who served). `concurrency`: max_concurrent_requests_per_instance, room for the load's clients."""
    c = {"concurrency": concurrency}
    project.write({"blue": 100}, {"blue": c})
    mlctl(project.root, "apply", "--auto-approve")
    key, port = keys(project.root, endpoint)["primaryKey"], Endpoint(project.root, endpoint).port
    steps = [({"blue": 100, "green": 0}, {"blue": c, "green": c}), ({"blue": 0, "green": 100}, {"blue": c, "green": c})]
    with Load(port, key) as load:
        assert wait_until(lambda: load.total() > 20)
        for traffic, deployments in [*steps, ({"green": 100}, {"green": c})]:
            before = load.total()
            project.write(traffic, deployments)
            assert "Apply complete!" in mlctl(project.root, "apply", "--auto-approve").stdout
            assert wait_until(lambda before=before: load.total() > before + 20), f"no requests after {traffic}"
    return load
