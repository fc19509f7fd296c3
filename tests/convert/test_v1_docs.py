"""The v1 field table (mlctl/convert/fieldmap.py) against what it promises: docs/migrate-v1.md shows
it unchanged; every current field it names exists in mlctl's schemas of the current form; every v1
field of issue 18 has a row; derived rows have the code that derives them."""

from __future__ import annotations

import json
import re

import pytest
from v1_support import REPO

from mlctl.convert.fieldmap import DC, IC, TABLE, markdown_table
from mlctl.convert.v1build import DERIVED, TRANSFORMS

DOC = REPO / "docs" / "migrate-v1.md"
SCHEMAS = REPO / "mlctl" / "schemas"


@pytest.mark.parametrize("file", [IC, DC])
def test_the_docs_table_is_the_field_table(file):
    text = DOC.read_text()
    shown = re.search(rf"<!-- table: {re.escape(file)} -->\n(.*?)<!-- end table -->", text, re.S)
    assert shown, f"docs/migrate-v1.md has no table for {file}"
    assert shown.group(1) == markdown_table(file), (
        "docs/migrate-v1.md is out of date; its table should read:\n" + markdown_table(file)
    )


def resolve_local_refs(kind: str, dotted: str) -> dict | None:
    """The JSON Schema of field `dotted` of a current-form document of `kind` (local $refs followed), or None."""
    root = json.loads((SCHEMAS / f"{kind}.schema.json").read_text())
    node = root
    for part in dotted.split("."):
        while isinstance(node, dict) and "$ref" in node and node["$ref"].startswith("#/$defs/"):
            node = {**root["$defs"][node["$ref"].split("/")[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
        props = node.get("properties") or {}
        if part not in props:
            return None
        node = props[part]
    return node


@pytest.mark.parametrize("row", [r for r in TABLE if r.carried], ids=lambda r: f"{r.file}:{r.path}")
def test_every_target_is_a_field_of_the_current_form(row):
    kind, _, field = row.target.partition(".")
    assert resolve_local_refs(kind, field) is not None, (
        f"{row.target} is not a field of mlctl/schemas/{kind}.schema.json"
    )


def test_every_row_can_be_carried_out():
    for row in TABLE:
        if row.how == "derived":
            assert any(row.target == t or row.target.startswith(t + ".") for t in DERIVED), row
        assert row.transform is None or row.transform in TRANSFORMS, row
        assert row.how in ("copy", "derived") and row.note, row


IC_FIELDS = [
    "entryScript",
    "sourceDirectory",
    "runtime",
    "condaFile",
    "baseImage",
    "baseImageRegistry",
    "extraDockerfileSteps",
    "enableGpu",
    "cudaVersion",
    "description",
    "environment",
]
DC_FIELDS = [
    "computeType",
    "port",
    "containerResourceRequirements.cpu",
    "containerResourceRequirements.memoryInGB",
    "containerResourceRequirements.cpuLimit",
    "containerResourceRequirements.memoryInGBLimit",
    "containerResourceRequirements.gpu",
    "autoScaler.autoscaleEnabled",
    "autoScaler.minReplicas",
    "autoScaler.maxReplicas",
    "autoScaler.targetUtilization",
    "autoScaler.refreshPeriodInSeconds",
    "numReplicas",
    "scoringTimeoutMs",
    "maxConcurrentRequestsPerContainer",
    "maxQueueWaitMs",
    "livenessProbeRequirements",
    "authEnabled",
    "tokenAuthEnabled",
    "sslEnabled",
    "appInsightsEnabled",
    "location",
    "dnsNameLabel",
    "tags",
    "properties",
    "keys",
    "sslCertificate",
    "sslKey",
]


def test_every_field_of_the_issue_has_a_row():
    paths = {(r.file, r.path) for r in TABLE}
    missing = [(IC, f) for f in IC_FIELDS if (IC, f) not in paths] + [
        (DC, f) for f in DC_FIELDS if (DC, f) not in paths
    ]
    assert missing == []
    assert len(paths) == len(TABLE)  # one row per field


def test_the_literal_mappings_the_issue_names():
    rows = {(r.file, r.path): r for r in TABLE}
    assert rows[(DC, "numReplicas")].target == "deployment.instance_count"
    assert rows[(DC, "scoringTimeoutMs")].target == "deployment.request_settings.request_timeout_ms"
    assert rows[(DC, "maxQueueWaitMs")].target == "deployment.request_settings.max_queue_wait_ms"
    assert rows[(DC, "livenessProbeRequirements.periodSeconds")].target == "deployment.liveness_probe.period"
    assert rows[(DC, "containerResourceRequirements.cpu")].target == "deployment.instance_type"
    assert [r.path for r in TABLE if r.secret] == [
        "baseImageRegistry.username",
        "baseImageRegistry.password",
        "environment.docker.baseImageRegistry",
        "sslCertificate",
        "sslKey",
        "keys",
        "primaryKey",
        "secondaryKey",
    ]


def test_the_readme_links_the_migration_page():
    assert "(docs/migrate-v1.md)" in (REPO / "README.md").read_text()
