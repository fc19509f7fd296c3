"""Per-kind planning rules as data: which field changes update in place, which replace (and how),
what counts as drift, what is known only after apply. Pure; read by `plans.plan`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from mlctl.resources import Kind


@dataclass(frozen=True)
class KindRules:
    in_place: frozenset[str]        # top-level attributes whose change is an update `~`
    destroy_first: frozenset[str]   # attributes whose change forces destroy-then-create `-/+`
    replace: str                    # "+/-" or "-/+": how any other change replaces
    artifact: frozenset[str] = frozenset()   # attributes that are content digests (reason: artifact changed)
    derived: frozenset[str] = frozenset()    # attributes that follow an upstream resource (reason: upstream replaced)
    unknown: tuple[str, ...] = ()            # values known only after apply ...
    unknown_if_null: str | None = None       # ... when this attribute is null (no port asked for)
    immutable_version: str | None = None     # the content digest attribute fixed by NAME:VERSION
    always_in_place: bool = False           # never replaced (traffic)


META = frozenset({"description", "tags"})

RULES: dict[Kind, KindRules] = {
    Kind.MODEL: KindRules(META, frozenset(), "+/-", artifact=frozenset({"content_digest"}),
                          immutable_version="content_digest"),
    Kind.ENVIRONMENT: KindRules(META, frozenset(), "+/-", immutable_version="spec_digest"),
    Kind.IMAGE: KindRules(frozenset(), frozenset(), "+/-", derived=frozenset({"spec_digest", "python",
                          "conda_packages", "pip_packages"})),
    Kind.ENDPOINT: KindRules(META | {"auth_mode"}, frozenset({"port"}), "-/+", unknown=("port", "scoring_uri"),
                             unknown_if_null="port"),
    Kind.DEPLOYMENT: KindRules(META | {"instance_count"}, frozenset(), "+/-",
                               artifact=frozenset({"code_digest", "model_digest"}),
                               derived=frozenset({"model_version", "model_digest", "image_digest"})),
    Kind.TRAFFIC: KindRules(frozenset({"traffic", "mirror_traffic"}), frozenset(), "~", always_in_place=True),
}


def unknown_after_apply(kind: Kind, attributes) -> tuple[str, ...]:
    """Values a new `kind` resource gets only when applied (shown as `(known after apply)`)."""
    rules = RULES[kind]
    if rules.unknown_if_null and attributes.get(rules.unknown_if_null) is not None:
        return ()
    return rules.unknown


def top_fields(diff: Iterable[tuple[str, str, Any, Any]]) -> set[str]:
    """The top-level attribute names a diff touches."""
    return {path.split(".", 1)[0].split("[", 1)[0] for _, path, _, _ in diff}


def requires_replace(kind: Kind, diff) -> bool:
    """Does this change need a new resource rather than an update in place?"""
    rules = RULES[kind]
    return not rules.always_in_place and not top_fields(diff) <= rules.in_place


def replace_symbol(kind: Kind, diff=()) -> str:
    """How `kind` is replaced for this diff: "-/+" when old and new cannot coexist, else "+/-"."""
    rules = RULES[kind]
    return "-/+" if top_fields(diff) & rules.destroy_first else rules.replace


def is_artifact_change(kind: Kind, diff) -> bool:
    """Is every changed field a content digest (files changed, config did not)?"""
    fields = top_fields(diff)
    return bool(fields) and fields <= RULES[kind].artifact


def follows_upstream(kind: Kind, diff) -> bool:
    """Did only fields that mirror a dependency change (a new model version, a rebuilt image)?"""
    fields = top_fields(diff)
    return fields <= RULES[kind].derived


@dataclass(frozen=True)
class DriftRule:
    """`observed[key]` compared with the recorded `attributes[attribute]` by `test`; drift -> `symbol`."""

    key: str
    attribute: str | None
    test: str          # "is_false" | "differs" | "differs_when_set" | "below"
    symbol: str        # "~", "+/-" or "-/+"

    def drifted(self, observed: dict, attributes: dict) -> bool:
        """Does the runtime report something other than what was applied?"""
        if self.key not in observed or observed[self.key] is None:
            return False
        seen = observed[self.key]
        want = attributes.get(self.attribute) if self.attribute else None
        if self.test == "is_false":
            return seen is False
        if self.test == "below":
            return isinstance(want, int) and seen < want
        if self.test == "differs_when_set":
            return want is not None and seen != want
        return seen != want


DRIFT: dict[Kind, tuple[DriftRule, ...]] = {
    Kind.ENDPOINT: (DriftRule("alive", None, "is_false", "-/+"), DriftRule("port", "port", "differs_when_set", "-/+")),
    Kind.DEPLOYMENT: (
        DriftRule("ready_instances", "instance_count", "below", "~"),
        DriftRule("instance_count", "instance_count", "differs", "~"),   # scaled outside mlctl
        DriftRule("served_model_digest", "model_digest", "differs", "+/-"),
        DriftRule("served_code_digest", "code_digest", "differs", "+/-"),
    ),
    Kind.TRAFFIC: (DriftRule("traffic", "traffic", "differs", "~"),
                   DriftRule("mirror_traffic", "mirror_traffic", "differs", "~")),
}
