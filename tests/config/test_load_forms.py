"""Both Azure forms load to identical Resources; names, versions, defaults and digests are as documented."""

from __future__ import annotations

import shutil
from pathlib import Path

from loader_helpers import write_tree
from mlctl.projectpaths import Project
from mlctl.resources import Address
from mlctl.schemas.load import PATH_ATTRIBUTES, load_config


def identity(config):
    """What must agree between two loads: address, attributes, digest, edges and files of each resource."""
    return [
        (str(r.address), dict(r.attributes), r.digest, tuple(map(str, r.depends_on)), dict(r.files))
        for r in config.resources
    ]


def load(root: Path, tmp: Path, files=()):
    config = load_config(Project.at(root, files=files, state_path=tmp / "state" / "state.json"))
    assert not config.errors, "\n".join(d.format() for d in config.errors)
    return config


def test_example_current_and_2021_forms_are_identical(trained_example, tmp_path):
    current = load(trained_example, tmp_path)
    legacy = load(trained_example / "legacy", tmp_path)
    assert identity(current) == identity(legacy)
    assert [str(r.address) for r in current.resources] == [
        "deployment.diabetes.blue",
        "endpoint.diabetes",
        "environment.diabetes-blue-env",
        "image.diabetes-blue-env",
        "model.diabetes-blue-model",
        "traffic.diabetes",
    ]
    # what each form ignores is its own, and never silent
    assert current.ignored == {
        "deployment.diabetes.blue": ("instance_type",),
        "environment.diabetes-blue-env": ("image",),
    }
    assert legacy.ignored == {
        "deployment.diabetes.blue": ("instance_type",),  # scale_type: manual is read (a fixed count)
        "endpoint.diabetes": ("type",),
        "environment.diabetes-blue-env": ("docker.image",),
    }


def test_resources_carry_the_line_of_each_field(trained_example, tmp_path):
    """Errors found after loading (the planner's) can name the exact line of a field."""

    def where(config, address, *fields):
        src = config.resource(address).source
        return (src.file, src.line, *(src.line_of(f) for f in fields))

    current, legacy = load(trained_example, tmp_path), load(trained_example / "legacy", tmp_path)
    assert where(
        current,
        "deployment.diabetes.blue",
        "instance_count",
        "code_configuration.scoring_script",
        "request_settings.request_timeout_ms",
    ) == ("blue-deployment.yml", 1, 13, 8, 1)
    assert where(current, "model.diabetes-blue-model", "path", "version") == ("blue-deployment.yml", 4, 5, 4)
    assert where(current, "traffic.diabetes", "traffic.blue") == ("endpoint.yml", 4, 5)
    assert where(legacy, "deployment.diabetes.blue", "scale_settings.instance_count") == ("endpoint.yml", 9, 23)
    assert where(legacy, "environment.diabetes-blue-env", "docker.image") == ("endpoint.yml", 16, 19)
    assert where(legacy, "traffic.diabetes", "traffic.blue") == ("endpoint.yml", 5, 6)


