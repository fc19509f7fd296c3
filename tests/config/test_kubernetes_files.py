"""Azure's Kubernetes online endpoint files read by the loader: `resources` (requests and limits) as each
instance's sizing, their errors with file and line, files without `$schema`, `compute:` and `instance_type`."""

from __future__ import annotations

from loader_helpers import write_tree
from mlctl.projectpaths import Project
from mlctl.schemas.load import load_config
from mlctl.sizing import Amounts, Sizing

K8S = "https://azuremlschemas.azureedge.net/latest/kubernetesOnline{}.schema.json"
ENDPOINT = f"$schema: {K8S.format('Endpoint')}\nname: my-endpoint\ncompute: azureml:inferencecompute\nauth_mode: Key\n"
DEPLOYMENT = (
    f"$schema: {K8S.format('Deployment')}\n"
    "name: blue\n"
    "type: kubernetes\n"
    "endpoint_name: my-endpoint\n"
    "model:\n  path: model.pkl\n"
    "code_configuration:\n  code: code\n  scoring_script: score.py\n"
    "instance_count: 1\n"
)
SCORE = "def init():\n    pass\n\n\ndef run(raw):\n    return raw\n"


def load(tmp_path, files: dict[str, str], **project):
    root = write_tree(tmp_path / "p", {"model.pkl": "m", "code/score.py": SCORE, **files})
    return load_config(Project.at(root, state_path=tmp_path / "s" / "state.json", **project))


def test_requests_and_limits_become_the_deployments_sizing(tmp_path):
    resources = (
        'resources:\n  requests:\n    cpu: "0.1"\n    memory: "0.1Gi"\n  limits:\n    cpu: "0.2"\n    memory: "200Mi"\n'
    )
    config = load(tmp_path, {"endpoint.yml": ENDPOINT, "blue.yml": DEPLOYMENT + resources})
    assert not config.errors, [d.format() for d in config.errors]
    deployment = config.resource("deployment.my-endpoint.blue")
    assert deployment.attributes["resources"] == {
        "requests": {"cpu": 0.1, "memory": 107374183, "gpu": None},
        "limits": {"cpu": 0.2, "memory": 200 * 2**20, "gpu": None},
    }
    assert Sizing.of(deployment.attributes) == Sizing(Amounts(0.1, 107374183), Amounts(0.2, 200 * 2**20))
    assert "resources" not in deployment.ignored


def test_a_deployment_without_resources_keeps_its_attributes(tmp_path):
    config = load(tmp_path, {"endpoint.yml": ENDPOINT, "blue.yml": DEPLOYMENT})
    assert "resources" not in config.resource("deployment.my-endpoint.blue").attributes  # digests unchanged


def test_bad_resources_are_errors_naming_file_line_and_field(tmp_path):
    resources = (
        "resources:\n"
        "  requests:\n"
        "    cpu: 2\n"  # line 13
        "    memory: lots\n"  # line 14
        "  limits:\n"
        "    cpu: 500m\n"
        "    nvidia.com/gpu: 0.5\n"  # line 17
        "    disk: 1Gi\n"  # line 18
    )
    config = load(tmp_path, {"endpoint.yml": ENDPOINT, "blue.yml": DEPLOYMENT + resources})
    found = {(d.line, d.field): d.summary for d in config.errors}
    assert all(d.file.endswith("blue.yml") for d in config.errors)
    assert found == {
        (13, "resources.requests.cpu"): "requests.cpu (2 CPUs) is above limits.cpu (500m CPU)",
        (14, "resources.requests.memory"): "resources.requests.memory: 'lots' is not a Kubernetes quantity: write a "
        "number with an optional suffix, like 500m, 0.5, 2 for CPUs; 512Mi, 0.5Gi, 1G, 1e9 for memory",
        (17, "resources.limits.nvidia.com/gpu"): "resources.limits.nvidia.com/gpu: 0.5 is not a whole number of GPUs: "
        "a GPU is not shared by quantity (write 1, 2, ...)",
        (18, "resources.limits.disk"): "unknown resource 'disk' in 'resources.limits'",
    }


