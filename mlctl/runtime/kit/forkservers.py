"""The endpoint host's fork servers: one pre-started interpreter per environment in use (its interpreter, its
deployment variables and its resources), which forks the instances of the deployments that use it
(`mlctl.runtime.server.zygote` is the server; docs/runtime.md "Fork server").

`SERVERS.fork` starts an instance by fork, or returns None: the launcher then starts it fresh, and the reason
is logged once per environment. A fork server is started with the first instance that needs it, restarted when
it died (up to RESTARTS times), bypassed for good when it refused (an import failed or started a thread) or did
not answer, and stopped when no launcher uses it any more (the deployment is gone, or the host stops). A forked
instance is not the host's child: `ForkedProcess` (forkedprocess.py) stands for it, with the pid, exit code and
wait() the launcher needs (the exit code comes from the fork server; without it, from a pidfd, the code then
unknown).

When mlctl runs as root, a deployment's instances are confined (`confinement.py`), and so is its fork server: one
per environment and deployment uid (a new version's folders are bound into its namespace: `ForkServer.bind`),
started by the same confined command as a fresh instance (its mount namespace, the uid, no capabilities,
no_new_privs) with a socket folder of its own (owned by the uid, 0700) bound writable in place of the instance's:
the packages it imports never run as root, and a child it forks has exactly its confinement. The child's per-
instance parts: its socket in that folder, a private folder in the server's /tmp (HOME, TMPDIR), its session,
cgroups (the host moves it there before it goes on: the uid may not) and output. The host trusts no answer of such a
server beyond its uid: the pid it names must be its own child running under the deployment's uid, else the instance
starts fresh.
"""

from __future__ import annotations

import array
import asyncio
import hashlib
import json
import logging
import os
import select
import signal
import socket
import struct
import sys
from pathlib import Path

from mlctl.runtime.host.sockets import instance_folder
from mlctl.runtime.kit import cgroups, confinement
from mlctl.runtime.kit.forkedprocess import MAX_ANSWER, ForkedProcess
from mlctl.runtime.kit.preloads import modules_to_preload, own_modules
from mlctl.runtime.kit.servercommand import die_with_parent, instance_env, server_command

log = logging.getLogger("mlctl.host")

START_TIMEOUT_S = 60.0  # the fork server imports the scoring server's modules
FORK_TIMEOUT_S = 300.0  # ... and, on its first fork, the deployment's packages
RESTARTS = 3
LINE_CHARS = 500  # of a line the fork server printed, shown in the host's log


def environment_key(spec) -> str:
    """Pure: what one fork server serves: the interpreter, the deployment's variables (packages read some at
    import, such as OMP_NUM_THREADS) and its resources (the server runs under the same limits)."""
    body = [spec.python, sorted(spec.environment_variables.items()), (spec.launch or {}).get("resources")]
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]


def server_key(spec, uid: int | None) -> str:
    """Pure: the fork server an instance of `spec` confined to `uid` (None: unconfined) is forked by: its
    environment's; confined, its environment's and uid's (its deployment's: a new version's code snapshot and model
    folder are bound into the server's namespace, `ForkServer.bind`)."""
    if uid is None:
        return environment_key(spec)
    return hashlib.sha256(json.dumps([environment_key(spec), uid]).encode()).hexdigest()[:16]


def is_wanted(spec) -> bool:
    """Does the project let instances of `spec` start by fork (`local.fork_server`, default true)?"""
    return (spec.launch or {}).get("fork_server") is not False


class Refused(Exception):
    """This fork server can fork no instance equal to a fresh start: bypass it (the message says why)."""


class CannotBind(Exception):
    """A confined fork server cannot show this instance its folders: it starts fresh (the server stays)."""


NSBIND = Path(__file__).with_name("nsbind.py")
BIND_TIMEOUT_S = 30.0


