"""The plan file format v2: its own document (no attribute values, so no secrets), refused when old,
unknown, truncated or malformed (the file named, never a traceback), written 0600, never through a link."""

import dataclasses
import json
import os
import stat

import jsonschema
import pytest

from builders import Cfg, by_address, environment, stack, state_of
from mlctl.errors import MlctlError
from mlctl.reconciler.planfile import FORMAT, load_plan, save_plan
from mlctl.reconciler.plans import Action, Change, Order, Reason, drift_plan, plan
from mlctl.reconciler.saved_changes import DERIVED, FIELDS
from mlctl.schemas.validate import load_schema
from mlctl.resources import Address

INPUTS = {"/src/endpoint.yml": "sha256:e1", "/src/blue.yml": "sha256:b1"}
SECRETS = {"API_KEY": "s3cret", "DATABASE_URL": "postgres://admin:pa55word@db.internal/x"}
INDEX = "--index-url https://ci:t0ken@pypi.internal/simple"


def save(tmp_path, p, name="tfplan.json"):
    path = tmp_path / name
    save_plan(p, path, root="/src")
    return path


def refused(path, state=None, cfg=None) -> str:
    with pytest.raises(MlctlError) as e:
        load_plan(path, state or state_of([]), cfg or Cfg(()))
    text = str(e.value)
    assert str(path) in text and "Traceback" not in text
    return text


def test_a_plan_file_holds_no_secret_and_apply_gets_the_values_from_the_config(tmp_path):
    rs = stack(environment_variables=SECRETS)
    rs[1] = environment(pip=("scikit-learn==1.5", INDEX))
    cfg = Cfg(tuple(rs), inputs=dict(INPUTS))
    first = save(tmp_path, plan(cfg, state_of([]), None), "first.json")  # everything created
    prior = state_of(stack())
    update = save(tmp_path, plan(cfg, prior, None), "update.json")  # the secrets are the diff
    for path in (first, update):
        data = path.read_bytes()
        assert b"s3cret" not in data and b"pa55word" not in data and b"t0ken" not in data
        jsonschema.validate(json.loads(data), load_schema("planfile"))
    back = load_plan(update, prior, cfg, root="/src")
    blue = next(c for c in back.changes if str(c.address) == "deployment.e.blue")
    assert blue.after["environment_variables"] == SECRETS and blue.resource is rs[4]
    assert ("change", "environment_variables", {}, SECRETS) in blue.diff
    saved = next(c for c in json.loads(update.read_text())["changes"] if c["address"] == "deployment.e.blue")
    assert {"op": "change", "path": "environment_variables"} in saved["diff"]


def test_drift_items_keep_their_observed_values(tmp_path):
    rs = stack(instances=2)
    prior = state_of(rs)
    observed = by_address({"deployment.e.blue": {"ready_instances": 1}})
    p = plan(Cfg(tuple(rs), inputs=dict(INPUTS)), prior, observed)
    assert ("drift", "ready_instances", 1, 2) in p.changes[4].diff
    back = load_plan(save(tmp_path, p), prior, Cfg(tuple(rs), inputs=dict(INPUTS)), root="/src")
    assert back.changes == p.changes and back.refresh_only is False


def test_a_drift_plan_is_bound_to_the_state_alone(tmp_path):
    rs = stack(instances=2)
    prior = state_of(rs)
    p = drift_plan(prior, by_address({"deployment.e.blue": {"ready_instances": 1}}))
    assert [c.action for c in p.changes if c.action is not Action.NOOP] == [Action.UPDATE]
    back = load_plan(save(tmp_path, p), prior, Cfg(tuple(stack()), inputs={"/src/other.yml": "sha256:x"}))
    assert back.refresh_only is True
    assert [(c.address, c.action, c.reason, c.diff) for c in back.changes] == [
        (c.address, c.action, c.reason, c.diff) for c in p.changes
    ]


def test_a_destroy_plan_round_trips(tmp_path):
    rs = stack()
    prior = state_of(rs)
    cfg = Cfg(tuple(rs), inputs=dict(INPUTS))
    p = plan(cfg, prior, None, destroy=True)
    back = load_plan(save(tmp_path, p), prior, cfg, root="/src")
    assert back.destroy and back.changes == p.changes
    assert [c.action for c in back.changes] == [Action.DELETE] * 6


def test_every_change_field_has_its_line():
    """A new `Change` field needs one line in saved_changes.FIELDS (and one in planfile.schema.json)."""
    assert list(FIELDS) == [f.name for f in dataclasses.fields(Change)]


def test_the_schema_knows_every_action_and_reason():
    change = load_schema("planfile")["$defs"]["change"]["properties"]
    assert change["action"]["enum"] == [a.value for a in Action]
    assert change["reason"]["oneOf"][0]["enum"] == [r.value for r in Reason]
    assert change["order"]["oneOf"][0]["enum"] == [o.value for o in Order]
    assert set(change) == {f.key for f in FIELDS.values() if f.key} | set(DERIVED)


V1 = {
    "format_version": "mlctl.planfile/v1",
    "mlctl_version": "0.4.0",
    "destroy": False,
    "binding": {"lineage": "x", "serial": 4, "root": "/src", "inputs": {}},
    "plan": {"format_version": "mlctl.plan/v1", "resource_changes": []},
}


