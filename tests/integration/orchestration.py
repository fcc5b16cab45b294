"""Two transactions in two threads, stepped so that a lock-order cycle forms on every attempt if the
code allows one. A party moves on when the database reports the other one blocked on a lock, or past
its contested statement; never after a sleep, so an attempt takes as long as the locks make it.

The scheduler party runs a form of ``_verify_integrity_if_dag_changed``; the execution-API party locks
task instances by primary key, as ``ti_update_state`` does. PostgreSQL's victim is made the API party
by its shorter ``deadlock_timeout`` (see ``databases``); InnoDB picks the lighter transaction, which
is the API party as well, since the scheduler has already updated rows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from tests.fixtures.airflow.models import DagRun, TaskInstance
from tests.integration.airflow_rows import SeededRun
from tests.integration.databases import LOCK_WAIT_LIMIT_SECONDS, Database

STEP_LIMIT_SECONDS = float(LOCK_WAIT_LIMIT_SECONDS)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds; a step that never comes fails the attempt instead of hanging."""
    deadline = time.monotonic() + STEP_LIMIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {STEP_LIMIT_SECONDS:.0f} s waiting until {what}")
        time.sleep(0.001)


def wait_for(flag: threading.Event, what: str) -> None:
    if not flag.wait(STEP_LIMIT_SECONDS):
        raise TimeoutError(f"gave up after {STEP_LIMIT_SECONDS:.0f} s waiting until {what}")


class Party:
    """One transaction on its own connection and thread; records how its work ended."""

    def __init__(self, database: Database, role: str) -> None:
        self.database = database
        self.role = role
        self.session = database.sessions(role)()
        self.connection = self.session.connection()
        self.backend_id = database.backend_id(self.connection)
        self.past_contested_statement = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.result: Any = None
        self._thread: threading.Thread | None = None

    def start(self, work: Callable[[Party], Any]) -> None:
        self._thread = threading.Thread(target=self._run, args=(work,), name=self.role, daemon=True)
        self._thread.start()

    def _run(self, work: Callable[[Party], Any]) -> None:
        try:
            self.result = work(self)
        except BaseException as error:  # recorded for the test to judge, whatever it is
            self.error = error
            self.session.rollback()
        finally:
            self.session.close()
            self.done.set()

    def join(self) -> None:
        assert self._thread is not None
        self._thread.join(STEP_LIMIT_SECONDS * 4)
        assert not self._thread.is_alive(), f"the {self.role} party did not finish"

    def is_blocked(self) -> bool:
        return self.database.is_waiting_for_lock(self.backend_id)

    def blocked_or_past(self) -> bool:
        """Whether the other party may take its next lock: this one waits or has gone by."""
        return self.past_contested_statement.is_set() or self.done.is_set() or self.is_blocked()

    def blocking_others(self) -> bool:
        return self.database.is_blocking_others(self.backend_id)


@dataclass(frozen=True)
class Attempt:
    """How one orchestrated attempt ended."""

    api_error: BaseException | None
    scheduler_error: BaseException | None
    scheduler_result: Any
    seconds: float


def lock_task_instance(session: Session, task_instance_id: str) -> None:
    """Lock one task instance by primary key, as ``ti_update_state``'s first statement does."""
    session.execute(
        select(TaskInstance.state).where(TaskInstance.id == task_instance_id).with_for_update(of=TaskInstance)
    ).one()


def record_heartbeat(session: Session, task_instance_id: str) -> None:
    """A write by primary key that must survive: the execution API's own update of the row."""
    session.execute(
        update(TaskInstance)
        .where(TaskInstance.id == task_instance_id)
        .values(last_heartbeat_at=datetime.now(timezone.utc))
    )


def lock_dag_run(session: Session, dag_run: DagRun) -> None:
    """Lock the run the way the scheduler picks the runs it examines (FOR UPDATE SKIP LOCKED)."""
    locked = session.scalars(
        select(DagRun.id).where(DagRun.id == dag_run.id).with_for_update(skip_locked=True)
    ).all()
    assert locked == [dag_run.id], "another transaction holds the dag run"


