"""The order in which a statement locks its rows, read from the database rather than assumed.

PostgreSQL's UPDATE locks each row as its scan returns it; running the very same UPDATE with
``RETURNING`` in a transaction that is rolled back lists the rows in that order (for an index scan over
equal keys, the rows' physical order). Its ``SELECT ... ORDER BY ... FOR UPDATE`` locks above the sort,
so the rows it returns come in the order it locked them. InnoDB locks index records as it scans them,
before any sort, so the order depends on the index the optimizer picks: the plan is read with
``EXPLAIN``, required to be the expected index (the pin), and the rows are listed by scanning it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, Update, select, true
from sqlalchemy.orm import Session

from tests.fixtures.airflow.models import TaskInstance
from tests.integration.databases import Database


@dataclass(frozen=True)
class LockOrder:
    """The rows in the order the statement locks them, and the index its plan reaches them through."""

    ids: tuple[str, ...]
    index: str
    plan: str


class _RecordingSession:
    """Stands in for a Session to capture what a fixture function would execute, without running it."""

    def __init__(self) -> None:
        self.statements: list[Any] = []

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> None:
        self.statements.append(statement)


def recorded_update(form: Callable[..., object], *args: Any) -> Update:
    """The single UPDATE that ``form(*args, session)`` executes."""
    recorder = _RecordingSession()
    form(*args, recorder)
    updates = [s for s in recorder.statements if isinstance(s, Update)]
    assert len(updates) == 1, f"expected one UPDATE, got {recorder.statements}"
    return updates[0]


def _explain(session: Session, statement: Update | Select[Any]) -> str:
    compiled = statement.compile(
        dialect=session.get_bind().dialect, compile_kwargs={"render_postcompile": True}
    )
    prefix = "EXPLAIN " if session.get_bind().dialect.name == "postgresql" else "EXPLAIN FORMAT=JSON "
    rows = session.connection().exec_driver_sql(prefix + str(compiled), dict(compiled.params)).all()
    return "\n".join(str(row[0]) for row in rows)


def _postgres_index(plan: str) -> str:
    match = re.search(r"Index (?:Only )?Scan (?:Backward )?using (\w+)|Bitmap Index Scan on (\w+)", plan)
    return next((name for name in match.groups() if name), "") if match else ""


def _mysql_index(plan: str) -> str:
    match = re.search(r'"key":\s*"(\w+)"', plan)
    return match.group(1) if match else ""


def bulk_update_lock_order(database: Database, statement: Update, pinned_index: str) -> LockOrder:
    """Where ``statement`` reaches its rows, and the order it locks them in; the plan must use
    ``pinned_index`` on MariaDB, where the order depends on it."""
    with database.sessions("scheduler")() as session:
        plan = _explain(session, statement)
        if database.is_postgresql:
            index = _postgres_index(plan)
            ids = tuple(session.scalars(statement.returning(TaskInstance.id)).all())
            session.rollback()
        else:
            index = _mysql_index(plan)
            assert index == pinned_index, f"the UPDATE's plan no longer uses {pinned_index}:\n{plan}"
            ids = _innodb_scan_order(session, index, statement.whereclause)
    return LockOrder(ids, index, plan)


def locking_read_order(database: Database, statement: Select[Any], pinned_index: str) -> LockOrder:
    """The order in which the locking read ``statement`` (selecting ``TaskInstance.id``) locks its
    rows; on MariaDB its plan must scan ``pinned_index``."""
    with database.sessions("scheduler")() as session:
        plan = _explain(session, statement)
        if database.is_postgresql:
            assert "LockRows" in plan, plan
            ids = tuple(session.scalars(statement).all())
            session.rollback()
            return LockOrder(ids, _postgres_index(plan), plan)
        index = _mysql_index(plan)
        assert index == pinned_index, f"the SELECT's plan no longer uses {pinned_index}:\n{plan}"
        return LockOrder(_innodb_scan_order(session, index, statement.whereclause), index, plan)


def _innodb_scan_order(session: Session, index: str, where: ColumnElement[bool] | None) -> tuple[str, ...]:
    scan = (
        select(TaskInstance.id)
        .with_hint(TaskInstance, f"FORCE INDEX ({index})", "mysql")
        .where(where if where is not None else true())
    )
    return tuple(session.scalars(scan).all())
