"""The scheduler fixtures against real databases: the 3.2.1 bulk UPDATE deadlocks with an execution-API
transaction that locks by primary key on every attempt; the ordered-batch fix never does, and loses no
update. The lock-order story is in ``rules/LCK001.md``; the fixtures' lint findings in
``tests/fixtures/airflow/scheduler_*.py``."""

from __future__ import annotations

import functools

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from tests.fixtures.airflow import scheduler_3_2_1, scheduler_fixed, ti_update_state_3_2_1
from tests.fixtures.airflow.models import State
from tests.integration.airflow_rows import SeededRun, read_task_instances, seed_run
from tests.integration.databases import Database
from tests.integration.lock_order import LockOrder, bulk_update_lock_order, recorded_update
from tests.integration.orchestration import (
    Attempt,
    pk_locks_against_scheduler_pass,
    request_against_bulk_update,
)
from tests.integration.reporting import record_attempts

ATTEMPTS = 20
TASKS_PER_RUN = 4


def _seed_and_read_lock_order(database: Database) -> tuple[SeededRun, LockOrder]:
    seeded = seed_run(database, [State.RUNNING] * TASKS_PER_RUN)
    statement = recorded_update(
        scheduler_3_2_1._verify_integrity_if_dag_changed, seeded.dag_run, seeded.latest_dag_version_id
    )
    order = bulk_update_lock_order(database, statement, pinned_index="ti_dag_run")
    assert order.index == "ti_dag_run", order.plan
    assert sorted(order.ids) == sorted(seeded.task_instance_ids)
    return seeded, order


def _describe(attempts: list[Attempt]) -> str:
    return "\n".join(
        f"attempt {n}: api={a.api_error!r:.120} scheduler={a.scheduler_error!r:.120}"
        for n, a in enumerate(attempts)
    )


def test_3_2_1_bulk_update_deadlocks_with_primary_key_locks_on_every_attempt(
    database: Database, request: pytest.FixtureRequest
) -> None:
    attempts: list[Attempt] = []
    for _ in range(ATTEMPTS):
        seeded, order = _seed_and_read_lock_order(database)
        attempts.append(
            pk_locks_against_scheduler_pass(
                database,
                order.ids,
                functools.partial(
                    scheduler_3_2_1._verify_integrity_if_dag_changed,
                    seeded.dag_run,
                    seeded.latest_dag_version_id,
                ),
            )
        )
        rows = read_task_instances(database, seeded.task_instance_ids)
        assert all(row.dag_version_id == seeded.latest_dag_version_id for row in rows.values())

    record_attempts(request, database, "3.2.1 bulk UPDATE vs PK locks", attempts)
    assert all(a.scheduler_error is None for a in attempts), _describe(attempts)
    assert all(isinstance(a.api_error, OperationalError) for a in attempts), _describe(attempts)
    assert all(database.is_deadlock(a.api_error) for a in attempts if a.api_error), _describe(attempts)


def test_postgresql_locks_in_physical_order_and_mariadb_in_index_order(database: Database) -> None:
    seeded, order = _seed_and_read_lock_order(database)
    inserted = list(seeded.task_instance_ids)  # descending ids, so physical order is not id order
    if database.is_postgresql:
        assert list(order.ids) == inserted
    else:
        assert list(order.ids) == sorted(inserted)


def test_ordered_batches_never_deadlock_and_lose_no_update(
    database: Database, request: pytest.FixtureRequest
) -> None:
    attempts: list[Attempt] = []
    for _ in range(ATTEMPTS):
        seeded, order = _seed_and_read_lock_order(database)
        attempt = pk_locks_against_scheduler_pass(
            database,
            order.ids,
            functools.partial(
                scheduler_fixed._verify_integrity_if_dag_changed, seeded.dag_run, seeded.latest_dag_version_id
            ),
            after_commit=functools.partial(
                scheduler_fixed.verify_integrity_until_current,
                database.sessions("scheduler"),
                seeded.dag_run,
                seeded.latest_dag_version_id,
            ),
        )
        attempts.append(attempt)
        assert attempt.api_error is None and attempt.scheduler_error is None, _describe([attempt])

        first_pass, later_passes = attempt.scheduler_result
        assert first_pass == TASKS_PER_RUN - 1, "the row the API held was not skipped"
        assert sum(later_passes) == 1, f"the skipped row was not picked up later: {later_passes}"
        rows = read_task_instances(database, seeded.task_instance_ids)
        assert all(row.dag_version_id == seeded.latest_dag_version_id for row in rows.values())
        assert rows[order.ids[0]].heartbeat_recorded and rows[order.ids[-1]].heartbeat_recorded

    record_attempts(request, database, "ordered batches vs PK locks", attempts)


def test_ordered_batches_never_deadlock_with_the_3_2_1_request(
    database: Database, request: pytest.FixtureRequest
) -> None:
    """The #66734 interleaving itself (the scheduler holds the run's ``dag_run`` row; the request's
    second lock joins it): with the fix the scheduler skips the request's row instead of waiting."""
    attempts: list[Attempt] = []
    for _ in range(ATTEMPTS):
        seeded, order = _seed_and_read_lock_order(database)
        target = order.ids[-1]
        attempt = request_against_bulk_update(
            database,
            seeded,
            target,
            scheduler_fixed._verify_integrity_if_dag_changed,
            functools.partial(_request_3_2_1, target),
        )
        attempts.append(attempt)
        assert attempt.api_error is None and attempt.scheduler_error is None, _describe([attempt])
        rows = read_task_instances(database, seeded.task_instance_ids)
        assert rows[target].state == State.SUCCESS and rows[target].heartbeat_recorded
        others = [row for ti_id, row in rows.items() if ti_id != target]
        assert all(row.dag_version_id == seeded.latest_dag_version_id for row in others)

    record_attempts(request, database, "ordered batches vs the 3.2.1 request", attempts)


def _request_3_2_1(task_instance_id: str, session: Session) -> None:
    ti_update_state_3_2_1.ti_update_state(task_instance_id, State.SUCCESS, session)
