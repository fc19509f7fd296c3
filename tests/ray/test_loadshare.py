"""How an endpoint's in-cluster hosts agree on scaling (mlctl/runtime/ray/loadshare.py, host/scalepolicy.follow): the
lowest-numbered host alive leads, each host hears the sum of the others' in-flight requests, a host whose figures
stop moving is taken for lost (the next one leads: scaling never freezes), and a follower takes the leader's count
but never goes below its own decision on the same sum."""

from __future__ import annotations

from mlctl.runtime.host.scalepolicy import Observation, decide, follow
from mlctl.runtime.ray import loadshare

SETTINGS = {
    "min_instances": 1,
    "max_instances": 4,
    "target_utilization_percentage": 50,
    "polling_interval": 1,
    "stabilization_window": 5,
}


def figures(in_flight: float, desired: int) -> dict:
    return {"blue": {"in_flight": in_flight, "desired": desired, "count": desired}}


def test_the_lowest_alive_host_leads_and_each_hears_the_others_sum():
    published = {0: figures(1.5, 3), 1: figures(2.0, 1), 2: figures(0.5, 1)}
    zero = loadshare.combine(0, published, {1, 2})
    assert zero["blue"] == {"others_in_flight": 2.5, "leader": 0, "leader_desired": None, "hosts": 3}
    one = loadshare.combine(1, published, {0, 2})
    assert one["blue"] == {"others_in_flight": 2.0, "leader": 0, "leader_desired": 3, "hosts": 3}
    # host 0 lost: its figures no longer count, and host 1 leads
    one = loadshare.combine(1, published, {2})
    assert one["blue"] == {"others_in_flight": 0.5, "leader": 1, "leader_desired": None, "hosts": 2}
    two = loadshare.combine(2, published, {1})
    assert two["blue"]["leader"] == 1 and two["blue"]["leader_desired"] == 1


def test_a_leader_without_a_figure_of_the_deployment_leaves_the_follower_deciding_alone():
    published = {0: {}, 1: figures(1.0, 2)}
    assert loadshare.combine(1, published, {0})["blue"]["leader_desired"] is None
    hostile = {0: {"blue": {"in_flight": "x", "desired": True}}, 1: figures(1.0, 2)}
    assert loadshare.combine(1, hostile, {0})["blue"] == {
        "others_in_flight": 0.0,
        "leader": 0,
        "leader_desired": None,
        "hosts": 2,
    }


def test_a_host_whose_figures_stop_moving_is_taken_for_lost_and_back_once_they_move():
    live = loadshare.Liveness()
    assert live.alive({0: "a:1", 1: "b:1"}, 100.0) == {0, 1}
    assert live.alive({0: "a:2", 1: "b:1"}, 100.0 + loadshare.STALE_S - 1) == {0, 1}
    assert live.alive({0: "a:3", 1: "b:1"}, 100.0 + loadshare.STALE_S + 1) == {0}  # host 1 stopped publishing
    assert live.alive({0: "a:4", 1: "c:1"}, 100.0 + loadshare.STALE_S + 2) == {0, 1}  # started again (a new token)
    assert live.alive({1: "c:2"}, 100.0 + loadshare.STALE_S + 3) == {1}  # host 0's figures removed


def test_a_follower_takes_the_leaders_count_but_not_below_its_own_decision():
    window = ((0.0, 1),)
    own = decide(SETTINGS, Observation(1.0, 1, 40.0, 1), window)  # alone it would hold at 1
    assert own.desired == 1
    followed = follow(SETTINGS, own, 0, 3)
    assert followed.desired == 3 and followed.reason.startswith("following host 0 (3)")
    assert follow(SETTINGS, own, 0, 9).desired == 4  # kept in the range
    up = decide(SETTINGS, Observation(1.0, 1, 200.0, 2), window)  # it sees the scale-up first
    assert up.desired == 4 and follow(SETTINGS, up, 0, 1) is up
