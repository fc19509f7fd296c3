"""The "container" launcher: each instance a scoring-server container on a Docker engine, reached over a
unix socket in a folder of its own inside the endpoint's socket folder, bind-mounted into the container
(no published port; the container sees no other instance's socket and not the host's lock file).

Follows the contract in mlctl/runtime/host/launcher.py (the endpoint host loads this module from its
registry by name; it runs in the host, on the host). What a container gets is in `containers.py`.
Blocking engine calls run on a small thread pool, never on the host's event loop. A container's scoring
server writes its output to a FIFO that the host relays into the instance's rotating log file, as it
does a process's pipe (outputs.py: the engine is not on the per-request path). Each container also has
a watcher thread that copies what reaches the engine's log stream (what comes before the server moved
its output: the interpreter failing to start) to the same file, then waits for its end and says why it
ended: exited with a code, killed for running out of memory (restarted with backoff by the host, like a
crash), or stopped or removed outside mlctl (left down: drift, until `mlctl apply` revives it).
Containers outlive a killed host: the next host of the same endpoint removes those it finds of an
earlier host (labels say which), as `mlctl destroy` does. With `docker.spare_container: true` (spares.py) a
deployment keeps a warm spare container, started in the background once an instance is ready, which its next
instance claims instead of creating a container (else, or when the claim fails, it starts fresh: logged).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import os
import threading
import time

from mlctl.runtime.docker import containers, spares
from mlctl.runtime.docker.outputs import ContainerOutput, fifo_name
from mlctl.runtime.host.identities import instance_uid
from mlctl.runtime.host.launcher import InstanceKey, Place, Usage
from mlctl.runtime.host.logfiles import RotatingLog, instance_log_path
from mlctl.runtime.host.relay import LineBuffer
from mlctl.runtime.host.sockets import instance_folder, remove_instance_folder
from mlctl.runtime.kit.processusage import TAIL_BYTES, process_usage

_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="mlctl-docker")
_swept: set[str] = set()  # endpoint tags whose leftovers this host removed already
log = logging.getLogger("mlctl.host")


async def _call(fn, *args, **kwargs):
    """A blocking engine call, off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_POOL, lambda: fn(*args, **kwargs))


class SharedLog:
    """An instance log file written by the watcher threads of its generations (one at a time, locked)."""

    def __init__(self, path):
        self.file, self.lock = RotatingLog(path), threading.Lock()

    def write(self, data: bytes) -> None:
        with self.lock:
            self.file.write(data)

    def close(self) -> None:
        with self.lock:
            self.file.close()


