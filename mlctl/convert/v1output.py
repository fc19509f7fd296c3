"""The converted documents checked against mlctl's schemas of the current form before anything is
written: a v1 value the current form cannot hold (a timeout of 0, more than 1000 concurrent
requests) is an error at the v1 file, line and field it came from, not a broken file."""

from __future__ import annotations

from mlctl.convert.fieldmap import TABLE, V1Field
from mlctl.convert.v1build import Conversion
from mlctl.convert.v1files import V1Input
from mlctl.errors import Diagnostic, MlctlError
from mlctl.schemas.documents import Document
from mlctl.schemas.validate import validate_document


def _origin(v1: V1Input, kind: str, field: str | None) -> V1Field | None:
    """The v1 row, given in the input, whose value became `field` of the `kind` document."""
    for row in TABLE:
        f = v1.file(row.file)
        if row.target and field and row.target == f"{kind}.{field}" and f is not None and f.has(row.path):
            return row
    return None


def check_output(c: Conversion, v1: V1Input) -> None:
    """MlctlError naming every problem of the converted documents (at the v1 field when one is the cause)."""
    diags: list[Diagnostic] = []
    for kind, data in c.docs.items():
        for d in validate_document(Document(c.out / c.files[kind], data, ""), kind):
            row = _origin(v1, kind, d.field)
            if row is None:
                diags.append(
                    Diagnostic(
                        f"the converted {c.files[kind]} would be invalid: {d.summary}",
                        d.detail or "Fix the v1 value it comes from.",
                        field=d.field,
                    )
                )
                continue
            f = v1.file(row.file)
            diags.append(
                f.error(
                    f"{row.path} cannot be carried over to {row.target}: {d.summary}",
                    (d.detail + " " if d.detail else "") + f"Change {row.path} in {f.shown}.",
                    row.path,
                )
            )
    if diags:
        raise MlctlError(*diags)