def test_docker_limits_take_resources_then_instance_type_then_the_default():
    from mlctl.runtime.docker.limits import GIB, container_limits

    both = Sizing(Amounts(0.1, 100 * 2**20), Amounts(0.2, 200 * 2**20))
    fit = container_limits("Standard_DS2_v2", 4, 64 * GIB, sizing=both)  # resources.limits win over the size
    assert (fit.nano_cpus, fit.memory_bytes, fit.memory_reservation, fit.cpu_shares) == (
        2 * 10**8,
        200 * 2**20,
        100 * 2**20,
        102,
    )
    assert fit.describe() == "0.2 CPUs, 0.2 GiB of memory, reserving 102 CPU shares and 100Mi of memory"
    memory_only = Sizing(Amounts(None, 2**30), Amounts(None, 2**30))
    fit = container_limits("Standard_DS2_v2", 4, 64 * GIB, sizing=memory_only)  # the CPUs still the size's
    assert (fit.nano_cpus, fit.memory_bytes) == (2 * 10**9, 2**30)
    fit = container_limits(None, 4, 64 * GIB, sizing=Sizing(Amounts(cpu=0.5)))  # a request only: the default limit
    assert (fit.nano_cpus, fit.memory_bytes, fit.cpu_shares) == (None, 2 * GIB, 512)


def test_files_without_schema_are_read_by_an_unambiguous_shape_with_one_note(tmp_path):
    files = {
        "endpoint.yml": ENDPOINT.split("\n", 1)[1],  # compute with auth_mode: an endpoint
        "blue.yml": DEPLOYMENT.split("\n", 1)[1],  # type: kubernetes with endpoint_name and model: a deployment
        "looks.yml": "name: green\nendpoint_name: my-endpoint\n",  # a deployment, maybe: still skipped
    }
    config = load(tmp_path, files)
    assert not config.errors, [d.format() for d in config.errors]
    assert config.resource("endpoint.my-endpoint").attributes["auth_mode"] == "key"
    assert config.resource("deployment.my-endpoint.blue") is not None
    notes = [d.summary for d in config.diagnostics if d.severity == "note" and "shape" in d.summary]
    assert notes == [
        "read without $schema or kind, by their shape: blue.yml as deployment (type: kubernetes with endpoint_name "
        "and model); endpoint.yml as endpoint (compute with auth_mode)"
    ]
    assert any(d.summary.startswith("skipped looks.yml: no $schema or kind") for d in config.diagnostics)


def test_a_kubernetes_instance_type_is_a_note_on_every_runtime(tmp_path):
    green = DEPLOYMENT.replace("name: blue", "name: green") + "instance_type: defaultinstancetype\n"
    for runtime in ("local", "docker"):
        config = load(tmp_path / runtime, {"endpoint.yml": ENDPOINT, "green.yml": green}, runtime_override=runtime)
        assert not config.errors and not [
            d for d in config.diagnostics if "instance_type" in d.summary and d.severity != "note"
        ]
        (note,) = [d for d in config.diagnostics if "instance_type" in d.summary]
        assert note.severity == "note" and note.line == 11 and note.field == "instance_type"
        assert note.summary == (
            "deployment 'green': instance_type 'defaultinstancetype' names a Kubernetes instance type (a resource "
            "profile of the cluster), which mlctl has no table for: each instance is sized by the runtime's default"
        )
        assert "instance_type" not in config.resource("deployment.my-endpoint.green").attributes