class Container:
    """One instance's container: its engine id, its output tail, and why it ended (once it did)."""

    def __init__(self, spec, key: InstanceKey, place: Place):
        self.spec, self.key, self.place = spec, key, place
        self.uid = instance_uid(containers.endpoint_tag_of(place), spec.name)  # None: the host's own user
        self.folder = place.socket_dir / containers.folder_name(spec.name, key)  # all the container sees of it
        self.socket = self.folder / containers.SOCKET_NAME
        self.fifo = self.folder / fifo_name(self.socket)
        self.output: ContainerOutput | None = None
        self.id: str | None = None
        self.pid: int | None = None
        self.address = f"unix:{self.socket}"  # where the host reaches it (a custom container: a TCP port)
        self.ended: asyncio.Future | None = None
        self.reason: str | None = None  # why it is not running (None while it runs)
        self.outside = False  # stopped or removed outside mlctl: not restarted by the host
        self.oom_kills = 0
        self.stopped = False  # for good: never started again
        self.by_us = False  # mlctl is stopping it
        self.tail: collections.deque[bytes] = collections.deque()
        self._tail_bytes = 0
        self._tail_lock = threading.Lock()
        self.lifecycle = asyncio.Lock()
        self.from_spare = False  # this run of it is a warm spare it claimed

    def _start_line(self, how: str) -> bytes:
        return (
            f"--- mlctl host: starting instance {self.key.index} of {self.spec.name} in {how} "
            f"(image {self.spec.launch.get('image')}, digest {self.spec.digest[:19]}) at "
            f"{time.strftime('%Y-%m-%dT%H:%M:%S')}\n"
        ).encode()

    def is_running(self) -> bool:
        return self.ended is not None and not self.ended.done()

    async def launch(self, out: SharedLog, spare: spares.Spare | None = None) -> None:
        """Create and start the container (a leftover of the same name removed first) and its watcher, in a
        fresh folder of its own for its socket and output; or claim the warm `spare` (when that fails: logged,
        the spare removed, a fresh start)."""
        with self._tail_lock:
            self.tail.clear()
            self._tail_bytes = 0
        self.reason, self.outside, self.by_us, self.from_spare = None, False, False, False
        if spare is not None and await self._claim(spare, out):
            return
        instance_folder(self.place.socket_dir, self.folder.name, self.uid)
        out.write(self._start_line("a container"))
        loop = asyncio.get_running_loop()
        self.ended = loop.create_future()
        output = self.output = ContainerOutput(self.fifo, out, self._remember)
        try:
            if self.uid is not None:
                os.chown(self.fifo, self.uid, self.uid)
            self.id, self.pid, started, self.address = await _call(
                containers.run, self.spec, self.key, self.place, self.folder, self.uid
            )
        except BaseException:
            self.ended.cancel()
            await output.finish()
            raise
        self._watch_from(started, out, output)

    async def _claim(self, spare: spares.Spare, out: SharedLog) -> bool:
        """Become the instance in the warm `spare`: its model and code bound into it, its folder made this
        instance's, its output FIFO made, then the spare told to go. False (logged, the spare removed) when
        any of that fails: the caller starts a fresh container."""
        output = None
        t0 = time.monotonic()
        try:
            await asyncio.shield(spare.ready)
            await _call(spare.hand_over, self.spec, self.folder)
            out.write(self._start_line(f"the warm spare container {spare.id[:12] if spare.id else ''}"))
            self.ended = asyncio.get_running_loop().create_future()
            output = self.output = ContainerOutput(self.fifo, out, self._remember)
            if self.uid is not None:  # by descriptor: the spare's uid owns the folder (it could swap the name)
                os.fchown(output.relay.fd, self.uid, self.uid)
            await _call(spare.go, self.spec, self.key, self.place)
        except Exception as e:  # noqa: BLE001 - whatever failed, a fresh container is started instead
            log.warning(
                "deployment %s: instance %s starts in a fresh container: claiming its warm spare failed (%s: %s)",
                self.spec.name, self.key.index, type(e).__name__, str(e)[:500],
            )  # fmt: skip
            if self.ended is not None and not self.ended.done():
                self.ended.cancel()
            if output is not None:
                await output.finish()
            await _call(spare.discard)
            return False
        assert spare.id is not None
        self.id, self.pid, self.address, self.from_spare = spare.id, spare.pid, f"unix:{self.socket}", True
        self._watch_from(spare.started, out, output)
        log.info(
            "deployment %s: instance %s claimed its warm spare %s in %.3f s",
            self.spec.name, self.key.index, spare.id[:12], time.monotonic() - t0,
        )  # fmt: skip
        return True

    def _watch_from(self, started: float, out: SharedLog, output: ContainerOutput) -> None:
        """The watcher thread of the container just started (`started`: its start time)."""
        assert self.id is not None and self.ended is not None
        threading.Thread(
            target=self._watch,
            args=(asyncio.get_running_loop(), self.ended, self.id, started, out, output),
            name=f"mlctl-watch-{self.id[:12]}",
            daemon=True,
        ).start()

    def _remember(self, data: bytes) -> None:
        with self._tail_lock:
            self.tail.append(data)
            self._tail_bytes += len(data)
            while self._tail_bytes > TAIL_BYTES and len(self.tail) > 1:
                self._tail_bytes -= len(self.tail.popleft())

    def _watch(self, loop, ended, cid: str, started: float, out: SharedLog, output: ContainerOutput) -> None:
        # its own thread
        lines = LineBuffer()  # whole lines, long ones cut (relay.py)
        try:
            for chunk in containers.output(cid):
                complete = lines.feed(chunk)
                if complete:
                    out.write(complete)
                    self._remember(complete)
        except Exception:  # the engine went away or the container was removed: its end says which
            pass
        rest = lines.rest()
        if rest:
            out.write(rest)
            self._remember(rest)
        end = containers.ending(cid, started, self.spec.launch.get("memory_bytes"), lambda: self.by_us)
        try:
            asyncio.run_coroutine_threadsafe(self._ended(ended, end, cid, out, output), loop)
        except RuntimeError:  # the host's loop is closed: the host is gone
            pass

    async def _ended(self, ended: asyncio.Future, end, cid: str, out: SharedLog, output: ContainerOutput) -> None:
        """On the host's loop: the rest of its output copied first, then why it ended (in the log unless mlctl
        stopped it), then the host told."""
        try:
            await output.finish()
            if not self.by_us:
                out.write(f"--- mlctl host: container {cid[:12]} of instance {self.key.index} {end.reason}\n".encode())
        except OSError:  # the log file could not be written: the host must still learn of the end
            pass
        if ended is not self.ended or ended.done():
            return
        self.reason, self.outside = end.reason, end.outside and not self.by_us
        self.oom_kills += end.oom_killed
        ended.set_result(end.reason)

    async def remove(self, grace: float) -> None:
        """Stop it (SIGTERM, SIGKILL after `grace` s; at once when 0), its output drained, then remove it."""
        self.by_us = True
        if self.id is None:
            remove_instance_folder(self.folder)
            return
        if self.is_running():
            await _call(containers.stop, self.id, grace)
            try:
                await asyncio.wait_for(asyncio.shield(self.ended), grace + 10)
            except asyncio.TimeoutError:
                pass
        if self.output is not None:
            await self.output.finish()
        await _call(containers.remove, self.id)
        remove_instance_folder(self.folder)


