"""Graph: edges, order, waves, cycles, DOT and mermaid (literal expectations); order agrees with networkx."""

from dataclasses import replace

import networkx as nx

from builders import A, deployment, endpoint, model, stack, state_of, traffic
from mlctl.reconciler.graph import dependencies, find_cycles, order, to_dot, to_mermaid, waves


def names(addresses) -> list[str]:
    return [str(a) for a in addresses]


def test_order_and_waves():
    g = dependencies(stack())
    assert names(order(g)) == [
        "model.m",
        "environment.env",
        "image.env",
        "endpoint.e",
        "deployment.e.blue",
        "traffic.e",
    ]
    assert [names(w) for w in waves(g)] == [
        ["model.m"],
        ["environment.env"],
        ["image.env"],
        ["endpoint.e"],
        ["deployment.e.blue"],
        ["traffic.e"],
    ]
    assert [(str(d), str(a)) for d, a in g.edges] == [
        ("deployment.e.blue", "traffic.e"),
        ("endpoint.e", "deployment.e.blue"),
        ("endpoint.e", "traffic.e"),
        ("environment.env", "image.env"),
        ("image.env", "deployment.e.blue"),
        ("model.m", "deployment.e.blue"),
    ]
    assert find_cycles(g) == []


def test_order_agrees_with_networkx_on_a_larger_graph():
    rs = [model(), model("m2")]
    for i in range(30):
        rs += [
            endpoint(f"e{i:02}"),
            deployment(ep=f"e{i:02}", name="a", model_name="m2", env=None),
            deployment(ep=f"e{i:02}", name="b", env=None),
            traffic(ep=f"e{i:02}", deployments=("a", "b")),
        ]
    deps = dependencies(rs)
    g = nx.DiGraph()
    g.add_nodes_from((str(a), data) for a, data in deps.nodes.items())
    g.add_edges_from((str(d), str(a)) for d, a in deps.edges)
    key = lambda a: (["model", "environment", "image", "endpoint", "deployment", "traffic"].index(a.split(".")[0]), a)  # noqa: E731
    assert names(order(deps)) == list(nx.lexicographical_topological_sort(g, key=key))
    assert g.nodes["model.m2"] == {"kind": "model", "desired": True, "recorded": False}
    assert g.number_of_edges() == 30 * 7  # a: endpoint, m2; b: endpoint, m; traffic: endpoint, a, b


def test_recorded_only_resources_keep_their_edges():
    old = stack() + [deployment(name="green")]
    g = dependencies(stack(), state_of(old))
    assert g.nodes[A("deployment.e.green")] == {"kind": "deployment", "desired": False, "recorded": True}
    assert g.nodes[A("deployment.e.blue")] == {"kind": "deployment", "desired": True, "recorded": True}
    assert (A("endpoint.e"), A("deployment.e.green")) in g.edges
    assert names(reversed(order(g, [A("endpoint.e"), A("deployment.e.green")]))) == ["deployment.e.green", "endpoint.e"]


def test_cycles_are_named_and_ordered_last():
    rs = stack()
    rs[3] = replace(rs[3], depends_on=(A("traffic.e"),))
    g = dependencies(rs)
    assert [d.summary for d in find_cycles(g)] == [
        "dependency cycle: deployment.e.blue -> traffic.e -> endpoint.e -> deployment.e.blue",
        "dependency cycle: endpoint.e -> traffic.e -> endpoint.e",
    ]
    assert names(order(g)) == [
        "model.m",
        "environment.env",
        "image.env",
        "endpoint.e",
        "deployment.e.blue",
        "traffic.e",
    ]


def test_dot_and_mermaid():
    rs = [r for r in stack() if r.kind.value in ("endpoint", "deployment", "traffic")]
    g = dependencies(rs)
    assert to_dot(g) == (
        'digraph mlctl {\n  rankdir=LR;\n  node [shape=box, fontname="Helvetica"];\n'
        '  { rank=same; "model.m"; }\n  { rank=same; "image.env"; }\n'
        '  { rank=same; "endpoint.e"; }\n  { rank=same; "deployment.e.blue"; }\n  { rank=same; "traffic.e"; }\n'
        '  "model.m" [style=dashed, label="model.m\\n(missing)"];\n'
        '  "image.env" [style=dashed, label="image.env\\n(missing)"];\n'
        '  "deployment.e.blue" -> "traffic.e";\n  "endpoint.e" -> "deployment.e.blue";\n'
        '  "endpoint.e" -> "traffic.e";\n  "image.env" -> "deployment.e.blue";\n'
        '  "model.m" -> "deployment.e.blue";\n}\n'
    )
    assert to_mermaid(g) == (
        'flowchart LR\n  n0["model.m<br/>(missing)"]\n  n1["image.env<br/>(missing)"]\n  n2["endpoint.e"]\n'
        '  n3["deployment.e.blue"]\n  n4["traffic.e"]\n  n3 --> n4\n  n2 --> n3\n  n2 --> n4\n'
        "  n1 --> n3\n  n0 --> n3\n"
    )
