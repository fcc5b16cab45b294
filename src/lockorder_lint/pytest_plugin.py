"""``pytest --lockorder``: record the row locks a project's own database tests take, and report
lock-order cycles between transactions (LCK005 at run time), statements that lock many rows out of
key order or lock joined rows (LCK001, LCK002, LCK004, judged with the application's MetaData by
:mod:`lockorder_lint.runtime_checks`), and statements run on an aborted transaction (LCK003).

Registered through the ``pytest11`` entry point, so it loads in every pytest run where
lockorder-lint is installed; it does nothing (and imports neither SQLAlchemy nor sqlglot) unless
``--lockorder`` is given. When it is, it listens to every SQLAlchemy ``Engine`` (Core and ORM,
sync and async, which run on the same engine events): each transaction's statements are read into
row locks with the first frame of the user's code that asked for them, and
:class:`lockorder_lint.lockdep.LockGraph` joins them across the whole session. The project's
``[tool.lockorder-lint]`` settings apply: ``select``/``ignore``, ``per-file-ignores``, and
``hot-tables``/``all-tables`` (without them, a table is contended when some test row-locked it).
"""

from __future__ import annotations

import functools
import json
import linecache
import os
import sys
import weakref
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockorder_lint.noqa import suppressed

if TYPE_CHECKING:
    import pytest

    from lockorder_lint.config import Config
    from lockorder_lint.lockdep import Acquisition, Cycle, LockGraph, Transaction
    from lockorder_lint.runtime_checks import Verdict

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
MAX_REMEMBERED = 4096  # statement verdicts kept, as the lock graph keeps read statements


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
    import pytest

    from lockorder_lint.config import ConfigError, load_config

    try:
        settings = load_config(Path(config.rootpath) / "pyproject.toml")
    except ConfigError as exc:
        raise pytest.UsageError(f"lockorder-lint: config error: {exc}") from exc
    recorder = Recorder(settings)
    recorder.start()
    config.pluginmanager.register(recorder, "lockorder-recorder")


