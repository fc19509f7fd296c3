"""Graph: edges, order, waves, cycles, DOT and mermaid (literal expectations)."""

from builders import deployment, stack, state_of, traffic
from mlctl.reconciler.graph import build_graph, find_cycles, order, to_dot, to_mermaid, waves


def test_order_and_waves():
    g = build_graph(stack())
    assert order(g) == ["model.m", "environment.env", "image.env", "endpoint.e", "deployment.e.blue", "traffic.e"]
    assert waves(g) == [["model.m"], ["environment.env"], ["image.env"], ["endpoint.e"], ["deployment.e.blue"], ["traffic.e"]]
    assert sorted(g.edges) == [
        ("deployment.e.blue", "traffic.e"), ("endpoint.e", "deployment.e.blue"), ("endpoint.e", "traffic.e"),
        ("environment.env", "image.env"), ("image.env", "deployment.e.blue"), ("model.m", "deployment.e.blue")]
    assert find_cycles(g) == []


def test_recorded_only_resources_keep_their_edges():
    old = stack() + [deployment(name="green")]
    g = build_graph(stack(), state_of(old))
    assert g.nodes["deployment.e.green"] == {"kind": "deployment", "desired": False, "recorded": True}
    assert g.nodes["deployment.e.blue"] == {"kind": "deployment", "desired": True, "recorded": True}
    assert ("endpoint.e", "deployment.e.green") in g.edges
    assert list(reversed(order(g, ["endpoint.e", "deployment.e.green"]))) == ["deployment.e.green", "endpoint.e"]


def test_dot_and_mermaid():
    rs = [r for r in stack() if r.kind.value in ("endpoint", "deployment", "traffic")]
    rs[-1] = traffic()
    g = build_graph(rs)
    assert to_dot(g) == (
        'digraph mlctl {\n  rankdir=LR;\n  node [shape=box, fontname="Helvetica"];\n'
        '  { rank=same; "model.m"; }\n  { rank=same; "image.env"; }\n'
        '  { rank=same; "endpoint.e"; }\n  { rank=same; "deployment.e.blue"; }\n  { rank=same; "traffic.e"; }\n'
        '  "model.m" [style=dashed, label="model.m\\n(missing)"];\n'
        '  "image.env" [style=dashed, label="image.env\\n(missing)"];\n'
        '  "deployment.e.blue" -> "traffic.e";\n  "endpoint.e" -> "deployment.e.blue";\n'
        '  "endpoint.e" -> "traffic.e";\n  "image.env" -> "deployment.e.blue";\n  "model.m" -> "deployment.e.blue";\n}\n')
    assert to_mermaid(g) == (
        'flowchart LR\n  n0["model.m<br/>(missing)"]\n  n1["image.env<br/>(missing)"]\n  n2["endpoint.e"]\n'
        '  n3["deployment.e.blue"]\n  n4["traffic.e"]\n  n3 --> n4\n  n2 --> n3\n  n2 --> n4\n  n1 --> n3\n  n0 --> n3\n')
