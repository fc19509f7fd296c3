"""Command-line overrides of the configuration, as the Azure CLI examples give them.

`--set [FILE:]PATH=VALUE` (Azure's `--set`): PATH is dotted with list indexes (`traffic.blue`,
`identity.user_assigned_identities[0].resource_id`); VALUE is read as JSON when it is JSON (`2`, `true`,
`{"a": 1}`), else kept as text. Without FILE it applies to the one document read whose kind has PATH's first
field (an endpoint's `traffic`, a deployment's `instance_count`); when several have it, name the file.
`--var NAME=VALUE` fills the placeholders the examples leave for the user, `<NAME>` and `{{NAME}}`, in the
text of every configuration file before it is parsed. A placeholder left unfilled (and not replaced by a
`--set`) is one clear error per file naming them all, not a YAML syntax error.

A saved plan binds to them: it records each `--set [FILE:]PATH` and `--var NAME` with the digest of its
value (never the value), and `apply PLANFILE` refuses the plan unless given the same ones again.
Everything here is pure but `set_value`, which changes the document it is given.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mlctl.errors import Diagnostic, MlctlError

# (not `${{ x }}`: a GitHub Actions expression in a workflow file that sits in the project folder)
PLACEHOLDER = re.compile(r"<([A-Za-z_][A-Za-z0-9_.-]*)>|(?<!\$)\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
SET_INPUT, VAR_INPUT = "--set ", "--var "


@dataclass(frozen=True)
class Override:
    """One `--set`: the file it names (None: the document that has the field), the path and the value."""

    file: str | None
    path: tuple[str | int, ...]
    value: Any
    text: str  # as given

    @property
    def field(self) -> str:
        return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in self.path).lstrip(".")


@dataclass(frozen=True)
class Overrides:
    sets: tuple[Override, ...] = ()
    variables: tuple[tuple[str, str], ...] = ()

    def inputs(self) -> dict[str, str]:
        """Pure: the plan inputs that bind a saved plan to these overrides: `--set [FILE:]PATH` and `--var
        NAME`, each with the digest of its value (a plan file holds no values: one may be a secret)."""
        out = {SET_INPUT + o.text.partition("=")[0]: _digest(json.dumps(o.value)) for o in self.sets}
        out.update({VAR_INPUT + name: _digest(value) for name, value in self.variables})
        return out

    def __bool__(self) -> bool:
        return bool(self.sets or self.variables)


def parse_path(text: str) -> tuple[str | int, ...] | None:
    """Pure: 'a.b[0].c' -> ('a', 'b', 0, 'c'); None when it is not a path."""
    out: list[str | int] = []
    pos = 0
    for m in _STEP.finditer(text):
        if m.start() != pos and not (text[pos] == "." and m.start() == pos + 1 and out):
            return None
        out.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    return tuple(out) if out and pos == len(text) and isinstance(out[0], str) else None


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_overrides(sets: Iterable[str] = (), variables: Iterable[str] = ()) -> Overrides:
    """Pure: the overrides of `--set` and `--var` arguments; MlctlError listing every malformed one."""
    problems, parsed, named = [], [], []
    for text in sets:
        where, eq, value = text.partition("=")
        file, colon, path_text = where.rpartition(":") if ":" in where else ("", "", where)
        path = parse_path(path_text.strip())
        if not eq or path is None:
            problems.append(
                Diagnostic(
                    f"--set {text!r} is not PATH=VALUE",
                    "Write --set traffic.blue=100 or --set blue-deployment.yml:instance_count=2 "
                    "(a dotted path, list items as [0]).",
                    field="--set",
                )
            )
            continue
        parsed.append(Override(file.strip() or None, path, _value(value), text))
    for text in variables:
        name, eq, value = text.partition("=")
        if not eq or not _NAME.fullmatch(name.strip()):
            problems.append(
                Diagnostic(
                    f"--var {text!r} is not NAME=VALUE",
                    "Write --var ENDPOINT_NAME=my-endpoint: it fills <ENDPOINT_NAME> and {{ENDPOINT_NAME}}.",
                    field="--var",
                )
            )
            continue
        named.append((name.strip(), value))
    if problems:
        raise MlctlError(*problems)
    return Overrides(tuple(parsed), tuple(named))


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_override_input(key: str) -> bool:
    """Pure: is this plan input a `--set` or `--var` (not a file)?"""
    return key.startswith((SET_INPUT, VAR_INPUT))


def fill(text: str, variables: Iterable[tuple[str, str]]) -> str:
    """Pure: `text` with `<NAME>` and `{{NAME}}` replaced by the value of each variable given."""
    values = dict(variables)
    if not values:
        return text

    def one(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        return values.get(name, m.group(0))

    return PLACEHOLDER.sub(one, text)


def _code(line: str) -> str:
    """Pure: a YAML line without its comment (a `#` at the start or after a blank, outside quotes)."""
    quote = None
    for i, c in enumerate(line):
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def unfilled(text: str) -> list[tuple[str, int]]:
    """Pure: the placeholders left in `text` outside comments, as (placeholder, 1-based line)."""
    if "<" not in text and "{{" not in text:  # every placeholder holds one of these: most files skip the walk
        return []
    return [(m.group(0), n) for n, line in enumerate(text.splitlines(), 1) for m in PLACEHOLDER.finditer(_code(line))]


def may_hold_placeholders(text: str) -> bool:
    """Pure: can the data parsed from YAML `text` hold a placeholder? Not when the text has no '<', '{' or
    backslash: a parsed string gets those characters only from the text, as they are or through an escape."""
    return "<" in text or "{" in text or "\\" in text


def placeholders_in(data: Any, path: tuple = ()) -> list[tuple[str, tuple]]:
    """Pure: the placeholders left in a parsed document's keys and text values, as (placeholder, path)."""
    if isinstance(data, dict):
        out = [(m.group(0), path + (k,)) for k in data if isinstance(k, str) for m in PLACEHOLDER.finditer(k)]
        return out + [x for k, v in data.items() for x in placeholders_in(v, path + (k,))]
    if isinstance(data, list):
        return [x for i, v in enumerate(data) for x in placeholders_in(v, path + (i,))]
    return [(m.group(0), path) for m in PLACEHOLDER.finditer(data)] if isinstance(data, str) else []


