"""State validation: a whole state document checked against mlctl/schemas/state.schema.json, and its
first problem said in words with the JSON path it is at (the state file reports it with file and line).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

# which of several problems at one path is told first: an unknown or malformed key, then a missing one
_RANK = {"additionalProperties": 0, "pattern": 0, "required": 1, "type": 2, "oneOf": 2, "enum": 3}
_TYPE_WORDS = {
    "object": "an object",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "null": "null",
    "number": "a number",
    "boolean": "true or false",
}


@lru_cache(maxsize=1)
def _validator():
    """The state schema's validator, built once per process, its `$defs` references put in place
    (jsonschema resolves a `$ref` on every use: 2.5 times slower on 1,000 resources)."""
    from jsonschema import Draft202012Validator

    from mlctl.schemas.validate import load_schema

    schema = load_schema("state")
    return Draft202012Validator(inline_refs(schema, schema["$defs"]))


def inline_refs(node: Any, defs: dict) -> Any:
    """Pure: a schema with each local `{"$ref": "#/$defs/NAME"}` replaced by that definition."""
    if isinstance(node, list):
        return [inline_refs(x, defs) for x in node]
    if not isinstance(node, dict):
        return node
    if str(node.get("$ref", "")).startswith("#/$defs/"):
        own = {k: v for k, v in node.items() if k != "$ref"}
        return {**inline_refs(defs[node["$ref"].removeprefix("#/$defs/")], defs), **own}
    return {k: inline_refs(v, defs) for k, v in node.items() if k != "$defs"}


def state_problem(doc: Any) -> tuple[str, tuple, str | None] | None:
    """The first problem of a state document: (what is wrong, the path of keys it is at, the JSON
    path as a field such as 'resources["model.m"].status'), or None when the document is valid."""
    from mlctl.schemas.checker import is_valid
    from mlctl.schemas.validate import compiled_check

    if is_valid(compiled_check("state"), doc):  # the usual case, without jsonschema's walk
        return None
    errors = list(_validator().iter_errors(doc))
    if not errors:
        return None
    err = min(errors, key=_order)
    if err.validator == "oneOf" and isinstance(err.instance, dict):  # pending: the object form's own problem
        err = min((e for e in err.context if e.relative_schema_path[0] == 1), key=_order)
    path = _path(err)
    return _words(err, path), tuple(p for p in path if isinstance(p, str)), json_path(path) or None


def _path(err) -> tuple:
    """The keys leading to what is wrong (for a malformed key, the key itself)."""
    if "propertyNames" in err.absolute_schema_path:
        return (*err.absolute_path, err.instance)
    if err.validator == "additionalProperties":  # at the first unknown key
        return (*err.absolute_path, min(set(err.instance) - set(err.schema.get("properties", {}))))
    return tuple(err.absolute_path)


def _order(err) -> tuple:
    """Problems sorted by the object they are in, then by `_RANK` (an object's unknown key before its missing one)."""
    return tuple(str(p) for p in err.absolute_path), _RANK.get(err.validator, 9)


def json_path(path: tuple) -> str:
    """Pure: ('resources', 'model.m', 'depends_on', 0) -> 'resources["model.m"].depends_on[0]'."""
    out = ""
    for i, p in enumerate(path):
        if isinstance(p, int):
            out += f"[{p}]"
        elif i == 1 and path[0] == "resources":
            out += f'["{p}"]'
        else:
            out += ("." if out else "") + p
    return out


def _words(err, path: tuple) -> str:
    """Pure: what a schema error means, in the words the state file's other errors use."""
    where = f"resource '{path[1]}'" if len(path) >= 2 and path[0] == "resources" else None
    at = json_path(path)
    if err.validator == "pattern":  # the schema's only patterns are resource addresses
        from mlctl.resources import Address

        try:
            Address.parse(err.instance)
            why = f"'{err.instance}' is not a resource address"
        except ValueError as e:
            why = str(e)
        return why if "propertyNames" in err.absolute_schema_path else f"'{at}': {why}"
    if err.validator == "required":
        missing = sorted(set(err.validator_value) - set(err.instance))[0]
        owner = where if where and len(path) == 2 else (f"'{at}'" if at else None)
        return f"{owner} is missing key '{missing}'" if owner else f"missing key '{missing}'"
    if err.validator == "additionalProperties":
        unknown = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        owner = (
            where if where and len(path) == 3 else (f"'{json_path(path[:-1])}'" if len(path) > 1 else "the state file")
        )
        return f"{owner} has unknown keys {unknown}"
    if err.validator == "enum":
        choices = ", ".join(str(c) for c in err.validator_value)
        if where and len(path) == 3:
            return f"{where} has {path[2]} {err.instance!r}; expected one of {choices}"
        return f"'{at}' is {err.instance!r}; expected one of {choices}"
    if err.validator in ("type", "oneOf"):
        want = err.validator_value if err.validator == "type" else [s.get("type") for s in err.validator_value]
        want = [want] if isinstance(want, str) else want
        return f"'{at}' must be {' or '.join(_TYPE_WORDS.get(w, w) for w in want)} (it is {_kind_of(err.instance)})"
    return f"'{at}': {err.message}" if at else err.message


def _kind_of(value: Any) -> str:
    for t, words in (
        ((dict,), "an object"),
        ((list,), "a list"),
        ((str,), "a string"),
        ((bool,), "true or false"),
        ((int,), "an integer"),
        ((float,), "a number"),
    ):
        if isinstance(value, t):
            return words
    return "null" if value is None else type(value).__name__
