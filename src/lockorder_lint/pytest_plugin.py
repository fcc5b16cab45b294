"""``pytest --lockorder``: record the row locks a project's own database tests take, and report
lock-order cycles between transactions (LCK005 at run time).

Registered through the ``pytest11`` entry point, so it loads in every pytest run where
lockorder-lint is installed; it does nothing (and imports neither SQLAlchemy nor sqlglot) unless
``--lockorder`` is given. When it is, it listens to every SQLAlchemy ``Engine`` (Core and ORM,
sync and async, which run on the same engine events): each transaction's statements are read into
row locks with the first frame of the user's code that asked for them, and
:class:`lockorder_lint.lockdep.LockGraph` joins them across the whole session.
"""

from __future__ import annotations

import json
import linecache
import os
import sys
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockorder_lint.noqa import suppressed

if TYPE_CHECKING:
    import pytest

    from lockorder_lint.lockdep import Acquisition, Cycle, LockGraph, Transaction

CODE = "LCK005"
REUSE_CODE = "LCK003"
# Frames from these packages are the machinery, not the user's code asking for the lock.
_MACHINERY = (
    f"{os.sep}sqlalchemy{os.sep}",
    f"{os.sep}lockorder_lint{os.sep}",
    f"{os.sep}_pytest{os.sep}",
    f"{os.sep}pluggy{os.sep}",
    f"{os.sep}greenlet{os.sep}",
)
_DIALECTS = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite"}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lockorder", "lock-order checking of database tests (lockorder-lint)")
    group.addoption(
        "--lockorder",
        action="store_true",
        default=False,
        help="record the row locks each transaction takes and report lock-order cycles",
    )
    group.addoption(
        "--lockorder-report",
        metavar="FILE",
        default=None,
        help="write the run-time findings as lockorder-lint's JSON (with trace and source)",
    )
    group.addoption(
        "--lockorder-strict",
        action="store_true",
        default=False,
        help="fail the session when a lock-order cycle is found",
    )


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("lockorder"):
        return
    recorder = Recorder()
    recorder.start()
    config.pluginmanager.register(recorder, "lockorder-recorder")


