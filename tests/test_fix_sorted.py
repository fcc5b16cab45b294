"""``--fix`` / ``--diff`` for LCK006: ``sorted(...)`` around the iterable is an unsafe fix, applied
only with ``--unsafe-fixes``, only where the loop variable is the key; the fixed file parses, its
fixed loops are no longer findings, and a second run changes nothing."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from lockorder_lint.cli import main

RULE_FIXTURES = Path(__file__).parent / "fixtures" / "rules"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    package = root / "fixtures"
    package.mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'copy'\n", encoding="utf-8")
    for name in ("LCK006_bad.py", "models.py", "__init__.py"):
        shutil.copy(RULE_FIXTURES / name, package / name)
    monkeypatch.chdir(root)
    return root


def lck006_lines(capsys: pytest.CaptureFixture[str]) -> list[int]:
    main(["--no-cache", "--select", "LCK006", "fixtures/LCK006_bad.py"])
    out = capsys.readouterr().out
    return [int(line.split(":")[1]) for line in out.splitlines() if " LCK006 " in line]


def test_fix_without_unsafe_fixes_changes_nothing(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = project / "fixtures" / "LCK006_bad.py"
    before = path.read_bytes()
    main(["--no-cache", "--select", "LCK006", "--fix", "fixtures/LCK006_bad.py"])
    err = capsys.readouterr().err
    assert path.read_bytes() == before
    assert "LCK006 unsafe fix not applied (--unsafe-fixes applies it): sorted(...) raises" in err
    assert "LCK006 not fixed: the loop's elements are not the keys themselves" in err
    assert "4 unsafe fix(es) available with --fix --unsafe-fixes" in err


def test_unsafe_fixes_sort_the_key_loops_only(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = project / "fixtures" / "LCK006_bad.py"
    found_before = lck006_lines(capsys)
    main(["--no-cache", "--select", "LCK006", "--fix", "--unsafe-fixes", "fixtures/LCK006_bad.py"])
    err = capsys.readouterr().err
    assert "sorted 4 loop(s) in 1 file(s)" in err
    text = path.read_text(encoding="utf-8")
    ast.parse(text)
    for fixed in (
        "for account_id, status in sorted(balances.items()):",
        "for account_id in sorted(ids):",
        "for account_id in sorted(account_ids):",
        "for account_id in sorted(amounts.keys()):",
    ):
        assert fixed in text
    assert "for account in accounts:" in text  # objects, not keys: no automatic fix
    left = lck006_lines(capsys)
    assert len(left) == len(found_before) - 4
    main(["--no-cache", "--select", "LCK006", "--fix", "--unsafe-fixes", "fixtures/LCK006_bad.py"])
    capsys.readouterr()
    assert path.read_text(encoding="utf-8") == text  # a second run changes nothing


def test_diff_with_unsafe_fixes_writes_nothing(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = project / "fixtures" / "LCK006_bad.py"
    before = path.read_bytes()
    main(["--no-cache", "--select", "LCK006", "--diff", "--unsafe-fixes", "fixtures/LCK006_bad.py"])
    captured = capsys.readouterr()
    assert path.read_bytes() == before
    assert "+    for account_id in sorted(ids):  # expect: LCK006" in captured.out
    assert "the diff fixes 0 handler(s), sorted 4 loop(s) in 1 file(s)" in captured.err
