"""What ``lockorder-lint --fix`` writes, run against real databases: the savepoint it puts around a
failing ``try`` body keeps the work the transaction did before the ``try`` and lets the handler write
(issue 14, item 15; ``rules/LCK003.md``, "How --fix fixes it"). The code under test is the fixer's own
output for ``tests/fixtures/fix/state_store_cleanup.py`` (whose handler queues a clean-up) and for
Airflow 3.3.2's ``tests/fixtures/airflow/state_store_3_3_2.py`` (whose handler only logs), loaded as
modules next to the originals.

PostgreSQL aborts the transaction on any failed statement; ROLLBACK TO SAVEPOINT ends that and keeps
what was done, and locked, before the savepoint. InnoDB rolls back only the failed statement, so the
savepoint changes nothing there, except after a deadlock (1213), which rolls back the whole
transaction, savepoint included: the earlier work is gone whatever the fix, and the handler gets
"SAVEPOINT does not exist" (1305) instead of the deadlock. The tests assert both."""

from __future__ import annotations

import functools
import importlib
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from psycopg.errors import InFailedSqlTransaction
from sqlalchemy import event, select, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, InternalError, ProgrammingError
from sqlalchemy.orm import Session

from lockorder_lint.config import Config
from lockorder_lint.fixer import fix_source
from lockorder_lint.runner import check_path, make_project
from tests.fixtures.airflow.models import State, TaskInstance
from tests.integration.airflow_rows import read_task_instances, seed_run
from tests.integration.databases import Database
from tests.integration.orchestration import Attempt, Party, wait_for, wait_until
from tests.integration.reporting import record_attempts

FIXTURES = Path(__file__).parent.parent / "fixtures"
ATTEMPTS = 3
MYSQL_SAVEPOINT_DOES_NOT_EXIST = 1305

STATE_TABLES = (
    "CREATE TABLE IF NOT EXISTS task_state_store ("
    " dag_id VARCHAR(100) NOT NULL, run_id VARCHAR(100) NOT NULL, task_id VARCHAR(100) NOT NULL,"
    " map_index INTEGER NOT NULL, key_name VARCHAR(50) NOT NULL, value VARCHAR(250),"
    " PRIMARY KEY (dag_id, run_id, task_id, map_index, key_name))",
    "CREATE TABLE IF NOT EXISTS task_state_cleanup ("
    " dag_id VARCHAR(100) NOT NULL, run_id VARCHAR(100) NOT NULL, task_id VARCHAR(100) NOT NULL,"
    " map_index INTEGER NOT NULL, PRIMARY KEY (dag_id, run_id, task_id, map_index))",
)
SCOPE = "dag_id = :dag_id AND run_id = :run_id AND task_id = :task_id AND map_index = :map_index"


@functools.cache
def _fixed_module(relative: str) -> types.ModuleType:
    """The module at ``tests/fixtures/<relative>`` after ``lockorder-lint --fix`` (safe fixes)."""
    path = FIXTURES / relative
    source = path.read_text(encoding="utf-8")
    config = Config()
    found = check_path(path, str(path), make_project(FIXTURES, config)).findings
    spots = {(f.line, f.column) for f in found if f.code == "LCK003"}
    fixed = fix_source(source, path, spots, config)
    assert fixed.applied == 1 and fixed.left == [], fixed
    assert "begin_nested()" in fixed.text and fixed.text.count("rollback()") == source.count("rollback()")
    package = "tests.fixtures." + relative.split("/")[0]
    name = f"{package}._fixed_{path.stem}"
    module = types.ModuleType(name)
    module.__package__ = package
    module.__file__ = str(path)
    sys.modules[name] = module
    exec(compile(fixed.text, str(path), "exec"), module.__dict__)
    return module


def _original_module(relative: str) -> types.ModuleType:
    return importlib.import_module("tests.fixtures." + relative.removesuffix(".py").replace("/", "."))


Request = Callable[[str, Session], None]


def _forms(relative: str, call: Callable[[types.ModuleType, str, Session], None]) -> dict[str, Request]:
    original, fixed = _original_module(relative), _fixed_module(relative)
    return {
        "unfixed": lambda ti_id, session: call(original, ti_id, session),
        "fixed": lambda ti_id, session: call(fixed, ti_id, session),
    }


FORMS = {
    "cleanup handler": lambda: _forms(
        "fix/state_store_cleanup.py", lambda module, ti_id, session: module.ti_succeed(ti_id, session)
    ),
    "3.3.2 state store": lambda: _forms(
        "airflow/state_store_3_3_2.py",
        lambda module, ti_id, session: module.ti_update_state(ti_id, State.SUCCESS, session),
    ),
}


