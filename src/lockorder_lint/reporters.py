"""Render findings for people and machines. Reporters never analyse; they only format."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lockorder_lint import __version__
from lockorder_lint.findings import FileError, Finding, Skipped
from lockorder_lint.resources import page_path
from lockorder_lint.rules import ALL_RULES, Rule

HOMEPAGE = "https://github.com/lockorder-lint/lockorder-lint"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
ROOT_BASE_ID = "PROJECTROOT"


def render_text(findings: Sequence[Finding]) -> str:
    return "".join(f"{f.path}:{f.line}:{f.column}: {f.code} {f.message}\n" for f in findings)


def render_json(findings: Sequence[Finding]) -> str:
    return json.dumps([f.to_dict() for f in findings], indent=2) + "\n"


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


def _relative_uri(path: str, root: Path) -> str:
    """Artifact URIs are relative to the project root, so that code-scanning maps them onto the repo."""
    absolute = Path(path).resolve()
    try:
        return absolute.relative_to(root.resolve()).as_posix()
    except ValueError:
        return absolute.as_uri()


def content_fingerprint(finding: Finding, uri: str) -> str:
    """Stable across line moves: the same key the baseline uses (path, code, function, statement)."""
    key = "\0".join((uri, finding.code, finding.function or "", " ".join(finding.statement.split())))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


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


def _sarif_result(finding: Finding, root: Path, rule_index: dict[str, int]) -> dict[str, Any]:
    uri = _relative_uri(finding.path, root)
    location: dict[str, Any] = {"uri": uri}
    if not uri.startswith("file:"):
        location["uriBaseId"] = ROOT_BASE_ID
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
        "partialFingerprints": {"lockorderContent/v1": content_fingerprint(finding, uri)},
    }
    if finding.code in rule_index:
        result["ruleIndex"] = rule_index[finding.code]
    return result


def _sarif_invocation(errors: Sequence[FileError], root: Path) -> dict[str, Any]:
    """Files that could not be checked become tool notifications, so a dashboard sees the gap."""
    notifications = []
    for error in errors:
        location: dict[str, Any] = {"uri": _relative_uri(error.path, root)}
        if not location["uri"].startswith("file:"):
            location["uriBaseId"] = ROOT_BASE_ID
        physical: dict[str, Any] = {"artifactLocation": location}
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


def render_sarif(findings: Sequence[Finding], root: Path, errors: Sequence[FileError] = ()) -> str:
    """One SARIF 2.1.0 log with one run; columns count code points, as the checker does."""
    rule_index = {rule.code: i for i, rule in enumerate(ALL_RULES)}
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
                "originalUriBaseIds": {ROOT_BASE_ID: {"uri": root.resolve().as_uri() + "/"}},
                "invocations": [_sarif_invocation(errors, root)],
                "columnKind": "unicodeCodePoints",
                "results": [_sarif_result(f, root, rule_index) for f in findings],
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


def render_github(findings: Sequence[Finding]) -> str:
    """GitHub Actions ``::error`` workflow commands: annotations on the pull request's diff."""
    lines = []
    for f in findings:
        properties = ",".join(
            f"{key}={_escape_property(str(value))}"
            for key, value in (
                ("file", f.path),
                ("line", f.line),
                ("col", f.column),
                ("endLine", f.end_line),
                ("endColumn", f.end_column),
                ("title", f.code),
            )
        )
        lines.append(f"::error {properties}::{_escape_data(f.message)}\n")
    return "".join(lines)


def render_unknown(unknown: Sequence[Skipped]) -> str:
    return "".join(
        f"{u.path}:{u.line}:{u.column}: not checked: {u.kind} on {u.target}: table not in the catalog\n"
        if "(" not in u.target
        else f"{u.path}:{u.line}:{u.column}: not checked: {u.kind} on {u.target}\n"
        for u in unknown
    )


def summary(codes: Iterable[str], files: int, unknown: int, errors: int) -> str:
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
    if errors:
        parts.append(f"{errors} file error{'s' if errors != 1 else ''}")
    return "; ".join(parts) + "\n"
