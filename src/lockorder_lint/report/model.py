"""What an audit report holds, gathered once from a finished check so that the HTML and the
Markdown renderers show the same facts: the summary, the findings grouped by table then rule with
their code, the lock-order graph, what was not checked, and the baseline state."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from lockorder_lint import __version__
from lockorder_lint.baseline import BaselineKey, key_for
from lockorder_lint.findings import FileError, Finding, Note, Skipped, TableStep
from lockorder_lint.parsing import decode
from lockorder_lint.report.lockgraph import LockGraph, graph_from_steps
from lockorder_lint.reporters import page_section
from lockorder_lint.rules import RULES_BY_CODE

CONTEXT_LINES = 3  # lines shown above and below a finding
NO_TABLE = "(no table: session handling)"


@dataclass(frozen=True)
class ReportFinding:
    """A finding as the report shows it: its code excerpt (numbered lines), the message split
    into what happens and the fix it names, the baseline key the triage marks export."""

    id: str
    finding: Finding
    where: str  # the finding's path as shown: relative to the project root when under it
    key: BaselineKey
    what: str
    fix: str
    hot_because: str  # why the finding's table counts as contended (paths shown as above)
    excerpt: tuple[tuple[int, str], ...]
    baselined: bool = False


@dataclass(frozen=True)
class RuleGroup:
    code: str
    name: str
    how_to_fix: str
    findings: tuple[ReportFinding, ...]


@dataclass(frozen=True)
class TableGroup:
    table: str
    hot: bool
    rules: tuple[RuleGroup, ...]

    @property
    def count(self) -> int:
        return sum(len(r.findings) for r in self.rules)


@dataclass(frozen=True)
class BaselineState:
    """``--baseline FILE``: what it recorded, what it still covers, and what no longer exists."""

    path: str
    recorded: int
    matched: int
    new: int
    stale: tuple[BaselineKey, ...]


@dataclass
class AuditReport:
    title: str
    root: str
    paths: tuple[str, ...]
    dialects: tuple[str, ...]
    files_checked: int
    files_analysed: int
    statements_judged: int
    migrations: int
    cold: int  # statements left alone: nothing shows their table is contended
    findings: list[ReportFinding]
    groups: list[TableGroup]
    per_rule: Counter[str]
    per_table: Counter[str]
    hot_mode: str  # how hotness was decided
    hot: dict[str, list[str]]  # table -> evidence
    graph: LockGraph
    unknown: list[Skipped]
    errors: list[FileError]
    notes: list[Note]
    baseline: BaselineState | None = None
    version: str = __version__
    rule_names: dict[str, str] = field(default_factory=dict)


def split_message(message: str) -> tuple[str, str]:
    """(what happens, the fix): a message names its fix after its last top-level ``; ``, or after
    its last top-level ``: `` when it has no ``;`` (never inside back quotes or brackets)."""
    depth, quoted = 0, False
    semicolon = colon = -1
    for index, char in enumerate(message):
        if char == "`":
            quoted = not quoted
        elif quoted:
            continue
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(0, depth - 1)
        elif depth == 0 and message.startswith("; ", index):
            semicolon = index
        elif depth == 0 and message.startswith(": ", index):
            colon = index
    cut = semicolon if semicolon >= 0 else colon
    if cut < 0:
        return message, ""
    return message[:cut], message[cut + 2 :]


class _Sources:
    """Source lines of the reported files, read once each."""

    def __init__(self) -> None:
        self._lines: dict[str, list[str]] = {}

    def excerpt(self, finding: Finding) -> tuple[tuple[int, str], ...]:
        lines = self._lines.get(finding.path)
        if lines is None:
            try:
                lines = decode(Path(finding.path).read_bytes()).splitlines()
            except (OSError, UnicodeDecodeError, LookupError, SyntaxError):
                lines = []
            self._lines[finding.path] = lines
        first = max(1, finding.line - CONTEXT_LINES)
        last = min(len(lines), max(finding.end_line, finding.line) + CONTEXT_LINES)
        return tuple((number, lines[number - 1]) for number in range(first, last + 1))


def _root_prefixes(root: Path) -> list[str]:
    """How paths under the project root start in what a run displays: absolute, or relative to
    the working directory when the root is under it (as ``runner.display_path`` shows them)."""
    absolute = os.path.realpath(root)
    prefixes = [absolute.rstrip("/") + "/", str(root).rstrip("/") + "/"]
    relative = os.path.relpath(absolute, os.path.realpath(os.getcwd()))
    if relative != "." and not relative.startswith(".."):
        prefixes.append(relative.replace(os.sep, "/") + "/")
    return sorted(set(prefixes), key=len, reverse=True)


def finding_id(finding: Finding) -> str:
    text = f"{finding.path}:{finding.line}:{finding.column}:{finding.code}"
    return "f" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def build_report(
    *,
    title: str,
    root: Path,
    paths: Sequence[str],
    dialects: Sequence[str],
    findings: Sequence[Finding],
    baselined: Sequence[bool] | None,
    steps: Sequence[TableStep],
    files_checked: int,
    files_analysed: int,
    migrations: int,
    hot_mode: str,
    hot: Mapping[str, list[str]],
    unknown: Sequence[Skipped],
    errors: Sequence[FileError],
    notes: Sequence[Note],
    baseline: BaselineState | None = None,
    cold: int = 0,
) -> AuditReport:
    """Group, excerpt and count the results of one check (nothing is analysed here). Paths under
    the project root are shown relative to it, wherever the report was run from."""
    prefixes = _root_prefixes(root)

    def short(text: str) -> str:
        for prefix in prefixes:
            text = text.replace(prefix, "")
        return text

    sources = _Sources()
    shown: list[ReportFinding] = []
    for index, finding in enumerate(findings):
        what, fix = split_message(finding.message)
        shown.append(
            ReportFinding(
                id=finding_id(finding),
                finding=finding,
                where=short(finding.path),
                key=key_for(finding.path, finding.code, finding.function, finding.statement, root),
                what=what,
                fix=fix,
                hot_because=short(finding.hot_because),
                excerpt=sources.excerpt(finding),
                baselined=bool(baselined and baselined[index]),
            )
        )
    per_table = Counter(f.finding.table or NO_TABLE for f in shown)
    groups: list[TableGroup] = []
    for table, _count in sorted(per_table.items(), key=lambda item: (-item[1], item[0])):
        in_table = [f for f in shown if (f.finding.table or NO_TABLE) == table]
        rules = []
        for code in sorted({f.finding.code for f in in_table}):
            rule = RULES_BY_CODE.get(code)
            rules.append(
                RuleGroup(
                    code=code,
                    name=rule.name if rule else code,
                    how_to_fix=page_section(code, "How to fix"),
                    findings=tuple(f for f in in_table if f.finding.code == code),
                )
            )
        groups.append(TableGroup(table, table in hot, tuple(rules)))
    hot = {table: [short(r) for r in reasons] for table, reasons in hot.items()}
    steps = [replace(step, path=short(step.path)) for step in steps]
    graph = graph_from_steps(steps, [replace(f, path=short(f.path)) for f in findings], hot)
    return AuditReport(
        title=title,
        root=str(root),
        paths=tuple(short(p) for p in paths),
        dialects=tuple(dialects),
        files_checked=files_checked,
        files_analysed=files_analysed,
        statements_judged=len(steps),
        migrations=migrations,
        cold=cold,
        findings=shown,
        groups=groups,
        per_rule=Counter(f.finding.code for f in shown),
        per_table=per_table,
        hot_mode=hot_mode,
        hot={table: list(reasons) for table, reasons in sorted(hot.items())},
        graph=graph,
        unknown=[replace(u, path=short(u.path)) for u in unknown],
        errors=[replace(e, path=short(e.path)) for e in errors],
        notes=[replace(n, path=short(n.path)) for n in notes],
        baseline=baseline,
        rule_names={code: rule.name for code, rule in RULES_BY_CODE.items()},
    )