class Recorder:
    """The session's listener on SQLAlchemy's engine events, and its report."""

    def __init__(self, config: Config | None = None) -> None:
        from lockorder_lint.config import Config
        from lockorder_lint.lockdep import LockGraph
        from lockorder_lint.runtime_checks import RuntimeCatalog

        self.config = config or Config()
        self.graph: LockGraph = LockGraph()
        self.tables = RuntimeCatalog()
        # LCK001/LCK002/LCK004 seen, by (code, path, line); reported if their tables are contended.
        self.statements: dict[tuple[str, str, int], StatementFinding] = {}
        self.row_locked: set[str] = set()  # tables some locking read locked: contended by default
        self._verdicts: dict[tuple[Any, ...], list[Verdict]] = {}
        # Per connection: tables whose rows its transaction locked in key order (the fix's step).
        self.in_order: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
        # Statements the recorder failed on (a bug of its own): said at the end, never hidden.
        self.unrecorded = 0
        self.first_unrecorded: str | None = None
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
        self.in_order.pop(connection, None)

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
        except Exception as exc:  # recording must never break the test it watches, nor fail unseen
            self._failed_to_record(exc)

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
        except Exception as exc:  # recording must never break the test it watches, nor fail unseen
            self._failed_to_record(exc)

    def _record(self, connection: Any, statement: str, context: Any) -> None:
        from lockorder_lint.lockdep import Acquisition, locks_of
        from lockorder_lint.runtime_checks import key_column_names

        dialect = _DIALECTS.get(connection.dialect.name, connection.dialect.name)
        read = self.graph.read(statement, dialect)
        if not read:
            return
        self.tables.learn(context)
        where = _Where(statement)  # the user's frame and the SQL as shown, looked up once if needed
        self._judge(connection, read, dialect, getattr(context, "compiled", None) is not None, where)
        in_transaction = connection.in_transaction()
        transaction = self.transactions.get(connection)
        if transaction is None:
            transaction = self.graph.begin(dialect)
            if in_transaction:
                self.transactions[connection] = transaction
        for sql in read:
            compiled = _compiled_table(context)
            keys: Collection[str] = ()
            if compiled is not None:
                parents = _parents(context, sql)
                keys = key_column_names(compiled) if sql.kind == "update" else ()
            elif sql.target and sql.kind in ("insert", "upsert", "update"):  # SQL text: the MetaData says
                changed = [c for c in sql.assigned if c not in sql.nulled] if sql.kind == "update" else None
                parents = self.tables.parents(sql.target, changed)
                keys = self.tables.keys(sql.target)
            else:
                parents = []
            for table, mode, waits in locks_of(sql, parents, dialect, keys):
                path, line, function = where.frame
                if path and suppressed(linecache.getline(path, line), CODE):
                    continue
                shown_path = _relative(path)
                self.graph.take(
                    transaction,
                    Acquisition(
                        table, mode, f"{shown_path}:{line} {function}", shown_path, line, where.sql, waits
                    ),
                )

    def _failed_to_record(self, exc: Exception) -> None:
        self.unrecorded += 1
        if self.first_unrecorded is None:
            self.first_unrecorded = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"

    def _judge(self, connection: Any, read: list[Any], dialect: str, compiled: bool, where: _Where) -> None:
        """What LCK001/LCK002/LCK004 say about the statement, kept until the session ends (only
        then is it known which tables some test row-locked)."""
        from lockorder_lint.lockdep import locks_of
        from lockorder_lint.runtime_checks import judge, locks_in_key_order

        catalog = self.tables.catalog
        held = self.in_order.get(connection, set())
        mariadb = _is_mariadb(connection)
        for sql in read:
            if sql.kind == "select" and sql.lock is not None:
                self.row_locked.update(table for table, _mode, _waits in locks_of(sql, (), dialect))
            asked = (sql, dialect, compiled, mariadb, frozenset(held), len(catalog.tables))
            verdicts = self._verdicts.get(asked)
            if verdicts is None:  # test suites run the same statements over and over
                if len(self._verdicts) > MAX_REMEMBERED:
                    self._verdicts.clear()
                verdicts = self._verdicts[asked] = judge(sql, catalog, dialect, held, compiled, mariadb)
            for verdict in verdicts:
                path, line, function = where.frame
                key = (verdict.code, _relative(path), line)
                if key in self.statements or (
                    path and suppressed(linecache.getline(path, line), verdict.code)
                ):
                    continue
                self.statements[key] = StatementFinding(verdict, _relative(path), line, function, where.sql)
            ordered = locks_in_key_order(sql, catalog, dialect)
            if ordered is not None and connection.in_transaction():
                self.in_order.setdefault(connection, set()).add(ordered)

    def _contended(self, table: str) -> bool:
        if self.config.infers_hot_tables:
            return table in self.row_locked
        return self.config.is_hot(table)

    def _reported(self, code: str, path: str) -> bool:
        """The project's settings let ``code`` be reported at ``path``."""
        if not self.config.code_enabled(code):
            return False
        return not (path and self.config.ignored_in((path, os.path.basename(path)), code))

    def statement_findings(self) -> list[StatementFinding]:
        """LCK001/LCK002/LCK004 on contended tables, in the order the tests ran them."""
        return [
            found
            for found in self.statements.values()
            if any(self._contended(t) for t in found.verdict.needs_hot)
            and self._reported(found.code, found.path)
        ]

    def cycles(self) -> list[Cycle]:
        return [c for c in self.graph.cycles() if self._reported(CODE, c.last.taken.path)]

    def reuse_findings(self) -> list[Reuse]:
        return [r for r in self.reuses if self._reported(REUSE_CODE, r.path)]

    # -- report -----------------------------------------------------------------------------------

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        cycles = self.cycles()
        terminalreporter.section("lockorder")
        if not cycles:
            terminalreporter.write_line("no lock-order cycle between the transactions recorded")
        for cycle in cycles:
            terminalreporter.write_line(describe(cycle))
        for reuse in self.reuse_findings():
            terminalreporter.write_line(reuse.describe())
        for found in self.statement_findings():
            terminalreporter.write_line(found.describe())
        if self.unrecorded:
            terminalreporter.write_line(
                f"lockorder-lint: internal error: {self.unrecorded} statement(s) not recorded, the first "
                f"because of {self.first_unrecorded}; the report above may miss locks"
            )

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.stop()
        cycles = self.cycles()
        report = session.config.getoption("lockorder_report")
        if report:
            findings = [finding(c) for c in cycles] + [r.finding() for r in self.reuse_findings()]
            findings += [found.finding() for found in self.statement_findings()]
            Path(report).write_text(json.dumps(findings, indent=2) + "\n", encoding="utf-8")
        if cycles and session.config.getoption("lockorder_strict") and session.exitstatus == 0:
            session.exitstatus = 1


