"""The plan's vocabulary: actions (their symbol, JSON form, wording, verb) and the reasons for a change.

Every table that shows, counts or names an action reads it from here: the renderers, the summary,
the apply printer, the saved plan. Pure.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True)
class _Words:
    json: tuple[str, ...]  # Terraform's JSON form of the action
    headline: str  # "# ADDRESS will be created"
    legend: str  # the symbols legend at the top of a plan
    verb: str  # what apply prints while it acts: "creating..."
    counted: str  # the summary's column: add, change, replace, destroy, unchanged
    rank: int  # which wins when several reasons ask for actions on one resource


class Action(enum.StrEnum):
    """What a plan does to one resource; the value is the symbol printed."""

    CREATE = "+"
    UPDATE = "~"
    REPLACE = "+/-"  # create the new one, then destroy the old (deployments roll)
    RECREATE = "-/+"  # destroy, then create (the two cannot coexist: one port)
    DELETE = "-"
    NOOP = "."

    @property
    def symbol(self) -> str:
        return self.value

    @property
    def json_actions(self) -> list[str]:
        return list(_WORDS[self].json)

    @property
    def headline(self) -> str:
        return _WORDS[self].headline

    @property
    def legend(self) -> str:
        return _WORDS[self].legend

    @property
    def verb(self) -> str:
        return _WORDS[self].verb

    @property
    def counted(self) -> str:
        return _WORDS[self].counted

    @property
    def rank(self) -> int:
        return _WORDS[self].rank

    @property
    def replaces(self) -> bool:
        return self in (Action.REPLACE, Action.RECREATE)


_WORDS = {
    Action.CREATE: _Words(("create",), "will be created", "create", "creating", "add", 4),
    Action.UPDATE: _Words(("update",), "will be updated in place", "update in place", "updating", "change", 1),
    Action.REPLACE: _Words(
        ("create", "delete"),
        "must be replaced (the new one is created before the old one is destroyed)",
        "create replacement, then destroy",
        "replacing",
        "replace",
        2,
    ),
    Action.RECREATE: _Words(
        ("delete", "create"),
        "must be replaced (the old one is destroyed first)",
        "destroy, then create replacement",
        "recreating",
        "replace",
        3,
    ),
    Action.DELETE: _Words(("delete",), "will be destroyed", "destroy", "deleting", "destroy", 5),
    Action.NOOP: _Words(("no-op",), "is unchanged", "", "", "unchanged", 0),
}


class Reason(enum.StrEnum):
    """Why a resource changes; listed in the order that wins a tie between two reasons."""

    NEW = "new"
    RUNTIME_CHANGED = "runtime changed"
    CONFIG_CHANGED = "config changed"
    ARTIFACT_CHANGED = "artifact changed"
    UPSTREAM_REPLACED = "upstream replaced"
    DRIFT = "drift"
    FAILED_EARLIER = "failed earlier"
    REQUESTED = "requested"
    NOT_IN_CONFIG = "not in configuration"
    DESTROY = "destroy requested"
