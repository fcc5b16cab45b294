"""Rows for the re-created Airflow schema: a backlog of other runs, so the planner reaches one run's
task instances through ``ti_dag_run`` as it does in production, and fresh runs for each orchestrated
attempt, so every attempt starts from rows no earlier attempt touched."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import insert, select

from tests.fixtures.airflow.models import DagRun, DagVersion, State, TaskInstance
from tests.integration.databases import Database

DAG_ID = "every_minute"
BACKLOG_RUNS = 120
BACKLOG_TASKS_PER_RUN = 12

_run_numbers = itertools.count()


@dataclass(frozen=True)
class SeededRun:
    """A committed dag run, its task instance ids in insertion order, and a newer DAG version that
    none of them is on yet."""

    dag_run: DagRun
    task_instance_ids: tuple[str, ...]
    latest_dag_version_id: str


def descending_ids(count: int) -> list[str]:
    """Fresh ids in descending order: inserted in this order, PostgreSQL's physical order of the rows
    is the reverse of their id order, so the two orders the tests compare cannot coincide by luck."""
    return sorted((str(uuid.uuid4()) for _ in range(count)), reverse=True)


def seed_backlog(database: Database) -> None:
    """Many runs of the same DAG with unfinished task instances, then fresh planner statistics."""
    with database.sessions("scheduler").begin() as session:
        version_id = str(uuid.uuid4())
        session.execute(insert(DagVersion).values(id=version_id, dag_id=DAG_ID, version_number=1))
        session.execute(
            insert(DagRun),
            [{"dag_id": DAG_ID, "run_id": f"backlog_{n}", "state": "running"} for n in range(BACKLOG_RUNS)],
        )
        states = itertools.cycle((State.RUNNING, State.QUEUED, State.SCHEDULED, State.UP_FOR_RETRY))
        session.execute(
            insert(TaskInstance),
            [
                {
                    "id": str(uuid.uuid4()),
                    "task_id": f"task_{t}",
                    "dag_id": DAG_ID,
                    "run_id": f"backlog_{n}",
                    "state": next(states),
                    "dag_version_id": version_id,
                }
                for n in range(BACKLOG_RUNS)
                for t in range(BACKLOG_TASKS_PER_RUN)
            ],
        )
    analyze = "ANALYZE task_instance" if database.is_postgresql else "ANALYZE TABLE task_instance"
    with database.engine("scheduler").connect() as connection:
        connection.exec_driver_sql(analyze).close()
        connection.commit()


def seed_run(database: Database, states: Sequence[str], ids: Sequence[str] | None = None) -> SeededRun:
    """A new running dag run with one task instance per state, inserted in the order given."""
    ids = list(ids) if ids is not None else descending_ids(len(states))
    run_id = f"run_{next(_run_numbers)}_{uuid.uuid4().hex[:8]}"
    old_version_id, latest_version_id = str(uuid.uuid4()), str(uuid.uuid4())
    with database.sessions("scheduler").begin() as session:
        session.execute(
            insert(DagVersion),
            [
                {"id": old_version_id, "dag_id": DAG_ID, "version_number": 1},
                {"id": latest_version_id, "dag_id": DAG_ID, "version_number": 2},
            ],
        )
        session.execute(insert(DagRun).values(dag_id=DAG_ID, run_id=run_id, state="running"))
        for number, (ti_id, state) in enumerate(zip(ids, states, strict=True)):
            session.execute(
                insert(TaskInstance).values(
                    id=ti_id,
                    task_id=f"task_{number}",
                    dag_id=DAG_ID,
                    run_id=run_id,
                    state=state,
                    dag_version_id=old_version_id,
                )
            )
        dag_run = session.scalars(select(DagRun).where(DagRun.run_id == run_id)).one()
    return SeededRun(dag_run, tuple(ids), latest_version_id)


@dataclass(frozen=True)
class TaskInstanceRow:
    """What a test asserts about one task instance after an attempt."""

    id: str
    state: str | None
    dag_version_id: str | None
    heartbeat_recorded: bool


def read_task_instances(database: Database, ids: Sequence[str]) -> dict[str, TaskInstanceRow]:
    with database.sessions("observer")() as session:
        rows = session.execute(
            select(
                TaskInstance.id,
                TaskInstance.state,
                TaskInstance.dag_version_id,
                TaskInstance.last_heartbeat_at,
            ).where(TaskInstance.id.in_(ids))
        ).all()
    return {
        row.id: TaskInstanceRow(row.id, row.state, row.dag_version_id, row.last_heartbeat_at is not None)
        for row in rows
    }
