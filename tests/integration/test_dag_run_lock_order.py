"""LCK005's oracle: the dag_run / task_instance inversion its fixtures report deadlocks on real
PostgreSQL and MariaDB on every attempt, and the fixed form never does. The scheduler
(``dag_run_lock_order_3_2_1.schedule_dag_run``) locks the run's ``dag_run`` row and is stopped just
before it writes the task instance; the PATCH (``ti_patch``) then locks the task instance with the
eager-joined ``dag_run`` under the same ``FOR UPDATE``; once the PATCH waits, the scheduler writes.
The lock-order story is in ``rules/LCK005.md``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from tests.fixtures.airflow import dag_run_lock_order_3_2_1, dag_run_lock_order_fixed
from tests.fixtures.airflow.models import State
from tests.integration.airflow_rows import SeededRun, seed_run
from tests.integration.databases import Database
from tests.integration.orchestration import Attempt, Party, _run_parties, wait_for, wait_until
from tests.integration.reporting import either_party_deadlocked, record_attempts

ATTEMPTS = 20


def pause_before_task_instance_write(connection: Connection, pause: Callable[[], None]) -> None:
    """Call ``pause`` once, just before the first UPDATE of ``task_instance`` sent on ``connection``."""
    paused = False

    def before_cursor_execute(*args: Any) -> None:
        nonlocal paused
        statement: str = args[2]
        if not paused and statement.lstrip().upper().startswith("UPDATE TASK_INSTANCE"):
            paused = True
            pause()

    event.listen(connection, "before_cursor_execute", before_cursor_execute)


def scheduler_against_patch(
    database: Database, seeded: SeededRun, patch: Callable[[str, str, Session], None]
) -> Attempt:
    """The scheduler holds the dag run and is about to write the task instance; the PATCH runs until
    it waits (or is done); then the scheduler writes."""
    target = seeded.task_instance_ids[0]
    scheduler_holds_run = threading.Event()

    def scheduler_work(me: Party, api: Party) -> None:
        def before_write() -> None:
            scheduler_holds_run.set()
            wait_until(api.blocked_or_past, "the PATCH waits for the dag run or is done")

        pause_before_task_instance_write(me.connection, before_write)
        dag_run_lock_order_3_2_1.schedule_dag_run(seeded.dag_run.id, [target], me.session)

    def api_work(me: Party, scheduler: Party) -> None:
        wait_for(scheduler_holds_run, "the scheduler holds the dag run")
        patch(target, State.SUCCESS, me.session)
        me.past_contested_statement.set()
        me.session.commit()

    return _run_parties(database, scheduler_work, api_work)


def _describe(attempts: list[Attempt]) -> str:
    return "\n".join(
        f"attempt {n}: api={a.api_error!r:.160} scheduler={a.scheduler_error!r:.160}"
        for n, a in enumerate(attempts)
    )


def test_reported_inversion_deadlocks_on_every_attempt(
    database: Database, request: pytest.FixtureRequest
) -> None:
    attempts = [
        scheduler_against_patch(
            database, seed_run(database, [State.RUNNING]), dag_run_lock_order_3_2_1.ti_patch
        )
        for _ in range(ATTEMPTS)
    ]
    record_attempts(request, database, "LCK005 dag_run/task_instance inversion", attempts)
    assert all(either_party_deadlocked(database, a) for a in attempts), _describe(attempts)
    # one victim per attempt; the other transaction goes on and commits
    assert all((a.api_error is None) != (a.scheduler_error is None) for a in attempts), _describe(attempts)


def test_fixed_patch_never_deadlocks(database: Database, request: pytest.FixtureRequest) -> None:
    attempts = [
        scheduler_against_patch(
            database, seed_run(database, [State.RUNNING]), dag_run_lock_order_fixed.ti_patch
        )
        for _ in range(ATTEMPTS)
    ]
    record_attempts(request, database, "LCK005 fixed PATCH (lazyload, no join)", attempts)
    assert all(a.api_error is None and a.scheduler_error is None for a in attempts), _describe(attempts)
