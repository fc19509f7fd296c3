"""A deployment's autoscaler in the endpoint host: each `polling_interval` it measures the utilization of the
deployment's instances, asks `scalepolicy.decide` for the count and carries the decision out (add instances,
ready before they take requests; drain, then stop), one order at a time with the admin orders.

The utilization is measured, never injected: CPU seconds of each instance (its cgroup under docker, /proc for
a process: the launcher's `usage`) against `resources.requests.cpu` when the deployment sets one, as Azure
does; otherwise the requests admitted (at an instance or waiting for a slot, sampled every 100 ms) against
`max_concurrent_requests_per_instance` slots, which is also the metric when the instances run on a cluster's
nodes (Ray Serve's replicas: the launcher's `runs_here` is false), where neither their CPU nor this machine's
capacity is readable; the platform places them (and says when it has no room). A deployment scaled to zero
is woken by the first request that waits (`wake`), without waiting for the next poll.

Ray's in-cluster hosts (`ray.ingress: cluster`) each run this autoscaler on the same Serve application, each seeing
its own share of the requests. Their figures are shared through the cluster (mlctl/runtime/ray/loadshare.py, carried
by each host's actor): each host `hear`s the others' mean in-flight requests, adds them to its own, and follows the
count of the leading host (the lowest-numbered one alive), never going below its own decision on the same sum
(`scalepolicy.follow`). Figures older than PEERS_STALE_S are not used: a host then decides alone, as before.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Callable

from .launcher import InstanceFailed
from .scalepolicy import Decision, Observation, decide, follow
from .supervisor import Deployment

log = logging.getLogger("mlctl.host")

SAMPLE_S = 0.1  # in-flight sampling period
FAILED_START_PAUSE_S = 5.0  # after a scale-up that failed, before the next try
KEPT_DECISIONS = 20  # the last decisions kept for `show`
PEERS_STALE_S = 5.0  # the other hosts' figures, heard longer ago than this, are not used (this host decides alone)


def runs_here(d: Deployment) -> bool:
    """Do the deployment's instances run on this machine (processes, containers), not on a cluster's nodes?"""
    return getattr(d.launcher, "runs_here", True)


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Autoscaler:
    """Scales one deployment within its range. `lock`: the endpoint's order lock (scaling is an order like the
    admin's); `room(deployment, added)`: None when the machine can hold `added` more instances, else why not."""

    def __init__(
        self, d: Deployment, settings: dict, lock: asyncio.Lock, room: Callable[[Deployment, int], str | None]
    ):
        self.d, self.settings, self.lock, self.room = d, settings, lock, room
        self.window: tuple[tuple[float, int], ...] = ((time.monotonic(), len(d.instances)),)
        self.wakeup = asyncio.Event()
        self.desired = len(d.instances)
        self.last: dict | None = None  # the last poll's decision (a hold, most of the time)
        self.decisions: list[dict] = []  # the last changes and refusals
        self.paused_until = 0.0
        self.task: asyncio.Task | None = None
        self.own_mean = 0.0  # this host's mean in-flight requests over the last poll (what the other hosts hear)
        self.peers: dict = {}  # what this host last heard of the endpoint's other hosts (`hear`)
        self.heard_at = 0.0

    # ---- life ----------------------------------------------------------------------------
    def start(self) -> None:
        self.task = asyncio.ensure_future(self._run())
        self.d.slots.starved = self.wake
        log.info("autoscale %s: within [%d, %d] on %s", self.d.spec.name, *self._range(), self.metric)

    async def close(self) -> None:
        self.d.slots.starved = None
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    def retarget(self, settings: dict) -> None:
        """A new range or target (an in-place update): the window of recommendations is kept."""
        self.settings = settings
        self.wake()

    def wake(self) -> None:
        """A request waits at a deployment with no instance: decide now, not at the next poll."""
        self.wakeup.set()

    def hear(self, peers) -> dict:
        """The endpoint's other in-cluster hosts, as mlctl/runtime/ray/loadshare.py combines their figures:
        `others_in_flight` (the sum of their mean in-flight requests over their last poll), `leader` (the index of
        the host that leads), `leader_desired` (its count; None when this host leads) and `hosts` (how many are
        alive). Returns this host's own figures, which the others hear in turn."""
        if isinstance(peers, dict):
            self.peers, self.heard_at = peers, time.monotonic()
        return {"in_flight": round(self.own_mean, 3), "desired": self.desired, "count": len(self.d.instances)}

    def _heard(self) -> dict:
        """What was heard of the other hosts, {} when nothing was, or too long ago (this host then decides alone)."""
        return self.peers if self.peers and time.monotonic() - self.heard_at <= PEERS_STALE_S else {}

    def _others(self) -> float:
        """The other hosts' in-flight requests (their mean over their last poll), 0 when none are heard."""
        try:
            return max(0.0, float(self._heard().get("others_in_flight") or 0.0))
        except (TypeError, ValueError):
            return 0.0

    def _leader(self) -> tuple[int, int] | None:
        """(the leading host's index, its count) when another host leads, else None."""
        heard = self._heard()
        lead, count = heard.get("leader"), heard.get("leader_desired")
        if isinstance(lead, int) and isinstance(count, int) and not isinstance(count, bool):
            return lead, count
        return None

    # ---- what it measures ------------------------------------------------------------------
    def _range(self) -> tuple[int, int]:
        return self.settings["min_instances"], self.settings["max_instances"]

    @property
    def cpu_request(self) -> float | None:
        """The CPU request utilization is measured against; None when in-flight requests are measured instead
        (none set, or the instances run on other machines, Ray's nodes, where their CPU is not readable)."""
        return self.settings.get("cpu_request") if runs_here(self.d) else None

    @property
    def metric(self) -> str:
        if self.cpu_request:
            return f"CPU (resources.requests.cpu {self.cpu_request:g} per instance)"
        if self.settings.get("cpu_request"):
            return (
                f"in-flight requests ({self.d.spec.max_concurrent} per instance; the CPU of instances on other "
                "machines is not readable here)"
            )
        return f"in-flight requests ({self.d.spec.max_concurrent} per instance)"

    def _cpu(self) -> dict:
        """CPU seconds so far of each instance in rotation, by instance."""
        out = {}
        for inst in self.d.instances:
            usage = inst.launcher.usage(inst.key)
            if usage is not None and usage.cpu_seconds is not None:
                out[inst] = usage.cpu_seconds
        return out

    async def observe(self) -> Observation:
        """The utilization over one polling interval (cut short when a request waits at zero instances)."""
        d, loop = self.d, asyncio.get_running_loop()
        started = loop.time()
        end = started + float(self.settings["polling_interval"])
        cpu_before = self._cpu() if self.cpu_request else {}
        samples = []
        while True:
            samples.append(d.in_flight)
            if not d.instances and d.in_flight:
                break
            remaining = end - loop.time()
            if remaining <= 0:
                break
            self.wakeup.clear()
            try:
                await asyncio.wait_for(self.wakeup.wait(), min(SAMPLE_S, remaining))
            except asyncio.TimeoutError:
                pass
        n = len(d.instances)
        self.own_mean = sum(samples) / len(samples)
        others = self._others()
        utilization = None
        if n and self.cpu_request:
            after = self._cpu()
            both = [i for i in after if i in cpu_before]
            elapsed = max(1e-3, loop.time() - started)
            if both:
                used = sum(after[i] - cpu_before[i] for i in both)
                utilization = 100 * used / (elapsed * self.cpu_request * len(both))
        elif n:  # with the other hosts' requests: each host's n instances are the same n servers
            utilization = 100 * (self.own_mean + others) / (d.spec.max_concurrent * n)
        waiting = d.in_flight + math.ceil(others)
        return Observation(time.monotonic(), n, utilization, waiting, self.metric.split(" (")[0])

    # ---- what it does ------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            try:
                await self.tick(await self.observe())
            except asyncio.CancelledError:
                raise
            except Exception:  # never the end of scaling: logged, and the next poll decides again
                log.exception("autoscale %s: poll failed", self.d.spec.name)
                await asyncio.sleep(float(self.settings["polling_interval"]))

    def _record(self, obs: Observation, decision: Decision, outcome: str) -> dict:
        entry = {
            "at": _stamp(),
            "from": obs.count,
            "to": decision.desired,
            "utilization_percent": None if obs.utilization is None else round(obs.utilization, 1),
            "reason": decision.reason,
            "outcome": outcome,
        }
        self.last = entry
        if outcome != "held":
            self.decisions = (self.decisions + [entry])[-KEPT_DECISIONS:]
        return entry

    async def tick(self, obs: Observation) -> None:
        """Decide on one observation and carry the decision out (the effects of `scalepolicy.decide`)."""
        d, name = self.d, self.d.spec.name
        decision = decide(self.settings, obs, self.window)
        self.window = decision.window
        leader = self._leader()
        if leader is not None:
            decision = follow(self.settings, decision, *leader)
        self.desired = decision.desired
        if decision.desired == obs.count:
            self._record(obs, decision, "held")
            return
        added = decision.desired - obs.count
        if added > 0:
            if time.monotonic() < self.paused_until:
                return
            why_not = self.room(d, added) if runs_here(d) else None  # elsewhere, the platform places them
            if why_not:
                self._record(obs, decision, f"refused: {why_not}")
                log.warning(
                    "autoscale %s: %d -> %d refused: %s (%s)",
                    name,
                    obs.count,
                    decision.desired,
                    why_not,
                    decision.reason,
                )
                self.paused_until = time.monotonic() + FAILED_START_PAUSE_S
                return
        async with self.lock:
            if d.operation == "deleting" or len(d.instances) != obs.count:
                return  # an order changed the deployment meanwhile: the next poll decides again
            log.info("autoscale %s: %d -> %d: %s", name, obs.count, decision.desired, decision.reason)
            entry = self._record(obs, decision, "scaling")
            deadline = time.monotonic() + d.spec.readiness_budget_s
            try:
                if decision.desired > obs.count:
                    await d.grow(decision.desired, deadline)
                else:
                    await d.scale(decision.desired, deadline)
            except (InstanceFailed, OSError) as e:  # OSError: the platform could not place them (no room)
                entry["outcome"] = f"failed: {e}"
                log.warning("autoscale %s: scaling to %d failed: %s", name, decision.desired, e)
                self.paused_until = time.monotonic() + FAILED_START_PAUSE_S
                return
            entry["outcome"] = "done"
        log.info("autoscale %s: now %d instance(s)", name, len(d.instances))

    def status(self) -> dict:
        lo, hi = self._range()
        return {
            "min_instances": lo,
            "max_instances": hi,
            "target_utilization_percentage": self.settings["target_utilization_percentage"],
            "polling_interval": self.settings["polling_interval"],
            "stabilization_window": self.settings["stabilization_window"],
            "metric": self.metric,
            "desired": self.desired,
            "last_poll": self.last,
            "decisions": list(self.decisions),
            # a scale-up the platform cannot place yet (Ray Serve's pending replicas): why, while it waits
            "waiting_for_room": getattr(self.d.launcher, "no_room", ""),
            **({"hosts": self._hosts()} if self._heard() else {}),
        }

    def _hosts(self) -> dict:
        """How this host's decisions agree with the endpoint's other hosts' (for `show`)."""
        heard, leader = self._heard(), self._leader()
        return {
            "alive": heard.get("hosts"),
            "others_in_flight": round(self._others(), 2),
            "role": f"follows host {leader[0]}" if leader else "leads",
        }
