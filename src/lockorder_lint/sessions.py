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
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

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
# Session methods that never talk to the database, so calling them is not a use. ``connection()``
# and ``execution_options()`` send no SQL (and ``connection()`` returns normally on an aborted
# PostgreSQL transaction): a call chained on their result is a call on the session itself.
PASSIVE_METHODS = frozenset(
    {
        "in_transaction", "in_nested_transaction", "is_modified", "expunge", "expunge_all",
        "get_bind", "get_transaction", "get_nested_transaction", "expire", "expire_all",
        "enable_relationship_loading", "connection", "execution_options",
    }
)  # fmt: skip
# Methods whose result stands for the session in a chained call (``session.connection().execute``).
_CHAINED_METHODS = frozenset({"connection", "execution_options"})
# Session methods that write, or make the transaction's pending writes land (``commit``/``flush``).
WRITE_METHODS = frozenset(
    {
        "commit", "flush", "add", "add_all", "merge", "delete", "bulk_save_objects",
        "bulk_insert_mappings", "bulk_update_mappings",
    }
)  # fmt: skip
# Session methods that run the statement they are given: whether they write depends on it.
EXECUTE_METHODS = frozenset({"execute", "exec_driver_sql", "scalar", "scalars", "stream", "stream_scalars"})
# Statement constructors (the innermost call of a chain) that write, and SQL verbs that do.
_WRITING_BUILDERS = frozenset({"insert", "update", "delete", "merge", "upsert", "replace"})
_WRITING_VERBS = frozenset(
    {"insert", "update", "delete", "merge", "upsert", "replace", "create", "alter", "drop", "truncate",
     "grant", "revoke", "copy", "call", "lock"}
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


def provider_names(providers: Iterable[str]) -> frozenset[str]:
    """The configured session providers by last name, as calls and decorators are matched."""
    return frozenset(p.rsplit(".", 1)[-1] for p in providers)


def provides_session(decorator: ast.expr, names: Collection[str]) -> bool:
    """Whether a decorator (``@provide_session``, ``@utils.provide_session(...)``) is a session
    provider named in ``names`` (last names): it hands the function a new session when its
    caller gives none."""
    name = dotted_name(decorator.func if isinstance(decorator, ast.Call) else decorator)
    return name is not None and name.rsplit(".", 1)[-1] in names


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


# Session and connection methods that only SQLAlchemy (or a DB-API connection) has: calling one
# on a name is evidence that the name holds a database session.
EVIDENCE_METHODS = frozenset(
    {
        "query", "scalars", "scalar", "flush", "merge", "add_all", "refresh", "begin_nested",
        "exec_driver_sql", "bulk_save_objects", "bulk_insert_mappings", "bulk_update_mappings",
        "get_bind", "cursor", "execution_options", "in_transaction", "no_autoflush",
    }
)  # fmt: skip
# Calls whose result is a session or connection, by their last name.
_FACTORY_NAMES = frozenset(
    {"sessionmaker", "scoped_session", "Session", "AsyncSession", "async_sessionmaker"}
)
_STATEMENT_BUILDERS = frozenset(
    {"text", "select", "update", "delete", "insert", "union", "union_all", "exists"}
)
# Modules whose connections are outside any transaction unless asked (autocommit), so a failed
# statement aborts nothing: a raw asyncpg connection.
_AUTOCOMMIT_DRIVERS = frozenset({"asyncpg"})
_ENGINE_URL = re.compile(r"^\s*(?P<scheme>[\w]+)(?:\+\w+)?://")


@dataclass(frozen=True)
class SessionEffect:
    """What a project function does to one session along its body, answering the two questions
    the analysis asks of a call to it.

    ``resets_first``: it resets the session (``rollback()``...) before any work on it, so that a
    call to it in a handler makes the session usable again. ``work``: some call in it can fail in
    the database and leave the transaction aborted for the caller (one not shielded by a
    savepoint, or by a handler of its own that rolls back every database error), so that a call to
    it in a ``try`` body is work. Staging (``add``) before a ``commit()`` is work through the
    commit: the strongest effect along the body counts, not the first. ``writes``: it writes, or
    commits or flushes writes, so that on an aborted transaction its write never lands (else a
    call to it only fails). ``uses``: it touches the session at all besides resetting it.
    ``ends``: it commits, rolls back, closes or begins the session's transaction somewhere, so
    that a call to it cannot run under a savepoint of the caller's."""

    resets_first: bool = False
    work: bool = False
    writes: bool = False
    uses: bool = False
    ends: bool = False


@dataclass(frozen=True)
class Callee:
    """What a project function does to the sessions it is handed or shares: for each of its
    parameters (by name) and each module-level session it uses (by qualified name), its
    :class:`SessionEffect`."""

    params: tuple[str, ...]
    bound_first: bool
    effects: dict[str, SessionEffect] = field(hash=False, compare=False)
    name: str = ""


class Calls(Protocol):
    """Calls into the project, as far as the session analysis needs them."""

    def callee(self, call: ast.Call) -> Callee | None: ...

    def never_returns(self, call: ast.Call) -> bool: ...

    def rolls_back(self, decorator: ast.AST) -> bool: ...

    def shares_sessions(self) -> bool: ...


class SessionNames:
    """Decides which dotted names in one function hold a database session or connection.

    A name counts only with evidence: an annotation with a session type, construction from a
    session factory, an engine's ``connect()``/``begin()``, a session provider (``provide_session``,
    ``Depends(get_db)``, configurable), or, for a name matching ``session-names``, a call on it
    that only a SQLAlchemy session or DB-API connection has (``query``, ``flush``, ``execute`` of
    a SQLAlchemy statement...). Names bound to another library's "session", to a connection in
    autocommit mode, or to an engine for a database without transactions are never sessions.
    Sessions bound at module level (Flask-SQLAlchemy's ``db.session``) are named by their
    qualified name, so that helpers in other modules speak of the same one."""

    def __init__(
        self,
        function: ast.FunctionDef | ast.AsyncFunctionDef,
        qualify: Qualify,
        patterns: Sequence[str],
        nodes: NodeCache,
        lock_helpers: Sequence[str] = (),
        providers: Sequence[str] = (),
        in_project: Callable[[str], bool] = lambda qualified: True,
        canonical: Callable[[str], str] = lambda qualified: qualified,
    ) -> None:
        self.qualify = qualify
        # A module-level session's qualified name as the module that binds it has it (a package
        # may re-export it): the key helpers and callers share.
        self.canonical = canonical
        # Whether a qualified name is the project's own (else an installed library's).
        self.in_project = in_project
        self.nodes = nodes
        self.patterns = tuple(patterns)
        # Configured lock helpers only add FOR UPDATE to a statement: handing them the session
        # (to read its dialect) is not database work.
        self.lock_helpers = frozenset(lock_helpers)
        self.providers = provider_names(providers)
        self.declared: set[str] = set()
        self.excluded: set[str] = set()
        self.evidenced: set[str] = set()
        self.asynchronous: dict[str, bool] = {}
        # ``with session.begin_nested() as savepoint``: rolling the savepoint back resets the session.
        self.savepoints: dict[str, str] = {}
        # How this function writes each session key it uses (``db.session`` for a qualified key).
        self.written: dict[str, str] = {}
        self._assigned: dict[str, ast.AST] = {}
        self._bindings: dict[str, list[ast.AST]] = {}
        self._engines: dict[str, bool] = {}  # local engine names: do they reach a transactional database
        for statement in function.body:
            for call in nodes.calls_in(statement):
                self._read_usage(call)
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

    def bound_values(self, dotted: str) -> list[ast.AST]:
        """The expressions bound to ``dotted`` in the function (``stmt = update(...)``, then
        ``stmt = stmt.where(...)``)."""
        return self._bindings.get(dotted, [])

    def binds(self, dotted: str) -> bool:
        """Whether the function binds ``dotted`` (to some expression)."""
        return dotted in self._bindings

    def any(self) -> bool:
        """Whether the function has a session of its own at all (else only helpers' shared ones)."""
        return any(name in self for name in self.declared | self.evidenced)

    def __contains__(self, dotted: object) -> bool:
        if not isinstance(dotted, str) or dotted in self.excluded:
            return False
        if dotted in self.declared:
            return True
        return dotted in self.evidenced and self._named_like_a_session(dotted)

    def _named_like_a_session(self, dotted: str) -> bool:
        return any(fnmatch.fnmatchcase(dotted, p) for p in self.patterns)

    def of(self, node: ast.AST) -> str | None:
        """The session ``node`` names (its key: qualified for a module-level session), if any."""
        dotted = dotted_name(node)
        if dotted is None or dotted not in self:
            return None
        key = self.key(dotted)
        self.written.setdefault(key, dotted)
        return key

    def key(self, dotted: str) -> str:
        """A module-level session (``db.session``) by its qualified name; a local one as written."""
        head = dotted.partition(".")[0]
        if head in ("self", "cls"):
            return dotted
        qualified = self.qualify(ast.parse(dotted, mode="eval").body) if "." in dotted else None
        return self.canonical(qualified) if qualified else dotted

    # -- evidence

    def _read_parameters(self, function: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        decorated = any(provides_session(d, self.providers) for d in function.decorator_list)
        args = function.args
        defaults: dict[str, ast.AST] = {}
        positional = [*args.posonlyargs, *args.args]
        for param, default in zip(
            positional[len(positional) - len(args.defaults) :], args.defaults, strict=True
        ):
            defaults[param.arg] = default
        for param, kw_default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
            if kw_default is not None:
                defaults[param.arg] = kw_default
        for param in _parameters(function):
            verdict = self._annotation_verdict(param.annotation) if param.annotation is not None else None
            given = defaults.get(param.arg)
            if verdict is None and isinstance(given, ast.Call) and self._provided(given):
                verdict = True  # ``db: ... = Depends(get_db)``
            if verdict is None and decorated and self._named_like_a_session(param.arg):
                verdict = True  # ``@provide_session`` fills it
            if verdict is True:
                self.declared.add(param.arg)
                if param.annotation is not None:
                    self.asynchronous[param.arg] = self._async_annotation(param.annotation)
            elif verdict is False:
                self.excluded.add(param.arg)

    def _provided(self, call: ast.Call) -> bool:
        """``Depends(get_db)`` / ``Depends(provide_session)`` with a configured provider."""
        name = _last(dotted_name(call.func) or "")
        if name != "Depends" or not call.args:
            return False
        provider = _last(dotted_name(call.args[0]) or "")
        return (
            provider in self.providers or "session" in provider.lower() or provider in ("get_db", "get_conn")
        )

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
            if _root(qualified) in NON_DB_MODULES or _root(qualified) in _AUTOCOMMIT_DRIVERS:
                verdict = False if verdict is None else verdict
                continue
            if last in SESSION_TYPES:
                if _root(qualified) in ("sqlalchemy", "sqlmodel") or last in _SESSION_CLASSES:
                    return True
                verdict = False
            elif last.endswith(("SessionDep", "DbSession", "DBSession")):
                return True  # ``Annotated[Session, Depends(...)]`` under a project alias
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
        if dotted is None:
            return
        self._assigned[dotted] = value
        self._bindings.setdefault(dotted, []).append(value)
        if isinstance(value, ast.Await):
            value = value.value
        if not isinstance(value, ast.Call):
            return
        if _autocommit(value):
            self.excluded.add(dotted)
            return
        callee = dotted_name(value.func) or ""
        qualified = self.qualify(value.func) or callee
        if not qualified and isinstance(value.func, ast.Attribute):
            qualified = value.func.attr  # ``make_engine().connect()``: the method decides
        last = _last(qualified)
        root = _root(qualified)
        if last == "create_engine":
            self._engines[dotted] = _transactional_url(value)
            return
        if (
            root in NON_DB_MODULES
            or root in _AUTOCOMMIT_DRIVERS
            or last in ("get_connection", "get_connection_from_secrets")
        ):
            self.excluded.add(dotted)
            return
        if isinstance(target, ast.Name) and last == "Connection" and root != "sqlalchemy":
            self.excluded.add(dotted)
            return
        if last in ("connect", "begin") and isinstance(value.func, ast.Attribute):
            engine = dotted_name(value.func.value)
            if engine in self._engines and not self._engines[engine]:
                self.excluded.add(dotted)  # an engine for a database without transactions
                return
        if root in DRIVER_MODULES and last == "connect":
            self.declared.add(dotted)
            return
        imported = self.qualify(value.func) is not None and root not in (
            "sqlalchemy",
            "sqlmodel",
            "flask_sqlalchemy",
        )
        if imported and not self.in_project(qualified):
            return  # another library's "session" (an onnxruntime InferenceSession, an HTTP client)
        if (
            "session" in last.lower()
            or last in ("connect", "begin")
            or last in _FACTORY_NAMES
            or last in self.providers
        ):
            self.declared.add(dotted)
            if in_async_with or last.startswith(("Async", "async_")):
                self.asynchronous[dotted] = True

    def _read_usage(self, call: ast.Call) -> None:
        """Evidence from use: a method only a database session or connection has, or being
        passed as a session (``helper(..., session=session)``)."""
        for kw in call.keywords:
            passed = dotted_name(kw.value)
            if kw.arg is not None and passed is not None and self._named_like_a_session(kw.arg):
                self.evidenced.add(passed)
        func = call.func
        if not isinstance(func, ast.Attribute):
            return
        owner = dotted_name(func.value)
        if owner is None:
            return
        method = func.attr
        first = call.args[0] if call.args else None
        staged = method in ("add", "delete") and first is not None and _constructs(first)
        # ``execute`` of a statement (not of a SQL string, as asyncpg's and raw drivers' take):
        # what the statement is may be known only to the helper that built it.
        executed = method == "execute" and first is not None and not _sql_string(first)
        fetched = method == "get" and first is not None and self._sqlalchemy_argument(first)
        ended = method in ("commit", "rollback") and not call.args
        if method in EVIDENCE_METHODS or staged or executed or fetched or ended:
            self.evidenced.add(owner)

    def _sqlalchemy_argument(self, node: ast.AST, depth: int = 0) -> bool:
        """A SQLAlchemy statement, ``text(...)``, or a name bound in this function to one."""
        if isinstance(node, ast.Name) and node.id in self._assigned and depth < 3:
            return self._sqlalchemy_argument(self._assigned[node.id], depth + 1)
        inner = node
        while isinstance(inner, (ast.Call, ast.Attribute)):
            inner = inner.func if isinstance(inner, ast.Call) else inner.value
            if isinstance(inner, (ast.Name, ast.Attribute)):
                qualified = self.qualify(inner) or ""
                if (
                    qualified.startswith(("sqlalchemy.", "sqlmodel."))
                    or _last(qualified) in _STATEMENT_BUILDERS
                ):
                    return True
        if isinstance(node, (ast.Name, ast.Attribute)):
            qualified = self.qualify(node) or ""
            return qualified.split(".", 1)[0] not in ("", "builtins") and not qualified.startswith("typing")
        return False


def _sql_string(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def _constructs(node: ast.AST) -> bool:
    """``Model(...)``: a capitalised call, the way ORM objects are made."""
    return isinstance(node, ast.Call) and _last(dotted_name(node.func) or "")[:1].isupper()


def _autocommit(call: ast.Call) -> bool:
    """``isolation_level="AUTOCOMMIT"`` anywhere in the expression that made the connection."""
    for node in ast.walk(call):
        if isinstance(node, ast.keyword) and node.arg == "isolation_level":
            value = node.value
            if isinstance(value, ast.Constant) and str(value.value).upper() == "AUTOCOMMIT":
                return True
    return False


def _transactional_url(call: ast.Call) -> bool:
    """Whether ``create_engine(url)`` may reach a database whose failed statements abort the
    transaction; a literal URL for another backend (``gsheets://``, ``sqlite://``) does not."""
    if not call.args or not isinstance(call.args[0], ast.Constant) or not isinstance(call.args[0].value, str):
        return True
    match = _ENGINE_URL.match(call.args[0].value)
    scheme = match.group("scheme").lower() if match else ""
    return scheme in ("postgresql", "postgres", "mysql", "mariadb", "")


# -- what touches a session --------------------------------------------------------------------


@dataclass(frozen=True)
class SessionCall:
    """A call that uses a session (``kind`` "use") or ends its transaction ("reset"); ``work``
    when the call itself can fail in the database and abort the transaction; ``writes`` when it
    writes, or commits or flushes writes (on an aborted transaction its write never lands);
    ``ends`` when it commits, rolls back, closes or begins the session's transaction."""

    session: str
    kind: str
    call: ast.Call
    work: bool = True
    writes: bool = False
    ends: bool = False


def chained_receiver(node: ast.AST) -> ast.AST:
    """``session`` for ``session.connection()`` / ``(await session.connection())``: a call chained
    on such a result runs on the session itself."""
    inner = node.value if isinstance(node, ast.Await) else node
    if (
        isinstance(inner, ast.Call)
        and isinstance(inner.func, ast.Attribute)
        and inner.func.attr in _CHAINED_METHODS
    ):
        return chained_receiver(inner.func.value)
    return node


def _helper_effects(session: str, call: ast.Call, effect: SessionEffect) -> list[SessionCall]:
    """A call to a project function, as the analysis sees it for one session: a reset when the
    function resets the session before any work, then a use when it does more with it."""
    found: list[SessionCall] = []
    if effect.resets_first:
        found.append(SessionCall(session, "reset", call, ends=True))
    if effect.uses or effect.work:
        found.append(SessionCall(session, "use", call, effect.work, effect.writes, effect.ends))
    return found


def classify_call(call: ast.Call, sessions: SessionNames, calls: Calls | None = None) -> list[SessionCall]:
    """What ``call`` does to sessions: a method on a session, or a session passed to a function
    (whose own effects on it decide, when it is a project function the analysis can read)."""
    found: list[SessionCall] = []
    func = call.func
    receiver: str | None = None
    if isinstance(func, ast.Attribute) and func.attr == "rollback":
        savepoint = dotted_name(func.value)
        if savepoint in sessions.savepoints:
            return [SessionCall(sessions.savepoints[savepoint], "reset", call, ends=True)]
    if isinstance(func, ast.Attribute):
        receiver = sessions.of(chained_receiver(func.value))
        if receiver is not None:
            method = func.attr
            if method in RESET_METHODS:
                return [SessionCall(receiver, "reset", call, ends=True)]
            if method not in PASSIVE_METHODS and not method.startswith("__"):
                writes = call_writes(call, sessions)
                ends = method in ("commit", "begin")
                found.append(SessionCall(receiver, "use", call, method not in STAGING_METHODS, writes, ends))
    if receiver is None and isinstance(func, ast.Attribute) and func.attr in _QUERY_WRITES:
        queried = _queried_session(func.value, sessions)
        if queried is not None:  # ``session.query(M).filter(...).delete()``: a legacy Query write
            found.append(SessionCall(queried, "use", call, True, True))
    callee = dotted_name(func)
    if callee is not None and _last(callee) in _PASSIVE_CALLEES:
        return found
    if sessions.lock_helpers and (sessions.qualify(func) or callee) in sessions.lock_helpers:
        return found
    known = calls.callee(call) if calls is not None and receiver is None else None
    passed: list[tuple[str, str | None]] = []  # (session, the callee's parameter it lands in)
    params = list(
        known.params[1:] if known is not None and known.bound_first else known.params if known else ()
    )
    for index, arg in enumerate(call.args):
        value = arg.value if isinstance(arg, ast.Starred) else arg
        session = sessions.of(value)
        if session is not None:
            passed.append(
                (session, params[index] if index < len(params) and not isinstance(arg, ast.Starred) else None)
            )
    for kw in call.keywords:
        session = sessions.of(kw.value)
        if session is not None:
            passed.append((session, kw.arg))
    for session, param in passed:
        if session == receiver or any(f.session == session for f in found):
            continue
        if known is None or param is None:
            found.append(SessionCall(session, "use", call))  # what it does with it is unknown: a use
            continue
        effect = known.effects.get(param)
        if effect is not None:
            found.extend(_helper_effects(session, call, effect))
    if known is not None:
        for shared, effect in known.effects.items():
            if "." in shared and not any(f.session == shared for f in found):
                found.extend(_helper_effects(shared, call, effect))
    return found


# Methods of SQLAlchemy's legacy ``Query`` that write the rows it selects.
_QUERY_WRITES = frozenset({"update", "delete"})


def _queried_session(node: ast.AST, sessions: SessionNames) -> str | None:
    """The session of ``<session>.query(...)`` that starts a chain of method calls (``.filter(...)
    .order_by(...)``) ending at ``node``, if it is one."""
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr == "query":
            return sessions.of(chained_receiver(node.func.value))
        node = node.func.value
    return None


def call_writes(call: ast.Call, sessions: SessionNames) -> bool:
    """Whether a call on a session writes (``add``, ``merge``, ``execute(update(...))``) or makes
    the transaction's writes land (``flush``, ``commit``); reads and locking reads
    (``get(..., with_for_update=True)``, ``execute(select(...).with_for_update())``) do not."""
    func = call.func
    if not isinstance(func, ast.Attribute):
        return False
    if func.attr in WRITE_METHODS:
        return True
    if func.attr in EXECUTE_METHODS and call.args:
        return statement_writes(call.args[0], sessions)
    return False


def statement_writes(node: ast.AST, sessions: SessionNames, depth: int = 0) -> bool:
    """Whether a statement writes: its innermost constructor is ``insert``/``update``/``delete``
    (``update(M).where(...)``, ``M.__table__.delete()``, ``insert(M).values(...).returning(...)``),
    or its SQL text starts with a writing verb; a name bound in the function to one is followed.
    What cannot be read (a statement a helper built) is taken as a read."""
    if isinstance(node, ast.Await):
        node = node.value
    if isinstance(node, ast.Name):
        return depth < 3 and any(
            statement_writes(value, sessions, depth + 1) for value in sessions.bound_values(node.id)
        )
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _sql_writes(node.value)
    if isinstance(node, ast.JoinedStr):
        head = node.values[0] if node.values else None
        return isinstance(head, ast.Constant) and isinstance(head.value, str) and _sql_writes(head.value)
    innermost: ast.Call | None = None
    current: ast.AST = node
    while isinstance(current, (ast.Call, ast.Attribute, ast.Subscript)):
        if isinstance(current, ast.Call):
            innermost = current
            current = current.func
        else:
            current = current.value
    if isinstance(current, ast.Name) and sessions.binds(current.id):
        return statement_writes(current, sessions, depth + 1)  # ``stmt.where(...)``: what ``stmt`` is
    if innermost is None:
        return False
    func = innermost.func
    qualified = sessions.qualify(func) if isinstance(func, (ast.Name, ast.Attribute)) else None
    name = _last(qualified or dotted_name(func) or "")
    if not name and isinstance(innermost.func, ast.Attribute):
        name = innermost.func.attr
    if name == "text" and innermost.args:
        return statement_writes(innermost.args[0], sessions, depth + 1)
    return name.lower() in _WRITING_BUILDERS


def _sql_writes(sql: str) -> bool:
    words = re.findall(r"[A-Za-z_]+", sql.lower())
    if words[:1] == ["with"]:
        return any(w in ("insert", "update", "delete", "merge") for w in words)
    return bool(words) and words[0] in _WRITING_VERBS


def call_text(call: ast.Call, session: str) -> str:
    """A short rendering of a session call: ``session.get(...)``, ``helper(..., session=session)``."""
    callee = dotted_name(call.func)
    if callee is None:
        inner: ast.AST = call.func
        head: str | None = None
        while isinstance(inner, (ast.Attribute, ast.Call)):  # down to the chain's first call
            if isinstance(inner, ast.Call):
                head = dotted_name(inner.func)
                if head is not None:
                    break
                inner = inner.func
            else:
                inner = inner.value
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
