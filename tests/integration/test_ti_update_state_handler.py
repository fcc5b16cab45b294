"""The ``ti_update_state`` fixtures against real databases, in the #66734 interleaving: the request
holds its task instance, the scheduler holds the run's ``dag_run`` row and its bulk UPDATE waits for
the task instance, and the request's ``session.get(TI, id, with_for_update=True)``, which also locks
``dag_run`` through the joined relationship, closes the cycle and is the victim. What happens next
depends on the handler: the lint side is LCK003 (``rules/LCK003.md``), the fixtures are
``tests/fixtures/airflow/ti_update_state_*.py``."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from psycopg.errors import InFailedSqlTransaction
from sqlalchemy.exc import InternalError, OperationalError, PendingRollbackError
from sqlalchemy.orm import Session

from tests.fixtures.airflow import (
    scheduler_3_2_1,
    ti_update_state_3_2_1,
    ti_update_state_fresh_session,
    ti_update_state_rollback,
)
from tests.fixtures.airflow.models import State
from tests.integration.airflow_rows import TaskInstanceRow, read_task_instances, seed_run
from tests.integration.databases import Database
from tests.integration.lock_order import bulk_update_lock_order, recorded_update
from tests.integration.orchestration import Attempt, request_against_bulk_update
from tests.integration.reporting import record_attempts

TASKS_PER_RUN = 4
ATTEMPTS = 5
HANDLER_MESSAGE = "Error updating Task Instance state. Setting the task to failed."


@dataclass(frozen=True)
class HandlerOutcome:
    """How the request ended, what the handler logged it caught, and the row afterwards."""

    attempt: Attempt
    caught: BaseException | None
    row: TaskInstanceRow
    latest_dag_version_id: str


def _run_request(
    database: Database,
    caplog: pytest.LogCaptureFixture,
    request_form: Callable[[str, Session], None],
) -> HandlerOutcome:
    seeded = seed_run(database, [State.RUNNING] * TASKS_PER_RUN)
    statement = recorded_update(
        scheduler_3_2_1._verify_integrity_if_dag_changed, seeded.dag_run, seeded.latest_dag_version_id
    )
    target = bulk_update_lock_order(database, statement, pinned_index="ti_dag_run").ids[-1]
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="tests.fixtures.airflow"):
        attempt = request_against_bulk_update(
            database,
            seeded,
            target,
            scheduler_3_2_1._verify_integrity_if_dag_changed,
            functools.partial(request_form, target),
        )
    caught = [r for r in caplog.records if r.getMessage() == HANDLER_MESSAGE]
    assert len(caught) == 1, "the handler did not run"
    assert caught[0].exc_info is not None
    row = read_task_instances(database, [target])[target]
    return HandlerOutcome(attempt, caught[0].exc_info[1], row, seeded.latest_dag_version_id)


def _run_requests(
    database: Database,
    caplog: pytest.LogCaptureFixture,
    request_form: Callable[[str, Session], None],
) -> list[HandlerOutcome]:
    return [_run_request(database, caplog, request_form) for _ in range(ATTEMPTS)]


def _record(
    request: pytest.FixtureRequest, database: Database, label: str, outcomes: list[HandlerOutcome]
) -> None:
    record_attempts(
        request,
        database,
        label,
        [outcome.attempt for outcome in outcomes],
        [outcome.caught is not None and database.is_deadlock(outcome.caught) for outcome in outcomes],
    )


def _handler_deadlocked(database: Database, outcome: HandlerOutcome) -> None:
    assert isinstance(outcome.caught, OperationalError)
    assert database.is_deadlock(outcome.caught), outcome.caught
    assert outcome.attempt.scheduler_error is None, outcome.attempt.scheduler_error


def test_3_2_1_handler_loses_the_failed_write_on_postgresql_and_earlier_work_on_mariadb(
    database: Database, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> None:
    outcomes = _run_requests(
        database,
        caplog,
        lambda ti_id, session: ti_update_state_3_2_1.ti_update_state(ti_id, State.SUCCESS, session),
    )
    _record(request, database, "3.2.1 handler after deadlock", outcomes)
    for outcome in outcomes:
        _assert_3_2_1_outcome(database, outcome)


def _assert_3_2_1_outcome(database: Database, outcome: HandlerOutcome) -> None:
    _handler_deadlocked(database, outcome)
    # Either way the request's earlier write is gone and the scheduler's UPDATE got through.
    assert not outcome.row.heartbeat_recorded
    assert outcome.row.dag_version_id == outcome.latest_dag_version_id
    error = outcome.attempt.api_error
    if database.is_postgresql:
        # The handler's own session.get fails on the aborted transaction: "failed" never lands.
        assert isinstance(error, (InternalError, PendingRollbackError)), error
        if isinstance(error, InternalError):
            assert isinstance(error.orig, InFailedSqlTransaction), error
        assert database.caused_by_deadlock(error)
        assert outcome.row.state == State.RUNNING
    else:
        # InnoDB already rolled the transaction back: the handler's statements run in a new implicit
        # transaction, the request "succeeds", and the work it did before the deadlock is silently gone.
        assert error is None, error
        assert outcome.row.state == State.FAILED


def test_rollback_first_handler_lands_the_failed_write(
    database: Database, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> None:
    outcomes = _run_requests(
        database,
        caplog,
        lambda ti_id, session: ti_update_state_rollback.ti_update_state(ti_id, State.SUCCESS, session),
    )
    _record(request, database, "rollback-first handler", outcomes)
    for outcome in outcomes:
        _handler_deadlocked(database, outcome)
        assert outcome.attempt.api_error is None, outcome.attempt.api_error
        assert outcome.row.state == State.FAILED
        assert not outcome.row.heartbeat_recorded  # rolled back on purpose, not silently


def test_fresh_session_handler_lands_the_failed_write_and_reraises(
    database: Database, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> None:
    factory = database.sessions("api")
    outcomes = _run_requests(
        database,
        caplog,
        lambda ti_id, session: ti_update_state_fresh_session.ti_update_state(
            ti_id, State.SUCCESS, session, factory
        ),
    )
    _record(request, database, "fresh-session handler", outcomes)
    for outcome in outcomes:
        _handler_deadlocked(database, outcome)
        assert outcome.attempt.api_error is outcome.caught
        assert outcome.row.state == State.FAILED