def test_example_attributes(trained_example, tmp_path):
    config = load(trained_example, tmp_path)
    dep = config.resource("deployment.diabetes.blue")
    model = config.resource("model.diabetes-blue-model")
    env = config.resource("environment.diabetes-blue-env")
    a = dict(dep.attributes)
    assert a["code"] == str(trained_example / "onlinescoring")
    assert a["scoring_script"] == "score.py"
    assert a["model"] == "diabetes-blue-model" and a["model_version"] == model.attributes["version"]
    assert model.attributes["version"] == "d" + model.attributes["content_digest"][7:17]
    assert a["model_digest"] == model.attributes["content_digest"]
    assert a["environment"] == "diabetes-blue-env" and a["image_digest"] == env.attributes["spec_digest"]
    assert a["instance_count"] == 1
    assert a["request_settings"] == {
        "request_timeout_ms": 5000,
        "max_concurrent_requests_per_instance": 1,
        "max_queue_wait_ms": 500,
    }
    probe = {"initial_delay": 10, "period": 10, "timeout": 2, "success_threshold": 1, "failure_threshold": 30}
    assert a["liveness_probe"] == a["readiness_probe"] == probe
    assert a["environment_variables"] == {} and a["tags"] == {} and a["description"] is None
    assert [str(x) for x in dep.depends_on] == [
        "endpoint.diabetes",
        "model.diabetes-blue-model",
        "image.diabetes-blue-env",
    ]
    assert set(dep.files) == {"code/score.py", "model/model.pkl"}
    assert model.attributes["path"] == str(trained_example / "model") and model.attributes["is_file"] is False
    assert {k: env.attributes[k] for k in ("python", "channels", "conda_packages", "pip_packages")} == {
        "python": ">=3.11",
        "channels": ["conda-forge"],
        "conda_packages": ["numpy==2.4.*", "pip", "scikit-learn==1.9.*"],
        "pip_packages": ["joblib"],
    }
    assert env.attributes["image"] == "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"
    image = config.resource("image.diabetes-blue-env")
    assert image.attributes["spec_digest"] == env.attributes["spec_digest"]
    assert [str(x) for x in image.depends_on] == ["environment.diabetes-blue-env"]
    traffic = config.resource("traffic.diabetes")
    assert dict(traffic.attributes) == {"endpoint": "diabetes", "traffic": {"blue": 100}, "mirror_traffic": {}}
    assert [str(x) for x in traffic.depends_on] == ["endpoint.diabetes", "deployment.diabetes.blue"]
    assert dict(config.resource("endpoint.diabetes").attributes) == {
        "name": "diabetes",
        "auth_mode": "key",
        "port": None,
        "description": None,
        "tags": {},
    }
    # inputs: every config file and every referenced file, with its sha256
    names = {Path(p).relative_to(trained_example).as_posix() for p in config.inputs}
    assert names == {
        "endpoint.yml",
        "blue-deployment.yml",
        "environment/conda.yml",
        "onlinescoring/score.py",
        "model/model.pkl",
    }
    assert all(v.startswith("sha256:") and len(v) == 71 for v in config.inputs.values())


def test_another_checkout_folder_changes_no_digest(trained_example, tmp_path):
    moved = tmp_path / "elsewhere" / "checkout"
    shutil.copytree(trained_example, moved, ignore=shutil.ignore_patterns(".mlctl"))
    a, b = load(trained_example, tmp_path / "a"), load(moved, tmp_path / "b")
    assert [r.digest for r in a.resources] == [r.digest for r in b.resources]
    for ra, rb in zip(a.resources, b.resources):
        skip = PATH_ATTRIBUTES.get(ra.kind.value, ())
        assert {k: v for k, v in ra.attributes.items() if k not in skip} == {
            k: v for k, v in rb.attributes.items() if k not in skip
        }
    assert (
        a.resource("deployment.diabetes.blue").attributes["code"]
        != b.resource("deployment.diabetes.blue").attributes["code"]
    )


def test_editing_code_changes_the_deployment_but_not_the_model(trained_example, tmp_path):
    root = tmp_path / "p"
    shutil.copytree(trained_example, root, ignore=shutil.ignore_patterns(".mlctl"))
    before = {str(r.address): r.digest for r in load(root, tmp_path / "1").resources}
    with open(root / "onlinescoring" / "score.py", "a") as f:
        f.write("# edited\n")
    after = {str(r.address): r.digest for r in load(root, tmp_path / "2").resources}
    changed = sorted(a for a in before if before[a] != after[a])
    assert changed == ["deployment.diabetes.blue"]


