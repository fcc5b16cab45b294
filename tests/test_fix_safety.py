"""Which fix an LCK003 finding gets, and whether it is safe (issue 14, items 14, 15 and 17).

A rollback discards everything the transaction did before the error, so it is safe only for a
session the function creates and has not used before the ``try``; otherwise the ``try`` body goes
under a savepoint (safe on PostgreSQL, unsafe when MySQL is a configured dialect), and only when
neither can go there is the rollback offered, as an unsafe fix applied on request. Inside a
``begin()`` block a rollback would break the block, and ``except*`` is never fixed; both say why.
The database side of the savepoint is proved in ``tests/integration/test_fix_savepoint.py``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session

from lockorder_lint.config import Config
from lockorder_lint.fixer import fix_source
from lockorder_lint.runner import check_path, make_project
from tests.test_cli import run_cli

AIRFLOW_FIXTURES = Path(__file__).parent / "fixtures" / "airflow"


def targets(tmp_path: Path, source: str, config: Config | None = None) -> set[tuple[int, int]]:
    """Where the checker reports LCK003 in ``source``: what ``--fix`` is asked to fix."""
    path = tmp_path / "module_under_fix.py"
    path.write_text(source, encoding="utf-8")
    result = check_path(path, path.name, make_project(tmp_path, config or Config()))
    found = {(f.line, f.column) for f in result.findings if f.code == "LCK003"}
    assert found, "the source should have an LCK003 finding"
    return found


def outcome(tmp_path: Path, source: str, config: Config | None = None) -> tuple[str | None, bool]:
    """(the fix ``--unsafe-fixes`` applies: "savepoint", "rollback" or None; whether plain
    ``--fix`` applies it too, i.e. whether it is safe)."""
    config = config or Config()
    spots = targets(tmp_path, source, config)
    everything = fix_source(source, Path("m.py"), spots, config, unsafe=True).text
    safe_only = fix_source(source, Path("m.py"), spots, config).text
    kind = None
    if "begin_nested()" in everything:
        kind = "savepoint"
    elif everything.count("rollback()") > source.count("rollback()"):
        kind = "rollback"
    return kind, kind is not None and safe_only == everything


# --- item 15: a fix that may discard work is unsafe; a savepoint keeps it where it can ---------

CASES = {
    "a session of its own, no earlier work: rollback, safe": (
        "def f():\n"
        "    with SessionLocal() as s:\n"
        "        try:\n"
        "            s.flush()\n"
        "        except Exception:\n"
        "            s.execute(fail)\n",
        ("rollback", True),
    ),
    "a session assigned in the function: rollback, safe": (
        "def f():\n"
        "    s = SessionLocal()\n"
        "    try:\n"
        "        s.execute(q)\n"
        "    except Exception:\n"
        "        s.execute(fail)\n",
        ("rollback", True),
    ),
    "a fresh session each iteration: rollback, safe": (
        "def f(items):\n"
        "    for item in items:\n"
        "        s = SessionLocal()\n"
        "        try:\n"
        "            s.flush()\n"
        "        except Exception:\n"
        "            s.execute(fail)\n",
        ("rollback", True),
    ),
    "a tenacity retry of a fresh session: rollback, safe": (
        "from tenacity import Retrying\n"
        "def f():\n"
        "    with SessionLocal() as s:\n"
        "        for attempt in Retrying():\n"
        "            with attempt:\n"
        "                s.flush()\n",
        ("rollback", True),
    ),
    "the caller's session: savepoint, safe": (
        "def f(session: Session):\n"
        "    try:\n"
        "        session.execute(q)\n"
        "    except Exception:\n"
        "        session.execute(fail)\n",
        ("savepoint", True),
    ),
    "a session only by its name: savepoint, unsafe": (
        "def f(session):\n"
        "    try:\n"
        "        session.execute(q)\n"
        "    except Exception:\n"
        "        session.execute(fail)\n",
        ("savepoint", False),
    ),
    "self.session, a session by its name: savepoint, unsafe": (
        "class Store:\n"
        "    def f(self):\n"
        "        try:\n"
        "            self.session.execute(q)\n"
        "        except Exception:\n"
        "            self.session.execute(fail)\n",
        ("savepoint", False),
    ),
    "earlier work on a fresh session: savepoint, safe": (
        "def f():\n"
        "    with SessionLocal() as s:\n"
        "        s.execute(first)\n"
        "        try:\n"
        "            s.execute(q)\n"
        "        except Exception:\n"
        "            s.execute(fail)\n",
        ("savepoint", True),
    ),
    "a loop over a fresh session: savepoint, safe": (
        "def f(items):\n"
        "    with SessionLocal() as s:\n"
        "        for item in items:\n"
        "            try:\n"
        "                s.execute(q)\n"
        "            except Exception:\n"
        "                s.execute(fail)\n",
        ("savepoint", True),
    ),
    "the caller's session, a flush: rollback, unsafe": (
        "def f(session):\n"
        "    try:\n"
        "        session.flush()\n"
        "    except Exception:\n"
        "        session.execute(fail)\n",
        ("rollback", False),
    ),
    "the caller's session, a commit in the try: rollback, unsafe": (
        "def f(session):\n"
        "    try:\n"
        "        session.execute(q)\n"
        "        session.commit()\n"
        "    except Exception:\n"
        "        session.execute(fail)\n",
        ("rollback", False),
    ),
    "earlier work on a fresh session, a flush: rollback, unsafe": (
        "def f():\n"
        "    with SessionLocal() as s:\n"
        "        s.add(first)\n"
        "        try:\n"
        "            s.flush()\n"
        "        except Exception:\n"
        "            s.execute(fail)\n",
        ("rollback", False),
    ),
    "a loop over a fresh session, a flush: rollback, unsafe": (
        "def f(items):\n"
        "    with SessionLocal() as s:\n"
        "        for item in items:\n"
        "            try:\n"
        "                s.flush()\n"
        "            except Exception:\n"
        "                s.execute(fail)\n",
        ("rollback", False),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_which_fix_and_whether_it_is_safe(tmp_path: Path, name: str) -> None:
    source, expected = CASES[name]
    assert outcome(tmp_path, source) == expected


def test_autocommit_is_not_fixed(tmp_path: Path) -> None:
    source = (
        "def create(engine, name):\n"
        '    with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:\n'
        "        try:\n"
        "            conn.exec_driver_sql(create_database)\n"
        "        except Exception:\n"
        "            conn.exec_driver_sql(drop_database)\n"
    )
    # An AUTOCOMMIT connection has no transaction for an error to abort: LCK003 reports nothing,
    # so there is nothing to fix (a savepoint there would fail).
    path = tmp_path / "m.py"
    path.write_text(source, encoding="utf-8")
    result = check_path(path, path.name, make_project(tmp_path, Config()))
    assert [f for f in result.findings if f.code == "LCK003"] == []


def test_a_savepoint_is_unsafe_when_mysql_is_a_dialect(tmp_path: Path) -> None:
    source = CASES["the caller's session: savepoint, safe"][0]
    assert outcome(tmp_path, source, Config(dialects=("postgresql", "mysql"))) == ("savepoint", False)
    fresh = CASES["a session of its own, no earlier work: rollback, safe"][0]
    assert outcome(tmp_path, fresh, Config(dialects=("mysql",))) == ("rollback", True)


def test_the_state_store_clear_goes_under_a_savepoint_that_keeps_the_success_write(tmp_path: Path) -> None:
    """Airflow 3.3.2's clear-on-success: a rollback would discard the SUCCESS update written just
    before; the savepoint keeps it (on PostgreSQL: tests/integration/test_fix_savepoint.py)."""
    source = (AIRFLOW_FIXTURES / "state_store_3_3_2.py").read_text(encoding="utf-8")
    config = Config()
    spots = targets(tmp_path, source, config)
    result = fix_source(source, Path("state_store_3_3_2.py"), spots, config)
    assert result.applied == 1 and result.left == []
    assert result.text == source.replace(
        "        try:\n"
        "            get_state_backend().clear(scope, session=session)\n"
        '            log.info("Cleared task state on success")\n',
        "        try:\n"
        "            with session.begin_nested():\n"
        "                get_state_backend().clear(scope, session=session)\n"
        '                log.info("Cleared task state on success")\n',
    )


UNSAFE_ONLY = """\
import logging

