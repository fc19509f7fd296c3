"""plan(): actions, reasons, order, drift, unknowns, changed files, immutability (literal expectations)."""

from dataclasses import replace

import pytest

from builders import (
    A,
    Cfg,
    by_address,
    deployment,
    endpoint,
    environment,
    image,
    model,
    stack,
    state_of,
    traffic,
    with_,
)
from mlctl.reconciler.plans import Action, Reason, plan
from mlctl.resources import Source
from mlctl.state.statefile import State


def rows(p):
    return [(str(c.address), c.action.value, c.reason.value if c.reason else None) for c in p.changes]


def test_first_plan_creates_everything_in_wave_order():
    p = plan(Cfg(tuple(stack())), State(), None)
    assert rows(p) == [
        ("model.m", "+", "new"),
        ("environment.env", "+", "new"),
        ("image.env", "+", "new"),
        ("endpoint.e", "+", "new"),
        ("deployment.e.blue", "+", "new"),
        ("traffic.e", "+", "new"),
    ]
    ep = p.changes[3]
    assert ep.before is None and ep.after["auth_mode"] == "key"
    assert ep.after_unknown == ("port", "scoring_uri")
    assert p.summary() == {"add": 6, "change": 0, "replace": 0, "destroy": 0, "unchanged": 0}
    assert p.has_changes() and not p.has_errors()


def test_same_config_is_no_change():
    rs = stack()
    p = plan(Cfg(tuple(rs)), state_of(rs), None)
    assert {c.action for c in p.changes} == {Action.NOOP}
    assert not p.has_changes()
    assert (p.lineage, p.serial) == ("11111111-2222-4333-8444-555555555555", 4)


def test_checkout_elsewhere_is_no_change():
    rs = stack()
    moved = [
        with_(r, path="/elsewhere/model.pkl")
        if r.kind.value == "model"
        else with_(r, code="/elsewhere/code")
        if r.kind.value == "deployment"
        else with_(r, conda_file="/elsewhere/conda.yml")
        if r.kind.value == "environment"
        else r
        for r in rs
    ]
    assert not plan(Cfg(tuple(moved)), state_of(rs), None).has_changes()


def test_scale_is_an_update_in_place():
    p = plan(Cfg(tuple(stack(instances=3))), state_of(stack()), None)
    [c] = [c for c in p.changes if c.action is not Action.NOOP]
    assert (str(c.address), c.action, c.reason) == ("deployment.e.blue", Action.UPDATE, Reason.CONFIG_CHANGED)
    assert c.diff == (("change", "instance_count", 1, 3),)
    assert c.after_unknown == ()


def test_request_settings_change_replaces_create_before_destroy():
    new = stack()
    new[4] = with_(new[4], request_settings={**new[4].attributes["request_settings"], "request_timeout_ms": 9000})
    p = plan(Cfg(tuple(new)), state_of(stack()), None)
    c = p.changes[4]
    assert (c.action, c.reason) == (Action.REPLACE, Reason.CONFIG_CHANGED)
    assert c.diff == (("change", "request_settings.request_timeout_ms", 5000, 9000),)
    assert c.action.json_actions == ["create", "delete"]


def test_code_file_edited_is_artifact_changed_and_names_the_file():
    new = stack(code_digest="sha256:k2")
    p = plan(Cfg(tuple(new)), state_of(stack()), None)
    c = p.changes[4]
    assert (c.action, c.reason) == (Action.REPLACE, Reason.ARTIFACT_CHANGED)
    assert c.diff == (("change", "code_digest", "sha256:k1", "sha256:k2"),)
    assert c.changed_files == {"added": (), "changed": ("code/score.py",), "removed": ()}


