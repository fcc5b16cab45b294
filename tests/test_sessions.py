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
