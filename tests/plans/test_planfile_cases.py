"""Every golden plan case saved to a plan file and loaded back (as `apply FILE` does) is the same plan:
the same changes and the same text, JSON and markdown, from a file that holds no attribute value."""

from __future__ import annotations

import json

import jsonschema
import pytest

from goldens import HERE, copy_project, install_state, loaded, plan_case, project, render_all
from mlctl.reconciler.planfile import load_plan, save_plan
from mlctl.schemas.validate import load_schema
from mlctl.state.statefile import State
from test_golden import CASES, edit


def _strings(value) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*map(_strings, value.values())) if value else set()
    if isinstance(value, (list, tuple)):
        return set().union(*map(_strings, value)) if value else set()
    return set()


@pytest.mark.parametrize("name", list(CASES))
def test_a_saved_plan_loads_back_as_the_same_plan(name, tmp_path):
    case, case_dir = CASES[name], HERE / name
    proj = project(copy_project(HERE / "_project", tmp_path / "project"))
    prior = install_state((case_dir / "state.json").read_text(), proj) if case.prior else State()
    edit(case_dir, proj.root)
    config = loaded(proj)
    runtime = case.options.get("runtime", "local")
    p = plan_case(proj, prior, **{"runtime": runtime, **case.options})
    path = tmp_path / "tfplan.json"
    save_plan(p, path, str(proj.root))
    doc = json.loads(path.read_text())
    jsonschema.validate(doc, load_schema("planfile"))
    assert [c["order"] for c in doc["changes"]] == [c.order and c.order.value for c in p.changes]
    back = load_plan(path, prior, config, runtime=runtime)
    assert back.changes == p.changes
    assert (back.lineage, back.serial, back.destroy, back.refresh_only, back.ignored, back.runtime) == (
        p.lineage,
        p.serial,
        p.destroy,
        p.refresh_only,
        p.ignored,
        p.runtime,
    )
    assert render_all(back, proj.root) == render_all(p, proj.root)
    values = set().union(*(_strings(c.before) | _strings(c.after) for c in p.changes))
    stored = _strings([{**c, "diff": [i for i in c["diff"] if i["op"] != "drift"]} for c in doc["changes"]])
    assert not {v for v in values if len(v) > 12 and v in stored}, (
        "attribute values in the plan file"
    )  # drift: observed