class Recorder:
    """The session's listener on SQLAlchemy's engine events, and its report."""

    def __init__(self) -> None:
        from lockorder_lint.lockdep import LockGraph

        self.graph: LockGraph = LockGraph()
        self.transactions: weakref.WeakKeyDictionary[Any, Transaction] = weakref.WeakKeyDictionary()
        # Connections whose transaction a database error aborted, with where the error was raised.
        self.failed: weakref.WeakKeyDictionary[Any, tuple[str, int, str, str]] = weakref.WeakKeyDictionary()
        self.reuses: list[Reuse] = []
        self.listening = False

    # -- SQLAlchemy events ------------------------------------------------------------------------

    def start(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        event.listen(Engine, "before_cursor_execute", self._execute)
        event.listen(Engine, "commit", self._end)
        event.listen(Engine, "rollback", self._end)
        event.listen(Engine, "rollback_savepoint", self._savepoint_rolled_back)
        event.listen(Engine, "handle_error", self._error)
        self.listening = True

    def stop(self) -> None:
        if not self.listening:
            return
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        event.remove(Engine, "before_cursor_execute", self._execute)
        event.remove(Engine, "commit", self._end)
        event.remove(Engine, "rollback", self._end)
        event.remove(Engine, "rollback_savepoint", self._savepoint_rolled_back)
        event.remove(Engine, "handle_error", self._error)
        self.listening = False

    def _end(self, connection: Any) -> None:
        self.transactions.pop(connection, None)
        self.failed.pop(connection, None)

    def _savepoint_rolled_back(self, connection: Any, name: Any, context: Any) -> None:
        self.failed.pop(connection, None)  # the outer transaction is usable again

    def _error(self, context: Any) -> None:
        """A database error inside a transaction: on PostgreSQL every later statement fails until
        ROLLBACK; elsewhere the work before it may already be rolled back."""
        try:
            connection = context.connection
            if connection is None or not connection.in_transaction() or context.is_disconnect:
                return
            autocommit = getattr(connection, "_is_autocommit_isolation", None)
            if (autocommit is not None and autocommit()) or not _aborts(connection, context):
                return
            path, line, function = _user_frame()
            self.failed[connection] = (
                _relative(path),
                line,
                function,
                type(context.original_exception).__name__,
            )
        except Exception:  # recording must never break the test it watches
            return

    def _execute(
        self, connection: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        try:
            failed = self.failed.pop(connection, None)
            if failed is not None:
                path, line, function = _user_frame()
                if suppressed(linecache.getline(path, line), REUSE_CODE):
                    failed = None
            if failed is not None:
                shown = " ".join(statement.split())[:200]
                reuse = Reuse(_relative(path), line, function, failed, shown)
                if not any(
                    (r.path, r.line, r.error) == (reuse.path, reuse.line, reuse.error) for r in self.reuses
                ):
                    self.reuses.append(reuse)
            self._record(connection, statement, context)
        except Exception:  # recording must never break the test it watches
            return

    def _record(self, connection: Any, statement: str, context: Any) -> None:
        from lockorder_lint.lockdep import Acquisition, locks_of

        dialect = _DIALECTS.get(connection.dialect.name, connection.dialect.name)
        read = self.graph.read(statement, dialect)
        if not read:
            return
        in_transaction = connection.in_transaction()
        transaction = self.transactions.get(connection)
        if transaction is None:
            transaction = self.graph.begin(dialect)
            if in_transaction:
                self.transactions[connection] = transaction
        where: tuple[str, int, str] | None = None
        for sql in read:
            for table, mode, waits in locks_of(sql, _parents(context, sql), dialect):
                if where is None:
                    where = _user_frame()
                path, line, function = where
                if path and suppressed(linecache.getline(path, line), CODE):
                    continue
                shown = " ".join(statement.split())
                shown_path = _relative(path)
                self.graph.take(
                    transaction,
                    Acquisition(
                        table, mode, f"{shown_path}:{line} {function}", shown_path, line, shown[:200], waits
                    ),
                )

    # -- report -----------------------------------------------------------------------------------

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        cycles = self.graph.cycles()
        terminalreporter.section("lockorder")
        if not cycles:
            terminalreporter.write_line("no lock-order cycle between the transactions recorded")
        for cycle in cycles:
            terminalreporter.write_line(describe(cycle))
        for reuse in self.reuses:
            terminalreporter.write_line(reuse.describe())

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.stop()
        cycles = self.graph.cycles()
        report = session.config.getoption("lockorder_report")
        if report:
            findings = [finding(c) for c in cycles] + [r.finding() for r in self.reuses]
            Path(report).write_text(json.dumps(findings, indent=2) + "\n", encoding="utf-8")
        if cycles and session.config.getoption("lockorder_strict") and session.exitstatus == 0:
            session.exitstatus = 1


@dataclass(frozen=True)
class Reuse:
    """A statement run on a connection whose transaction a database error had aborted, before
    any rollback: what LCK003 finds statically, seen happening."""

    path: str
    line: int
    function: str
    error: tuple[str, int, str, str]  # where the error was raised: path, line, function, type
    sql: str

    def describe(self) -> str:
        path, line, function, kind = self.error
        return (
            f"{REUSE_CODE} {self.path}:{self.line} {self.function}: statement run on a transaction that "
            f"{kind} at {path}:{line} {function} aborted, before rollback(): on PostgreSQL it fails "
            f"(InFailedSqlTransaction); roll back first, or use a fresh session"
        )

    def finding(self) -> dict[str, Any]:
        path, line, function, kind = self.error
        return {
            "path": self.path,
            "line": self.line,
            "column": 1,
            "end_line": self.line,
            "end_column": 1,
            "code": REUSE_CODE,
            "message": f"statement run after {kind} aborted the transaction, before rollback()",
            "table": None,
            "function": self.function,
            "statement": self.sql,
            "source": "runtime",
            "trace": [
                {"error": {"at": f"{path}:{line} {function}", "type": kind}},
                {"reuse": {"at": f"{self.path}:{self.line} {self.function}", "sql": self.sql}},
            ],
        }


# MySQL/MariaDB errors that roll the whole transaction back (a deadlock); other errors there, such
# as a lock wait timeout (1205), undo only the statement, and the transaction goes on.
_MYSQL_ABORTING = frozenset({1213})


def _aborts(connection: Any, context: Any) -> bool:
    """Whether the error ends the transaction's usefulness: on PostgreSQL every error does (later
    statements fail until ROLLBACK); on MySQL/MariaDB a deadlock does (the work before it is gone);
    SQLite keeps the transaction."""
    dialect = _DIALECTS.get(connection.dialect.name, connection.dialect.name)
    if dialect == "postgresql":
        return True
    if dialect == "mysql":
        args: tuple[Any, ...] = tuple(getattr(context.original_exception, "args", ()))
        return bool(args) and args[0] in _MYSQL_ABORTING
    return False


def _parents(context: Any, sql: Any) -> list[str]:
    """The tables an INSERT/UPDATE's foreign keys point at, from the statement's own Table (what
    the application registered), when SQLAlchemy compiled it."""
    if sql.kind not in ("insert", "upsert", "update"):
        return []
    compiled = getattr(context, "compiled", None)
    table = getattr(getattr(compiled, "statement", None), "table", None)
    keys = getattr(table, "foreign_keys", None) or ()
    parents: list[str] = []
    for key in keys:
        try:
            name = key.column.table.name
        except Exception:  # an unresolved foreign key names no table yet
            continue
        if name not in parents:
            parents.append(name)
    return parents


def _relative(path: str) -> str:
    """A path under the working directory as a relative one, as pytest shows test files."""
    try:
        return os.path.relpath(path) if path and not os.path.relpath(path).startswith("..") else path
    except ValueError:  # another drive
        return path


def _user_frame() -> tuple[str, int, str]:
    """The innermost frame outside SQLAlchemy, this package, pytest and the standard library."""
    stdlib = os.path.dirname(os.__file__)
    frame: Any = sys._getframe(1)
    while frame is not None:
        path = frame.f_code.co_filename
        if not (any(part in path for part in _MACHINERY) or path.startswith(stdlib) or path.startswith("<")):
            return path, frame.f_lineno, frame.f_code.co_name
        frame = frame.f_back
    return "", 0, "?"


def describe(cycle: Cycle) -> str:
    """The cycle as a person reads it: both transactions, each with the lock it held and the one
    it then took, where the code asked for each."""
    first, second = cycle.first, cycle.second
    a, b = cycle.tables
    return (
        f"{CODE} lock-order cycle between {a} and {b}:\n"
        f"  transaction {first.transaction}: {_step(first.held)}\n"
        f"      then {_step(first.taken)}\n"
        f"  transaction {second.transaction}: {_step(second.held)}\n"
        f"      then {_step(second.taken)}\n"
        f"  run at the same time, each waits for the other's lock; take the locks in one order "
        f"({a} before {b} everywhere), or skip locked rows (SKIP LOCKED) on one side"
    )


def _step(acquisition: Acquisition) -> str:
    return f"{acquisition.mode} on {acquisition.table} at {acquisition.where}"


def finding(cycle: Cycle) -> dict[str, Any]:
    """A cycle as the CLI's JSON finding, plus ``trace`` (both transactions) and ``source``."""
    taken = cycle.second.taken
    a, b = cycle.tables
    return {
        "path": taken.path,
        "line": taken.line,
        "column": 1,
        "end_line": taken.line,
        "end_column": 1,
        "code": CODE,
        "message": f"lock-order cycle between {a} and {b}: transactions take their locks in opposite orders",
        "table": a,
        "function": taken.where.rsplit(" ", 1)[-1],
        "statement": taken.sql,
        "source": "runtime",
        "trace": [
            {
                "transaction": edge.transaction,
                "steps": [
                    {"table": step.table, "mode": step.mode, "at": step.where, "sql": step.sql}
                    for step in (edge.held, edge.taken)
                ],
            }
            for edge in (cycle.first, cycle.second)
        ],
    }
