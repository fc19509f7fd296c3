"""Saved plans: bound to lineage, serial and every input digest; loading reports exactly what moved."""

import json

import jsonschema
import pytest

from builders import Cfg, stack, state_of
from mlctl.errors import MlctlError
from mlctl.reconciler.planfile import load_plan, save_plan
from mlctl.reconciler.plans import Action, plan
from mlctl.schemas.validate import load_schema
from mlctl.resources import Address

INPUTS = {
    "/src/endpoint.yml": "sha256:e1",
    "/src/blue.yml": "sha256:b1",
    "/src/code/score.py": "sha256:s1",
    "/elsewhere/conda.yml": "sha256:c1",
}


def saved(tmp_path, **dep):
    rs = stack(**dep)
    prior = state_of(stack())
    cfg = Cfg(tuple(rs), inputs=dict(INPUTS))
    p = plan(cfg, prior, None)
    path = tmp_path / "tfplan.json"
    save_plan(p, path, root="/src")
    return p, path, cfg, prior


def test_round_trip(tmp_path):
    p, path, cfg, prior = saved(tmp_path, instances=3, environment_variables={"DB_PASSWORD": "hunter2", "MODE": "x"})
    doc = json.loads(path.read_text())
    assert doc["format_version"] == "mlctl.planfile/v2"
    jsonschema.validate(doc, load_schema("planfile"))
    assert doc["binding"] == {
        "lineage": prior.lineage,
        "serial": 4,
        "root": "/src",
        "runtime": None,
        "inputs": {
            "/elsewhere/conda.yml": "sha256:c1",
            "blue.yml": "sha256:b1",
            "code/score.py": "sha256:s1",
            "endpoint.yml": "sha256:e1",
        },
    }
    assert "hunter2" not in path.read_text()
    back = load_plan(path, prior, cfg, root="/src")
    assert [(c.address, c.action, c.reason, c.diff, c.changed_files, c.after_unknown) for c in back.changes] == [
        (c.address, c.action, c.reason, c.diff, c.changed_files, c.after_unknown) for c in p.changes
    ]
    blue = back.changes[4]
    assert blue.action is Action.REPLACE
    assert blue.after["environment_variables"]["DB_PASSWORD"] == "hunter2"  # from the config, not the file
    assert (
        blue.resource is cfg.resources[4]
        and blue.before == prior.resources[Address.parse("deployment.e.blue")].attributes
    )
    assert (back.lineage, back.serial, back.destroy) == (prior.lineage, 4, False)
    assert [c.action for c in load_plan(path, prior, cfg).changes] == [c.action for c in p.changes]  # root as saved


def test_another_checkout_of_the_same_files_is_not_stale(tmp_path):
    p, path, cfg, prior = saved(tmp_path)
    moved_inputs = {k.replace("/src/", "/ci/work/"): v for k, v in INPUTS.items()}
    back = load_plan(path, prior, Cfg(cfg.resources, inputs=moved_inputs), root="/ci/work")
    assert len(back.changes) == len(p.changes)
    with pytest.raises(MlctlError) as e:
        load_plan(path, prior, Cfg(cfg.resources, inputs=moved_inputs))  # compared as if still in /src
    assert "the saved plan is stale: /ci/work/blue.yml is new" in str(e.value)


def test_stale_lists_everything_that_moved(tmp_path):
    p, path, cfg, prior = saved(tmp_path)
    prior.serial = 6
    inputs = dict(INPUTS)
    inputs["/src/code/score.py"] = "sha256:s2"
    del inputs["/src/blue.yml"]
    inputs["/src/green.yml"] = "sha256:g1"
    with pytest.raises(MlctlError) as e:
        load_plan(path, prior, Cfg(cfg.resources, inputs=inputs), root="/src")
    assert [d.summary for d in e.value.diagnostics] == [
        "the saved plan is stale: the state moved from serial 4 to 6 (an apply ran since)",
        "the saved plan is stale: blue.yml was removed or is no longer read",
        "the saved plan is stale: code/score.py changed",
        "the saved plan is stale: green.yml is new",
    ]
    assert "make a new plan" in e.value.diagnostics[0].detail


def test_a_plan_for_another_runtime_is_stale(tmp_path):
    rs = stack()
    prior = state_of(rs)
    cfg = Cfg(tuple(rs), inputs=dict(INPUTS))
    save_plan(plan(cfg, prior, None, runtime="local"), tmp_path / "p.json", root="/src")
    assert load_plan(tmp_path / "p.json", prior, cfg, runtime="local").runtime == "local"
    assert load_plan(tmp_path / "p.json", prior, cfg).runtime == "local"  # not compared
    with pytest.raises(MlctlError) as e:
        load_plan(tmp_path / "p.json", prior, cfg, runtime="docker")
    assert str(e.value).startswith(
        "Error: the saved plan is stale: the project's runtime is now docker (the plan was made for the local runtime)"
    )


def test_another_lineage_is_stale(tmp_path):
    p, path, cfg, prior = saved(tmp_path)
    prior.lineage = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(MlctlError) as e:
        load_plan(path, prior, cfg, root="/src")
    assert str(e.value).startswith("Error: the saved plan is stale: the state is another one (lineage 00000000-")


@pytest.mark.parametrize(
    "text, message",
    [
        (None, "no such saved plan"),
        ("{oops", "cannot read the saved plan: it is not complete JSON"),
        ("", "cannot read the saved plan: it is not complete JSON"),
        ("[1, 2]", "not a saved mlctl plan"),
        ('{"format_version": "mlctl.plan/v1"}', "this is the `mlctl plan --json` view, not a saved plan"),
        ('{"format_version": "terraform"}', "not a saved mlctl plan (format_version 'terraform')"),
    ],
)
def test_not_a_plan(tmp_path, text, message):
    path = tmp_path / "p.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(MlctlError) as e:
        load_plan(path, state_of([]), Cfg(()))
    assert message in str(e.value) and str(path) in str(e.value)


def test_first_plan_binds_to_no_state(tmp_path):
    from mlctl.state.statefile import State

    cfg = Cfg(tuple(stack()), inputs=dict(INPUTS))
    p = plan(cfg, State(), None)
    save_plan(p, tmp_path / "p.json")
    back = load_plan(tmp_path / "p.json", State(), cfg)  # a fresh state has a new lineage each read: serial 0 binds
    assert [c.action for c in back.changes] == [Action.CREATE] * 6
    assert json.loads((tmp_path / "p.json").read_text())["binding"]["inputs"]["/src/blue.yml"] == "sha256:b1"
