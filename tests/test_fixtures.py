"""Every fixture file carries its expected findings as ``# expect: CODE`` comments on the
reported lines; this test checks each file for exactly those codes on exactly those lines. A
quoted fragment after the code (``# expect: LCK001 "not in id order"``) must be in the message."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from lockorder_lint.config import Config, apply_settings
from lockorder_lint.engine import Project
from lockorder_lint.runner import check_path, make_project

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

FIXTURES = Path(__file__).parent / "fixtures"
EXPECT = re.compile(r"#.*\bexpect:\s*(?P<codes>LCK\d{3}(?:\s*,\s*LCK\d{3})*)(?:\s+\"(?P<says>[^\"]+)\")?")
FIXTURE_CONFIG = re.compile(r"^# fixture-config: (?P<toml>.*)$", re.MULTILINE)


def fixture_files() -> list[Path]:
    return sorted(
        p
        for p in FIXTURES.rglob("*.py")
        if p.name not in ("__init__.py", "models.py") and "__pycache__" not in p.parts
    )


def expected_findings(text: str) -> list[tuple[int, str]]:
    """(line, code) of every ``# expect:`` marker, in order; a code named twice is expected twice."""
    expected = []
    for lineno, line in enumerate(text.splitlines(), 1):
        match = EXPECT.search(line)
        if match:
            for code in re.split(r"\s*,\s*", match.group("codes")):
                expected.append((lineno, code))
    return sorted(expected)


def fixture_config(text: str) -> Config:
    settings: dict[str, object] = {}
    for match in FIXTURE_CONFIG.finditer(text):
        settings.update(tomllib.loads(match.group("toml")))
    return apply_settings(Config(), settings, "fixture")


_BASE_PROJECT: dict[str, Project] = {}


def project_for(config: Config) -> Project:
    base = _BASE_PROJECT.get("base")
    if base is None:
        base = _BASE_PROJECT["base"] = make_project(FIXTURES, Config())
    program = base.program.with_config(config) if base.program is not None else None
    return Project(root=FIXTURES, config=config, catalog=base.catalog, program=program)


@pytest.mark.parametrize("path", fixture_files(), ids=lambda p: str(p.relative_to(FIXTURES)))
def test_fixture_findings_are_exactly_the_marked_ones(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    project = project_for(fixture_config(text))
    result = check_path(path, str(path), project)
    assert result.errors == []
    actual = sorted((f.line, f.code) for f in result.findings)
    assert actual == expected_findings(text), "\n".join(
        f"{f.line}:{f.column} {f.code} {f.message}" for f in result.findings
    )
    for lineno, line in enumerate(text.splitlines(), 1):
        match = EXPECT.search(line)
        if match and match.group("says"):
            messages = [f.message for f in result.findings if f.line == lineno]
            assert any(match.group("says") in m for m in messages), (lineno, messages)


def test_every_rule_has_positive_and_negative_fixtures() -> None:
    from lockorder_lint.rules import ALL_RULES

    for rule in ALL_RULES:
        files = sorted((FIXTURES / "rules").glob(f"{rule.code}_*.py"))
        assert files, f"no fixtures for {rule.code}"
        marked = [f for f in files if any(code == rule.code for _, code in expected_findings(f.read_text()))]
        assert marked, f"no positive fixture for {rule.code}"
        assert any(f.name.endswith("_ok.py") for f in files), f"no negative fixture for {rule.code}"
