"""A launcher whose platform restarts instances itself: the host only probes and reports (real processes).

This module is also that launcher: the test names it in the host's registry. It is the process
launcher plus a "platform" that starts an instance again whenever its process exits.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from mlctl.runtime.host import launcher as registry
from mlctl.runtime.host.launcher import Place
from mlctl.runtime.host.metrics import Metrics
from mlctl.runtime.host.spec import ServingSpec
from mlctl.runtime.host.supervisor import Deployment
from mlctl.runtime.local.launcher import Launcher as ProcessLauncher


class Launcher(ProcessLauncher):
    name = "self-restarting"
    restarts_itself = True

    def __init__(self, place, deployment):
        super().__init__(place, deployment)
        self.platform_restarts = 0
        self.platform: list[asyncio.Task] = []

    async def start(self, spec, keys):
        addresses = await super().start(spec, keys)
        self.platform += [asyncio.ensure_future(self._keep_up(key)) for key in keys]
        return addresses

    async def _keep_up(self, key) -> None:
        while (p := self.processes.get(key)) is not None and not p.stopped:
            await p.proc.wait()
            if key in self.processes and not self.processes[key].stopped:
                self.platform_restarts += 1
                await self.restart(key)

    async def close(self) -> None:
        for task in self.platform:
            task.cancel()
        await super().close()


async def until(predicate, what: str, limit_s: float = 60) -> None:
    bound = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < bound, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def test_the_host_only_probes_and_reports_an_instance_its_platform_restarts(monkeypatch, code_dir, model_dir):
    monkeypatch.setitem(registry.LAUNCHERS, "self-restarting", __name__)
    spec = ServingSpec.from_dict(
        {
            "name": "blue",
            "digest": "sha256:blue-1",
            "python": sys.executable,
            "code_dir": str(code_dir),
            "scoring_script": "score.py",
            "model_dir": str(model_dir),
            "launcher": "self-restarting",
            "readiness_probe": {"period": 0.1},
        }
    )

    async def scenario():
        with tempfile.TemporaryDirectory(dir="/tmp") as sockets:
            metrics = Metrics()
            d = Deployment(spec, Place(Path(sockets), "ep", Path(sockets)), metrics)
            await d.create(time.monotonic() + 60)
            inst = d.instances[0]
            first = d.launcher.describe(inst.key)["pid"]
            os.kill(first, signal.SIGKILL)
            await until(lambda: not inst.ready, "the host to see the instance down")
            reported = d.status()
            await d.revive(time.monotonic() + 60)  # drift repair leaves it to the platform too
            revive_left_it = d.instances == [inst] and d.generation == 0
            await until(lambda: inst.ready, "the platform's restart to answer the host's probes")
            again = d.status()["instances"][0]
            await d.stop()
            return reported, revive_left_it, again, first, d.launcher.platform_restarts, metrics.restarts["blue"]

    reported, revive_left_it, again, first, platform_restarts, host_restarts = asyncio.run(scenario())
    assert (reported["state"], reported["ready_instances"]) == ("degraded", 0)
    assert revive_left_it
    assert again["ready"] and again["pid"] != first and again["restarts"] == 0
    assert (platform_restarts, host_restarts) == (1, 0)