from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


def flush_jobs(session: Session) -> None:
    try:
        session.flush()
    except Exception:
        log.warning("flush failed")
    session.commit()
"""


def test_an_unsafe_fix_is_applied_only_on_request_and_the_output_says_how(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'unsafe'\n", encoding="utf-8")
    module = tmp_path / "jobs.py"
    module.write_text(UNSAFE_ONLY, encoding="utf-8")
    left_out = (
        "jobs.py:13:5: LCK003 unsafe fix not applied (--unsafe-fixes applies it): `session.rollback()` "
        "would also discard what the caller did in this transaction (`session` is a parameter) "
        "(no savepoint instead: `begin_nested()` flushes pending changes before its SAVEPOINT, so a "
        "failing `session.flush()` (line 10) would still abort the transaction)"
    )

    code, out, err = run_cli(capsys, "--no-cache", "--diff", "jobs.py", cwd=tmp_path)
    assert (code, out) == (1, "")
    assert err.splitlines()[-2:] == [
        left_out,
        "lockorder-lint: the diff fixes 0 handler(s) in 0 file(s); 0 finding(s) above have no "
        "automatic fix; 1 unsafe fix(es) available with --diff --unsafe-fixes",
    ]

    code, out, err = run_cli(capsys, "--no-cache", "--fix", "jobs.py", cwd=tmp_path)
    assert code == 1 and out.startswith("jobs.py:13:5: LCK003 ")
    assert err.splitlines()[:2] == [
        "lockorder-lint: fixed 0 handler(s) in 0 file(s); 1 unsafe fix(es) available with "
        "--fix --unsafe-fixes",
        left_out,
    ]
    assert module.read_text(encoding="utf-8") == UNSAFE_ONLY

    code, out, err = run_cli(capsys, "--no-cache", "--diff", "--unsafe-fixes", "jobs.py", cwd=tmp_path)
    assert code == 1 and "+        session.rollback()\n" in out
    assert err.splitlines()[-1] == (
        "lockorder-lint: the diff fixes 1 handler(s) in 1 file(s); 0 finding(s) above have no automatic fix"
    )
    code, out, err = run_cli(capsys, "--no-cache", "--fix", "--unsafe-fixes", "jobs.py", cwd=tmp_path)
    assert (code, out) == (0, "")
    assert "lockorder-lint: fixed 1 handler(s) in 1 file(s)" in err.splitlines()
    assert "    except Exception:\n        session.rollback()\n        log.warning" in module.read_text()


def test_unsafe_fixes_needs_fix_or_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "--unsafe-fixes", ".", cwd=tmp_path)
    assert (code, out) == (2, "")
    assert "--unsafe-fixes only applies with --fix or --diff" in err


# --- item 14: inside a begin() block, a rollback breaks the block: a savepoint, or no fix -------

BEGIN_BLOCKS = """\
from sqlalchemy import text
from sqlalchemy.orm import Session


