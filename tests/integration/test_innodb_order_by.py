"""What the databases teach the rules: ``SELECT ... ORDER BY id ... FOR UPDATE`` through a secondary
index locks in id order on PostgreSQL, which sorts before it locks, but not on MariaDB, where InnoDB
locks each row as the index scan reaches it and sorts afterwards. So against a transaction that locks
the same rows by primary key in id order, the statement deadlocks on MariaDB on every attempt and never
on PostgreSQL; with SKIP LOCKED it never waits, so it deadlocks on neither. The lint side is the
``dialects`` setting of LCK001/LCK002 (``tests/fixtures/rules/LCK001_mysql.py``)."""

from __future__ import annotations

import functools
import uuid
from typing import Any

import pytest
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from tests.fixtures.airflow.models import DagRun, State
from tests.fixtures.airflow.models import TaskInstance as TI
from tests.integration.airflow_rows import seed_run
from tests.integration.databases import Database
from tests.integration.lock_order import locking_read_order
from tests.integration.orchestration import Attempt, pk_locks_against_scheduler_pass
from tests.integration.reporting import either_party_deadlocked, record_attempts

ATTEMPTS = 20
BATCH_SIZE = 100
SCANNED_INDEX = "ti_dag_state"


def ordered_locking_read(dag_run: DagRun, *, skip_locked: bool) -> Select[Any]:
    """The fixed scheduler's ordered select, its plan pinned to ``(dag_id, state)`` on MariaDB."""
    return (
        select(TI.id)
        .with_hint(TI, f"FORCE INDEX ({SCANNED_INDEX})", "mysql")
        .where(TI.dag_id == dag_run.dag_id, TI.run_id == dag_run.run_id, TI.state.in_(State.unfinished))
        .order_by(TI.id)
        .limit(BATCH_SIZE)
        .with_for_update(skip_locked=skip_locked)
    )


def _lock_rows(statement: Select[Any], session: Session) -> list[str]:
    return list(session.scalars(statement).all())


def _attempts(database: Database, *, skip_locked: bool) -> list[Attempt]:
    attempts = []
    for _ in range(ATTEMPTS):
        # Two rows whose (dag_id, state) order is the reverse of their id order.
        low, high = sorted(str(uuid.uuid4()) for _ in range(2))
        seeded = seed_run(database, [State.RUNNING, State.QUEUED], ids=[low, high])
        statement = ordered_locking_read(seeded.dag_run, skip_locked=skip_locked)
        order = locking_read_order(database, statement, pinned_index=SCANNED_INDEX)
        if database.is_postgresql:
            assert order.ids == (low, high), "PostgreSQL locks after sorting, in id order"
        else:
            assert order.ids == (high, low), "InnoDB locks in the scan's order, before sorting"
            assert "filesort" in order.plan, order.plan
        # The other transaction locks by primary key in id order, the order ORDER BY id promises:
        # ``low`` first, then ``high``.
        attempts.append(
            pk_locks_against_scheduler_pass(database, (high, low), functools.partial(_lock_rows, statement))
        )
    return attempts


def test_order_by_id_for_update_deadlocks_on_mariadb_only(
    database: Database, request: pytest.FixtureRequest
) -> None:
    attempts = _attempts(database, skip_locked=False)
    record_attempts(request, database, "ORDER BY id FOR UPDATE vs PK locks in id order", attempts)
    deadlocked = [either_party_deadlocked(database, attempt) for attempt in attempts]
    if database.is_postgresql:
        assert not any(deadlocked)
        assert all(a.api_error is None and a.scheduler_error is None for a in attempts)
    else:
        assert all(deadlocked)


def test_order_by_id_for_update_skip_locked_deadlocks_on_neither(
    database: Database, request: pytest.FixtureRequest
) -> None:
    attempts = _attempts(database, skip_locked=True)
    record_attempts(request, database, "ORDER BY id FOR UPDATE SKIP LOCKED vs PK locks in id order", attempts)
    assert all(a.api_error is None and a.scheduler_error is None for a in attempts)