class _Where:
    """Where the user's code ran a statement, and the statement as findings show it: both worked
    out on first use only (most statements lock nothing and judge clean)."""

    def __init__(self, statement: str) -> None:
        self._statement = statement

    @functools.cached_property
    def frame(self) -> tuple[str, int, str]:
        return _user_frame()

    @functools.cached_property
    def sql(self) -> str:
        return " ".join(self._statement.split())[:200]


@dataclass(frozen=True)
class StatementFinding:
    """What a static rule says about one statement a test executed, where the user's code ran it."""

    verdict: Verdict
    path: str
    line: int
    function: str
    sql: str

    @property
    def code(self) -> str:
        return self.verdict.code

    def describe(self) -> str:
        return f"{self.code} {self.path}:{self.line} {self.function}: {self.verdict.message}"

    def finding(self) -> dict[str, Any]:
        trace = [{"executed": {"at": f"{self.path}:{self.line} {self.function}", "sql": self.sql}}]
        return runtime_finding(
            self.path,
            self.line,
            self.code,
            self.verdict.message,
            self.verdict.table,
            self.function,
            self.sql,
            trace,
        )


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
        message = f"statement run after {kind} aborted the transaction, before rollback()"
        trace = [
            {"error": {"at": f"{path}:{line} {function}", "type": kind}},
            {"reuse": {"at": f"{self.path}:{self.line} {self.function}", "sql": self.sql}},
        ]
        return runtime_finding(
            self.path, self.line, REUSE_CODE, message, None, self.function, self.sql, trace
        )


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


def _is_mariadb(connection: Any) -> bool:
    dialect = connection.dialect
    return dialect.name == "mariadb" or bool(getattr(dialect, "is_mariadb", False))


def _compiled_table(context: Any) -> Any:
    """The ``Table`` of a DML statement SQLAlchemy compiled (None for SQL text and SELECTs)."""
    return getattr(getattr(getattr(context, "compiled", None), "statement", None), "table", None)


def _parents(context: Any, sql: Any) -> list[str]:
    """The tables an INSERT/UPDATE's foreign keys point at, from the statement's own Table (what
    the application registered), when SQLAlchemy compiled it."""
    if sql.kind not in ("insert", "upsert", "update"):
        return []
    keys = getattr(_compiled_table(context), "foreign_keys", None) or ()
    parents: list[str] = []
    for key in keys:
        if sql.kind == "update" and (
            str(key.parent.name).lower() not in sql.assigned or _set_to_null(context, sql, key.parent)
        ):
            continue  # an UPDATE checks a foreign key only when it sets the key's columns, not to NULL
        try:
            name = key.column.table.name
        except Exception:  # an unresolved foreign key names no table yet
            continue
        if name not in parents:
            parents.append(name)
    return parents


def _set_to_null(context: Any, sql: Any, column: Any) -> bool:
    """Whether an UPDATE sets ``column`` to NULL: in its SQL, or by the bound value of every
    parameter set it runs with (SQLAlchemy binds a SET column under its key)."""
    if str(column.name).lower() in sql.nulled:
        return True
    parameters = getattr(context, "compiled_parameters", None) or []
    missing = object()
    return bool(parameters) and all(
        isinstance(p, dict) and p.get(column.key, missing) is None for p in parameters
    )


