"""The kit's process launcher: each instance a scoring-server process on a unix socket of this machine (the
local runtime's "process" launcher; a runtime may run it under another name by subclassing `Launcher`).

Follows the contract in mlctl/runtime/host/launcher.py (the host loads a runtime's launcher module by the
name in its record). Output goes to the instance's rotating log file through a pipe relay; the last
64 KiB are kept in memory for failures. Processes get SIGKILL when the host dies (PDEATHSIG). An instance of
a deployment with `resources` runs in its own cgroup, holding its memory limit (and CPU limit and reservations
where the machine allows: `cgroups.py`). When mlctl runs as root, each instance runs under its deployment's own
uid in a mount namespace that shows it only what it needs (`confinement.py`), its socket in a folder of its own
(forked: its confined fork server's, `forkservers.py`).
"""

from __future__ import annotations

import asyncio
import collections
import errno
import os
import signal
import time
from pathlib import Path

from mlctl.runtime.host.launcher import InstanceKey, Place, Usage
from mlctl.runtime.host.logfiles import RotatingLog, instance_log_path
from mlctl.runtime.host.relay import OutputRelay, output_pipe
from mlctl.runtime.host.identities import deployment_uid
from mlctl.runtime.host.runfiles import endpoint_tag
from mlctl.runtime.host.sockets import instance_folder, remove_instance_folder
from mlctl.runtime.kit import cgroups, confinement, forkservers
from mlctl.runtime.kit.forkedprocess import ForkedProcess
from mlctl.runtime.kit.processusage import TAIL_BYTES, process_usage
from mlctl.runtime.kit.servercommand import die_with_parent, instance_env, server_command


def worker_count(spec) -> int | None:
    """The scoring workers an instance of `spec` runs (WORKER_COUNT in its environment); None if it is bad."""
    from mlctl.serversettings import SettingsError
    from mlctl.serversettings import worker_count as count

    try:
        return count(instance_env(spec))
    except SettingsError:
        return None


