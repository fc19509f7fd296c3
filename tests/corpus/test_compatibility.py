"""docs/compatibility.md lists every Azure YAML and v1 field of the corpus's files with what mlctl does with it,
generated from the tables the code runs on (mlctl/schemas, mlctl.schemas.compatibility, the v1 field table)."""

from __future__ import annotations

from compat import DOC, rendered, tables

from mlctl.schemas.compatibility import HONOURED, IGNORED, MAPPED, NOTES, REFUSED


def test_the_page_is_the_generated_tables():
    text = DOC.read_text()
    assert rendered(text) == text, "docs/compatibility.md is out of date: run python tests/corpus/compat.py"


def test_every_field_of_the_corpus_is_read():
    """Every case passes validate, so none of its fields may be listed as refused; and each row says one of the
    four things."""
    for table in tables().values():
        rows = [line.split(" | ") for line in table.splitlines()[2:]]
        assert rows
        assert all(r[1] in (HONOURED, MAPPED, IGNORED) for r in rows), [r for r in rows if r[1] == REFUSED]


def test_notes_name_real_fields():
    from mlctl.schemas.compatibility import _node

    for key, (status, note) in NOTES.items():
        kind, _, dotted = key.partition(".")
        assert status in (HONOURED, MAPPED, IGNORED, REFUSED) and note, key
        assert _node(kind, dotted) is not None, f"{key} is not a field of mlctl/schemas/{kind}.schema.json"
