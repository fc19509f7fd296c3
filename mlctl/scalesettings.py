"""A deployment's autoscaling range (`scale_settings.type: target_utilization`) as the loader, the planner,
`show` and the endpoint host read it: Azure's fields with their defaults, plus mlctl's `stabilization_window`.

Everything here is pure. The endpoint host carries the range out (`runtime/host/autoscaler.py`); the decision
each poll makes is `runtime/host/scalepolicy.py`'s.
"""

from __future__ import annotations

from typing import Any, Mapping

AUTOSCALED = "target_utilization"

# Azure's defaults for a Kubernetes deployment's target_utilization; stabilization_window is Kubernetes HPA's
# scale-down stabilization (5 minutes), an mlctl extension.
DEFAULTS = {
    "min_instances": 1,
    "max_instances": 1,
    "target_utilization_percentage": 70,
    "polling_interval": 1,
    "stabilization_window": 300,
}


def autoscale_of(scale_settings: Mapping[str, Any] | None) -> dict | None:
    """The normalized autoscaling settings of a YAML `scale_settings` block (every field, defaults filled),
    or None when the count is fixed (`type: default`, no type, no block). The 2021 form's `scale_type: auto`
    is `type: target_utilization`."""
    if not scale_settings or not (
        scale_settings.get("type") == AUTOSCALED or str(scale_settings.get("scale_type", "")).lower() == "auto"
    ):
        return None
    return {"type": AUTOSCALED, **{k: scale_settings.get(k, v) for k, v in DEFAULTS.items()}}


def range_errors(settings: Mapping[str, Any] | None) -> list[tuple[str, str, str]]:
    """[(field, what is wrong, what to do)] of normalized settings (the schema checked each field alone)."""
    if not settings:
        return []
    lo, hi = settings["min_instances"], settings["max_instances"]
    if lo > hi:
        return [
            (
                "min_instances",
                f"min_instances {lo} is above max_instances {hi}",
                "Make min_instances at most max_instances (the range is [min_instances, max_instances]).",
            )
        ]
    return []


def settings_of(attributes: Mapping[str, Any]) -> dict | None:
    """A deployment's autoscaling settings from its attributes (None: a fixed count)."""
    settings = attributes.get("scale_settings")
    return dict(settings) if isinstance(settings, Mapping) and settings.get("type") == AUTOSCALED else None


def is_autoscaled(attributes: Mapping[str, Any]) -> bool:
    return settings_of(attributes) is not None


def instance_range(attributes: Mapping[str, Any]) -> tuple[int, int] | None:
    """[lo, hi] of instance counts that are no drift: the autoscaling range, else [instance_count] alone
    (None when the count is unknown)."""
    settings = settings_of(attributes)
    if settings is not None:
        return settings["min_instances"], settings["max_instances"]
    count = attributes.get("instance_count")
    return (count, count) if isinstance(count, int) else None


def initial_count(settings: Mapping[str, Any]) -> int:
    """How many instances an autoscaled deployment starts with: its minimum, and at least one (apply checks
    that the deployment starts and passes readiness, even when it may scale to zero later)."""
    return max(1, settings["min_instances"])


def clamp(count: int, settings: Mapping[str, Any]) -> int:
    """`count` brought into the range."""
    return max(settings["min_instances"], min(settings["max_instances"], count))


def describe_range(attributes: Mapping[str, Any]) -> str:
    """`1..4` for an autoscaled deployment, its `instance_count` for a fixed one (apply's progress lines)."""
    settings = settings_of(attributes)
    if settings is None:
        return str(attributes.get("instance_count"))
    return f"{settings['min_instances']}..{settings['max_instances']}"
