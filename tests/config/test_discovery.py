"""Project discovery: which YAML files are read, which are skipped (with a note), -f, and `mlctl validate`."""

from __future__ import annotations

import json
import subprocess
import sys
import shutil
from pathlib import Path

from loader_helpers import write_tree
from mlctl.projectpaths import Project
from mlctl.schemas.discovery import kind_from_schema_url
from mlctl.schemas.load import load_config

ENDPOINT = "$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json\nname: ep-one\n"


def test_schema_urls_name_kinds():
    base = "https://azuremlschemas.azureedge.net/latest/"
    assert kind_from_schema_url(base + "managedOnlineEndpoint.schema.json") == "endpoint"
    assert kind_from_schema_url(base + "managedOnlineDeployment.schema.json") == "deployment"
    assert kind_from_schema_url(base + "model.schema.json") == "model"
    assert kind_from_schema_url(base + "environment.schema.json") == "environment"
    assert (
        kind_from_schema_url("https://azuremlsdk2.blob.core.windows.net/latest/managedOnlineEndpoint.schema.json")
        == "endpoint"
    )
    assert kind_from_schema_url(base + "commandJob.schema.json") is None
    # a Kubernetes online endpoint is the same YAML served on an Azure Arc cluster (the corpus case kubernetes-blue)
    assert kind_from_schema_url(base + "kubernetesOnlineEndpoint.schema.json") == "endpoint"
    assert kind_from_schema_url(base + "kubernetesOnlineDeployment.schema.json") == "deployment"
    assert kind_from_schema_url(base + "batchEndpoint.schema.json") is None


def test_other_yaml_is_skipped_with_one_note_each(tmp_path):
    root = write_tree(
        tmp_path / "p",
        {
            "endpoint.yml": ENDPOINT,
            "conda.yml": "name: env\ndependencies: [python=3.11]\n",
            "job.yaml": "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\ncommand: echo\n",
            "looks.yml": "name: blue\nendpoint_name: ep-one\n",
            "empty.yml": "",
            "readme.txt": "not yaml: [",
            "sub/endpoint.yml": ENDPOINT.replace("ep-one", "ep-sub"),
            ".mlctl/state.yml": "{",
        },
    )
    config = load_config(Project.at(root, state_path=tmp_path / "s" / "state.json"))
    assert not config.errors
    notes = sorted(tuple(d.summary.removeprefix("skipped ").split(": ", 1)) for d in config.diagnostics)
    assert notes == [
        ("conda.yml", "no $schema or kind"),
        ("empty.yml", "empty, not an mlctl kind"),
        ("job.yaml", "$schema 'commandJob.schema.json' is not a kind mlctl reads"),
        (
            "looks.yml",
            "no $schema or kind (it looks like a deployment: add 'kind: deployment' or the Azure "
            "'$schema:' URL to read it)",
        ),
    ]
    assert all(d.severity == "note" and d.summary.startswith("skipped ") for d in config.diagnostics)
    assert all(len(d.format().splitlines()) == 1 for d in config.diagnostics)  # one line each
    assert [str(r.address) for r in config.resources] == ["endpoint.ep-one", "traffic.ep-one"]


def test_explicit_kind_without_schema(tmp_path):
    root = write_tree(tmp_path / "p", {"e.yaml": "kind: endpoint\nname: ep-two\nauth_mode: aml_token\n"})
    config = load_config(Project.at(root, state_path=tmp_path / "s" / "state.json"))
    assert config.resource("endpoint.ep-two").attributes["auth_mode"] == "aml_token"


def test_f_names_the_files_to_read(tmp_path):
    root = write_tree(
        tmp_path / "p",
        {
            "a.yml": ENDPOINT,
            "b.yml": ENDPOINT.replace("ep-one", "ep-two"),
            "conf/c.yml": ENDPOINT.replace("ep-one", "ep-three"),
        },
    )
    config = load_config(Project.at(root, files=["b.yml", "conf/c.yml"], state_path=tmp_path / "s" / "state.json"))
    assert [str(r.address) for r in config.resources if r.kind.value == "endpoint"] == [
        "endpoint.ep-three",
        "endpoint.ep-two",
    ]
    shared = root / "_shared"  # inside the project: mlctl reads nothing outside it
    shutil.copytree(Path(__file__).parent / "bad" / "_shared", shared)
    write_tree(
        root,
        {
            "m.yml": f"kind: model\nname: m\nversion: 1\npath: {shared}/model\n",
            "d.yml": f"kind: deployment\nname: blue\nendpoint_name: ep-one\nmodel: azureml:m:1\n"
            f"code_configuration: {{code: {shared}/onlinescoring, scoring_script: score.py}}\n",
        },
    )
    config = load_config(Project.at(root, files=["d.yml"], state_path=tmp_path / "s" / "state.json"))
    assert [d.detail for d in config.errors] == [
        "Define the endpoint in an endpoint YAML (and name that file with -f too) or fix 'endpoint_name'."
    ]
    config = load_config(Project.at(root, files=["d.yml", "a.yml"], state_path=tmp_path / "s" / "state.json"))
    assert [d.detail for d in config.errors] == [
        "Define it in a model YAML (with the Azure $schema URL or 'kind: model'), and name that file with -f too "
        "(only the -f files are read)."
    ]


def test_a_missing_project_folder_is_an_error(tmp_path):
    config = load_config(Project.at(tmp_path / "nope", state_path=tmp_path / "s" / "state.json"))
    assert [d.summary for d in config.errors] == [f"project folder {tmp_path / 'nope'} does not exist"]
    (tmp_path / "file.yml").write_text("kind: endpoint\nname: ep-one\n")
    config = load_config(Project.at(tmp_path / "file.yml", state_path=tmp_path / "s" / "state.json"))
    assert [d.summary for d in config.errors] == [f"project folder {tmp_path / 'file.yml'} is not a folder"]


def run_validate(root, tmp_path, *args):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mlctl.cli",
            "-C",
            str(root),
            "--state",
            str(tmp_path / "s" / "state.json"),
            "validate",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_validate_command_on_the_example(trained_example, tmp_path):
    proc = run_validate(trained_example, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Configuration is valid: 6 resources.\n"
    assert "Note: deployment.diabetes.blue: ignored (cloud-only, not used by mlctl): instance_type" in proc.stderr
    proc = run_validate(trained_example, tmp_path, "--json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and doc["valid"] is True and doc["error_count"] == 0
    assert doc["resources"][0] == "deployment.diabetes.blue"
    assert doc["ignored"]["environment.diabetes-blue-env"] == ["image"]


def test_validate_command_prints_notes_and_json_errors(tmp_path):
    root = write_tree(
        tmp_path / "p", {"endpoint.yml": ENDPOINT + "auth_mode: keys\n", "conda.yml": "dependencies: []\n"}
    )
    proc = run_validate(root, tmp_path)
    assert proc.returncode == 1
    assert "Note: skipped conda.yml: no $schema or kind" in proc.stderr
    assert "Error: 'auth_mode' is 'keys'" in proc.stderr and "endpoint.yml:3, field 'auth_mode'" in proc.stderr
    assert proc.stderr.rstrip().endswith("Configuration is invalid: 1 error.")
    proc = run_validate(root, tmp_path, "--json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1 and doc["valid"] is False
    assert [(d["severity"], d["line"], d["field"]) for d in doc["diagnostics"]] == [
        ("note", None, None),
        ("error", 3, "auth_mode"),
    ]
