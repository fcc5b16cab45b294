"""The lock-order graph as text a team can read, diff and render: Graphviz DOT and JSON, beside
the Mermaid flowchart the Markdown report embeds (``lockorder-lint graph --format``).

Every edge says how its second table is taken (``lock``, ``write``, ``insert``), how many
functions take the two in that order, and one of them (``path:line function``); edges and
tables on a cycle are marked, so the order to agree on is the one without them.
"""

from __future__ import annotations

import json
from typing import Any

from lockorder_lint.report.lockgraph import LockEdge, LockGraph


def _label(edge: LockEdge) -> str:
    count = len(edge.traces) + edge.more
    modes = "/".join(edge.modes) or "lock"
    example = edge.traces[0] if edge.traces else ""
    functions = f"{count} function{'s' if count != 1 else ''}"
    return f"{modes}; {functions}, e.g. {example}" if example else f"{modes}; {functions}"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dot(graph: LockGraph) -> str:
    """Graphviz: hot tables filled, cycle edges red and bold."""
    on_cycle = {t for c in graph.cycles for t in c.tables}
    lines = ["digraph lock_order {", "    rankdir=LR;", '    node [shape=box, fontname="sans-serif"];']
    for name, node in sorted(graph.nodes.items()):
        label = name if not node.findings else f"{name} ({node.findings})"
        style = ["style=filled", 'fillcolor="#fff1e5"'] if node.hot else []
        if name in on_cycle:
            style.append('color="#cf222e"')
        lines.append(f"    {_quoted(name)} [label={_quoted(label)}{''.join(', ' + s for s in style)}];")
    for (first, then), edge in graph.drawn_edges().items():
        red = ', color="#cf222e", penwidth=3' if edge.in_cycle else ""
        lines.append(f"    {_quoted(first)} -> {_quoted(then)} [label={_quoted(_label(edge))}{red}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def graph_json(graph: LockGraph) -> str:
    """Nodes, edges (every one, implied ones included, with ``drawn``) and cycles."""
    data: dict[str, Any] = {
        "tables": [
            {"name": n.name, "hot": n.hot, "findings": n.findings} for _, n in sorted(graph.nodes.items())
        ],
        "edges": [
            {
                "first": e.first,
                "then": e.then,
                "modes": e.modes,
                "functions": len(e.traces) + e.more,
                "examples": e.traces,
                "in_cycle": e.in_cycle,
                "drawn": e.drawn,
            }
            for _, e in sorted(graph.edges.items())
        ],
        "cycles": [
            {"tables": list(c.tables), "traces": list(c.traces), "source": c.source} for c in graph.cycles
        ],
    }
    return json.dumps(data, indent=2) + "\n"
