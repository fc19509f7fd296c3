"""Renderers: colour only on a terminal, secrets masked everywhere, JSON valid against its schema,
markdown bounded with an explicit truncation line that never drops a deletion or traffic shift."""

import json
import re
from io import StringIO
from pathlib import Path

import jsonschema
from rich.console import Console

from builders import Cfg, by_address, deployment, endpoint, model, stack, state_of, traffic
from mlctl.reconciler.plans import plan
from mlctl.reconciler.render_json import render_json
from mlctl.reconciler.render_markdown import render_markdown
from mlctl.reconciler.render_text import render_text

SCHEMA = json.loads((Path(__file__).parents[2] / "mlctl" / "schemas" / "plan.schema.json").read_text())
ANSI = re.compile(r"\x1b\[")


def text_of(p, **console):
    buf = StringIO()
    render_text(p, Console(file=buf, width=100, **console), "/src")
    return buf.getvalue()


def secret_plan():
    new = stack(environment_variables={"API_TOKEN": "tok-123", "STORAGE_CONNECTION_STRING": "cs-456", "MODE": "fast"})
    return plan(Cfg(tuple(new)), state_of(stack()), by_address({"deployment.e.blue": {"ready_instances": 0}}))


def test_colour_only_on_a_terminal():
    p = secret_plan()
    assert not ANSI.search(text_of(p, color_system=None))
    assert ANSI.search(text_of(p, force_terminal=True, color_system="standard"))
    assert not ANSI.search(text_of(p))  # a StringIO is not a terminal


def test_secrets_never_shown():
    p = secret_plan()
    for out in (text_of(p), render_json(p, "/src"), render_markdown(p, "/src")):
        assert "tok-123" not in out and "cs-456" not in out
        assert "(sensitive)" in out and "fast" in out
    assert (
        'environment_variables = {} -> {"API_TOKEN": "(sensitive)", "STORAGE_CONNECTION_STRING": '
        '"(sensitive)", "MODE": "fast"}' in text_of(p)
    )


def test_json_document_validates_and_marks_unknowns_and_drift():
    old = stack()
    new = stack(instances=2) + [endpoint("f")]
    p = plan(Cfg(tuple(new)), state_of(old), by_address({"deployment.e.blue": {"ready_instances": 0}}))
    doc = json.loads(render_json(p, "/src"))
    jsonschema.validate(doc, SCHEMA)
    by = {rc["address"]: rc for rc in doc["resource_changes"]}
    assert by["endpoint.f"]["after_unknown"] == {"port": True, "scoring_uri": True}
    assert by["endpoint.f"]["actions"] == ["create"]
    assert by["deployment.e.blue"]["diff"] == [
        {"op": "change", "path": "instance_count", "old": 1, "new": 2},
        {"op": "drift", "path": "ready_instances", "old": 0, "new": 1},
    ]
    assert by["deployment.e.blue"]["after"]["code"] == "code"  # relative to the project
    assert doc["summary"] == {
        "add": 1,
        "change": 1,
        "replace": 0,
        "destroy": 0,
        "unchanged": 5,
        "has_changes": True,
        "text": "Plan: 1 to add, 1 to change, 0 to replace, 0 to destroy.",
    }


def test_huge_markdown_is_cut_at_a_resource_boundary_and_keeps_deletions_and_shifts():
    old, new = [model()], [model()]
    for i in range(60):
        old += [
            endpoint(f"e{i}"),
            deployment(ep=f"e{i}", name="blue"),
            deployment(ep=f"e{i}", name="green"),
            traffic(ep=f"e{i}", weights={"blue": 100}, deployments=("blue", "green")),
        ]
        new += [
            endpoint(f"e{i}"),
            deployment(ep=f"e{i}", name="green", instances=2, code_digest="sha256:k9"),
            traffic(ep=f"e{i}", weights={"green": 100}, deployments=("green",)),
        ]
    for i in range(60, 400):  # new endpoints: long create blocks that cannot all fit
        new += [endpoint(f"e{i}"), deployment(ep=f"e{i}", name="blue", tags={"team": "x" * 80})]
    p = plan(Cfg(tuple(new)), state_of(old), None)
    md = render_markdown(p, "/src")
    assert len(md) <= 60_000
    assert md.count("<details>") == md.count("</details>") > 0
    m = re.search(
        r"\*\*Truncated: (\d+) more resource changes not shown \(this comment is limited to 60,000 "
        r"characters\)\. Every deletion and traffic shift is listed above\.",
        md,
    )
    assert m
    assert md.count("<details>") + int(m.group(1)) == sum(1 for c in p.changes if c.action.value != ".")
    head = md.split("#### Changes")[0]
    for i in range(60):
        assert f"- `-` **deployment.e{i}.blue** (not in configuration)" in head
        assert f"- `~` **traffic.e{i}**: blue 100% -> 0%, green 0% -> 100%" in head
    assert md.endswith("listed above. Run `mlctl plan` for the full plan.**\n")


def test_small_markdown_is_not_truncated():
    p = plan(Cfg(tuple(stack(instances=2))), state_of(stack()), None)
    md = render_markdown(p)
    assert "Truncated" not in md and md.count("<details>") == 1


def test_many_deletions_are_listed_compactly_and_all_kept():
    old = [model()]
    for i in range(300):
        old += [
            endpoint(f"e{i:03}"),
            deployment(ep=f"e{i:03}", name="blue", env=None),
            deployment(ep=f"e{i:03}", name="green", env=None),
            traffic(ep=f"e{i:03}", weights={"blue": 100}, deployments=("blue", "green")),
        ]
    p = plan(Cfg((model(),)), state_of(old), None)
    md = render_markdown(p)
    assert len(md) <= 60_000
    head = md.split("#### Changes")[0]
    assert "Deleted: " in head and "- `-` **" not in head  # compact form
    for c in p.changes:
        if c.action.value == "-":
            assert f"`{c.address}`" in head
    assert "> **Deletes 300 endpoints:**" in head
    assert "**Truncated: " in md
