"""The "serve" launcher: a deployment's instances are the scoring servers of a Ray Serve application's replicas.

Follows the contract in mlctl/runtime/host/launcher.py. The ray runtime's driver deploys the application and
waits until its replicas run before it hands the host a spec naming this launcher, whose `launch` holds
`cluster` (the GCS address), `application`, `servers` (each running replica's `replica_id` and `address`,
"tcp:IP:PORT", read from the cluster's directory) and `hop_secret` (which the host sends on every request:
instances.py). Each instance is one replica's server, reached directly: the host sends requests and probes
there, one hop. Serve places and replaces replicas; the host supervises as on the other runtimes: an
instance that stops answering is "restarted" by taking the server of a running replica no other instance
of the deployment uses (Serve's replacement of the lost one), read from the directory through Ray in a
short-lived process (`python -m mlctl.runtime.ray.directory`), so the host itself never connects to Ray.
Deleting the application is the driver's, after the host drained it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time

from mlctl.runtime.host.launcher import InstanceKey, Place, Usage

REPLICA_LOGS = "the replicas' output is in Ray's logs: `mlctl logs ENDPOINT --deployment NAME` shows it"
LOOKUP_S = 120.0  # bounds one directory lookup (it starts a Ray driver: seconds on a crowded machine)
REPLACEMENT_S = 60.0  # how long a restart waits for Serve's replacement of a lost replica
# the watch connection's TCP keepalive: a node that vanished (no FIN, no RST) is noticed in about 2 + 3 x 1 s
KEEPALIVE = ((socket.TCP_KEEPIDLE, 2), (socket.TCP_KEEPINTVL, 1), (socket.TCP_KEEPCNT, 3))


def host_port(address: str) -> tuple[str, int]:
    """Pure: (host, port) of "tcp:HOST:PORT"."""
    host, _, port = address.removeprefix("tcp:").rpartition(":")
    return host.strip("[]"), int(port)


async def connects(address: str) -> bool:
    """Does a TCP connection to the address succeed (within 5 s)?"""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(*host_port(address)), 5.0)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    return True


class Launcher:
    """Instances of one deployment that Serve runs: each a replica's server address, no processes of the host's."""

    name = "serve"
    restarts_itself = False

    def __init__(self, place: Place, deployment: str):
        self.place, self.deployment = place, deployment
        self.launch: dict = {}
        self.servers: dict[InstanceKey, dict] = {}  # the server each live instance uses
        self.stopped: dict[InstanceKey, asyncio.Event] = {}

    def _free(self, servers: list[dict], avoid: str | None = None) -> list[dict]:
        taken = {s["replica_id"] for s in self.servers.values()}
        return [s for s in servers if s["replica_id"] not in taken and s["replica_id"] != avoid]

    async def start(self, spec, keys: list[InstanceKey]) -> list[str]:
        launch = spec.launch
        if not (isinstance(launch.get("servers"), list) and launch.get("application") and launch.get("cluster")):
            raise OSError(
                f"deployment {spec.name!r} names the serve launcher but its launch settings lack the "
                "application's cluster, name and servers"
            )
        self.launch = launch
        servers = launch["servers"]
        if len(self._free(servers)) < len(keys):  # scaled up, or replicas replaced since the spec was made
            servers = await self.lookup() or servers
        if not servers:
            raise OSError(f"Serve application {launch['application']} has no running replica")
        # servers no instance uses first; then shared ones: an instance being revived while its predecessor's
        # restart took Serve's replacement shares it until the predecessor is drained and stopped
        free = self._free(servers)
        picks = (free + [s for s in servers if s not in free]) * len(keys)
        for key, server in zip(keys, picks):
            self.servers[key] = server
            self.stopped[key] = asyncio.Event()
        return [self.servers[key]["address"] for key in keys]

    async def lookup(self) -> list[dict] | None:
        """The application's running servers, read from the cluster's directory ([] when it cannot be read
        now); None when Serve has no such application."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mlctl.runtime.ray.directory",
            self.launch["cluster"],
            self.launch["application"],
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), LOOKUP_S)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            return []
        try:
            found = json.loads(out) if proc.returncode == 0 else []
        except ValueError:
            return []
        if found is None:
            return None
        return [s for s in found if isinstance(s, dict) and "replica_id" in s and "address" in s]

    async def restart(self, key: InstanceKey) -> str | None:
        """The server of a running replica no other instance uses: Serve's replacement of this one's (waited
        for up to REPLACEMENT_S, else this one's again: its probes then fail and supervision goes on). None
        when the instance was stopped meanwhile, or when the application has no running replica at all
        (deleted outside mlctl: left down, which is drift, until apply deploys it and revives the instance)."""
        old = self.servers.get(key)
        if old is None:
            return None
        deadline = time.monotonic() + REPLACEMENT_S
        while key in self.servers and time.monotonic() < deadline:
            found = await self.lookup()
            if key not in self.servers or found is None:
                return None
            free = self._free(found, avoid=old["replica_id"])
            if free:
                self.servers[key] = free[0]
                return free[0]["address"]
            await asyncio.sleep(1.0)
        return old["address"] if key in self.servers else None

    async def stop(self, keys: list[InstanceKey], grace: float = 5.0) -> None:
        for key in keys:
            self.servers.pop(key, None)
            event = self.stopped.pop(key, None)
            if event is not None:
                event.set()

    def health(self, key: InstanceKey) -> str | None:
        return None if key in self.servers else "stopped"

    async def gone(self, key: InstanceKey) -> str:
        """Returns once the instance's server is gone: its connection closed and a new one refused (the replica
        ended), or TCP keepalive gave up on it (its node vanished); or once the instance was stopped. The
        host's liveness probes stay the judge of a server that runs but does not answer."""
        stopped = self.stopped.get(key)
        if stopped is None:
            return "stopped"
        stop = asyncio.ensure_future(stopped.wait())
        watch: asyncio.Future | None = None
        try:
            while not stop.done():
                server = self.servers.get(key)
                if server is None:
                    return "stopped"
                watch = asyncio.ensure_future(self._watch(server["address"]))
                await asyncio.wait([watch, stop], return_when=asyncio.FIRST_COMPLETED)
                if stop.done():
                    break
                if self.servers.get(key) is server and not await connects(server["address"]):
                    return f"its scoring server at {server['address']} is gone (replica {server['replica_id']})"
            return "stopped"
        finally:
            stop.cancel()
            if watch is not None:
                watch.cancel()

    @staticmethod
    async def _watch(address: str) -> None:
        """Hold an idle connection to the server until it closes or breaks (the server also closes one it
        kept idle for 75 s: the caller then checks whether a new one is refused)."""
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(*host_port(address)), 5.0)
        except (OSError, asyncio.TimeoutError):
            return
        sock = writer.get_extra_info("socket")
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            for option, value in KEEPALIVE:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
            await reader.read()
        except OSError:
            pass
        finally:
            writer.close()

    def logs(self, key: InstanceKey, lines: int = 60) -> str:
        return REPLICA_LOGS

    def on_ready(self, key: InstanceKey) -> None:
        pass

    def usage(self, key: InstanceKey) -> Usage | None:
        return None

    def describe(self, key: InstanceKey) -> dict:
        server = self.servers.get(key) or {}
        return {
            "pid": None,
            "upstream": server.get("address"),
            "replica_id": server.get("replica_id"),
            "node_id": server.get("node_id"),
        }

    async def close(self) -> None:
        await self.stop(list(self.servers))
