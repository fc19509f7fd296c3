"""The autoscaler's decision at each poll, Kubernetes HPA's rule: from the utilization observed over the last
polling interval, the count that holds the target (`ceil(count x utilization / target)`, with HPA's 10 %
tolerance), kept in [min_instances, max_instances]; up at once, down only to the highest count recommended
throughout the stabilization window.

Pure: `decide` reads an `Observation` and the recommendations of the window and returns a `Decision`; the
endpoint host's `autoscaler.Autoscaler.tick` observes, calls it and carries the decision out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

TOLERANCE = 0.1  # HPA's: a ratio within 10 % of the target changes nothing


@dataclass(frozen=True)
class Observation:
    """What the host saw over one polling interval."""

    at: float  # monotonic seconds, the end of the interval
    count: int  # instances in rotation
    utilization: float | None  # percent of the basis (CPU request or concurrent-request slots), None: no instance
    waiting: int  # requests admitted now (at an instance or waiting for a slot)
    metric: str = "in-flight requests"  # the basis, as `show` names it


@dataclass(frozen=True)
class Decision:
    """The count wanted now, why, and the recommendations of the window to keep for the next poll."""

    desired: int
    recommended: int  # this poll's own recommendation (before the window's stabilization)
    reason: str
    window: tuple[tuple[float, int], ...]


def recommend(settings: Mapping, obs: Observation) -> tuple[int, str]:
    """Pure: the count this poll alone asks for, within the range, and the arithmetic that gave it."""
    lo, hi, target = settings["min_instances"], settings["max_instances"], settings["target_utilization_percentage"]
    n = obs.count
    if n == 0:
        if obs.waiting:
            return max(1, lo), f"{obs.waiting} request(s) waiting and no instance (scaled to zero)"
        return lo, "idle at zero instances"
    u = obs.utilization or 0.0
    ratio = u / target
    if abs(ratio - 1) <= TOLERANCE:
        raw = n
        how = f"{u:.0f} % of {obs.metric} is within {TOLERANCE:.0%} of the target {target} %"
    else:
        raw = math.ceil(n * ratio - 1e-9)
        how = f"{u:.0f} % of {obs.metric} on {n} instance(s), target {target} %: ceil({n} x {u:.0f} / {target}) = {raw}"
    rec = max(lo, min(hi, raw))
    if rec != raw:
        how += f", kept in [{lo}, {hi}]"
    return rec, how


def decide(settings: Mapping, obs: Observation, window: tuple[tuple[float, int], ...]) -> Decision:
    """Pure: the count to scale to now. Up at once to this poll's recommendation; down only to the highest
    recommendation of the stabilization window (so never down before a lower count was asked for throughout
    it); a count outside the range (the range changed) is brought into it at once. `window`: the
    recommendations of earlier polls, (at, count), the oldest first; the autoscaler seeds it with the count it
    started at. Carried out by `autoscaler.Autoscaler.tick`."""
    lo, hi, span = settings["min_instances"], settings["max_instances"], settings["stabilization_window"]
    n = obs.count
    rec, how = recommend(settings, obs)
    kept = tuple((t, r) for t, r in window if t >= obs.at - span) + ((obs.at, rec),)
    if n < lo or n > hi:
        to = max(lo, min(hi, n))
        return Decision(to, rec, f"{n} instance(s) is outside the range [{lo}, {hi}]: to {to} at once", kept)
    if rec > n:
        return Decision(rec, rec, f"up at once: {how}", kept)
    highest = max(r for _, r in kept)
    if highest < n:
        return Decision(highest, rec, f"down: {how}; at most {highest} recommended throughout the last {span} s", kept)
    if rec < n:
        return Decision(n, rec, f"hold: {how}; {highest} recommended within the last {span} s", kept)
    return Decision(n, rec, f"hold: {how}", kept)


def follow(settings: Mapping, own: Decision, leader: int, leader_desired: int) -> Decision:
    """Pure: a follower host's decision (ray's in-cluster hosts, mlctl/runtime/ray/loadshare.py): the leading host's
    count, kept in the range, but never below the follower's own `decide` on the same summed load (so a follower
    that sees a scale-up first, or a request at zero instances, does not wait a poll for the leader). Carried out
    by `autoscaler.Autoscaler.tick`."""
    lo, hi = settings["min_instances"], settings["max_instances"]
    theirs = max(lo, min(hi, leader_desired))
    if own.desired > theirs:
        return own
    return Decision(theirs, own.recommended, f"following host {leader} ({theirs}); {own.reason}", own.window)
