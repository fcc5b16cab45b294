"""``lockorder-lint report``: one self-contained file an auditor can triage — the summary, the
findings grouped by table then rule with their code, the table-level lock-order graph, what was
not checked and the baseline state — as HTML (default) or Markdown. See :mod:`.model` for what
it holds and :mod:`.lockgraph` for the graph's data interface."""

from __future__ import annotations

from lockorder_lint.report.html import render_html
from lockorder_lint.report.lockgraph import LockCycle, LockEdge, LockGraph, TableNode, graph_from_steps
from lockorder_lint.report.markdown import mermaid, render_markdown
from lockorder_lint.report.model import AuditReport, BaselineState, build_report

FORMATS = ("html", "markdown")


def render(report: AuditReport, fmt: str) -> str:
    return render_markdown(report) if fmt == "markdown" else render_html(report)


__all__ = [
    "FORMATS",
    "AuditReport",
    "BaselineState",
    "LockCycle",
    "LockEdge",
    "LockGraph",
    "TableNode",
    "build_report",
    "graph_from_steps",
    "mermaid",
    "render",
    "render_html",
    "render_markdown",
]
