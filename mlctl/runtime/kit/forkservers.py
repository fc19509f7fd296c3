"""The endpoint host's fork servers: one pre-started interpreter per environment in use (its interpreter, its
deployment variables and its resources), which forks the instances of the deployments that use it
(`mlctl.runtime.server.zygote` is the server; docs/runtime.md "Fork server").

`SERVERS.fork` starts an instance by fork, or returns None: the launcher then starts it fresh, and the reason
is logged once per environment. A fork server is started with the first instance that needs it, restarted when
it died (up to RESTARTS times), bypassed for good when it refused (an import failed or started a thread) or did
not answer, and stopped when no launcher uses it any more (the deployment is gone, or the host stops). A forked
instance is not the host's child: `ForkedProcess` stands for it, with the pid, exit code and wait() the
launcher needs (the exit code comes from the fork server; without it, from a pidfd, the code then unknown).
"""

from __future__ import annotations

import array
import asyncio
import hashlib
import json
import logging
import os
import signal
import socket
import struct
from pathlib import Path

from mlctl.runtime.kit import cgroups
from mlctl.runtime.kit.preloads import modules_to_preload, own_modules
from mlctl.runtime.kit.servercommand import die_with_parent, instance_env, server_command

log = logging.getLogger("mlctl.host")

START_TIMEOUT_S = 60.0  # the fork server imports the scoring server's modules
FORK_TIMEOUT_S = 300.0  # ... and, on its first fork, the deployment's packages
RESTARTS = 3
LINE_CHARS = 500  # of a line the fork server printed, shown in the host's log
UNKNOWN_EXIT = 255  # the fork server that knew the instance's exit code is gone


def environment_key(spec) -> str:
    """Pure: what one fork server serves: the interpreter, the deployment's variables (packages read some at
    import, such as OMP_NUM_THREADS) and its resources (the server runs under the same limits)."""
    body = [spec.python, sorted(spec.environment_variables.items()), (spec.launch or {}).get("resources")]
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]


def is_wanted(spec) -> bool:
    """Does the project let instances of `spec` start by fork (`local.fork_server`, default true)?"""
    return (spec.launch or {}).get("fork_server") is not False


class ForkedProcess:
    """An instance forked by a fork server, seen as the launcher sees a process: pid, returncode, wait()."""

    def __init__(self, pid: int, conn: socket.socket, rest: bytes, lifeline: int):
        self.pid = pid
        self.returncode: int | None = None
        self._conn, self._rest = conn, rest
        self._lifeline: int | None = lifeline
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except OSError:  # already ended and reaped: its exit code comes from the fork server
            self._pidfd = None
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def wait(self) -> int:
        await asyncio.shield(self._watcher)
        assert self.returncode is not None
        return self.returncode

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            code = await _exit_message(loop, self._conn, self._rest)
            if code is None and self._pidfd is not None:  # its fork server is gone: the kernel says when it ends
                ended = loop.create_future()

                def on_end() -> None:
                    if not ended.done():
                        ended.set_result(None)

                loop.add_reader(self._pidfd, on_end)
                try:
                    await ended
                finally:
                    loop.remove_reader(self._pidfd)
            self.returncode = UNKNOWN_EXIT if code is None else code
        finally:
            self._close()

    def _close(self) -> None:
        self._conn.close()
        for fd in (self._lifeline, self._pidfd):
            if fd is not None:
                os.close(fd)
        self._lifeline = self._pidfd = None


async def _exit_message(loop, conn: socket.socket, rest: bytes) -> int | None:
    """The exit code the fork server sends for its child, None when its connection ends without one."""
    buffer = rest
    while True:
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            message = json.loads(line)
            if "exit" in message:
                return int(message["exit"])
        try:
            data = await loop.sock_recv(conn, 4096)
        except OSError:
            return None
        if not data:
            return None
        buffer += data


class Refused(Exception):
    """This fork server can fork no instance equal to a fresh start: bypass it (the message says why)."""


