"""The audit report as one self-contained HTML page: styles, script, data and the lock-order
picture are inline, and a Content-Security-Policy forbids the page any request, so it opens the
same offline, from a CI artifact or an e-mail.

Built with the standard library: the page is a handful of loops, every interpolated value goes
through :func:`html.escape` (the one thing a template engine would add), and ``report`` then
works in every install, including a pre-commit environment, with no extra to install.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from html import escape
from pathlib import Path

from lockorder_lint.baseline import FORMAT_VERSION
from lockorder_lint.findings import Finding
from lockorder_lint.report.lockgraph import LockGraph
from lockorder_lint.report.model import AuditReport, ReportFinding, TableGroup
from lockorder_lint.report.svg import render_svg

ASSETS = Path(__file__).resolve().parent / "assets"
POLICY = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


def _asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def anchor(table: str) -> str:
    """The id of a table's section (the graph's nodes link to it)."""
    return "table-" + table


def _card(number: int, label: str, meaning: str, bad: bool = False) -> str:
    return (
        f'<div class="card{" bad" if bad and number else ""}" title="{escape(meaning)}">'
        f'<span class="number">{number}</span><span class="label">{escape(label)}</span></div>'
    )


def _rows(rows: Iterable[Iterable[str]]) -> str:
    return "".join("<tr>" + "".join(rows_cell for rows_cell in row) + "</tr>" for row in rows)


def _summary(report: AuditReport) -> str:
    not_checked = len(report.unknown)
    cards = "".join(
        [
            _card(len(report.findings), "findings", "findings reported", bad=True),
            _card(report.files_checked, "files checked", "files read and parsed"),
            _card(report.files_analysed, "files analysed", "files with functions the rules followed"),
            _card(
                report.statements_judged,
                "statements judged",
                "row-locking reads and writes on known tables in the functions the rules followed",
            ),
            _card(not_checked, "not checked", "statements on tables the catalog does not know"),
            _card(report.cold, "left alone", "statements on tables with no sign of contention"),
            _card(report.migrations, "migrations left out", "Alembic revisions run alone"),
            _card(len(report.errors), "file errors", "files that could not be checked", bad=True),
        ]
    )
    per_rule = _rows(
        (
            f'<td><a href="#rule-{escape(code)}">{escape(code)}</a></td>',
            f"<td>{escape(report.rule_names.get(code, ''))}</td>",
            f'<td class="count">{count}</td>',
        )
        for code, count in sorted(report.per_rule.items())
    )
    tables = sorted(report.per_table.items(), key=lambda item: (-item[1], item[0]))
    per_table = _rows(
        (
            f'<td><a href="#{escape(anchor(table))}">{escape(table)}</a></td>',
            f'<td class="count">{count}</td>',
        )
        for table, count in tables
    )
    hot = "".join(_hot_table(table, reasons) for table, reasons in report.hot.items())
    hot_list = f'<ul class="hot-list">{hot}</ul>' if hot else "<p>No table has contention evidence.</p>"
    return (
        '<section id="summary"><h2>Summary</h2>'
        f'<div class="cards">{cards}</div>'
        '<div class="columns">'
        '<div><h3>Findings per rule</h3><table class="grid" id="per-rule"><tr><th>code</th><th>rule</th>'
        f"<th>findings</th></tr>{per_rule}</table></div>"
        '<div><h3>Findings per table</h3><div class="scroll"><table class="grid" id="per-table"><tr>'
        f"<th>table</th><th>findings</th></tr>{per_table}</table></div></div>"
        f'<div class="hot-column"><h3>Hot tables ({len(report.hot)})</h3><p class="legend">'
        f'{escape(report.hot_mode)}</p><div id="hot-tables" class="scroll">{hot_list}</div></div></div>'
        "</section>"
    )


def _hot_table(table: str, reasons: list[str]) -> str:
    """A hot table with the evidence that made it hot: the first reasons, the rest folded."""
    shown = "".join(f"<li>{escape(r)}</li>" for r in reasons[:2])
    rest = "".join(f"<li>{escape(r)}</li>" for r in reasons[2:])
    more = (
        f"<details><summary>{len(reasons) - 2} more</summary><ul class='evidence'>{rest}</ul></details>"
        if rest
        else ""
    )
    return (
        f'<li><span class="mono">{escape(table)}</span> <span class="pill hot">hot</span>'
        f'<ul class="evidence">{shown}</ul>{more}</li>'
    )


def _cycles(graph: LockGraph) -> str:
    if not graph.cycles:
        return '<p id="cycles">No cycle: no two functions take two tables in opposite orders.</p>'
    items = []
    for cycle in graph.cycles:
        loop = " → ".join(escape(t) for t in (*cycle.tables, cycle.tables[0]))
        kind = "reported by LCK005" if cycle.confirmed else "opposite orders seen (a candidate, unconfirmed)"
        traces = "".join(f"<li class='mono'>{escape(t)}</li>" for t in cycle.traces)
        items.append(f"<li><strong class='mono'>{loop}</strong> — {kind}<ul>{traces}</ul></li>")
    return f'<ul id="cycles" class="cycle-list">{"".join(items)}</ul>'


def _graph(report: AuditReport) -> str:
    graph = report.graph
    edges = _rows(
        (
            f"<td class='mono'>{escape(first)}</td>",
            f"<td class='mono'>{escape(then)}</td>",
            "<td class='mono'>"
            + "<br>".join(escape(t) for t in edge.traces)
            + (f"<br>... and {edge.more} more" if edge.more else "")
            + "</td>",
        )
        for (first, then), edge in sorted(graph.edges.items())
    )
    return (
        '<section id="graph-section"><h2>Lock-order graph</h2>'
        "<p>Tables the checked code row-locks or writes. An arrow A → B: a function locks or writes "
        "rows of A, then of B, in one transaction (rows stay locked until it ends; an arrow implied "
        "by a longer chain is listed below, not drawn). Two functions taking the same tables in "
        "opposite orders can deadlock each other: those arrows are red.</p>"
        '<div class="legend"><span><i class="swatch hot"></i>hot table</span>'
        '<span><i class="swatch cycle"></i>on a cycle</span><span>red badge: findings on the table; '
        "click a table to go to its findings</span></div>"
        f'<div class="graph-box">{render_svg(graph)}</div>'
        f"<h3>Cycles</h3>{_cycles(graph)}"
        f"<details><summary>Every edge, with the functions that make it ({len(graph.edges)})</summary>"
        '<table class="grid" id="edges"><tr><th>first</th><th>then</th><th>where</th></tr>'
        f"{edges}</table></details></section>"
    )


def _excerpt(item: ReportFinding) -> str:
    finding = item.finding
    lines = []
    for number, text in item.excerpt:
        flagged = finding.line <= number <= max(finding.line, finding.end_line)
        lines.append(
            f'<span class="ln{" flagged" if flagged else ""}"><span class="num">{number}</span>'
            f"{escape(text)}</span>"
        )
    return f'<pre class="code">{"".join(lines)}</pre>' if lines else ""


_QUOTED = re.compile(r"`([^`]+)`")


def _prose(text: str) -> str:
    """Escaped text with its back-quoted parts as code."""
    return _QUOTED.sub(r"<code>\1</code>", escape(text))


def _traces(finding: Finding) -> str:
    """LCK005's cycle: one ordered list of steps per transaction, each where it locks what."""
    if not finding.trace:
        return ""
    blocks = []
    for number, steps in enumerate(finding.trace, 1):
        lines = "".join(
            f"<li class='mono'>{escape(path)}:{line} {escape(function)}: {escape(step)}</li>"
            for path, line, function, step in steps
        )
        blocks.append(f"<li>transaction {number}<ol>{lines}</ol></li>")
    return f'<ul class="traces">{"".join(blocks)}</ul>'


