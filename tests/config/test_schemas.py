"""The published JSON Schemas are valid, carry the Azure defaults, and the attributes match docs/resources.md."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from mlctl.schemas.validate import KINDS, apply_defaults, find_ignored, load_schema, schema_default

# docs/resources.md, "Kinds and attributes": the exact attribute keys of each kind.
ATTRIBUTES = {
    "model": {"name", "version", "path", "is_file", "type", "description", "tags", "content_digest"},
    "environment": {
        "name",
        "version",
        "conda_file",
        "image",
        "python",
        "channels",
        "conda_packages",
        "pip_packages",
        "description",
        "tags",
        "spec_digest",
    },
    # base_image: the environment's image (the example names one); build_context and dockerfile_path join
    # both kinds for an environment with `build:` (tests/docker/test_images.py)
    "image": {"environment", "spec_digest", "python", "conda_packages", "pip_packages", "base_image"},
    "endpoint": {"name", "auth_mode", "port", "description", "tags"},
    "deployment": {
        "endpoint",
        "name",
        "model",
        "model_version",
        "model_digest",
        "code",
        "code_digest",
        "scoring_script",
        "environment",
        "image_digest",
        "instance_count",
        "request_settings",
        "liveness_probe",
        "readiness_probe",
        "environment_variables",
        "description",
        "tags",
    },
    "traffic": {"endpoint", "traffic", "mirror_traffic"},
}


@pytest.mark.parametrize("kind", KINDS)
def test_schemas_are_valid_json_schema(kind):
    Draft202012Validator.check_schema(load_schema(kind))


def test_defaults_are_azures():
    dep = apply_defaults(load_schema("deployment"), "deployment", {"name": "blue"})
    assert dep["instance_count"] == 1
    assert dep["request_settings"] == {
        "request_timeout_ms": 5000,
        "max_concurrent_requests_per_instance": 1,
        "max_queue_wait_ms": 500,
    }
    assert (
        dep["liveness_probe"]
        == dep["readiness_probe"]
        == {"initial_delay": 10, "period": 10, "timeout": 2, "success_threshold": 1, "failure_threshold": 30}
    )
    ep = apply_defaults(load_schema("endpoint"), "endpoint", {"name": "e", "deployments": [{"name": "blue"}]})
    assert (ep["auth_mode"], ep["traffic"], ep["mirror_traffic"], ep["port"]) == ("key", {}, {}, None)
    assert ep["deployments"][0]["request_settings"]["request_timeout_ms"] == 5000
    assert apply_defaults(load_schema("model"), "model", {"name": "m"})["type"] == "custom_model"
    # a value given is kept, only what is missing is filled
    dep = apply_defaults(load_schema("deployment"), "deployment", {"request_settings": {"request_timeout_ms": 10}})
    assert dep["request_settings"]["request_timeout_ms"] == 10
    assert dep["request_settings"]["max_queue_wait_ms"] == 500


def test_cloud_only_fields_are_found_with_a_reason():
    found = dict(
        find_ignored(
            load_schema("deployment"),
            "deployment",
            {
                "name": "blue",
                "instance_type": "Standard_DS3_v2",
                "app_insights_enabled": True,
                "scale_settings": {"instance_count": 2, "type": "default", "max_instances": 3},
                "egress_public_network_access": "disabled",
                "data_collector": {},
                "model_mount_path": "/m",
            },
        )
    )
    assert sorted(found) == [
        "app_insights_enabled",
        "data_collector",
        "egress_public_network_access",
        "instance_type",
        "model_mount_path",
        "scale_settings.max_instances",
        "scale_settings.type",
    ]
    assert all(found.values())
    assert dict(find_ignored(load_schema("endpoint"), "endpoint", {"identity": {}, "public_network_access": "x"}))


def test_attributes_match_the_contract(trained_example, tmp_path):
    from mlctl.projectpaths import Project
    from mlctl.schemas.load import load_config

    config = load_config(Project.at(trained_example, state_path=tmp_path / "state.json"))
    kinds = {r.kind.value: set(r.attributes) for r in config.resources}
    assert kinds == ATTRIBUTES
    for r in config.resources:
        assert r.digest.startswith("sha256:") and len(r.digest) == 71


def test_schema_defaults_are_read_from_the_schemas():
    assert schema_default("deployment", "request_settings") == {
        "request_timeout_ms": 5000,
        "max_concurrent_requests_per_instance": 1,
        "max_queue_wait_ms": 500,
    }
    assert (
        schema_default("deployment", "liveness_probe")
        == schema_default("deployment", "readiness_probe")
        == {"initial_delay": 10, "period": 10, "timeout": 2, "success_threshold": 1, "failure_threshold": 30}
    )
    assert schema_default("deployment", "request_settings.max_queue_wait_ms") == 500
    assert schema_default("deployment", "instance_count") == 1
    assert schema_default("endpoint", "auth_mode") == "key"
    assert schema_default("endpoint", "port") is None
    assert schema_default("model", "type") == "custom_model"
    schema_default("deployment", "request_settings")["request_timeout_ms"] = 1  # a copy: the schema keeps its default
    assert schema_default("deployment", "request_settings.request_timeout_ms") == 5000
    with pytest.raises(KeyError, match="states no default for model"):
        schema_default("deployment", "model")
    with pytest.raises(KeyError):
        schema_default("deployment", "no_such_field")
