"""Both Azure YAML forms (2021 inline `deployments:` and the split files) give the same plan."""

from __future__ import annotations

import json

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
)
from mlctl.state.statefile import State


def test_both_forms_plan_the_same(tmp_path, update_goldens):
    root = copy_project(HERE / "both_forms", tmp_path / "both_forms")
    legacy = project(root, files=["legacy/endpoint.yml"])
    split = project(root, files=["split/endpoint.yml", "split/blue.yml"])
    out = {name: render_all(plan_case(proj, State()), root) for name, proj in (("legacy", legacy), ("split", split))}
    for name, outputs in out.items():
        check_or_update(HERE / "both_forms" / "expected" / name, outputs, update_goldens)
    docs = {name: json.loads(o["plan.json"]) for name, o in out.items()}
    for doc in docs.values():
        for rc in doc["resource_changes"]:
            rc.pop("ignored")
    assert docs["legacy"]["resource_changes"] == docs["split"]["resource_changes"]
    assert [rc["address"] for rc in docs["split"]["resource_changes"]] == [
        "model.shop-blue-model",
        "environment.shop-blue-env",
        "image.shop-blue-env",
        "endpoint.shop",
        "deployment.shop.blue",
        "traffic.shop",
    ]
    assert json.loads(out["legacy"]["plan.json"])["resource_changes"][3]["ignored"] == ["type"]


def test_applied_from_one_form_the_other_plans_no_change(tmp_path):
    root = copy_project(HERE / "both_forms", tmp_path / "both_forms")
    split = project(root, files=["split/endpoint.yml", "split/blue.yml"])
    legacy = project(root, files=["legacy/endpoint.yml"])
    prior = install_state(portable_state(state_from_resources(loaded(split).resources), root), legacy)
    p = plan_case(legacy, prior)
    assert not p.has_changes()
    assert (
        render_all(p, root)["plan.txt"].rstrip().splitlines()[-1]
        == "No changes. The runtime matches the configuration."
    )
