"""Sessions inside one function, for LCK003: which names hold a database session, which calls
do work on one, which ``except`` clauses can catch a database error, and where a session whose
transaction such an error aborted is used again before ``rollback()``.

After a statement error (a deadlock, a serialization failure, any error at all on PostgreSQL)
the transaction is dead until it is rolled back; every later statement on the same session
fails or, on MySQL, silently runs in a new transaction without the earlier work. The analysis
here follows control flow through the function to find those later uses.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import libcst as cst

from lockorder_lint.statements import dotted_name

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
_RETRY_ITERATOR = re.compile(r"retr(?:y|ies|ying)", re.IGNORECASE)


def _last(dotted: str) -> str:
    return dotted.rsplit(".", 1)[-1]


def _root(dotted: str) -> str:
    return dotted.split(".", 1)[0]


Qualify = Callable[[cst.BaseExpression], "str | None"]


_SCOPES = (cst.FunctionDef, cst.ClassDef, cst.Lambda)


class NodeCache:
    """One function's nodes, remembered: libcst computes ``children`` anew on every access, and
    the analysis asks for the calls under the same statements many times."""

    def __init__(self) -> None:
        self._children: dict[int, tuple[cst.CSTNode, ...]] = {}
        self._calls: dict[int, tuple[cst.Call, ...]] = {}

    def children(self, node: cst.CSTNode) -> tuple[cst.CSTNode, ...]:
        found = self._children.get(id(node))
        if found is None:
            found = self._children[id(node)] = tuple(node.children)
        return found

    def calls_in(self, node: cst.CSTNode) -> tuple[cst.Call, ...]:
        """Every call in ``node`` in evaluation order (a call after its receiver and arguments),
        not looking into nested functions, classes or lambdas: they run some other time."""
        found = self._calls.get(id(node))
        if found is None:
            if isinstance(node, _SCOPES):
                found = ()
            else:
                calls = [call for child in self.children(node) for call in self.calls_in(child)]
                if isinstance(node, cst.Call):
                    calls.append(node)
                found = tuple(calls)
            self._calls[id(node)] = found
        return found

    def own_nodes(self, node: cst.CSTNode) -> list[cst.CSTNode]:
        """The nodes under ``node``, not looking into nested functions, classes or lambdas."""
        found: list[cst.CSTNode] = []
        pending = list(reversed(self.children(node)))
        while pending:
            current = pending.pop()
            if isinstance(current, _SCOPES):
                continue
            found.append(current)
            pending.extend(reversed(self.children(current)))
        return found


def statements_in(body: cst.BaseSuite) -> Iterator[cst.CSTNode]:
    """Every statement (small or compound) of a block and the blocks inside it, reached through
    the statements' own fields (cheap, unlike a full walk), not entering nested scopes."""
    items: Sequence[cst.CSTNode] = body.body if isinstance(body, cst.IndentedBlock) else [body]
    for item in items:
        yield from _statement_tree(item)


