"""Per-kind planning rules as data: which field changes update in place, which replace (and how),
which runtime order carries each action out, what counts as drift, what is known only after apply.
Pure; read by `plans.plan`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from mlctl import scalesettings
from mlctl.reconciler.actions import Action
from mlctl.resources import Kind
from mlctl.runtime.contract import Order
from mlctl.observed import fields_of


@dataclass(frozen=True)
class KindRules:
    in_place: frozenset[str]  # top-level attributes whose change is an update `~`
    destroy_first: frozenset[str]  # attributes whose change forces destroy-then-create `-/+`
    replace: Action  # REPLACE (+/-) or RECREATE (-/+): how any other change replaces
    artifact: frozenset[str] = frozenset()  # attributes that are content digests (reason: artifact changed)
    derived: frozenset[str] = frozenset()  # attributes that follow an upstream resource (reason: upstream replaced)
    unknown: tuple[str, ...] = ()  # values known only after apply ...
    unknown_if_null: str | None = None  # ... when this attribute is null (no port asked for)
    immutable_version: str | None = None  # the content digest attribute fixed by NAME:VERSION
    always_in_place: bool = False  # never replaced (traffic)
    runtime_bound: bool = True  # made by a runtime: moved when the project's runtime changes
    scale_field: str | None = None  # the in-place field changed by the `scale` order


META = frozenset({"description", "tags"})

RULES: dict[Kind, KindRules] = {
    Kind.MODEL: KindRules(
        META,
        frozenset(),
        Action.REPLACE,
        artifact=frozenset({"content_digest"}),
        immutable_version="content_digest",
        runtime_bound=False,
    ),
    Kind.ENVIRONMENT: KindRules(
        META, frozenset(), Action.REPLACE, immutable_version="spec_digest", runtime_bound=False
    ),
    Kind.IMAGE: KindRules(
        frozenset(),
        frozenset(),
        Action.REPLACE,
        derived=frozenset({"spec_digest", "python", "conda_packages", "pip_packages"}),
    ),
    Kind.ENDPOINT: KindRules(
        # a new certificate (or client CA) is reloaded by the running host; a new address or TLS mode rebinds
        META | {"auth_mode", "public_name", "certificate_digest", "certificate_expires", "client_ca_digest"},
        frozenset({"port", "listen"}),
        Action.RECREATE,
        artifact=frozenset({"certificate_digest", "certificate_expires", "client_ca_digest"}),
        unknown=("port", "scoring_uri"),
        unknown_if_null="port",
    ),
    Kind.DEPLOYMENT: KindRules(
        META | {"instance_count", "scale_settings"},  # a new autoscaling range never restarts instances
        frozenset(),
        Action.REPLACE,
        artifact=frozenset({"code_digest", "model_digest"}),
        derived=frozenset({"model_version", "model_digest", "image_digest"}),
        scale_field="instance_count",
    ),
    Kind.TRAFFIC: KindRules(frozenset({"traffic", "mirror_traffic"}), frozenset(), Action.UPDATE, always_in_place=True),
}

ORDERS: dict[Action, Order | None] = {
    Action.CREATE: Order.CREATE,
    Action.UPDATE: Order.UPDATE,
    Action.REPLACE: Order.ROLL,
    Action.RECREATE: Order.RECREATE,
    Action.DELETE: Order.DELETE,
    Action.NOOP: None,
}


def order_for(kind: Kind, action: Action, diff=()) -> Order | None:
    """Pure: the runtime order that carries out `action` on a `kind` resource with this diff (drift
    items included): an update that changes the kind's scale field is a `scale`."""
    if action is Action.UPDATE and RULES[kind].scale_field and RULES[kind].scale_field in top_fields(diff):
        return Order.SCALE
    return ORDERS[action]


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


def replace_action(kind: Kind, diff=()) -> Action:
    """How `kind` is replaced for this diff: RECREATE (-/+) when old and new cannot coexist, else the
    kind's own way; UPDATE for a kind that is never replaced."""
    rules = RULES[kind]
    if rules.always_in_place:
        return Action.UPDATE
    return Action.RECREATE if top_fields(diff) & rules.destroy_first else rules.replace


