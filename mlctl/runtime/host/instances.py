"""One instance as the host sees it: its launcher's key and address, request slots, readiness and probes.

What the instance is (a process, a container, a remote replica) is its launcher's business
(launcher.py); the host talks to it over HTTP at the address the launcher gave.
"""

from __future__ import annotations

import asyncio
import logging
import time

from .launcher import InstanceFailed, InstanceKey, Launcher
from .spec import ServingSpec
from .upstream import ConnectionFailed, Pool

log = logging.getLogger("mlctl.host")

READY_POLL_S = 0.05  # readiness is polled, never slept for


class Instance:
    """An instance of one deployment: where to reach it (a pool of kept-alive connections) and its state."""

    def __init__(self, spec: ServingSpec, index: int, generation: int, launcher: Launcher):
        self.spec, self.index, self.generation, self.launcher = spec, index, generation, launcher
        self.key = InstanceKey(generation, index)
        self.address: str | None = None
        self.pool: Pool | None = None
        self.ready = False
        self.stopping = False
        self.in_flight = 0
        self.restarts = 0
        self.started_at = 0.0  # when its launcher reported it launched (its address known)
        self.ordered_at = 0.0  # when its start was asked of the launcher (a container or cgroup may take long)
        self.unhealthy = False  # its last probe was answered 503: it asks to be replaced

    def _reached_at(self, address: str | None) -> None:
        self.started_at = time.monotonic()
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        self.address = address
        if address is not None:
            scoring = self.spec.routes.get("scoring")
            secret = self.spec.launch.get("hop_secret")  # the ray runtime's servers require it
            hop = f"X-Mlctl-Hop: {secret}\r\n".encode() if secret else b""
            self.pool = Pool(address, {"/score": scoring} if scoring else None, hop)

    async def start(self) -> None:
        """Launched (not yet ready): the address known, a fresh connection pool to it."""
        self.ready = False
        self.ordered_at = time.monotonic()
        (address,) = await self.launcher.start(self.spec, [self.key])
        self._reached_at(address)

    async def restart(self) -> None:
        """Launched again at once (the launcher kills what remains of it first)."""
        self.ready = False
        self.ordered_at = time.monotonic()
        self._reached_at(await self.launcher.restart(self.key))

    def health(self) -> str | None:
        """None while the launcher says it runs, else why not."""
        return self.launcher.health(self.key)

    def log_tail(self) -> str:
        return self.launcher.logs(self.key)

    async def probe(self, timeout: float, kind: str = "readiness") -> bool:
        """GET / (a custom container's `kind` route) answers 200 within `timeout`? (A 503 sets `unhealthy`:
        the server asks to be replaced.)"""
        if self.pool is None or self.health() is not None:
            return False
        conn = serial = None
        try:
            async with asyncio.timeout(timeout):
                conn, serial, answer = await self.pool.request("GET", self.spec.probe_path(kind), b"", b"")
                status = (await answer)[0]
            self.unhealthy = status == 503
            return status == 200
        except (ConnectionFailed, asyncio.TimeoutError, OSError):
            if conn is not None:
                conn.abort(serial)
            return False

    async def wait_ready(self, deadline: float) -> None:
        """Poll GET / every 50 ms until it answers 200; InstanceFailed if it stops running or time runs out."""
        timeout = max(0.5, float(self.spec.readiness_probe["timeout"]))
        while True:
            if self.health() is not None:
                reason = await self.launcher.gone(self.key)  # (its last output collected)
                raise InstanceFailed(
                    f"instance {self.index} of deployment {self.spec.name!r} {reason} before it was ready",
                    self.log_tail(),
                )
            if await self.probe(min(timeout, max(0.05, deadline - time.monotonic()))):
                self.launcher.on_ready(self.key)
                self.ready = True
                return
            if time.monotonic() >= deadline:
                raise InstanceFailed(
                    f"instance {self.index} of deployment {self.spec.name!r} was not ready after "
                    f"{time.monotonic() - self.ordered_at:.1f}s",
                    self.log_tail(),
                )
            await asyncio.sleep(READY_POLL_S)

    async def stop(self, grace: float = 5.0) -> None:
        """Stopped for good by its launcher (gracefully, forcefully after `grace` s); connections closed."""
        self.stopping = True
        self.ready = False
        await self.launcher.stop([self.key], grace)
        if self.pool is not None:
            self.pool.close()
            self.pool = None

    def status(self) -> dict:
        usage = self.launcher.usage(self.key)
        return {
            "index": self.index,
            **self.launcher.describe(self.key),
            "address": self.address,
            "ready": self.ready,
            "restarts": self.restarts,
            "in_flight": self.in_flight,
            "cpu_seconds": usage.cpu_seconds if usage else None,
            "peak_memory_bytes": usage.peak_memory_bytes if usage else None,
        }