class ForkServer:
    """One fork server process: started with the first instance of its environment, its socket 0600. Confined
    (`uid`): in a socket folder of its own, `folder`, which also holds the sockets of the instances it forks."""

    def __init__(self, key: str, spec, folder: Path, uid: int | None = None, data_dir: Path | None = None):
        self.key, self.python = key, spec.python
        self.uid, self.data_dir, self.folder = uid, data_dir, folder
        self.socket = folder / ("zygote.sock" if uid is not None else f"zygote-{key}.sock")
        self.proc: asyncio.subprocess.Process | None = None
        self.group: cgroups.InstanceGroup | None = None
        self.users: set[int] = set()  # the launchers (by id) that forked with it
        self.restarts = 0
        self.reader: asyncio.Task | None = None
        self.preloads: dict[tuple, list[str]] = {}  # the last deployment version's modules to preload
        self.bound: set[str] = set()  # confined: the folders its namespace shows (bound read-only, or its own)
        self.covers: set[str] = set()  # confined: the folders its namespace covers with an empty tmpfs

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self, spec) -> None:
        """Start the server in the environment's interpreter under the instances' limits; wait until ready."""
        from mlctl.runtime.kit.processlauncher import sized_group

        self.socket.unlink(missing_ok=True)
        self.group = sized_group(spec, f"zygote-{self.key}")
        env = {k: v for k, v in instance_env(spec).items() if k != "MLCTL_HOP_SECRET"}
        command = [spec.python, "-m", "mlctl.runtime.server.zygote", "--socket", str(self.socket)]
        cwd = str(self.folder)
        if self.uid is not None:  # confined as its instances are, in its own socket folder (kept over restarts)
            if not self.folder.is_dir():
                instance_folder(self.folder.parent, self.folder.name, self.uid)
            binds = confinement.needed_paths(spec, self.folder)
            assert self.data_dir is not None, "a confined fork server hides its project's data folder"
            covers = confinement.hidden_paths(binds, self.data_dir)
            self.bound, self.covers = {b.path for b in binds}, set(covers)
            command = confinement.confined_command(command, self.uid, binds, covers, spec.code_dir)
            env, cwd = confinement.confined_env(env), spec.code_dir
        self.proc = await asyncio.create_subprocess_exec(
            *command,
            cwd=cwd,
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

    async def bind(self, spec) -> None:
        """Show a confined server's namespace the folders an instance of `spec` needs that it lacks (a new version's
        code snapshot and model folder), read-only at their paths, by the `nsbind` helper. CannotBind when its
        folders would need a cover the namespace lacks (a folder the uid cannot traverse on their way, which
        the helper would have to make on this machine's own file system), or the helper failed."""
        if self.uid is None or self.proc is None:
            return
        binds = confinement.needed_paths(spec, self.folder)
        new = [b.path for b in binds if b.path not in self.bound]
        if not new:
            return
        assert self.data_dir is not None
        lacking = set(confinement.hidden_paths(binds, self.data_dir)) - self.covers
        if lacking:
            raise CannotBind(f"its folders need {', '.join(sorted(lacking))} hidden, which its fork server's is not")
        helper = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-S", str(NSBIND), str(self.proc.pid), *new,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            _, said = await asyncio.wait_for(helper.communicate(), BIND_TIMEOUT_S)
        except asyncio.TimeoutError:
            helper.kill()
            await helper.wait()
            raise CannotBind(f"binding its folders took over {BIND_TIMEOUT_S:.0f} s") from None
        if helper.returncode != 0:
            raise CannotBind(said.decode(errors="replace").strip()[-LINE_CHARS:] or f"exit {helper.returncode}")
        self.bound.update(new)

    def instance_socket(self, name: str) -> Path:
        """Pure: where instance `name` (DEPLOYMENT-gG-K) listens when this confined server forks it."""
        return self.folder / ("-".join(name.rsplit("-", 2)[-2:]) + ".sock")

    async def fork(
        self, spec, socket_path: Path, out: int, group: cgroups.InstanceGroup | None, name: str
    ) -> ForkedProcess:
        """An instance `name` of `spec` on `socket_path`, its output on `out`, in `group`. Refused: bypass this
        server; OSError: it is not answering (restart it)."""
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
        }
        if self.uid is not None:  # HOME and TMPDIR: a folder of its own in the server's private /tmp
            request["tmp"] = f"{confinement.PRIVATE_TMP}/{name}"
            request["env"] = {
                **confinement.confined_env(request["env"]),
                "HOME": request["tmp"],
                "TMPDIR": request["tmp"],
            }
        payload = json.dumps(request).encode()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.setblocking(False)
        lifeline_r, lifeline_w = os.pipe()
        go_r, go_w = os.pipe()  # the child goes on once the host wrote a byte here (after moving it to `group`)
        pidfd = None
        try:
            try:
                await loop.sock_connect(conn, str(self.socket))
                message = struct.pack(">I", len(payload)) + payload
                fds = array.array("i", [out, lifeline_r, go_r])
                sent = conn.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
                await loop.sock_sendall(conn, message[sent:])
            finally:
                os.close(lifeline_r)
                os.close(go_r)
            reply, rest = await asyncio.wait_for(_first_line(loop, conn), FORK_TIMEOUT_S)
            if not isinstance(reply, dict) or "pid" not in reply:
                why = reply.get("refused") or reply.get("error") if isinstance(reply, dict) else None
                raise Refused(str(why or "it answered nothing it should")[:LINE_CHARS])
            pid, pidfd = self._own_child(reply["pid"])
            if group is not None:
                group.adopt(pid)
            os.write(go_w, b"g")
        except BaseException:
            conn.close()
            os.close(lifeline_w)
            if pidfd is not None:
                os.close(pidfd)
            raise
        finally:
            os.close(go_w)  # (a child that got no byte exits)
        return ForkedProcess(pid, conn, rest, lifeline_w, pidfd)

    def _own_child(self, named) -> tuple[int, int]:
        """The pid the server named and a pidfd of it, once it is a live child of the server under its uid (a
        confined server runs the deployment's uid: it could name any process). Refused otherwise."""
        assert self.proc is not None
        pid = named if isinstance(named, int) and not isinstance(named, bool) and named > 0 else 0
        try:
            pidfd = os.pidfd_open(pid) if pid else None
        except OSError:
            pidfd = None
        if pidfd is not None:
            try:
                fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
                uids = {int(u) for u in fields["Uid"].split()}
                parent = int(fields["PPid"])
            except (OSError, KeyError, ValueError):
                uids, parent = set(), 0
            want = {os.geteuid() if self.uid is None else self.uid}
            alive = not select.select([pidfd], [], [], 0)[0]  # (then the status read was this process's)
            if parent == self.proc.pid and uids == want and alive:
                return pid, pidfd
            os.close(pidfd)
        raise Refused(f"it named pid {named!r}, which is not a child of its own under uid {self.uid}")

    async def stop(self) -> None:
        """Stop the server (its process group: not its instances, which have sessions of their own)."""
        if self.proc is not None and self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await self.proc.wait()
        self.socket.unlink(missing_ok=True)
        if self.uid is not None:
            remove_if_empty(self.folder)  # (else its forked instances' sockets: the last one removes it)
        if self.group is not None:
            self.group.remove()


