"""Raw SQL in code, end to end: SQL text that cannot be read is listed as not checked with the
reason, never guessed; sqlglot is imported only for files that hold SQL text; a readable statement
on a table the catalog does not know is listed like any other."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lockorder_lint.runner import check_path
from tests.test_cli import make_sample, run_cli
from tests.test_fixtures import FIXTURES, fixture_config, project_for

RAW = """\
from sqlalchemy import text


def close_by_owner(session, owner):
    session.execute(text("UPDATE account SET status = 'closed' WHERE owner = :o"), {"o": owner})


def close_one(connection, ident):
    connection.exec_driver_sql("UPDATE account SET status = 'closed' WHERE id = %s", (ident,))


def close_in(session, table):
    session.execute(text(f"UPDATE {table} SET status = 'closed' WHERE owner = 'x'"))


def lock_garbled(session):
    session.execute(text("SELECT * FROM account WHERE owner = = 'x' FOR UPDATE"))
"""


def test_unreadable_sql_and_unknown_tables_are_listed_not_guessed() -> None:
    path = FIXTURES / "rules" / "LCK001_raw_sql_ok.py"
    project = project_for(fixture_config(path.read_text(encoding="utf-8")))
    result = check_path(path, str(path), project)
    assert result.findings == []
    assert [(u.line, u.kind, u.target) for u in result.unknown] == [
        (43, "UPDATE", "SQL text (not read: run-time text stands for part of the SQL structure)"),
        (47, "UPDATE", "SQL text (not read: run-time text stands for part of the SQL structure)"),
        (51, "UPDATE", "somebody_elses_table"),
    ]


def test_cli_reports_raw_sql_and_lists_what_it_could_not_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = make_sample(tmp_path / "sample", 'hot-tables = ["account"]\n')
    (sample / "app" / "raw.py").write_text(RAW, encoding="utf-8")
    code, out, err = run_cli(capsys, "--show-unknown", "app/raw.py", cwd=sample)
    assert code == 1
    [line] = out.splitlines()  # one finding: code, place and table exact; the wording is the rule's
    assert line.startswith("app/raw.py:5:21: LCK001 bulk UPDATE of account ")
    assert "through owner (index ix_account_owner)" in line
    listed = [line for line in err.splitlines() if "not checked:" in line]
    assert listed == [
        "app/raw.py:13:21: not checked: UPDATE on SQL text (not read: run-time text stands for part of the "
        "SQL structure)",
        "app/raw.py:17:21: not checked: FOR UPDATE on SQL text "
        "(not read: SQL syntax not understood at line 1, column 37)",
    ]


def _imports_sqlglot(tmp_path: Path, source: str) -> bool:
    sample = make_sample(tmp_path / "sample")
    (sample / "app" / "jobs.py").write_text(source, encoding="utf-8")
    probe = (
        "import sys\n"
        "from lockorder_lint.cli import main\n"
        "code = main(['--no-cache', '-j', '1', 'app/jobs.py'])\n"
        "print('sqlglot' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=sample, capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1] == "True"


def test_sqlglot_is_not_imported_for_a_file_without_sql_text(tmp_path: Path) -> None:
    from tests.test_cli import JOBS

    assert not _imports_sqlglot(tmp_path, JOBS)


def test_sqlglot_is_imported_for_a_file_with_sql_text(tmp_path: Path) -> None:
    assert _imports_sqlglot(tmp_path, RAW)