NAMED_SPLIT = {
    "endpoint.yml": "$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json\n"
    "name: shop\nauth_mode: aml_token\nport: 8765\ntraffic: {blue: 90, green: 10}\n"
    "mirror_traffic: {}\ntags: {team: ml, tier: 1}\n",
    "model.yml": "$schema: https://azuremlschemas.azureedge.net/latest/model.schema.json\n"
    "name: ridge\nversion: 3\npath: assets/model.pkl\ndescription: a ridge\n",
    "env.yml": "$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json\n"
    "name: sk\nversion: '1.10'\nconda_file: assets/conda.yml\n"
    "image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest\n",
    "blue.yml": "$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json\n"
    "name: blue\nendpoint_name: shop\nmodel: azureml:ridge:3\n"
    "code_configuration: {code: src, scoring_script: score.py}\n"
    "environment: azureml:sk:1.10\ninstance_count: 2\n"
    "request_settings: {request_timeout_ms: 3000}\nliveness_probe: {period: 5}\n"
    "environment_variables: {DEBUG: true, WORKERS: 2}\n",
    "green.yml": "kind: deployment\nname: green\nendpoint_name: shop\nmodel: ridge:3\n"
    "code_configuration: {code: src, scoring_script: score.py}\nenvironment: azureml:sk@latest\n",
    "assets/model.pkl": b"model bytes",
    "assets/conda.yml": "channels: [defaults]\ndependencies: [python=3.11, scikit-learn, {pip: [joblib]}]\n",
    "src/score.py": "def init(): pass\ndef run(raw): return raw\n",
}
NAMED_LEGACY = """\
$schema: https://azuremlsdk2.blob.core.windows.net/latest/managedOnlineEndpoint.schema.json
name: shop
type: online
auth_mode: aml_token
port: 8765
traffic: {blue: 90, green: 10}
tags: {team: ml, tier: '1'}
deployments:
  - name: blue
    model: {name: ridge, version: 3, local_path: ../assets/model.pkl, description: a ridge}
    code_configuration: {code: {local_path: ../src}, scoring_script: score.py}
    environment:
      name: sk
      version: '1.10'
      path: .
      conda_file: file:../assets/conda.yml
      docker: {image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest}
    scale_settings: {scale_type: manual, instance_count: 2, min_instances: 1, max_instances: 2}
    request_settings: {request_timeout_ms: 3000}
    liveness_probe: {period: 5}
    environment_variables: {DEBUG: 'true', WORKERS: '2'}
  - name: green
    model: azureml:ridge:3
    code_configuration: {code: {local_path: ../src}, scoring_script: score.py}
    environment: azureml:sk:1.10
"""


def test_named_assets_and_references_agree_across_forms(tmp_path):
    root = write_tree(tmp_path / "p", {**NAMED_SPLIT, "legacy/endpoint.yml": NAMED_LEGACY})
    (root / ".git").mkdir()  # legacy/ names ../src inside the work tree
    split = load(root, tmp_path / "s")
    legacy = load(root / "legacy", tmp_path / "l")
    assert identity(split) == identity(legacy)
    addresses = [str(r.address) for r in split.resources]
    assert addresses == [
        "deployment.shop.blue",
        "deployment.shop.green",
        "endpoint.shop",
        "environment.sk",
        "image.sk",
        "model.ridge",
        "traffic.shop",
    ]
    blue = split.resource("deployment.shop.blue").attributes
    assert (blue["model"], blue["model_version"], blue["environment"]) == ("ridge", "3", "sk")
    assert blue["instance_count"] == 2
    assert blue["request_settings"]["request_timeout_ms"] == 3000
    assert blue["request_settings"]["max_concurrent_requests_per_instance"] == 1
    assert blue["liveness_probe"]["period"] == 5 and blue["liveness_probe"]["failure_threshold"] == 30
    assert blue["environment_variables"] == {"DEBUG": "true", "WORKERS": "2"}
    model = split.resource("model.ridge").attributes
    assert model["is_file"] is True and model["version"] == "3" and model["description"] == "a ridge"
    assert split.resource("environment.sk").attributes["version"] == "1.10"
    assert split.resource("endpoint.shop").attributes["tags"] == {"team": "ml", "tier": "1"}
    assert split.resource("endpoint.shop").attributes["port"] == 8765
    assert legacy.ignored["environment.sk"] == ("docker.image", "path")


def test_derived_model_version_follows_content(tmp_path):
    root = write_tree(
        tmp_path / "p",
        {
            **NAMED_SPLIT,
            "model.yml": NAMED_SPLIT["model.yml"].replace("version: 3\n", ""),
            "blue.yml": NAMED_SPLIT["blue.yml"].replace("azureml:ridge:3", "azureml:ridge@latest"),
            "green.yml": NAMED_SPLIT["green.yml"].replace("ridge:3", "azureml:ridge@latest"),
        },
    )
    first = load(root, tmp_path / "1").resource("model.ridge").attributes["version"]
    assert first.startswith("d") and len(first) == 11
    assert load(root, tmp_path / "2").resource("model.ridge").attributes["version"] == first
    (root / "assets" / "model.pkl").write_bytes(b"retrained")
    second = load(root, tmp_path / "3")
    assert second.resource("model.ridge").attributes["version"] != first
    assert (
        second.resource("deployment.shop.blue").attributes["model_version"]
        == second.resource("model.ridge").attributes["version"]
    )


