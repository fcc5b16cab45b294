"""Render findings for people and machines. Reporters never analyse; they only format."""

from __future__ import annotations

import json
from collections.abc import Sequence

from lockorder_lint.findings import Finding, Skipped


def render_text(findings: Sequence[Finding]) -> str:
    return "".join(f"{f.path}:{f.line}:{f.column}: {f.code} {f.message}\n" for f in findings)


def render_json(findings: Sequence[Finding]) -> str:
    return json.dumps([f.to_dict() for f in findings], indent=2) + "\n"


def render_unknown(unknown: Sequence[Skipped]) -> str:
    return "".join(
        f"{u.path}:{u.line}:{u.column}: not checked: {u.kind} on {u.target}: table not in the catalog\n"
        if "(" not in u.target
        else f"{u.path}:{u.line}:{u.column}: not checked: {u.kind} on {u.target}\n"
        for u in unknown
    )


def summary(findings: int, files: int, unknown: int, errors: int) -> str:
    noun = "finding" if findings == 1 else "findings"
    parts = [f"{findings} {noun} in {files} file{'s' if files != 1 else ''} checked"]
    if unknown:
        parts.append(
            f"{unknown} statement{'s' if unknown != 1 else ''} not checked (--show-unknown lists them)"
        )
    if errors:
        parts.append(f"{errors} file error{'s' if errors != 1 else ''}")
    return "; ".join(parts) + "\n"