def test_new_model_version_replaces_model_and_deployment_upstream():
    old = stack()
    new = [
        model(version="2", content="sha256:c2"),
        environment(),
        image(),
        endpoint(),
        deployment(model_version="2", model_digest="sha256:c2"),
        traffic(),
    ]
    p = plan(Cfg(tuple(new)), state_of(old), None)
    assert rows(p) == [
        ("model.m", "+/-", "config changed"),
        ("environment.env", ".", None),
        ("image.env", ".", None),
        ("endpoint.e", ".", None),
        ("deployment.e.blue", "+/-", "upstream replaced"),
        ("traffic.e", ".", None),
    ]
    assert p.changes[0].diff == (
        ("change", "content_digest", "sha256:c1", "sha256:c2"),
        ("change", "version", "1", "2"),
    )
    assert p.changes[4].changed_files == {"added": (), "changed": ("model/model.pkl",), "removed": ()}
    assert p.summary() == {"add": 0, "change": 0, "replace": 2, "destroy": 0, "unchanged": 4}


def test_same_version_new_content_is_an_error_saying_what_to_do():
    new = stack()
    new[0] = replace(model(content="sha256:c9"), source=Source("model.yml", 1, {"name": 2, "version": 3}))
    p = plan(Cfg(tuple(new)), state_of(stack()), None)
    [d] = p.diagnostics
    assert d.summary == "model m:1 is already registered with other content"
    assert "bump `version`" in d.detail and "leave `version` out" in d.detail
    assert (d.file, d.line, d.field, d.address, d.severity) == ("model.yml", 3, "version", "model.m", "error")
    assert p.has_errors()


def test_same_environment_version_new_packages_is_an_error_too():
    new = stack()
    new[1] = replace(
        environment(pip=("scikit-learn==1.6",), spec="sha256:s2"), source=Source("env.yml", 1, {"version": 4})
    )
    new[2] = image(pip=("scikit-learn==1.6",), spec="sha256:s2")
    p = plan(Cfg(tuple(new)), state_of(stack()), None)
    [d] = [d for d in p.diagnostics if d.severity == "error"]
    assert (d.summary, d.file, d.line, d.field) == (
        "environment env:1 is already registered with other content",
        "env.yml",
        4,
        "version",
    )
    # a new version of it is a new registration: no error, the image and the deployment follow
    new[1] = with_(new[1], version="2")
    p = plan(Cfg(tuple(new)), state_of(stack()), None)
    assert not p.has_errors()
    assert rows(p)[1:3] == [("environment.env", "+/-", "config changed"), ("image.env", "+/-", "upstream replaced")]


def test_endpoint_port_change_destroys_first_and_its_deployments_follow():
    new = stack()
    new[3] = endpoint(port=8100)
    p = plan(Cfg(tuple(new)), state_of(stack()), None)
    assert rows(p)[3:] == [
        ("endpoint.e", "-/+", "config changed"),
        ("deployment.e.blue", "-/+", "upstream replaced"),
        ("traffic.e", "~", "upstream replaced"),
    ]
    assert p.changes[3].after_unknown == ()
    assert p.changes[3].action.json_actions == ["delete", "create"]


def test_auth_mode_change_is_an_update():
    new = stack()
    new[3] = endpoint(auth="aml_token")
    p = plan(Cfg(tuple(new)), state_of(stack()), None)
    assert rows(p)[3] == ("endpoint.e", "~", "config changed")


def test_traffic_shift_and_removed_deployment_is_deleted_after_traffic_moves():
    old = [
        model(),
        environment(),
        image(),
        endpoint(),
        deployment(name="blue"),
        deployment(name="green"),
        traffic(weights={"blue": 90, "green": 10}, deployments=("blue", "green")),
    ]
    new = [
        model(),
        environment(),
        image(),
        endpoint(),
        deployment(name="green"),
        traffic(weights={"green": 100}, deployments=("green",)),
    ]
    p = plan(Cfg(tuple(new)), state_of(old), None)
    assert [r for r in rows(p) if r[1] != "."] == [
        ("traffic.e", "~", "config changed"),
        ("deployment.e.blue", "-", "not in configuration"),
    ]
    assert p.changes[-2].diff == (("remove", "traffic.blue", 90, None), ("change", "traffic.green", 10, 100))
    assert p.changes[-1].before["name"] == "blue" and p.changes[-1].after is None


