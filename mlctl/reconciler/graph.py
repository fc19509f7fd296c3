"""The dependency graph: resources (desired and recorded), their order, cycles and pictures.

Edges point from a dependency to its dependent (model -> deployment). Creates walk the
graph forwards wave by wave (model, environment, image, endpoint, deployment, traffic);
deletes walk it backwards. `dependencies()` is the one source of the edges; `order()` sorts
them without networkx (so `mlctl plan` does not pay its import); `find_cycles()` imports
networkx only when the graph has a cycle.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Iterable

from mlctl.errors import Diagnostic
from mlctl.resources import Address, Resource


def _wave(address: Address) -> int:
    return address.kind.wave


@dataclass
class Deps:
    """nodes: {Address: {"kind", "desired", "recorded"}}; needs: {Address: set of Addresses it depends on}."""

    nodes: dict[Address, dict] = field(default_factory=dict)
    needs: dict[Address, set[Address]] = field(default_factory=dict)

    @property
    def edges(self) -> list[tuple[Address, Address]]:
        return sorted((d, a) for a, ds in self.needs.items() for d in ds)


def dependencies(resources: Iterable[Resource] = (), prior=None) -> Deps:
    """Pure: the graph (its nodes are Addresses) of the desired resources and those recorded in `prior`
    (a State). Edges come from each resource's depends_on (the desired resource's when both exist)."""
    g = Deps()
    desired = {r.address: r for r in resources}
    for a, r in desired.items():
        g.nodes[a] = {"kind": r.kind.value, "desired": True, "recorded": False}
        g.needs[a] = set(r.depends_on)
    for a, rs in (prior.resources if prior is not None else {}).items():
        if a in g.nodes:
            g.nodes[a]["recorded"] = True
        else:
            g.nodes[a] = {"kind": rs.kind, "desired": False, "recorded": True}
            g.needs[a] = set(rs.depends_on)
    for a in {d for ds in g.needs.values() for d in ds} - set(g.nodes):  # named but declared nowhere
        g.nodes[a] = {"kind": a.kind.value, "desired": False, "recorded": False}
        g.needs[a] = set()
    return g


def order(deps: Deps, nodes: Iterable[Address] | None = None) -> list[Address]:
    """Dependencies before dependents, ties broken by wave then address (stable, readable).
    Restricted to `nodes` when given. Nodes on a cycle come last, by (wave, address)."""
    keep = set(deps.nodes) if nodes is None else set(nodes)
    needs = {a: deps.needs.get(a, set()) & keep for a in keep}
    users: dict[Address, list[Address]] = {a: [] for a in keep}
    for a, ds in needs.items():
        for d in ds:
            users[d].append(a)
    waiting = {a: len(ds) for a, ds in needs.items()}
    # (wave, kind, name) orders as (wave, address) does, compared without calling Address's methods
    ready = [((_wave(a), a.kind.value, a.name), a) for a, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    out = []
    while ready:
        _, a = heapq.heappop(ready)
        out.append(a)
        for u in users[a]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, ((_wave(u), u.kind.value, u.name), u))
    if len(out) < len(keep):
        out += sorted(keep - set(out), key=lambda a: (_wave(a), a))
    return out


def waves(deps: Deps) -> list[list[Address]]:
    """The nodes in order, grouped by kind wave (model, environment, image, endpoint, deployment, traffic)."""
    groups: dict[int, list[Address]] = {}
    for a in order(deps):
        groups.setdefault(_wave(a), []).append(a)
    return [groups[w] for w in sorted(groups)]


def _rotated(cycle: list[Address]) -> list[Address]:
    i = cycle.index(min(cycle))
    return cycle[i:] + cycle[:i]


def find_cycles(deps: Deps, placed: list[Address] | None = None) -> list[Diagnostic]:
    """One error per dependency cycle (empty when there is none). `placed`: order(deps), when made already."""
    if _acyclic(deps, placed):
        return []
    import networkx as nx

    g = nx.DiGraph(deps.edges)
    out = []
    for cycle in sorted(_rotated(c) for c in nx.simple_cycles(g)):
        out.append(
            Diagnostic(
                f"dependency cycle: {' -> '.join(str(a) for a in cycle + [cycle[0]])}",
                "a resource cannot depend on itself through others; remove one of these references.",
                address=str(cycle[0]),
            )
        )
    return out


def _acyclic(deps: Deps, placed: list[Address] | None = None) -> bool:
    """Is every node placed after all its dependencies by order()?"""
    pos = {a: i for i, a in enumerate(order(deps) if placed is None else placed)}
    return all(pos[d] < pos[a] for a, ds in deps.needs.items() for d in ds)


def _note(data: dict) -> str:
    if data.get("desired"):
        return ""
    return "recorded only" if data.get("recorded") else "missing"


def to_dot(deps: Deps) -> str:
    """Graphviz DOT, one rank per wave."""
    lines = ["digraph mlctl {", "  rankdir=LR;", '  node [shape=box, fontname="Helvetica"];']
    for wave in waves(deps):
        lines.append("  { rank=same; " + " ".join(f'"{a}";' for a in wave) + " }")
    for a in order(deps):
        note = _note(deps.nodes[a])
        if note:
            lines.append(f'  "{a}" [style=dashed, label="{a}\\n({note})"];')
    lines += [f'  "{u}" -> "{v}";' for u, v in deps.edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(deps: Deps) -> str:
    """A mermaid flowchart (renders in GitHub markdown)."""
    ids = {a: f"n{i}" for i, a in enumerate(order(deps))}
    lines = ["flowchart LR"]
    for a, i in ids.items():
        note = _note(deps.nodes[a])
        lines.append(f'  {i}["{a}<br/>({note})"]' if note else f'  {i}["{a}"]')
    lines += [f"  {ids[u]} --> {ids[v]}" for u, v in deps.edges]
    return "\n".join(lines) + "\n"
