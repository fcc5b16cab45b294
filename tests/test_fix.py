"""``--fix`` and ``--diff`` for LCK003: the fix removes every finding it targets, a second run
changes nothing, ``--diff`` writes nothing, and the edit keeps the code around it as it was.
Which fix a handler gets, and whether it is safe, is in ``test_fix_safety.py``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lockorder_lint.cli import main
from lockorder_lint.config import Config, load_config
from lockorder_lint.fixer import fix_source, write_fixed
from lockorder_lint.runner import check_path, make_project

RULE_FIXTURES = Path(__file__).parent / "fixtures" / "rules"


@pytest.fixture
def fixture_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The LCK003 fixtures (and the modules they import) as a project of their own."""
    project = tmp_path / "project"
    package = project / "fixtures"
    package.mkdir(parents=True)
    # PostgreSQL only: the fixtures import MySQL drivers, which would make the savepoints unsafe.
    (project / "pyproject.toml").write_text(
        "[project]\nname = 'copy'\n\n[tool.lockorder-lint]\ndialects = ['postgresql']\n", encoding="utf-8"
    )
    for source in RULE_FIXTURES.glob("*.py"):
        if source.name in ("LCK003_calls.py", "LCK003_retry_callbacks.py", "LCK003_helper_effects.py"):
            continue  # retry decorators and helper-only sessions: findings with no automatic fix
        if source.name.startswith("LCK003_") or not source.name.startswith("LCK"):
            shutil.copy(source, package / source.name)
    monkeypatch.chdir(project)
    return project


def lck003_findings(project: Path) -> list[tuple[str, str | None]]:
    """(file, function) of each LCK003 finding."""
    built = make_project(project, load_config(project / "pyproject.toml"))
    found = []
    for path in sorted((project / "fixtures").glob("*.py")):
        result = check_path(path, path.name, built)
        found.extend((path.name, f.function) for f in result.findings if f.code == "LCK003")
    return found


def snapshot(project: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((project / "fixtures").glob("*.py"))}