def _finding(item: ReportFinding) -> str:
    finding = item.finding
    where = f"{item.where}:{finding.line}:{finding.column}"
    function = f" in <code>{escape(finding.function)}</code>" if finding.function else ""
    badge = ' <span class="pill baselined">in baseline</span>' if item.baselined else ""
    fix = f'<p class="fix"><strong>Fix:</strong> {_prose(item.fix)}</p>' if item.fix else ""
    if item.hot_because:
        fix += f'<p class="hot-because">Contended: {escape(item.hot_because)}</p>'
    fix += _traces(finding)
    name = f"mark-{item.id}"
    triage = "".join(
        f'<label><input type="radio" name="{name}" value="{value}"{" checked" if value == "none" else ""}>'
        f" {label}</label>"
        for value, label in (("none", "unmarked"), ("real", "real"), ("fp", "not a problem"))
    )
    return (
        f'<article class="finding" id="{item.id}" data-code="{escape(finding.code)}">'
        f'<div class="where"><span class="mono">{escape(where)}</span> '
        f"<span class='pill'>{escape(finding.code)}</span>{function}{badge}</div>"
        f'<p class="what">{_prose(item.what)}</p>{fix}{_excerpt(item)}'
        f'<div class="triage">{triage}</div></article>'
    )


def _group(group: TableGroup, report: AuditReport) -> str:
    hot = ' <span class="pill hot">hot</span>' if group.hot else ""
    parts = [
        f'<section class="table-group" id="{escape(anchor(group.table))}">'
        f'<h3><span class="mono">{escape(group.table)}</span>{hot} '
        f'<span class="pill">{group.count} finding{"s" if group.count != 1 else ""}</span></h3>'
    ]
    for rule in group.rules:
        how = (
            f"<details><summary>How to fix {escape(rule.code)}</summary><p>{escape(rule.how_to_fix)}</p>"
            f"<p>More: <code>lockorder-lint explain {escape(rule.code)}</code></p></details>"
            if rule.how_to_fix
            else ""
        )
        parts.append(
            f'<div class="rule-group" data-rule="{escape(rule.code)}">'
            f'<h4 id="rule-{escape(rule.code)}-{escape(group.table)}">{escape(rule.code)} '
            f"{escape(rule.name)} ({len(rule.findings)})</h4>{how}"
            + "".join(_finding(item) for item in rule.findings)
            + "</div>"
        )
    parts.append("</section>")
    return "".join(parts)


