"""The "serve" launcher: a deployment's instances are the scoring servers of a Ray Serve application's replicas.

Follows the contract in mlctl/runtime/host/launcher.py. The ray runtime's driver deploys the application and
waits until its replicas run before it hands the host a spec naming this launcher, whose `launch` holds
`cluster` (the GCS address), `application`, `servers` (each running replica's `replica_id` and `address`,
"tcp:IP:PORT", read from the cluster's directory) and `hop_secret` (which the host sends on every request:
instances.py). Each instance is one replica's server, reached directly: the host sends requests and probes
there, one hop: over TCP, or through the server's unix socket when the replica runs on the host's own node (an
in-cluster host; `address`). Serve places and replaces replicas; the host supervises as on the other runtimes: an
instance that stops answering is "restarted" by taking the server of a running replica no other instance
of the deployment uses (Serve's replacement of the lost one), read from the directory through Ray in a
short-lived process (`python -m mlctl.runtime.ray.directory`), so the host itself never connects to Ray.
Deleting the application is the driver's, after the host drained it.

Scaling (the autoscaler's, or a fixed count's) goes through `scale_to`: Serve runs the count. Up, each new
instance waits (bounded by the readiness budget) for a new replica's server, saying in the log when the
cluster has no room for it. Down, Serve chooses which replicas stop; they keep serving until released
(directory.py), and `scale_to` names their instances, which the host takes out of rotation, drains, stops
and then releases.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
import time

from mlctl.runtime.host.launcher import InstanceKey, Place, Usage

log = logging.getLogger("mlctl.host")

REPLICA_LOGS = "the replicas' output is in Ray's logs: `mlctl logs ENDPOINT --deployment NAME` shows it"
LOOKUP_S = 120.0  # bounds one directory lookup (it starts a Ray driver: seconds on a crowded machine)
REPLACEMENT_S = 60.0  # while a restart waits for Serve's replacement: how often it says so (and tries the old server)
RETIRE_S = 60.0  # how long a scale-down waits for Serve to say which replicas it stops
POLL_S = 0.5  # between two reads of the directory while waiting for Serve
WAIT_S = 20.0  # how long one directory process of a restart waits for Serve's replacement (well within LOOKUP_S)
NODE_VARIABLE = "MLCTL_RAY_NODE_ID"  # the Ray node an in-cluster host runs on (ingress.py sets it)
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
    runs_here = False  # the instances run on the cluster's nodes: this machine's CPUs, memory and /proc are not theirs

    def __init__(self, place: Place, deployment: str):
        self.place, self.deployment = place, deployment
        self.launch: dict = {}
        self.servers: dict[InstanceKey, dict] = {}  # the server each live instance uses
        self.stopped: dict[InstanceKey, asyncio.Event] = {}
        self.target: int | None = None  # the replica count `scale_to` asked Serve for (None: the spec's)
        self.retiring: set[str] = set()  # replicas Serve stops that instances still use (released once stopped)
        self.reading: asyncio.Future | None = None  # the directory read under way (concurrent waiters share it)
        self.background: set[asyncio.Task] = set()
        self.no_room = ""  # while a scale-up waits: why the cluster cannot place its replicas (show prints it)

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
        fresh = launch.get("application") != self.launch.get("application")
        if fresh:
            self.target = None  # a new version's application: its replica count is the spec's
        self.launch = launch
        servers = launch["servers"]
        if self.target is not None and len(self.servers) + len(keys) <= self.target:
            servers = await self._new_servers(spec, len(keys)) or servers  # scaled up: Serve's new replicas
        elif not fresh or len(self._free(servers)) < len(keys):  # the spec's list is old, or replicas were replaced
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
        return [self.address(self.servers[key]) for key in keys]

    @staticmethod
    def address(server: dict) -> str:
        """Where this host reaches `server`: its unix socket when it runs on this host's node (an in-cluster host:
        MLCTL_RAY_NODE_ID), else its TCP address (the hop secret goes with every request either way)."""
        here = os.environ.get(NODE_VARIABLE, "")
        unix = server.get("unix")
        if here and server.get("node_id") == here and isinstance(unix, str) and unix.startswith("unix:/"):
            return unix
        return server["address"]

    async def lookup(self) -> list[dict] | None:
        """The application's running servers, read from the cluster's directory ([] when it cannot be read
        now); None when Serve has no such application."""
        state = await self.read()
        return None if state is None else state["servers"]

    async def read(self, *args: str) -> dict | None:
        """The application's `directory.state` (servers, stopping, target, starting; no_room with "--room");
        one read at a time, shared by whoever asks meanwhile."""
        if self.reading is None or self.reading.done():
            self.reading = asyncio.ensure_future(self._directory(*args))
        return await asyncio.shield(self.reading)

    async def _directory(self, *args: str) -> dict | None:
        """`python -m mlctl.runtime.ray.directory` on the application with `args`: its state (servers and
        stopping empty when it cannot be read now), None when Serve has no such application."""
        empty = {"servers": [], "stopping": [], "target": None, "starting": 0, "no_room": ""}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mlctl.runtime.ray.directory",
            self.launch["cluster"],
            self.launch["application"],
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), LOOKUP_S)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            return empty
        try:
            found = json.loads(out) if proc.returncode == 0 else empty
        except ValueError:
            return empty
        if found is None:
            return None
        if not isinstance(found, dict):
            return empty
        servers = [
            s for s in found.get("servers") or [] if isinstance(s, dict) and "replica_id" in s and "address" in s
        ]
        return {**empty, **found, "servers": servers}

    # ---- scaling -----------------------------------------------------------------------------
    async def scale_to(self, count: int, keys: list[InstanceKey]) -> list[InstanceKey]:
        """Serve runs `count` replicas of the current version. Up: returns [] at once (`start` then waits for
        the new replicas' servers). Down: Serve chooses which replicas stop (they serve on until released):
        returns the instances among `keys` (those in rotation) whose replicas it stops, once at least
        len(keys) - count are known, or what is known after RETIRE_S."""
        self.target = count
        state = await self._directory("--target", str(count))
        needed = len(keys) - count
        if needed <= 0:
            return []
        deadline = time.monotonic() + RETIRE_S
        while True:
            stopping = set((state or {}).get("stopping") or [])
            chosen = [k for k in keys if (self.servers.get(k) or {}).get("replica_id") in stopping]
            if len(chosen) >= needed or state is None or time.monotonic() > deadline:
                break
            await asyncio.sleep(POLL_S)
            state = await self.read()
        self.retiring.update(self.servers[k]["replica_id"] for k in chosen)
        log.info(
            "%s: Serve stops replica(s) %s of %s (%d -> %d); their instances are drained first",
            self.deployment,
            ", ".join(sorted(self.servers[k]["replica_id"] for k in chosen)) or "(none known yet)",
            self.launch["application"],
            len(keys),
            count,
        )
        return chosen

    async def _new_servers(self, spec, wanted: int) -> list[dict]:
        """The servers once `wanted` of them are free (Serve placed and started new replicas), waiting up to the
        readiness budget; OSError when they do not come, saying why (the cluster has no room, or Serve's
        replicas do not start), after which Serve's count goes back to what the instances use."""
        deadline = time.monotonic() + float(spec.readiness_budget_s)
        said = ""
        while True:
            state = await self.read("--room")
            if state is None:
                raise OSError(f"Serve application {self.launch['application']} is gone")
            if len(self._free(state["servers"])) >= wanted:
                self.no_room = ""
                return state["servers"]
            if state["no_room"] and state["no_room"] != self.no_room:  # said once for the waiting instances
                log.warning(
                    "%s: %d replica(s) of %s wait for room: %s",
                    self.deployment,
                    state["starting"],
                    self.launch["application"],
                    state["no_room"],
                )
            self.no_room = state["no_room"] or self.no_room
            said = self.no_room
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(POLL_S)
        self.target, self.no_room = len(self.servers), ""
        self._soon(self._directory("--target", str(self.target)))
        why = (
            f"the cluster has no room: {said}"
            if said
            else f"Serve did not start them within {spec.readiness_budget_s:.0f}s"
        )
        raise OSError(
            f"{wanted} more replica(s) of Serve application {self.launch['application']} are not running: {why}"
        )

    def _soon(self, work) -> None:
        """Run `work` (a coroutine) in the background, kept referenced until it ends."""
        task = asyncio.ensure_future(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def restart(self, key: InstanceKey) -> str | None:
        """The server of a running replica no other instance uses: Serve's replacement of this one's, waited for as
        long as the instance is not stopped and the application exists. Every REPLACEMENT_S without one, this one's
        server again if it accepts connections (it was only slow to answer probes). Never the lost server's address
        while it refuses: the supervisor then probed a dead address for the whole readiness budget (310 s by
        Azure's defaults), which kept capacity away for minutes when Serve's replacement took over a minute (a node
        lost under load, issue 28). None when the instance was stopped meanwhile, or when the application has no
        running replica at all (deleted outside mlctl: left down, which is drift, until apply deploys it and
        revives the instance)."""
        old = self.servers.get(key)
        if old is None:
            return None
        started = time.monotonic()
        check = started + REPLACEMENT_S
        while key in self.servers:
            # one directory process waits (up to WAIT_S) until a replica no instance uses runs
            taken = sorted({s["replica_id"] for s in self.servers.values()} | {old["replica_id"]})
            state = await self._directory("--wait", str(WAIT_S), "--other-than", *taken)
            found = None if state is None else state["servers"]
            if key not in self.servers or found is None:
                return None
            free = self._free(found, avoid=old["replica_id"])
            if free:
                self.servers[key] = free[0]
                return self.address(free[0])
            if time.monotonic() > check:
                if await connects(old["address"]):
                    return self.address(old)
                log.warning(
                    "%s: Serve has not replaced replica %s of %s after %.0f s; still waiting for it",
                    self.deployment,
                    old["replica_id"],
                    self.launch["application"],
                    time.monotonic() - started,
                )
                check = time.monotonic() + REPLACEMENT_S
            await asyncio.sleep(1.0)
        return None

    async def stop(self, keys: list[InstanceKey], grace: float = 5.0) -> None:
        """Forget the instances; the servers of those Serve stops (a scale-down) are released, in the background:
        they end once Serve's graceful shutdown of their replicas sees it."""
        released = []
        for key in keys:
            server = self.servers.pop(key, None)
            if server is not None and server["replica_id"] in self.retiring:
                self.retiring.discard(server["replica_id"])
                released.append(server["replica_id"])
            event = self.stopped.pop(key, None)
            if event is not None:
                event.set()
        if released:
            holder = ["--holder", str(self.launch["holder"]), "--holders", str(int(self.launch.get("holders") or 1))]
            self._soon(self._directory("--release", *released, *(holder if self.launch.get("holder") else [])))

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
            "upstream": self.address(server) if server else None,
            "replica_id": server.get("replica_id"),
            "node_id": server.get("node_id"),
        }

    async def close(self) -> None:
        await self.stop(list(self.servers))
        if self.background:
            await asyncio.wait(list(self.background), timeout=LOOKUP_S)