def _run_parties(
    database: Database,
    scheduler_work: Callable[[Party, Party], Any],
    api_work: Callable[[Party, Party], Any],
) -> Attempt:
    scheduler, api = Party(database, "scheduler"), Party(database, "api")
    started = time.monotonic()
    scheduler.start(lambda party: scheduler_work(party, api))
    api.start(lambda party: api_work(party, scheduler))
    scheduler.join()
    api.join()
    return Attempt(api.error, scheduler.error, scheduler.result, time.monotonic() - started)


def pk_locks_against_scheduler_pass(
    database: Database,
    lock_order: Sequence[str],
    scheduler_pass: Callable[[Session], Any],
    after_commit: Callable[[], Any] | None = None,
) -> Attempt:
    """The execution API locks, by primary key, the last row of ``lock_order`` (the order in which the
    scheduler's statement locks its rows), then the first one; the scheduler's pass runs in between.
    The scheduler's result is the pair of what ``scheduler_pass`` and, after its commit,
    ``after_commit`` returned."""
    first, last = lock_order[0], lock_order[-1]
    api_holds_last = threading.Event()

    def scheduler_work(me: Party, api: Party) -> Any:
        wait_for(api_holds_last, "the API party holds its first row")
        result = scheduler_pass(me.session)
        me.past_contested_statement.set()
        wait_until(
            lambda: api.done.is_set() or me.blocking_others(),
            "the API party waits for the scheduler or is done",
        )
        me.session.commit()
        return result, after_commit() if after_commit is not None else None

    def api_work(me: Party, scheduler: Party) -> None:
        lock_task_instance(me.session, last)
        api_holds_last.set()
        wait_until(scheduler.blocked_or_past, "the scheduler's statement waits or has finished")
        lock_task_instance(me.session, first)
        record_heartbeat(me.session, last)
        record_heartbeat(me.session, first)
        me.session.commit()

    return _run_parties(database, scheduler_work, api_work)


def pause_before_row_lock(connection: Connection, number: int, pause: Callable[[], None]) -> None:
    """Call ``pause`` just before the ``number``-th ``FOR UPDATE`` statement sent on ``connection``:
    how the test steps into the middle of a fixture function without changing it."""
    seen = 0

    def before_cursor_execute(*args: Any) -> None:
        nonlocal seen
        statement: str = args[2]
        if "FOR UPDATE" in statement:
            seen += 1
            if seen == number:
                pause()

    event.listen(connection, "before_cursor_execute", before_cursor_execute)


def request_against_bulk_update(
    database: Database,
    seeded: SeededRun,
    target: str,
    scheduler_form: Callable[[DagRun, str, Session], Any],
    request: Callable[[Session], Any],
) -> Attempt:
    """The #66734 interleaving. The scheduler holds the run's ``dag_run`` row and its bulk UPDATE
    waits for ``target``, which the request holds from its first statement; the request's second
    row lock (``session.get(TI, id, with_for_update=True)``, which joins ``dag_run``) then waits for
    the scheduler. Before calling ``request`` the request records a heartbeat on ``target``: earlier
    work of the same transaction, to see whether it survives."""
    scheduler_holds_run = threading.Event()
    request_holds_target = threading.Event()

    def scheduler_work(me: Party, api: Party) -> None:
        lock_dag_run(me.session, seeded.dag_run)
        scheduler_holds_run.set()
        wait_for(request_holds_target, "the request holds its task instance")
        scheduler_form(seeded.dag_run, seeded.latest_dag_version_id, me.session)
        me.past_contested_statement.set()
        wait_until(
            lambda: api.done.is_set() or me.blocking_others(),
            "the request waits for the scheduler or is done",
        )
        me.session.commit()

    def api_work(me: Party, scheduler: Party) -> None:
        def second_row_lock() -> None:
            request_holds_target.set()
            wait_until(scheduler.blocked_or_past, "the scheduler's UPDATE waits or has finished")

        wait_for(scheduler_holds_run, "the scheduler holds the dag run")
        record_heartbeat(me.session, target)
        pause_before_row_lock(me.connection, 2, second_row_lock)
        request(me.session)
        me.session.commit()

    return _run_parties(database, scheduler_work, api_work)
