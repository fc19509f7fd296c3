"""Traffic routing decisions (pure: no I/O): weighted choice, mirror sampling, traffic validation.

The gateway (`gateway.py`) carries them out. Both pickers are deterministic, so a 70/30 split is
exact over every 10 requests and a 10 % mirror copies exactly every tenth request.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping


class WeightedPicker:
    """Smooth weighted round robin (as nginx): picks spread evenly, exact proportions per cycle."""

    def __init__(self, weights: Mapping[str, int]):
        self.weights = {name: int(w) for name, w in sorted(weights.items()) if int(w) > 0}
        self._current = {name: 0 for name in self.weights}
        self._total = sum(self.weights.values())
        self._only = next(iter(self.weights), None)

    def __bool__(self) -> bool:
        return self._total > 0

    def pick(self) -> str | None:
        """The next deployment, or None when no deployment has weight."""
        if not self._total:
            return None
        if len(self.weights) == 1:  # one deployment takes all the traffic
            return self._only
        best = None
        for name, weight in self.weights.items():
            self._current[name] += weight
            if best is None or self._current[name] > self._current[best]:
                best = name
        self._current[best] -= self._total
        return best


class MirrorSampler:
    """Says yes to exactly `percent` of calls, evenly spaced (an accumulator, no randomness)."""

    def __init__(self, mirror: Mapping[str, int]):
        items = [(n, int(p)) for n, p in mirror.items() if int(p) > 0]
        self.target, self.percent = items[0] if items else (None, 0)
        self._acc = 0

    def sample(self) -> str | None:
        """The deployment to copy this request to, or None."""
        if not self.percent:
            return None
        self._acc += self.percent
        if self._acc >= 100:
            self._acc -= 100
            return self.target
        return None


def traffic_errors(traffic: Mapping[str, int], mirror: Mapping[str, int], deployments: Collection[str]) -> list[str]:
    """Pure: what is wrong with a traffic/mirror setting for these deployments (empty = fine)."""
    errors = []
    for label, table in (("traffic", traffic), ("mirror_traffic", mirror)):
        for name, percent in table.items():
            if name not in deployments:
                errors.append(f"{label} names deployment {name!r}, which this endpoint does not have")
            if not isinstance(percent, int) or isinstance(percent, bool) or not 0 <= percent <= 100:
                errors.append(f"{label}[{name!r}] must be an integer percent 0..100, got {percent!r}")
    if not errors:
        total = sum(traffic.values())
        if total not in (0, 100):
            errors.append(f"traffic must total 0 or 100, got {total}")
        live_mirror = {n: p for n, p in mirror.items() if p > 0}
        if len(live_mirror) > 1:
            errors.append(f"mirror_traffic may name at most one deployment, got {sorted(live_mirror)}")
        for name, percent in live_mirror.items():
            if percent > 50:
                errors.append(f"mirror_traffic[{name!r}] is {percent}; at most 50 is allowed")
            if traffic.get(name, 0) > 0:
                errors.append(f"deployment {name!r} cannot get live and mirror traffic at once")
    return errors


def has_live_traffic(name: str, traffic: Mapping[str, int], mirror: Mapping[str, int]) -> bool:
    """Pure: does deployment `name` receive weighted or mirrored traffic?"""
    return traffic.get(name, 0) > 0 or mirror.get(name, 0) > 0
