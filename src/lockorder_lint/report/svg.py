"""The lock-order graph as inline SVG: boxes from :mod:`lockorder_lint.report.layout`, edges as
curves with arrowheads, edges on a cycle in red, hot tables shaded, a table's finding count in
its box. Each element carries a ``<title>`` (the browser's tooltip) with its evidence."""

from __future__ import annotations

from html import escape

from lockorder_lint.report.layout import Box, layout
from lockorder_lint.report.lockgraph import LockGraph


def _edge_path(source: Box, target: Box, forward: bool) -> str:
    if forward and target.x > source.x + source.width:
        x1, y1 = source.x + source.width, source.middle
        x2, y2 = target.x, target.middle
        bend = (x2 - x1) / 2
        return f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
    if target.x + target.width < source.x:
        # Against the layers: from the source's left to the target's right, bowed below the
        # forward edge it may pair with, so that both directions of a cycle stay apart.
        x1, y1 = source.x, source.middle + 6
        x2, y2 = target.x + target.width, target.middle + 6
        bend = (x1 - x2) / 2
        low1, low2 = y1 + 34, y2 + 34
        return f"M{x1:.1f},{y1:.1f} C{x1 - bend:.1f},{low1:.1f} {x2 + bend:.1f},{low2:.1f} {x2:.1f},{y2:.1f}"
    # Within one layer: an arc below both boxes, bottom edge to bottom edge.
    x1, y1 = source.x + source.width / 2, source.y + source.height
    x2, y2 = target.x + target.width / 2, target.y + target.height
    drop = max(y1, y2) + 40
    return f"M{x1:.1f},{y1:.1f} C{x1:.1f},{drop:.1f} {x2:.1f},{drop:.1f} {x2:.1f},{y2:.1f}"


def render_svg(graph: LockGraph) -> str:
    drawn = graph.drawn_edges()
    placed = layout(graph.nodes, drawn)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="lock-graph" role="img" '
        f'aria-label="table-level lock-order graph" width="{placed.width:.0f}" '
        f'style="max-width: 100%; height: auto" '
        f'height="{placed.height:.0f}" viewBox="0 0 {placed.width:.0f} {placed.height:.0f}">',
        "<defs>"
        '<marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#57606a"/></marker>'
        '<marker id="arrow-cycle" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#cf222e"/>'
        "</marker></defs>",
    ]
    for (first, then), edge in drawn.items():
        source, target = placed.boxes[first], placed.boxes[then]
        forward = placed.layers.get(then, 0) > placed.layers.get(first, 0)
        kind = "edge cycle" if edge.in_cycle else "edge"
        marker = "arrow-cycle" if edge.in_cycle else "arrow"
        traces = "\n".join(edge.traces) + (f"\n... and {edge.more} more" if edge.more else "")
        parts.append(
            f'<g class="{kind}" data-from="{escape(first)}" data-to="{escape(then)}">'
            f"<title>{escape(first)} locked, then {escape(then)}, in:\n{escape(traces)}</title>"
            f'<path d="{_edge_path(source, target, forward)}" marker-end="url(#{marker})"/></g>'
        )
    for name, node in sorted(graph.nodes.items()):
        box = placed.boxes[name]
        classes = "node" + (" hot" if node.hot else "") + (" has-findings" if node.findings else "")
        tip = f"{name}: {'hot' if node.hot else 'not hot'}; {node.findings} finding(s)"
        label = escape(name)
        parts.append(
            f'<g class="{classes}" data-table="{label}" tabindex="0"><title>{escape(tip)}</title>'
            f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.width:.1f}" height="{box.height}" '
            f'rx="6"/><text x="{box.x + box.width / 2:.1f}" y="{box.middle + 4:.1f}">{label}</text>'
        )
        if node.findings:
            cx, cy = box.x + box.width - 2, box.y + 2
            parts.append(
                f'<circle class="badge" cx="{cx:.1f}" cy="{cy:.1f}" r="9"/>'
                f'<text class="badge-text" x="{cx:.1f}" y="{cy + 4:.1f}">{node.findings}</text>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)
