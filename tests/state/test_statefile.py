"""State file: round trip, serial, lineage, backup, refusal to overwrite what it cannot read."""

import json
import os

import pytest

from mlctl.errors import MlctlError
from mlctl.resources import Address, Kind, Resource
from mlctl.state.statefile import ResourceState, State, backup_path, read_state, write_state


def make_state() -> State:
    s = read_state("/nonexistent/dir/state.json")
    s.resources[Address.parse("endpoint.e")] = ResourceState(
        kind="endpoint",
        attributes={"name": "e", "auth_mode": "key", "port": None},
        digest="sha256:aa",
        observed={"port": 5001, "alive": True},
    )
    return s


def test_missing_file_is_a_fresh_state():
    s = read_state("/nonexistent/dir/state.json")
    assert (s.format_version, s.serial, s.resources, s.pending) == (1, 0, {}, None)
    assert len(s.lineage) == 36 and s.lineage[14] == "4"  # uuid4
    assert read_state("/nonexistent/x.json").lineage != s.lineage


def test_round_trip_serial_and_exact_shape(tmp_path):
    path = tmp_path / ".mlctl" / "state.json"
    s = make_state()
    lineage = s.lineage
    returned = write_state(path, s)
    assert returned is s and s.serial == 1
    doc = json.loads(path.read_text())
    assert doc == {
        "format_version": 1,
        "serial": 1,
        "lineage": lineage,
        "mlctl_version": "0.1.0",
        "resources": {
            "endpoint.e": {
                "kind": "endpoint",
                "attributes": {"name": "e", "auth_mode": "key", "port": None},
                "digest": "sha256:aa",
                "depends_on": [],
                "status": "ready",
                "runtime": "local",
                "observed": {"port": 5001, "alive": True},
                "files": {},
            }
        },
        "pending": None,
    }
    back = read_state(path)
    assert back == s
    assert (tmp_path / ".mlctl" / ".gitignore").read_text().splitlines()[-1] == "*"
    assert not backup_path(path).exists()


def test_each_write_moves_serial_and_backs_up_the_previous_file(tmp_path):
    path = tmp_path / "state.json"
    s = make_state()
    write_state(path, s)
    first = path.read_bytes()
    s.resources[Address.parse("endpoint.e")].status = "failed"
    write_state(path, s)
    assert backup_path(path).read_bytes() == first
    assert read_state(backup_path(path)).serial == 1
    assert read_state(path).serial == 2
    assert read_state(path).resources[Address.parse("endpoint.e")].status == "failed"
    assert [p.name for p in sorted(tmp_path.iterdir())] == [".gitignore", "state.json", "state.json.backup"]


def test_from_resource():
    r = Resource(
        Address(Kind.DEPLOYMENT, "e.blue"),
        {"instance_count": 2},
        "sha256:d",
        depends_on=(Address(Kind.MODEL, "m"), Address(Kind.ENDPOINT, "e")),
        files={"code/score.py": "ab"},
    )
    rs = ResourceState.from_resource(r, observed={"ready_instances": 2})
    assert rs.to_json() == {
        "kind": "deployment",
        "attributes": {"instance_count": 2},
        "digest": "sha256:d",
        "depends_on": ["endpoint.e", "model.m"],
        "status": "ready",
        "runtime": "local",
        "observed": {"ready_instances": 2},
        "files": {"code/score.py": "ab"},
    }


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "invalid JSON at line 1, column 2"),
        ("[1, 2]", "it is not a JSON object"),
        ('{"serial": 1}', "'format_version' is missing"),
        ('{"format_version": 1, "lineage": "x"}', "missing key 'serial'"),
        (
            '{"format_version": 1, "serial": 1, "lineage": "x", '
            '"resources": {"model.b": {"kind": "model", "bogus": 1}}}',
            "resource 'model.b' has unknown keys ['bogus']",
        ),
        (
            '{"format_version": 1, "serial": 1, "lineage": "x", "resources": {"a.b": {"kind": "model"}}}',
            "'a.b' is not a resource address; expected one of model.NAME, environment.NAME",
        ),
        (
            '{"format_version": 1, "serial": 1, "lineage": "x", "pending": ["model.m"]}',
            "'pending' must be null or an object (it is a list)",
        ),
        (
            '{"format_version": 1, "serial": 1, "lineage": "x", '
            '"resources": {"model.m": {"kind": "model", "digest": "d",'
            ' "attributes": "name=m"}}}',
            "'resources[\"model.m\"].attributes' must be an object (it is a string)",
        ),
        (
            '{"format_version": 1, "serial": 1, "lineage": "x", '
            '"resources": {"model.m": {"kind": "image", "digest": "d",'
            ' "attributes": {}}}}',
            "resource 'model.m' has kind 'image'; its address says 'model'",
        ),
    ],
)
def test_unreadable_state_is_an_error_and_never_overwritten(tmp_path, text, message):
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(MlctlError) as e:
        read_state(path)
    assert message in str(e.value)
    assert "will not overwrite" in str(e.value) and str(path) in str(e.value)
    with pytest.raises(MlctlError):
        write_state(path, make_state())
    assert path.read_text() == text
    assert not backup_path(path).exists()


