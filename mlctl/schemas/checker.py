"""Compiled schema checks: a fast, exact yes or no to "is this valid?" for the JSON Schema subset mlctl's
schemas use, so jsonschema (which says why) runs only on what is invalid.

A schema is compiled once into nested closures. The answer is jsonschema's answer (Draft 2020-12) or
`Unsure`: a value of a Python type YAML or JSON may hold that the checks do not model (a date, bytes, a
set) or a keyword outside the subset makes the caller fall back to jsonschema. A keyword the compiler
does not know raises `Unsupported` when compiling, so a schema grown past the subset is never half-checked.
"""

from __future__ import annotations

import re
from typing import Any, Callable

Check = Callable[[Any], bool]

# Keywords that never affect validity.
_ANNOTATIONS = frozenset(
    ("$schema", "$id", "$defs", "$comment", "title", "description", "default", "examples", "deprecated")
)
_PLAIN = (dict, list, str, int, float, bool, type(None))


class Unsupported(Exception):
    """The schema uses a keyword these checks do not model."""


class Unsure(Exception):
    """The value holds something these checks do not model: ask jsonschema."""


def _unbool(value: Any) -> Any:
    return ("bool", value) if type(value) is bool else value


def equal(a: Any, b: Any) -> bool:
    """Pure: jsonschema's equality for enum and const (true is not 1; 1.0 is 1), on plain values."""
    if type(a) not in _PLAIN or type(b) not in _PLAIN:
        raise Unsure
    if type(a) is str or type(b) is str:
        return a == b
    if type(a) is dict and type(b) is dict:
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if type(a) is list and type(b) is list:
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))
    if type(a) in (dict, list) or type(b) in (dict, list):
        return False
    return _unbool(a) == _unbool(b)


