"""The Serve deployment of every mlctl application: each replica runs mlctl's scoring server, reached directly.

A replica is a thin shell in Ray's own interpreter. Its constructor starts the very scoring server the
local runtime runs (`python -m mlctl.runtime.server`, same environment: `mlctl.runtime.kit.servercommand`)
in the deployment's virtualenv (shipped through the cluster and made on the node: nodeenv.py), listening
on its node's address at a free port, and also on a unix socket for the hosts on its node (`hop_socket`), waits
until it answers `GET /`, and registers where it listens (`directory.register`): the endpoint hosts send requests
straight there (one hop; the application has no route on Serve's proxy and the replica relays nothing), a host on
the same node through the unix socket. The server answers only requests that carry the
endpoint's hop secret (`X-Mlctl-Hop`, compared in constant time). A server that exits first (init()
raised) fails the constructor with the server's output, traceback included, which Serve reports as the
application's status message. Serve places, health-checks (the server's `GET /`) and replaces the
replicas. The server's output goes to the replica's Serve log.

Runs inside Ray workers: imports nothing of mlctl but the standard-library modules named above.
The model and the code arrive through the replica's runtime_env `working_dir` (`model/`, `code/`).
"""

from __future__ import annotations

import collections
import http.client
import logging
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from types import SimpleNamespace

from mlctl.waiting import Timeout, wait_until
from mlctl.runtime.kit.servercommand import instance_env, server_command
from mlctl.runtime.ray import directory, nodeenv

logger = logging.getLogger("ray.serve")
TAIL_LINES = 200  # server output kept for a failed start
LISTENING = re.compile(r"listening on http://(\S+?):(\d+)\b")  # the server's line saying where it listens


def probe(host: str, port: int, secret: str, timeout: float) -> int | None:
    """The status GET / answers at HOST:PORT with the hop secret, None when nothing answers."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/", headers={directory.HOP_HEADER: secret})
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def tcp_command(server, host: str, also: str | None = None) -> list[str]:
    """Pure: the scoring server's command line for `server`, listening at a free TCP port of `host` (and also on
    the unix socket `also`, when given)."""
    command = server_command(server, "-")
    at = command.index("--unix-socket")
    command[at : at + 2] = ["--host", host, "--port", "0", *(["--also-unix-socket", also] if also else [])]
    return command


def hop_socket(replica_id: str) -> str | None:
    """Where this replica's server also listens for the hosts on its node (the same-node hop): a unix socket in a
    folder of this user's, mode 0700, in the node's temporary folder, which keeps other users out; None (TCP
    only) when that folder is not this user's alone, or the path is too long for a unix socket."""
    folder = os.path.join(tempfile.gettempdir(), f"mlctl-hop-{os.getuid()}")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        found = os.lstat(folder)
    except OSError as e:
        logger.warning("mlctl: no same-node socket (%s): TCP only", e)
        return None
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid() or found.st_mode & 0o077:
        logger.warning("mlctl: no same-node socket: %s is not a folder of this user's alone (0700): TCP only", folder)
        return None
    path = os.path.join(folder, f"{re.sub(r'[^A-Za-z0-9_-]', '_', replica_id)}.sock")
    return path if len(path.encode()) < 100 else None


