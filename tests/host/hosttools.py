"""Helpers for endpoint-host tests: a Host wrapper, score.py source, keep-alive load clients."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import socket
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from mlctl.runtime.host import secrets
from mlctl.runtime.host.runfiles import host_log, is_alive
from mlctl.runtime.host.client import HostClient, HostError, HostInfo, find_host, start_host

SCORE = textwrap.dedent('''
    """Test scoring script: predicts with the Ridge model's weights (model.json), or with the pickled Ridge where the
    model folder has no model.json; the request's JSON steers odd behaviour."""
    import json, os, time
    model = None
    def predict(rows):
        if not isinstance(model, dict):
            return model.predict(rows).tolist()
        return [model["intercept"] + sum(c * x for c, x in zip(model["coef"], row)) for row in rows]
    def init():
        global model
        if os.environ.get("FAIL_INIT"):
            raise RuntimeError("init failed on purpose: " + os.environ["FAIL_INIT"])
        if os.path.exists(os.environ.get("FAIL_INIT_WHILE", "/nonexistent")):
            raise RuntimeError("init failed while this file exists: " + os.environ["FAIL_INIT_WHILE"])
        folder = os.environ["AZUREML_MODEL_DIR"]
        if os.path.exists(os.path.join(folder, "model.json")):
            with open(os.path.join(folder, "model.json")) as f:
                model = json.load(f)
        else:
            import pickle
            with open(os.path.join(folder, "model.pkl"), "rb") as f:
                model = pickle.load(f)
        print("model loaded", flush=True)
    def run(raw_data, request_headers):
        started = time.time()
        record = os.environ.get("RECORD_FILE")
        if record:
            with open(record, "a") as f:
                f.write(request_headers.get("x-request-id", "-") + "\\n")
        if os.environ.get("SLOW_S"):
            time.sleep(float(os.environ["SLOW_S"]))
        if os.environ.get("ALWAYS_FAIL"):
            raise ValueError("this deployment is broken")
        data = json.loads(raw_data)
        if data.get("sleep"):
            time.sleep(data["sleep"])
        if data.get("fail"):
            raise ValueError("asked to fail")
        if data.get("die"):
            os._exit(3)  # a poison request: the process ends while holding it
        return {"who": os.environ.get("WHO", "?"), "pid": os.getpid(), "started": started, "ended": time.time(),
                "prediction": predict(data["data"]),
                "headers": {k.lower(): v for k, v in request_headers.items()}}
