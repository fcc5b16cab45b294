"""The session analysis behind LCK003: which except clauses catch database errors, which branches
run on the configured databases, and what a finding's message tells its reader."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from lockorder_lint.config import Config
from lockorder_lint.dialects import dialects_where_true
from lockorder_lint.runner import check_path, make_project
from lockorder_lint.sessions import database_error

ALIASES = {
    "OperationalError": "sqlalchemy.exc.OperationalError",
    "NoResultFound": "sqlalchemy.exc.NoResultFound",
    "psycopg2": "psycopg2",
    "AirflowException": "airflow.exceptions.AirflowException",
}


def expression(text: str) -> ast.expr:
    return ast.parse(text, mode="eval").body


def qualify(node: ast.AST) -> str | None:
    text = ast.unparse(node)
    head, _, rest = text.partition(".")
    if head not in ALIASES:
        return None
    return f"{ALIASES[head]}.{rest}" if rest else ALIASES[head]


@pytest.mark.parametrize(
    ("clause", "catches"),
    [
        ("Exception", True),
        ("OperationalError", True),
        ("psycopg2.errors.SerializationFailure", True),
        ("(KeyError, OperationalError)", True),
        ("NoResultFound", False),
        ("(KeyError, ValueError)", False),
        ("AirflowException", False),
        ("OSError", False),
    ],
)
def test_which_clauses_catch_database_errors(clause: str, catches: bool) -> None:
    assert (database_error(expression(clause), qualify) is not None) is catches


@pytest.mark.parametrize(
    ("test", "dialects"),
    [
        ('dialect == "sqlite"', {"sqlite"}),
        ('conn.dialect.name in ("mysql", "mariadb")', {"mysql"}),
        ('op.get_bind().dialect.name != "postgresql"', {"mysql", "sqlite", "oracle", "mssql"}),
        ('get_dialect_name(session) == "postgresql"', {"postgresql"}),
        ("not self.using_sqlite", {"postgresql", "mysql", "oracle", "mssql"}),
        ('name == "sqlite"', None),
        ("dialect == other", None),
    ],
)
def test_dialect_tests(test: str, dialects: set[str] | None) -> None:
    found = dialects_where_true(expression(test))
    assert (set(found) if found is not None else None) == dialects


def test_message_names_the_exception_the_session_the_work_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'm'\n", encoding="utf-8")
    module = tmp_path / "handler.py"
    module.write_text(
        "def mark(db_session, ti_id):\n"
        "    try:\n"
        "        update_state(ti_id, session=db_session)\n"
        "    except Exception:\n"
        "        db_session.get(TI, ti_id)\n",
        encoding="utf-8",
    )
    result = check_path(module, "handler.py", make_project(tmp_path, Config()))
    [finding] = result.findings
    assert (finding.code, finding.line, finding.column) == ("LCK003", 5, 9)
    assert "`except Exception`" in finding.message
    assert "`update_state(..., session=db_session)` (line 3)" in finding.message
    assert "`db_session.get(...)`" in finding.message
    # The session is the caller's: a rollback would discard the caller's work, a savepoint keeps it
    # (the fix --fix would write, so that the message and the fix never disagree; why is the page's).
    assert finding.message.endswith("; run the `try` body under `with db_session.begin_nested():`")
    assert "rollback() first" not in finding.message
    # One sentence that fits a terminal line or two; the story is in `lockorder-lint explain LCK003`.
    assert len(finding.message) <= 280 and finding.message.count(". ") == 0
    assert finding.statement == "db_session.get(TI, ti_id)"


def messages(tmp_path: Path, files: dict[str, str], checked: str) -> dict[int, str]:
    """The LCK003 messages of one file of a small project, by line."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'm'\n", encoding="utf-8")
    package = tmp_path / "app"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    for name, text in files.items():
        (package / name).write_text(text, encoding="utf-8")
    project = make_project(tmp_path, Config())
    result = check_path(package / checked, f"app/{checked}", project)
    assert result.errors == []
    return {f.line: f.message for f in result.findings if f.code == "LCK003"}


HELPERS = """\
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import select, update

db = SQLAlchemy()


def create_log(entry):
    db.session.add(entry)
    db.session.commit()


def write(session, entry):
    session.add(entry)
    session.flush()


def get_query(query_id):
    return db.session.query(Query).filter_by(id=query_id).one()


def lock_row(session, job_id):
    return session.execute(select(Job).where(Job.id == job_id).with_for_update()).one()


def purge(session, before):
    return session.query(Log).filter(Log.end < before).delete(synchronize_session="fetch")
"""


def test_the_fix_is_a_rollback_where_nothing_older_is_lost(tmp_path: Path) -> None:
    found = messages(
        tmp_path,
        {
            "models.py": "",
            "job.py": (
                "from sqlalchemy import text\n"
                "from sqlalchemy.orm import Session\n\n\n"
                "def run(engine, job_id):\n"
                "    with Session(engine) as session:\n"
                "        try:\n"
                "            session.execute(text('UPDATE job SET state = 1'))\n"
                "        except Exception:\n"
                "            session.execute(text('UPDATE job SET state = 2'))\n"
            ),
        },
        "job.py",
    )
    assert list(found) == [10]
    assert found[10].endswith("its write never lands; call session.rollback() first or use a fresh session")