@pytest.fixture(scope="module")
def state_tables(database: Database) -> Iterator[Database]:
    with database.engine("scheduler").begin() as connection:
        for statement in STATE_TABLES:
            connection.exec_driver_sql(statement)
    yield database


@dataclass(frozen=True)
class Outcome:
    """How one request ended: what it raised, the database errors its connection met, the task's
    state afterwards, whether the handler's clean-up row landed, and the state-store rows left."""

    attempt: Attempt
    errors: list[BaseException]
    state: str | None
    cleanup_queued: bool
    store_rows: int


def _scope(database: Database, ti_id: str) -> dict[str, Any]:
    with database.sessions("observer")() as session:
        row = session.execute(
            select(
                TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id, TaskInstance.map_index
            ).where(TaskInstance.id == ti_id)
        ).one()
    return dict(row._mapping)


def _seed(database: Database) -> tuple[str, dict[str, Any]]:
    """A running task instance and three state-store rows of its own."""
    ti_id = seed_run(database, [State.RUNNING]).task_instance_ids[0]
    scope = _scope(database, ti_id)
    with database.engine("scheduler").begin() as connection:
        connection.execute(
            text(
                "INSERT INTO task_state_store (dag_id, run_id, task_id, map_index, key_name, value) "
                "VALUES (:dag_id, :run_id, :task_id, :map_index, :key_name, 'v')"
            ),
            [{**scope, "key_name": key} for key in ("a", "b", "c")],
        )
    return ti_id, scope


def _outcome(
    database: Database, attempt: Attempt, errors: list[BaseException], ti_id: str, scope: dict[str, Any]
) -> Outcome:
    state = read_task_instances(database, [ti_id])[ti_id].state
    with database.engine("observer").connect() as connection:
        queued = connection.execute(text(f"SELECT count(*) FROM task_state_cleanup WHERE {SCOPE}"), scope)
        stored = connection.execute(text(f"SELECT count(*) FROM task_state_store WHERE {SCOPE}"), scope)
        return Outcome(attempt, errors, state, queued.scalar_one() == 1, int(stored.scalar_one()))


@contextmanager
def _errors_of(database: Database, party: Party) -> Iterator[list[BaseException]]:
    """Every database error raised on the party's connection while in the block, in order. (The
    hook exists only per engine; the API engine is the party's alone during an attempt.)"""
    errors: list[BaseException] = []

    def handle_error(context: ExceptionContext) -> None:
        if context.connection is party.connection:
            errors.append(context.sqlalchemy_exception or context.original_exception)

    engine = database.engine(party.role)
    event.listen(engine, "handle_error", handle_error)
    try:
        yield errors
    finally:
        event.remove(engine, "handle_error", handle_error)


def _codes(database: Database, errors: list[BaseException]) -> list[object]:
    """The SQLSTATE (PostgreSQL) or error number (MariaDB) of each error."""
    codes = []
    for error in errors:
        original = error.orig if isinstance(error, DBAPIError) else error
        codes.append(getattr(original, "sqlstate", None) if database.is_postgresql else original.args[0])
    return codes


# --- a failed statement in the try body ------------------------------------------------------


def _request_after_a_failed_clear(database: Database, request: Request) -> Outcome:
    """The request runs alone; its clear fails because the state-store table is not there (it is
    dropped for the attempt and created again afterwards)."""
    ti_id = seed_run(database, [State.RUNNING]).task_instance_ids[0]
    scope = _scope(database, ti_id)
    with database.engine("scheduler").begin() as connection:
        connection.exec_driver_sql("DROP TABLE task_state_store")
    party = Party(database, "api")
    try:
        with _errors_of(database, party) as errors:
            started = time.monotonic()
            party.start(lambda me: request(ti_id, me.session))
            party.join()
    finally:
        with database.engine("scheduler").begin() as connection:
            connection.exec_driver_sql(STATE_TABLES[0])
    attempt = Attempt(party.error, None, None, time.monotonic() - started)
    return _outcome(database, attempt, errors, ti_id, scope)


@pytest.mark.parametrize("form", ["unfixed", "fixed"])
def test_after_a_failed_statement_the_savepoint_keeps_the_success_and_the_handler_writes(
    state_tables: Database, form: str
) -> None:
    database = state_tables
    outcome = _request_after_a_failed_clear(database, FORMS["cleanup handler"]()[form])
    assert isinstance(outcome.errors[0], ProgrammingError), outcome.errors  # no such table
    if form == "unfixed" and database.is_postgresql:
        # The handler's write meets the aborted transaction, and the SUCCESS goes with it.
        error = outcome.attempt.api_error
        assert isinstance(error, InternalError) and isinstance(error.orig, InFailedSqlTransaction), error
        assert (outcome.state, outcome.cleanup_queued) == (State.RUNNING, False)
    else:
        # Fixed, or on MariaDB (which rolls back only the failed statement): both writes land.
        assert outcome.attempt.api_error is None, outcome.attempt.api_error
        assert (outcome.state, outcome.cleanup_queued) == (State.SUCCESS, True)


