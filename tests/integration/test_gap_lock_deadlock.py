"""LCK008 on real databases: MLflow 1.25.1's latest-metric write (``FOR UPDATE`` by key, then a
merge) run by two clients logging two new metric keys of one run. On MariaDB (REPEATABLE READ) each
locking read of an absent key takes the same gap lock, and each INSERT then waits for the other's:
a deadlock on every attempt. PostgreSQL has no gap locks, so the same code never deadlocks there,
which is why LCK008 is a MySQL/MariaDB rule. The 1.26.0 form reads which keys exist first and
locks only those: no gap lock, no deadlock, no error."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.orm import Session

from tests.fixtures.mlflow.latest_metric_1_25_1 import SqlAlchemyStore as Store1251
from tests.fixtures.mlflow.latest_metrics_1_26_0 import SqlAlchemyStore as Store1260
from tests.fixtures.mlflow.models import Base as MlflowBase
from tests.integration.databases import Database
from tests.integration.key_order import write_in_orders
from tests.integration.orchestration import Attempt
from tests.integration.reporting import either_party_deadlocked, record_attempts

ATTEMPTS = 20
MARKER = "INSERT INTO latest_metrics"
# Metric keys that sort after every row an earlier attempt left: the two keys of an attempt are
# then absent and share one gap (before the index's end), as two new keys of one run often do.
_ATTEMPT_NUMBERS = itertools.count(1)


@pytest.fixture(scope="module")
def mlflow_tables(database: Database) -> Iterator[Database]:
    MlflowBase.metadata.create_all(database.engine("scheduler"))
    yield database


@dataclass(frozen=True)
class Metric:
    """What the store reads of MLflow's Metric entity."""

    run_uuid: str
    key: str
    value: float = 1.0
    timestamp: int = 0
    step: int = 0


def _log_1_25_1(metric: Metric) -> Callable[[Session], Any]:
    return lambda session: Store1251._update_latest_metric_if_necessary(metric, session)


def _log_1_26_0(metric: Metric) -> Callable[[Session], Any]:
    return lambda session: Store1260()._update_latest_metrics_if_necessary([metric], session)


def _attempts(database: Database, form: Callable[[Metric], Callable[[Session], Any]]) -> list[Attempt]:
    attempts = []
    for _ in range(ATTEMPTS):
        run, number = uuid.uuid4().hex, next(_ATTEMPT_NUMBERS)
        # Two new keys of one run, next to each other in the key's index: one gap.
        first, second = Metric(run, f"{number:06d}-loss"), Metric(run, f"{number:06d}-lr")
        attempts.append(write_in_orders(database, MARKER, form(first), form(second), pause_at=1))
    return attempts


def test_lock_then_merge_1_25_1_deadlocks_on_mariadb_only(
    mlflow_tables: Database, request: pytest.FixtureRequest
) -> None:
    attempts = _attempts(mlflow_tables, _log_1_25_1)
    record_attempts(request, mlflow_tables, "MLflow 1.25.1 latest metric, FOR UPDATE then merge", attempts)
    deadlocked = [either_party_deadlocked(mlflow_tables, attempt) for attempt in attempts]
    if mlflow_tables.is_postgresql:
        assert not any(deadlocked)
        assert all(a.api_error is None and a.scheduler_error is None for a in attempts)
    else:
        assert all(deadlocked)


def test_keys_read_first_1_26_0_never_deadlocks(
    mlflow_tables: Database, request: pytest.FixtureRequest
) -> None:
    attempts = _attempts(mlflow_tables, _log_1_26_0)
    record_attempts(
        request, mlflow_tables, "MLflow 1.26.0 latest metrics, existing keys locked only", attempts
    )
    assert all(a.api_error is None and a.scheduler_error is None for a in attempts)
