"""Render findings for people and machines. Reporters never analyse; they only format."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from lockorder_lint import __version__
from lockorder_lint.findings import FileError, Finding, Skipped
from lockorder_lint.resources import page_path
from lockorder_lint.rules import ALL_RULES, Rule

HOMEPAGE = "https://github.com/lockorder-lint/lockorder-lint"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
ROOT_BASE_ID = "SRCROOT"


def render_text(findings: Sequence[Finding]) -> str:
    """One line per finding; a finding about several transactions (LCK005) indents one trace per
    transaction under it, each step ``path:line function: step``."""
    lines: list[str] = []
    for f in findings:
        lines.append(f"{f.path}:{f.line}:{f.column}: {f.code} {f.message}\n")
        for number, steps in enumerate(f.trace, 1):
            lines.append(f"    transaction {number}:\n")
            lines.extend(f"        {path}:{line} {name}: {step}\n" for path, line, name, step in steps)
    return "".join(lines)


def render_json(findings: Sequence[Finding], errors: Sequence[FileError] = ()) -> str:
    """One array: the findings (``"type": "finding"``), then the files that could not be checked
    (``"type": "error"``, the reason in ``message``, the keys a finding has but no position set to
    null), so that a consumer cannot mistake a file it never saw checked for a clean one."""
    entries: list[dict[str, Any]] = [{"type": "finding", **f.to_dict()} for f in findings]
    for error in errors:
        entries.append(
            {
                "type": "error",
                "path": error.path,
                "line": error.line or None,
                "column": None,
                "end_line": None,
                "end_column": None,
                "code": None,
                "message": error.reason,
                "table": None,
                "function": None,
                "statement": None,
                "hot_because": None,
            }
        )
    return json.dumps(entries, indent=2) + "\n"


def rule_page_url(code: str) -> str:
    return f"{HOMEPAGE}/blob/main/rules/{code}.md"


def page_section(code: str, heading: str) -> str:
    """The text under ``## heading`` of a rule's page, as one paragraph; empty without a page."""
    page = page_path(code)
    if page is None:
        return ""
    text = page.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(heading)}\s*$(?P<body>.*?)(?=^## |\Z)", text, re.M | re.S)
    return " ".join(match.group("body").split()) if match else ""


def repository_path(path: str, repository: Path) -> str | None:
    """A reported path (relative to the working directory, or absolute) relative to the repository
    root as a posix path, or None outside it. Symbolic links in the path are kept when the path is
    inside the repository as written, so a finding stays on the file the user named."""
    absolute = Path(path) if Path(path).is_absolute() else Path(os.path.realpath(os.getcwd())) / path
    for candidate in (Path(os.path.normpath(absolute)), Path(os.path.realpath(absolute))):
        try:
            return candidate.relative_to(repository).as_posix()
        except ValueError:
            continue
    return None


def _artifact_location(path: str, repository: Path) -> dict[str, Any]:
    """A percent-encoded URI relative to the repository root (``SRCROOT``), which is what GitHub code
    scanning reads; an absolute ``file:`` URI for a path outside it."""
    relative = repository_path(path, repository)
    if relative is None:
        return {"uri": Path(os.path.realpath(path)).as_uri()}
    return {"uri": quote(relative, safe="/"), "uriBaseId": ROOT_BASE_ID}


def content_fingerprint(finding: Finding, uri: str, occurrence: int = 0) -> str:
    """Stable across line moves: the same key the baseline uses (path, code, function, statement),
    and, for the second and later of identical findings in one file, which one it is in file order,
    so that distinct results never share a fingerprint (code scanning would merge them)."""
    parts = [uri, finding.code, finding.function or "", " ".join(finding.statement.split())]
    if occurrence:
        parts.append(str(occurrence))
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:32]


def _sarif_rule(rule: Rule) -> dict[str, Any]:
    full = page_section(rule.code, "What it finds") or rule.summary
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": full},
        "helpUri": rule_page_url(rule.code),
        "defaultConfiguration": {"level": "error"},
    }


def _sarif_result(
    finding: Finding,
    location: dict[str, Any],
    occurrence: int,
    rule_index: dict[str, int],
    repository: Path | None = None,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": finding.code,
        "level": "error",
        "message": {"text": finding.message},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": location,
                    "region": {
                        "startLine": finding.line,
                        "startColumn": finding.column,
                        "endLine": finding.end_line,
                        "endColumn": finding.end_column,
                    },
                }
            }
        ],
        "partialFingerprints": {
            "lockorderContent/v1": content_fingerprint(finding, location["uri"], occurrence)
        },
    }
    if finding.code in rule_index:
        result["ruleIndex"] = rule_index[finding.code]
    if finding.hot_because:
        result["properties"] = {"table": finding.table, "hotBecause": finding.hot_because}
    if finding.trace and repository is not None:
        result["codeFlows"] = [{"threadFlows": [_thread_flow(steps, repository) for steps in finding.trace]}]
        result["relatedLocations"] = [
            {**_step_location(path, line, repository), "id": number, "message": {"text": f"{name}: {step}"}}
            for number, (path, line, name, step) in enumerate(
                (step for steps in finding.trace for step in steps), 1
            )
        ]
    return result


def _step_location(path: str, line: int, repository: Path) -> dict[str, Any]:
    return {
        "physicalLocation": {
            "artifactLocation": _artifact_location(path, repository),
            "region": {"startLine": line},
        }
    }