# --- a deadlock in the try body --------------------------------------------------------------


def _request_deadlocked_in_its_clear(database: Database, request: Request) -> Outcome:
    """Another transaction holds the task's state-store rows (it rewrote them) and then waits for
    the task instance, which the request holds from its first statement; the request's clear then
    waits for the state-store rows and closes the cycle. The request is the victim: on PostgreSQL
    by its shorter deadlock_timeout, on InnoDB as the lighter transaction."""
    ti_id, scope = _seed(database)
    other, party = Party(database, "scheduler"), Party(database, "api")
    other_holds_store = threading.Event()
    request_at_clear = threading.Event()

    def other_work(me: Party) -> None:
        me.session.execute(text(f"UPDATE task_state_store SET value = 'held' WHERE {SCOPE}"), scope)
        other_holds_store.set()
        wait_for(request_at_clear, "the request reaches its clear")
        me.session.execute(select(TaskInstance.id).where(TaskInstance.id == ti_id).with_for_update())
        me.session.commit()

    def before_cursor_execute(*args: Any) -> None:
        statement: str = args[2]
        if statement.startswith("DELETE FROM task_state_store") and not request_at_clear.is_set():
            request_at_clear.set()
            wait_until(other.is_blocked, "the other transaction waits for the task instance")

    def request_work(me: Party) -> None:
        wait_for(other_holds_store, "the other transaction holds the state-store rows")
        event.listen(me.connection, "before_cursor_execute", before_cursor_execute)
        request(ti_id, me.session)

    with _errors_of(database, party) as errors:
        started = time.monotonic()
        other.start(other_work)
        party.start(request_work)
        other.join()
        party.join()
    attempt = Attempt(party.error, other.error, None, time.monotonic() - started)
    return _outcome(database, attempt, errors, ti_id, scope)


@pytest.mark.parametrize("fixture", list(FORMS))
@pytest.mark.parametrize("form", ["unfixed", "fixed"])
def test_after_a_deadlock_the_savepoint_keeps_the_success_on_postgresql_only(
    state_tables: Database, fixture: str, form: str, request: pytest.FixtureRequest
) -> None:
    database = state_tables
    run = FORMS[fixture]()[form]
    outcomes = [_request_deadlocked_in_its_clear(database, run) for _ in range(ATTEMPTS)]
    record_attempts(
        request,
        database,
        f"--fix savepoint, {fixture}, {form}",
        [o.attempt for o in outcomes],
        [database.caused_by_deadlock(o.errors[0]) if o.errors else False for o in outcomes],
    )
    for outcome in outcomes:
        codes = _codes(database, outcome.errors)
        assert outcome.attempt.scheduler_error is None, outcome.attempt.scheduler_error
        assert outcome.store_rows == 3  # the clear never happened
        assert database.is_deadlock(outcome.errors[0]), codes
        handler_writes = fixture == "cleanup handler"
        if database.is_postgresql and form == "unfixed":
            # 3.3.2: the commit ends the aborted transaction with a rollback and raises nothing, so
            # the SUCCESS is lost silently; the cleanup handler's write fails on the aborted one.
            assert outcome.state == State.RUNNING
            if handler_writes:
                assert isinstance(outcome.attempt.api_error, InternalError), outcome.attempt.api_error
            else:
                assert outcome.attempt.api_error is None, outcome.attempt.api_error
        elif database.is_postgresql:
            # ROLLBACK TO SAVEPOINT: the SUCCESS written before the try survives, the handler writes.
            assert codes == ["40P01"], codes
            assert outcome.attempt.api_error is None, outcome.attempt.api_error
            assert outcome.state == State.SUCCESS
            assert outcome.cleanup_queued == handler_writes
        else:
            # InnoDB rolled the whole transaction back: the SUCCESS is gone with or without the fix,
            # and the handler's statements run in a new transaction. With the fix, the savepoint's
            # rollback fails first, so the handler catches 1305 (raised while handling the 1213).
            assert outcome.attempt.api_error is None, outcome.attempt.api_error
            assert outcome.state == State.RUNNING
            assert outcome.cleanup_queued == handler_writes
            expected = [1213, MYSQL_SAVEPOINT_DOES_NOT_EXIST] if form == "fixed" else [1213]
            assert codes == expected, codes