def _findings(report: AuditReport) -> str:
    if not report.findings:
        return '<section id="findings"><h2>Findings</h2><p>No findings.</p></section>'
    rule_anchors = "".join(f'<span id="rule-{escape(code)}"></span>' for code in sorted(report.per_rule))
    toolbar = (
        '<div class="toolbar" id="triage-bar"><strong>Triage</strong>'
        '<span>open <b id="count-open">0</b></span><span>real <b id="count-real">0</b></span>'
        '<span>not a problem <b id="count-fp">0</b></span>'
        '<label>show <select id="filter"><option value="all">all</option><option value="open">'
        'unmarked</option><option value="real">real</option><option value="fp">not a problem</option>'
        "</select></label></div>"
    )
    groups = "".join(_group(group, report) for group in report.groups)
    return f'<section id="findings"><h2>Findings</h2>{rule_anchors}{toolbar}{groups}</section>'


def _export() -> str:
    return (
        '<section id="export"><h2>Export the triage</h2>'
        "<p>A baseline file in the format <code>--write-baseline</code> writes: pass it as "
        "<code>--baseline FILE</code> so that CI reports only findings not in it. Or noqa comments "
        "to add on the reported lines.</p>"
        '<div class="toolbar"><label>findings <select id="export-scope">'
        '<option value="fp">marked not a problem</option><option value="marked">marked (real: fix '
        'later)</option><option value="all">all findings</option></select></label>'
        '<button type="button" id="export-baseline">Baseline file</button>'
        '<button type="button" id="export-noqa">noqa suggestions</button>'
        '<a id="export-download" hidden></a></div>'
        '<textarea id="export-output" readonly spellcheck="false"></textarea></section>'
    )


