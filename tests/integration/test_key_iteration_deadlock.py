"""LCK006 on real databases: two transactions that merge the same keys one per element, in the
orders two dicts (or two sets) give them, deadlock on every attempt when the orders differ; the
fixed forms, which sort the keys first, never do. Both the MLflow ``start_trace`` conflict path
(``tests/fixtures/mlflow/start_trace_3_14_0.py`` against ``start_trace_3_15_0.py``) and Airflow's
asset-manager slow path (``tests/fixtures/airflow/asset_manager_3_3_2.py`` against
``asset_manager_sorted.py``) run unchanged; only the collections they are handed differ."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy.orm import Session

from tests.fixtures.airflow import asset_manager_3_3_2, asset_manager_sorted
from tests.fixtures.airflow.asset_models import AssetDagRunQueue  # noqa: F401 - creates its table
from tests.fixtures.mlflow import start_trace_3_14_0, start_trace_3_15_0
from tests.fixtures.mlflow.models import Base as MlflowBase
from tests.fixtures.mlflow.models import SqlTraceInfo, SqlTraceMetadata
from tests.integration.databases import Database
from tests.integration.key_order import write_in_orders
from tests.integration.orchestration import Attempt
from tests.integration.reporting import either_party_deadlocked, record_attempts

ATTEMPTS = 20
KEYS = ("alpha", "beta")


@pytest.fixture(scope="module")
def mlflow_tables(database: Database) -> Iterator[Database]:
    MlflowBase.metadata.create_all(database.engine("scheduler"))
    yield database


@dataclass
class TraceInfo:
    """What ``start_trace`` reads of MLflow's TraceInfo entity."""

    trace_id: str
    trace_metadata: dict[str, str]
    experiment_id: int = 1
    request_time: int = 0
    state: str = "OK"
    token_usage: dict[str, float] = field(default_factory=dict)


def _existing_trace(database: Database) -> str:
    """A trace that ``log_spans`` already created, with partial values of its metadata:
    ``start_trace`` takes its conflict path and overwrites them (each merge UPDATEs a row)."""
    trace_id = uuid.uuid4().hex
    with database.sessions("scheduler")() as session:
        session.add(SqlTraceInfo(request_id=trace_id, experiment_id=1, timestamp_ms=0, status="IN_PROGRESS"))
        session.flush()
        session.add_all(SqlTraceMetadata(request_id=trace_id, key=key, value="partial") for key in KEYS)
        session.commit()
    return trace_id


def _start_trace(form: ModuleType, trace_id: str, keys: Sequence[str]) -> Callable[[Session], Any]:
    def work(session: Session) -> None:
        store = form.SqlAlchemyStore(lambda: session)
        store.start_trace(TraceInfo(trace_id, {key: "value" for key in keys}))

    return work


def _trace_attempts(database: Database, form: ModuleType) -> list[Attempt]:
    attempts = []
    for _ in range(ATTEMPTS):
        trace_id = _existing_trace(database)
        attempts.append(
            write_in_orders(
                database,
                "UPDATE trace_request_metadata",
                _start_trace(form, trace_id, KEYS),
                _start_trace(form, trace_id, tuple(reversed(KEYS))),
            )
        )
    return attempts


def test_start_trace_3_14_0_deadlocks_on_dict_order(
    mlflow_tables: Database, request: pytest.FixtureRequest
) -> None:
    attempts = _trace_attempts(mlflow_tables, start_trace_3_14_0)
    record_attempts(
        request, mlflow_tables, "MLflow 3.14.0 start_trace, metadata in opposite dict orders", attempts
    )
    assert all(either_party_deadlocked(mlflow_tables, attempt) for attempt in attempts)


def test_start_trace_3_15_0_sorted_never_deadlocks(
    mlflow_tables: Database, request: pytest.FixtureRequest
) -> None:
    attempts = _trace_attempts(mlflow_tables, start_trace_3_15_0)
    record_attempts(request, mlflow_tables, "MLflow 3.15.0 start_trace, sorted metadata", attempts)
    assert all(a.api_error is None and a.scheduler_error is None for a in attempts)


def _dags(form: ModuleType, dag_ids: Sequence[str]) -> list[Any]:
    """The Dags to queue, in the order a set of them happened to iterate in one process (string
    hashes differ between processes, so two schedulers or workers see two orders)."""
    dags = []
    for dag_id in dag_ids:
        dag = form.DagModel()
        dag.dag_id = dag_id
        dags.append(dag)
    return dags


def _queue(form: ModuleType, asset_id: int, dag_ids: Sequence[str]) -> Callable[[Session], Any]:
    def work(session: Session) -> None:
        manager = form.AssetManager
        manager._queue_dagruns_nonpartitioned_slow_path(asset_id, _dags(form, dag_ids), session)

    return work


def _queue_attempts(database: Database, form: ModuleType) -> list[Attempt]:
    attempts = []
    for number in range(ATTEMPTS):
        asset_id = 1000 * (2 if form is asset_manager_sorted else 1) + number
        attempts.append(
            write_in_orders(
                database,
                "INSERT INTO asset_dag_run_queue",
                _queue(form, asset_id, KEYS),
                _queue(form, asset_id, tuple(reversed(KEYS))),
            )
        )
    return attempts


def test_asset_manager_3_3_2_slow_path_deadlocks_on_set_order(
    database: Database, request: pytest.FixtureRequest
) -> None:
    attempts = _queue_attempts(database, asset_manager_3_3_2)
    record_attempts(request, database, "Airflow 3.3.2 asset queue, Dags in opposite set orders", attempts)
    assert all(either_party_deadlocked(database, attempt) for attempt in attempts)


def test_asset_manager_sorted_never_deadlocks(database: Database, request: pytest.FixtureRequest) -> None:
    attempts = _queue_attempts(database, asset_manager_sorted)
    record_attempts(request, database, "Airflow asset queue, Dags sorted by dag_id", attempts)
    assert all(a.api_error is None and a.scheduler_error is None for a in attempts)
