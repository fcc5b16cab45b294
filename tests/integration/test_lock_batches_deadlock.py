"""LCK007 on real databases: MLflow 3.15.0's latest-metrics update splits the logged keys into
batches in the client's order and locks each batch ``FOR UPDATE`` ordered by key. Two clients
logging the same two keys in opposite orders (batches of one key, so that two keys make two
batches) deadlock on every attempt, on PostgreSQL and MariaDB; 3.16.0 sorts and de-duplicates the
keys before batching, and never deadlocks."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy.orm import Session

from tests.fixtures.mlflow import latest_metrics_3_15_0, latest_metrics_3_16_0
from tests.fixtures.mlflow.models import Base as MlflowBase
from tests.fixtures.mlflow.models import SqlLatestMetric
from tests.integration.databases import Database
from tests.integration.key_order import write_in_orders
from tests.integration.orchestration import Attempt
from tests.integration.reporting import either_party_deadlocked, record_attempts

ATTEMPTS = 20
KEYS = ("accuracy", "loss")


@pytest.fixture(scope="module")
def mlflow_tables(database: Database) -> Iterator[Database]:
    MlflowBase.metadata.create_all(database.engine("scheduler"))
    yield database


@pytest.fixture
def one_key_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of one key: two keys make two batches, as 501 keys make two of 500."""
    monkeypatch.setattr(latest_metrics_3_15_0, "MAX_BATCH", 1)
    monkeypatch.setattr(latest_metrics_3_16_0, "MAX_BATCH", 1)


@dataclass(frozen=True)
class Metric:
    run_uuid: str
    key: str
    value: float = 2.0
    timestamp: int = 1
    step: int = 1


def _run_with_metrics(database: Database) -> str:
    """A run whose latest value of each key exists (older than what the clients log)."""
    run = uuid.uuid4().hex
    with database.sessions("scheduler")() as session:
        session.add_all(
            SqlLatestMetric(run_uuid=run, key=key, value=1.0, timestamp=0, step=0) for key in KEYS
        )
        session.commit()
    return run


def _log(form: ModuleType, run: str, keys: Sequence[str]) -> Callable[[Session], Any]:
    metrics = [Metric(run, key) for key in keys]
    return lambda session: form.SqlAlchemyStore()._update_latest_metrics_if_necessary(metrics, session)


def _attempts(database: Database, form: ModuleType) -> list[Attempt]:
    attempts = []
    for _ in range(ATTEMPTS):
        run = _run_with_metrics(database)
        attempts.append(
            write_in_orders(
                database,
                "SELECT",
                _log(form, run, KEYS),
                _log(form, run, tuple(reversed(KEYS))),
                containing="FOR UPDATE",
            )
        )
    return attempts


@pytest.mark.usefixtures("one_key_batches")
def test_batches_in_client_order_3_15_0_deadlock(
    mlflow_tables: Database, request: pytest.FixtureRequest
) -> None:
    attempts = _attempts(mlflow_tables, latest_metrics_3_15_0)
    record_attempts(request, mlflow_tables, "MLflow 3.15.0 latest metrics, batches in client order", attempts)
    assert all(either_party_deadlocked(mlflow_tables, attempt) for attempt in attempts)


@pytest.mark.usefixtures("one_key_batches")
def test_sorted_batches_3_16_0_never_deadlock(
    mlflow_tables: Database, request: pytest.FixtureRequest
) -> None:
    attempts = _attempts(mlflow_tables, latest_metrics_3_16_0)
    record_attempts(
        request, mlflow_tables, "MLflow 3.16.0 latest metrics, keys sorted before batching", attempts
    )
    assert all(a.api_error is None and a.scheduler_error is None for a in attempts)
