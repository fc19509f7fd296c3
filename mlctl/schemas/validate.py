"""Schema validation: the JSON Schemas of each kind, their errors as located diagnostics, defaults, ignored fields."""

from __future__ import annotations

import copy
import difflib
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from mlctl.errors import Diagnostic
from mlctl.schemas.documents import Document, format_field

SCHEMA_DIR = Path(__file__).parent
KINDS = ("endpoint", "deployment", "model", "environment")
BASE_URI = "https://mlctl.dev/schemas/"
TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "empty (null)",
}


def load_schema(kind: str) -> dict:
    """The JSON Schema of a kind (mlctl/schemas/KIND.schema.json); the project file's with the runtime records'
    names (the `runtime` enum, its default) and settings blocks filled in."""
    if kind != "project":
        return _schema_file(kind)
    from mlctl import runtimerecords

    return _project_schema(tuple((n, id(r)) for n, r in runtimerecords.records().items() if r.factory is None))


@lru_cache(maxsize=None)
def _project_schema(records: tuple) -> dict:
    """The project file's schema for these runtime records ((name, id) pairs: the records live as long as the
    process, and so does each schema made, as every schema node must: `_PLANS` is keyed by node ids)."""
    from mlctl import runtimerecords

    schema = json.loads(json.dumps(_schema_file("project")))
    blocks = {n: r.settings() for n, r in runtimerecords.records().items() if (n, id(r)) in records}
    schema["properties"]["runtime"].update(enum=sorted(blocks), default=runtimerecords.DEFAULT)
    schema["properties"].update(blocks)
    return schema


