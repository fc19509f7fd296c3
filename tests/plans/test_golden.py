"""Golden plans: tests/plans/<case>/ holds the case's configuration (the base project tests/plans/_project
with the files of <case>/config/ written over it and those <case>/removed.txt lists deleted), its prior
state.json and the expected plan.txt, plan.json and plan.md; the plan is rendered and compared with them."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import pytest

from goldens import (
    HERE,
    check_or_update,
    copy_project,
    install_state,
    loaded,
    plan_case,
    portable_state,
    project,
    render_all,
    state_from_resources,
    write_certificate,
)
from mlctl.state.statefile import State

SCHEMA = json.loads((Path(__file__).parents[2] / "mlctl" / "schemas" / "plan.schema.json").read_text())


def edit(case_dir: Path, root: Path) -> None:
    """The case's configuration: the base project with the case's `config/` files written over it
    and the files its `removed.txt` lists deleted."""
    overlay = case_dir / "config"
    if overlay.is_dir():
        shutil.copytree(overlay, root, dirs_exist_ok=True)
    removed = case_dir / "removed.txt"
    for rel in removed.read_text().split() if removed.exists() else ():
        (root / rel).unlink()


@dataclass
class Case:
    prior: bool = True  # a prior state made from the unedited project
    overrides: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    expect: dict[str, str] = field(default_factory=dict)  # {address: symbol} of every change that is not a no-op
    certificates: tuple[int, int] | None = None  # listen with TLS: the certificate applied, then the one on disk


CASES = {
    "first_plan": Case(
        prior=False,
        expect={
            "model.fraud": "+",
            "environment.shop-blue-env": "+",
            "environment.shop-green-env": "+",
            "image.shop-blue-env": "+",
            "image.shop-green-env": "+",
            "endpoint.batch": "+",
            "endpoint.shop": "+",
            "deployment.batch.main": "+",
            "deployment.shop.blue": "+",
            "deployment.shop.green": "+",
            "traffic.batch": "+",
            "traffic.shop": "+",
        },
    ),
    "no_op": Case(),
    "scale": Case(expect={"deployment.shop.blue": "~"}),  # blue.yml: instance_count 1 -> 3
    "resized": Case(expect={"deployment.shop.blue": "+/-"}),  # blue.yml: resources added (memory shown as quantities)
    "new_model_version": Case(
        expect={  # model.yml version 2, new files; deployments refer to fraud:2
            "model.fraud": "+/-",
            "deployment.batch.main": "+/-",
            "deployment.shop.blue": "+/-",
            "deployment.shop.green": "+/-",
        }
    ),
    "code_edited": Case(
        expect={  # code/score.py edited
            "deployment.batch.main": "+/-",
            "deployment.shop.blue": "+/-",
            "deployment.shop.green": "+/-",
        }
    ),
    "traffic_shift": Case(expect={"traffic.shop": "~"}),  # endpoint.yml: blue 90/10 -> 50/50
    "deployment_removed": Case(
        expect={  # green.yml removed, endpoint.yml: blue 100
            "traffic.shop": "~",
            "deployment.shop.green": "-",
            "image.shop-green-env": "-",
            "environment.shop-green-env": "-",
        }
    ),
    "endpoint_removed": Case(
        expect={  # batch-endpoint.yml and batch-main.yml removed
            "traffic.batch": "-",
            "deployment.batch.main": "-",
            "endpoint.batch": "-",
        }
    ),
    "failed_replaced": Case(
        overrides={"deployment.shop.green": {"status": "failed"}}, expect={"deployment.shop.green": "+/-"}
    ),
    "drift": Case(
        overrides={  # what the runtime last reported (--refresh=false: recorded observed stands in)
            "deployment.shop.blue": {"observed": {"ready_instances": 0, "served_model_digest": None}},
            "endpoint.batch": {"observed": {"alive": False, "port": 40123}},
            "traffic.shop": {"observed": {"traffic": {"blue": 100}, "mirror_traffic": {}}},
        },
        expect={
            "deployment.shop.blue": "~",
            "endpoint.batch": "-/+",
            "deployment.batch.main": "-/+",
            "traffic.batch": "~",
            "traffic.shop": "~",
        },
    ),
    "replace_requested": Case(
        options={"replace": ["endpoint.batch"]},
        expect={"endpoint.batch": "-/+", "deployment.batch.main": "-/+", "traffic.batch": "~"},
    ),
    "certificate_changed": Case(  # mlctl.yaml: listen with TLS files; tls/cert.pem and key.pem renewed
        certificates=(1, 2), expect={"endpoint.batch": "~", "endpoint.shop": "~"}
    ),
    "runtime_changed": Case(
        options={"runtime": "docker"},
        expect={  # mlctl.yaml: runtime docker (applied by local)
            "image.shop-blue-env": "+/-",
            "image.shop-green-env": "+/-",
            "endpoint.batch": "-/+",
            "endpoint.shop": "-/+",
            "deployment.batch.main": "-/+",
            "deployment.shop.blue": "-/+",
            "deployment.shop.green": "-/+",
            "traffic.batch": "~",
            "traffic.shop": "~",
        },
    ),
    "destroy": Case(
        options={"destroy": True},
        expect={
            a: "-"
            for a in (
                "traffic.shop",
                "traffic.batch",
                "deployment.shop.green",
                "deployment.shop.blue",
                "deployment.batch.main",
                "endpoint.shop",
                "endpoint.batch",
                "image.shop-green-env",
                "image.shop-blue-env",
                "environment.shop-green-env",
                "environment.shop-blue-env",
                "model.fraud",
            )
        },
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_golden_plan(name, tmp_path, update_goldens):
    case, case_dir = CASES[name], HERE / name
    proj = project(copy_project(HERE / "_project", tmp_path / "project"))
    prior = State()
    if case.certificates:
        write_certificate(proj.root, case.certificates[0])
    if case.prior:
        if update_goldens:
            base = loaded(proj).resources
            case_dir.mkdir(exist_ok=True)
            (case_dir / "state.json").write_text(
                portable_state(state_from_resources(base, **case.overrides), proj.root)
            )
        prior = install_state((case_dir / "state.json").read_text(), proj)
    edit(case_dir, proj.root)
    if case.certificates:
        write_certificate(proj.root, case.certificates[1])
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
    assert last == (
        f"Plan: {n['add']} to add, {n['change']} to change, {n['replace']} to replace, {n['destroy']} to destroy."
        if case.expect
        else "No changes. The runtime matches the configuration."
    )


def test_every_case_folder_is_planned():
    folders = {p.name for p in HERE.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))} - {"both_forms"}
    assert folders == set(CASES)
