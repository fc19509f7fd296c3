"""Rules as data: the order each action becomes, and drift rules that read real observed fields."""

from mlctl.reconciler import rules
from mlctl.reconciler.actions import Action
from mlctl.resources import Kind
from mlctl.runtime.contract import Order


def test_every_drift_rule_reads_a_field_its_kind_reports():
    assert rules.unreadable_drift_rules() == []


def test_a_drift_rule_naming_a_missing_field_is_found(monkeypatch):
    bogus = rules.DriftRule("served_digest", "model_digest", "differs", Action.REPLACE)
    monkeypatch.setitem(rules.DRIFT, Kind.DEPLOYMENT, rules.DRIFT[Kind.DEPLOYMENT] + (bogus,))
    assert rules.unreadable_drift_rules() == ["deployment: served_digest"]


def test_the_order_of_each_action():
    diff_count = (("change", "instance_count", 1, 2),)
    assert [rules.order_for(Kind.DEPLOYMENT, a) for a in Action] == [
        Order.CREATE,
        Order.UPDATE,
        Order.ROLL,
        Order.RECREATE,
        Order.DELETE,
        None,
    ]
    assert rules.order_for(Kind.DEPLOYMENT, Action.UPDATE, diff_count) is Order.SCALE
    assert rules.order_for(Kind.DEPLOYMENT, Action.UPDATE, (("drift", "instance_count", 3, 2),)) is Order.SCALE
    assert rules.order_for(Kind.DEPLOYMENT, Action.UPDATE, (("drift", "ready_instances", 0, 2),)) is Order.UPDATE
    assert rules.order_for(Kind.ENDPOINT, Action.UPDATE, diff_count) is Order.UPDATE  # endpoints do not scale