@lru_cache(maxsize=None)
def _schema_file(kind: str) -> dict:
    return json.loads((SCHEMA_DIR / f"{kind}.schema.json").read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def _validator_for(kind: str):
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    registry = Registry().with_resources(
        (BASE_URI + f"{k}.schema.json", Resource.from_contents(load_schema(k))) for k in KINDS
    )
    return Draft202012Validator(load_schema(kind), registry=registry)


def compiled_check(kind: str):
    """The compiled yes/no check of a kind's schema (mlctl.schemas.checker), or None when the schema uses
    more than the checker models (then jsonschema decides alone). Compiled once per schema object (the
    project file's schema is remade when the runtime records change)."""
    return _compiled(kind, id(load_schema(kind)))


@lru_cache(maxsize=None)
def _compiled(kind: str, schema_id: int):
    from mlctl.schemas.checker import Compiler, Unsupported

    try:
        return Compiler(lambda file: load_schema(file.removesuffix(".schema.json"))).compile(
            load_schema(kind), f"{kind}.schema.json"
        )
    except Unsupported:
        return None


def resolve(node: dict, kind: str) -> tuple[dict, str]:
    """Pure: a schema node with its `$ref` merged in (the ref's own keys first), and the kind file it lives in."""
    ref = node.get("$ref")
    if not ref:
        return node, kind
    key = (id(node), kind)
    if key not in _RESOLVED:
        _RESOLVED[key] = _resolve(node, kind, ref)
    return _RESOLVED[key]


_RESOLVED: dict[tuple[int, str], tuple[dict, str]] = {}  # schema nodes live as long as the process (lru_cache)


def _resolve(node: dict, kind: str, ref: str) -> tuple[dict, str]:
    target_file, _, pointer = ref.partition("#")
    target_kind = target_file.removesuffix(".schema.json") if target_file else kind
    target = load_schema(target_kind)
    for part in filter(None, pointer.split("/")):
        target = target[part]
    target, target_kind = resolve(target, target_kind)
    merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return merged, target_kind


def _type_name(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def did_you_mean(word: str, choices) -> str:
    """Pure: ' Did you mean 'x'?' for the closest choice, or ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def validate_document(doc: Document, kind: str, data: Any = None, prefix: tuple = ()) -> list[Diagnostic]:
    """Every schema error of `data` (default: the whole document) as a diagnostic with file, line and field."""
    from mlctl.schemas.checker import is_valid

    data = doc.data if data is None else data
    if is_valid(compiled_check(kind), data):  # the usual case, without jsonschema's walk
        return []
    out: list[Diagnostic] = []
    seen: set[tuple] = set()
    for err in _validator_for(kind).iter_errors(data):
        for d in _explain(err, doc, prefix):
            key = (d.line, d.field, d.summary)
            if key not in seen:
                seen.add(key)
                out.append(d)
    out.sort(key=lambda d: (d.line or 0, d.field or ""))
    return out


def _explain(err, doc: Document, prefix: tuple) -> list[Diagnostic]:
    path = prefix + tuple(err.absolute_path)
    name = format_field(path) or "the document"
    hint = err.schema.get("x-mlctl-hint", "") if isinstance(err.schema, dict) else ""
    v, value = err.validator, err.instance
    if v == "required":
        m = re.match(r"'(.+)' is a required property", err.message)
        missing = m.group(1) if m else str(err.validator_value)
        where = f" in '{name}'" if path else ""
        return [
            Diagnostic(
                f"missing required field '{missing}'{where}",
                f"Add '{missing}:'." + (f" {hint}" if hint else ""),
                **doc.at(path, field=format_field(path + (missing,))),
            )
        ]
    if v == "additionalProperties" and isinstance(value, dict):
        known = set(err.schema.get("properties", {}))
        extras = [k for k in value if k not in known]
        if not known and err.validator_value is not False:  # a free mapping with typed values: about a value
            return [Diagnostic(f"'{name}' has an invalid entry", hint, **doc.at(path))]
        return [
            Diagnostic(
                f"unknown field '{k}'" + (f" in '{name}'" if path else ""),
                ("Remove it or fix its spelling." + did_you_mean(str(k), known)).strip(),
                **doc.at(path + (k,)),
            )
            for k in extras
        ]
    if v == "type":
        want = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        words = " or ".join(TYPE_WORDS.get(t, t) for t in want)
        return [
            Diagnostic(
                f"'{name}' must be {words}, not {_type_name(value)} ({_short(value)})",
                hint or f"Change it to {words}.",
                **doc.at(path),
            )
        ]
    if v in ("enum", "const"):
        allowed = err.validator_value if v == "enum" else [err.validator_value]
        return [
            Diagnostic(
                f"'{name}' is {_short(value)}; expected one of: {', '.join(map(str, allowed))}",
                ("Use one of the allowed values." + did_you_mean(str(value), map(str, allowed))).strip(),
                **doc.at(path),
            )
        ]
    limits = {
        "minimum": "at least",
        "maximum": "at most",
        "exclusiveMinimum": "more than",
        "exclusiveMaximum": "less than",
        "minLength": "at least",
        "maxLength": "at most",
        "maxProperties": "at most",
        "minProperties": "at least",
        "minItems": "at least",
    }
    if v in limits:
        unit = {
            "minLength": " characters",
            "maxLength": " characters",
            "maxProperties": " entries",
            "minProperties": " entries",
            "minItems": " items",
        }.get(v, "")
        return [
            Diagnostic(
                f"'{name}' is {_short(value) if not unit else 'too ' + ('long' if 'max' in v else 'short')}; "
                f"it must be {limits[v]} {err.validator_value}{unit}",
                hint or f"Use a value {limits[v]} {err.validator_value}{unit}.",
                **doc.at(path),
            )
        ]
    if v == "pattern" and "propertyNames" in err.schema_path:
        return [Diagnostic(f"'{name}' has an invalid key {_short(value)}", hint, **doc.at(path))]
    if v == "pattern":
        return [Diagnostic(f"'{name}' has an invalid value {_short(value)}", hint, **doc.at(path))]
    return [Diagnostic(f"'{name}': {err.message}", hint, **doc.at(path))]


def apply_defaults(node: dict, kind: str, value: Any) -> Any:
    """Pure: `value` with the schema's defaults filled in (recursively, into present mappings): a copy of each
    mapping or list that gets a default somewhere below it; what no default reaches is shared, not copied."""
    props, items = _defaults_plan(node, kind)
    if isinstance(value, dict):
        if not props:
            return value
        out = dict(value)
        for key, sub, k, default in props:
            if key in out:
                if sub is not None:
                    out[key] = apply_defaults(sub, k, out[key])
            elif default is not _NO_DEFAULT:
                out[key] = _copied(default)
        return out
    if isinstance(value, list) and items is not None:
        return [apply_defaults(items[0], items[1], item) for item in value]
    return value


def _copied(value: Any) -> Any:
    """Pure: a copy of a JSON value (a schema default: dicts, lists, scalars), faster than copy.deepcopy."""
    if type(value) is dict:
        return {k: _copied(v) for k, v in value.items()}
    if type(value) is list:
        return [_copied(v) for v in value]
    return value


_NO_DEFAULT = object()
_PLANS: dict[tuple[int, str], tuple] = {}  # schema nodes live as long as the process (lru_cache)


def _defaults_plan(node: dict, kind: str) -> tuple[list, tuple | None]:
    """Pure: what apply_defaults does at a schema node: [(property, its node or None when no default is below
    it, its kind file, its default with the defaults below filled in, or _NO_DEFAULT)] of the properties that
    have a default at or below them, and (items node, kind) when a list's items get defaults."""
    key = (id(node), kind)
    if key not in _PLANS:
        _PLANS[key] = ([], None)  # a recursive schema: no defaults through the cycle
        s, k = resolve(node, kind)
        props = []
        for name, sub in s.get("properties", {}).items():
            sub_r, sub_k = resolve(sub, k)
            below = _defaults_plan(sub, k) != ([], None)
            default = _NO_DEFAULT
            if "default" in sub_r:
                default = apply_defaults(sub, k, copy.deepcopy(sub_r["default"]))
            if below or default is not _NO_DEFAULT:
                props.append((name, sub if below else None, k, default))
        items = s.get("items")
        items_plan = (items, k) if isinstance(items, dict) and _defaults_plan(items, k) != ([], None) else None
        _PLANS[key] = (props, items_plan)
    return _PLANS[key]


def schema_default(kind: str, path: str) -> Any:
    """The default the JSON Schema of `kind` states at the dotted property `path`, with the defaults
    below it filled in: ('deployment', 'request_settings') -> {'request_timeout_ms': 5000, ...},
    ('deployment', 'liveness_probe') -> the probe defaults, ('endpoint', 'auth_mode') -> 'key'. The
    one place Python learns a default; KeyError when the schema states none there."""
    node, k = load_schema(kind), kind
    for name in path.split("."):
        s, k = resolve(node, k)
        node = s["properties"][name]
    s, _ = resolve(node, k)
    if "default" not in s:
        raise KeyError(f"{kind}.schema.json states no default for {path}")
    return apply_defaults(node, k, copy.deepcopy(s["default"]))


@lru_cache(maxsize=None)
def honoured_fields(kind: str, runtime: str | None) -> frozenset[str]:
    """Pure: the cloud-only fields of `kind`, as `find_ignored` names them (`docker.image`), that `runtime`
    honours all the same (marked `x-mlctl-honoured-by` in the schema: `instance_type` becomes a
    container's limits under docker, the 2021 form's `docker.image` its base image)."""

    def walk(node: dict, prefix: tuple) -> Iterator[str]:
        for key, sub in resolve(node, kind)[0].get("properties", {}).items():
            sub_r = resolve(sub, kind)[0]
            if runtime in sub_r.get("x-mlctl-honoured-by", ()):
                yield format_field(prefix + (key,))
            elif key != "deployments":
                yield from walk(sub, prefix + (key,))

    return frozenset(walk(load_schema(kind), ()))


def find_ignored(node: dict, kind: str, value: Any, prefix: tuple = ()) -> list[tuple[str, str]]:
    """Pure: [(format_field field, why)] of the cloud-only fields present in `value` (marked `x-mlctl-ignored`)."""
    s, k = resolve(node, kind)
    out: list[tuple[str, str]] = []
    if not isinstance(value, dict):
        return out
    for key, sub in s.get("properties", {}).items():
        if key not in value:
            continue
        sub_r, _ = resolve(sub, k)
        if "x-mlctl-ignored" in sub_r:
            out.append((format_field(prefix + (key,)), sub_r["x-mlctl-ignored"]))
        elif isinstance(value[key], dict) and key != "deployments":
            out.extend(find_ignored(sub, k, value[key], prefix + (key,)))
    return out
