"""Plans: what apply would do, computed by the pure function `plan()` from desired, prior and observed.

`plan()` does no I/O; `mlctl.reconciler.apply` carries out its changes, `refresh` supplies `observed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from dataclasses import replace as replace_fields
from typing import Any, Collection, Mapping

from mlctl.errors import Diagnostic, Severity
from mlctl.resources import Address, Kind, Resource
from mlctl.reconciler import rules
from mlctl.reconciler.actions import Action, Reason
from mlctl.reconciler.diff import diff_attributes
from mlctl.reconciler.graph import dependencies, find_cycles, order
from mlctl.runtime.contract import Order
from mlctl.observed import observed_of
from mlctl.state.statefile import Status

__all__ = ["Action", "Change", "Order", "Plan", "Reason", "drift_plan", "plan"]


@dataclass(frozen=True)
class Change:
    """One resource's planned change. `diff` items are (op, path, old, new), op in add/remove/change/drift."""

    address: Address
    action: Action
    reason: Reason | None  # None for no-op
    before: dict | None
    after: dict | None
    after_unknown: tuple[str, ...] = ()
    diff: tuple[tuple[str, str, Any, Any], ...] = ()
    changed_files: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    resource: Resource | None = None

    @property
    def kind(self) -> Kind:
        return self.address.kind

    @property
    def order(self) -> Order | None:
        """The runtime operation apply gives for this change (None for a no-op): chosen here, once."""
        return rules.order_for(self.kind, self.action, self.diff)


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]  # in apply order: forwards by wave, then deletes backwards
    lineage: str
    serial: int
    inputs: Mapping[str, str] = field(default_factory=dict)
    destroy: bool = False
    diagnostics: tuple[Diagnostic, ...] = ()
    ignored: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    refresh_only: bool = False  # drift only: what differs from what was applied (config not compared)
    runtime: str | None = None  # the runtime this plan moves resources to (None: each keeps its own)

    def has_changes(self) -> bool:
        return any(c.action is not Action.NOOP for c in self.changes)

    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.diagnostics)

    def summary(self) -> dict[str, int]:
        """Counts for `Plan: A to add, C to change, R to replace, D to destroy.`"""
        n = {"add": 0, "change": 0, "replace": 0, "destroy": 0, "unchanged": 0}
        for c in self.changes:
            n[c.action.counted] += 1
        return n

    def endpoint_deletions(self) -> list[Change]:
        """Endpoints this plan deletes: called out at the top; apply needs --allow-destroy or a --destroy plan."""
        return [c for c in self.changes if c.action is Action.DELETE and c.kind is Kind.ENDPOINT]

    def runtime_moves(self) -> list[Change]:
        """Endpoints this plan recreates on another runtime: called out at the top like a deletion
        (their instances stop); apply needs --allow-destroy for them."""
        return [c for c in self.changes if c.kind is Kind.ENDPOINT and c.reason is Reason.RUNTIME_CHANGED]

    def traffic_shifts(self) -> list[Change]:
        return [c for c in self.changes if c.kind is Kind.TRAFFIC and c.action is not Action.NOOP]


def path_attributes() -> Mapping[str, tuple[str, ...]]:
    """{kind: attributes holding absolute paths}: excluded from diffs (another checkout is no change)."""
    from mlctl.schemas.load import PATH_ATTRIBUTES

    return PATH_ATTRIBUTES


