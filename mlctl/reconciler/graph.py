"""The dependency graph: resources (desired and recorded) as a networkx DiGraph, its order and its pictures.

Edges point from a dependency to its dependent (model -> deployment). Creates walk the
graph forwards wave by wave (model, environment, image, endpoint, deployment, traffic);
deletes walk it backwards.
"""

from __future__ import annotations

from typing import Iterable

import networkx as nx

from mlctl.errors import Diagnostic
from mlctl.resources import Kind, Resource


def _wave(address: str) -> int:
    try:
        return Kind(address.partition(".")[0]).wave
    except ValueError:
        return len(Kind)


def build_graph(resources: Iterable[Resource] = (), prior=None) -> nx.DiGraph:
    """Pure: a DiGraph of address strings. Node data: `kind`, `desired` (in the config), `recorded`
    (in the prior State). Edges come from each resource's depends_on (desired first, else recorded)."""
    g = nx.DiGraph()
    desired = {str(r.address): r for r in resources}
    for a, r in desired.items():
        g.add_node(a, kind=r.kind.value, desired=True, recorded=False)
    recorded = prior.resources if prior is not None else {}
    for a, rs in recorded.items():
        if a in g:
            g.nodes[a]["recorded"] = True
        else:
            g.add_node(a, kind=rs.kind, desired=False, recorded=True)
    for a, r in desired.items():
        g.add_edges_from((str(d), a) for d in r.depends_on)
    for a, rs in recorded.items():
        if a not in desired:
            g.add_edges_from((d, a) for d in rs.depends_on)
    for a, data in g.nodes(data=True):  # dependencies named but declared nowhere
        if "kind" not in data:
            data.update(kind=a.partition(".")[0], desired=False, recorded=False)
    return g


def find_cycles(graph: nx.DiGraph) -> list[Diagnostic]:
    """One error per dependency cycle (empty when the graph is acyclic)."""
    if nx.is_directed_acyclic_graph(graph):
        return []
    out = []
    for cycle in sorted(_rotated(c) for c in nx.simple_cycles(graph)):
        chain = " -> ".join(cycle + [cycle[0]])
        out.append(Diagnostic(
            f"dependency cycle: {chain}",
            "a resource cannot depend on itself through others; remove one of these references.",
            address=cycle[0],
        ))
    return out


def _rotated(cycle: list[str]) -> list[str]:
    i = cycle.index(min(cycle))
    return cycle[i:] + cycle[:i]


def order(graph: nx.DiGraph, nodes: Iterable[str] | None = None) -> list[str]:
    """Dependencies before dependents, ties broken by wave then address (stable, readable).
    Restricted to `nodes` when given. Falls back to (wave, address) order when there is a cycle."""
    sub = graph if nodes is None else graph.subgraph(nodes)
    key = lambda a: (_wave(a), a)  # noqa: E731
    try:
        return list(nx.lexicographical_topological_sort(sub, key=key))
    except nx.NetworkXUnfeasible:
        return sorted(sub, key=key)


def waves(graph: nx.DiGraph) -> list[list[str]]:
    """The nodes in order, grouped by kind wave (model, environment, image, endpoint, deployment, traffic)."""
    groups: dict[int, list[str]] = {}
    for a in order(graph):
        groups.setdefault(_wave(a), []).append(a)
    return [groups[w] for w in sorted(groups)]


def _style(data: dict) -> str:
    if data.get("desired"):
        return ""
    return "recorded only" if data.get("recorded") else "missing"


def to_dot(graph: nx.DiGraph) -> str:
    """Graphviz DOT, one cluster-free rank per wave."""
    lines = ["digraph mlctl {", "  rankdir=LR;", '  node [shape=box, fontname="Helvetica"];']
    for wave in waves(graph):
        lines.append("  { rank=same; " + " ".join(f'"{a}";' for a in wave) + " }")
    for a in order(graph):
        note = _style(graph.nodes[a])
        if note:
            lines.append(f'  "{a}" [style=dashed, label="{a}\\n({note})"];')
    for u, v in sorted(graph.edges):
        lines.append(f'  "{u}" -> "{v}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(graph: nx.DiGraph) -> str:
    """A mermaid flowchart (renders in GitHub markdown)."""
    ids = {a: f"n{i}" for i, a in enumerate(order(graph))}
    lines = ["flowchart LR"]
    for a, i in ids.items():
        note = _style(graph.nodes[a])
        label = f"{a}<br/>({note})" if note else a
        lines.append(f'  {i}["{label}"]')
    for u, v in sorted(graph.edges):
        lines.append(f"  {ids[u]} --> {ids[v]}")
    return "\n".join(lines) + "\n"
