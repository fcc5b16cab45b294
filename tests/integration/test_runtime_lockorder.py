"""``pytest --lockorder`` over the Airflow #66734 fixtures on real PostgreSQL and MariaDB: a test
session that runs the scheduler's pass and the execution API's request one after another (no
threads, no race) reports the cycle between them for the 3.2.1 forms, with where each transaction
took each lock, and nothing for the fixed scheduler; and on PostgreSQL the 3.2.1 request handler's
reuse of the session a lock timeout aborted (LCK003) is seen at run time."""

from __future__ import annotations

import pytest

from tests.integration.databases import DIALECTS
from tests.integration.inner_runs import run_inner

pytest_plugins = ["pytester"]

INNER = """
import os

import pytest
from sqlalchemy import select

from tests.fixtures.airflow import scheduler_3_2_1, scheduler_fixed, ti_update_state_3_2_1
from tests.fixtures.airflow.models import DagRun, State
from tests.integration.airflow_rows import seed_run
from tests.integration.inner_runs import database

SCHEDULER = scheduler_3_2_1 if os.environ["LOCKORDER_INNER_FORM"] == "3.2.1" else scheduler_fixed


def test_scheduler_pass(database):
    seeded = seed_run(database, [State.RUNNING] * 3)
    with database.sessions("scheduler").begin() as session:
        # the scheduler examines its runs under a row lock (Airflow: with_row_locks, skip_locked)
        session.scalars(
            select(DagRun).where(DagRun.id == seeded.dag_run.id).with_for_update(skip_locked=True)
        ).one()
        SCHEDULER._verify_integrity_if_dag_changed(seeded.dag_run, seeded.latest_dag_version_id, session)


def test_api_request_whose_second_lock_times_out(database):
    # another transaction holds the run's row, so the request's second lock (session.get with its
    # joined dag_run) fails on the lock timeout, and its handler goes on with the aborted session
    seeded = seed_run(database, [State.RUNNING] * 3)
    with database.engine("observer").connect() as holder:
        holder.begin()
        holder.execute(select(DagRun.id).where(DagRun.id == seeded.dag_run.id).with_for_update())
        try:
            with database.sessions("api").begin() as session:
                ti_update_state_3_2_1.ti_update_state(seeded.task_instance_ids[1], State.SUCCESS, session)
        except Exception:
            pass
        holder.rollback()


def test_api_request(database):
    seeded = seed_run(database, [State.RUNNING] * 3)
    with database.sessions("api").begin() as session:
        ti_update_state_3_2_1.ti_update_state(seeded.task_instance_ids[0], State.SUCCESS, session)
"""


def _run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, dialect: str, form: str
) -> pytest.RunResult:
    monkeypatch.setenv("LOCKORDER_INNER_FORM", form)
    result = run_inner(
        pytester, monkeypatch, dialect, "test_airflow_transactions", INNER, "--lockorder-strict"
    )
    result.assert_outcomes(passed=3)
    return result


@pytest.mark.parametrize("dialect", DIALECTS)
def test_3_2_1_scheduler_and_request_form_a_cycle_with_both_stacks(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, dialect: str
) -> None:
    result = _run(pytester, monkeypatch, dialect, "3.2.1")
    assert result.ret == 1, result.stdout.str()  # --lockorder-strict: a cycle fails the session
    result.stdout.fnmatch_lines(
        [
            "LCK005 lock-order cycle between dag_run and task_instance:",
            "  transaction *: FOR UPDATE on dag_run at *test_airflow_transactions.py:* test_scheduler_pass",
            "      then FOR NO KEY UPDATE on task_instance at *scheduler_3_2_1.py:* "
            "_verify_integrity_if_dag_changed",
            "  transaction *: FOR UPDATE on task_instance at *ti_update_state_3_2_1.py:* ti_update_state",
            "      then FOR UPDATE on dag_run at *ti_update_state_3_2_1.py:* "
            "_create_ti_state_update_query_and_update_state",
        ]
    )
    reuse = (
        "LCK003 *ti_update_state_3_2_1.py:* ti_update_state: statement run on a transaction that "
        "* at *ti_update_state_3_2_1.py:* _create_ti_state_update_query_and_update_state "
        "aborted, before rollback()*"
    )
    if dialect == "postgresql":
        # the 3.2.1 handler's reuse of the session the lock timeout aborted, seen happening
        result.stdout.fnmatch_lines([reuse])
    else:
        # InnoDB's lock wait timeout (1205) undoes the statement only: the transaction goes on
        result.stdout.no_fnmatch_line(reuse)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_fixed_scheduler_forms_no_cycle(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, dialect: str
) -> None:
    result = _run(pytester, monkeypatch, dialect, "fixed")
    assert result.ret == 0, result.stdout.str()
    assert "no lock-order cycle between the transactions recorded" in result.stdout.str()
