"""The KubeRay recipe (deploy/kuberay/, docs/kuberay.md) validated offline: its built-in kinds against Kubernetes'
own schemas (kubernetes-validate, strict: an unknown field is an error), the RayCluster against KubeRay's CRD of the
committed version (its v1 schema, with unknown fields refused as the API server's strict field validation does),
and what the recipe promises: no shared volume, the hosts' Service reaching the pods that run them, the health
checks tuned, the head's state in Redis. There is no API server here: this is not a test against a live cluster."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

RECIPE = Path(__file__).resolve().parents[2] / "deploy" / "kuberay"
CRD = RECIPE / "crd" / "ray.io_rayclusters.yaml"
KUBERNETES = "1.33"  # a version AKS supports; kubernetes-validate carries its schemas


def documents() -> list[dict]:
    return [d for f in sorted(RECIPE.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]


def strict(schema):
    """Pure: the CRD's OpenAPI schema with unknown fields refused in every object that lists its properties and
    neither keeps unknown fields (x-kubernetes-preserve-unknown-fields) nor names additionalProperties."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    return schema


@pytest.fixture(scope="module")
def raycluster_schema():
    crd = yaml.load(CRD.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # 0.9 MB: libyaml
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    # one validator for the module: jsonschema.validate would check the 0.9 MB schema itself on every call
    return jsonschema.Draft7Validator(strict(v1["schema"]["openAPIV3Schema"]))


def raycluster() -> dict:
    (found,) = [d for d in documents() if d["kind"] == "RayCluster"]
    return found


def test_the_crd_is_kuberays_file_of_the_recorded_version():
    source = (RECIPE / "crd" / "SOURCE").read_text()
    assert f"sha256: {hashlib.sha256(CRD.read_bytes()).hexdigest()}" in source and "tag: v1.7.0" in source


def test_built_in_kinds_are_valid_kubernetes():
    built_in = [d for d in documents() if not d["apiVersion"].startswith("ray.io/")]
    assert {d["kind"] for d in built_in} == {"Service", "StatefulSet", "Job"}
    for d in built_in:
        kubernetes_validate.validate(d, KUBERNETES, strict=True)  # raises with the field that is wrong
    broken = copy.deepcopy(next(d for d in built_in if d["kind"] == "Service"))
    broken["spec"]["ports"][0]["prot"] = 443  # a typo is refused
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def test_the_raycluster_is_valid_against_kuberays_crd(raycluster_schema):
    cluster = raycluster()
    assert cluster["apiVersion"] == "ray.io/v1"
    raycluster_schema.validate(cluster)
    typo = copy.deepcopy(cluster)
    typo["spec"]["workerGroupSpec"] = typo["spec"].pop("workerGroupSpecs")  # a misspelt field is refused
    with pytest.raises(jsonschema.ValidationError):
        raycluster_schema.validate(typo)
    wrong = copy.deepcopy(cluster)
    wrong["spec"]["gcsFaultToleranceOptions"]["backend"] = "etcd"  # a value outside the CRD's enum is refused
    with pytest.raises(jsonschema.ValidationError):
        raycluster_schema.validate(wrong)


def pods(cluster: dict) -> list[dict]:
    return [cluster["spec"]["headGroupSpec"]["template"]] + [g["template"] for g in cluster["spec"]["workerGroupSpecs"]]


def test_no_pod_of_the_cluster_shares_a_volume():
    for pod in pods(raycluster()):
        for volume in pod["spec"].get("volumes", []):
            assert set(volume) == {"name", "emptyDir"}, volume  # only the pod's own scratch space


def test_the_hosts_service_reaches_the_worker_pods_on_their_endpoint_port():
    cluster = raycluster()
    (service,) = [d for d in documents() if d["kind"] == "Service" and d["metadata"]["name"] == "mlctl-endpoint"]
    selected = [
        p
        for p in pods(cluster)
        if all(p["metadata"]["labels"].get(k) == v for k, v in service["spec"]["selector"].items())
    ]
    assert selected and all(p in pods(cluster)[1:] for p in selected)  # worker pods only, never the head
    groups = cluster["spec"]["workerGroupSpecs"]
    assert min(g["minReplicas"] for g in groups) >= 2  # two hosts on distinct nodes
    for pod in selected:
        (container,) = pod["spec"]["containers"]
        named = {p["name"]: p["containerPort"] for p in container["ports"]}
        port = named[service["spec"]["ports"][0]["targetPort"]]
        assert container["readinessProbe"]["tcpSocket"]["port"] == port  # in the Service only where a host listens


def test_fast_health_checks_and_the_heads_state_in_redis():
    cluster = raycluster()
    (head,) = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in head["env"]}
    assert int(env["RAY_health_check_period_ms"]) * int(env["RAY_health_check_failure_threshold"]) <= 10_000
    redis = cluster["spec"]["gcsFaultToleranceOptions"]["redisAddress"]
    assert any(d["kind"] == "Service" and d["metadata"]["name"] == redis.split(":")[0] for d in documents())