def test_deployment_without_environment_runs_in_mlctls_interpreter(tmp_path):
    files = {k: v for k, v in NAMED_SPLIT.items() if k not in ("green.yml", "env.yml")}
    files["endpoint.yml"] = files["endpoint.yml"].replace("{blue: 90, green: 10}", "{blue: 100}")
    files["blue.yml"] = files["blue.yml"].replace("environment: azureml:sk:1.10\n", "")
    config = load(write_tree(tmp_path / "p", files), tmp_path)
    dep = config.resource("deployment.shop.blue")
    assert dep.attributes["environment"] is None and dep.attributes["image_digest"] is None
    assert Address.parse("image.sk") not in [r.address for r in config.resources]
    assert [str(a) for a in dep.depends_on] == ["endpoint.shop", "model.ridge"]


def test_image_digest_ignores_formatting_and_order_of_the_conda_file(tmp_path):
    a = write_tree(tmp_path / "a", NAMED_SPLIT)
    b = write_tree(
        tmp_path / "b",
        {
            **NAMED_SPLIT,
            "assets/conda.yml": "# same spec, written differently\nname: other-name\nchannels:\n  - defaults\n"
            "dependencies:\n  - pip:\n    - Joblib\n  - Scikit-Learn\n  - python=3.11\n",
        },
    )
    da = load(a, tmp_path / "1").resource("image.sk").digest
    db = load(b, tmp_path / "2").resource("image.sk").digest
    assert da == db
    c = write_tree(
        tmp_path / "c",
        {
            **NAMED_SPLIT,
            "assets/conda.yml": "channels: [defaults]\ndependencies: [python=3.12, scikit-learn, {pip: [joblib]}]\n",
        },
    )
    assert load(c, tmp_path / "3").resource("image.sk").digest != da


def test_second_load_reads_no_file_it_already_hashed(trained_example, tmp_path):
    from loader_helpers import age
    from mlctl.digests import HashCache

    root = tmp_path / "p"
    shutil.copytree(trained_example, root, ignore=shutil.ignore_patterns(".mlctl"))
    age(root)
    project = Project.at(root, state_path=tmp_path / "data" / "state.json")
    first = load_config(project)
    cache_file = tmp_path / "data" / "hashcache.json"
    assert cache_file.is_file() and (tmp_path / "data" / ".gitignore").is_file()
    cache = HashCache.load(cache_file)
    second = load_config(project, cache=cache)
    assert cache.computed == 0 and cache.hits == 3  # conda.yml, score.py, model.pkl
    assert identity(first) == identity(second)


def test_an_empty_model_folder_and_an_environment_without_packages_are_warned_about(tmp_path):
    files = {k: v for k, v in NAMED_SPLIT.items() if k != "assets/model.pkl"}
    files["model.yml"] = files["model.yml"].replace("path: assets/model.pkl", "path: empty")
    files["env.yml"] = files["env.yml"].replace("conda_file: assets/conda.yml\n", "")
    root = write_tree(tmp_path / "p", files)
    (root / "empty").mkdir()
    config = load(root, tmp_path)
    warnings = [(d.file, d.line, d.summary) for d in config.diagnostics if d.severity == "warning"]
    assert warnings == [
        (
            "env.yml",
            1,
            "environment 'sk' has no conda_file: the local runtime installs no packages for it "
            "(the image mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest is not used)",
        ),
        ("model.yml", 4, f"model 'ridge' has no files: {root / 'empty'} is empty"),
    ]
    assert config.resources  # warnings do not stop a load


def test_a_custom_container_without_packages_is_not_warned_about(tmp_path):
    """An environment with inference_config is a custom container: its image serves as it is (Azure's
    minimal custom-container examples give no conda_file), so no 'installs no packages' warning."""
    files = dict(NAMED_SPLIT)
    files["env.yml"] = files["env.yml"].replace("conda_file: assets/conda.yml\n", "") + (
        "inference_config:\n  liveness_route: {path: /, port: 5001}\n  readiness_route: {path: /, port: 5001}\n"
        "  scoring_route: {path: /score, port: 5001}\n"
    )
    files["mlctl.yaml"] = "runtime: docker\n"  # the local runtime refuses a custom container
    root = write_tree(tmp_path / "p", files)
    config = load(root, tmp_path)
    assert [d.summary for d in config.diagnostics if "installs no packages" in d.summary] == []