def _statement_tree(item: cst.CSTNode) -> Iterator[cst.CSTNode]:
    if isinstance(item, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
        yield from item.body
        return
    if isinstance(item, _SCOPES):
        return
    yield item
    blocks: list[cst.BaseSuite] = []
    if isinstance(item, cst.If):
        blocks.append(item.body)
        if isinstance(item.orelse, cst.If):
            yield from _statement_tree(item.orelse)
        elif item.orelse is not None:
            blocks.append(item.orelse.body)
    elif isinstance(item, (cst.For, cst.While)):
        blocks.append(item.body)
        if item.orelse is not None:
            blocks.append(item.orelse.body)
    elif isinstance(item, (cst.Try, cst.TryStar)):
        blocks.append(item.body)
        blocks.extend(h.body for h in item.handlers)
        if item.orelse is not None:
            blocks.append(item.orelse.body)
        if item.finalbody is not None:
            blocks.append(item.finalbody.body)
    elif isinstance(item, cst.With):
        blocks.append(item.body)
    elif isinstance(item, cst.Match):
        blocks.extend(case.body for case in item.cases)
    for block in blocks:
        yield from statements_in(block)


# -- which names are sessions ------------------------------------------------------------------


class SessionNames:
    """Decides which dotted names in one function hold a database session: parameters annotated
    with a session type, ``with <factory>() as name`` targets, and the configured name patterns,
    minus names the function binds to something that is plainly not a database session."""

    def __init__(
        self,
        function: cst.FunctionDef,
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
        self._read_parameters(function.params)
        for node in statements_in(function.body):
            if isinstance(node, cst.With):
                for item in node.items:
                    if item.asname is not None:
                        self._read_savepoint(item.asname.name, item.item)
                        self._read_binding(item.asname.name, item.item, bool(node.asynchronous))
            elif isinstance(node, cst.Assign) and len(node.targets) == 1:
                self._read_binding(node.targets[0].target, node.value, False)

    def __contains__(self, dotted: object) -> bool:
        if not isinstance(dotted, str) or dotted in self.excluded:
            return False
        return dotted in self.declared or any(fnmatch.fnmatchcase(dotted, p) for p in self.patterns)

    def of(self, node: cst.CSTNode) -> str | None:
        """The session ``node`` names, if it names one."""
        dotted = dotted_name(node)
        return dotted if dotted is not None and dotted in self else None

    def _read_parameters(self, params: cst.Parameters) -> None:
        for param in (*params.posonly_params, *params.params, *params.kwonly_params):
            if param.annotation is None:
                continue
            verdict = self._annotation_verdict(param.annotation.annotation)
            if verdict is True:
                self.declared.add(param.name.value)
                self.asynchronous[param.name.value] = self._async_annotation(param.annotation.annotation)
            elif verdict is False:
                self.excluded.add(param.name.value)

    def _annotation_names(self, node: cst.CSTNode) -> Iterator[cst.BaseExpression]:
        if isinstance(node, (cst.Name, cst.Attribute)):
            yield node
            return
        if isinstance(node, cst.SimpleString):
            value = node.evaluated_value
            if isinstance(value, str):
                try:
                    parsed = cst.parse_expression(value)
                except cst.ParserSyntaxError:
                    return
                yield from self._annotation_names(parsed)
            return
        for child in node.children:
            yield from self._annotation_names(child)

    def _annotation_verdict(self, annotation: cst.BaseExpression) -> bool | None:
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

    def _async_annotation(self, annotation: cst.BaseExpression) -> bool:
        return any(
            _last(dotted_name(n) or "").startswith(("Async", "async_"))
            for n in self._annotation_names(annotation)
        )

    def _read_savepoint(self, target: cst.CSTNode, value: cst.BaseExpression) -> None:
        name = dotted_name(target)
        if name is None or not isinstance(value, cst.Call) or not isinstance(value.func, cst.Attribute):
            return
        if value.func.attr.value == "begin_nested":
            owner = self.of(value.func.value)
            if owner is not None:
                self.savepoints[name] = owner

    def _read_binding(self, target: cst.CSTNode, value: cst.BaseExpression, in_async_with: bool) -> None:
        dotted = dotted_name(target)
        if dotted is None or not isinstance(value, cst.Call):
            return
        callee = dotted_name(value.func)
        if callee is None:
            return
        qualified = self.qualify(value.func) or callee
        last = _last(qualified)
        if _root(qualified) in NON_DB_MODULES or last in ("get_connection", "get_connection_from_secrets"):
            self.excluded.add(dotted)
            return
        if isinstance(target, cst.Name) and last == "Connection" and _root(qualified) != "sqlalchemy":
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
    call: cst.Call


def classify_call(call: cst.Call, sessions: SessionNames) -> list[SessionCall]:
    """What ``call`` does to sessions: a method on a session, or a session passed as an argument."""
    found: list[SessionCall] = []
    func = call.func
    receiver: str | None = None
    if isinstance(func, cst.Attribute) and func.attr.value == "rollback":
        savepoint = dotted_name(func.value)
        if savepoint in sessions.savepoints:
            return [SessionCall(sessions.savepoints[savepoint], "reset", call)]
    if isinstance(func, cst.Attribute):
        receiver = sessions.of(func.value)
        if receiver is not None:
            method = func.attr.value
            if method in RESET_METHODS:
                return [SessionCall(receiver, "reset", call)]
            if method not in PASSIVE_METHODS and not method.startswith("__"):
                found.append(SessionCall(receiver, "use", call))
    callee = dotted_name(func)
    if callee is not None and _last(callee) in _PASSIVE_CALLEES:
        return found
    if sessions.lock_helpers and (sessions.qualify(func) or callee) in sessions.lock_helpers:
        return found
    for arg in call.args:
        passed = sessions.of(arg.value)
        if passed is not None and passed != receiver and all(f.session != passed for f in found):
            found.append(SessionCall(passed, "use", call))
    return found


def call_text(call: cst.Call, session: str) -> str:
    """A short rendering of a session call: ``session.get(...)``, ``helper(..., session=session)``."""
    callee = dotted_name(call.func)
    if callee is None:
        inner = call.func
        while isinstance(inner, cst.Attribute):
            inner = inner.value
        head = dotted_name(inner.func) if isinstance(inner, cst.Call) else None
        attr = call.func.attr.value if isinstance(call.func, cst.Attribute) else ""
        callee = f"{head}(...).{attr}" if head and attr else "..."
    if callee.startswith(session + "."):
        return f"{callee}(...)" if call.args else f"{callee}()"
    for arg in call.args:
        if dotted_name(arg.value) == session:
            shown = f"{arg.keyword.value}={session}" if arg.keyword is not None else session
            more = "..., " if len(call.args) > 1 else ""
            return f"{callee}({more}{shown})"
    return f"{callee}(...)"


def _protected(stmt: cst.With, sessions: SessionNames) -> set[str]:
    """Sessions whose work inside this ``with`` cannot leave an outer transaction aborted: a
    savepoint (``begin_nested``) or a ``begin()`` block rolls back on error, and a ``with ... as
    session`` target is a different session from the one outside."""
    names: set[str] = set()
    for item in stmt.items:
        expr = item.item
        if (
            isinstance(expr, cst.Call)
            and isinstance(expr.func, cst.Attribute)
            and expr.func.attr.value in ("begin_nested", "begin")
        ):
            owner = sessions.of(expr.func.value)
            if owner is not None:
                names.add(owner)
        if item.asname is not None:
            bound = dotted_name(item.asname.name)
            if bound is not None:
                names.add(bound)
    return names


def session_work(body: cst.CSTNode, sessions: SessionNames, qualify: Qualify) -> dict[str, cst.Call]:
    """The first call doing work on each session in ``body`` whose failure would leave that
    session's transaction aborted. Not work: staging calls (``add``, ``delete``), acquiring a
    context (the items of a ``with``), and work shielded by a savepoint, a ``begin()`` block, a
    fresh ``with ... as session``, or an inner ``try`` whose database handler rolls back first."""
    work: dict[str, cst.Call] = {}

    def visit(node: cst.CSTNode, shielded: frozenset[str]) -> None:
        if isinstance(node, _SCOPES):
            return
        if isinstance(node, cst.With):
            visit(node.body, shielded | _protected(node, sessions))
            return
        if isinstance(node, (cst.Try, cst.TryStar)):
            visit(node.body, shielded | _rolled_back_by_handler(node, sessions, qualify))
            for child in sessions.nodes.children(node):
                if child is not node.body:
                    visit(child, shielded)
            return
        for child in sessions.nodes.children(node):
            visit(child, shielded)
        if isinstance(node, cst.Call):
            for found in classify_call(node, sessions):
                if found.kind != "use" or found.session in shielded:
                    continue
                func = node.func
                staging = (
                    isinstance(func, cst.Attribute)
                    and func.attr.value in STAGING_METHODS
                    and sessions.of(func.value) == found.session
                )
                if not staging:
                    work.setdefault(found.session, node)

    visit(body, frozenset())
    return work


def _rolled_back_by_handler(
    stmt: cst.Try | cst.TryStar, sessions: SessionNames, qualify: Qualify
) -> set[str]:
    """Sessions that a handler of ``stmt`` catching database errors rolls back before using:
    an error from that try body does not leave them aborted for an outer handler."""
    names: set[str] = set()
    for handler in stmt.handlers:
        if database_error(handler.type, qualify) is None:
            continue
        used: set[str] = set()
        for line in handler.body.body if isinstance(handler.body, cst.IndentedBlock) else [handler.body]:
            for call in sessions.nodes.calls_in(line):
                for effect in classify_call(call, sessions):
                    if effect.kind == "reset" and effect.session not in used:
                        names.add(effect.session)
                    used.add(effect.session)
    return names


# -- which handlers catch a database error -----------------------------------------------------


def database_error(node: cst.BaseExpression | None, qualify: Qualify) -> str | None:
    """How an ``except`` clause's type can catch a database error, as the message names it;
    None when it only catches errors raised in Python without aborting the transaction."""
    if node is None:
        return "a bare `except:`"
    if isinstance(node, cst.Tuple):
        for element in node.elements:
            named = database_error(element.value, qualify)
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


def catches_every_database_error(node: cst.BaseExpression | None, qualify: Qualify) -> bool:
    """True when an ``except`` clause catches every error the database raises, so that later
    clauses of the same ``try`` never see one."""
    if node is None:
        return True
    if isinstance(node, cst.Tuple):
        return any(catches_every_database_error(e.value, qualify) for e in node.elements)
    text = dotted_name(node)
    if text is None:
        return False
    qualified = qualify(node) or text
    return qualified in _CATCH_ALL or (
        _root(qualified) == "sqlalchemy" and _last(qualified) in _ALL_DATABASE_ERRORS
    )


# -- which branches run on the configured databases --------------------------------------------

_DIALECTS = frozenset({"postgresql", "mysql", "mariadb", "sqlite", "oracle", "mssql"})


def _is_dialect_name(node: cst.BaseExpression) -> bool:
    """``dialect``, ``dialect_name``, ``conn.dialect.name``, ``op.get_bind().dialect.name``."""
    if isinstance(node, cst.Name):
        return node.value in ("dialect", "dialect_name", "db_dialect")
    if isinstance(node, cst.Attribute):
        if node.attr.value in ("dialect_name",):
            return True
        if node.attr.value == "name" and isinstance(node.value, cst.Attribute):
            return node.value.attr.value == "dialect"
        return node.attr.value == "dialect"
    return False


def dialects_where_true(test: cst.BaseExpression) -> frozenset[str] | None:
    """The dialects for which a test like ``dialect == "sqlite"`` holds; None when the test is
    not about the dialect."""
    if not isinstance(test, cst.Comparison) or len(test.comparisons) != 1:
        return None
    target = test.comparisons[0]
    left, right = test.left, target.comparator
    if _is_dialect_name(right) and not _is_dialect_name(left):
        left, right = right, left
    if not _is_dialect_name(left):
        return None
    values: list[cst.BaseExpression] = [right] if isinstance(right, cst.SimpleString) else []
    if isinstance(right, (cst.Tuple, cst.List, cst.Set)):
        values = [e.value for e in right.elements]
    names: set[str] = set()
    for value in values:
        literal = value.evaluated_value if isinstance(value, cst.SimpleString) else None
        if not isinstance(literal, str):
            return None
        names.add(literal)
    if not names:
        return None
    named = frozenset(names)
    if isinstance(target.operator, (cst.Equal, cst.In)):
        return named
    if isinstance(target.operator, (cst.NotEqual, cst.NotIn)):
        return _DIALECTS - named
    return None


# -- where an aborted session is used again ----------------------------------------------------


@dataclass(frozen=True)
class Catch:
    """A place that swallows a database error: an ``except`` clause, or a tenacity ``with
    attempt:`` block inside a retry loop (which swallows the error and runs the loop again)."""

    node: cst.CSTNode
    exception: str
    work: dict[str, cst.Call] = field(hash=False, compare=False)


HANDLER, AFTER, LOOP = "handler", "after", "loop"


@dataclass(frozen=True)
class AbortedUse:
    """A use of ``session`` that can run after ``catch`` swallowed a database error raised by
    ``catch.work[session]``, with no rollback in between. ``where`` is ``handler`` (inside the
    except clause), ``after`` (on the path after the try statement) or ``loop`` (in the next
    iteration of the enclosing loop)."""

    session: str
    use: cst.Call
    statement: cst.CSTNode
    catch: Catch
    where: str


# A taint: (session, catch index, phase).
Taint = tuple[str, int, str]
State = frozenset[Taint]


@dataclass
class _Exits:
    """Where control leaves a block: falling off its end (None when it cannot), break, continue.
    Returns and raises leave the function; no session use can follow them here."""

    normal: State | None
    breaks: State = frozenset()
    continues: State = frozenset()


def _union(*states: State | None) -> State | None:
    present = [s for s in states if s is not None]
    if not present:
        return None
    result: frozenset[Taint] = frozenset()
    for state in present:
        result |= state
    return result


def _is_forever(test: cst.BaseExpression) -> bool:
    return (isinstance(test, cst.Name) and test.value == "True") or (
        isinstance(test, cst.Integer) and test.value != "0"
    )


class AbortedSessionAnalysis:
    """A forward may-analysis over one function body. Entering a handler that can catch a
    database error taints each session the ``try`` body worked on; a reset (``rollback()``,
    ``close()``...) or rebinding the name clears the taint; a use of a tainted session is
    recorded. For each catch and session, the first use inside the handler and the first use
    after it (after the try statement, or around the loop) are kept."""

    _MAX_LOOP_PASSES = 4

    def __init__(
        self, function: cst.FunctionDef, sessions: SessionNames, qualify: Qualify, dialects: Sequence[str]
    ) -> None:
        self.function = function
        self.dialects = frozenset("mysql" if d == "mariadb" else d for d in dialects)
        self.sessions = sessions
        self.qualify = qualify
        self.catches: list[Catch] = []
        self._catch_index: dict[int, int] = {}
        self.found: dict[tuple[int, str, str], AbortedUse] = {}
        self._retry_targets: list[str] = []
        self._statement: cst.CSTNode = function
        self._work_of: dict[int, dict[str, cst.Call]] = {}

    def run(self) -> list[AbortedUse]:
        self.block(self.function.body, frozenset())
        return list(self.found.values())

    # -- blocks and statements

    def block(self, body: cst.BaseSuite, state: State) -> _Exits:
        items: Sequence[cst.CSTNode] = body.body if isinstance(body, cst.IndentedBlock) else [body]
        current: State | None = state
        breaks: State = frozenset()
        continues: State = frozenset()
        for item in items:
            if current is None:
                break
            exits = self.statement(item, current)
            breaks |= exits.breaks
            continues |= exits.continues
            current = exits.normal
        return _Exits(current, breaks, continues)

    def statement(self, stmt: cst.CSTNode, state: State) -> _Exits:
        if isinstance(stmt, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
            current: State | None = state
            for small in stmt.body:
                assert current is not None
                exits = self.small(small, current)
                if exits.normal is None:
                    return exits
                current = exits.normal
            return _Exits(current)
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            return _Exits(state)
        if isinstance(stmt, cst.If):
            return self.if_statement(stmt, state, self.dialects)
        if isinstance(stmt, (cst.For, cst.While)):
            return self.loop(stmt, state)
        if isinstance(stmt, (cst.Try, cst.TryStar)):
            return self.try_statement(stmt, state)
        if isinstance(stmt, cst.With):
            return self.with_statement(stmt, state)
        if isinstance(stmt, cst.Match):
            state = self.expression(stmt.subject, state)
            results = [self.block(case.body, state) for case in stmt.cases]
            return _Exits(
                _union(state, *(r.normal for r in results)),
                _union(frozenset(), *(r.breaks for r in results)) or frozenset(),
                _union(frozenset(), *(r.continues for r in results)) or frozenset(),
            )
        return _Exits(state)

    def if_statement(self, stmt: cst.If, state: State, live: frozenset[str]) -> _Exits:
        """An ``if``; a branch that only runs on databases the configuration does not target
        (``if dialect == "sqlite":``) is skipped, since what it does there differs."""
        self._statement = stmt.test
        state = self.expression(stmt.test, state)
        matched = dialects_where_true(stmt.test)
        if matched is not None:
            matched = frozenset("mysql" if d == "mariadb" else d for d in matched)
        body_live = live if matched is None else live & matched
        else_live = live if matched is None else live - matched
        then = self.block(stmt.body, state) if body_live else _Exits(None)
        if not else_live and matched is not None:
            other = _Exits(None)
        elif isinstance(stmt.orelse, cst.If):
            other = self.if_statement(stmt.orelse, state, else_live)
        elif isinstance(stmt.orelse, cst.Else):
            other = self.block(stmt.orelse.body, state)
        else:
            other = _Exits(state)
        return _Exits(
            _union(then.normal, other.normal),
            then.breaks | other.breaks,
            then.continues | other.continues,
        )

    def small(self, small: cst.BaseSmallStatement, state: State) -> _Exits:
        self._statement = small
        if isinstance(small, cst.Break):
            return _Exits(None, breaks=state)
        if isinstance(small, cst.Continue):
            return _Exits(None, continues=state)
        state = self.expression(small, state)
        if isinstance(small, (cst.Return, cst.Raise)):
            return _Exits(None)
        if isinstance(small, (cst.Assign, cst.AnnAssign)):
            targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
            for target in targets:
                state = self._rebind(target, state)
        return _Exits(state)

    def _rebind(self, target: cst.CSTNode, state: State) -> State:
        """A new object bound to a session's name is a fresh session: its taint ends."""
        if isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                state = self._rebind(element.value, state)
            return state
        dotted = dotted_name(target)
        if dotted is None:
            return state
        return frozenset(t for t in state if t[0] != dotted)

    def expression(self, node: cst.CSTNode, state: State) -> State:
        if not state:  # nothing is aborted: neither uses nor resets matter
            return state
        for call in self.sessions.nodes.calls_in(node):
            for effect in classify_call(call, self.sessions):
                if effect.kind == "reset":
                    state = frozenset(t for t in state if t[0] != effect.session)
                    continue
                for session, index, phase in state:
                    if session == effect.session:
                        self._record(session, index, phase, call)
        return state

    def _record(self, session: str, index: int, phase: str, call: cst.Call) -> None:
        group = HANDLER if phase == HANDLER else AFTER
        key = (index, session, group)
        if key not in self.found:
            self.found[key] = AbortedUse(session, call, self._statement, self.catches[index], phase)

    # -- compound statements

    def loop(self, stmt: cst.For | cst.While, state: State) -> _Exits:
        head = stmt.iter if isinstance(stmt, cst.For) else stmt.test
        self._statement = head
        state = self.expression(head, state)
        retry = (
            isinstance(stmt, cst.For)
            and isinstance(stmt.iter, cst.Call)
            and isinstance(stmt.target, cst.Name)
            and bool(_RETRY_ITERATOR.search(dotted_name(stmt.iter.func) or ""))
        )
        first_catch = len(self.catches)
        if retry:
            assert isinstance(stmt, cst.For) and isinstance(stmt.target, cst.Name)
            self._retry_targets.append(stmt.target.value)
        top = state
        breaks: State = frozenset()
        for _ in range(self._MAX_LOOP_PASSES):
            exits = self.block(stmt.body, top)
            breaks |= exits.breaks
            back = _union(exits.normal, exits.continues) or frozenset()
            new_top = top | frozenset((s, i, LOOP if p == AFTER else p) for s, i, p in back)
            if new_top == top:
                break
            top = new_top
        if retry:
            self._retry_targets.pop()
            # A retry iterator that runs out raises the last error: nothing after the loop runs
            # on the session its own attempts aborted.
            top = frozenset(t for t in top if t[1] < first_catch or not self._is_retry_catch(t[1]))
        exhausted: State | None = None if isinstance(stmt, cst.While) and _is_forever(stmt.test) else top
        if stmt.orelse is not None and exhausted is not None:
            exhausted = self.block(stmt.orelse.body, exhausted).normal
        return _Exits(_union(exhausted, breaks if breaks else None))

    def _is_retry_catch(self, index: int) -> bool:
        return isinstance(self.catches[index].node, cst.With)

    def _catch(self, node: cst.CSTNode, exception: str, work: dict[str, cst.Call]) -> int:
        key = id(node)
        if key not in self._catch_index:
            self._catch_index[key] = len(self.catches)
            self.catches.append(Catch(node, exception, work))
        return self._catch_index[key]

    def try_statement(self, stmt: cst.Try | cst.TryStar, state: State) -> _Exits:
        body = self.block(stmt.body, state)
        catching: list[str | None] = []
        shadowed = False  # an earlier clause already took every database error
        for clause in stmt.handlers:
            catching.append(None if shadowed else database_error(clause.type, self.qualify))
            shadowed = shadowed or catches_every_database_error(clause.type, self.qualify)
        work = self._work(stmt.body) if any(c is not None for c in catching) else {}
        # The handler may be entered from anywhere in the body; taints the body started with or
        # produced reach it too.
        entry = state | (body.normal or frozenset())
        normal: list[State | None] = []
        breaks, continues = body.breaks, body.continues
        if stmt.orelse is not None and body.normal is not None:
            other = self.block(stmt.orelse.body, body.normal)
            normal.append(other.normal)
            breaks |= other.breaks
            continues |= other.continues
        else:
            normal.append(body.normal)
        handlers: Sequence[cst.ExceptHandler | cst.ExceptStarHandler] = stmt.handlers
        for position, handler in enumerate(handlers):
            self._statement = handler
            exception = catching[position] if work else None
            handler_entry = entry
            index = -1
            if exception is not None:
                index = self._catch(handler, exception, work)
                handler_entry = entry | frozenset((s, index, HANDLER) for s in work)
            exits = self.block(handler.body, handler_entry)
            normal.append(self._leave(exits.normal, index))
            breaks |= self._leave(exits.breaks, index) or frozenset()
            continues |= self._leave(exits.continues, index) or frozenset()
        after = _Exits(_union(*normal), breaks, continues)
        if stmt.finalbody is None:
            return after
        final = stmt.finalbody.body
        through = self.block(final, after.normal) if after.normal is not None else None
        final_breaks = self.block(final, after.breaks).normal if after.breaks else None
        final_continues = self.block(final, after.continues).normal if after.continues else None
        return _Exits(
            through.normal if through is not None else None,
            (final_breaks or frozenset()) | (through.breaks if through else frozenset()),
            (final_continues or frozenset()) | (through.continues if through else frozenset()),
        )

    def _work(self, body: cst.BaseSuite) -> dict[str, cst.Call]:
        """``session_work`` of a block, once: loops analyse their bodies more than once."""
        found = self._work_of.get(id(body))
        if found is None:
            found = self._work_of[id(body)] = session_work(body, self.sessions, self.qualify)
        return found

    @staticmethod
    def _leave(state: State | None, index: int) -> State | None:
        """Leaving the handler: its taints now describe the path after the try statement."""
        if state is None or index < 0:
            return state
        return frozenset((s, i, AFTER if i == index and p == HANDLER else p) for s, i, p in state)

    def with_statement(self, stmt: cst.With, state: State) -> _Exits:
        for item in stmt.items:
            self._statement = item
            state = self.expression(item.item, state)
            if item.asname is not None:
                state = self._rebind(item.asname.name, state)
        attempt = (
            len(stmt.items) == 1
            and stmt.items[0].asname is None
            and isinstance(stmt.items[0].item, cst.Name)
            and stmt.items[0].item.value in self._retry_targets
        )
        exits = self.block(stmt.body, state)
        if not attempt:
            return exits
        work = self._work(stmt.body)
        if not work:
            return exits
        index = self._catch(stmt, "a tenacity `with attempt:` block (it swallows the error to retry)", work)
        swallowed = state | (exits.normal or frozenset()) | frozenset((s, index, AFTER) for s in work)
        return _Exits(_union(exits.normal, swallowed), exits.breaks, exits.continues)


def is_async_session(session: str, sessions: SessionNames, function: cst.FunctionDef) -> bool:
    """Whether ``session.rollback()`` must be awaited: an async type or ``async with`` binding
    says so; otherwise an awaited call on the session does; otherwise an async function does."""
    if session in sessions.asynchronous:
        return sessions.asynchronous[session]
    for node in sessions.nodes.own_nodes(function.body):
        if isinstance(node, cst.Await) and isinstance(node.expression, cst.Call):
            effects = classify_call(node.expression, sessions)
            if any(f.session == session and f.kind != "use" or _on(f, session) for f in effects):
                return True
    if session in sessions.declared:
        return False
    return function.asynchronous is not None


def _on(effect: SessionCall, session: str) -> bool:
    """The call is a method of ``session`` itself (not the session passed to something else)."""
    func = effect.call.func
    return (
        effect.session == session and isinstance(func, cst.Attribute) and dotted_name(func.value) == session
    )


def aborted_session_uses(
    function: cst.FunctionDef,
    qualify: Qualify,
    session_patterns: Sequence[str],
    dialects: Sequence[str] = ("postgresql",),
    lock_helpers: Sequence[str] = (),
) -> tuple[list[AbortedUse], SessionNames]:
    """Every use of a session that a swallowed database error may have left aborted."""
    sessions = SessionNames(function, qualify, session_patterns, NodeCache(), lock_helpers)
    analysis = AbortedSessionAnalysis(function, sessions, qualify, dialects)
    return analysis.run(), sessions
