"""Diagnostics: what is wrong, where (file, line, field), what to do; collected, not raised one by one."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in the user's input or on the machine.

    `summary` says what is wrong, `detail` what to do about it. `file`/`line`/`field`
    locate it in the user's YAML; `address` names the resource when there is one.
    """

    summary: str
    detail: str = ""
    file: str | None = None
    line: int | None = None
    field: str | None = None
    address: str | None = None
    severity: Severity = Severity.ERROR

    def __post_init__(self):
        object.__setattr__(self, "severity", Severity(self.severity))

    def location(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file if self.line is None else f"{self.file}:{self.line}")
        if self.field:
            parts.append(f"field '{self.field}'")
        if self.address:
            parts.append(self.address)
        return ", ".join(parts)

    def format(self) -> str:
        where = self.location()
        head = f"{self.severity.capitalize()}: {self.summary}"
        if where:
            head += f"\n  at {where}"
        if self.detail:
            head += f"\n  {self.detail}"
        return head


class MlctlError(Exception):
    """An error for the user (bad input, stale plan, held lock): printed without a traceback, exit 1.

    Carries one or more diagnostics.
    """

    def __init__(self, *diagnostics: Diagnostic | str, detail: str = ""):
        diags = [d if isinstance(d, Diagnostic) else Diagnostic(d, detail) for d in diagnostics]
        self.diagnostics = diags
        super().__init__("\n".join(d.format() for d in diags))
