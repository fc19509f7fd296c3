"""`mlctl convert v1` field by field: the diabetes example's v1 files (tests/convert/v1/diabetes, written
from v1's documented schema) converted with the real CLI, each generated field checked against a
literal; the header lists what was not carried over; keys never reach a file or the terminal;
no overwrite without --force, nothing half-written; several -m; NAME:VERSION of a project model."""

from __future__ import annotations

import json

import yaml
from e2e_support import mlctl
from v1_support import V1

SCHEMA = "https://azuremlschemas.azureedge.net/latest/{}.schema.json"
V1_KEYS = [v for v in json.loads((V1 / "diabetes" / "deploymentconfig-aks.json").read_text())["keys"].values()]


def convert(project, form: str, *more: str, check: bool = True):
    return mlctl(
        project,
        "convert",
        "v1",
        "--name",
        "diabetes",
        "-m",
        "model",
        "--ic",
        "v1/inferenceconfig.json",
        "--dc",
        f"v1/deploymentconfig-{form}.json",
        *more,
        check=check,
    )


def read(project, name: str) -> tuple[str, dict]:
    """(header comment as one line, document) of a generated file."""
    text = (project / name).read_text()
    header = " ".join(line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#"))
    return header, yaml.safe_load(text)


ENVIRONMENT = {
    "$schema": SCHEMA.format("environment"),
    "name": "diabetes-env",
    "image": "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest",
    "conda_file": "environment/conda.yml",
}  # condaFile is relative to sourceDirectory, as in v1
MODEL = {"$schema": SCHEMA.format("model"), "name": "model", "path": "model/"}
DEPLOYMENT = {
    "$schema": SCHEMA.format("managedOnlineDeployment"),
    "name": "blue",
    "endpoint_name": "diabetes",
    "description": "Ridge regression on the diabetes data set",
    "model": "azureml:model@latest",
    "code_configuration": {"code": "diabetes-app/", "scoring_script": "onlinescoring/score.py"},  # v1's layout
    "environment": "azureml:diabetes-env@latest",
}


def test_the_aks_form_maps_field_by_field(v1_project):
    out = convert(v1_project, "aks")
    assert out.stdout.splitlines()[:4] == [
        "Wrote diabetes-endpoint.yml",
        "Wrote diabetes-blue-deployment.yml",
        "Wrote diabetes-environment.yml",
        "Wrote diabetes-model.yml",
    ]
    assert "Plan: 6 to add, 0 to change, 0 to replace, 0 to destroy." in out.stdout  # mlctl plan's own output
    _, deployment = read(v1_project, "diabetes-blue-deployment.yml")
    assert deployment == {
        **DEPLOYMENT,
        "instance_type": "Standard_D2a_v4",  # cpuLimit 2, memoryInGBLimit 8: the smallest size holding both
        "instance_count": 2,  # autoscaled, no numReplicas: autoScaler.minReplicas
        "scale_settings": {
            "type": "target_utilization",
            "min_instances": 2,
            "max_instances": 4,
            "target_utilization_percentage": 60,
            "polling_interval": 10,
        },
        "request_settings": {
            "request_timeout_ms": 30000,
            "max_concurrent_requests_per_instance": 2,
            "max_queue_wait_ms": 1500,
        },
        "liveness_probe": {
            "period": 5,
            "initial_delay": 3,
            "timeout": 4,
            "success_threshold": 1,
            "failure_threshold": 6,
        },
        "app_insights_enabled": False,
    }
    # the converted settings are honoured: the deployment autoscales in [2, 4] (local runtime, issue 29)
    from mlctl.projectpaths import Project
    from mlctl.schemas.load import load_config

    config = load_config(Project.at(v1_project, state_path=v1_project / ".mlctl" / "state.json"))
    attributes = config.resource("deployment.diabetes.blue").attributes
    assert attributes["scale_settings"] == {
        "type": "target_utilization",
        "min_instances": 2,
        "max_instances": 4,
        "target_utilization_percentage": 60,
        "polling_interval": 10,
        "stabilization_window": 300,
    }
    assert attributes["instance_count"] == 2
    header, endpoint = read(v1_project, "diabetes-endpoint.yml")
    assert endpoint == {
        "$schema": SCHEMA.format("managedOnlineEndpoint"),
        "name": "diabetes",
        "auth_mode": "key",
        "traffic": {"blue": 100},
    }
    assert "v1 served diabetes without authentication (authEnabled: false)" in header
    assert "v1/deploymentconfig-aks.json keys: keys are never written" in header
    assert read(v1_project, "diabetes-environment.yml")[1] == ENVIRONMENT
    assert read(v1_project, "diabetes-model.yml")[1] == MODEL
    header = read(v1_project, "diabetes-blue-deployment.yml")[0]
    assert "v1/deploymentconfig-aks.json dataCollection: v1 model data collection" in header
    assert "v1/deploymentconfig-aks.json namespace: the Kubernetes namespace" in header


def test_the_aci_form_maps_field_by_field(v1_project):
    convert(v1_project, "aci")
    _, deployment = read(v1_project, "diabetes-blue-deployment.yml")
    assert deployment == {
        **DEPLOYMENT,
        "instance_type": "Standard_F2s_v2",  # 1.5 CPUs, 4 GB
        "instance_count": 1,
        "app_insights_enabled": True,
    }
    header, endpoint = read(v1_project, "diabetes-endpoint.yml")
    assert endpoint == {
        "$schema": SCHEMA.format("managedOnlineEndpoint"),
        "name": "diabetes",
        "description": "diabetes progression scores",
        "auth_mode": "key",
        "traffic": {"blue": 100},
    }
    flat = header
    for field, why in [
        ("sslEnabled", "Azure serves https with its own certificate; mlctl's TLS is listen.tls"),
        ("dnsNameLabel", "the endpoint's host name is"),
        ("location", "an endpoint is created in its workspace's region"),
        ("tags", "v1 service tags are workspace metadata"),
    ]:
        assert f"v1/deploymentconfig-aci.json {field}: {why}" in flat, flat
    assert "without authentication" not in flat  # authEnabled: true
    assert "baseImageRegistry" not in read(v1_project, "diabetes-environment.yml")[0]  # all null: not given


def test_token_auth_local_port_and_a_long_timeout(v1_project):
    (v1_project / "v1" / "deploymentconfig-tok.json").write_text(
        json.dumps(
            {
                "computeType": "aks",
                "tokenAuthEnabled": True,
                "authEnabled": False,
                "numReplicas": 3,
                "scoringTimeoutMs": 300000,
                "gpuCores": 1,
            }
        )
    )
    (v1_project / "v1" / "deploymentconfig-local.json").write_text(json.dumps({"computeType": "local", "port": 32267}))
    convert(v1_project, "tok")
    header, deployment = read(v1_project, "diabetes-blue-deployment.yml")
    assert read(v1_project, "diabetes-endpoint.yml")[1]["auth_mode"] == "aml_token"
    assert (deployment["instance_count"], deployment["request_settings"]) == (3, {"request_timeout_ms": 180000})
    assert "scale_settings" not in deployment  # numReplicas given: v1 did not autoscale
    assert deployment["instance_type"] == "Standard_NC4as_T4_v3"  # gpuCores 1: a whole GPU (not 1/6 of an A10)
    assert "scoringTimeoutMs 300000 is more than current deployments allow" in header
    convert(v1_project, "local", "--force")
    endpoint = read(v1_project, "diabetes-endpoint.yml")[1]
    assert (endpoint["port"], endpoint["auth_mode"]) == (32267, "key")


def test_a_gpu_request_gets_a_size_with_a_whole_gpu(v1_project):
    (v1_project / "v1" / "deploymentconfig-gpu.json").write_text(
        json.dumps(
            {
                "computeType": "aks",
                "numReplicas": 1,
                "containerResourceRequirements": {"cpu": 1, "memoryInGB": 4, "gpu": 1},
            }
        )
    )
    convert(v1_project, "gpu")
    assert read(v1_project, "diabetes-blue-deployment.yml")[1]["instance_type"] == "Standard_NC4as_T4_v3"


def test_keys_and_registry_credentials_are_never_written_or_printed(v1_project):
    ic = json.loads((v1_project / "v1" / "inferenceconfig.json").read_text())
    ic["baseImageRegistry"] = {
        "address": "myregistry.azurecr.io",
        "username": "svc-user-5d1e",
        "password": "pw-8c2b-secret",
    }
    (v1_project / "v1" / "inferenceconfig.json").write_text(json.dumps(ic))
    out = convert(v1_project, "aks")
    written = "".join(p.read_text() for p in v1_project.glob("diabetes-*.yml"))
    for secret in [*V1_KEYS, "svc-user-5d1e", "pw-8c2b-secret"]:
        assert secret not in written and secret not in out.stdout + out.stderr
    header, environment = read(v1_project, "diabetes-environment.yml")
    assert environment["image"] == "myregistry.azurecr.io/mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"
    assert "baseImageRegistry.password: registry credentials are never written" in header


def test_entry_script_without_source_directory_and_an_environment_block(v1_project):
    (v1_project / "v1" / "env.json").write_text(
        json.dumps(
            {
                "entryScript": "../onlinescoring/score.py",
                "environment": {
                    "name": "my-deploy-env",
                    "version": "2",
                    "environmentVariables": {"MODE": "fast", "N": 2},
                    "python": {
                        "userManagedDependencies": False,
                        "interpreterPath": "python",
                        "condaDependencies": {
                            "channels": ["conda-forge"],
                            "dependencies": ["python=3.11", {"pip": ["joblib"]}],
                        },
                    },
                    "docker": {
                        "baseImage": "mcr.microsoft.com/azureml/minimal-ubuntu22.04-py311-cpu-inference",
                        "enabled": False,
                        "arguments": [],
                    },
                    "inferencingStackVersion": None,
                },
                "condaFile": "ignored.yml",
            }
        )
    )
    mlctl(v1_project, "convert", "v1", "--name", "diabetes", "-m", "model", "--ic", "v1/env.json")
    header, deployment = read(v1_project, "diabetes-blue-deployment.yml")
    assert deployment["code_configuration"] == {"code": "onlinescoring/", "scoring_script": "score.py"}
    assert deployment["environment_variables"] == {"MODE": "fast", "N": "2"}
    assert deployment["environment"] == "azureml:my-deploy-env@latest"
    env_header, environment = read(v1_project, "diabetes-environment.yml")
    assert environment == {
        "$schema": SCHEMA.format("environment"),
        "name": "my-deploy-env",
        "version": "2",
        "image": "mcr.microsoft.com/azureml/minimal-ubuntu22.04-py311-cpu-inference",
        "conda_file": "diabetes-env/conda.yml",
    }
    assert yaml.safe_load((v1_project / "diabetes-env" / "conda.yml").read_text()) == {
        "channels": ["conda-forge"],
        "dependencies": ["python=3.11", {"pip": ["joblib"]}],
    }
    assert "v1/env.json condaFile: v1 ignores it when an environment block is given" in env_header
    assert "environment.python.interpreterPath: the environment's Python comes from its conda file" in env_header


def test_a_windows_file_with_a_byte_order_mark_and_backslashes(v1_project):
    (v1_project / "v1" / "win.json").write_text(
        "\ufeff"
        + json.dumps(
            {
                "entryScript": "score.py",
                "sourceDirectory": "..\\onlinescoring",
                "condaFile": "..\\environment\\conda.yml",
            }
        ),
        encoding="utf-8",
    )
    mlctl(v1_project, "convert", "v1", "--name", "diabetes", "-m", "model", "--ic", "v1/win.json")
    assert read(v1_project, "diabetes-blue-deployment.yml")[1]["code_configuration"] == {
        "code": "diabetes-app/",
        "scoring_script": "onlinescoring/score.py",
    }
    assert read(v1_project, "diabetes-environment.yml")[1]["conda_file"] == "environment/conda.yml"


def test_nothing_is_overwritten_without_force_and_nothing_half_written(v1_project):
    convert(v1_project, "aci")
    before = {p.name: p.read_bytes() for p in v1_project.glob("diabetes-*.yml")}
    again = convert(v1_project, "aks", check=False)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert "not overwriting diabetes-endpoint.yml, diabetes-blue-deployment.yml" in again.stderr
    assert "Pass --force to replace them" in again.stderr
    assert {p.name: p.read_bytes() for p in v1_project.glob("diabetes-*.yml")} == before
    forced = convert(v1_project, "aks", "--force")
    assert "Wrote diabetes-endpoint.yml" in forced.stdout
    assert read(v1_project, "diabetes-blue-deployment.yml")[1]["instance_count"] == 2  # the aks form now
    assert not list(v1_project.glob(".mlctl-convert-*"))  # no staging left behind


def test_one_existing_file_stops_the_whole_write(v1_project):
    (v1_project / "diabetes-model.yml").write_text("# mine\n")
    out = convert(v1_project, "aci", check=False)
    assert out.returncode == 1 and "not overwriting diabetes-model.yml" in out.stderr
    assert sorted(p.name for p in v1_project.glob("diabetes-*")) == ["diabetes-model.yml"]
    assert (v1_project / "diabetes-model.yml").read_text() == "# mine\n"


def test_several_models_become_one_folder_laid_out_name_version(v1_project):
    (v1_project / "offset.json").write_text('{"offset": 1000}')
    out = mlctl(
        v1_project,
        "convert",
        "v1",
        "--name",
        "diabetes",
        "-m",
        "model",
        "-m",
        "offset.json",
        "--ic",
        "v1/inferenceconfig.json",
        "--out",
        "converted",
    )
    assert "Wrote converted/diabetes-models/" in out.stdout
    root = v1_project / "converted"
    files = sorted(str(p.relative_to(root)) for p in (root / "diabetes-models").rglob("*") if p.is_file())
    assert files == ["diabetes-models/model/1/model/model.pkl", "diabetes-models/offset/1/offset.json"]
    assert read(root, "diabetes-model.yml")[1]["path"] == "diabetes-models/"
    _, deployment = read(root, "diabetes-blue-deployment.yml")
    assert deployment["model"] == "azureml:diabetes-models@latest"
    assert deployment["code_configuration"] == {"code": "diabetes-app/", "scoring_script": "onlinescoring/score.py"}


def test_name_version_names_a_model_the_project_defines(v1_project):
    (v1_project / "model.yml").write_text(
        f"$schema: {SCHEMA.format('model')}\nname: diabetes-ridge\nversion: 3\npath: model/\n"
    )
    mlctl(
        v1_project,
        "convert",
        "v1",
        "--name",
        "diabetes",
        "-m",
        "azureml:diabetes-ridge:3",
        "--ic",
        "v1/inferenceconfig.json",
    )
    assert read(v1_project, "diabetes-blue-deployment.yml")[1]["model"] == "azureml:diabetes-ridge:3"
    assert not (v1_project / "diabetes-model.yml").exists()
    missing = mlctl(
        v1_project,
        "convert",
        "v1",
        "--name",
        "other",
        "-m",
        "diabetes-ridge:4",
        "--ic",
        "v1/inferenceconfig.json",
        check=False,
    )
    assert missing.returncode == 1
    assert "-m diabetes-ridge:4: the project defines no model diabetes-ridge:4" in missing.stderr
    assert "(it has: diabetes-ridge:3)" in missing.stderr and not list(v1_project.glob("other-*"))
    elsewhere = mlctl(
        v1_project,
        "convert",
        "v1",
        "--name",
        "other",
        "-m",
        "diabetes-ridge:3",
        "--ic",
        "v1/inferenceconfig.json",
        "--out",
        "elsewhere",
        check=False,
    )
    assert (
        elsewhere.returncode == 1
        and "names a model of the project, and --out elsewhere is another folder" in elsewhere.stderr
        and not (v1_project / "elsewhere").exists()
    )


def test_help_reads_well():
    from v1_support import REPO

    out = mlctl(REPO, "convert", "v1", "--help").stdout
    for words in [
        "--name SERVICE",
        "-m, --model MODEL",
        "--ic FILE",
        "--dc FILE",
        "--out DIR",
        "--force",
        "az ml model deploy",
    ]:
        assert words in out
    assert "convert" in mlctl(REPO, "--help").stdout


def test_v1_files_written_as_yaml_convert_as_their_json(v1_project, tmp_path):
    """The v1 CLI read --ic/--dc as JSON or YAML: the same fields in YAML give the same documents."""
    for name in ("inferenceconfig.json", "deploymentconfig-aks.json"):
        data = json.loads((v1_project / "v1" / name).read_text())
        (v1_project / "v1" / name.replace(".json", ".yml")).write_text(yaml.safe_dump(data))
    convert(v1_project, "aks", "--out", "from-json")
    mlctl(
        v1_project,
        "convert",
        "v1",
        "--name",
        "diabetes",
        "-m",
        "model",
        "--ic",
        "v1/inferenceconfig.yml",
        "--dc",
        "v1/deploymentconfig-aks.yml",
        "--out",
        "from-yaml",
    )
    for kind in ("endpoint", "blue-deployment", "environment", "model"):
        assert (
            read(v1_project / "from-yaml", f"diabetes-{kind}.yml")[1]
            == read(v1_project / "from-json", f"diabetes-{kind}.yml")[1]
        )


def test_aks_without_a_timeout_keeps_v1s_60_seconds_and_aci_gets_none(v1_project):
    for form in ("aks", "aci"):
        dc = v1_project / "v1" / f"deploymentconfig-{form}.json"
        data = json.loads(dc.read_text())
        data.pop("scoringTimeoutMs", None)
        dc.write_text(json.dumps(data))
    convert(v1_project, "aks")
    assert read(v1_project, "diabetes-blue-deployment.yml")[1]["request_settings"]["request_timeout_ms"] == 60000
    convert(v1_project, "aci", "--force")
    assert "request_settings" not in read(v1_project, "diabetes-blue-deployment.yml")[1]


def test_model_name_equals_path(v1_project):
    mlctl(
        v1_project,
        "convert",
        "v1",
        "--name",
        "diabetes",
        "-m",
        "my_first_model=model",
        "--ic",
        "v1/inferenceconfig.json",
    )
    assert read(v1_project, "diabetes-model.yml")[1]["name"] == "my_first_model"
    bad = mlctl(
        v1_project,
        "convert",
        "v1",
        "--name",
        "other",
        "-m",
        "m1=nothere.pkl",
        "--ic",
        "v1/inferenceconfig.json",
        check=False,
    )
    assert bad.returncode == 1 and "-m m1=nothere.pkl: no such file or folder nothere.pkl" in bad.stderr
