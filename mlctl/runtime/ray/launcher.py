"""The "serve" launcher: a deployment's instances are the replicas of a Ray Serve application.

Follows the contract in mlctl/runtime/host/launcher.py. The ray runtime's driver deploys the
application (and waits until its replicas run) before it hands the host a spec naming this launcher;
the spec's `launch.upstream` is Serve's HTTP proxy with the application's route prefix
("tcp:HOST:PORT/PREFIX"). Every instance of the deployment is reached there: Serve's proxy spreads
requests over the replicas, and the host's per-instance request slots add up to the replicas'
`max_ongoing_requests`. Serve restarts replicas itself (`restarts_itself`): the host only probes
and reports. Deleting the application is the driver's, after the host drained it. Imports no Ray.
"""

from __future__ import annotations

import asyncio

from mlctl.runtime.host.launcher import InstanceKey, Place, Usage

REPLICA_LOGS = "the replicas' output is in Ray's logs: `mlctl logs ENDPOINT --deployment NAME` shows it"


class Launcher:
    """Instances of one deployment that Serve runs: addresses only, no processes of the host's."""

    name = "serve"
    restarts_itself = True

    def __init__(self, place: Place, deployment: str):
        self.place, self.deployment = place, deployment
        self.addresses: dict[InstanceKey, str] = {}
        self.stopped: dict[InstanceKey, asyncio.Event] = {}

    async def start(self, spec, keys: list[InstanceKey]) -> list[str]:
        upstream = spec.launch.get("upstream")
        if not isinstance(upstream, str) or not upstream.startswith("tcp:"):
            raise OSError(
                f"deployment {spec.name!r} names the serve launcher but no tcp:HOST:PORT[/PREFIX] "
                f"upstream address in its launch settings (got {upstream!r})"
            )
        for key in keys:
            self.addresses[key] = upstream
            self.stopped[key] = asyncio.Event()
        return [upstream for _ in keys]

    async def restart(self, key: InstanceKey) -> str | None:
        return self.addresses.get(key)

    async def stop(self, keys: list[InstanceKey], grace: float = 5.0) -> None:
        for key in keys:
            self.addresses.pop(key, None)
            event = self.stopped.pop(key, None)
            if event is not None:
                event.set()

    def health(self, key: InstanceKey) -> str | None:
        return None if key in self.addresses else "stopped"

    async def gone(self, key: InstanceKey) -> str:
        event = self.stopped.get(key)
        if event is not None:
            await event.wait()
        return "stopped"

    def logs(self, key: InstanceKey, lines: int = 60) -> str:
        return REPLICA_LOGS

    def on_ready(self, key: InstanceKey) -> None:
        pass

    def usage(self, key: InstanceKey) -> Usage | None:
        return None

    def describe(self, key: InstanceKey) -> dict:
        return {"pid": None, "upstream": self.addresses.get(key)}

    async def close(self) -> None:
        await self.stop(list(self.addresses))
