"""Where the lock-order graph's tables go in the picture: a small layered layout (the Sugiyama
scheme: break cycles, assign layers by longest path, order each layer by the barycentre of its
neighbours), deterministic so that the same code always gives the same picture.

Written here rather than taken from a library: the maintained pure-Python graph packages either
need numpy/scipy for their layouts (networkx) or are no longer released (grandalf), and Graphviz
is a system binary. A lock-order graph has tens of tables, which this handles well.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

NODE_HEIGHT = 30
CHAR_WIDTH = 7.4  # of the 12px monospace font the picture uses
LAYER_GAP = 90
ROW_GAP = 22
MARGIN = 24
SWEEPS = 6
MIN_WRAP_WIDTH = 760


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    width: float
    height: float = NODE_HEIGHT

    @property
    def middle(self) -> float:
        return self.y + self.height / 2


@dataclass
class Layout:
    boxes: dict[str, Box] = field(default_factory=dict)
    layers: dict[str, int] = field(default_factory=dict)
    width: float = 0
    height: float = 0


def node_width(name: str) -> float:
    return max(70.0, round(len(name) * CHAR_WIDTH + 24))


def _acyclic(nodes: Sequence[str], edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The edges with each back edge of a depth-first search (taken in name order) reversed."""
    successors: dict[str, list[str]] = {n: [] for n in nodes}
    for first, then in sorted(edges):
        successors[first].append(then)
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    back: set[tuple[str, str]] = set()
    for start in nodes:
        if start in state:
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        state[start] = 1
        while stack:
            node, index = stack.pop()
            if index < len(successors[node]):
                stack.append((node, index + 1))
                following = successors[node][index]
                if state.get(following) == 1:
                    back.add((node, following))
                elif following not in state:
                    state[following] = 1
                    stack.append((following, 0))
            else:
                state[node] = 2
    return {(b, a) if (a, b) in back else (a, b) for a, b in edges if a != b}


def _layers(nodes: Sequence[str], dag: set[tuple[str, str]]) -> dict[str, int]:
    """Longest path from a source, so that every edge points to a later layer."""
    incoming: dict[str, int] = {n: 0 for n in nodes}
    successors: dict[str, list[str]] = {n: [] for n in nodes}
    for first, then in sorted(dag):
        successors[first].append(then)
        incoming[then] += 1
    layer = {n: 0 for n in nodes}
    ready = sorted(n for n in nodes if incoming[n] == 0)
    while ready:
        node = ready.pop(0)
        for following in successors[node]:
            layer[following] = max(layer[following], layer[node] + 1)
            incoming[following] -= 1
            if incoming[following] == 0:
                ready.append(following)
        ready.sort()
    return layer


def _order(layer: dict[str, int], dag: set[tuple[str, str]]) -> list[list[str]]:
    """Each layer's nodes, top to bottom, moved towards the mean position of their neighbours in
    the layer before (then after) for a few sweeps; ties keep name order."""
    count = max(layer.values(), default=-1) + 1
    rows: list[list[str]] = [sorted(n for n in layer if layer[n] == i) for i in range(count)]
    before: dict[str, list[str]] = {n: [] for n in layer}
    after: dict[str, list[str]] = {n: [] for n in layer}
    for first, then in dag:
        after[first].append(then)
        before[then].append(first)
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 0
        indexes = range(1, count) if downward else range(count - 2, -1, -1)
        for i in indexes:
            reference = rows[i - 1] if downward else rows[i + 1]
            rows[i] = _by_barycentre(rows[i], reference, before if downward else after)
    return rows


def _by_barycentre(row: list[str], reference: list[str], neighbours: dict[str, list[str]]) -> list[str]:
    position = {n: p for p, n in enumerate(reference)}
    current = {n: p for p, n in enumerate(row)}

    def centre(node: str) -> float:
        linked = [position[m] for m in neighbours[node] if m in position]
        return sum(linked) / len(linked) if linked else current[node]

    return sorted(row, key=lambda n: (centre(n), current[n], n))


def layout(nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> Layout:
    """Boxes for every node: connected tables left to right in layers, then the tables that
    share no edge in rows below them."""
    names = sorted(set(nodes))
    edge_set = {(a, b) for a, b in edges if a != b}
    linked = sorted({n for edge in edge_set for n in edge})
    alone = [n for n in names if n not in set(linked)]
    result = Layout()
    bottom = float(MARGIN)
    right = float(MARGIN)
    if linked:
        dag = _acyclic(linked, edge_set)
        result.layers = _layers(linked, dag)
        rows = _order(result.layers, dag)
        x = float(MARGIN)
        heights = [len(r) * (NODE_HEIGHT + ROW_GAP) - ROW_GAP for r in rows]
        tallest = max(heights)
        for row, height in zip(rows, heights, strict=True):
            column = max(node_width(n) for n in row)
            y = MARGIN + (tallest - height) / 2
            for name in row:
                result.boxes[name] = Box(x + (column - node_width(name)) / 2, y, node_width(name))
                y += NODE_HEIGHT + ROW_GAP
            x += column + LAYER_GAP
        right = x - LAYER_GAP
        bottom = MARGIN + tallest + 70  # room for the arcs of edges drawn backwards
    wrap = max(right, MIN_WRAP_WIDTH)
    x, y = float(MARGIN), bottom
    for name in alone:
        width = node_width(name)
        if x + width > wrap and x > MARGIN:
            x, y = float(MARGIN), y + NODE_HEIGHT + ROW_GAP
        result.boxes[name] = Box(x, y, width)
        right = max(right, x + width)
        x += width + ROW_GAP
    if alone:
        bottom = y + NODE_HEIGHT
    result.width = right + MARGIN
    result.height = bottom + MARGIN
    return result