def test_fix_leaves_only_unsafe_fixes_and_unsafe_fixes_leave_no_finding(
    fixture_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(fixture_copy)
    found = lck003_findings(fixture_copy)
    assert found, "the copied fixtures should have LCK003 findings to fix"

    # Safe fixes only: what stays is the findings whose fix is unsafe (sessions known only by
    # their names, rollbacks of a caller's session), each named where the re-check reports it.
    status = main(["--select", "LCK003", "--no-cache", "--fix", "fixtures"])
    out, err = capsys.readouterr()
    assert status == 1
    left = [line.split(" LCK003 ")[0] for line in err.splitlines() if " LCK003 " in line]
    assert all("unsafe fix not applied" in line for line in err.splitlines() if " LCK003 " in line)
    assert left == [line.split(" LCK003 ")[0] for line in out.splitlines()]
    assert 0 < len(left) < len(found)
    assert "unsafe fix(es) available with --fix --unsafe-fixes" in err
    safe = snapshot(fixture_copy)
    assert safe != before
    assert [p for p in (fixture_copy / "fixtures").iterdir() if "lockorder-tmp" in p.name] == []
    assert main(["--select", "LCK003", "--no-cache", "--fix", "fixtures"]) == 1
    assert snapshot(fixture_copy) == safe

    assert main(["--select", "LCK003", "--no-cache", "--fix", "--unsafe-fixes", "fixtures"]) == 0
    assert lck003_findings(fixture_copy) == []
    fixed = snapshot(fixture_copy)
    assert main(["--select", "LCK003", "--no-cache", "--fix", "--unsafe-fixes", "fixtures"]) == 0
    assert snapshot(fixture_copy) == fixed


def test_diff_prints_the_fix_and_writes_nothing(
    fixture_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(fixture_copy)
    status = main(["--select", "LCK003", "--no-cache", "--diff", "fixtures"])
    out = capsys.readouterr().out
    assert status == 1
    assert "--- a/fixtures/LCK003_handler.py" in out
    assert "+        with session.begin_nested():" in out
    assert "+        async with session.begin_nested():" in out
    assert "+            db.rollback()" in out  # a session of its own, with no earlier work
    assert snapshot(fixture_copy) == before


def fixed(source: str, *targets: tuple[int, int], unsafe: bool = False) -> str:
    return fix_source(source, Path("example.py"), set(targets), Config(), unsafe=unsafe).text


def test_rollback_goes_first_and_comments_stay_on_top() -> None:
    source = (
        "def f():\n"
        "    with SessionLocal() as session:\n"
        "        try:\n"
        "            session.execute(q)\n"
        "        except Exception:  # best effort\n"
        "            # mark it failed\n"
        "            log.exception('x')\n"
        "            session.execute(fail)\n"
    )
    assert fixed(source, (8, 13)) == (
        "def f():\n"
        "    with SessionLocal() as session:\n"
        "        try:\n"
        "            session.execute(q)\n"
        "        except Exception:  # best effort\n"
        "            # mark it failed\n"
        "            session.rollback()\n"
        "            log.exception('x')\n"
        "            session.execute(fail)\n"
    )


def test_one_line_handler_becomes_a_block() -> None:
    source = (
        "def f(session):\n"
        "    try:\n"
        "        session.flush()\n"
        "    except Exception: log.warning('x')\n"
        "    session.commit()\n"
    )
    assert fixed(source, (5, 5)) == source  # the rollback of a caller's session is unsafe
    assert fixed(source, (5, 5), unsafe=True) == (
        "def f(session):\n"
        "    try:\n"
        "        session.flush()\n"
        "    except Exception:\n"
        "        session.rollback()\n"
        "        log.warning('x')\n"
        "    session.commit()\n"
    )


def test_savepoint_keeps_comments_where_they_were() -> None:
    source = (
        "def f(session: Session):\n"
        "    try:  # header\n"
        "        # what the work is\n"
        "        session.execute(q)  # the work\n"
        "        done = True\n"
        "\n"
        "        # the end of the body\n"
        "    except Exception:\n"
        "        session.execute(fail)\n"
    )
    assert fixed(source, (9, 9)) == (
        "def f(session: Session):\n"
        "    try:  # header\n"
        "        # what the work is\n"
        "        with session.begin_nested():\n"
        "            session.execute(q)  # the work\n"
        "            done = True\n"
        "\n"
        "        # the end of the body\n"
        "    except Exception:\n"
        "        session.execute(fail)\n"
    )


def test_one_line_try_under_a_savepoint_keeps_its_comment() -> None:
    source = (
        "def f(session: Session):\n"
        "    try: session.execute(q)  # the work\n"
        "    except Exception: session.execute(fail)\n"
    )
    assert fixed(source, (3, 23)) == (
        "def f(session: Session):\n"
        "    try:\n"
        "        with session.begin_nested():\n"
        "            session.execute(q)  # the work\n"
        "    except Exception: session.execute(fail)\n"
    )


def test_async_session_is_awaited_and_sync_session_in_async_code_is_not() -> None:
    source = (
        "from sqlalchemy.orm import Session\n"
        "async def f(session, other: Session):\n"
        "    try:\n"
        "        await session.flush()\n"
        "    except Exception:\n"
        "        await session.commit()\n"
        "    try:\n"
        "        other.flush()\n"
        "    except Exception:\n"
        "        other.commit()\n"
        "    try:\n"
        "        await session.execute(q)\n"
        "    except Exception:\n"
        "        await session.commit()\n"
        "    try:\n"
        "        other.execute(q)\n"
        "    except Exception:\n"
        "        other.commit()\n"
    )
    out = fixed(source, (6, 15), (10, 9), (14, 15), (18, 9), unsafe=True)
    assert "    except Exception:\n        await session.rollback()\n        await session.commit()\n" in out
    assert "    except Exception:\n        other.rollback()\n        other.commit()\n" in out
    assert (
        "    try:\n        async with session.begin_nested():\n            await session.execute(q)\n" in out
    )
    assert "    try:\n        with other.begin_nested():\n            other.execute(q)\n" in out


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
    out = fixed(source, (5, 9), unsafe=True)
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
        "    try:\r\n"
        "        session.execute(q)\r\n"
        "    except Exception:\r\n"
        "        log.warning('\xe9chec')\r\n"
        "    session.commit()\r\n"
    )
    module.write_bytes(source.encode("latin-1"))
    module.chmod(0o640)
    assert main(["--no-cache", "--fix", "--unsafe-fixes", "legacy.py"]) == 0
    data = module.read_bytes()
    assert data.decode("latin-1") == source.replace(
        "    except Exception:\r\n        log",
        "    except Exception:\r\n        session.rollback()\r\n        log",
        1,
    ).replace(
        "        session.execute(q)\r\n",
        "        with session.begin_nested():\r\n            session.execute(q)\r\n",
    )
    assert module.stat().st_mode & 0o777 == 0o640


def test_write_fixed_replaces_in_one_step(tmp_path: Path) -> None:
    target = tmp_path / "m.py"
    target.write_text("x = 1\n", encoding="utf-8")
    write_fixed(target, "x = 2\n", "utf-8")
    assert target.read_text(encoding="utf-8") == "x = 2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.py"]
