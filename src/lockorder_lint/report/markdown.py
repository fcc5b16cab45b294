"""The audit report as GitHub-flavoured Markdown: tables for the summary, the lock-order graph as
a Mermaid ``flowchart`` block (GitHub draws it), findings grouped by table then rule with their
code, what was not checked, and the baseline state."""

from __future__ import annotations

import re

from lockorder_lint.report.lockgraph import LockGraph
from lockorder_lint.report.model import AuditReport, ReportFinding

_FENCE = re.compile(r"`{3,}")


def _text(text: str) -> str:
    """Prose as text, never as HTML: a renderer that passes HTML through shows it literally."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return _text(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _inline(text: str) -> str:
    """Text shown as inline code, whatever back quotes it holds."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _mermaid_label(text: str) -> str:
    """A quoted Mermaid label: quotes and angle brackets as entity codes, which Mermaid reads."""
    for char, code in (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, code)
    return f'"{text}"'


def mermaid(graph: LockGraph) -> str:
    """The graph as a Mermaid flowchart: hot tables shaded, edges on a cycle red and thick."""
    ids = {name: f"t{index}" for index, name in enumerate(sorted(graph.nodes))}
    lines = ["flowchart LR"]
    for name, node in sorted(graph.nodes.items()):
        label = name if not node.findings else f"{name} ({node.findings})"
        lines.append(f"    {ids[name]}[{_mermaid_label(label)}]")
    cycle_links = []
    for index, ((first, then), edge) in enumerate(graph.drawn_edges().items()):
        count = len(edge.traces) + edge.more
        label = f"{count} function{'s' if count != 1 else ''}"
        arrow = "==>" if edge.in_cycle else "-->"
        lines.append(f"    {ids[first]} {arrow}|{_mermaid_label(label)}| {ids[then]}")
        if edge.in_cycle:
            cycle_links.append(str(index))
    hot = [ids[name] for name, node in sorted(graph.nodes.items()) if node.hot]
    lines.append("    classDef hot fill:#fff1e5,stroke:#bc4c00,color:#1f2328")
    if hot:
        lines.append(f"    class {','.join(hot)} hot")
    if cycle_links:
        lines.append(f"    linkStyle {','.join(cycle_links)} stroke:#cf222e,stroke-width:3px")
    return "\n".join(lines) + "\n"


def _code_block(item: ReportFinding) -> str:
    text = "\n".join(f"{number:>5}  {line}" for number, line in item.excerpt)
    longest = max((len(m) for m in _FENCE.findall(text)), default=2)
    fence = "`" * max(3, longest + 1)
    return f"{fence}python\n{text}\n{fence}\n"


def render_markdown(report: AuditReport) -> str:
    out: list[str] = [f"# lockorder-lint audit: {_text(report.title)}\n"]
    out.append(
        f"lockorder-lint {report.version} · project root {_inline(report.root)} · checked "
        f"{', '.join(_inline(p) for p in report.paths)} · dialects {_text(', '.join(report.dialects))}\n"
    )
    out.append("## Summary\n")
    out.append("| | |\n|---|---:|")
    for label, number in (
        ("findings", len(report.findings)),
        ("files checked", report.files_checked),
        ("files with functions the rules followed", report.files_analysed),
        ("row-locking statements judged", report.statements_judged),
        ("statements not checked (table unknown)", len(report.unknown)),
        ("migrations left out", report.migrations),
        ("statements left alone (no sign of contention)", report.cold),
        ("files that could not be checked", len(report.errors)),
    ):
        out.append(f"| {label} | {number} |")
    out.append("")
    if report.per_rule:
        out.append("### Findings per rule\n\n| code | rule | findings |\n|---|---|---:|")
        for code, count in sorted(report.per_rule.items()):
            out.append(f"| {code} | {_cell(report.rule_names.get(code, ''))} | {count} |")
        out.append("\n### Findings per table\n\n| table | findings |\n|---|---:|")
        for table, count in sorted(report.per_table.items(), key=lambda item: (-item[1], item[0])):
            out.append(f"| {_cell(table)} | {count} |")
        out.append("")
    out.append(f"### Hot tables\n\n{_text(report.hot_mode)}\n")
    for table, reasons in report.hot.items():
        out.append(f"- {_inline(table)}: " + _text("; ".join(reasons)))
    out.append("")
    out.append("## Lock-order graph\n")
    out.append(
        "An arrow A → B: a function locks or writes rows of A, then of B, in one transaction. Thick red "
        "arrows are on a cycle (two functions take the same tables in opposite orders).\n"
    )
    out.append(f"```mermaid\n{mermaid(report.graph)}```\n")
    if report.graph.cycles:
        out.append("### Cycles\n")
        for cycle in report.graph.cycles:
            loop = _text(" → ".join((*cycle.tables, cycle.tables[0])))
            kind = "reported by LCK005" if cycle.confirmed else "opposite orders seen (candidate)"
            out.append(f"- **{loop}** ({kind})")
            out.extend(f"  - {_inline(trace)}" for trace in cycle.traces)
        out.append("")
    out.append("## Findings\n")
    if not report.findings:
        out.append("No findings.\n")
    for group in report.groups:
        hot = " (hot)" if group.hot else ""
        plural = "s" if group.count != 1 else ""
        out.append(f"### {_text(group.table)}{hot} — {group.count} finding{plural}\n")
        for rule in group.rules:
            out.append(f"#### {_text(rule.code)} {_text(rule.name)} ({len(rule.findings)})\n")
            for item in rule.findings:
                finding = item.finding
                function = f" in {_inline(finding.function)}" if finding.function else ""
                baselined = " (in baseline)" if item.baselined else ""
                out.append(
                    f"- [ ] **{_text(item.where)}:{finding.line}:{finding.column}**{function}{baselined}: "
                    f"{_text(item.what)}"
                )
                if item.fix:
                    out.append(f"  **Fix:** {_text(item.fix)}")
                if item.hot_because:
                    out.append(f"  Contended: {_text(item.hot_because)}")
                out.append("")
                out.append("  " + _code_block(item).replace("\n", "\n  ").rstrip() + "\n")
    out.append("## Not checked\n")
    out.append(
        f"{len(report.unknown)} statement(s) on tables the catalog does not know; "
        f"{report.migrations} migration(s) left out; {report.cold} statement(s) left alone on tables "
        "with no sign of contention.\n"
    )
    for unknown in report.unknown:
        where = f"{unknown.path}:{unknown.line}:{unknown.column}"
        out.append(f"- {_text(where)}: {_text(unknown.kind)} on {_inline(unknown.target)}")
    for error in report.errors:
        out.append(f"- error: {_inline(error.render())}")
    out.append("")
    state = report.baseline
    if state is not None:
        out.append("## Baseline\n")
        out.append(
            f"{_inline(state.path)} records {state.recorded} finding(s): {state.matched} of today's "
            f"are in it, {state.new} are new, {len(state.stale)} entries matched nothing.\n"
        )
        out.extend(f"- stale: {_inline(key.describe())}" for key in state.stale)
        out.append("")
    return "\n".join(out).rstrip() + "\n"
