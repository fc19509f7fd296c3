"""A deployment's request slots: which ready instance takes a request, waiting for a free one, and taking
an instance out of rotation when a connection to it is lost (until it answers a probe again).

The instances themselves are started, rolled, scaled and restarted by supervisor.py's Deployment, which
hands the live list over with `serve()`."""

from __future__ import annotations

import asyncio
from typing import Callable

from .instances import Instance
from .spec import ServingSpec


class Slots:
    """Up to max_concurrent requests at a time on each ready instance, least in flight first."""

    def __init__(self, spec: ServingSpec):
        self.spec = spec
        self.loop = asyncio.get_running_loop()
        self.instances: list[Instance] = []
        self._waiters: list[asyncio.Future] = []
        self._rechecks: set[asyncio.Task] = set()  # see suspect()
        self._next = 0
        self.starved: Callable[[], None] | None = None  # called when a request waits and there is no instance

    def serve(self, instances: list[Instance], spec: ServingSpec) -> None:
        """From now on requests go to `instances` (the switch of a create, roll, scale or revive), as `spec` says."""
        self.instances, self.spec = instances, spec
        self.wake()

    def ready_count(self) -> int:
        return sum(1 for i in self.instances if i.ready)

    def _pick(self, exclude: Instance | None) -> Instance | None:
        """Least-in-flight ready instance with a free slot, ties broken round robin."""
        insts = self.instances
        n = len(insts)
        if n == 1:  # one instance: no choice to make
            inst = insts[0]
            return inst if inst.ready and inst.in_flight < self.spec.max_concurrent else None
        if not n:
            return None
        others_ready = exclude is not None and any(i.ready and i is not exclude for i in insts)
        best = None
        start = self._next % n
        for k in range(n):
            inst = insts[(start + k) % n]
            if not inst.ready or inst.in_flight >= self.spec.max_concurrent:
                continue
            if others_ready and inst is exclude:
                continue
            if best is None or inst.in_flight < best.in_flight:
                best = inst
        self._next += 1
        return best

    def try_acquire(self, exclude: Instance | None = None) -> Instance | None:
        """A slot on an instance if one is free now (the request path's fast case), else None."""
        inst = self._pick(exclude)
        if inst is not None:
            inst.in_flight += 1
        return inst

    async def acquire(self, deadline: float, exclude: Instance | None = None) -> Instance:
        """A slot on an instance, waiting (FIFO) until `deadline` (loop time); TimeoutError past it."""
        loop = self.loop
        while True:
            inst = self._pick(exclude)
            if inst is not None:
                inst.in_flight += 1
                return inst
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise asyncio.TimeoutError
            if not self.instances and self.starved is not None:
                self.starved()
            fut = loop.create_future()
            self._waiters.append(fut)
            try:
                await asyncio.wait_for(fut, remaining)
            finally:
                if not fut.done():
                    fut.cancel()
                if fut in self._waiters:
                    self._waiters.remove(fut)

    def release(self, inst: Instance) -> None:
        inst.in_flight -= 1
        self.wake()

    def wake(self) -> None:
        """Let the requests waiting for a slot look again (an instance was released, became ready or was added)."""
        if not self._waiters:  # the usual case (every release calls this): nothing to allocate
            return
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def suspect(self, inst: Instance) -> None:
        """A connection to `inst` was lost while it held a request: out of rotation at once (it may be
        dying: a request sent now could be lost with it) until it answers a probe again; when its
        process is gone, supervision restarts it."""
        if inst.ready and not inst.stopping:
            inst.ready = False
            task = self.loop.create_task(self._recheck(inst))
            self._rechecks.add(task)
            task.add_done_callback(self._rechecks.discard)

    async def _recheck(self, inst: Instance) -> None:
        probe = self.spec.readiness_probe
        period = max(0.05, min(1.0, float(probe["period"])))
        while not inst.stopping and not inst.ready and inst.health() is None:
            if await inst.probe(max(0.1, float(probe["timeout"]))):
                if not inst.stopping and inst.health() is None:
                    inst.ready = True
                    self.wake()
                return
            await asyncio.sleep(period)