def in_session_begin(session: Session) -> None:
    with session.begin():
        session.execute(text("UPDATE job SET state = 'running' WHERE id = 1"))
        try:
            session.execute(text("INSERT INTO job (id, state) VALUES (1, 'again')"))
        except Exception:
            session.execute(text("UPDATE job SET state = 'failed' WHERE id = 2"))


def in_engine_begin(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE job SET state = 'running' WHERE id = 3"))
        try:
            conn.execute(text("INSERT INTO job (id, state) VALUES (3, 'again')"))
        except Exception:
            conn.execute(text("UPDATE job SET state = 'failed' WHERE id = 4"))


async def in_async_engine_begin(engine) -> None:
    async with engine.begin() as conn:
        try:
            await conn.execute(text("INSERT INTO job (id, state) VALUES (3, 'again')"))
        except Exception:
            await conn.execute(text("UPDATE job SET state = 'failed' WHERE id = 4"))
"""


def _sqlite_with_savepoints() -> Engine:
    """In-memory SQLite whose driver leaves transactions to SQLAlchemy, so that SAVEPOINT works
    (SQLAlchemy's documented recipe for pysqlite)."""
    engine = create_engine("sqlite://")

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")

    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE job (id INTEGER PRIMARY KEY, state VARCHAR(20))")
        connection.exec_driver_sql(
            "INSERT INTO job VALUES (1, 'queued'), (2, 'queued'), (3, 'queued'), (4, 'queued')"
        )
    return engine


def test_fix_inside_a_begin_block_is_a_savepoint_and_the_fixed_code_runs(tmp_path: Path) -> None:
    result = fix_source(BEGIN_BLOCKS, Path("jobs.py"), targets(tmp_path, BEGIN_BLOCKS), Config(), unsafe=True)
    assert "rollback()" not in result.text
    assert result.applied == 3 and result.left == []
    assert (
        "        try:\n            async with conn.begin_nested():\n                await conn" in result.text
    )

    engine = _sqlite_with_savepoints()
    namespace: dict[str, Any] = {}
    exec(compile(result.text, "jobs.py", "exec"), namespace)
    with Session(engine) as session:
        namespace["in_session_begin"](session)  # a rollback here raised "Can't operate on closed transaction"
    namespace["in_engine_begin"](engine)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, state FROM job ORDER BY id")).all()
    assert [tuple(row) for row in rows] == [(1, "running"), (2, "failed"), (3, "running"), (4, "failed")]


FRESH_BEGIN_BLOCKS = """\
from sqlalchemy import text
from sqlalchemy.orm import Session


def fresh_session(engine) -> None:
    with Session(engine) as session, session.begin():
        try:
            session.execute(text("INSERT INTO job (id, state) VALUES (1, 'again')"))
        except Exception:
            session.execute(text("UPDATE job SET state = 'failed' WHERE id = 2"))


def fresh_connection(engine) -> None:
    with engine.begin() as conn:
        try:
            conn.execute(text("INSERT INTO job (id, state) VALUES (3, 'again')"))
        except Exception:
            conn.execute(text("UPDATE job SET state = 'failed' WHERE id = 4"))
"""


def test_a_fresh_session_in_a_begin_block_gets_a_savepoint_not_a_rollback(tmp_path: Path) -> None:
    """The issue's own case: nothing before the ``try``, so a rollback would discard no work, yet
    inside the ``begin()`` block it ends the transaction and the handler's next statement raises."""
    spots = targets(tmp_path, FRESH_BEGIN_BLOCKS)
    result = fix_source(FRESH_BEGIN_BLOCKS, Path("jobs.py"), spots, Config())
    assert result.applied == 2 and result.left == []
    assert "rollback()" not in result.text
    assert result.text.count("begin_nested():") == 2

    with_rollbacks = FRESH_BEGIN_BLOCKS.replace(
        "        except Exception:\n", "        except Exception:\n            session.rollback()\n", 1
    ).replace("        except Exception:\n            conn.execute", "        except Exception:\n"
              "            conn.rollback()\n            conn.execute")  # fmt: skip
    engine = _sqlite_with_savepoints()
    broken: dict[str, Any] = {}
    exec(compile(with_rollbacks, "jobs.py", "exec"), broken)
    for name in ("fresh_session", "fresh_connection"):
        with pytest.raises(Exception, match="Can't operate on closed transaction inside context manager"):
            broken[name](engine)

    engine = _sqlite_with_savepoints()
    fixed: dict[str, Any] = {}
    exec(compile(result.text, "jobs.py", "exec"), fixed)
    fixed["fresh_session"](engine)
    fixed["fresh_connection"](engine)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, state FROM job ORDER BY id")).all()
    assert [tuple(row) for row in rows] == [(1, "queued"), (2, "failed"), (3, "queued"), (4, "failed")]


def test_a_begin_block_with_no_room_for_a_savepoint_is_not_fixed_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'blocks'\n", encoding="utf-8")
    source = (
        "from sqlalchemy.orm import sessionmaker\n"
        "\n"
        "SessionLocal = sessionmaker()\n"
        "\n"
        "\n"
        "def store(job):\n"
        "    with SessionLocal.begin() as session:\n"
        "        try:\n"
        "            session.flush()\n"
        "        except Exception:\n"
        "            session.add(job)\n"
    )
    (tmp_path / "store.py").write_text(source, encoding="utf-8")
    code, out, err = run_cli(capsys, "--no-cache", "--fix", "--unsafe-fixes", "store.py", cwd=tmp_path)
    assert code == 1 and out.startswith("store.py:11:13: LCK003 ")
    assert err.splitlines()[:2] == [
        "lockorder-lint: fixed 0 handler(s) in 0 file(s)",
        "store.py:11:13: LCK003 not fixed: inside `with SessionLocal.begin() as session:` a "
        "`session.rollback()` would end the block's transaction and its next statement would raise "
        '"Can\'t operate on closed transaction inside context manager", and no savepoint can go '
        "around the `try` body: `begin_nested()` flushes pending changes before its SAVEPOINT, so a "
        "failing `session.flush()` (line 9) would still abort the transaction; re-raise, or fix it by hand",
    ]
    assert (tmp_path / "store.py").read_text(encoding="utf-8") == source


# --- item 17: except* is reported, and a fix run says why it is left alone -------------------

EXCEPT_STAR = """\
from sqlalchemy import text
from sqlalchemy.exc import OperationalError


def run_all(session):
    try:
        session.execute(text("SELECT 1"))
    except* OperationalError:
        session.execute(text("SELECT 2"))
"""


@pytest.mark.skipif(sys.version_info < (3, 11), reason="except* needs Python 3.11")
@pytest.mark.parametrize("mode", ["--fix", "--diff"])
def test_except_star_is_not_fixed_and_the_run_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: str
) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'star'\n", encoding="utf-8")
    (tmp_path / "star.py").write_text(EXCEPT_STAR, encoding="utf-8")
    code, out, err = run_cli(capsys, "--no-cache", mode, "--unsafe-fixes", "star.py", cwd=tmp_path)
    assert code == 1
    reason = (
        "star.py:9:9: LCK003 not fixed: the errors an `except*` clause receives may come from "
        "concurrent tasks, and neither a rollback nor a savepoint on one session shared by concurrent "
        "tasks is safe (SQLAlchemy wants one session per task); fix it by hand"
    )
    assert reason in err.splitlines()
    if mode == "--diff":
        assert out == ""
        assert err.splitlines()[-1].endswith("; 1 finding(s) above have no automatic fix")
    assert (tmp_path / "star.py").read_text(encoding="utf-8") == EXCEPT_STAR
