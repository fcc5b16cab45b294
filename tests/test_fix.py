"""``--fix`` and ``--diff`` for LCK003: the fix removes every finding it targets, a second run
changes nothing, ``--diff`` writes nothing, and the edit keeps the code around it as it was."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lockorder_lint.catalog import Catalog
from lockorder_lint.cli import main
from lockorder_lint.config import Config
from lockorder_lint.engine import Project
from lockorder_lint.fixer import fix_source, write_fixed
from lockorder_lint.runner import check_path, make_project

RULE_FIXTURES = Path(__file__).parent / "fixtures" / "rules"


@pytest.fixture
def fixture_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The LCK003 fixtures (and the modules they import) as a project of their own."""
    project = tmp_path / "project"
    package = project / "fixtures"
    package.mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'copy'\n", encoding="utf-8")
    for source in RULE_FIXTURES.glob("*.py"):
        if source.name == "LCK003_calls.py":
            continue  # retry decorators and helper-only sessions: findings with no automatic fix
        if source.name.startswith("LCK003_") or not source.name.startswith("LCK"):
            shutil.copy(source, package / source.name)
    monkeypatch.chdir(project)
    return project


def lck003_lines(project: Path) -> list[tuple[str, int]]:
    built = make_project(project, Config())
    found = []
    for path in sorted((project / "fixtures").glob("*.py")):
        result = check_path(path, path.name, built)
        found.extend((path.name, f.line) for f in result.findings if f.code == "LCK003")
    return found


def snapshot(project: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((project / "fixtures").glob("*.py"))}


def test_fix_leaves_no_finding_and_a_second_run_changes_nothing(
    fixture_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(fixture_copy)
    assert lck003_lines(fixture_copy), "the copied fixtures should have LCK003 findings to fix"

    status = main(["--select", "LCK003", "--no-cache", "--fix", "fixtures"])
    assert status == 0, capsys.readouterr()
    assert lck003_lines(fixture_copy) == []
    fixed = snapshot(fixture_copy)
    assert fixed != before
    assert [p for p in (fixture_copy / "fixtures").iterdir() if "lockorder-tmp" in p.name] == []

    assert main(["--select", "LCK003", "--no-cache", "--fix", "fixtures"]) == 0
    assert snapshot(fixture_copy) == fixed


def test_diff_prints_the_fix_and_writes_nothing(
    fixture_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(fixture_copy)
    status = main(["--select", "LCK003", "--no-cache", "--diff", "fixtures"])
    out = capsys.readouterr().out
    assert status == 1
    assert "--- a/fixtures/LCK003_handler.py" in out
    assert "+        session.rollback()" in out
    assert "+        await session.rollback()" in out
    assert snapshot(fixture_copy) == before


def fixed(source: str, *targets: tuple[int, int]) -> str:
    project = Project(root=Path.cwd(), config=Config(), catalog=Catalog())
    text, _count = fix_source(source, Path("example.py"), set(targets), project)
    return text


def test_rollback_goes_first_and_comments_stay_on_top() -> None:
    source = (
        "def f(session):\n"
        "    try:\n"
        "        session.execute(q)\n"
        "    except Exception:  # best effort\n"
        "        # mark it failed\n"
        "        log.exception('x')\n"
        "        session.execute(fail)\n"
    )
    assert fixed(source, (7, 9)) == (
        "def f(session):\n"
        "    try:\n"
        "        session.execute(q)\n"
        "    except Exception:  # best effort\n"
        "        # mark it failed\n"
        "        session.rollback()\n"
        "        log.exception('x')\n"
        "        session.execute(fail)\n"
    )


def test_one_line_handler_becomes_a_block() -> None:
    source = (
        "def f(session):\n"
        "    try:\n"
        "        session.flush()\n"
        "    except Exception: log.warning('x')\n"
        "    session.commit()\n"
    )
    assert fixed(source, (5, 5)) == (
        "def f(session):\n"
        "    try:\n"
        "        session.flush()\n"
        "    except Exception:\n"
        "        session.rollback()\n"
        "        log.warning('x')\n"
        "    session.commit()\n"
    )


def test_async_session_is_awaited_and_sync_session_in_async_code_is_not() -> None:
    source = (
        "from sqlalchemy.orm import Session\n"
        "async def f(session, other: Session):\n"
        "    try:\n"
        "        await session.execute(q)\n"
        "    except Exception:\n"
        "        await session.commit()\n"
        "    try:\n"
        "        other.execute(q)\n"
        "    except Exception:\n"
        "        other.commit()\n"
    )
    out = fixed(source, (6, 15), (10, 9))
    assert "    except Exception:\n        await session.rollback()\n        await session.commit()\n" in out
    assert "    except Exception:\n        other.rollback()\n        other.commit()\n" in out


def test_only_reported_handlers_change() -> None:
    source = (
        "def f(session):\n"
        "    try:\n"
        "        session.flush()\n"
        "    except Exception:\n"
        "        session.commit()\n"
        "        raise\n"
        "    try:\n"
        "        session.flush()\n"
        "    except Exception:\n"
        "        session.commit()  # noqa: LCK003\n"
        "        raise\n"
    )
    out = fixed(source, (5, 9))
    assert out.count("session.rollback()") == 1
    assert out.index("session.rollback()") < out.index("session.commit()")


def test_line_endings_and_encoding_survive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'crlf'\n", encoding="utf-8")
    module = tmp_path / "legacy.py"
    source = (
        "# -*- coding: latin-1 -*-\r\n"
        "def f(session):\r\n"
        "    try:\r\n"
        "        session.flush()\r\n"
        "    except Exception:\r\n"
        "        log.warning('\xe9chec')\r\n"
        "    session.commit()\r\n"
    )
    module.write_bytes(source.encode("latin-1"))
    module.chmod(0o640)
    assert main(["--no-cache", "--fix", "legacy.py"]) == 0
    data = module.read_bytes()
    assert data.decode("latin-1") == source.replace(
        "    except Exception:\r\n", "    except Exception:\r\n        session.rollback()\r\n"
    )
    assert module.stat().st_mode & 0o777 == 0o640


def test_write_fixed_replaces_in_one_step(tmp_path: Path) -> None:
    target = tmp_path / "m.py"
    target.write_text("x = 1\n", encoding="utf-8")
    write_fixed(target, "x = 2\n", "utf-8")
    assert target.read_text(encoding="utf-8") == "x = 2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.py"]