@pytest.mark.parametrize(
    "doc, what",
    [
        (V1, "the saved plan has format mlctl.planfile/v1 (written by mlctl 0.4.0)"),
        (
            {**V1, "format_version": "mlctl.planfile/v3", "mlctl_version": "9.0"},
            "the saved plan has format mlctl.planfile/v3 (written by mlctl 9.0)",
        ),
    ],
)
def test_an_old_or_unknown_plan_file_is_refused(tmp_path, doc, what):
    path = tmp_path / "old.plan"
    path.write_text(json.dumps(doc))
    text = refused(path)
    assert text.startswith(f"Error: {what}\n  at {path}\n")
    assert f"reads and writes {FORMAT} only" in text and "mlctl plan --out FILE" in text


def test_a_truncated_plan_file_is_refused(tmp_path):
    rs = stack()
    cfg = Cfg(tuple(rs), inputs=dict(INPUTS))
    path = save(tmp_path, plan(cfg, state_of([]), None))
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    assert refused(path, cfg=cfg).startswith("Error: cannot read the saved plan: it is not complete JSON")
    path.write_bytes(b"\xff\xfe{")
    assert "it is not complete JSON" in refused(path, cfg=cfg)


def _spoil_action(doc):
    doc["changes"][0]["action"] = "*"


def _drop_binding(doc):
    del doc["binding"]


def _serial_as_text(doc):
    doc["binding"]["serial"] = "4"


def _drift_without_values(doc):
    doc["changes"][4]["diff"] = [{"op": "drift", "path": "ready_instances"}]


def _bad_address(doc):
    doc["changes"][0]["address"] = "model.a.b"


@pytest.mark.parametrize(
    "spoil, where",
    [
        (_spoil_action, "$.changes[0].action: '*' is not one of"),
        (_drop_binding, "$: 'binding' is a required property"),
        (_serial_as_text, "$.binding.serial: '4' is not of type 'integer'"),
        (_drift_without_values, "$.changes[4].diff[0]"),
        (_bad_address, "$.changes[0].address: 'model.a.b' does not match"),
    ],
)
def test_a_malformed_plan_file_is_refused(tmp_path, spoil, where):
    assert refused_after(tmp_path, spoil).startswith(f"Error: the saved plan is malformed at {where}")


def refused_after(tmp_path, edit) -> str:
    """The error for the plan file of a one-deployment scale after `edit(document)`."""
    rs = stack(instances=2)
    prior = state_of(stack())
    cfg = Cfg(tuple(rs), inputs=dict(INPUTS))
    path = save(tmp_path, plan(cfg, prior, None))
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    return refused(path, prior, cfg)


def test_a_resource_other_than_planned_is_refused(tmp_path):
    """Same input digests (say, a hand-edited state or another normalization), other resource: refused."""
    rs = stack(instances=2)
    prior = state_of(stack())
    path = save(tmp_path, plan(Cfg(tuple(rs), inputs=dict(INPUTS)), prior, None))
    other = list(rs)
    other[4] = stack(instances=3)[4]
    text = refused(path, prior, Cfg(tuple(other), inputs=dict(INPUTS)))
    assert text.startswith(
        "Error: the saved plan does not match the configuration or state at deployment.e.blue: "
        "its configuration or artifacts differ from when the plan was made"
    )
    prior.resources[Address.parse("deployment.e.blue")].attributes["instance_count"] = 2  # edited in place, same serial
    assert "its differences from the state are not the ones planned" in refused(
        path, prior, Cfg(tuple(rs), inputs=dict(INPUTS))
    )
    del prior.resources[Address.parse("deployment.e.blue")]
    assert "deployment.e.blue: the state no longer records it" in refused(
        path, prior, Cfg(tuple(rs), inputs=dict(INPUTS))
    )


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda doc: doc["changes"].pop(3),
            "the saved plan does not match the configuration or state: it has no change for endpoint.e\n",
        ),
        (
            lambda doc: doc["changes"][4].update(order="update"),
            "the saved plan does not match the configuration or state at deployment.e.blue: it was planned with order "
            "'update'; this mlctl would give 'scale'\n",
        ),
        (
            lambda doc: doc["changes"].append(doc["changes"][4]),
            "the saved plan does not match the configuration or state at deployment.e.blue: "
            "the plan has two changes for it\n",
        ),
    ],
)
def test_a_plan_file_must_cover_every_resource_once(tmp_path, edit, message):
    assert refused_after(tmp_path, edit).startswith(f"Error: {message}")


def test_written_0600_even_over_a_readable_file(tmp_path):
    path = tmp_path / "tfplan.json"
    path.write_text("old")
    path.chmod(0o644)
    old = os.umask(0)
    try:
        save_plan(plan(Cfg(tuple(stack())), state_of([]), None), path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["format_version"] == FORMAT
    assert [p.name for p in tmp_path.iterdir()] == ["tfplan.json"]  # no temp file left


@pytest.mark.parametrize("target", ["victim.txt", "absent.txt"])
def test_never_written_through_a_symlink(tmp_path, target):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    link = tmp_path / "tfplan.json"
    link.symlink_to(tmp_path / target)
    with pytest.raises(MlctlError) as e:
        save_plan(plan(Cfg(tuple(stack())), state_of([]), None), link)
    assert str(e.value).startswith(f"Error: {link} is a symbolic link; mlctl does not write a plan through one")
    assert victim.read_text() == "precious\n" and link.is_symlink() and not (tmp_path / "absent.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tfplan.json", "victim.txt"]