class ScoringReplica:
    """One replica: the scoring server process, the relay of its output and where it listens."""

    def __init__(self, spec: dict):
        import ray
        from ray import serve

        here = os.getcwd()  # the runtime_env working_dir
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.secret = spec["hop_secret"]
        self.grace = spec["instance_timeout_ms"] / 1000 + 1  # within Serve's graceful_shutdown_timeout_s (+2 s)
        self.node_ip = ray.util.get_node_ip_address()
        self.listening: tuple[str, int] | None = None
        context = serve.get_replica_context()
        self.application, self.replica_id = context.app_name, context.replica_id.unique_id
        self.unix = hop_socket(self.replica_id)
        python, self.variables = sys.executable, {}  # without an environment: Ray's own interpreter
        if spec.get("environment"):  # shipped through the cluster (packages.py): a virtualenv on this node
            python, self.variables = nodeenv.materialize(spec["environment"])
        server = SimpleNamespace(
            name=spec["name"],
            python=python,
            code_dir=os.path.join(here, "code"),
            scoring_script=spec["scoring_script"],
            model_dir=os.path.join(here, "model"),
            max_concurrent=spec["max_concurrent"],
            instance_timeout_ms=spec["instance_timeout_ms"],
            environment_variables=spec.get("environment_variables") or {},
        )
        logger.info("mlctl: starting the scoring server of %s (serving digest %s)", spec["name"], spec["digest"])
        self.proc: subprocess.Popen | None = None
        self.spawn_error: BaseException | None = None
        started = threading.Event()
        # the thread that starts the server lives as long as the server (it relays its output): the
        # server's PDEATHSIG fires when that thread ends, i.e. only when this worker process dies
        self.relay = threading.Thread(target=self._run, args=(server, started), daemon=True)
        self.relay.start()
        started.wait()
        if self.proc is None:
            raise RuntimeError(f"the scoring server could not start: {self.spawn_error}")
        self._wait_ready(float(spec["ready_within_s"]))
        host, port = self.listening
        entry = {"address": f"tcp:{host}:{port}", "node_ip": self.node_ip, "pid": self.proc.pid}
        if self.unix and os.path.exists(self.unix):  # the hosts on this node use it (launcher.Launcher.address)
            entry.update(unix=f"unix:{self.unix}", node_id=ray.get_runtime_context().get_node_id())
        directory.register(self.application, self.replica_id, entry)

    def _run(self, server, started: threading.Event) -> None:
        try:
            self.proc = subprocess.Popen(
                tcp_command(server, self.node_ip, self.unix),
                cwd=server.code_dir,
                # no preexec_fn: Python code between fork and exec in Ray's worker (gRPC threads) can abort the
                # child; the server sets its own parent-death signal (MLCTL_PARENT_PID)
                env={
                    **instance_env(server),
                    **self.variables,
                    "MLCTL_HOP_SECRET": self.secret,
                    "MLCTL_PARENT_PID": str(os.getpid()),
                },
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as e:
            self.spawn_error = e
            return
        finally:
            started.set()
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.tail.append(line)
            if self.listening is None:
                found = LISTENING.search(line)
                if found:
                    self.listening = (found.group(1).strip("[]"), int(found.group(2)))
            logger.info("%s", line)
        self.proc.wait()

    def _wait_ready(self, budget_s: float) -> None:

        def ready() -> bool:
            if self.proc.poll() is not None:
                self.relay.join(5)
                raise RuntimeError(
                    f"the scoring server exited with code {self.proc.returncode} before it was "
                    "ready:\n" + "\n".join(self.tail)
                )
            return self.listening is not None and probe(*self.listening, self.secret, 2.0) == 200

        try:
            wait_until(ready, budget_s, "the scoring server answers its readiness probe")
        except Timeout:
            self._kill()
            raise RuntimeError(f"the scoring server was not ready after {budget_s:.0f}s:\n" + "\n".join(self.tail))

    def _kill(self, grace: float = 0.0) -> None:
        """End the server: SIGTERM (it stops accepting and finishes the requests it holds), SIGKILL after `grace`
        seconds or at once."""
        proc = getattr(self, "proc", None)  # (also from __del__ of a constructor that failed early)
        if proc is None or proc.poll() is not None:
            return
        try:
            if grace > 0:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(grace)
                    return
                except subprocess.TimeoutExpired:
                    pass
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    def __del__(self):
        """Serve's graceful shutdown (a replica scaled down or deleted): the server serves on until the host that
        uses it released it (directory.release: Serve chose this replica, the host drains it first), at most
        RELEASE_S, then drains what it holds (up to the instance timeout); out of the directory."""
        if getattr(self, "listening", None) is not None:
            try:
                wait_until(
                    lambda: directory.released(self.application, self.replica_id),
                    directory.RELEASE_S,
                    "the endpoint host releases this replica's server",
                    interval=0.2,
                )
            except Exception:  # not released in time, or the cluster is going away with this worker
                pass
        self._kill(getattr(self, "grace", 0.0))
        if getattr(self, "listening", None) is not None:
            try:
                directory.unregister(self.application, self.replica_id)
            except Exception:  # its entry is then stale (servers() lists only running replicas)
                pass

    def check_health(self) -> None:
        """Serve's health check: the server runs and answers GET / with 200 (503: it asks to be replaced)."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"the scoring server exited with code {self.proc.returncode}")
        status = probe(*self.listening, self.secret, 5.0)
        if status != 200:
            raise RuntimeError(f"the scoring server answered GET / with {status}")

    async def __call__(self, request):
        """Nothing is served through Serve (the application has no route): the hosts reach the server."""
        from starlette.responses import PlainTextResponse

        return PlainTextResponse("reach this model through its mlctl endpoint host\n", status_code=404)


def bind(spec: dict, options: dict):
    """The Serve application (a bound deployment) for `spec` with the deployment `options`."""
    from ray import serve

    return serve.deployment(ScoringReplica, name="scorer").options(**options).bind(spec)