def test_endpoint_removed_deletes_traffic_then_deployment_then_endpoint():
    old = stack()
    new = [model(), environment(), image()]
    p = plan(Cfg(tuple(new)), state_of(old), None)
    assert rows(p)[3:] == [
        ("traffic.e", "-", "not in configuration"),
        ("deployment.e.blue", "-", "not in configuration"),
        ("endpoint.e", "-", "not in configuration"),
    ]
    assert [str(c.address) for c in p.endpoint_deletions()] == ["endpoint.e"]


def test_destroy_deletes_everything_backwards():
    rs = stack()
    p = plan(Cfg(tuple(rs)), state_of(rs), None, destroy=True)
    assert rows(p) == [
        ("traffic.e", "-", "destroy requested"),
        ("deployment.e.blue", "-", "destroy requested"),
        ("endpoint.e", "-", "destroy requested"),
        ("image.env", "-", "destroy requested"),
        ("environment.env", "-", "destroy requested"),
        ("model.m", "-", "destroy requested"),
    ]
    assert p.destroy and p.summary()["destroy"] == 6


def test_replace_requested():
    rs = stack()
    p = plan(Cfg(tuple(rs)), state_of(rs), None, replace=["deployment.e.blue"])
    assert [r for r in rows(p) if r[1] != "."] == [("deployment.e.blue", "+/-", "requested")]


@pytest.mark.parametrize(
    "address, message",
    [
        ("deployment.e.nope", "--replace deployment.e.nope: no such resource in the configuration"),
        (
            "deployment.e",
            "--replace deployment.e: 'deployment.e' is not a resource address; expected deployment.ENDPOINT.NAME",
        ),
        ("traffic.e", "--replace traffic.e: traffic is always updated in place, never replaced"),
    ],
)
def test_replace_of_a_bad_address_is_an_error(address, message):
    rs = stack()
    p = plan(Cfg(tuple(rs)), state_of(rs), None, replace=[address])
    assert [d.summary for d in p.diagnostics] == [message]


@pytest.mark.parametrize("status", ["failed"])
def test_failed_is_replaced_and_dependents_follow(status):
    rs = stack()
    p = plan(Cfg(tuple(rs)), state_of(rs, **{"image.env": {"status": status}}), None)
    assert [r for r in rows(p) if r[1] != "."] == [
        ("image.env", "+/-", "failed earlier"),
        ("deployment.e.blue", "+/-", "upstream replaced"),
    ]


def test_drift_from_observed():
    rs = stack(instances=2)
    prior = state_of(rs)
    observed = {
        "endpoint.e": {"alive": True, "port": 5001},
        "deployment.e.blue": {
            "ready_instances": 1,
            "served_model_digest": "sha256:c1",
            "served_code_digest": "sha256:k1",
        },
        "traffic.e": {"traffic": {"blue": 100}, "mirror_traffic": {}},
    }
    p = plan(Cfg(tuple(rs)), prior, by_address(observed))
    [c] = [c for c in p.changes if c.action is not Action.NOOP]
    assert (str(c.address), c.action, c.reason) == ("deployment.e.blue", Action.UPDATE, Reason.DRIFT)
    assert c.diff == (("drift", "ready_instances", 1, 2),)


def test_drift_dead_endpoint_and_stale_served_code():
    rs = stack()
    observed = {
        "endpoint.e": {"alive": False, "port": 5001},
        "deployment.e.blue": {"ready_instances": 1, "served_code_digest": "sha256:old"},
    }
    p = plan(Cfg(tuple(rs)), state_of(rs), by_address(observed))
    assert rows(p)[3:] == [
        ("endpoint.e", "-/+", "drift"),
        ("deployment.e.blue", "-/+", "upstream replaced"),
        ("traffic.e", "~", "upstream replaced"),
    ]