def test_compute_without_a_mapping_runs_on_the_projects_runtime_said_once(tmp_path):
    second = ENDPOINT.replace("my-endpoint", "other-endpoint")
    config = load(tmp_path, {"endpoint.yml": ENDPOINT, "other.yml": second, "blue.yml": DEPLOYMENT})
    assert not config.errors and config.project_settings.runtime == "local"
    notes = [d.summary for d in config.diagnostics if "compute" in d.summary]
    assert notes == [
        "compute azureml:inferencecompute (endpoint my-endpoint) has no runtime in the project file's computes: "
        "it runs on the project's runtime, local"
    ]
    assert "compute" not in config.ignored.get("endpoint.my-endpoint", ())


def test_computes_in_the_project_file_choose_the_runtime(tmp_path):
    project = {"endpoint.yml": ENDPOINT, "blue.yml": DEPLOYMENT}
    mapped = load(tmp_path / "a", {**project, "mlctl.yaml": "runtime: local\ncomputes:\n  inferencecompute: docker\n"})
    assert not mapped.errors and mapped.project_settings.runtime == "docker"
    assert not [d for d in mapped.diagnostics if "compute" in d.summary]
    given = load(
        tmp_path / "b", {**project, "mlctl.yaml": "computes:\n  inferencecompute: docker\n"}, runtime_override="local"
    )
    assert given.project_settings.runtime == "local"  # --runtime still says for one run
    other = load(tmp_path / "c", {**project, "mlctl.yaml": "runtime: docker\ncomputes:\n  elsewhere: local\n"})
    assert other.project_settings.runtime == "docker"  # no endpoint names that compute


def test_computes_sent_to_several_runtimes_or_an_unknown_one_are_errors(tmp_path):
    second = ENDPOINT.replace("my-endpoint", "other-endpoint").replace("inferencecompute", "gpu-cluster")
    several = "computes:\n  inferencecompute: docker\n  gpu-cluster: local\n"
    config = load(tmp_path / "a", {"endpoint.yml": ENDPOINT, "other.yml": second, "mlctl.yaml": several})
    (error,) = config.errors
    assert error.summary == (
        "the endpoints' computes map to several runtimes (inferencecompute -> docker, gpu-cluster -> local)"
    )
    assert (error.file, error.line, error.field) == ("mlctl.yaml", 1, "computes")
    config = load(tmp_path / "b", {"endpoint.yml": ENDPOINT, "mlctl.yaml": "computes:\n  inferencecompute: dockr\n"})
    (error,) = config.errors
    assert error.summary.startswith("unknown runtime 'dockr' (for compute 'inferencecompute')")
    assert "did you mean" in error.detail.lower() and error.line == 2


def test_requests_beyond_the_largest_node_are_errors_naming_it(tmp_path):
    from mlctl.runtime.kit import capacity

    nodes = [
        {"Alive": True, "Resources": {"CPU": 2.0, "memory": 8 * 2**30}},
        {"Alive": True, "Resources": {"CPU": 8.0, "memory": 4 * 2**30, "GPU": 1.0}},
        {"Alive": False, "Resources": {"CPU": 64.0, "memory": 2**40, "GPU": 8.0}},  # dead: not counted
    ]
    largest = capacity.largest_node(nodes)
    assert (largest.cpus, largest.memory, largest.gpus) == (8.0, 8 * 2**30, 1)
    resources = 'resources:\n  requests:\n    cpu: "9"\n    memory: 8Gi\n    nvidia.com/gpu: 2\n'
    config = load(tmp_path, {"endpoint.yml": ENDPOINT, "blue.yml": DEPLOYMENT + resources})
    problems = capacity.sizing_problems(config.resources, largest, "ray")
    assert [(p.line, p.summary) for p in problems] == [
        (
            13,
            "deployment.my-endpoint.blue: resources.requests.cpu (9 CPUs) is more than the Ray cluster's largest "
            "node can give one instance on the ray runtime: at most 8 CPUs",
        ),
        (
            15,
            "deployment.my-endpoint.blue: resources.requests.nvidia.com/gpu (2 GPUs) is more than the Ray "
            "cluster's largest node can give one instance on the ray runtime: at most 1 GPU",
        ),
    ]