def test_outcome_is_a_lost_write_only_for_calls_that_write(tmp_path: Path) -> None:
    found = messages(
        tmp_path,
        {
            "helpers.py": HELPERS,
            "handlers.py": (
                "from sqlalchemy import select, text\n"
                "from sqlalchemy.orm import Session\n"
                "from app.helpers import create_log, db, get_query, lock_row, purge, write\n\n\n"
                "def read_helper(query_id):\n"
                "    try:\n"
                "        create_log(query_id)\n"
                "    except Exception:\n"
                "        return get_query(query_id)\n\n\n"
                "def write_helper(session: Session, entry):\n"
                "    try:\n"
                "        session.execute(text('UPDATE job SET state = 1'))\n"
                "    except Exception:\n"
                "        write(session, entry)\n\n\n"
                "def locking_read(session: Session, job_id):\n"
                "    try:\n"
                "        session.execute(text('UPDATE job SET state = 1'))\n"
                "    except Exception:\n"
                "        session.get(Job, job_id, with_for_update=True)\n\n\n"
                "def locking_read_helper(session: Session, job_id):\n"
                "    try:\n"
                "        session.execute(text('UPDATE job SET state = 1'))\n"
                "    except Exception:\n"
                "        lock_row(session, job_id)\n\n\n"
                "def legacy_query_delete_helper(session: Session, before):\n"
                "    try:\n"
                "        session.execute(text('UPDATE job SET state = 1'))\n"
                "    except Exception:\n"
                "        purge(session, before)\n"
            ),
        },
        "handlers.py",
    )
    assert sorted(found) == [10, 17, 24, 31, 38]
    # The helper adds then commits: that is work (its commit can fail), named as the error source.
    assert "from `create_log(...)` (line 8)" in found[10]
    assert "runs `get_query(...)` on the aborted transaction: it fails;" in found[10]
    assert "runs `write(..., session)` on the aborted transaction: its write never lands;" in found[17]
    assert "on the aborted transaction: it fails;" in found[24]
    assert "runs `lock_row(..., session)` on the aborted transaction: it fails;" in found[31]
    assert "runs `purge(..., session)` on the aborted transaction: its write never lands;" in found[38]


def test_the_error_source_is_the_write_and_connection_is_no_reuse(tmp_path: Path) -> None:
    found = messages(
        tmp_path,
        {
            "batch.py": (
                "from sqlalchemy import insert, select, text\n"
                "from sqlalchemy.orm import Session\n\n\n"
                "def create_all(session: Session, items):\n"
                "    for item in items:\n"
                "        try:\n"
                "            session.scalar(select(Deployment).where(Deployment.id == item))\n"
                "            session.execute(insert(FlowRun).values(id=item))\n"
                "        except Exception:\n"
                "            print('failed', item)\n"
                "        finally:\n"
                "            connection = session.connection()\n"
                "            if connection.invalidated:\n"
                "                session.rollback()\n"
                "                raise RuntimeError()\n"
            ),
        },
        "batch.py",
    )
    # Not `session.connection()` (line 13): it sends no SQL; the next iteration's read fails.
    assert list(found) == [8]
    assert "swallows a database error from `session.execute(...)` (line 9)" in found[8]
    assert "`session.scalar(...)` in the loop's next iteration" in found[8]
    assert "it fails;" in found[8]


def test_a_re_exported_session_is_the_session_its_module_binds(tmp_path: Path) -> None:
    """Superset imports ``db`` from ``superset`` in some modules and from ``superset.extensions``
    in others; ``superset/__init__.py`` only re-exports it: both name one session."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'm'\n", encoding="utf-8")
    package = tmp_path / "app"
    (package / "extensions").mkdir(parents=True)
    (package / "__init__.py").write_text("from app.extensions import db  # noqa: F401\n", encoding="utf-8")
    (package / "extensions" / "__init__.py").write_text(
        "from flask_sqlalchemy import SQLAlchemy\n\ndb = SQLAlchemy()\n", encoding="utf-8"
    )
    (package / "dao.py").write_text(
        "from app.extensions import db\n\n\n"
        "def stop(query_id):\n"
        "    query = db.session.query(Query).filter_by(id=query_id).one()\n"
        "    query.status = 'stopped'\n"
        "    db.session.commit()\n",
        encoding="utf-8",
    )
    (package / "api.py").write_text(
        "import backoff\n\n"
        "from app import db\n"
        "from app.dao import stop\n\n\n"
        "@backoff.on_exception(backoff.constant, Exception, on_backoff=lambda d: db.session.rollback())\n"
        "def stop_with_rollback(query_id):\n"
        "    stop(query_id)\n\n\n"
        "@backoff.on_exception(backoff.constant, Exception, on_giveup=lambda d: db.session.rollback())\n"
        "def stop_without(query_id):\n"
        "    stop(query_id)\n\n\n"
        "def handler(query_id):\n"
        "    try:\n"
        "        stop(query_id)\n"
        "    except Exception:\n"
        "        db.session.query(Query).filter_by(id=query_id).one()\n",
        encoding="utf-8",
    )
    project = make_project(tmp_path, Config())
    result = check_path(package / "api.py", "app/api.py", project)
    assert result.errors == []
    assert [(f.line, f.code) for f in result.findings] == [(12, "LCK003"), (21, "LCK003")]
    assert "rollback() first" in result.findings[1].message
