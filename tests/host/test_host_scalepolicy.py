"""The autoscaler's pure decision (HPA's rule), the range of a deployment's attributes and the capacity check,
with literal expectations."""

from __future__ import annotations

import pytest

from mlctl import scalesettings
from mlctl.runtime.host.capacity import MIB, refusal
from mlctl.runtime.host.scalepolicy import Observation, decide, recommend

S = {"min_instances": 1, "max_instances": 4, "target_utilization_percentage": 50, "stabilization_window": 10}


def obs(at, count, utilization, waiting=0):
    return Observation(at, count, utilization, waiting)


@pytest.mark.parametrize(
    "count, utilization, want",
    [
        (1, 50, 1),  # at the target
        (1, 54, 1),  # within HPA's 10 % tolerance
        (1, 56, 2),  # ceil(1 x 56 / 50)
        (2, 150, 4),  # ceil(2 x 150 / 50) = 6, kept at the maximum
        (4, 10, 1),  # ceil(4 x 10 / 50)
        (3, 0, 1),  # idle: the minimum
    ],
)
def test_recommend_holds_the_target_within_the_range(count, utilization, want):
    assert recommend(S, obs(0, count, utilization))[0] == want


def test_scale_up_is_at_once_and_down_waits_for_the_whole_window():
    window = ((0.0, 1),)  # seeded with the count the autoscaler started at
    d = decide(S, obs(1, 1, 200), window)
    assert (d.desired, d.reason.startswith("up at once")) == (4, True)
    window = d.window
    for t in range(2, 12):  # idle for 10 s after the scale-up: the 4 is still in the window
        d = decide(S, obs(t, 4, 0), window)
        window = d.window
        assert d.desired == 4, (t, d.reason)
    d = decide(S, obs(12, 4, 0), window)  # the recommendation of 4 (at t=1) left the window
    assert d.desired == 1 and d.reason.startswith("down:") and "throughout the last 10 s" in d.reason


def test_down_goes_to_the_highest_recommendation_of_the_window():
    window = ((0.0, 4), (5.0, 3), (8.0, 2))
    d = decide(S, obs(12, 4, 10), window)  # (0, 4) left the window; 3 is the highest left
    assert d.desired == 3


def test_scale_to_zero_and_a_waiting_request_wakes_it():
    s = {**S, "min_instances": 0}
    assert decide(s, obs(100, 1, 0), ((0.0, 1),)).desired == 0  # idle throughout the window
    woken = decide(s, obs(101, 0, None, waiting=1), ())
    assert woken.desired == 1 and "scaled to zero" in woken.reason
    assert decide(s, obs(101, 0, None), ()).desired == 0  # nothing waits: stays at zero


def test_a_count_outside_a_new_range_is_brought_into_it_at_once():
    assert decide({**S, "max_instances": 2}, obs(1, 4, 50), ((0.0, 4),)).desired == 2
    assert decide({**S, "min_instances": 3}, obs(1, 1, 50), ((0.0, 1),)).desired == 3


def test_capacity_refuses_what_does_not_fit():
    assert refusal(2, 300 * MIB, 1000 * MIB, None, 0, 2) is None
    assert "need about 1200 MiB" in refusal(4, 300 * MIB, 1000 * MIB, None, 0, 2)
    assert "reserve 2 CPU(s)" in refusal(2, None, None, 1.0, 1.0, 2)
    assert refusal(2, None, None, None, 5.0, 2) is None  # nothing reserved by this deployment: CPU is not held


def test_range_of_attributes():
    auto = {"instance_count": 1, "scale_settings": scalesettings.autoscale_of({"type": "target_utilization"})}
    assert scalesettings.instance_range(auto) == (1, 1)
    auto["scale_settings"].update(min_instances=0, max_instances=4)
    assert scalesettings.instance_range(auto) == (0, 4) and scalesettings.initial_count(auto["scale_settings"]) == 1
    assert scalesettings.instance_range({"instance_count": 3}) == (3, 3)
    assert scalesettings.autoscale_of({"type": "default"}) is None
    assert scalesettings.range_errors({**auto["scale_settings"], "min_instances": 5})[0][0] == "min_instances"


def _deployment(name, **attributes):
    from mlctl.resources import Address, Kind, Resource

    return Resource(Address(Kind.DEPLOYMENT, f"e.{name}"), {"instance_count": 1, **attributes}, "d")


def test_plan_warns_when_the_maximums_together_exceed_the_machine():
    from mlctl.runtime.kit.capacitynotes import capacity_warnings

    auto = {"scale_settings": scalesettings.autoscale_of({"type": "target_utilization", "max_instances": 3})}
    small = {"resources": {"requests": {"cpu": 0.25, "memory": 100 * MIB}, "limits": {}}}
    assert capacity_warnings([_deployment("a", **auto, **small), _deployment("b")], 2, 2**30) == []
    [cpu] = capacity_warnings([_deployment("a", **auto), _deployment("b")], 2, 2**30)  # 3 x 1 + 1 x 1 CPUs
    assert cpu.severity == "warning" and "need 4 CPU(s) and this machine has 2" in cpu.summary
    big = {"resources": {"requests": {"cpu": 0.1, "memory": 2**30}, "limits": {}}}
    [memory] = capacity_warnings([_deployment("a", **auto, **big)], 2, 2**30)
    assert "reserve 3Gi of memory and this machine has 1Gi" in memory.summary, memory.summary
    assert capacity_warnings([_deployment("a", instance_count=9)], 2, 2**30) == []  # nothing autoscales


def test_drift_under_autoscaling_is_a_count_outside_the_range_or_too_few_ready():
    from mlctl.observed import DeploymentObserved
    from mlctl.reconciler.rules import DRIFT
    from mlctl.resources import Kind

    rules = {r.key: r for r in DRIFT[Kind.DEPLOYMENT]}
    count, ready = rules["instance_count"], rules["ready_instances"]
    settings = scalesettings.autoscale_of({"type": "target_utilization", "min_instances": 2, "max_instances": 4})
    auto = {"instance_count": 2, "scale_settings": settings}
    for n, drifted in ((1, True), (2, False), (3, False), (4, False), (5, True)):
        assert count.drifted(DeploymentObserved(instance_count=n, ready_instances=n), auto) is drifted, n
    assert ready.drifted(DeploymentObserved(instance_count=3, ready_instances=2), auto) is False
    assert ready.drifted(DeploymentObserved(instance_count=3, ready_instances=1), auto) is True
    assert (count.wanted(auto), ready.wanted(auto)) == ("2..4", "at least 2")
    fixed = {"instance_count": 3}  # as before: the count itself
    assert count.drifted(DeploymentObserved(instance_count=4), fixed) and not count.drifted(
        DeploymentObserved(instance_count=3), fixed
    )
    assert ready.drifted(DeploymentObserved(ready_instances=2), fixed) and count.wanted(fixed) == 3