def changed_files(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """Pure: {"added", "changed", "removed"} file lists ({} when the same files)."""
    if before == after:
        return {}
    return {
        "added": tuple(sorted(set(after) - set(before))),
        "changed": tuple(sorted(p for p in set(after) & set(before) if after[p] != before[p])),
        "removed": tuple(sorted(set(before) - set(after))),
    }


def _drift(kind: Kind, observed, attributes: dict) -> tuple[list, list]:
    """Candidates and diff items for what the runtime reports differently from what was applied
    (`observed`: the kind's typed observed value, or None)."""
    cands, items = [], []
    observed = observed_of(kind, observed)
    for rule in rules.DRIFT.get(kind, ()):
        if observed and rule.drifted(observed, attributes):
            cands.append((rule.action, Reason.DRIFT))
            want = rule.wanted(attributes)
            items.append(("drift", rule.key, getattr(observed, rule.key), want))
    return cands, items


def _requested(replace: Collection[str], desired: Mapping[Address, Resource]) -> tuple[set[Address], list[Diagnostic]]:
    ok, diags = set(), []
    for text in replace:
        try:
            a = Address.parse(text)
        except ValueError as e:
            diags.append(Diagnostic(f"--replace {text}: {e}", field="--replace"))
            continue
        if a not in desired:
            diags.append(
                Diagnostic(
                    f"--replace {a}: no such resource in the configuration",
                    "name a resource the configuration declares (see `mlctl state list`).",
                    field="--replace",
                )
            )
        elif desired[a].kind is Kind.TRAFFIC:
            diags.append(
                Diagnostic(
                    f"--replace {a}: traffic is always updated in place, never replaced",
                    "replace a deployment or the endpoint instead.",
                    field="--replace",
                )
            )
        else:
            ok.add(a)
    return ok, diags


def _immutable(r: Resource, prior) -> Diagnostic | None:
    """An error when a registered NAME:VERSION would get new content."""
    key = rules.RULES[r.kind].immutable_version
    b, a = prior.attributes, r.attributes
    if not key or b.get("version") != a.get("version") or b.get(key) == a.get(key):
        return None
    name, version = a.get("name"), a.get("version")
    src = r.source
    return Diagnostic(
        f"{r.kind.value} {name}:{version} is already registered with other content",
        "registered versions are immutable: bump `version` (e.g. to a new number) or leave `version` "
        "out so mlctl derives it from the content.",
        file=src.file if src else None,
        line=src.line_of("version") if src else None,
        field="version",
        address=str(r.address),
    )


def _decide(
    r: Resource, p, obs, gone: bool, requested: bool, upstream: Action | None, exclude, moved: bool = False
) -> tuple:
    """(action, reason, diff) for a resource that is both desired and recorded; `moved`: the project's
    runtime is another than the one that made it."""
    kind = r.kind
    diff = diff_attributes(p.attributes, r.attributes, exclude)
    cands = []
    if gone:  # a failed create that never ran is retried, not drift
        never_ran = p.status == Status.FAILED and not p.observed
        cands.append((Action.CREATE, Reason.FAILED_EARLIER if never_ran else Reason.DRIFT))
    own_replace = rules.replace_action(kind, diff)
    if diff:
        act = own_replace if rules.requires_replace(kind, diff) else Action.UPDATE
        if upstream and rules.follows_upstream(kind, diff):
            cands.append((act, Reason.UPSTREAM_REPLACED))
        else:
            cands.append(
                (act, Reason.ARTIFACT_CHANGED if rules.is_artifact_change(kind, diff) else Reason.CONFIG_CHANGED)
            )
    elif dict(p.files) != dict(r.files):
        cands.append((own_replace, Reason.ARTIFACT_CHANGED))
    after_upstream = rules.after_upstream(kind, upstream, own_replace) if upstream else None
    if after_upstream:
        cands.append((after_upstream, Reason.UPSTREAM_REPLACED))
    if moved:
        cands.append((max(own_replace, after_upstream or own_replace, key=lambda a: a.rank), Reason.RUNTIME_CHANGED))
    if p.status == Status.FAILED:
        cands.append((own_replace, Reason.FAILED_EARLIER))
    if requested:
        cands.append((own_replace, Reason.REQUESTED))
    drift_cands, drift_items = _drift(kind, None if gone else obs, p.attributes)
    if p.status == Status.FAILED:  # the runtime still runs what preceded the failed change: expected, not drift
        drift_cands = [c for c in drift_cands if c[0].rank > own_replace.rank]
    cands += drift_cands
    if not cands:
        return Action.NOOP, None, diff
    order_of_reasons = list(Reason)
    action, reason = max(cands, key=lambda c: (c[0].rank, -order_of_reasons.index(c[1])))
    if p.failed_roll == r.digest and reason in (Reason.CONFIG_CHANGED, Reason.ARTIFACT_CHANGED):
        reason = Reason.FAILED_EARLIER  # this very version failed to roll out before
    return action, reason, diff + tuple(drift_items)


def decided_action(change: Change) -> Action:
    """Pure: what a desired resource's change means to its dependents: a resource created again after it was
    there (gone, or failed before it ran) is RECREATE, so its dependents start again too."""
    return Action.RECREATE if change.action is Action.CREATE and change.reason is not Reason.NEW else change.action


def decide_change(r: Resource, p, observed, decided, requested: bool, runtime: str | None, exclude) -> tuple:
    """Pure: (Change, immutable-version error or None) of a desired resource `r` against its recorded entry `p`
    (None: new); `decided(address)`: the decided action (decided_action) of a dependency, or None. The one
    decision of plan(), also used by mlctl.reconciler.planbase for the resources an edit touches."""
    a = r.address
    unknown = rules.unknown_after_apply(r.kind, r.attributes)
    if p is None:
        return Change(r.address, Action.CREATE, Reason.NEW, None, dict(r.attributes), unknown, resource=r), None
    obs = p.observed if observed is None else observed.get(a, p.observed)
    gone = observed is not None and a in observed and observed[a] is None
    up = [decided(d) for d in r.depends_on]
    upstream = Action.RECREATE if Action.RECREATE in up else Action.REPLACE if Action.REPLACE in up else None
    moved = runtime is not None and rules.RULES[r.kind].runtime_bound and p.runtime != runtime
    action, reason, diff = _decide(r, p, obs, gone, requested, upstream, exclude.get(r.kind.value, ()), moved)
    immutable = _immutable(r, p) if action is not Action.NOOP else None
    change = Change(
        r.address,
        action,
        reason,
        None if action is Action.CREATE else dict(p.attributes),
        dict(r.attributes),
        unknown if action in (Action.CREATE, Action.RECREATE, Action.REPLACE) else (),
        diff,
        changed_files(p.files, r.files),
        r,
    )
    return change, immutable


@dataclass(frozen=True)
class _Applied:
    """What was applied, as a desired configuration (for refresh-only plans)."""

    resources: tuple[Resource, ...]
    diagnostics: tuple = ()
    inputs: Mapping[str, str] = field(default_factory=dict)
    ignored: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def applied_resources(state) -> tuple[Resource, ...]:
    """Pure: what `state` records as applied, as desired resources (what a refresh-only plan restores)."""
    return tuple(
        Resource(a, rs.attributes, rs.digest, tuple(rs.depends_on), rs.files)
        for a, rs in sorted(state.resources.items())
    )


def ignored_fields(desired, want: Mapping[Address, Resource], destroy: bool) -> dict[str, tuple[str, ...]]:
    """Pure: {address: cloud-only fields} of the desired resources a plan keeps (none for --destroy)."""
    if destroy:
        return {}
    wanted = {str(a) for a in want}
    return {a: tuple(f) for a, f in desired.ignored.items() if a in wanted and f}


def drift_plan(prior, observed: Mapping[Address, Any]) -> Plan:
    """Pure: only what the runtime reports differently from what was applied (`plan --refresh-only`):
    the recorded resources planned against themselves, failed status set aside."""
    applied = _Applied(applied_resources(prior))
    ready = replace_fields(
        prior, resources={a: replace_fields(rs, status=Status.READY) for a, rs in prior.resources.items()}
    )
    return replace_fields(plan(applied, ready, observed), refresh_only=True)


def plan(
    desired,
    prior,
    observed: Mapping[Address, Any] | None = None,
    *,
    destroy: bool = False,
    replace: Collection[str] = (),
    runtime: str | None = None,
) -> Plan:
    """Pure: the changes that take `prior` (as `observed` reports it) to `desired` (a loaded Config).

    `observed` None means no refresh: the prior state's recorded `observed` stands in.
    `destroy` plans the deletion of everything recorded. `runtime`: the project's runtime; what
    another runtime made is moved to it (None: every resource stays where it is).
    Errors go in `Plan.diagnostics`. `mlctl.reconciler.apply.apply` carries the plan out.
    """
    want = {r.address: r for r in desired.resources}
    have = prior.resources
    graph = dependencies(desired.resources, prior)
    placed = order(graph)
    diags = list(desired.diagnostics) + find_cycles(graph, placed)
    requested, bad = _requested(replace, want)
    diags += bad
    if prior.pending:
        pend = prior.pending
        diags.append(
            Diagnostic(
                f"an earlier apply was interrupted during {pend.get('action', '?')} of {pend.get('address', '?')} "
                f"(started {pend.get('started_at', '?')})",
                "this plan starts from what was recorded before it.",
                severity=Severity.WARNING,
                address=pend.get("address"),
            )
        )
    exclude = path_attributes()
    changes: list[Change] = []
    decided: dict[Address, Action] = {}
    if not destroy:
        for a in placed if len(want) == len(graph.nodes) else order(graph, want):  # want is in graph.nodes
            r = want[a]
            change, immutable = decide_change(r, have.get(a), observed, decided.get, a in requested, runtime, exclude)
            decided[a] = decided_action(change)
            if immutable:
                diags.append(immutable)
            changes.append(change)
    gone_reason = Reason.DESTROY if destroy else Reason.NOT_IN_CONFIG
    doomed = [a for a in have if destroy or a not in want]
    for a in reversed(order(graph, doomed)):
        p = have[a]
        changes.append(Change(a, Action.DELETE, gone_reason, dict(p.attributes), None))
    return Plan(
        tuple(changes),
        prior.lineage,
        prior.serial,
        dict(desired.inputs),
        destroy,
        tuple(diags),
        ignored_fields(desired, want, destroy),
        runtime=runtime,
    )
