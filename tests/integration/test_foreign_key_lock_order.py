"""LCK005's oracle for a lock the database takes on its own: an INSERT's foreign-key check locks
the parent row (PostgreSQL ``FOR KEY SHARE``, InnoDB a shared lock). The mapped-task expansion
(``dag_run_foreign_key_3_2_1.expand_mapped_task``) writes the unmapped task instance, then inserts
the mapped ones, whose foreign key points at the ``dag_run`` row; the scheduler
(``dag_run_lock_order_3_2_1.schedule_dag_run``) holds that row ``FOR UPDATE`` and then writes the
same task instance. Stepped so that each holds its first lock when the other asks for it, they
deadlock on every attempt on PostgreSQL; the fixed expansion (``dag_run_lock_order_fixed``) locks
the parent row first, the scheduler's order, and never does.

On MariaDB the 3.2.1 pair does not deadlock either, and this test holds that fact: InnoDB's
foreign-key check takes its shared lock on the parent's record in the index the key references
(``dag_run``'s unique (dag_id, run_id)), while the scheduler's ``FOR UPDATE`` by primary key locks
only the clustered record, so the INSERT never waits for it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Connection

from tests.fixtures.airflow import (
    dag_run_foreign_key_3_2_1,
    dag_run_lock_order_3_2_1,
    dag_run_lock_order_fixed,
)
from tests.fixtures.airflow.models import State, TaskInstance
from tests.integration.airflow_rows import SeededRun, seed_run
from tests.integration.databases import Database
from tests.integration.orchestration import Attempt, Party, _run_parties, wait_for, wait_until
from tests.integration.reporting import either_party_deadlocked, record_attempts

ATTEMPTS = 20
MAPPED = 3  # task instances the expansion inserts


def pause_before(connection: Connection, prefix: str, pause: Callable[[], None]) -> None:
    """Call ``pause`` once, just before the first statement starting with ``prefix`` on ``connection``."""
    paused = False

    def before_cursor_execute(*args: Any) -> None:
        nonlocal paused
        statement: str = args[2]
        if not paused and statement.lstrip().upper().startswith(prefix):
            paused = True
            pause()

    event.listen(connection, "before_cursor_execute", before_cursor_execute)


def scheduler_against_expansion(database: Database, seeded: SeededRun, fixed: bool) -> Attempt:
    """The expansion writes the task instance and stops before its INSERT; the scheduler locks
    the dag run and stops before its task-instance write; the expansion inserts (it waits, or goes
    on if it already holds the run); then the scheduler writes."""
    target = seeded.task_instance_ids[0]
    expansion_ready, scheduler_holds_run = threading.Event(), threading.Event()

    def scheduler_work(me: Party, expansion: Party) -> None:
        wait_for(expansion_ready, "the expansion wrote its task instance")

        def before_write() -> None:
            scheduler_holds_run.set()
            wait_until(expansion.blocked_or_past, "the expansion waits for the dag run or is done")

        pause_before(me.connection, "UPDATE TASK_INSTANCE", before_write)
        dag_run_lock_order_3_2_1.schedule_dag_run(seeded.dag_run.id, [target], me.session)

    def expansion_work(me: Party, scheduler: Party) -> None:
        ti = me.session.execute(select(TaskInstance).where(TaskInstance.id == target)).scalar_one()
        names = (ti.dag_id, ti.run_id, ti.task_id)

        def before_insert() -> None:
            expansion_ready.set()
            wait_until(
                lambda: scheduler_holds_run.is_set() or scheduler.blocked_or_past(),
                "the scheduler holds the dag run, or waits for it",
            )

        pause_before(me.connection, "INSERT INTO TASK_INSTANCE", before_insert)
        if fixed:
            dag_run_lock_order_fixed.expand_mapped_task(seeded.dag_run.id, target, *names, MAPPED, me.session)
        else:
            dag_run_foreign_key_3_2_1.expand_mapped_task(target, *names, MAPPED, me.session)
        me.past_contested_statement.set()

    return _run_parties(database, scheduler_work, expansion_work)


@pytest.mark.parametrize("fixed", [False, True], ids=["3.2.1", "fixed"])
def test_foreign_key_parent_lock_against_the_scheduler(
    database: Database, request: pytest.FixtureRequest, fixed: bool
) -> None:
    expected = ATTEMPTS if database.is_postgresql and not fixed else 0
    attempts = [
        scheduler_against_expansion(database, seed_run(database, [State.RUNNING]), fixed)
        for _ in range(ATTEMPTS)
    ]
    deadlocked = [either_party_deadlocked(database, attempt) for attempt in attempts]
    label = "fixed expansion (parent row first)" if fixed else "3.2.1 expansion (FK check on dag_run)"
    record_attempts(request, database, f"{label} vs scheduler", attempts, deadlocked)
    described = "\n".join(
        f"attempt {n}: expansion={a.api_error!r:.160} scheduler={a.scheduler_error!r:.160}"
        for n, a in enumerate(attempts)
    )
    assert sum(deadlocked) == expected, described
    if fixed:
        assert all(a.api_error is None and a.scheduler_error is None for a in attempts), described
