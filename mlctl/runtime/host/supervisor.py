"""A deployment's lifecycle: start its instances ready, probe and restart them, roll, scale, revive, drain.

The instances themselves are the deployment's launcher's (launcher.py): this module only calls it. Which
instance takes a request is slots.py's: the lifecycle hands it each new set of instances."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from .instances import Instance
from .launcher import InstanceFailed, Launcher, Place, make_launcher
from .metrics import Metrics
from .slots import Slots
from .spec import ServingSpec

log = logging.getLogger("mlctl.host")

BACKOFF_S = (0.1, 0.5, 1, 2, 4, 8, 16, 30)  # by consecutive failed starts
STABLE_S = 60  # an instance up this long resets its backoff


class Deployment:
    """One deployment: its launcher, its instances' lifecycle and supervision, and its request slots (`slots`)."""

    def __init__(self, spec: ServingSpec, place: Place, metrics: Metrics):
        self.spec, self.place, self.metrics = spec, place, metrics
        self.launcher: Launcher = make_launcher(spec.launcher, place, spec.name)
        self.loop = asyncio.get_running_loop()  # kept: the request path asks for it on every request
        self.slots = Slots(spec)
        self.draining: list[Instance] = []
        self.generation = 0
        self.in_flight = 0  # admitted requests (queued or at an instance)
        self.operation: str | None = "creating"
        self._supervisors: dict[Instance, asyncio.Task] = {}
        self.autoscaler = None  # autoscaler.Autoscaler, set by the endpoint when the spec asks for a range

    # ---- what requests see -------------------------------------------------------------------
    @property
    def limit(self) -> int:
        """Requests in flight past which the gateway answers 429 (Azure: 2 x max_concurrent x instances; under
        autoscaling, x max_instances: requests wait for the instances being added)."""
        ranged = self.spec.scale_settings
        return 2 * self.spec.max_concurrent * (ranged["max_instances"] if ranged else self.spec.instance_count)

    @property
    def scales_to_zero(self) -> bool:
        return bool(self.spec.scale_settings) and self.spec.scale_settings["min_instances"] == 0

    def ready_count(self) -> int:
        return self.slots.ready_count()

    @property
    def instances(self) -> list[Instance]:
        """The instances in rotation (slots.py routes requests to them)."""
        return self.slots.instances

    def _serve(self, instances: list[Instance], spec: ServingSpec | None = None) -> None:
        """The switch: requests go to `instances` from now on (and `spec`, when given, is the deployment's)."""
        if spec is not None:
            self.spec = spec
        self.slots.serve(instances, self.spec)

    # ---- lifecycle -----------------------------------------------------------------------
    async def _start(
        self, spec: ServingSpec, indices, deadline: float, launcher: Launcher | None = None
    ) -> list[Instance]:
        """Start instances and wait until all are ready; on any failure stop them all and raise."""
        insts = [Instance(spec, i, self.generation, launcher or self.launcher) for i in indices]
        try:
            for inst in insts:
                await inst.start()
            tasks = [asyncio.ensure_future(inst.wait_ready(deadline)) for inst in insts]
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in pending:
                t.cancel()
            for t in tasks:
                if t.done() and not t.cancelled() and t.exception():
                    raise t.exception()
        except BaseException:
            await asyncio.gather(*(i.stop(grace=2) for i in insts), return_exceptions=True)
            if launcher is not None:
                await launcher.close()
            raise
        for inst in insts:
            self._supervisors[inst] = asyncio.ensure_future(self._supervise(inst))
        return insts

    async def create(self, deadline: float) -> None:
        """Start every instance; on failure none is left running (and the launcher is closed)."""
        try:
            self._serve(await self._start(self.spec, range(self.spec.instance_count), deadline))
        except BaseException:
            await self.launcher.close()
            raise
        finally:
            self.operation = None

    async def roll(self, spec: ServingSpec, deadline: float) -> None:
        """Health-gated: new instances beside the old, swap once all are ready, then drain the old.
        A spec naming another launcher gets a launcher of its own; the old one closes after the drain."""
        self.operation = "updating"
        try:
            self.generation += 1
            launcher = (
                make_launcher(spec.launcher, self.place, spec.name) if spec.launcher != self.spec.launcher else None
            )
            new = await self._start(spec, range(spec.instance_count), deadline, launcher)
            old = self.instances
            self._serve(new, spec)  # the atomic switch
            old_launcher, self.launcher = self.launcher, launcher or self.launcher
            await self.drain(old)
            if old_launcher is not self.launcher:
                await old_launcher.close()
        finally:
            self.operation = None

    async def _platform_scale(self, count: int) -> list[Instance]:
        """A launcher whose platform runs the instances (Ray Serve: `scale_to`) is told the new count; the
        instances in rotation it chose to remove (a scale-down), else []."""
        scale_to = getattr(self.launcher, "scale_to", None)
        if scale_to is None:
            return []
        chosen = set(await scale_to(count, [i.key for i in self.instances]))
        return [i for i in self.instances if i.key in chosen]

    async def scale(self, count: int, deadline: float) -> None:
        """Add instances (ready before they take requests) or drain and stop the ones the platform chose to
        remove, else the highest-numbered ones."""
        self.operation = "scaling"
        try:
            current = len(self.instances)
            if count > current:
                await self._platform_scale(count)
                added = await self._start(self.spec, range(current, count), deadline)
                self._serve(self.instances + added, dataclasses.replace(self.spec, instance_count=count))
            elif count < current:
                chosen = await self._platform_scale(count)
                removed = (
                    chosen
                    + [i for i in reversed(self.instances) if i not in chosen][: max(0, current - count - len(chosen))]
                )
                kept = [i for i in self.instances if i not in removed]
                self._serve(kept, dataclasses.replace(self.spec, instance_count=len(kept)))
                await self.drain(removed)
        finally:
            self.operation = None

    async def grow(self, count: int, deadline: float) -> None:
        """Add instances up to `count`, each joining the rotation as soon as it is ready (the autoscaler's
        scale-up: capacity arrives instance by instance). One that fails is stopped and the others stay;
        InstanceFailed is raised after all have finished."""
        self.operation = "scaling"
        try:
            await self._platform_scale(count)
            used = {i.index for i in self.instances}
            free = [i for i in range(count + len(used)) if i not in used][: max(0, count - len(used))]

            async def one(inst: Instance) -> None:
                try:
                    await inst.start()
                    await inst.wait_ready(deadline)
                except BaseException:
                    await inst.stop(grace=2)
                    raise
                self._supervisors[inst] = asyncio.ensure_future(self._supervise(inst))
                joined = sorted(self.instances + [inst], key=lambda i: i.index)
                self._serve(joined, dataclasses.replace(self.spec, instance_count=len(joined)))

            new = [Instance(self.spec, i, self.generation, self.launcher) for i in free]
            results = await asyncio.gather(*(one(i) for i in new), return_exceptions=True)
            for r in results:
                if isinstance(r, BaseException):
                    raise r
        finally:
            self.operation = None

    async def revive(self, deadline: float) -> None:
        """Drift repair: start a fresh instance now (no backoff) beside every one that is not ready,
        swap each in once all are ready, then drain the old. On failure nothing changes (the old
        ones stay under supervision) and InstanceFailed is raised. Nothing to do when the launcher's
        platform restarts instances itself."""
        down = [i for i in self.instances if not i.ready]
        if not down or self.launcher.restarts_itself:
            return
        self.operation = "updating"
        try:
            self.generation += 1
            fresh = {i.index: i for i in await self._start(self.spec, [i.index for i in down], deadline)}
            self._serve([fresh.get(i.index, i) if i in down else i for i in self.instances])
            await self.drain(down)
        finally:
            self.operation = None

    async def drain(self, insts: list[Instance]) -> None:
        """Out of rotation already; wait until nothing is in flight on each, then SIGTERM and stop."""
        self.draining.extend(insts)
        for inst in insts:
            task = self._supervisors.pop(inst, None)
            if task:
                task.cancel()
        loop = asyncio.get_running_loop()
        bound = loop.time() + self.spec.instance_timeout_ms / 1000 + 2
        while any(i.in_flight for i in insts) and loop.time() < bound:
            await asyncio.sleep(0.01)
        await asyncio.gather(*(i.stop() for i in insts), return_exceptions=True)
        for inst in insts:
            self.draining.remove(inst)

    async def stop(self) -> None:
        """Drain and stop every instance, then close the launcher."""
        self.operation = "deleting"
        insts = self.instances
        self._serve([])
        await self.drain(insts)
        await self.launcher.close()

    # ---- supervision ---------------------------------------------------------------------
    async def _watch(self, inst: Instance) -> str:
        """Wait until the instance dies or fails its liveness probe; says which."""
        probe = self.spec.liveness_probe
        period = max(0.1, float(probe["period"]))
        next_probe = inst.started_at + float(probe["initial_delay"])
        failures = 0
        exited = asyncio.ensure_future(inst.launcher.gone(inst.key))
        try:
            while True:
                wait = max(0.0, next_probe - time.monotonic())
                done, _ = await asyncio.wait([exited], timeout=wait)
                if done:
                    return exited.result()
                next_probe = time.monotonic() + period
                if await inst.probe(max(0.1, float(probe["timeout"])), "liveness"):
                    failures = 0
                elif inst.unhealthy:
                    return "reported itself unhealthy (GET / answered 503: see its log)"
                else:
                    failures += 1
                    log.warning(
                        "%s instance %d: liveness probe failed (%d/%d)",
                        self.spec.name,
                        inst.index,
                        failures,
                        probe["failure_threshold"],
                    )
                    if failures >= max(1, probe["failure_threshold"]):
                        return f"failed {failures} liveness probes"
        finally:
            exited.cancel()

    async def _supervise(self, inst: Instance) -> None:
        """Restart the instance with backoff whenever it dies or stops answering probes (only report it
        and probe until it is back when its launcher's platform restarts instances itself)."""
        failures = 0
        while not inst.stopping:
            reason = await self._watch(inst)
            if inst.stopping:
                return
            inst.ready = False
            if inst.launcher.restarts_itself:
                log.warning("%s instance %d %s; its platform restarts it", self.spec.name, inst.index, reason)
                await self._await_back(inst)
                continue
            log.warning("%s instance %d (%s) %s; restarting", self.spec.name, inst.index, inst.address, reason)
            await self._drain_one(inst)
            while not inst.stopping:
                # failures in a row, this one included (1 again once the instance had stayed up STABLE_S)
                failures = 1 if time.monotonic() - inst.started_at > STABLE_S else failures + 1
                delay = BACKOFF_S[min(failures - 1, len(BACKOFF_S) - 1)]
                log.info(
                    "%s instance %d: restarting in %.1f s (%d failure(s) in a row)",
                    self.spec.name,
                    inst.index,
                    delay,
                    failures,
                )
                await asyncio.sleep(delay)
                if inst.stopping:
                    return
                await asyncio.shield(inst.restart())
                if inst.address is None:  # stopped meanwhile, or by hand outside mlctl: left down (drift)
                    log.warning(
                        "%s instance %d is left down (%s) until mlctl apply starts it again",
                        self.spec.name,
                        inst.index,
                        inst.health() or "stopped",
                    )
                    return
                inst.restarts += 1
                self.metrics.restarts[self.spec.name] += 1
                try:
                    await inst.wait_ready(time.monotonic() + self.spec.readiness_budget_s)
                    log.info("%s instance %d ready again (%s)", self.spec.name, inst.index, inst.address)
                    self.slots.wake()
                    break
                except InstanceFailed as e:
                    log.warning("%s instance %d: restart failed: %s", self.spec.name, inst.index, e)

    async def _drain_one(self, inst: Instance) -> None:
        """Out of rotation already: let the requests it holds finish (a process still running, such
        as one that reported itself unhealthy, answers them), bounded by the instance timeout + 2 s."""
        bound = self.loop.time() + self.spec.instance_timeout_ms / 1000 + 2
        while inst.in_flight and not inst.stopping and self.loop.time() < bound and inst.health() is None:
            await asyncio.sleep(0.01)

    async def _await_back(self, inst: Instance) -> None:
        """Probe every readiness period until the instance answers again (its platform restarted it)."""
        probe = self.spec.readiness_probe
        while not inst.stopping:
            if await inst.probe(max(0.1, float(probe["timeout"]))):
                inst.ready = True
                log.info("%s instance %d ready again", self.spec.name, inst.index)
                self.slots.wake()
                return
            await asyncio.sleep(max(0.1, float(probe["period"])))

    # ---- reporting -----------------------------------------------------------------------
    @property
    def state(self) -> str:
        if self.operation:
            return self.operation
        if self.spec.instance_count == 0:
            return "idle"  # scaled to zero: the next request starts an instance
        return "ready" if self.ready_count() == self.spec.instance_count else "degraded"

    def status(self) -> dict:
        s = self.spec
        return {
            "digest": s.digest,
            "model_digest": s.model_digest,
            "code_digest": s.code_digest,
            "instance_count": s.instance_count,
            "ready_instances": self.ready_count(),
            "state": self.state,
            "in_flight": self.in_flight,
            "limit": self.limit,
            "draining": len(self.draining),
            "launcher": s.launcher,
            "instances": [i.status() for i in self.instances],
            **({"autoscale": self.autoscaler.status()} if self.autoscaler else {}),
        }
