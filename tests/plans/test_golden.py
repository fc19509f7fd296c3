"""Golden plans: a real project (tests/plans/_project) edited per case, planned against a prior state,
rendered as text, JSON and markdown and compared with tests/plans/<case>/plan.{txt,json,md}."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import jsonschema
import pytest

from goldens import (HERE, check_or_update, copy_project, install_state, loaded, plan_case, portable_state,
                     project, render_all, state_from_resources)
from mlctl.state.statefile import State

SCHEMA = json.loads((Path(__file__).parents[2] / "mlctl" / "schemas" / "plan.schema.json").read_text())


def sub(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def new_model_version(p: Path) -> None:
    sub(p / "model.yml", "version: 1", "version: 2")
    sub(p / "model" / "weights.txt", "v1", "v2")
    (p / "model" / "calibration.txt").write_text("scale: 1.1\n")
    for f in ("blue.yml", "green.yml", "batch-main.yml"):
        sub(p / f, "azureml:fraud:1", "azureml:fraud:2")


def remove_green(p: Path) -> None:
    (p / "green.yml").unlink()
    sub(p / "endpoint.yml", "  blue: 90\n  green: 10\n", "  blue: 100\n")


def remove_batch(p: Path) -> None:
    (p / "batch-endpoint.yml").unlink()
    (p / "batch-main.yml").unlink()


@dataclass
class Case:
    edit: Callable[[Path], None] | None = None
    prior: bool = True                       # a prior state made from the unedited project
    overrides: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    expect: dict[str, str] = field(default_factory=dict)   # {address: symbol} of every change that is not a no-op


CASES = {
    "first_plan": Case(prior=False, expect={
        "model.fraud": "+", "environment.shop-blue-env": "+", "environment.shop-green-env": "+",
        "image.shop-blue-env": "+", "image.shop-green-env": "+", "endpoint.batch": "+", "endpoint.shop": "+",
        "deployment.batch.main": "+", "deployment.shop.blue": "+", "deployment.shop.green": "+",
        "traffic.batch": "+", "traffic.shop": "+"}),
    "no_op": Case(),
    "scale": Case(lambda p: sub(p / "blue.yml", "instance_count: 1", "instance_count: 3"),
                  expect={"deployment.shop.blue": "~"}),
    "new_model_version": Case(new_model_version, expect={
        "model.fraud": "+/-", "deployment.batch.main": "+/-", "deployment.shop.blue": "+/-",
        "deployment.shop.green": "+/-"}),
    "code_edited": Case(lambda p: sub(p / "code" / "score.py", 'labels[0]', 'labels[-1]'), expect={
        "deployment.batch.main": "+/-", "deployment.shop.blue": "+/-", "deployment.shop.green": "+/-"}),
    "traffic_shift": Case(lambda p: sub(p / "endpoint.yml", "blue: 90\n  green: 10", "blue: 50\n  green: 50"),
                          expect={"traffic.shop": "~"}),
    "deployment_removed": Case(remove_green, expect={
        "traffic.shop": "~", "deployment.shop.green": "-", "image.shop-green-env": "-",
        "environment.shop-green-env": "-"}),
    "endpoint_removed": Case(remove_batch, expect={
        "traffic.batch": "-", "deployment.batch.main": "-", "endpoint.batch": "-"}),
    "tainted_replaced": Case(overrides={"deployment.shop.green": {"status": "tainted"}},
                             expect={"deployment.shop.green": "+/-"}),
    "drift": Case(overrides={  # what the runtime last reported (--refresh=false: recorded observed stands in)
        "deployment.shop.blue": {"observed": {"ready_instances": 0, "served_model_digest": None}},
        "endpoint.batch": {"observed": {"alive": False, "port": 40123}},
        "traffic.shop": {"observed": {"traffic": {"blue": 100}, "mirror_traffic": {}}}},
        expect={"deployment.shop.blue": "~", "endpoint.batch": "-/+", "deployment.batch.main": "-/+",
                "traffic.batch": "~", "traffic.shop": "~"}),
    "replace_requested": Case(options={"replace": ["endpoint.batch"]}, expect={
        "endpoint.batch": "-/+", "deployment.batch.main": "-/+", "traffic.batch": "~"}),
    "destroy": Case(options={"destroy": True}, expect={
        a: "-" for a in ("traffic.shop", "traffic.batch", "deployment.shop.green", "deployment.shop.blue",
                         "deployment.batch.main", "endpoint.shop", "endpoint.batch", "image.shop-green-env",
                         "image.shop-blue-env", "environment.shop-green-env", "environment.shop-blue-env",
                         "model.fraud")}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_golden_plan(name, tmp_path, update_goldens):
    case, case_dir = CASES[name], HERE / name
    proj = project(copy_project(HERE / "_project", tmp_path / "project"))
    prior = State()
    if case.prior:
        if update_goldens:
            base = loaded(proj).resources
            case_dir.mkdir(exist_ok=True)
            (case_dir / "state.json").write_text(portable_state(state_from_resources(base, **case.overrides), proj.root))
        prior = install_state((case_dir / "state.json").read_text(), proj)
    if case.edit:
        case.edit(proj.root)
    p = plan_case(proj, prior, **case.options)
    assert not p.has_errors()
    outputs = render_all(p, proj.root)
    check_or_update(case_dir, outputs, update_goldens)
    assert {str(c.address): c.action.value for c in p.changes if c.action.value != "."} == case.expect
    doc = json.loads(outputs["plan.json"])
    jsonschema.validate(doc, SCHEMA)
    assert str(tmp_path) not in "".join(outputs.values())
    last = outputs["plan.txt"].rstrip().splitlines()[-1]
    n = p.summary()
    assert last == (f"Plan: {n['add']} to add, {n['change']} to change, {n['replace']} to replace, "
                    f"{n['destroy']} to destroy." if case.expect else "No changes. The runtime matches the configuration.")
