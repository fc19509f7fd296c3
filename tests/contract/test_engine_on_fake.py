"""Apply and refresh on the fake runtime: the orders given are exactly the plan's, intents and results
are written around each, a failure at any order leaves a true state that the next apply continues
from, an interrupted apply continues, drift is read and restored, and a runtime change moves
resources between runtimes."""

from __future__ import annotations

import json

import pytest
from contract_harness import Harness
from fake_runtime import FakeWorld

from mlctl.errors import MlctlError
from mlctl.reconciler import hooks as H
from mlctl.reconciler.actions import Action, Reason
from mlctl.reconciler.apply import ApplyFailed
from mlctl.reconciler.operations import apply_project, make_plan
from mlctl.runtime import registry
from mlctl.runtime.contract import DriverError, Order
from mlctl.state.statefile import read_state
from mlctl.resources import Address


@pytest.fixture
def fake(tmp_path, world):
    h = Harness(tmp_path / "proj", "fake")
    h.world = world
    return h


def planned(h, **kw):
    _, _, p = make_plan(h.project, **kw)
    return [(str(c.address), c.order.value) for c in p.changes if c.order is not None]


def test_apply_gives_exactly_the_planned_orders_with_intent_and_result_around_each(fake):
    fake.write(blue={"count": 1})
    expected = planned(fake)
    seen = []

    def listener(point, info):
        if point in (H.INTENT_WRITTEN, H.RESULT_WRITTEN):
            doc = json.loads(fake.project.state_path.read_text())
            seen.append((point, info["address"], doc["pending"], info["address"] in doc["resources"]))

    apply_project(fake.project, hooks=H.Hooks(listener))
    assert fake.world.calls == expected
    assert [a for a, _ in expected] == ["model.ctr-blue-model", "endpoint.ctr", "deployment.ctr.blue", "traffic.ctr"]
    for address, order in expected:
        intent = [s for s in seen if s[0] == H.INTENT_WRITTEN and s[1] == address][0]
        result = [s for s in seen if s[0] == H.RESULT_WRITTEN and s[1] == address][0]
        assert intent[2]["address"] == address and intent[2]["order"] == order and intent[3] is False
        assert result[2] is None and result[3] is True


SCENARIOS = {  # an order, and the config edit after a first apply that makes the plan give it
    "scale": ("deployment.ctr.blue", lambda h: h.write(blue={"count": 2})),
    "roll": ("deployment.ctr.blue", lambda h: h.write(blue={"count": 1, "concurrency": 4})),
    "update": ("traffic.ctr", lambda h: h.split.write({"blue": 50, "green": 50}, {"blue": {}, "green": {}})),
    "delete": ("deployment.ctr.green", lambda h: h.write(blue={"count": 1})),
    "create": ("deployment.ctr.green", lambda h: h.write(blue={"count": 1}, green={"count": 1})),
}


@pytest.mark.parametrize("order", sorted(SCENARIOS))
def test_a_failure_at_any_order_is_recorded_and_the_next_apply_continues(fake, order):
    address, edit = SCENARIOS[order]
    fake.write(blue={"count": 1}, **({"green": {"count": 1}} if order in ("update", "delete") else {}))
    if order == "update":
        fake.split.write({"blue": 100}, {"blue": {}, "green": {}})
    apply_project(fake.project)
    edit(fake)
    assert (address, order) in planned(fake)
    before = dict(read_state(fake.project.state_path).resources)
    fake.world.fail[(address, order)] = DriverError(f"{order} failed on purpose", "", "the tail")
    fake.world.calls.clear()
    with pytest.raises(ApplyFailed) as e:
        apply_project(fake.project)
    assert e.value.address == address and e.value.log_tail == "the tail"
    state = read_state(fake.project.state_path)
    assert state.pending is None
    if order == "delete":
        assert state.resources[Address.parse(address)].status == "ready"  # still recorded: it still runs
    elif order == "roll":  # the old version still serves: it stays the record, the failed one is noted
        recorded = state.resources[Address.parse(address)]
        assert recorded.status == "ready" and recorded.digest == before[Address.parse(address)].digest
        assert recorded.failed_roll and recorded.failed_roll != recorded.digest
    else:
        assert state.resources[Address.parse(address)].status == "failed"
    later = [a for a, _ in planned(fake)]
    assert later[0] == address  # the next plan starts again there
    if address in before and order != "delete":
        assert state.resources[Address.parse(address)].observed == before[Address.parse(address)].observed
    fake.world.calls.clear()
    _, state = apply_project(fake.project)
    assert fake.world.calls[0][0] == address
    assert all(rs.status == "ready" for rs in state.resources.values())
    assert not planned(fake)