class Compiler:
    """Compiles the schemas of one family (files that `$ref` each other by name) into checks.

    `load(name)` returns the schema of a file such as 'deployment.schema.json'."""

    def __init__(self, load: Callable[[str], dict]):
        self.load = load
        self.refs: dict[str, Check] = {}

    def compile(self, schema: Any, file: str) -> Check:  # noqa: C901
        """One check for one schema node: the keywords of each JSON type gathered into one function."""
        if schema is True:
            return lambda v: True
        if schema is False:
            return lambda v: False
        if not isinstance(schema, dict):
            raise Unsupported(f"schema {schema!r}")
        for key in schema:
            if key not in _ANNOTATIONS and key not in _KNOWN and not key.startswith("x-"):
                raise Unsupported(key)
        if "patternProperties" in schema:
            raise Unsupported("patternProperties")
        types = schema.get("type")
        types = None if types is None else ((types,) if isinstance(types, str) else tuple(types))
        for n in types or ():
            if n not in _PYTHON_TYPES:
                raise Unsupported(f"type {n!r}")
        # the Python types each named JSON type admits (a float with an integral value is an integer too)
        admitted = None if types is None else frozenset(t for n in types for t in _PYTHON_TYPES[n])
        integral_float = types is not None and "integer" in types and "number" not in types
        props = {k: self.compile(sub, file) for k, sub in schema.get("properties", {}).items()}
        extra_schema = schema.get("additionalProperties", True)
        closed = extra_schema is False
        extra = None if extra_schema is True or closed else self.compile(extra_schema, file)
        required = tuple(schema.get("required", ()))
        names = self.compile(schema["propertyNames"], file) if "propertyNames" in schema else None
        min_props, max_props = schema.get("minProperties"), schema.get("maxProperties")
        items = self.compile(schema["items"], file) if "items" in schema else None
        min_items, max_items = schema.get("minItems"), schema.get("maxItems")
        min_len, max_len = schema.get("minLength"), schema.get("maxLength")
        rx = re.compile(schema["pattern"]) if "pattern" in schema else None
        bounds = [_bound(k, schema[k]) for k in _BOUNDS if k in schema]
        rest: list[Check] = []
        if "$ref" in schema:
            rest.append(self._ref(schema["$ref"], file))
        if "enum" in schema:
            choices = list(schema["enum"])
            rest.append(lambda v: any(equal(v, c) for c in choices))
        if "const" in schema:
            const = schema["const"]
            rest.append(lambda v: equal(v, const))
        for key in ("oneOf", "anyOf", "allOf"):
            if key in schema:
                rest.append(_combine(key, [self.compile(s, file) for s in schema[key]]))
        object_checks = bool(props or closed or extra or required or names or min_props is not None or max_props)
        array_checks = items is not None or min_items is not None or max_items is not None
        string_checks = rx is not None or min_len is not None or max_len is not None

        def check(v: Any) -> bool:
            t = type(v)
            if t not in _PLAIN:
                raise Unsure
            if admitted is not None and t not in admitted and not (integral_float and t is float and v.is_integer()):
                return False
            if t is dict:
                if object_checks:
                    for n in required:
                        if n not in v:
                            return False
                    for k, x in v.items():
                        c = props.get(k)
                        if c is not None:
                            if not c(x):
                                return False
                        elif closed or (extra is not None and not extra(x)):
                            return False
                        if names is not None and not names(k):
                            return False
                    if (min_props is not None and len(v) < min_props) or (max_props is not None and len(v) > max_props):
                        return False
            elif t is list:
                if array_checks:
                    if (min_items is not None and len(v) < min_items) or (max_items is not None and len(v) > max_items):
                        return False
                    if items is not None:
                        for x in v:
                            if not items(x):
                                return False
            elif t is str:
                if string_checks:
                    if (min_len is not None and len(v) < min_len) or (max_len is not None and len(v) > max_len):
                        return False
                    if rx is not None and rx.search(v) is None:
                        return False
            elif bounds and (t is int or t is float):
                for b in bounds:
                    if not b(v):
                        return False
            for c in rest:
                if not c(v):
                    return False
            return True

        return check

    def _ref(self, ref: str, file: str) -> Check:
        target_file, _, pointer = ref.partition("#")
        target_file = target_file or file
        key = f"{target_file}#{pointer}"
        if key not in self.refs:
            slot: list[Check] = []
            self.refs[key] = lambda v: slot[0](v)  # a recursive reference finds itself while compiling
            node = self.load(target_file)
            for part in filter(None, pointer.split("/")):
                node = node[part]
            slot.append(self.compile(node, target_file))
        return self.refs[key]


_KNOWN = frozenset(
    (
        "$ref", "type", "properties", "additionalProperties", "required", "propertyNames", "minProperties",
        "maxProperties", "items", "minItems", "maxItems", "minLength", "maxLength", "pattern", "minimum",
        "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum", "const", "oneOf", "anyOf", "allOf",
    )
)  # fmt: skip
_PYTHON_TYPES = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "null": (type(None),),
    "integer": (int,),
    "number": (int, float),
}
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def _combine(key: str, subs: list[Check]) -> Check:
    if key == "oneOf":
        return lambda v: sum(1 for c in subs if c(v)) == 1
    if key == "anyOf":
        return lambda v: any(c(v) for c in subs)
    return lambda v: all(c(v) for c in subs)


def _bound(key: str, limit: Any) -> Check:
    """A numeric bound, for values already known to be numbers (int or float, not bool)."""
    if key == "minimum":
        return lambda v: v >= limit
    if key == "maximum":
        return lambda v: v <= limit
    if key == "exclusiveMinimum":
        return lambda v: v > limit
    return lambda v: v < limit


def is_valid(check: Check | None, value: Any) -> bool | None:
    """Pure: True or False as jsonschema would answer, or None when the check cannot tell (no check, or Unsure)."""
    if check is None:
        return None
    try:
        return check(value)
    except (Unsure, RecursionError):
        return None
