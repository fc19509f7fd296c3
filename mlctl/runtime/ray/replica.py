"""The Serve deployment of every mlctl application: each replica runs mlctl's scoring server.

A replica is a thin shell in Ray's own interpreter. Its constructor starts the very scoring server the
local runtime runs (`python -m mlctl.runtime.server`, same command line and environment:
`mlctl.runtime.kit.servercommand`) in the deployment's virtualenv, on a unix socket in the replica's
temporary folder, and waits until it answers `GET /`; a server that exits first (init() raised)
fails the constructor with the server's output, traceback included, which Serve reports as the
application's status message. Requests arrive through Serve's HTTP proxy at the application's route
prefix; the replica strips the prefix and relays the request to the server with mlctl's own
HTTP client (`mlctl.runtime.host.upstream`), answering what the server answered. Serve's health
check probes the server's `GET /`. The server's output goes to the replica's Serve log.

Runs inside Ray workers: imports nothing of mlctl but the standard-library modules named above.
The model and the code arrive through the replica's runtime_env `working_dir` (`model/`, `code/`).
"""

from __future__ import annotations

import collections
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from types import SimpleNamespace

from mlctl.waiting import Timeout, wait_until
from mlctl.runtime.host.unixhttp import UnixConnection
from mlctl.runtime.kit.servercommand import die_with_parent, instance_env, server_command

logger = logging.getLogger("ray.serve")
TAIL_LINES = 200  # server output kept for a failed start
_DROPPED = {b"host", b"content-length", b"connection", b"transfer-encoding", b"keep-alive"}


def probe(path: str, timeout: float) -> int | None:
    """The status GET / answers on the unix socket `path`, None when nothing answers."""
    conn = UnixConnection(path, timeout)
    try:
        conn.request("GET", "/")
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


class ScoringReplica:
    """One replica: the scoring server process, the relay of its output, and the requests it serves."""

    def __init__(self, spec: dict):
        here = os.getcwd()  # the runtime_env working_dir
        self.prefix = spec["route_prefix"]
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.folder = tempfile.mkdtemp(prefix="mlctl-replica-")
        self.socket = os.path.join(self.folder, "score.sock")
        python = spec["python"] or sys.executable
        if not os.path.exists(python):
            raise RuntimeError(
                f"the virtualenv interpreter {python} does not exist on this node "
                f"({socket.gethostname()}): the ray runtime needs MLCTL_CACHE on a file system "
                f"every node shares (docs/runtime.md)"
            )
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
        self.pool = None

    def _run(self, server, started: threading.Event) -> None:
        try:
            self.proc = subprocess.Popen(
                server_command(server, self.socket),
                cwd=server.code_dir,
                env=instance_env(server),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        except OSError as e:
            self.spawn_error = e
            return
        finally:
            started.set()
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.tail.append(line)
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
            return probe(self.socket, 2.0) == 200

        try:
            wait_until(ready, budget_s, "the scoring server answers its readiness probe")
        except Timeout:
            self._kill()
            raise RuntimeError(f"the scoring server was not ready after {budget_s:.0f}s:\n" + "\n".join(self.tail))

    def _kill(self) -> None:
        proc = getattr(self, "proc", None)  # (also from __del__ of a constructor that failed early)
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, 9)
            except ProcessLookupError:
                pass
            proc.wait()
        if getattr(self, "folder", None):
            shutil.rmtree(self.folder, ignore_errors=True)

    def __del__(self):
        self._kill()

    def check_health(self) -> None:
        """Serve's health check: the server runs and answers GET / with 200 (503: it asks to be replaced)."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"the scoring server exited with code {self.proc.returncode}")
        status = probe(self.socket, 5.0)
        if status != 200:
            raise RuntimeError(f"the scoring server answered GET / with {status}")

    async def __call__(self, request):
        from starlette.responses import Response

        from mlctl.runtime.host.upstream import Pool

        if self.pool is None:
            self.pool = Pool(f"unix:{self.socket}")
        scope = request.scope
        path = scope.get("raw_path") or scope["path"].encode("latin-1")
        prefix = self.prefix.encode()
        if path.startswith(prefix):
            path = path[len(prefix) :] or b"/"
        target = path.decode("latin-1") + (
            f"?{scope['query_string'].decode('latin-1')}" if scope.get("query_string") else ""
        )
        headers = b"".join(k + b": " + v + b"\r\n" for k, v in scope["headers"] if k.lower() not in _DROPPED)
        body = await request.body()
        _, _, answer = await self.pool.request(scope["method"], target, headers, body)
        status, _, lines, content = await answer
        response = Response(content=content, status_code=status)
        for line in lines.split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if sep:
                response.raw_headers.append((name.strip().lower(), value.strip()))
        return response


def bind(spec: dict, options: dict):
    """The Serve application (a bound deployment) for `spec` with the deployment `options`."""
    from ray import serve

    return serve.deployment(ScoringReplica, name="scorer").options(**options).bind(spec)
