"""--set and --var (mlctl.overrides): Azure's --set paths, placeholders filled or reported at once, and a saved
plan bound to them (the real CLI in a subprocess for the commands)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlctl.errors import MlctlError
from mlctl.overrides import fill, parse_overrides, parse_path, set_value, unfilled

SHARED = Path(__file__).parent / "bad" / "_shared"

ENDPOINT = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
name: <ENDPOINT_NAME>   # <a comment is not a placeholder>
auth_mode: key
"""
DEPLOYMENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: {{ENDPOINT_NAME}}
model:
  path: shared/model
code_configuration:
  code: shared/onlinescoring
  scoring_script: score.py
instance_count: 1
"""


def run(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlctl.cli", "-C", str(project), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def project(tmp_path):
    import shutil

    shutil.copytree(SHARED, tmp_path / "shared")  # inside the project: its files may name only what is in it
    (tmp_path / "endpoint.yml").write_text(ENDPOINT)
    (tmp_path / "blue.yml").write_text(DEPLOYMENT)
    return tmp_path


def test_paths_values_and_placeholders():
    assert parse_path("identity.user_assigned_identities[0].resource_id") == (
        "identity",
        "user_assigned_identities",
        0,
        "resource_id",
    )
    assert parse_path("a..b") is None and parse_path("[0]") is None
    sets = parse_overrides(["instance_count=2", "blue.yml:environment_variables.MODE=fast", 'x.y={"a": [1]}']).sets
    assert [(o.file, o.path, o.value) for o in sets] == [
        (None, ("instance_count",), 2),
        ("blue.yml", ("environment_variables", "MODE"), "fast"),
        (None, ("x", "y"), {"a": [1]}),
    ]
    with pytest.raises(MlctlError) as e:
        parse_overrides(["novalue", "a[=1"], ["=x", "ok=1"])
    assert len(e.value.diagnostics) == 3  # every malformed argument at once
    text = "a: <A>\nb: {{ B }}\nc: ${{ secrets.X }}\n# <C>\nd: x  # {{D}}\n"
    assert unfilled(text) == [("<A>", 1), ("{{ B }}", 2)]  # not comments, not a GitHub expression
    assert unfilled(fill(text, [("A", "1"), ("B", "2")])) == []
    data = {"a": {"b": 1}}
    assert set_value(data, ("a", "c", "d"), 2) is None and data == {"a": {"b": 1, "c": {"d": 2}}}
    assert "not a mapping" in set_value(data, ("a", "b", "x"), 3)
    assert "no list item" in set_value({"l": []}, ("l", 0), 3)


def test_unfilled_placeholders_are_one_error_per_file_naming_them(project):
    out = run(project, "validate")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "YAML syntax error" not in out.stderr  # {{ENDPOINT_NAME}} would be a flow mapping
    assert "blue.yml has placeholders left to fill: {{ENDPOINT_NAME}}" in out.stderr
    assert "at blue.yml:3" in out.stderr and "--var ENDPOINT_NAME=VALUE" in out.stderr
    assert "endpoint.yml has placeholders left to fill: <ENDPOINT_NAME>" in out.stderr
    assert "a comment is not" not in out.stderr
    replaced = run(project, "validate", "--set", "endpoint.yml:name=ep-two")  # as Azure's scripts do
    assert "endpoint.yml has placeholders" not in replaced.stderr and "blue.yml has placeholders" in replaced.stderr


def test_var_and_set_on_validate_plan_and_apply(project):
    ok = run(project, "validate", "--var", "ENDPOINT_NAME=ep-one", "--set", "traffic.blue=100", "--json")
    doc = json.loads(ok.stdout)
    assert doc["valid"], doc
    assert not any("no live traffic" in d["summary"] for d in doc["diagnostics"])  # the --set took effect
    plan = run(project, "plan", "--refresh=false", "--var", "ENDPOINT_NAME=ep-one", "--set", "instance_count=3")
    assert plan.returncode == 0, plan.stderr
    assert 'endpoint "ep-one"' in plan.stdout and "instance_count = 3" in plan.stdout
    both = run(project, "validate", "--var", "ENDPOINT_NAME=ep-one", "--set", "name=x")
    assert both.returncode == 1 and "matches several documents: blue.yml, endpoint.yml" in both.stderr
    assert "--set blue.yml:name=x" in both.stderr
    none = run(project, "validate", "--var", "ENDPOINT_NAME=ep-one", "--set", "nope.yml:name=x", "--set", "zzz=1")
    assert "names 'nope.yml', which is not a configuration file read" in none.stderr
    assert "--set 'zzz=1' matches no document read" in none.stderr
    assert run(project, "apply", "--help").stdout.count("--set") >= 1


def test_saved_plan_binds_to_set_and_var_without_their_values(project):
    args = ["--var", "ENDPOINT_NAME=ep-one", "--set", "environment_variables.TOKEN=hunter2"]
    made = run(project, "plan", "--refresh=false", "--out", "tfplan", *args)
    assert made.returncode == 0, made.stderr
    saved = (project / "tfplan").read_text()
    assert "hunter2" not in saved and "--set environment_variables.TOKEN" in saved and "--var ENDPOINT_NAME" in saved
    other = run(project, "apply", "tfplan", "--var", "ENDPOINT_NAME=ep-one", "--set", "environment_variables.TOKEN=x")
    assert other.returncode == 1 and "--set environment_variables.TOKEN has another value" in other.stderr
    missing = run(project, "apply", "tfplan", "--var", "ENDPOINT_NAME=ep-one")
    assert missing.returncode == 1
    assert "the plan was made with --set environment_variables.TOKEN=...: give it to apply too" in missing.stderr
    assert not (project / ".mlctl" / "run").exists()  # nothing started


def test_a_placeholder_spelled_with_escapes_is_still_found(project):
    """Discovery walks only documents whose text could hold a placeholder ('<', '{' or a backslash): one made
    by a double-quoted escape (\\x3c, \\u007b) is found as one written plainly is."""
    endpoint = ENDPOINT.replace(
        "name: <ENDPOINT_NAME>   # <a comment is not a placeholder>", 'name: "\\x3cENDPOINT_NAME>"'
    )
    (project / "endpoint.yml").write_text(endpoint)
    (project / "blue.yml").write_text(
        DEPLOYMENT.replace("{{ENDPOINT_NAME}}", '"\\u007b\\u007bENDPOINT_NAME\\u007d\\u007d"')
    )
    out = run(project, "validate")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "endpoint.yml has placeholders left to fill: <ENDPOINT_NAME>" in out.stderr
    assert "blue.yml has placeholders left to fill: {{ENDPOINT_NAME}}" in out.stderr
    plain = run(project, "validate", "--var", "ENDPOINT_NAME=ep")  # --var fills the text, not an escape
    assert "has placeholders left to fill" in plain.stderr
