"""One scoring-server instance: its process, output capture, readiness polling, probes and stop."""

from __future__ import annotations

import asyncio
import collections
import ctypes
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import mlctl

from .logfiles import RotatingLog, instance_log_path
from .relay import OutputRelay, output_pipe
from .spec import DeploymentSpec
from .upstream import ConnectionFailed, Pool

log = logging.getLogger("mlctl.host")

READY_POLL_S = 0.05  # readiness is polled, never slept for
TAIL_BYTES = 64 * 1024    # output kept in memory for DeploymentFailed
PACKAGE_PARENT = str(Path(mlctl.__file__).resolve().parent.parent)
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class InstanceFailed(Exception):
    """An instance exited or did not become ready; carries the tail of its output."""

    def __init__(self, message: str, log_tail: str):
        super().__init__(message)
        self.log_tail = log_tail


@dataclass
class Launch:
    """Where instances of one endpoint live: data folder, socket folder, shared log writers."""
    data_dir: Path
    endpoint: str
    socket_dir: Path
    logs: dict = field(default_factory=dict)

    def log_for(self, deployment: str, index: int) -> RotatingLog:
        path = instance_log_path(self.data_dir, self.endpoint, deployment, index)
        if path not in self.logs:
            self.logs[path] = RotatingLog(path)
        return self.logs[path]


def instance_env(spec: DeploymentSpec) -> dict:
    """The instance's environment: the host's minus Python overrides, the spec's variables, Azure's names."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env.update(spec.environment_variables)
    env.update({
        "PYTHONPATH": PACKAGE_PARENT,
        "PYTHONUNBUFFERED": "1",
        "AZUREML_MODEL_DIR": spec.model_dir,
        "AZUREML_ENTRY_SCRIPT": spec.scoring_script,
        "AML_APP_ROOT": spec.code_dir,
        "AZUREML_SOURCE_DIRECTORY": spec.code_dir,
        "SERVICE_NAME": spec.name,
    })
    return env


class Instance:
    """A scoring-server process on a unix socket with a pool of kept-alive connections to it."""

    def __init__(self, spec: DeploymentSpec, index: int, generation: int, launch: Launch):
        self.spec, self.index, self.generation, self.launch = spec, index, generation, launch
        self.socket = launch.socket_dir / f"{spec.name}-g{generation}-{index}.sock"
        self.proc: asyncio.subprocess.Process | None = None
        self.pool: Pool | None = None
        self.ready = False
        self.stopping = False
        self.in_flight = 0
        self.restarts = 0
        self.started_at = 0.0
        self.tail: collections.deque[bytes] = collections.deque()  # last output chunks, TAIL_BYTES at most
        self._tail_bytes = 0
        self._reader: asyncio.Task | None = None
        self._relay: OutputRelay | None = None
        self._lifecycle = asyncio.Lock()  # spawn and stop never interleave

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def command(self) -> list[str]:
        s = self.spec
        return [s.python, "-m", "mlctl.runtime.server",
                "--entry-script", os.path.join(s.code_dir, s.scoring_script),
                "--model-dir", s.model_dir, "--unix-socket", str(self.socket),
                "--max-concurrent", str(s.max_concurrent),
                "--request-timeout-ms", str(s.instance_timeout_ms)]

    async def spawn(self) -> None:
        """Start the process (output captured to its log file); does not wait for readiness."""
        async with self._lifecycle:
            if not self.stopping:
                await self._spawn()

    async def _spawn(self) -> None:
        self.socket.unlink(missing_ok=True)
        self.ready = False
        self.tail.clear()
        self._tail_bytes = 0
        out = self.launch.log_for(self.spec.name, self.index)
        out.write(f"--- mlctl host: starting instance {self.index} of {self.spec.name} "
                  f"(digest {self.spec.digest[:19]}) at {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode())
        r, w = output_pipe()
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.command(), cwd=self.spec.code_dir, env=instance_env(self.spec),
                stdin=asyncio.subprocess.DEVNULL, stdout=w, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent)
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(w)
        self.started_at = time.monotonic()
        self._relay = OutputRelay(r, out, self._remember)
        self._reader = asyncio.get_running_loop().create_task(self._relay.run())
        if self.pool is not None:
            self.pool.close()
        self.pool = Pool(str(self.socket))

    def _remember(self, data: bytes) -> None:
        self.tail.append(data)
        self._tail_bytes += len(data)
        while self._tail_bytes > TAIL_BYTES and len(self.tail) > 1:
            self._tail_bytes -= len(self.tail.popleft())

    def log_tail(self, lines: int = 60) -> str:
        """The last `lines` lines the instance wrote (decoded only now: failures are rare)."""
        text = b"".join(self.tail).decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    async def probe(self, timeout: float) -> bool:
        """GET / answers 200 within `timeout`?"""
        if not self.is_running() or self.pool is None:
            return False
        conn = serial = None
        try:
            async with asyncio.timeout(timeout):
                conn, serial, answer = await self.pool.request("GET", "/", b"", b"")
                status = (await answer)[0]
            return status == 200
        except (ConnectionFailed, asyncio.TimeoutError, OSError):
            if conn is not None:
                conn.abort(serial)
            return False

    async def wait_ready(self, deadline: float) -> None:
        """Poll GET / every 50 ms until it answers 200; InstanceFailed if the process exits or time runs out."""
        timeout = max(0.5, float(self.spec.readiness_probe["timeout"]))
        while True:
            if not self.is_running():
                await self._drain_output()
                raise InstanceFailed(
                    f"instance {self.index} of deployment {self.spec.name!r} exited with code "
                    f"{self.proc.returncode} before it was ready", self.log_tail())
            if self.socket.exists() and await self.probe(min(timeout, max(0.05, deadline - time.monotonic()))):
                self._relay.drain()  # what init() printed is in the log before anyone is told "ready"
                self.ready = True
                return
            if time.monotonic() >= deadline:
                raise InstanceFailed(
                    f"instance {self.index} of deployment {self.spec.name!r} was not ready after "
                    f"{time.monotonic() - self.started_at:.1f}s", self.log_tail())
            await asyncio.sleep(READY_POLL_S)

    async def _drain_output(self) -> None:
        if self._reader is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._reader), 2)
            except asyncio.TimeoutError:
                pass

    def signal(self, sig: int) -> None:
        if self.is_running():
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    async def stop(self, grace: float = 5.0) -> None:
        """SIGTERM its process group, SIGKILL after `grace` seconds; close its connections."""
        self.stopping = True
        self.ready = False
        async with self._lifecycle:
            await self._stop(grace)

    async def _stop(self, grace: float) -> None:
        if self.is_running():
            self.signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except asyncio.TimeoutError:
                self.signal(signal.SIGKILL)
                await self.proc.wait()
        await self._drain_output()
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        self.socket.unlink(missing_ok=True)
