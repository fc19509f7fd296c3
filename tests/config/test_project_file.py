"""The project file (mlctl.yaml): the runtime and its settings, the --runtime / MLCTL_RUNTIME overrides and
their precedence, its errors through the real CLI, and that it is never read as an endpoint document.

The bad project files are cases of the corpus (tests/config/bad/project-file-*), checked there through
load_config and here through `mlctl validate` and `mlctl plan` as subprocesses.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from loader_helpers import write_tree
from mlctl.errors import MlctlError
from mlctl.projectpaths import Project
from mlctl.projectfile import KNOWN, ProjectSettings, load_project_file
from mlctl.runtime import registry
from mlctl.schemas.load import load_config
from mlctl.schemas.validate import load_schema

BAD = Path(__file__).parent / "bad"
SHARED = BAD / "_shared"
CASES = sorted(p.name for p in BAD.iterdir() if p.name.startswith("project-file-"))
ENDPOINT = "kind: endpoint\nname: ep-one\ntraffic:\n  blue: 100\n"
BLUE = (
    "kind: deployment\nname: blue\nendpoint_name: ep-one\nmodel:\n  path: _shared/model\n"
    "code_configuration:\n  code: _shared/onlinescoring\n  scoring_script: score.py\n"
)
ALL_BLOCKS = "runtime: local\nlocal: {}\ndocker:\n  base_image: python:3.11-slim\nray:\n  address: auto\n"


def mlctl(*args, env=None, cwd=None):
    environ = {k: v for k, v in os.environ.items() if k != "MLCTL_RUNTIME"}
    return subprocess.run(
        [sys.executable, "-m", "mlctl.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**environ, **(env or {})},
        cwd=cwd,
    )


def small_project(tmp_path: Path) -> Path:
    """An endpoint and its deployment in tmp_path/p, with the shared files they name."""
    root = write_tree(tmp_path / "p", {"endpoint.yml": ENDPOINT, "blue.yml": BLUE})
    shutil.copytree(SHARED, root / "_shared")  # inside the project: mlctl reads nothing outside it
    return root


@pytest.fixture
def proj(tmp_path) -> Path:
    return small_project(tmp_path)


def at(root: Path, **kw) -> Project:
    return Project.at(root, state_path=root.parent / "s" / "state.json", **kw)


def test_the_schema_names_the_known_runtimes_and_closes_every_block():
    schema = load_schema("project")
    assert set(schema["properties"]["runtime"]["enum"]) == KNOWN == set(registry.RUNTIMES)
    assert set(registry.available()) <= KNOWN
    assert schema["additionalProperties"] is False
    for name in KNOWN:
        assert schema["properties"][name]["additionalProperties"] is False, name
    assert set(schema["properties"]) == KNOWN | {"runtime", "state", "computes", "listen"}
    assert schema["properties"]["state"]["additionalProperties"] is False


def test_a_project_without_the_file_is_local_as_before(proj):
    assert load_project_file(at(proj), environ={}) == ProjectSettings("local", {}, None, None, None, None)
    config = load_config(at(proj))
    assert not config.diagnostics and config.project_settings.runtime == "local"
    r = mlctl("-C", str(proj), "validate")
    assert (r.returncode, r.stdout, r.stderr) == (0, "Configuration is valid: 4 resources.\n", "")


@pytest.mark.parametrize("name", ["mlctl.yaml", "mlctl.yml"])
def test_runtime_local_is_accepted_with_every_block(proj, name):
    (proj / name).write_text(ALL_BLOCKS)
    s = load_project_file(at(proj), environ={})
    assert (s.runtime, dict(s.settings), s.source, s.file, s.line) == ("local", {}, name, str(proj / name), 1)
    assert s.digest.startswith("sha256:") and hash(s) == hash(load_project_file(at(proj), environ={}))
    with pytest.raises(TypeError):
        s.settings["x"] = 1  # read-only, like the value holding it
    config = load_config(at(proj))
    assert config.project_settings == s and config.inputs[str(proj / name)] == s.digest
    assert [str(r.address) for r in config.resources][:2] == ["deployment.ep-one.blue", "endpoint.ep-one"]


def test_an_empty_file_or_empty_blocks_mean_the_defaults(proj):
    (proj / "mlctl.yaml").write_text("# nothing chosen yet\n")
    s = load_project_file(at(proj), environ={})
    assert (s.runtime, dict(s.settings), s.source, s.line) == ("local", {}, None, None)
    assert s.file == str(proj / "mlctl.yaml")
    (proj / "mlctl.yaml").write_text("local:\ndocker:\nray:\n")
    assert load_project_file(at(proj), environ={}).runtime == "local"


def test_precedence_option_over_variable_over_file_over_default(proj):
    (proj / "mlctl.yaml").write_text("\nruntime: local\n")
    file_only = load_project_file(at(proj), environ={})
    assert (file_only.source, file_only.line) == ("mlctl.yaml", 2)
    from_env = load_project_file(at(proj), environ={"MLCTL_RUNTIME": "local"})
    assert (from_env.runtime, from_env.source, from_env.line) == ("local", "MLCTL_RUNTIME", None)
    from_option = load_project_file(at(proj, runtime_override="local"), environ={"MLCTL_RUNTIME": "ray"})
    assert (from_option.runtime, from_option.source) == ("local", "--runtime")
    assert load_project_file(at(proj), environ={"MLCTL_RUNTIME": ""}).source == "mlctl.yaml"  # empty = unset


def test_the_overrides_and_their_precedence_through_the_cli(proj):
    (proj / "mlctl.yaml").write_text("runtime: kubernetes\n")
    root = str(proj)
    r = mlctl("-C", root, "validate")
    assert r.returncode == 1 and "Error: the kubernetes runtime is not in this version of mlctl" in r.stderr
    assert "at mlctl.yaml:1, field 'runtime'" in r.stderr and "Traceback" not in r.stderr
    # MLCTL_RUNTIME over the file
    r = mlctl("-C", root, "validate", "--json", env={"MLCTL_RUNTIME": "local"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["runtime"] == {"name": "local", "source": "MLCTL_RUNTIME"}
    # --runtime over MLCTL_RUNTIME, both ways
    r = mlctl("-C", root, "--runtime", "local", "validate", "--json", env={"MLCTL_RUNTIME": "ray"})
    assert r.returncode == 0 and json.loads(r.stdout)["runtime"] == {"name": "local", "source": "--runtime"}
    r = mlctl("-C", root, "--runtime", "kubernetes", "validate", env={"MLCTL_RUNTIME": "local"})
    assert (
        r.returncode == 1
        and "Error: the kubernetes runtime is not in this version of mlctl (given with "
        "--runtime)\n  at field '--runtime'\n"
        in r.stderr
    ), r.stderr
    r = mlctl("-C", root, "validate", env={"MLCTL_RUNTIME": "kubernetes"})
    assert r.returncode == 1 and "(in MLCTL_RUNTIME)\n  at field 'MLCTL_RUNTIME'\n" in r.stderr, r.stderr
    assert "set MLCTL_RUNTIME=local or unset it" in r.stderr
    (proj / "mlctl.yaml").unlink()
    r = mlctl("-C", root, "validate", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["runtime"] == {"name": "local", "source": None}


@pytest.mark.parametrize("how", ["option", "variable"])
def test_an_unknown_runtime_given_for_a_run_names_the_option_or_variable(proj, how):
    args, env, where = (
        (["--runtime", "dokcer"], {}, "--runtime")
        if how == "option"
        else ([], {"MLCTL_RUNTIME": "dokcer"}, "MLCTL_RUNTIME")
    )
    r = mlctl("-C", str(proj), *args, "validate", env=env)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert (
        f"Error: unknown runtime 'dokcer' ({'given with' if how == 'option' else 'in'} {where})\n"
        f"  at field '{where}'\n  Use one of: docker, kubernetes, local, ray. Did you mean 'docker'?\n" in r.stderr
    ), r.stderr
    with pytest.raises(MlctlError) as e:
        load_project_file(at(proj, runtime_override="dokcer") if how == "option" else at(proj), environ=env)
    assert [d.field for d in e.value.diagnostics] == [where]


@pytest.mark.parametrize("case", CASES)
def test_each_bad_project_file_fails_validate_and_plan_with_its_location(case, tmp_path):
    exp = json.loads((BAD / case / "expect.json").read_text())
    files = [a for f in exp.get("files", ()) for a in ("-f", f)]
    state = tmp_path / "state.json"
    for command in (["validate"], ["plan", "--refresh=false"]):
        r = mlctl("-C", str(BAD / case), "--state", str(state), *files, *command)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "Traceback" not in r.stderr and r.stdout == ""
        assert exp["message"] in r.stderr, r.stderr
        where = exp["file"] if exp["line"] is None else f"{exp['file']}:{exp['line']}"
        assert f"  at {where}" + (f", field '{exp['field']}'" if exp.get("field") else "") in r.stderr, r.stderr
    assert not state.exists()


def test_all_errors_at_once_with_the_configs(proj):
    (proj / "endpoint.yml").write_text(ENDPOINT + "auth_mode: keys\n")
    (proj / "mlctl.yaml").write_text("runtime: local\nlocal:\n  base_image: x\nray: {address: nowhere}\n")
    r = mlctl("-C", str(proj), "--runtime", "kubernetes", "validate")
    assert r.returncode == 1 and "Configuration is invalid: 4 errors." in r.stderr, r.stderr
    found = [line.strip() for line in r.stderr.splitlines() if line.startswith("  at ")]
    assert found == [
        "at field '--runtime'",
        "at endpoint.yml:5, field 'auth_mode'",
        "at mlctl.yaml:3, field 'local.base_image'",
        "at mlctl.yaml:4, field 'ray.address'",
    ], r.stderr


def test_the_project_file_is_never_read_as_config_nor_noted(proj):
    (proj / "mlctl.yaml").write_text("runtime: local\n")
    (proj / "mlctl.yml.orig").write_text("x")
    (proj / "conda.yml").write_text("dependencies: [python=3.11]\n")
    r = mlctl("-C", str(proj), "validate")
    assert r.returncode == 0, r.stderr
    assert "Note: skipped conda.yml: no $schema or kind" in r.stderr and "mlctl.yaml" not in r.stderr
    # a project file shaped like an endpoint is still the project file: its fields are errors, not an endpoint
    (proj / "mlctl.yaml").write_text("kind: endpoint\nname: ep-two\n")
    config = load_config(at(proj))
    assert [(d.summary, d.line) for d in config.errors] == [("unknown field 'kind'", 1), ("unknown field 'name'", 2)]


def test_a_saved_plan_goes_stale_when_the_project_file_changes(proj, tmp_path):
    root, plan = str(proj), str(tmp_path / "plan.json")
    for before, after, moved in [
        (None, "runtime: local\n", "mlctl.yaml is new"),
        ("runtime: local\n", ALL_BLOCKS, "mlctl.yaml changed"),
        (ALL_BLOCKS, None, "mlctl.yaml was removed or is no longer read"),
    ]:
        if before is not None:
            (proj / "mlctl.yaml").write_text(before)
        r = mlctl("-C", root, "plan", "--refresh=false", "--out", plan)
        assert r.returncode == 0, r.stderr
        if after is None:
            (proj / "mlctl.yaml").unlink()
        else:
            (proj / "mlctl.yaml").write_text(after)
        r = mlctl("-C", root, "apply", plan, "--auto-approve")
        assert r.returncode == 1 and f"Error: the saved plan is stale: {moved}\n" in r.stderr, r.stderr
        assert not (proj / ".mlctl" / "state.json").exists()
    # the plan's inputs name the project file relative to the project
    assert json.loads(Path(plan).read_text())["binding"]["inputs"]["mlctl.yaml"].startswith("sha256:")