def after_upstream(kind: Kind, upstream: Action, own: Action) -> Action | None:
    """What a resource undergoes when a dependency is replaced by `upstream`: recreated with it
    (-/+), else replaced its own way; traffic is set again only on a recreated endpoint."""
    if RULES[kind].always_in_place:
        return Action.UPDATE if upstream is Action.RECREATE else None
    return Action.RECREATE if upstream is Action.RECREATE else own


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
    """The observed field `key` compared with the recorded `attributes[attribute]` by `test`;
    drift -> `action`."""

    key: str
    attribute: str | None
    test: str  # "is_false" | "differs" | "differs_when_set" | "below" | "outside" | "nonempty"
    action: Action

    def wanted(self, attributes: dict):
        """What was applied, as the plan shows it beside what is observed."""
        span = scalesettings.instance_range(attributes) if scalesettings.is_autoscaled(attributes) else None
        if self.test in ("below", "outside") and span is not None:
            lo, hi = span
            return f"at least {lo}" if self.test == "below" else f"{lo}..{hi}"
        if self.attribute:
            return attributes.get(self.attribute)
        return [] if self.test == "nonempty" else True

    def drifted(self, observed, attributes: dict) -> bool:
        """Does the runtime report something other than what was applied? (`observed`: the kind's
        typed observed value, read by field name)"""
        seen = getattr(observed, self.key, None)
        if seen is None:
            return False
        want = attributes.get(self.attribute) if self.attribute else None
        if self.test == "is_false":
            return seen is False
        if self.test in ("below", "outside"):  # against the autoscaling range when there is one
            bounds = scalesettings.instance_range(attributes)
            if bounds is None:
                return False
            return seen < bounds[0] or (self.test == "outside" and seen > bounds[1])
        if self.test == "nonempty":
            return bool(seen)
        if self.test == "differs_when_set":
            return want is not None and seen != want
        return seen != want


DRIFT: dict[Kind, tuple[DriftRule, ...]] = {
    # a container image built on another base than the one chosen now (mlctl.yaml's docker.base_image
    # changed, the environment's image became available): rebuilt, and its deployments roll
    Kind.IMAGE: (DriftRule("on_chosen_base", None, "is_false", Action.REPLACE),),
    Kind.ENDPOINT: (
        DriftRule("alive", None, "is_false", Action.RECREATE),
        DriftRule("port", "port", "differs_when_set", Action.RECREATE),
        # the host serves another certificate than the one applied (its files changed since): reloaded
        DriftRule("certificate_digest", "certificate_digest", "differs_when_set", Action.UPDATE),
        # some of its hosts lost (in-cluster hosts whose node died): drift until Ray placed them again and they serve
        DriftRule("hosts_lost", None, "nonempty", Action.UPDATE),
    ),
    Kind.DEPLOYMENT: (
        # under autoscaling the count is observed, not desired: only a count outside the range is drift
        DriftRule("ready_instances", "instance_count", "below", Action.UPDATE),
        DriftRule("instance_count", "instance_count", "outside", Action.UPDATE),  # scaled outside mlctl
        DriftRule("served_model_digest", "model_digest", "differs", Action.REPLACE),
        DriftRule("served_code_digest", "code_digest", "differs", Action.REPLACE),
        DriftRule("changed_outside", None, "nonempty", Action.REPLACE),  # e.g. `docker update`
    ),
    Kind.TRAFFIC: (
        DriftRule("traffic", "traffic", "differs", Action.UPDATE),
        DriftRule("mirror_traffic", "mirror_traffic", "differs", Action.UPDATE),
    ),
}


def unreadable_drift_rules() -> list[str]:
    """Pure: the drift rules naming a field their kind's observed value does not have (none, or a bug)."""
    return [f"{kind.value}: {rule.key}" for kind, rs in DRIFT.items() for rule in rs if rule.key not in fields_of(kind)]
