"""Sessions inside one function: which names hold a database session or connection, what a
call does to one (uses it, or ends its transaction), and which ``except`` clauses can catch an
error the database raised.

After a statement error (a deadlock, a serialization failure, any error at all on PostgreSQL)
the transaction is dead until it is rolled back; :mod:`lockorder_lint.session_flow` follows
control flow to find the uses of such a session.
"""

from __future__ import annotations

import ast
import fnmatch
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from lockorder_lint.names import dotted_name

# Annotations that make a parameter a session whatever its name.
SESSION_TYPES = frozenset(
    {"Session", "AsyncSession", "scoped_session", "async_scoped_session", "Connection", "AsyncConnection"}
)
# Type names that are sessions even when defined in the project (e.g. Airflow's ``settings.Session``).
_SESSION_CLASSES = frozenset({"Session", "AsyncSession", "scoped_session", "async_scoped_session"})
# Calls that end the aborted transaction: afterwards the session is usable again.
RESET_METHODS = frozenset({"rollback", "close", "invalidate", "reset", "remove"})
# Session methods that only stage objects for the next flush: they raise no database error, so
# they are not work that can abort the transaction (they are still uses of a dead session).
STAGING_METHODS = frozenset({"add", "add_all", "delete"})
# Session methods that never talk to the database, so calling them is not a use.
PASSIVE_METHODS = frozenset(
    {
        "in_transaction", "in_nested_transaction", "is_modified", "expunge", "expunge_all",
        "get_bind", "get_transaction", "get_nested_transaction", "expire", "expire_all",
        "enable_relationship_loading",
    }
)  # fmt: skip
# Calls that can take a session as an argument without doing database work with it.
_PASSIVE_CALLEES = frozenset(
    {
        "isinstance", "issubclass", "id", "type", "repr", "str", "print", "len", "hasattr",
        "getattr", "bool", "debug", "info", "warning", "warn", "error", "exception", "critical",
        "log", "append", "add_note",
    }
)  # fmt: skip
# SQLAlchemy exceptions that are, or are base classes of, errors raised when a statement or a
# flush fails; after any of them the session needs rollback().
SQLALCHEMY_DB_ERRORS = frozenset(
    {
        "SQLAlchemyError", "DBAPIError", "DatabaseError", "OperationalError", "IntegrityError",
        "DataError", "InternalError", "ProgrammingError", "NotSupportedError", "InterfaceError",
        "PendingRollbackError", "InvalidRequestError", "StatementError", "StaleDataError",
        "FlushError",
    }
)  # fmt: skip
# Database drivers: every exception they define is a database error.
DRIVER_MODULES = frozenset(
    {
        "psycopg", "psycopg2", "pymysql", "MySQLdb", "asyncpg", "aiomysql", "asyncmy", "mysql",
        "mariadb", "sqlite3", "aiosqlite", "pg8000", "oracledb", "cx_Oracle", "pyodbc",
    }
)  # fmt: skip
_CATCH_ALL = frozenset({"Exception", "BaseException", "builtins.Exception", "builtins.BaseException"})
# Base classes of every error the database itself raises (SQLAlchemy wraps driver errors in them).
_ALL_DATABASE_ERRORS = frozenset({"SQLAlchemyError", "DBAPIError", "DatabaseError"})
# Libraries whose "sessions" and "connections" are not database sessions.
NON_DB_MODULES = frozenset(
    {
        "requests", "aiohttp", "httpx", "boto3", "botocore", "aiobotocore", "urllib3", "http",
        "paramiko", "kubernetes", "kubernetes_asyncio", "google", "azure", "tornado", "websockets",
        "grpc", "redis", "pika", "kafka", "ldap3", "ftplib", "smtplib", "socket", "ssl", "fsspec",
    }
)  # fmt: skip

SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
Qualify = Callable[[ast.AST], "str | None"]


def _last(dotted: str) -> str:
    return dotted.rsplit(".", 1)[-1]


def _root(dotted: str) -> str:
    return dotted.split(".", 1)[0]


class NodeCache:
    """One function's calls, remembered: the analysis asks for the calls under the same
    statements many times (loops are analysed more than once)."""

    def __init__(self) -> None:
        self._calls: dict[int, tuple[ast.Call, ...]] = {}

    def calls_in(self, node: ast.AST) -> tuple[ast.Call, ...]:
        """Every call in ``node`` in evaluation order (a call after its receiver and arguments),
        not looking into nested functions, classes or lambdas: they run some other time."""
        found = self._calls.get(id(node))
        if found is None:
            if isinstance(node, SCOPES):
                found = ()
            else:
                calls = [call for child in ast.iter_child_nodes(node) for call in self.calls_in(child)]
                if isinstance(node, ast.Call):
                    calls.append(node)
                found = tuple(calls)
            self._calls[id(node)] = found
        return found