class Launcher:
    """The containers of one deployment's instances, by InstanceKey; their log writers by index."""

    name = "container"
    restarts_itself = False

    def __init__(self, place: Place, deployment: str):
        self.place, self.deployment = place, deployment
        self.containers: dict[InstanceKey, Container] = {}
        self.outputs: dict[int, SharedLog] = {}
        self.spare: spares.Spare | None = None  # the deployment's warm spare (ready or on its way)
        self.spares_off: str | None = None  # why its instances no longer get spares (said once)

    def _take_spare(self, spec, uid: int | None) -> spares.Spare | None:
        """The warm spare an instance of `spec` confined to `uid` claims, if there is one made for it (one made
        for other settings is removed)."""
        spare, self.spare = self.spare, None
        if spare is None:
            return None
        if spare.key != spares.spare_key(spec, uid):
            asyncio.get_running_loop().create_task(_call(spare.discard))
            return None
        return spare

    def _prepare_spare(self, spec, key: InstanceKey, uid: int | None) -> None:
        """Start the deployment's next warm spare in the background, unless spares are off for it."""
        if self.spare is not None or self.spares_off is not None or not spares.is_wanted(spec):
            return
        why = spares.why_not_here()
        if why is not None:
            self._spares_off(spec, why)
            return
        spare = self.spare = spares.Spare(spec, key, self.place, uid)

        async def prepare() -> None:
            try:
                await _call(spare.start, spec)
                await _call(spare.wait_ready)
            except spares.Refused as e:
                self._spares_off(spec, f"its spare refused: {e}")
                raise
            except Exception as e:
                log.warning("deployment %s: its warm spare did not start: %s: %s", spec.name, type(e).__name__, e)
                raise

        spare.ready = asyncio.get_running_loop().create_task(prepare())
        spare.ready.add_done_callback(lambda t: self._spare_failed(spare) if t.cancelled() or t.exception() else None)

    def _spare_failed(self, spare: spares.Spare) -> None:
        if self.spare is spare:
            self.spare = None
        asyncio.get_running_loop().create_task(_call(spare.discard))

    def _spares_off(self, spec, why: str) -> None:
        if self.spares_off is None:
            self.spares_off = why
            log.warning("deployment %s: instances start in fresh containers, without a warm spare: %s", spec.name, why)

    def _output(self, index: int) -> SharedLog:
        if index not in self.outputs:
            self.outputs[index] = SharedLog(
                instance_log_path(self.place.data_dir, self.place.endpoint, self.deployment, index)
            )
        return self.outputs[index]

    async def _sweep_once(self) -> None:
        """Remove the containers an earlier (killed) host of this endpoint left running, once per host."""
        tag = containers.endpoint_tag_of(self.place)
        if tag not in _swept:
            _swept.add(tag)
            await _call(containers.remove_leftovers, tag)

    async def start(self, spec, keys: list[InstanceKey]) -> list[str]:
        try:
            await self._sweep_once()
            for key in keys:
                c = self.containers[key] = Container(spec, key, self.place)
                async with c.lifecycle:
                    await c.launch(self._output(key.index), self._take_spare(spec, c.uid))
        except Exception as e:
            await self.stop([k for k in keys if k in self.containers], grace=0)
            raise OSError(f"the Docker engine did not start a container for {spec.name}: {e}") from e
        except BaseException:
            await self.stop([k for k in keys if k in self.containers], grace=0)
            raise
        return [self.containers[k].address for k in keys]

    async def restart(self, key: InstanceKey) -> str | None:
        c = self.containers.get(key)
        if c is None:
            return None
        async with c.lifecycle:
            if c.stopped or c.outside:
                return None
            await c.remove(grace=0)
            try:
                await c.launch(self._output(key.index), self._take_spare(c.spec, c.uid))
            except Exception as e:
                c.reason = f"could not be started again: {e}"
                return None
        return c.address

    async def stop(self, keys: list[InstanceKey], grace: float = 5.0) -> None:
        async def stop_one(c: Container) -> None:
            c.stopped = True
            async with c.lifecycle:
                try:
                    await c.remove(grace)
                except Exception:  # gone already, or the engine is: nothing left to stop here
                    pass

        await asyncio.gather(*(stop_one(c) for k in keys if (c := self.containers.pop(k, None)) is not None))

    def health(self, key: InstanceKey) -> str | None:
        c = self.containers.get(key)
        if c is None:
            return "stopped"
        if c.is_running():
            return None
        return c.reason or "not started"

    async def gone(self, key: InstanceKey) -> str:
        c = self.containers.get(key)
        if c is not None and c.ended is not None:
            await asyncio.shield(c.ended)
        return self.health(key) or "stopped"

    def logs(self, key: InstanceKey, lines: int = 60) -> str:
        c = self.containers.get(key)
        if c is None:
            return ""
        with c._tail_lock:
            text = b"".join(c.tail).decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def usage(self, key: InstanceKey) -> Usage | None:
        """The container's cgroup (all its processes), else its main process, as this machine sees them."""
        c = self.containers.get(key)
        if c is None or not c.pid or not c.is_running():
            return None
        return containers.cgroup_usage(c.pid) or process_usage(c.pid)

    def describe(self, key: InstanceKey) -> dict:
        c = self.containers.get(key)
        if c is None:
            return {"container": None}
        launch = c.spec.launch
        return {
            "container": c.id[:12] if c.id else None,
            "container_name": containers.name_of(c.spec, key, c.place),
            "pid": c.pid,
            "socket": str(c.socket),
            "image": launch.get("image"),
            "cpus": (launch.get("nano_cpus") or 0) / 1e9 or None,
            "memory_bytes": launch.get("memory_bytes"),
            "last_exit": c.reason,
            "stopped_outside_mlctl": c.outside,
            "oom_kills": c.oom_kills,
            "from_spare": c.from_spare,
        }

    def on_ready(self, key: InstanceKey) -> None:
        """What the instance printed so far goes to its log file now, before anyone is told it is ready."""
        c = self.containers.get(key)
        if c is not None and c.output is not None:
            c.output.drain()
        if c is not None:
            self._prepare_spare(c.spec, key, c.uid)

    async def close(self) -> None:
        spare, self.spare = self.spare, None
        if spare is not None:
            await _call(spare.discard)
        await self.stop(list(self.containers))
        for out in self.outputs.values():
            out.close()
        self.outputs.clear()
