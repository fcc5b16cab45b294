"""``pytest --lockorder`` judges each executed statement as LCK001, LCK002 and LCK004 do, with the
keys of the application's MetaData, on real PostgreSQL and MariaDB: a locking read by a non-key
column, in no key order, that an eager ``lazy="joined"`` relationship also makes lock the joined
``dag_run`` rows; a bulk UPDATE by a non-key column; and the fixed form, whose rows are first locked
in key order. With no ``hot-tables`` setting, ``task_instance`` is contended because a test
row-locked it."""

from __future__ import annotations

import json

import pytest

from tests.integration.databases import DIALECTS
from tests.integration.inner_runs import run_inner

pytest_plugins = ["pytester"]

INNER = """
from sqlalchemy import select, update

from tests.fixtures.airflow.models import State, TaskInstance
from tests.integration.airflow_rows import seed_run
from tests.integration.inner_runs import database

NO_SYNC = {"synchronize_session": False}


def test_lock_the_running_instances(database):
    seed_run(database, [State.RUNNING] * 2)
    with database.sessions("scheduler").begin() as session:
        query = select(TaskInstance).where(TaskInstance.state == State.RUNNING).with_for_update()
        session.scalars(query).unique().all()


def test_bulk_update(database):
    seed_run(database, [State.RUNNING] * 2)
    with database.sessions("api").begin() as session:
        fail = update(TaskInstance).where(TaskInstance.state == State.RUNNING).values(state=State.FAILED)
        session.execute(fail, execution_options=NO_SYNC)


def test_lock_in_key_order_then_update(database):
    seed_run(database, [State.RUNNING] * 2)
    with database.sessions("scheduler").begin() as session:
        ids = select(TaskInstance.id).where(TaskInstance.state == State.RUNNING).order_by(TaskInstance.id)
        session.execute(ids.with_for_update(skip_locked=True)).all()
        done = update(TaskInstance).where(TaskInstance.state == State.RUNNING).values(state=State.SUCCESS)
        session.execute(done, execution_options=NO_SYNC)
"""


@pytest.mark.parametrize("dialect", DIALECTS)
def test_statements_are_judged_with_the_metadata_keys(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, dialect: str
) -> None:
    report = pytester.path / "lockorder.json"
    result = run_inner(
        pytester, monkeypatch, dialect, "test_statements", INNER, f"--lockorder-report={report}"
    )
    result.assert_outcomes(passed=3)
    found = [(f["code"], f["line"], f["table"]) for f in json.loads(report.read_text(encoding="utf-8"))]
    assert found == [
        ("LCK002", 14, "task_instance"),
        ("LCK004", 14, "task_instance"),
        ("LCK001", 21, "task_instance"),
    ]
    # InnoDB locks as it scans: ORDER BY would not help there, and MariaDB has no OF
    fix = "add skip_locked=True / nowait=True" if dialect == "mysql" else "add ORDER BY id"
    joined = "*: MariaDB has no OF*" if dialect == "mysql" else "use .with_for_update(of=*"
    result.stdout.fnmatch_lines(
        [
            f"LCK002 test_statements.py:14 test_lock_the_running_instances: FOR UPDATE on task_instance "
            f"locks rows through state (index ti_state) in no fixed order; {fix}*",
            "LCK004 test_statements.py:14 test_lock_the_running_instances: FOR UPDATE on task_instance "
            f"also locks the joined rows of dag_run (explicit join); {joined}",
            "LCK001 test_statements.py:21 test_bulk_update: bulk UPDATE of task_instance locks rows "
            "through state*, not in id order*",
        ]
    )
