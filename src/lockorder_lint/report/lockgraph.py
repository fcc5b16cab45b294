"""The table-level lock-order graph the report draws: tables are nodes, and an edge A -> B says
that some transaction holds row locks on A when it takes them on B, with the functions that do so.

This is the data interface between whatever knows lock orders and the renderers (HTML picture,
Mermaid block). Today it is filled from what a check already has, per function:

* :func:`graph_from_steps` takes each analysed function's locks and writes on known tables in
  source order (:class:`~lockorder_lint.findings.TableStep`; rows written or locked stay locked
  until the transaction ends, so every table first touched earlier precedes every table first
  touched later), plus the hot tables and the tables findings name as nodes;
* where two functions take the same two tables in opposite orders, :meth:`LockGraph.finish`
  marks the edges and records a :class:`LockCycle` with ``source="opposite orders"``: a
  candidate, not a verdict (the two may never run at once, or may take locks that do not
  conflict).

LCK005 (lock-order inversion, whole-program) plugs in with :meth:`LockGraph.add_cycle`: one call
per reported cycle, with the tables in lock order, one trace per transaction and the finding; its
cycles are drawn as confirmed (``source="LCK005"``) and the candidate on the same tables is
dropped. :func:`graph_from_steps` already routes every LCK005 finding through
:func:`cycle_from_finding`, which reads the tables from the finding until LCK005 hands over
structured traces.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from lockorder_lint.findings import Finding, TableStep

CONFIRMED = "LCK005"
CANDIDATE = "opposite orders"
MAX_TRACES_PER_EDGE = 8  # an edge shows this many functions, then counts the rest


@dataclass
class TableNode:
    """A table in the graph, with what the report knows about it."""

    name: str
    hot: bool = False
    findings: int = 0


@dataclass
class LockEdge:
    """``first`` is locked (or written) before ``then`` in each of ``traces``: where the function
    takes the first lock, as ``path:line function``."""

    first: str
    then: str
    traces: list[str] = field(default_factory=list)
    more: int = 0  # traces beyond MAX_TRACES_PER_EDGE
    in_cycle: bool = False
    # How ``then`` is taken after ``first`` (``lock``, ``write``, ``insert``), in first-seen order.
    modes: list[str] = field(default_factory=list)
    # Some trace takes ``then`` right after ``first``; an edge only implied by a longer chain
    # (A, B, C gives A -> C) is not drawn unless it is on a cycle.
    adjacent: bool = False

    @property
    def drawn(self) -> bool:
        return self.adjacent or self.in_cycle

    def add(self, trace: str) -> None:
        if trace in self.traces:
            return
        if len(self.traces) < MAX_TRACES_PER_EDGE:
            self.traces.append(trace)
        else:
            self.more += 1


@dataclass(frozen=True)
class LockCycle:
    """Tables locked in a circle by transactions that can run at once: ``tables`` in the order
    the first trace locks them, one trace per transaction (``path:line function: A then B``).
    ``source`` is ``LCK005`` for a reported inversion, ``opposite orders`` for a candidate seen
    only in the graph."""

    tables: tuple[str, ...]
    traces: tuple[str, ...]
    source: str
    finding: Finding | None = None

    @property
    def confirmed(self) -> bool:
        return self.source == CONFIRMED


@dataclass
class LockGraph:
    """Nodes, edges and cycles; build with the ``add_*`` methods, then call :meth:`finish`."""

    nodes: dict[str, TableNode] = field(default_factory=dict)
    edges: dict[tuple[str, str], LockEdge] = field(default_factory=dict)
    cycles: list[LockCycle] = field(default_factory=list)

    def add_table(self, name: str, hot: bool = False, findings: int = 0) -> TableNode:
        node = self.nodes.setdefault(name, TableNode(name))
        node.hot = node.hot or hot
        node.findings += findings
        return node

    def add_edge(self, first: str, then: str, trace: str, adjacent: bool = True) -> LockEdge:
        self.add_table(first)
        self.add_table(then)
        edge = self.edges.setdefault((first, then), LockEdge(first, then))
        edge.add(trace)
        edge.adjacent = edge.adjacent or adjacent
        return edge

    def add_trace(self, where: str, tables: Sequence[str], modes: Sequence[str] = ()) -> None:
        """One transaction (or function) that locks ``tables`` in this order, each taken as
        ``modes`` says when given (repeats are ignored: a lock already held is not waited for
        again)."""
        taken: dict[str, str] = {}
        for index, table in enumerate(tables):
            taken.setdefault(table, modes[index] if index < len(modes) else "")
        ordered = list(taken)
        for table in ordered:
            self.add_table(table)
        for i, first in enumerate(ordered):
            for offset, then in enumerate(ordered[i + 1 :]):
                edge = self.add_edge(first, then, where, adjacent=offset == 0)
                if taken[then] and taken[then] not in edge.modes:
                    edge.modes.append(taken[then])

    def add_cycle(
        self,
        tables: Sequence[str],
        traces: Sequence[str] = (),
        finding: Finding | None = None,
        source: str = CONFIRMED,
    ) -> LockCycle:
        """A cycle over ``tables`` (A, B, ... meaning A -> B -> ... -> A); its edges are added if
        missing and marked, so both renderers highlight it."""
        tables = tuple(tables)
        cycle = LockCycle(tables, tuple(traces), source, finding)
        self.cycles.append(cycle)
        where = traces[0] if traces else (f"{finding.path}:{finding.line}" if finding else "")
        for first, then in zip(tables, tables[1:] + tables[:1], strict=True):
            if first == then:
                self.add_table(first)
                continue
            edge = self.edges.get((first, then)) or self.add_edge(first, then, where)
            edge.in_cycle = True
        return cycle

    def finish(self) -> LockGraph:
        """Record the candidate cycles: pairs of tables that some function takes in one order and
        another in the opposite order, unless a confirmed cycle already covers the pair."""
        covered = {frozenset(c.tables) for c in self.cycles if c.confirmed}
        for (first, then), edge in sorted(self.edges.items()):
            if first >= then or (then, first) not in self.edges:
                continue
            back = self.edges[(then, first)]
            if frozenset((first, then)) in covered:
                continue
            edge.in_cycle = back.in_cycle = True
            traces = (f"{edge.traces[0]}: {first} then {then}", f"{back.traces[0]}: {then} then {first}")
            self.cycles.append(LockCycle((first, then), traces, CANDIDATE))
        return self

    def cycle_edges(self) -> set[tuple[str, str]]:
        return {key for key, edge in self.edges.items() if edge.in_cycle}

    def drawn_edges(self) -> dict[tuple[str, str], LockEdge]:
        """The edges a picture shows: each taken directly by some trace, or on a cycle."""
        return {key: edge for key, edge in sorted(self.edges.items()) if edge.drawn}


_TABLES_IN_MESSAGE = re.compile(r"`([A-Za-z_][\w.]*)`")


def cycle_from_finding(finding: Finding) -> tuple[list[str], list[str]]:
    """The tables (in order) and traces of an LCK005 finding, read from what it says until LCK005
    hands them over as data: the finding's own table first, then the back-quoted names in its
    message (:func:`graph_from_steps` keeps those that are tables of the graph when there are
    two or more)."""
    names = [finding.table] if finding.table else []
    names += [m for m in _TABLES_IN_MESSAGE.findall(finding.message) if m not in names]
    where = f"{finding.path}:{finding.line} {finding.function or ''}".rstrip()
    return names, [where]


def graph_from_steps(
    steps: Iterable[TableStep],
    findings: Sequence[Finding],
    hot: Mapping[str, object] | None,
) -> LockGraph:
    """The lock-order graph of a check: one trace per function from its steps, the hot tables and
    the tables findings name as nodes, and the LCK005 findings as cycles."""
    graph = LockGraph()
    for table in sorted(hot or {}):
        graph.add_table(table, hot=True)
    for finding in findings:
        if finding.table:
            graph.add_table(finding.table, findings=1)
    by_function: dict[tuple[str, str], list[TableStep]] = {}
    for step in steps:
        by_function.setdefault((step.path, step.function), []).append(step)
    for (path, function), taken in sorted(by_function.items()):
        taken.sort(key=lambda s: s.line)
        graph.add_trace(
            f"{path}:{taken[0].line} {function}", [s.table for s in taken], [s.kind for s in taken]
        )
    for finding in findings:
        if finding.code != CONFIRMED:
            continue
        names, traces = cycle_from_finding(finding)
        known = [n for n in names if n in graph.nodes]
        tables = known if len(known) > 1 else names  # a cycle needs two tables
        if tables:
            graph.add_cycle(tables, traces, finding)
    return graph.finish()
