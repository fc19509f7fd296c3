"""docs/compatibility.md's field tables, from the corpus's files and the tables mlctl runs on.

Every field of every Azure YAML file of the corpus is looked up in `mlctl.schemas.compatibility` (the
schemas and their notes), every field of its v1 files in `mlctl.convert.fieldmap.TABLE` (the conversion's
table). `python tests/corpus/compat.py` rewrites the tables in docs/compatibility.md; the corpus's test keeps
the page equal to what this prints.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import yaml
from corpus_support import REPO, all_cases

from mlctl.convert.fieldmap import DC, IC, TABLE
from mlctl.overrides import fill
from mlctl.schemas.compatibility import field_status, is_free_form
from mlctl.schemas.discovery import kind_from_schema_url

DOC = REPO / "docs" / "compatibility.md"
V1_FILES = {"inferenceconfig.json": IC, "deploymentconfig.json": DC}


def _walk(kind: str, data: dict, prefix: str, out: list[tuple[str, str]]) -> None:
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if kind == "endpoint" and dotted == "deployments" and isinstance(value, list):
            out.append((kind, dotted))
            for item in value:
                if isinstance(item, dict):
                    _walk("deployment", item, "", out)
            continue
        out.append((kind, dotted))
        if isinstance(value, dict) and not is_free_form(kind, dotted) and field_status(kind, dotted)[0] != "ignored":
            _walk(kind, value, dotted + ".", out)  # (an ignored field's members are not read at all)


def yaml_fields(case) -> list[tuple[str, str]]:
    """The (kind, dotted field) of every Azure YAML document among a case's files."""
    variables = [tuple(a.split("=", 1)) for flag, a in zip(case.args, case.args[1:]) if flag == "--var"]
    out: list[tuple[str, str]] = []
    for path in sorted((case.folder / "files").rglob("*.y*ml")):
        try:
            data = yaml.safe_load(fill(path.read_text(), variables))
        except yaml.YAMLError:
            continue
        if not isinstance(data, dict):
            continue
        kind = data.get("kind") or (
            kind_from_schema_url(data["$schema"]) if isinstance(data.get("$schema"), str) else None
        )
        if kind:
            _walk(kind, data, "", out)
    return out


def _v1_walk(file: str, data: dict, prefix: str, out: list[tuple[str, str]]) -> None:
    rows = {r.path: r for r in TABLE if r.file == file}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        out.append((file, dotted))
        row = rows.get(dotted)
        if isinstance(value, dict) and not (row is not None and row.free_form):
            _v1_walk(file, value, dotted + ".", out)


def v1_fields(case) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for path in sorted((case.folder / "files").rglob("*.json")):
        if path.name in V1_FILES:
            _v1_walk(V1_FILES[path.name], json.loads(path.read_text()), "", out)
    return out


def v1_table(fields: dict[tuple[str, str], list[str]]) -> str:
    """Pure: the v1 fields of the corpus, as the conversion's table says (mapped to a field, or not carried)."""
    rows = {(r.file, r.path): r for r in TABLE}
    lines = ["| v1 field | mlctl | note | in |", "|---|---|---|---|"]
    for (file, dotted), where in sorted(fields.items()):
        row = rows.get((file, dotted))
        if row is None:
            status, note = "refused", "not a v1 field: `mlctl convert v1` names it and writes nothing"
        elif row.carried:
            status, note = "mapped", f"to `{row.target}`" + (f": {row.note}" if row.note else "")
        elif row.target == "":
            status, note = "mapped", "nothing to carry" + (f": {row.note}" if row.note else "")
        else:
            status, note = "ignored", f"not carried over: {row.note}"
        lines.append(f"| `{file}: {dotted}` | {status} | {note} | {', '.join(sorted(set(where)))} |")
    return "\n".join(lines) + "\n"


def tables() -> dict[str, str]:
    """{"azure": markdown, "v1": markdown} for the corpus as it is."""
    from mlctl.schemas.compatibility import markdown_table

    azure: dict = defaultdict(list)
    v1: dict = defaultdict(list)
    for case in all_cases():
        for field in yaml_fields(case):
            azure[field].append(case.name)
        for field in v1_fields(case):
            v1[field].append(case.name)
    return {"azure": markdown_table(azure), "v1": v1_table(v1)}


def rendered(text: str) -> str:
    """The page `text` with its tables replaced by the generated ones."""
    for name, table in tables().items():
        text = re.sub(
            rf"(<!-- table: {name} -->\n).*?(<!-- end table -->)",
            lambda m: m.group(1) + table + m.group(2),
            text,
            flags=re.S,
        )
    return text


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    DOC.write_text(rendered(DOC.read_text()))
    print(f"wrote {DOC}")