''')

ROW = [0.038, 0.050, 0.061, 0.021, -0.044, -0.034, -0.043, -0.002, 0.019, -0.017]


START_IN = """
import json, sys
from mlctl.runtime.host.client import HostError, start_host
try:
    start_host(sys.argv[1], sys.argv[2], **json.loads(sys.argv[3]))
except HostError as e:
    print(json.dumps([e.message, e.kind, e.log_tail]))
    sys.exit(1)
"""


def start_in(node, data_dir: Path, name: str, start: dict) -> HostInfo:
    """start_host run inside network namespace `node` (the host stays there, detached); its HostInfo.
    A host that fails to start raises the HostError start_host raised there."""
    done = node.run([sys.executable, "-c", START_IN, str(data_dir), name, json.dumps(start)], timeout=90)
    if done.returncode != 0:
        try:
            message, kind, tail = json.loads(done.stdout)
        except ValueError:
            raise AssertionError(f"start_host in {node.name} failed: {done.stdout} {done.stderr}") from None
        raise HostError(message, kind, tail)
    info = find_host(data_dir, name)
    assert info is not None, f"the host started in {node.name} has no run record"
    return info


class Host:
    """A real endpoint host in a temporary data folder, with helpers to drive and call it."""

    def __init__(self, data_dir: Path, name: str, code_dir: Path, model_dir: Path, node=None, **start):
        """`node`: a tests/netns.py Node to start the host in (its admin socket is reached from here all the same)."""
        self.data_dir, self.name, self.code_dir, self.model_dir = data_dir, name, code_dir, model_dir
        start = {"auth_mode": "key", "port": None, **start}
        self.info = start_in(node, data_dir, name, start) if node else start_host(data_dir, name, **start)
        self.client = HostClient(self.info)
        self.url = self.info.base_url
        self.pids = {self.info.pid}

    @property
    def key(self) -> str:
        return secrets.read_keys(self.data_dir, self.name)["primary"]

    def auth(self, **extra) -> dict:
        return {"Authorization": f"Bearer {self.key}", **extra}

    def spec(
        self,
        name: str,
        *,
        count: int = 1,
        digest: str | None = None,
        env: dict | None = None,
        timeout_ms: int = 5000,
        concurrent: int = 1,
        liveness: dict | None = None,
        unconfined: bool = False,
    ) -> dict:
        """`unconfined`: as root, run its instances as root (`local.instance_user: mlctl`), for a test that hands
        its score.py a file in this test's /tmp folder (a confined instance has a private /tmp)."""
        return {
            "name": name,
            "digest": digest or f"sha256:{name}-1",
            "python": sys.executable,
            "code_dir": str(self.code_dir),
            "scoring_script": "score.py",
            "model_dir": str(self.model_dir),
            "model_digest": "sha256:model",
            "code_digest": "sha256:code",
            "instance_count": count,
            "environment_variables": {"WHO": name, **(env or {})},
            "request_settings": {"request_timeout_ms": timeout_ms, "max_concurrent_requests_per_instance": concurrent},
            "liveness_probe": liveness or {},
            "readiness_probe": {},
            **({"launch": {"instance_user": "mlctl"}} if unconfined else {}),
        }

    def create(self, name: str, **kw) -> dict:
        """The create order for deployment `name` (see spec() for the keywords); its status."""
        result = self.client.create_deployment(self.spec(name, **kw), timeout=60)
        self.remember()
        return result

    def roll(self, name: str, **kw) -> dict:
        """The roll order: new instances of spec(name, **kw) beside the old, health-gated; its status."""
        result = self.client.roll_deployment(self.spec(name, **kw), timeout=60)
        self.remember()
        return result

    def remember(self) -> None:
        for d in self.client.status()["deployments"].values():
            self.pids.update(i["pid"] for i in d["instances"] if i["pid"])

    def log(self) -> str:
        return host_log(self.data_dir, self.name).read_text(errors="replace")

    def assert_loop(self, mode: str) -> None:
        """The host runs on event loop `mode` ("uvloop" or "asyncio"), as its start line says (waited for:
        the line may reach host.log a moment after the host answers)."""
        line = f"pid {self.info.pid}, event loop {mode},"
        try:
            wait_until(lambda: line in self.log(), 10, f"the start line {line!r} in host.log")
        except AssertionError:
            raise AssertionError(self.log()[-2000:]) from None

    def stop(self) -> None:
        try:
            self.remember()
            self.client.shutdown(timeout=20)
        except Exception:
            pass
        for pid in self.pids:
            if is_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def hosts_of(tmp_path: Path, model_dir: Path, score: str, code_mode: int = 0o777):
    """A fixture's body: yields `make(**start) -> Host` for endpoint "ep" serving `score` (code/score.py, its folder
    made with `code_mode`) and the model in `model_dir`; stops every host it made at the end."""
    code = tmp_path / "code"
    code.mkdir(mode=code_mode)
    (code / "score.py").write_text(score)
    hosts: list[Host] = []

    def make(**start) -> Host:
        host = Host(tmp_path / "data", "ep", code, model_dir, **start)
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        host.stop()


def body(**extra) -> bytes:
    return json.dumps({"data": [ROW], **extra}).encode()


async def _clients(
    url: str,
    total: int,
    concurrency: int,
    headers: dict,
    payload: bytes,
    limit_s: float,
    during=None,
    ssl=None,
    fresh: bool = False,
):
    """`concurrency` keep-alive clients send up to `total` requests; returns [(status, json|None, headers)].

    With `during` (a blocking callable, run in a thread) they keep sending until it returns, within
    `total` and `limit_s`; without it they stop after `total`. `ssl`: the client context for https;
    `fresh`: a new connection (and TLS handshake) for every request instead of keep-alive."""
    results = []
    stop_at = time.monotonic() + limit_s
    sent = 0
    done = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=ssl if ssl is not None else True, force_close=fresh)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker():
            nonlocal sent
            while sent < total and time.monotonic() < stop_at and not (during and done.is_set()):
                sent += 1
                try:
                    async with session.post(url, data=payload, headers=headers) as r:
                        raw = await r.read()
                        try:
                            data = json.loads(raw)
                        except ValueError:
                            data = None
                        results.append((r.status, data, {k.lower(): v for k, v in r.headers.items()}))
                except aiohttp.ClientError as e:
                    results.append((0, {"error": repr(e)}, {}))

        tasks = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
        if during is not None:
            await asyncio.sleep(0.2)  # the clients are sending before the operation starts
            try:
                await asyncio.get_running_loop().run_in_executor(None, during)
            finally:
                await asyncio.sleep(0.2)
                done.set()
        await asyncio.gather(*tasks)
    return results


def send(
    url: str,
    total: int,
    *,
    concurrency: int = 1,
    headers: dict | None = None,
    payload: bytes | None = None,
    limit_s: float = 60.0,
    during=None,
    ssl=None,
    fresh: bool = False,
) -> list:
    """Send POSTs to `url` from `concurrency` keep-alive clients (see _clients)."""
    return asyncio.run(_clients(url, total, concurrency, headers or {}, payload or body(), limit_s, during, ssl, fresh))


def wait_until(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def scrape(host) -> dict:
    """{(sample name, frozenset(labels)): value} from the host's /metrics (parsed by prometheus-client)."""
    with urllib.request.urlopen(host.url + "/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(metrics: dict, name: str, **labels) -> float:
    return metrics.get((name, frozenset(labels.items())), 0)


def _answer_status(data: bytes) -> str:
    """What the host did to an attacking connection: the status it answered, or how it closed."""
    if data.startswith(b"HTTP/1.1 "):
        return data[9:12].decode()
    return "closed" if not data else "other"


def _hold(port: int, first: bytes, count: int, seconds: float, interval: float, poke: bytes, started):
    """Keep `count` loopback connections open for `seconds` (counted once all are open), each sent `first` on
    opening and `poke` every `interval`; one the host closes is opened again. `started` (a threading.Event) is
    set once the first `count` are open. What the host did to them: {status it answered or "closed": n,
    "opened": n, ...}."""
    counts: collections.Counter = collections.Counter()

    def connect():
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(first)
            sock.setblocking(False)
        except OSError:
            counts["connect failed"] += 1
            return None
        counts["opened"] += 1
        return sock

    socks = [s for s in (connect() for _ in range(count)) if s is not None]
    stop_at = time.monotonic() + seconds  # from when they are all open
    if started is not None:
        started.set()
    try:
        while time.monotonic() < stop_at:
            next_round = time.monotonic() + interval
            alive = []
            for sock in socks:
                try:
                    counts[_answer_status(sock.recv(4096))] += 1
                    sock.close()
                    continue
                except BlockingIOError:
                    pass
                except OSError:
                    counts["reset"] += 1
                    sock.close()
                    continue
                try:
                    if poke:
                        sock.send(poke)
                except BlockingIOError:
                    pass
                except OSError:
                    counts["reset"] += 1
                    sock.close()
                    continue
                alive.append(sock)
            socks = alive
            while len(socks) < count and time.monotonic() < stop_at:
                sock = connect()
                if sock is None:
                    break
                socks.append(sock)
            time.sleep(max(0.0, next_round - time.monotonic()))
    finally:
        counts["open at the end"] += len(socks)
        for sock in socks:
            sock.close()
    return counts


def slow_heads(port: int, count: int, seconds: float, interval: float = 0.3, started=None) -> collections.Counter:
    """Slow-header attack (bounded, loopback only): `count` connections without a key at a time for `seconds`,
    each sending the start of a request head, then one more byte of it every `interval` (see _hold)."""
    head = f"POST /score HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nX-Slow: ".encode()
    return _hold(port, head, count, seconds, interval, b"s", started)


def slow_bodies(
    port: int, count: int, seconds: float, size: int = 60_000, interval: float = 0.3, started=None
) -> collections.Counter:
    """Slow-body attack (bounded, loopback only): `count` connections without a key at a time for `seconds`,
    each announcing a `size`-byte body (small enough to be read without credentials) and sending all of it
    but its last byte at once, then holding that byte back (see _hold)."""
    head = (
        f"POST /score HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {size}\r\n\r\n"
    ).encode()
    return _hold(port, head + b"7" * (size - 1), count, seconds, interval, b"", started)