class Process:
    """One instance's scoring-server process, its output relay and the tail of its output."""

    def __init__(self, spec, socket: Path, uid: int | None = None, data_dir: Path | None = None):
        self.spec, self.socket, self.fresh_socket = spec, socket, socket  # socket: where its current run listens
        self.uid, self.data_dir = uid, data_dir  # uid: confined to it, its socket in a folder of its own
        # DEPLOYMENT-gG-K: the socket's name, or its folder's when confined (DEPLOYMENT-gG-K/s.sock)
        self.instance_name = socket.parent.name if uid is not None else socket.stem
        self.proc: asyncio.subprocess.Process | ForkedProcess | None = None
        self.stopped = False  # for good: never started again
        self.tail: collections.deque[bytes] = collections.deque()  # last output chunks, TAIL_BYTES at most
        self._tail_bytes = 0
        self._reader: asyncio.Task | None = None
        self._relay: OutputRelay | None = None
        self.lifecycle = asyncio.Lock()  # start and stop never interleave
        self.group: cgroups.InstanceGroup | None = None  # its cgroup, when the deployment has resources
        self.oom_kills_before = 0  # out-of-memory kills in the groups of its earlier runs
        self.owner: object = None  # the launcher whose fork servers it may start from (None: always fresh)
        self.forked = False  # its current run was forked by a fork server

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def command(self) -> list[str]:
        command = server_command(self.spec, self.fresh_socket)
        if self.uid is None or self.data_dir is None:
            return command
        if not os.access(self.spec.python, os.X_OK):  # said as exec says it, not as an exit code of the chain
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), self.spec.python)
        binds = confinement.needed_paths(self.spec, self.fresh_socket.parent)
        covers = confinement.hidden_paths(binds, self.data_dir)
        return confinement.confined_command(command, self.uid, binds, covers, self.spec.code_dir)

    def env(self) -> dict:
        env = instance_env(self.spec)
        return env if self.uid is None else confinement.confined_env(env)

    def _clear_socket(self) -> None:
        """Remove the last run's socket (and, confined, its whole folder; forked, its fork server's folder once that
        is empty)."""
        if self.uid is None:
            self.socket.unlink(missing_ok=True)
        elif self.forked:
            self.socket.unlink(missing_ok=True)
            forkservers.remove_if_empty(self.socket.parent)
        else:
            remove_instance_folder(self.socket.parent)

    def fork_key(self) -> str:
        """The fork server its instances are forked by."""
        return forkservers.server_key(self.spec, self.uid)

    async def spawn(self, out: RotatingLog, index: int) -> None:
        """Start the process (output captured to `out`); does not wait for readiness."""
        self._clear_socket()
        self.tail.clear()
        self._tail_bytes = 0
        out.write(
            f"--- mlctl host: starting instance {index} of {self.spec.name} "
            f"(digest {self.spec.digest[:19]}) at {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode()
        )
        # the instance's own name (DEPLOYMENT-gG-K): a confined instance's socket is DEPLOYMENT-gG-K/s.sock, and
        # naming the group after the socket file made every confined instance of the endpoint share one cgroup
        self.group = sized_group(self.spec, self.instance_name)
        r, w = output_pipe()
        try:
            forked = None
            if self.owner is not None:
                forked = await forkservers.SERVERS.fork(
                    self.spec, self.owner, self.fresh_socket, w, self.group, self.instance_name, self.uid, self.data_dir
                )
            self.forked = forked is not None
            self.socket = forked[1] if forked else self.fresh_socket
            if forked is None and self.uid is not None:
                instance_folder(self.socket.parent.parent, self.socket.parent.name, self.uid)
            self.proc = (
                forked[0]
                if forked
                else await asyncio.create_subprocess_exec(
                    *self.command(),
                    cwd=self.spec.code_dir,
                    env=self.env(),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=w,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=die_with_parent if self.group is None else self.group.preexec,
                )
            )
        except BaseException:
            os.close(r)
            if self.group is not None:
                self.group.remove()
            raise
        finally:
            os.close(w)
        self._relay = OutputRelay(r, out, self._remember)
        self._reader = asyncio.get_running_loop().create_task(self._relay.run())

    def _remember(self, data: bytes) -> None:
        self.tail.append(data)
        self._tail_bytes += len(data)
        while self._tail_bytes > TAIL_BYTES and len(self.tail) > 1:
            self._tail_bytes -= len(self.tail.popleft())

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.is_running():
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    async def drain_output(self) -> None:
        if self._reader is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._reader), 2)
            except asyncio.TimeoutError:
                pass

    async def kill(self, grace: float) -> None:
        """SIGTERM its process group, SIGKILL after `grace` seconds (at once when 0); its output drained."""
        proc = self.proc
        if proc is not None and self.is_running():
            self.signal(signal.SIGTERM if grace > 0 else signal.SIGKILL)
            try:
                await asyncio.wait_for(proc.wait(), grace if grace > 0 else None)
            except asyncio.TimeoutError:
                self.signal(signal.SIGKILL)
                await proc.wait()
        await self.drain_output()
        self._clear_socket()
        if self.group is not None:
            self.oom_kills_before += self.group.oom_kills()
            self.group.remove()

    def ending(self) -> str:
        """How the ended process ended: its exit code, or the kernel's kill at its cgroup's memory limit."""
        code = self.proc.returncode if self.proc is not None else None
        if self.group is not None and self.group.oom_kills():
            return f"was killed for running out of memory (its limit, resources.limits.memory, is {self.group.shown})"
        return f"exited with code {code}"


def sized_group(spec, name: str) -> cgroups.InstanceGroup | None:
    """The cgroup of an instance of `spec` named `name`, holding its `resources` (None without any); raises
    cgroups.CgroupError when a memory limit cannot be set on this machine."""
    from mlctl.sizing import Sizing

    sizing = Sizing.from_json((spec.launch or {}).get("resources"))
    if sizing.is_empty():
        return None
    hierarchies = cgroups.current()
    cgroups.sweep(hierarchies)
    return cgroups.InstanceGroup(name, sizing.limits, sizing.requests, hierarchies)