def _relative(path: str) -> str:
    """A path under the working directory as a relative one, as pytest shows test files."""
    try:
        return os.path.relpath(path) if path and not os.path.relpath(path).startswith("..") else path
    except ValueError:  # another drive
        return path


def _user_frame() -> tuple[str, int, str]:
    """The innermost frame outside SQLAlchemy, this package, pytest and the standard library.
    With asyncio, SQLAlchemy runs the statement in a greenlet of its own, whose stack ends at
    the spawn: the user's coroutine is on the stack of the greenlet that is waiting for it."""
    stdlib = os.path.dirname(os.__file__)
    frames: list[Any] = [sys._getframe(1)]
    greenlets = sys.modules.get("greenlet")
    current = greenlets.getcurrent() if greenlets is not None else None
    while frames:
        frame = frames.pop()
        while frame is not None:
            path = frame.f_code.co_filename
            machinery = any(part in path for part in _MACHINERY) or path.startswith(stdlib)
            if not (machinery or path.startswith("<")):
                return path, frame.f_lineno, frame.f_code.co_name
            frame = frame.f_back
        parent = getattr(current, "parent", None)
        if parent is not None and parent.gr_frame is not None:
            frames.append(parent.gr_frame)
            current = parent
    return "", 0, "?"


def describe(cycle: Cycle) -> str:
    """The cycle as a person reads it: every transaction, each with the lock it held and the one
    it then took, where the code asked for each."""
    tables = cycle.tables
    lines = [f"{CODE} lock-order cycle between {_names(tables)}:"]
    for edge in cycle.edges:
        lines.append(f"  transaction {edge.transaction}: {_step(edge.held)}")
        lines.append(f"      then {_step(edge.taken)}")
    together = "each waits for the other's lock" if len(tables) == 2 else "each waits for the next one's lock"
    lines.append(
        f"  run at the same time, {together}; take the locks in one order "
        f"({' before '.join(sorted(tables))} everywhere), or skip locked rows (SKIP LOCKED) on one side"
    )
    return "\n".join(lines)


def _names(tables: tuple[str, ...]) -> str:
    return " and ".join(tables) if len(tables) == 2 else f"{', '.join(tables[:-1])} and {tables[-1]}"


def _step(acquisition: Acquisition) -> str:
    return f"{acquisition.mode} on {acquisition.table} at {acquisition.where}"


def finding(cycle: Cycle) -> dict[str, Any]:
    """A cycle as the CLI's JSON finding, plus ``trace`` (every transaction) and ``source``."""
    taken = cycle.last.taken
    message = (
        f"lock-order cycle between {_names(cycle.tables)}: transactions take their locks in "
        f"{'opposite orders' if len(cycle.edges) == 2 else 'orders that close a cycle'}"
    )
    trace = [
        {
            "transaction": edge.transaction,
            "steps": [
                {"table": step.table, "mode": step.mode, "at": step.where, "sql": step.sql}
                for step in (edge.held, edge.taken)
            ],
        }
        for edge in cycle.edges
    ]
    function = taken.where.rsplit(" ", 1)[-1]
    return runtime_finding(taken.path, taken.line, CODE, message, cycle.tables[0], function, taken.sql, trace)


def runtime_finding(
    path: str,
    line: int,
    code: str,
    message: str,
    table: str | None,
    function: str,
    sql: str,
    trace: list[dict[str, Any]],
) -> dict[str, Any]:
    """A run-time finding as the CLI's JSON finding (a line, no column), with ``source`` and
    ``trace``."""
    return {
        "path": path,
        "line": line,
        "column": 1,
        "end_line": line,
        "end_column": 1,
        "code": code,
        "message": message,
        "table": table,
        "function": function,
        "statement": sql,
        "source": "runtime",
        "trace": trace,
    }
