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
    assert "db_session.rollback() first or use a fresh session" in finding.message
    # One sentence that fits a terminal line or two; the story is in `lockorder-lint explain LCK003`.
    assert len(finding.message) <= 240 and finding.message.count(". ") == 0
    assert finding.statement == "db_session.get(TI, ti_id)"


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