def test_newer_format_is_refused(tmp_path):
    path = tmp_path / "state.json"
    text = json.dumps({"format_version": 2, "serial": 3, "lineage": "l", "mlctl_version": "9.0.0", "resources": {}})
    path.write_text(text)
    with pytest.raises(MlctlError) as e:
        read_state(path)
    assert "format_version 2, newer than this mlctl understands (1)" in str(e.value)
    assert "written by mlctl 9.0.0" in str(e.value)
    with pytest.raises(MlctlError):
        write_state(path, make_state())
    assert path.read_text() == text


def test_another_lineage_or_a_newer_serial_is_not_overwritten(tmp_path):
    path = tmp_path / "state.json"
    mine = make_state()
    write_state(path, mine)
    with pytest.raises(MlctlError) as e:
        write_state(path, make_state())
    assert "belongs to another lineage" in str(e.value)
    stale = read_state(path)
    write_state(path, mine)  # serial 2 on disk
    with pytest.raises(MlctlError) as e:
        write_state(path, stale)
    assert "changed since it was read (serial 2, expected 1)" in str(e.value)
    assert read_state(path).serial == 2 and stale.serial == 1


def test_no_temp_file_left_and_mode(tmp_path):
    path = tmp_path / "state.json"
    write_state(path, make_state())
    write_state(path, read_state(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gitignore", "state.json", "state.json.backup"]
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"


def test_the_state_schema_is_valid_and_what_mlctl_writes_passes_it(tmp_path):
    from jsonschema import Draft202012Validator

    from mlctl.schemas.validate import load_schema
    from mlctl.state.validation import inline_refs, json_path, state_problem

    schema = load_schema("state")
    Draft202012Validator.check_schema(schema)
    Draft202012Validator.check_schema(inline_refs(schema, schema["$defs"]))
    assert "$ref" not in json.dumps(inline_refs(schema, schema["$defs"]))
    path = tmp_path / "state.json"
    state = make_state()
    state.pending = {"address": "deployment.e.blue", "action": "+/-", "started_at": "2026-01-01T00:00:00Z", "pid": 7}
    write_state(path, state)
    assert state_problem(json.loads(path.read_text())) is None
    assert read_state(path).pending == state.pending
    assert json_path(("resources", "deployment.e.b", "depends_on", 0)) == 'resources["deployment.e.b"].depends_on[0]'
    assert json_path(("pending", "pid")) == "pending.pid"


def test_a_tainted_resource_of_an_older_mlctl_reads_as_failed(tmp_path):
    """Nothing writes "tainted" (`plan --replace` does its job); a state that has it still reads."""
    path = tmp_path / "state.json"
    write_state(path, make_state())
    doc = json.loads(path.read_text())
    doc["resources"]["endpoint.e"]["status"] = "tainted"
    path.write_text(json.dumps(doc))
    assert read_state(path).resources[Address.parse("endpoint.e")].status == "failed"
