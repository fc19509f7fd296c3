"""The bad-input corpus: tests/config/bad/<case>/ holds a project and expect.json (message, file, line, field).

Every case goes through load_config; a sample also through `mlctl validate` as a subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlctl.reconciler.operations import make_plan
from mlctl.errors import MlctlError
from mlctl.projectpaths import Project
from mlctl.schemas.load import load_config

BAD = Path(__file__).parent / "bad"
CASES = sorted(p.name for p in BAD.iterdir() if p.is_dir() and not p.name.startswith("_"))


def expectation(case: str) -> dict:
    return json.loads((BAD / case / "expect.json").read_text())


def project(case: str, tmp_path: Path) -> Project:
    exp = expectation(case)
    return Project.at(BAD / case, files=exp.get("files", ()), state_path=tmp_path / "state.json")


def test_corpus_is_large_enough():
    assert len(CASES) >= 30


def plan_errors(case: str, tmp_path: Path) -> list:
    """The errors `mlctl plan --refresh=false` meets for a case that comes with a prior state.json
    (a copy: the test also proves it is never overwritten)."""
    state = tmp_path / "state.json"
    shutil.copy(BAD / case / "state.json", state)
    before = state.read_bytes()
    with pytest.raises(MlctlError) as e:
        make_plan(Project.at(BAD / case, state_path=state), refresh_first=False)
    assert state.read_bytes() == before
    return [d for d in e.value.diagnostics if d.severity == "error"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_reported_with_file_line_and_field(case, tmp_path):
    exp = expectation(case)
    if (BAD / case / "state.json").exists():  # found when planning against what was applied
        errors = plan_errors(case, tmp_path)
    else:
        config = load_config(project(case, tmp_path))
        assert config.resources == ()
        errors = config.errors
    assert errors, f"{case}: no error reported; diagnostics: {config.diagnostics}"
    matching = [d for d in errors if exp["message"] in d.summary + " " + d.detail]
    assert matching, f"{case}: no error says {exp['message']!r}; got:\n" + "\n".join(d.format() for d in errors)
    d = matching[0]
    if exp["file"]:
        assert d.file is not None and Path(d.file).name == exp["file"], d.format()
        # config files are shown relative to the project folder; the state file is where --state put it
        assert d.file == (str(tmp_path / "state.json") if exp["file"] == "state.json" else exp["file"]), d.format()
    if exp["line"] is not None:
        assert d.line == exp["line"], d.format()
    if "field" in exp:
        assert d.field == exp["field"], d.format()
    assert d.detail, f"{case}: the error does not say what to do: {d.format()}"


SAMPLE = [
    "yaml-syntax",
    "unknown-field",
    "traffic-total",
    "unknown-endpoint",
    "scoring-script-missing",
    "model-conflicting-content",
    "conda-file-syntax",
    "model-path-is-a-device",
    "env-var-nul",
]


@pytest.mark.parametrize("case", SAMPLE)
def test_validate_command_exits_1_and_prints_the_location(case, tmp_path):
    exp = expectation(case)
    proc = subprocess.run(
        [sys.executable, "-m", "mlctl.cli", "-C", str(BAD / case), "--state", str(tmp_path / "state.json"), "validate"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=BAD / case,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert exp["message"] in proc.stderr
    assert f"{exp['file']}:{exp['line']}" in proc.stderr
    assert "Configuration is invalid" in proc.stderr


def test_all_errors_of_a_run_are_reported_together(tmp_path):
    root = tmp_path / "p"
    (root).mkdir()
    shared = BAD / "_shared"
    (root / "endpoint.yml").write_text("kind: endpoint\nname: ep-one\nauth_mode: keys\ntraffic:\n  blue: 50\n")
    (root / "blue.yml").write_text(
        f"kind: deployment\nname: blue\nendpoint_name: ep-one\ninstance_cout: 2\nmodel:\n  path: {shared}/model\n"
        f"code_configuration:\n  code: {shared}/nothing\n  scoring_script: score.py\n"
    )
    config = load_config(Project.at(root, state_path=tmp_path / "s.json"))
    found = sorted((Path(d.file).name, d.line, d.field) for d in config.errors)
    assert found == [
        ("blue.yml", 4, "instance_cout"),
        ("blue.yml", 8, "code_configuration.code"),
        ("endpoint.yml", 3, "auth_mode"),
    ], found


STATE_CORRUPTIONS = [
    "state-pending-wrong-type",
    "state-attributes-not-object",
    "state-malformed-address",
    "state-bad-status",
]


@pytest.mark.parametrize("case", STATE_CORRUPTIONS)
@pytest.mark.parametrize("command", [["plan", "--refresh=false"], ["state", "list"]])
def test_a_corrupted_state_file_is_a_clear_error_of_every_command(case, command, tmp_path):
    """The whole state document is validated against its JSON Schema: exit 1, what is wrong at which
    line and JSON path, how to recover, no traceback, the file untouched."""
    exp = expectation(case)
    state = tmp_path / "state.json"
    shutil.copy(BAD / case / "state.json", state)
    before = state.read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "mlctl.cli", "-C", str(BAD / case), "--state", str(state), *command],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=BAD / case,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert exp["message"] in proc.stderr
    assert f"state.json:{exp['line']}, field '{exp['field']}'" in proc.stderr, proc.stderr
    assert "Restore it from state.json.backup beside it" in proc.stderr
    assert state.read_bytes() == before


def validate(root: Path, tmp_path: Path, *files: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mlctl.cli",
            "-C",
            str(root),
            "--state",
            str(tmp_path / "state.json"),
            *(a for f in files for a in ("-f", f)),
            "validate",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
    )


def hostile_project(tmp_path: Path) -> Path:
    """A copy of the code-is-a-file case made valid: a model folder and code folder of its own."""
    root = tmp_path / "p"
    shutil.copytree(BAD / "_shared", root / "_shared")
    shutil.copy(BAD / "code-is-a-file" / "endpoint.yml", root)
    (root / "blue.yml").write_text(
        (BAD / "code-is-a-file" / "blue.yml")
        .read_text()
        .replace("../_shared/", "_shared/")
        .replace("onlinescoring/score.py", "onlinescoring/")
    )
    assert validate(root, tmp_path).returncode == 0
    return root


def test_a_fifo_in_a_model_folder_is_refused_with_file_and_line_not_waited_on(tmp_path):
    root = hostile_project(tmp_path)
    os.mkfifo(root / "_shared" / "model" / "weights.bin")
    r = validate(root, tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "weights.bin: not a regular file (a FIFO, device or socket)" in r.stderr, r.stderr
    assert "at blue.yml:5, field 'model.path'" in r.stderr, r.stderr


def test_a_fifo_as_a_config_file_is_refused_not_waited_on(tmp_path):
    root = hostile_project(tmp_path)
    os.mkfifo(root / "green.yml")  # found only when named: discovery lists regular files
    r = validate(root, tmp_path, "endpoint.yml", "blue.yml", "green.yml")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "cannot read green.yml: it is not a regular file" in r.stderr, r.stderr


@pytest.mark.parametrize(
    "body, message",
    [
        ("description: '" + "x" * (1024 * 1024) + "'\n", "it is larger than 1 MiB"),
        ("tags: [" + "0," * 150_000 + "]\n", "it holds more than 100,000 values"),
    ],
)
def test_an_oversized_config_file_is_refused_before_it_is_parsed(tmp_path, body, message):
    """A config file over the caps (mlctl.schemas.documents MAX_BYTES, MAX_VALUES) is one clear error,
    not seconds of parsing and hundreds of MB."""
    root = hostile_project(tmp_path)
    (root / "blue.yml").write_text((root / "blue.yml").read_text() + body)
    r = validate(root, tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"cannot read blue.yml: {message}" in r.stderr, r.stderr


def test_a_schema_error_does_not_hide_the_files_a_document_names(tmp_path):
    """A bad name (a schema error) and a missing code folder, model and conda file: all four in one run."""
    root = tmp_path / "p"
    root.mkdir()
    (root / "endpoint.yml").write_text("kind: endpoint\nname: ep-one\n")
    (root / "blue.yml").write_text(
        "kind: deployment\nname: Blue_1\nendpoint_name: ep-one\nmodel:\n  path: nomodel\n"
        "code_configuration:\n  code: nocode\n  scoring_script: score.py\nenvironment:\n  conda_file: noconda.yml\n"
    )
    config = load_config(Project.at(root, state_path=tmp_path / "s.json"))
    found = sorted((d.line, d.field) for d in config.errors)
    assert found == [(2, "name"), (5, "model.path"), (7, "code_configuration.code"), (10, "environment.conda_file")]
