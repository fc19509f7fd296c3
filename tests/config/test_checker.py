"""The compiled schema checks answer as jsonschema does: on every YAML document and state file under tests/,
and on each of them with one value replaced or one key removed (thousands of valid and invalid cases)."""

from __future__ import annotations

import copy
import datetime
import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from mlctl.schemas.checker import Compiler, Unsupported, equal, is_valid
from mlctl.schemas.discovery import kind_from_schema_url
from mlctl.schemas.validate import BASE_URI, KINDS, compiled_check, load_schema
from mlctl.state.validation import inline_refs

TESTS = Path(__file__).resolve().parents[1]
CANDIDATES = [None, True, False, 0, 1, -1, 1.0, 1.5, 10**9, "", "x", "azureml:m:1", "Key", [], ["a"], {}, {"a": 1}]


def _jsonschema(kind: str) -> Draft202012Validator:
    if kind == "state":
        schema = load_schema("state")
        return Draft202012Validator(inline_refs(schema, schema["$defs"]))
    registry = Registry().with_resources(
        (BASE_URI + f"{k}.schema.json", Resource.from_contents(load_schema(k))) for k in KINDS
    )
    return Draft202012Validator(load_schema(kind), registry=registry)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


def _variants(doc, candidates):
    """The document, and copies with one value replaced or one key removed."""
    yield doc
    for path in list(_paths(doc)):
        if not path:
            continue
        parent = doc
        for p in path[:-1]:
            parent = parent[p]
        for c in candidates:
            out = copy.deepcopy(doc)
            target = out
            for p in path[:-1]:
                target = target[p]
            target[path[-1]] = copy.deepcopy(c)
            yield out
        if isinstance(parent, dict):
            out = copy.deepcopy(doc)
            target = out
            for p in path[:-1]:
                target = target[p]
            del target[path[-1]]
            yield out


def _documents():
    out = []
    for f in sorted(TESTS.rglob("*.y*ml")):
        if f.suffix not in (".yml", ".yaml") or "bad" in f.parts and "_shared" not in f.parts:
            continue
        try:
            data = yaml.safe_load(f.read_text())
        except (yaml.YAMLError, UnicodeDecodeError):
            continue
        if isinstance(data, dict) and isinstance(data.get("$schema"), str):
            kind = data.get("kind") or kind_from_schema_url(data["$schema"])
            if kind in KINDS:
                out.append(pytest.param(kind, data, id=str(f.relative_to(TESTS))))
    f = TESTS / "plans" / "failed_replaced" / "state.json"  # a state file with resources of every kind
    out.append(pytest.param("state", json.loads(f.read_text()), id=str(f.relative_to(TESTS))))
    return out


@pytest.mark.parametrize("kind,doc", _documents())
def test_the_checks_agree_with_jsonschema(kind, doc):
    check, reference = compiled_check(kind), _jsonschema(kind)
    assert check is not None, f"{kind}.schema.json uses a keyword the checker does not model"
    seen = {True: 0, False: 0}
    for variant in _variants(doc, CANDIDATES if kind != "state" else [None, 1, "x", [], {}]):
        expected = reference.is_valid(variant)
        got = is_valid(check, variant)
        assert got == expected, f"checker says {got}, jsonschema {expected}: {json.dumps(variant)[:400]}"
        seen[expected] += 1
    assert seen[False] > 0 and (seen[True] > 0 or kind == "state")


def test_values_it_does_not_model_are_left_to_jsonschema():
    check = compiled_check("model")
    assert is_valid(check, {"name": "m", "path": "x", "version": datetime.date(2024, 1, 1)}) is None
    assert is_valid(check, {"name": "m", "path": b"x"}) is None
    assert is_valid(None, {}) is None


def test_a_keyword_outside_the_subset_is_refused_when_compiling():
    with pytest.raises(Unsupported):
        Compiler(lambda f: {}).compile({"type": "object", "if": {"required": ["a"]}}, "x.schema.json")
    with pytest.raises(Unsupported):
        Compiler(lambda f: {}).compile({"type": "decimal"}, "x.schema.json")


def test_equality_is_jsonschemas():
    assert equal(1, 1.0) and not equal(True, 1) and not equal(0, False) and not equal("1", 1)
    assert equal({"a": [1, True]}, {"a": [1.0, True]}) and not equal([1], {"a": 1})