def unfilled_error(shown: str, found: list[tuple[str, int]]) -> Diagnostic:
    """Pure: the one error for the placeholders left in the file shown as `shown`."""
    names = list(dict.fromkeys(p for p, _ in found))
    bare = [PLACEHOLDER.fullmatch(p) for p in names]
    example = " ".join(f"--var {m.group(1) or m.group(2)}=VALUE" for m in bare if m)
    return Diagnostic(
        f"{shown} has placeholders left to fill: {', '.join(names)}",
        f"The example expects you to fill them: give {example} (to validate, plan and apply), or edit the file.",
        file=shown,
        line=found[0][1],
    )


def set_value(data: Any, path: tuple[str | int, ...], value: Any) -> str | None:
    """Set `path` in `data` to `value` (making missing mappings on the way, as Azure's --set does); the
    problem when the path crosses a value that is not a mapping or list, or a list index out of range."""
    node = data
    for i, step in enumerate(path):
        last = i == len(path) - 1
        shown = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path[: i + 1]).lstrip(".")
        if isinstance(step, int):
            if not isinstance(node, list) or not -len(node) <= step < len(node):
                return f"{shown}: no list item {step} here"
        elif not isinstance(node, dict):
            return f"{shown}: the value above it is not a mapping"
        if last:
            node[step] = value
        else:
            if isinstance(step, str) and node.get(step) is None:
                node[step] = {}
            node = node[step]
    return None