def test_gone_resource_is_created_again():
    rs = stack()
    p = plan(Cfg(tuple(rs)), state_of(rs), by_address({"traffic.e": None}))
    assert [r for r in rows(p) if r[1] != "."] == [("traffic.e", "+", "drift")]


def test_no_refresh_uses_recorded_observed():
    rs = stack(instances=2)
    prior = state_of(rs, **{"deployment.e.blue": {"observed": {"ready_instances": 0}}})
    p = plan(Cfg(tuple(rs)), prior, None)
    assert [r for r in rows(p) if r[1] != "."] == [("deployment.e.blue", "~", "drift")]


def test_ignored_and_inputs_and_pending_carry_through():
    rs = stack()
    prior = state_of(rs)
    prior.pending = {"address": "deployment.e.blue", "action": "replace", "started_at": "T", "pid": 1}
    cfg = Cfg(tuple(rs), inputs={"/src/endpoint.yml": "sha256:x"}, ignored={"deployment.e.blue": ("instance_type",)})
    p = plan(cfg, prior, None)
    assert p.ignored == {"deployment.e.blue": ("instance_type",)}
    assert p.inputs == {"/src/endpoint.yml": "sha256:x"}
    [d] = p.diagnostics
    assert d.severity == "warning" and "interrupted during replace of deployment.e.blue" in d.summary


def test_cycle_is_an_error():
    from dataclasses import replace

    rs = stack()
    rs[3] = replace(rs[3], depends_on=(A("traffic.e"),))
    p = plan(Cfg(tuple(rs)), State(), None)
    assert [d.summary for d in p.diagnostics] == [
        "dependency cycle: deployment.e.blue -> traffic.e -> endpoint.e -> deployment.e.blue",
        "dependency cycle: endpoint.e -> traffic.e -> endpoint.e",
    ]
    assert p.has_errors()


def test_drift_plan_shows_only_what_differs_from_what_was_applied():
    from mlctl.reconciler.plans import drift_plan

    rs = stack(instances=2)
    prior = state_of(rs, **{"image.env": {"status": "failed"}})
    observed = {"endpoint.e": {"alive": True}, "deployment.e.blue": {"ready_instances": 1}, "traffic.e": None}
    p = drift_plan(prior, by_address(observed))
    assert p.refresh_only
    assert [r for r in rows(p) if r[1] != "."] == [("deployment.e.blue", "~", "drift"), ("traffic.e", "+", "drift")]
    assert not drift_plan(prior, by_address({"deployment.e.blue": {"ready_instances": 2}})).has_changes()
    from mlctl.reconciler.render_markdown import render_markdown

    assert render_markdown(p).startswith(
        "### mlctl plan (refresh-only: drift)\n\n**Drift: 2 resources changed "
        "outside of mlctl; `mlctl apply` restores what was applied.**"
    )


def test_a_host_serving_another_certificate_is_drift_reloaded_in_place():
    rs = [with_(r, certificate_digest="sha256:applied") if str(r.address) == "endpoint.e" else r for r in stack()]
    observed = {"endpoint.e": {"alive": True, "port": 5001, "certificate_digest": "sha256:other"}}
    p = plan(Cfg(tuple(rs)), state_of(rs), by_address(observed))
    [c] = [c for c in p.changes if c.action is not Action.NOOP]
    assert (str(c.address), c.action, c.reason) == ("endpoint.e", Action.UPDATE, Reason.DRIFT)
    assert c.diff == (("drift", "certificate_digest", "sha256:other", "sha256:applied"),)
    # a host that reports no certificate (plain HTTP, self-signed) is no drift
    quiet = {"endpoint.e": {"alive": True, "port": 5001, "certificate_digest": None}}
    assert all(c.action is Action.NOOP for c in plan(Cfg(tuple(rs)), state_of(rs), by_address(quiet)).changes)