def remove_if_empty(folder: Path) -> None:
    """Remove a confined fork server's socket folder once nothing is left in it (its server and instances gone)."""
    try:
        os.rmdir(folder)
    except OSError:
        pass


async def _first_line(loop, conn: socket.socket) -> tuple[dict, bytes]:
    buffer = b""
    while b"\n" not in buffer:
        data = await loop.sock_recv(conn, 4096)
        if not data:
            raise ConnectionResetError("the fork server closed the connection")
        if len(buffer) > MAX_ANSWER:
            raise Refused(f"its answer is longer than {MAX_ANSWER} bytes")
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

    async def fork(
        self, spec, owner: object, fresh: Path, out: int, group, name: str, uid: int | None = None, data_dir=None
    ) -> tuple[ForkedProcess, Path] | None:
        """Instance `name` of `spec` forked for launcher `owner`, and the socket it listens on (`fresh`, where a
        fresh start would listen, unless it is confined to `uid`), or None: start it fresh (logged once)."""
        if not is_wanted(spec):
            return None
        key = server_key(spec, uid)
        if key in self.bypassed:
            return None
        async with self.lock:
            server = self.servers.get(key)
            if server is None:
                folder = fresh.parent if uid is None else fresh.parent.parent / f"{spec.name}-f{key[:8]}"
                server = self.servers[key] = ForkServer(key, spec, folder, uid, data_dir)
            try:
                if not server.is_running():
                    if server.proc is not None:
                        server.restarts += 1
                        if server.restarts > RESTARTS:
                            raise Refused(f"it ended {server.restarts} times")
                        log.warning("the fork server of deployment %s ended; starting it again", spec.name)
                    await server.start(spec)
                server.users.add(id(owner))
                try:
                    await server.bind(spec)
                except CannotBind as e:
                    log.warning("deployment %s: an instance starts fresh: %s", spec.name, e)
                    return None
                socket_path = fresh if uid is None else server.instance_socket(name)
                return await server.fork(spec, socket_path, out, group, name), socket_path
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