def _not_checked(report: AuditReport) -> str:
    unknown = _rows(
        (
            f"<td class='mono'>{escape(u.path)}:{u.line}:{u.column}</td>",
            f"<td>{escape(u.kind)}</td>",
            f"<td class='mono'>{escape(u.target)}</td>",
            "<td>table not in the catalog</td>" if "(" not in u.target else "<td>see target</td>",
        )
        for u in report.unknown
    )
    errors = "".join(f"<li class='mono'>{escape(e.render())}</li>" for e in report.errors)
    notes = "".join(f"<li class='mono'>{escape(n.render())}</li>" for n in report.notes)
    parts = [
        '<section id="not-checked"><h2>Not checked</h2>',
        f"<p>{len(report.unknown)} statement(s) on tables the catalog does not know could not be "
        "judged (declare their keys under <code>[tool.lockorder-lint.tables]</code>); "
        f"{report.migrations} Alembic migration(s) were left out (they run alone; "
        "<code>--include-migrations</code> checks them); "
        f"{report.cold} statement(s) that would be findings on a contended table were left alone, "
        "as nothing shows their table is contended (<code>hot-tables</code> or "
        "<code>--all-tables</code> judges them).</p>",
    ]
    if unknown:
        parts.append(
            '<table class="grid" id="unknown"><tr><th>where</th><th>statement</th><th>on</th>'
            f"<th>why</th></tr>{unknown}</table>"
        )
    if errors:
        parts.append(f'<h3>Files that could not be checked</h3><ul id="file-errors">{errors}</ul>')
    if notes:
        parts.append(f"<h3>Left out</h3><ul>{notes}</ul>")
    parts.append("</section>")
    return "".join(parts)


def _baseline(report: AuditReport) -> str:
    state = report.baseline
    if state is None:
        return ""
    stale = "".join(f"<li class='mono'>{escape(k.describe())}</li>" for k in state.stale)
    return (
        '<section id="baseline"><h2>Baseline</h2>'
        f"<p><code>{escape(state.path)}</code> records {state.recorded} finding(s): {state.matched} of "
        f"today's findings are in it (marked <span class='pill baselined'>in baseline</span>), "
        f"{state.new} are new, and {len(state.stale)} entr{'y' if len(state.stale) == 1 else 'ies'} "
        "matched nothing (fixed or moved: remove them).</p>"
        + (f'<ul id="stale">{stale}</ul>' if stale else "")
        + "</section>"
    )


def _data(report: AuditReport) -> str:
    findings = [
        {
            "id": item.id,
            "path": item.where,
            "line": item.finding.line,
            "code": item.finding.code,
            "source": next((text for number, text in item.excerpt if number == item.finding.line), ""),
            "key": {
                "path": item.key.path,
                "code": item.key.code,
                "function": item.key.function,
                "statement": item.key.statement,
            },
        }
        for item in report.findings
    ]
    ident = hashlib.sha256(f"{report.root}|{report.title}".encode()).hexdigest()[:12]
    payload = {"report": ident, "baselineVersion": FORMAT_VERSION, "findings": findings}
    # Inside <script>: no "</" may appear, so every "<" is written as its JSON escape.
    return json.dumps(payload).replace("<", "\\u003c")


def render_html(report: AuditReport) -> str:
    title = f"lockorder-lint audit: {report.title}"
    sections = [
        _summary(report),
        _graph(report),
        _findings(report),
        _export() if report.findings else "",
        _not_checked(report),
        _baseline(report),
    ]
    nav = "".join(
        f'<a href="#{target}">{label}</a>'
        for target, label in (
            ("summary", "Summary"),
            ("graph-section", "Lock-order graph"),
            ("findings", f"Findings ({len(report.findings)})"),
            ("export", "Export"),
            ("not-checked", f"Not checked ({len(report.unknown)})"),
            ("baseline", "Baseline"),
        )
        if (target != "baseline" or report.baseline) and (target != "export" or report.findings)
    )
    paths = ", ".join(report.paths)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_asset('report.css')}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><p>lockorder-lint {escape(report.version)} · project root "
        f"<span class='mono'>{escape(report.root)}</span> · checked {escape(paths)} · dialects "
        f"{escape(', '.join(report.dialects))}</p></header>"
        f"<nav>{nav}</nav><main>{''.join(sections)}</main>"
        f'<script type="application/json" id="report-data">{_data(report)}</script>'
        f"<script>{_asset('triage.js')}</script></body></html>\n"
    )