def test_recreate_failure_then_continue(fake):
    fake.write(blue={"count": 1})
    apply_project(fake.project)
    fake.world.endpoints["ctr"]["alive"] = False  # the host died: drift, recreated -/+
    assert ("endpoint.ctr", "recreate") in planned(fake)
    fake.world.fail[("endpoint.ctr", "recreate")] = DriverError("no port")
    with pytest.raises(ApplyFailed):
        apply_project(fake.project)
    _, state = apply_project(fake.project)
    assert fake.world.endpoints["ctr"]["alive"] and state.resources[Address.parse("endpoint.ctr")].status == "ready"


def test_an_interrupted_apply_continues_from_its_intent(fake):
    fake.write(blue={"count": 1})
    fake.world.fail[("deployment.ctr.blue", "create")] = KeyboardInterrupt()
    events = []
    with pytest.raises(KeyboardInterrupt):
        apply_project(fake.project)
    state = read_state(fake.project.state_path)
    assert state.pending["address"] == "deployment.ctr.blue" and "deployment.ctr.blue" not in state.resources
    _, state = apply_project(fake.project, hooks=H.Hooks(lambda point, info: events.append(point)))
    assert "pending_found" in events and state.pending is None
    assert fake.world.deployments[("ctr", "blue")]["ready"] == 1


def test_drift_is_read_and_restored(fake):
    fake.write(blue={"count": 2})
    _, state = apply_project(fake.project)
    port = state.resources[Address.parse("endpoint.ctr")].observed.port
    fake.world.deployments[("ctr", "blue")]["ready"] = 1
    fake.world.traffic["ctr"] = ({}, {})
    _, _, drift = make_plan(fake.project, refresh_only=True)
    got = {str(c.address): (c.action, c.reason, c.order) for c in drift.changes if c.action is not Action.NOOP}
    assert got == {
        "deployment.ctr.blue": (Action.UPDATE, Reason.DRIFT, Order.UPDATE),
        "traffic.ctr": (Action.UPDATE, Reason.DRIFT, Order.UPDATE),
    }
    apply_project(fake.project)
    assert fake.world.deployments[("ctr", "blue")]["ready"] == 2 and fake.world.traffic["ctr"][0] == {"blue": 100}
    fake.world.endpoints["ctr"]["alive"] = False
    _, _, drift = make_plan(fake.project, refresh_only=True)
    assert [(str(c.address), c.order) for c in drift.changes if c.order][:1] == [("endpoint.ctr", Order.RECREATE)]
    _, state = apply_project(fake.project)
    assert state.resources[Address.parse("endpoint.ctr")].observed.port == port
    assert not planned(fake)


def test_a_runtime_change_moves_runtime_bound_resources_and_needs_allow_destroy(fake, tmp_path):
    other = FakeWorld()
    other.next_port = 52000
    registry.register("other", other.runtime("other"))
    try:
        fake.write(blue={"count": 1})
        _, state = apply_project(fake.project)
        port = state.resources[Address.parse("endpoint.ctr")].observed.port
        moved = Harness.__new__(Harness)
        moved.__dict__.update(fake.__dict__)
        from mlctl.projectpaths import Project

        moved.project = Project.at(fake.project.root, runtime_override="other")
        _, _, p = make_plan(moved.project)
        got = {str(c.address): (c.action, c.reason) for c in p.changes}
        assert got["endpoint.ctr"] == (Action.RECREATE, Reason.RUNTIME_CHANGED)
        assert got["deployment.ctr.blue"] == (Action.RECREATE, Reason.RUNTIME_CHANGED)
        assert got["traffic.ctr"] == (Action.UPDATE, Reason.RUNTIME_CHANGED)
        assert got["model.ctr-blue-model"] == (Action.NOOP, None)
        with pytest.raises(MlctlError, match="on the other runtime"):
            apply_project(moved.project)
        assert other.calls == []
        _, state = apply_project(moved.project, allow_destroy=True)
        assert fake.world.deployments == {} and not fake.world.endpoints["ctr"]["alive"]
        assert other.endpoints["ctr"]["port"] == port and ("ctr", "blue") in other.deployments
        assert {str(a): rs.runtime for a, rs in state.resources.items()} == {
            "model.ctr-blue-model": "fake",
            "endpoint.ctr": "other",
            "deployment.ctr.blue": "other",
            "traffic.ctr": "other",
        }
        _, _, again = make_plan(moved.project)
        assert not again.has_changes()
    finally:
        registry.unregister("other")