class ForkServer:
    """One fork server process: started with the first instance of its environment, its socket 0600."""

    def __init__(self, key: str, spec, folder: Path):
        self.key, self.python = key, spec.python
        self.socket = folder / f"zygote-{key}.sock"
        self.proc: asyncio.subprocess.Process | None = None
        self.group: cgroups.InstanceGroup | None = None
        self.users: set[int] = set()  # the launchers (by id) that forked with it
        self.restarts = 0
        self.reader: asyncio.Task | None = None
        self.preloads: dict[tuple, list[str]] = {}  # the last deployment version's modules to preload

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self, spec) -> None:
        """Start the server in the environment's interpreter under the instances' limits; wait until ready."""
        from mlctl.runtime.kit.processlauncher import sized_group

        self.socket.unlink(missing_ok=True)
        self.group = sized_group(spec, f"zygote-{self.key}")
        env = {k: v for k, v in instance_env(spec).items() if k != "MLCTL_HOP_SECRET"}
        self.proc = await asyncio.create_subprocess_exec(
            spec.python,
            "-m",
            "mlctl.runtime.server.zygote",
            "--socket",
            str(self.socket),
            cwd=self.socket.parent,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent if self.group is None else self.group.preexec,
        )
        assert self.proc.stdout is not None
        said: list[str] = []
        try:
            while not said or said[-1] != "ready":
                line = await asyncio.wait_for(self.proc.stdout.readline(), START_TIMEOUT_S)
                if not line:
                    break
                said = [*said[-20:], line.decode(errors="replace").rstrip()[:LINE_CHARS]]
        except asyncio.TimeoutError:
            said.append(f"it did not start within {START_TIMEOUT_S:.0f} s")
        except ValueError:  # a line longer than the reader's limit
            said.append("it printed a line too long to read as it started")
        if not said or said[-1] != "ready":
            await self.stop()
            last = said[-1].removeprefix("refused: ") if said else "it exited as it started"
            raise Refused(last)
        self.reader = asyncio.get_running_loop().create_task(self._relay(self.proc.stdout))

    async def _relay(self, stdout: asyncio.StreamReader) -> None:
        """What the fork server prints later (an import's warnings) goes to the host's log, line by line."""
        while chunk := await stdout.read(1 << 16):
            for line in chunk.decode(errors="replace").splitlines():
                log.info("fork server %s: %s", self.key, line[:LINE_CHARS])

    async def fork(self, spec, socket_path: Path, out: int, group: cgroups.InstanceGroup | None) -> ForkedProcess:
        """An instance of `spec` on `socket_path`, its output on `out`, in `group`. Refused: bypass this server;
        OSError: it is not answering (restart it)."""
        loop = asyncio.get_running_loop()
        found = (spec.code_dir, spec.scoring_script, spec.model_dir)
        if found not in self.preloads:  # (code snapshots and model versions do not change under their paths)
            self.preloads = {found: await asyncio.to_thread(modules_to_preload, *found)}
        request = {
            "preload": self.preloads[found],
            # what the instance's code provides itself, which another deployment's preloads may have imported
            "shadowed": sorted(own_modules(Path(spec.code_dir), Path(spec.code_dir) / spec.scoring_script)),
            "argv": server_command(spec, socket_path)[3:],  # after `python -m mlctl.runtime.server`
            "env": instance_env(spec),
            "cwd": spec.code_dir,
            "cgroups": [str(d) for d in group.dirs] if group is not None else [],
        }
        payload = json.dumps(request).encode()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.setblocking(False)
        lifeline_r, lifeline_w = os.pipe()
        try:
            await loop.sock_connect(conn, str(self.socket))
            message = struct.pack(">I", len(payload)) + payload
            sent = conn.sendmsg(
                [message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [out, lifeline_r]))]
            )
            await loop.sock_sendall(conn, message[sent:])
            os.close(lifeline_r)
            lifeline_r = -1
            reply, rest = await asyncio.wait_for(_first_line(loop, conn), FORK_TIMEOUT_S)
        except BaseException:
            conn.close()
            os.close(lifeline_w)
            if lifeline_r >= 0:
                os.close(lifeline_r)
            raise
        if "pid" in reply:
            return ForkedProcess(int(reply["pid"]), conn, rest, lifeline_w)
        conn.close()
        os.close(lifeline_w)
        raise Refused(reply.get("refused") or reply.get("error") or "it answered nothing it should")

    async def stop(self) -> None:
        """Stop the server (its process group: not its instances, which have sessions of their own)."""
        if self.proc is not None and self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await self.proc.wait()
        self.socket.unlink(missing_ok=True)
        if self.group is not None:
            self.group.remove()


async def _first_line(loop, conn: socket.socket) -> tuple[dict, bytes]:
    buffer = b""
    while b"\n" not in buffer:
        data = await loop.sock_recv(conn, 4096)
        if not data:
            raise ConnectionResetError("the fork server closed the connection")
        buffer += data
    line, rest = buffer.split(b"\n", 1)
    return json.loads(line), rest


class ForkServers:
    """The host's fork servers by environment key, and the environments that start fresh, with why."""

    def __init__(self) -> None:
        self.servers: dict[str, ForkServer] = {}
        self.bypassed: dict[str, str] = {}
        self.lock = asyncio.Lock()

    def bypass(self, key: str, spec, why: str) -> None:
        if key not in self.bypassed:
            self.bypassed[key] = why
            log.warning("deployment %s: instances start fresh, without a fork server: %s", spec.name, why)

    async def fork(self, spec, owner: object, socket_path: Path, out: int, group) -> ForkedProcess | None:
        """An instance of `spec` forked for launcher `owner`, or None: start it fresh (logged once)."""
        if not is_wanted(spec):
            return None
        key = environment_key(spec)
        if key in self.bypassed:
            return None
        async with self.lock:
            server = self.servers.get(key)
            if server is None:
                server = self.servers[key] = ForkServer(key, spec, socket_path.parent)
            try:
                if not server.is_running():
                    if server.proc is not None:
                        server.restarts += 1
                        if server.restarts > RESTARTS:
                            raise Refused(f"it ended {server.restarts} times")
                        log.warning("the fork server of deployment %s ended; starting it again", spec.name)
                    await server.start(spec)
                server.users.add(id(owner))
                return await server.fork(spec, socket_path, out, group)
            except (Refused, asyncio.TimeoutError) as e:
                self.bypass(
                    key,
                    spec,
                    f"its fork server refused: {e}"
                    if isinstance(e, Refused)
                    else f"its fork server did not answer within {FORK_TIMEOUT_S:.0f} s",
                )
                self.servers.pop(key, None)
            except (OSError, ValueError) as e:  # it died meanwhile: this instance starts fresh, the next restarts it
                log.warning(
                    "deployment %s: an instance starts fresh: its fork server is not answering (%s: %s)",
                    spec.name,
                    type(e).__name__,
                    e,
                )
            await server.stop()
            return None

    async def release(self, owner: object, keep: frozenset = frozenset()) -> None:
        """Launcher `owner` no longer uses the fork servers of environments other than `keep` (all of them when it
        closes): stop those no launcher uses any more."""
        async with self.lock:
            for key, server in list(self.servers.items()):
                if key not in keep:
                    server.users.discard(id(owner))
                if not server.users:
                    await server.stop()
                    del self.servers[key]


SERVERS = ForkServers()  # this endpoint host's