def own_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """The nodes under ``node``, not looking into nested functions, classes or lambdas."""
    pending = list(ast.iter_child_nodes(node))
    while pending:
        current = pending.pop()
        if isinstance(current, SCOPES):
            continue
        yield current
        pending.extend(ast.iter_child_nodes(current))


def statements_in(body: Sequence[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement of a block and of the blocks inside it, not entering nested scopes."""
    for item in body:
        if isinstance(item, SCOPES):
            continue
        yield item
        for name in ("body", "orelse", "finalbody"):
            inner = getattr(item, name, None)
            if isinstance(inner, list):
                yield from statements_in(inner)
        for handler in getattr(item, "handlers", ()):
            yield from statements_in(handler.body)
        for case in getattr(item, "cases", ()):
            yield from statements_in(case.body)


def _parameters(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.arg]:
    args = function.args
    return [*args.posonlyargs, *args.args, *args.kwonlyargs]


# -- which names are sessions ------------------------------------------------------------------


class SessionNames:
    """Decides which dotted names in one function hold a database session: parameters annotated
    with a session type, ``with <factory>() as name`` targets, and the configured name patterns,
    minus names the function binds to something that is plainly not a database session."""

    def __init__(
        self,
        function: ast.FunctionDef | ast.AsyncFunctionDef,
        qualify: Qualify,
        patterns: Sequence[str],
        nodes: NodeCache,
        lock_helpers: Sequence[str] = (),
    ) -> None:
        self.qualify = qualify
        self.nodes = nodes
        self.patterns = tuple(patterns)
        # Configured lock helpers only add FOR UPDATE to a statement: handing them the session
        # (to read its dialect) is not database work.
        self.lock_helpers = frozenset(lock_helpers)
        self.declared: set[str] = set()
        self.excluded: set[str] = set()
        self.asynchronous: dict[str, bool] = {}
        # ``with session.begin_nested() as savepoint``: rolling the savepoint back resets the session.
        self.savepoints: dict[str, str] = {}
        self._read_parameters(function)
        for node in statements_in(function.body):
            if isinstance(node, (ast.With, ast.AsyncWith)):
                for item in node.items:
                    if item.optional_vars is not None:
                        self._read_savepoint(item.optional_vars, item.context_expr)
                        self._read_binding(
                            item.optional_vars, item.context_expr, isinstance(node, ast.AsyncWith)
                        )
            elif isinstance(node, ast.Assign) and len(node.targets) == 1:
                self._read_savepoint(node.targets[0], node.value)
                self._read_binding(node.targets[0], node.value, False)

    def __contains__(self, dotted: object) -> bool:
        if not isinstance(dotted, str) or dotted in self.excluded:
            return False
        return dotted in self.declared or any(fnmatch.fnmatchcase(dotted, p) for p in self.patterns)

    def of(self, node: ast.AST) -> str | None:
        """The session ``node`` names, if it names one."""
        dotted = dotted_name(node)
        return dotted if dotted is not None and dotted in self else None

    def _read_parameters(self, function: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for param in _parameters(function):
            if param.annotation is None:
                continue
            verdict = self._annotation_verdict(param.annotation)
            if verdict is True:
                self.declared.add(param.arg)
                self.asynchronous[param.arg] = self._async_annotation(param.annotation)
            elif verdict is False:
                self.excluded.add(param.arg)

    def _annotation_names(self, node: ast.AST) -> Iterator[ast.AST]:
        if isinstance(node, (ast.Name, ast.Attribute)):
            yield node
            return
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                parsed = ast.parse(node.value.strip(), mode="eval").body
            except SyntaxError:
                return
            yield from self._annotation_names(parsed)
            return
        for child in ast.iter_child_nodes(node):
            yield from self._annotation_names(child)

    def _annotation_verdict(self, annotation: ast.AST) -> bool | None:
        """True: a database session type; False: some other library's session; None: no opinion."""
        verdict: bool | None = None
        for name in self._annotation_names(annotation):
            text = dotted_name(name) or ""
            qualified = self.qualify(name) or text
            last = _last(qualified)
            if _root(qualified) in NON_DB_MODULES:
                verdict = False if verdict is None else verdict
                continue
            if last not in SESSION_TYPES:
                continue
            if _root(qualified) in ("sqlalchemy", "sqlmodel") or last in _SESSION_CLASSES:
                return True
            verdict = False
        return verdict

    def _async_annotation(self, annotation: ast.AST) -> bool:
        return any(
            _last(dotted_name(n) or "").startswith(("Async", "async_"))
            for n in self._annotation_names(annotation)
        )

    def _read_savepoint(self, target: ast.AST, value: ast.AST) -> None:
        name = dotted_name(target)
        if name is None or not isinstance(value, ast.Call) or not isinstance(value.func, ast.Attribute):
            return
        if value.func.attr == "begin_nested":
            owner = self.of(value.func.value)
            if owner is not None:
                self.savepoints[name] = owner

    def _read_binding(self, target: ast.AST, value: ast.AST, in_async_with: bool) -> None:
        dotted = dotted_name(target)
        if dotted is None or not isinstance(value, ast.Call):
            return
        callee = dotted_name(value.func)
        if callee is None:
            return
        qualified = self.qualify(value.func) or callee
        last = _last(qualified)
        if _root(qualified) in NON_DB_MODULES or last in ("get_connection", "get_connection_from_secrets"):
            self.excluded.add(dotted)
            return
        if isinstance(target, ast.Name) and last == "Connection" and _root(qualified) != "sqlalchemy":
            self.excluded.add(dotted)
            return
        if "session" in last.lower() or last in ("connect", "begin"):
            self.declared.add(dotted)
            if in_async_with or last.startswith(("Async", "async_")):
                self.asynchronous[dotted] = True


# -- what touches a session --------------------------------------------------------------------


@dataclass(frozen=True)
class SessionCall:
    """A call that uses a session (``kind`` "use") or ends its transaction ("reset")."""

    session: str
    kind: str
    call: ast.Call


def classify_call(call: ast.Call, sessions: SessionNames) -> list[SessionCall]:
    """What ``call`` does to sessions: a method on a session, or a session passed as an argument."""
    found: list[SessionCall] = []
    func = call.func
    receiver: str | None = None
    if isinstance(func, ast.Attribute) and func.attr == "rollback":
        savepoint = dotted_name(func.value)
        if savepoint in sessions.savepoints:
            return [SessionCall(sessions.savepoints[savepoint], "reset", call)]
    if isinstance(func, ast.Attribute):
        receiver = sessions.of(func.value)
        if receiver is not None:
            method = func.attr
            if method in RESET_METHODS:
                return [SessionCall(receiver, "reset", call)]
            if method not in PASSIVE_METHODS and not method.startswith("__"):
                found.append(SessionCall(receiver, "use", call))
    callee = dotted_name(func)
    if callee is not None and _last(callee) in _PASSIVE_CALLEES:
        return found
    if sessions.lock_helpers and (sessions.qualify(func) or callee) in sessions.lock_helpers:
        return found
    values = [a.value if isinstance(a, ast.Starred) else a for a in call.args]
    values += [kw.value for kw in call.keywords]
    for value in values:
        passed = sessions.of(value)
        if passed is not None and passed != receiver and all(f.session != passed for f in found):
            found.append(SessionCall(passed, "use", call))
    return found


def call_text(call: ast.Call, session: str) -> str:
    """A short rendering of a session call: ``session.get(...)``, ``helper(..., session=session)``."""
    callee = dotted_name(call.func)
    if callee is None:
        inner: ast.AST = call.func
        while isinstance(inner, ast.Attribute):
            inner = inner.value
        head = dotted_name(inner.func) if isinstance(inner, ast.Call) else None
        attr = call.func.attr if isinstance(call.func, ast.Attribute) else ""
        callee = f"{head}(...).{attr}" if head and attr else "..."
    if callee.startswith(session + "."):
        return f"{callee}(...)" if call.args or call.keywords else f"{callee}()"
    more = "..., " if len(call.args) + len(call.keywords) > 1 else ""
    for arg in call.args:
        if dotted_name(arg) == session:
            return f"{callee}({more}{session})"
    for kw in call.keywords:
        if dotted_name(kw.value) == session:
            return f"{callee}({more}{kw.arg}={session})"
    return f"{callee}(...)"


# -- which handlers catch a database error -----------------------------------------------------


def database_error(node: ast.AST | None, qualify: Qualify) -> str | None:
    """How an ``except`` clause's type can catch a database error, as the message names it;
    None when it only catches errors raised in Python without aborting the transaction."""
    if node is None:
        return "a bare `except:`"
    if isinstance(node, ast.Tuple):
        for element in node.elts:
            named = database_error(element, qualify)
            if named is not None:
                return named
        return None
    text = dotted_name(node)
    if text is None:
        return None
    qualified = qualify(node) or text
    if qualified in _CATCH_ALL:
        return f"`except {text}`"
    root = _root(qualified)
    if root == "sqlalchemy" and _last(qualified) in SQLALCHEMY_DB_ERRORS:
        return f"`except {text}`"
    if root in DRIVER_MODULES:
        return f"`except {text}`"
    return None


def catches_every_database_error(node: ast.AST | None, qualify: Qualify) -> bool:
    """True when an ``except`` clause catches every error the database raises, so that later
    clauses of the same ``try`` never see one."""
    if node is None:
        return True
    if isinstance(node, ast.Tuple):
        return any(catches_every_database_error(e, qualify) for e in node.elts)
    text = dotted_name(node)
    if text is None:
        return False
    qualified = qualify(node) or text
    return qualified in _CATCH_ALL or (
        _root(qualified) == "sqlalchemy" and _last(qualified) in _ALL_DATABASE_ERRORS
    )