def _thread_flow(steps: Sequence[tuple[str, int, str, str]], repository: Path) -> dict[str, Any]:
    """One transaction of a lock-order cycle, as SARIF's thread flow: its steps in order."""
    return {
        "locations": [
            {"location": {**_step_location(path, line, repository), "message": {"text": f"{name}: {step}"}}}
            for path, line, name, step in steps
        ]
    }


def _sarif_results(findings: Sequence[Finding], repository: Path) -> list[dict[str, Any]]:
    rule_index = {rule.code: i for i, rule in enumerate(ALL_RULES)}
    seen: Counter[tuple[str, str, str | None, str]] = Counter()
    results = []
    for finding in sorted(findings, key=lambda f: (f.path, f.line, f.column, f.code)):
        location = _artifact_location(finding.path, repository)
        key = (location["uri"], finding.code, finding.function, " ".join(finding.statement.split()))
        results.append(_sarif_result(finding, location, seen[key], rule_index, repository))
        seen[key] += 1
    return results


def _sarif_invocation(errors: Sequence[FileError], repository: Path) -> dict[str, Any]:
    """Files that could not be checked become tool notifications, so a dashboard sees the gap."""
    notifications = []
    for error in errors:
        physical: dict[str, Any] = {"artifactLocation": _artifact_location(error.path, repository)}
        if error.line:
            physical["region"] = {"startLine": error.line}
        notifications.append(
            {
                "level": "error",
                "message": {"text": error.reason},
                "locations": [{"physicalLocation": physical}],
            }
        )
    return {"executionSuccessful": not errors, "toolExecutionNotifications": notifications}


def render_sarif(findings: Sequence[Finding], repository: Path, errors: Sequence[FileError] = ()) -> str:
    """One SARIF 2.1.0 log with one run; columns count code points, as the checker does. URIs are
    relative to ``repository`` (the repository root), as GitHub code scanning reads them."""
    repository = Path(os.path.realpath(repository))
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "lockorder-lint",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "informationUri": HOMEPAGE,
                        "rules": [_sarif_rule(rule) for rule in ALL_RULES],
                    }
                },
                "originalUriBaseIds": {ROOT_BASE_ID: {"uri": repository.as_uri() + "/"}},
                "invocations": [_sarif_invocation(errors, repository)],
                "columnKind": "unicodeCodePoints",
                "results": _sarif_results(findings, repository),
            }
        ],
    }
    return json.dumps(log, indent=2) + "\n"


def _escape_data(text: str) -> str:
    """GitHub workflow-command escaping for the message part."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    """Property values additionally escape the separators ``:`` and ``,``."""
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(
    findings: Sequence[Finding], repository: Path | None = None, errors: Sequence[FileError] = ()
) -> str:
    """GitHub Actions ``::error`` workflow commands: annotations on the pull request's diff. GitHub
    wants each ``file`` relative to the repository root (the runner resolves it there, not in the
    step's working directory); files that could not be checked are annotated too."""
    repository = Path(os.path.realpath(repository if repository is not None else os.getcwd()))

    def command(path: str, position: tuple[tuple[str, int], ...], title: str, message: str) -> str:
        shown = repository_path(path, repository) or path
        properties = ",".join(
            f"{key}={_escape_property(str(value))}"
            for key, value in (("file", shown), *position, ("title", title))
        )
        return f"::error {properties}::{_escape_data(message)}\n"

    lines = [
        command(
            f.path,
            (("line", f.line), ("col", f.column), ("endLine", f.end_line), ("endColumn", f.end_column)),
            f.code,
            f.message,
        )
        for f in findings
    ]
    for error in errors:
        position = (("line", error.line),) if error.line else ()
        lines.append(command(error.path, position, "lockorder-lint: file not checked", error.reason))
    return "".join(lines)


def render_unknown(unknown: Sequence[Skipped]) -> str:
    return "".join(
        f"{u.path}:{u.line}:{u.column}: not checked: {u.kind} on {u.target}: table not in the catalog\n"
        if "(" not in u.target
        else f"{u.path}:{u.line}:{u.column}: not checked: {u.kind} on {u.target}\n"
        for u in unknown
    )


def summary(
    codes: Iterable[str],
    files: int,
    unknown: int,
    errors: int,
    migrations: int = 0,
    cold: int = 0,
    assumed: str = "",
    cold_why: str = "with no sign of contention",
) -> str:
    """``12 findings (LCK001 7, LCK003 5) in 748 files checked; ...``: the codes of the findings
    reported, counted by rule, so that a triage knows where to start."""
    by_rule = Counter(codes)
    total = sum(by_rule.values())
    noun = "finding" if total == 1 else "findings"
    breakdown = f" ({', '.join(f'{code} {n}' for code, n in sorted(by_rule.items()))})" if by_rule else ""
    parts = [f"{total} {noun}{breakdown} in {files} file{'s' if files != 1 else ''} checked"]
    if unknown:
        parts.append(
            f"{unknown} statement{'s' if unknown != 1 else ''} not checked (--show-unknown lists them)"
        )
    if cold:
        parts.append(
            f"{cold} statement{'s' if cold != 1 else ''} on tables {cold_why} (--all-tables checks them)"
        )
    if migrations:
        plural = "s" if migrations != 1 else ""
        parts.append(f"{migrations} migration{plural} not checked (--include-migrations checks them)")
    if errors:
        parts.append(f"{errors} file error{'s' if errors != 1 else ''}")
    if assumed:
        parts.append(f"{assumed} assumed from the code (set `dialects` to decide)")
    return "; ".join(parts) + "\n"