class Launcher:
    """The processes of one deployment's instances, by InstanceKey; their log writers by index."""

    name = "process"
    restarts_itself = False

    def __init__(self, place: Place, deployment: str):
        self.place, self.deployment = place, deployment
        self.processes: dict[InstanceKey, Process] = {}
        self.outputs: dict[int, RotatingLog] = {}  # one writer per instance log file, shared by generations

    def _output(self, index: int) -> RotatingLog:
        if index not in self.outputs:
            self.outputs[index] = RotatingLog(
                instance_log_path(self.place.data_dir, self.place.endpoint, self.deployment, index)
            )
        return self.outputs[index]

    def _socket(self, key: InstanceKey, confined: bool) -> Path:
        name = f"{self.deployment}-g{key.generation}-{key.index}"
        return self.place.socket_dir / name / "s.sock" if confined else self.place.socket_dir / f"{name}.sock"

    def _process(self, spec, key: InstanceKey) -> Process:
        """An instance of `spec`: confined to its deployment's uid when mlctl runs as root (unless opted out)."""
        if not confinement.is_confined(spec):
            p = Process(spec, self._socket(key, False))
            p.owner = self
            return p
        why = confinement.why_not_here()  # plan said so already (local preflight); a machine may change since
        if why is not None:
            raise OSError(
                f"mlctl runs as root, so deployment {spec.name!r} runs under a uid of its own, and this machine "
                f"cannot confine it: {why}. Set 'local: {{instance_user: {confinement.OPT_OUT}}}' in mlctl.yaml to "
                "run its instances as root (docs/threat-model.md)"
            )
        uid = deployment_uid(endpoint_tag(self.place.data_dir, self.place.endpoint), spec.name)
        p = Process(spec, self._socket(key, True), uid, self.place.data_dir)
        p.owner = self
        return p

    async def start(self, spec, keys: list[InstanceKey]) -> list[str]:
        try:
            for key in keys:
                p = self.processes[key] = self._process(spec, key)
                async with p.lifecycle:
                    await p.spawn(self._output(key.index), key.index)
        except BaseException:
            await self.stop([k for k in keys if k in self.processes], grace=0)
            raise
        return [f"unix:{self.processes[k].socket}" for k in keys]

    async def restart(self, key: InstanceKey) -> str | None:
        p = self.processes.get(key)
        if p is None:
            return None
        async with p.lifecycle:
            if p.stopped:
                return None
            await p.kill(grace=0)
            await p.spawn(self._output(key.index), key.index)
        return f"unix:{p.socket}"

    async def stop(self, keys: list[InstanceKey], grace: float = 5.0) -> None:
        async def stop_one(p: Process) -> None:
            p.stopped = True
            async with p.lifecycle:
                await p.kill(grace)

        await asyncio.gather(*(stop_one(p) for k in keys if (p := self.processes.pop(k, None)) is not None))
        if self.processes:  # a roll to another environment: its old fork server goes once nothing uses it
            keep = frozenset(p.fork_key() for p in self.processes.values())
            await forkservers.SERVERS.release(self, keep)

    def health(self, key: InstanceKey) -> str | None:
        p = self.processes.get(key)
        if p is None:
            return "stopped"
        if p.is_running():
            return None
        return "not started" if p.proc is None else p.ending()

    async def gone(self, key: InstanceKey) -> str:
        p = self.processes.get(key)
        if p is not None and p.proc is not None:
            await p.proc.wait()
            await p.drain_output()
        return self.health(key) or "stopped"

    def logs(self, key: InstanceKey, lines: int = 60) -> str:
        p = self.processes.get(key)
        if p is None:
            return ""
        text = b"".join(p.tail).decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def usage(self, key: InstanceKey) -> Usage | None:
        p = self.processes.get(key)
        return process_usage(p.proc.pid) if p is not None and p.proc is not None and p.is_running() else None

    def describe(self, key: InstanceKey) -> dict:
        p = self.processes.get(key)
        out = {
            "pid": p.proc.pid if p and p.proc else None,
            "socket": str(p.socket) if p else None,
            "workers": worker_count(p.spec) if p else None,
            "forked": p.forked if p else None,
        }
        if p is not None and p.group is not None:  # sized by resources: its cgroup and limits
            out.update(p.group.describe(), oom_kills=p.oom_kills_before + p.group.oom_kills())
        return out

    def on_ready(self, key: InstanceKey) -> None:
        """What the instance printed so far goes to its log file now, before anyone is told it is ready."""
        p = self.processes.get(key)
        if p is not None and p._relay is not None:
            p._relay.drain()

    async def close(self) -> None:
        await self.stop(list(self.processes))
        await forkservers.SERVERS.release(self)
        for out in self.outputs.values():
            out.close()
        self.outputs.clear()
