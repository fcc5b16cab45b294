"""Transactions: the row locks each function takes, in order, and where its transaction ends.

A function's summary lists its own steps in source order: each lock acquisition its statements
take (explicit ``FOR UPDATE`` and its relatives, UPDATE/DELETE/upsert writes, and the locks the
database adds on its own: the parent row an INSERT's foreign key checks, the rows an eager
``lazy="joined"`` load puts under the same ``FOR UPDATE``), each call that hands a session to
another project function (its locks are taken inside this transaction), and each
``commit()``/``rollback()`` (the locks held so far are released). Summaries are per file and
cached by the file's content; :mod:`lockorder_lint.lock_graph` splices callees into callers and
looks for cycles.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from lockorder_lint.flushes import Flush, flush_of, flush_point
from lockorder_lint.names import called_name, dotted_name, file_resolver, module_name
from lockorder_lint.parsing import LINE_BREAK_BYTES, SourceError, parse_source
from lockorder_lint.sessions import provider_names, provides_session

if TYPE_CHECKING:
    from lockorder_lint.catalog import Catalog, Table
    from lockorder_lint.engine import CheckedFile, Project
    from lockorder_lint.statements import Statement
    from lockorder_lint.summaries import Program
    from lockorder_lint.units import Unit

# PostgreSQL's row-lock modes, strongest first; InnoDB's are read from them (see lock_graph).
FOR_UPDATE = "FOR UPDATE"
FOR_NO_KEY_UPDATE = "FOR NO KEY UPDATE"
FOR_SHARE = "FOR SHARE"
FOR_KEY_SHARE = "FOR KEY SHARE"
ALL_DIALECTS = frozenset({"postgresql", "mysql", "mariadb"})
_MYSQL_FAMILY = frozenset({"mysql", "mariadb"})

# Text that may take a row lock: a function without it has no lock steps of its own. The
# upper-case words are SQL text's (``text("UPDATE record SET ...")``, ``FOR UPDATE``/``FOR SHARE``).
LOCK_TRIGGER = (
    rb"for_update|\bupdate\(|\bdelete\(|\binsert\(|\.merge\(|\.add\(|\.add_all\(|upsert|on_conflict"
    rb"|\bUPDATE\s|\bDELETE\s|\bINSERT\s|\bFOR\s+(?:UPDATE|SHARE)\b"
)
_ENDS = frozenset({"commit", "rollback"})
MAX_STEPS = 60  # per function: a function taking more locks than this is cut there


@dataclass(frozen=True)
class Acquisition:
    """One row lock a statement takes: on which table, in which (PostgreSQL) mode, whether it
    waits for a conflicting holder (not NOWAIT/SKIP LOCKED), where, and why (``what``).
    ``dialects`` are the databases that take it (an eager join under ``FOR UPDATE ... OF``
    locks the joined rows only on MariaDB, which has no OF)."""

    table: str
    mode: str
    waits: bool
    path: str  # as findings show it
    line: int
    what: str  # "SELECT ... FOR UPDATE", "UPDATE", "foreign key check of INSERT INTO task_reschedule"
    chain: tuple[str, ...] = ()  # helpers it came through, outermost first
    dialects: frozenset[str] = ALL_DIALECTS
    column: int = 1
    # The index InnoDB locks the row through: ``PRIMARY`` for rows named by their primary key,
    # a foreign-key check's referenced columns (``(dag_id,run_id)``) when they are not the key,
    # "" when unknown. InnoDB locks index records: a check on a secondary unique key never waits
    # for a lock taken through the primary key only (PostgreSQL locks rows, whatever the index).
    index: str = ""
    # What lock protocols (:mod:`lockorder_lint.protocols`) read: the columns of ``table`` the
    # statement's WHERE names by ``==``/``IN`` (a child scoped by its parent pins the foreign key),
    # and, for the foreign-key check of an INSERT or merge, the child table it writes.
    pins: tuple[str, ...] = ()
    inserted: str = ""
    # An ORM write the session holds until its next flush (``session.add``, ``merge``, an
    # attribute set on a loaded row): which flush, and what orders it there (see flushes).
    flush: Flush | None = None


PRIMARY = "PRIMARY"


@dataclass(frozen=True)
class Step:
    """One step of a function, in source order: ``lock`` (an acquisition), ``call`` (a project
    function handed this function's session: its steps run here) or ``end`` (commit/rollback)."""

    kind: str
    line: int
    acquisition: Acquisition | None = None
    callee: str = ""
    # A lock taken only under ``if <parameter>:`` where the parameter defaults to off
    # (``refresh_from_db(lock_for_update=False)``): taken when a caller passes it.
    when: str = ""
    passes: tuple[str, ...] = ()  # for a call: the keywords it passes, other than False/None
    # for a call: keywords that hand on one of this function's own switches (``commit=commit``),
    # as (keyword, parameter): passed exactly when this function's caller passes that parameter
    forwards: tuple[tuple[str, str], ...] = ()
    # Where it is in the function's branches: one ``"<node>:<branch>"`` per enclosing if/else,
    # try/except, loop or match arm, outermost first (see :func:`exclusive` and :func:`on_path`).
    context: tuple[str, ...] = ()


@dataclass(frozen=True)
class FunctionLocks:
    """A function's steps, and who it is: ``qualname`` is module-qualified, ``name`` as shown."""

    qualname: str
    name: str
    path: str
    line: int
    steps: tuple[Step, ...]
    # Names of the calls that hand this function's session on, resolved or not (``run.update_state``
    # on a variable of unknown type): a function of such a name runs inside a caller's transaction.
    handed: tuple[str, ...] = ()
    # Whether a session-providing decorator opens a session when its caller hands none, and the
    # functions that do so which this one calls without a session: transactions of their own.
    opens: bool = False
    starts: tuple[str, ...] = ()
    # A web framework's entry point: a parameter is a dependency (FastAPI's ``Depends(get_db)``),
    # made per request. It starts a transaction of its own whoever else calls it.
    entry: bool = False


def statement_acquisitions(statement: Statement, catalog: Catalog, display: str) -> list[Acquisition]:
    """The row locks one statement takes, the implicit ones included."""
    from lockorder_lint.statements import joined_tables

    target = statement.table_name
    if target is None:
        return []
    chain = statement.calls
    found: list[Acquisition] = []
    runs_on = _databases(statement.live)
    lock = statement.lock
    if lock is not None and statement.kind in ("select", "query", "get"):
        line, column = lock.span.line, lock.span.column
        what = "session.get(..., with_for_update)" if statement.kind == "get" else f"SELECT ... {lock.mode}"
        waits = not lock.non_blocking
        found.append(
            Acquisition(
                target, lock.mode, waits, display, line, what, chain, column=column, index=_through(statement)
            )
        )
        for joined in joined_tables(statement, catalog):
            if joined.how == "where":
                continue  # a table the WHERE clause compares with: its rows are read, maybe not all
            if lock.of is not None:
                dialects = frozenset({"mariadb"}) if joined.table not in lock.of else ALL_DIALECTS
            else:
                # PostgreSQL refuses FOR UPDATE on the nullable side of an outer join.
                dialects = _MYSQL_FAMILY if joined.outer else ALL_DIALECTS
            how = f"joined rows of {what} on {target} ({joined.via})"
            found.append(
                Acquisition(joined.table, lock.mode, waits, display, line, how, chain, dialects, column)
            )
    if statement.write is not None:
        line, column = statement.write.line, statement.write.column
        kind = (statement.write_kind or statement.kind).upper()
        writes = {"UPDATE": (FOR_NO_KEY_UPDATE, "UPDATE"), "DELETE": (FOR_UPDATE, "DELETE"),
                  "MERGE": (FOR_NO_KEY_UPDATE, "merge (upsert)")}  # fmt: skip
        table = catalog.tables.get(target)
        if kind in writes:
            mode, what = writes[kind]
            if kind == "UPDATE" and table is not None:
                mode, what = update_mode(table, statement.sets())
            index = _through(statement) if kind != "MERGE" else ""
            found.append(
                Acquisition(target, mode, True, display, line, what, chain, column=column, index=index)
            )
        where = (display, line, column)
        if kind in ("INSERT", "MERGE"):
            inserted = statement.set_attributes
            if table is not None and inserted is not None:  # the attributes the new rows set, and defaults
                inserted = (
                    *(c for a in inserted for c in _written_columns(table, a)),
                    *sorted(table.defaulted),
                )
            found.extend(foreign_key_checks(table, inserted, (), catalog, where, chain, inserting=True))
        elif kind == "UPDATE":
            # columns not known (``.values(**kw)``): no check assumed, as for a non-key UPDATE
            assigned = statement.sets() or ()
            found.extend(foreign_key_checks(table, assigned, statement.nulled, catalog, where, chain))
    written = catalog.tables.get(target)
    if statement.pending and written is not None:
        flush = flush_of(written, catalog)
        found = [replace(a, flush=flush) for a in found]
    if runs_on != ALL_DIALECTS:
        # built under a dialect test (``if self.db_type == MYSQL:``): only those databases lock
        found = [replace(a, dialects=a.dialects & runs_on) for a in found if a.dialects & runs_on]
    return with_scope(found, statement)


def with_scope(found: list[Acquisition], statement: Statement) -> list[Acquisition]:
    """The statement's acquisitions with what says which parent's children it touches: the
    target's columns it pins (``pins``), and the child an INSERT's foreign-key check is for."""
    from lockorder_lint.statements import PINNING_OPS

    target = statement.table_name
    pinned = tuple(dict.fromkeys(p.column for p in statement.target_predicates() if p.op in PINNING_OPS))
    scoped: list[Acquisition] = []
    for acquisition in found:
        if acquisition.table == target and pinned:
            acquisition = replace(acquisition, pins=pinned)
        elif acquisition.table != target and acquisition.what.startswith("foreign key"):
            acquisition = replace(acquisition, inserted=target or "")
        scoped.append(acquisition)
    return scoped


def key_columns(table: Table) -> frozenset[str]:
    """PostgreSQL's key columns of a table: those of its primary key and of its unique indexes
    on plain columns (a foreign key could reference them). An UPDATE that changes one takes
    ``FOR UPDATE`` on the row, which conflicts with a foreign-key check's ``FOR KEY SHARE``. (The
    catalog does not tell partial unique indexes apart: their columns count too.)"""
    keys = set(table.primary_key)
    for index in table.indexes:
        if index.unique and not any(c.startswith("(") for c in index.columns):
            keys.update(index.columns)
    return frozenset(keys)


def update_mode(table: Table, assigned: Iterable[str] | None) -> tuple[str, str]:
    """The row lock an UPDATE setting ``assigned`` takes, and why: ``FOR UPDATE`` when it sets a
    key column, else ``FOR NO KEY UPDATE`` (also when the columns are not known)."""
    keys = sorted(set(assigned or ()) & key_columns(table))
    if keys:
        return FOR_UPDATE, f"UPDATE of key column{'s' if len(keys) > 1 else ''} {', '.join(keys)}"
    return FOR_NO_KEY_UPDATE, "UPDATE"


def foreign_key_checks(
    table: Table | None,
    assigned: Iterable[str] | None,
    nulled: Iterable[str],
    catalog: Catalog,
    where: tuple[str, int, int],
    chain: tuple[str, ...] = (),
    inserting: bool = False,
) -> list[Acquisition]:
    """The parent rows a write's foreign-key checks lock (``FOR KEY SHARE``; InnoDB: shared,
    through the referenced index): those of the foreign keys whose columns it sets to something
    other than NULL (``assigned``; an UPDATE without known columns sets none). An INSERT whose
    columns are not known (``assigned`` None) checks every foreign key."""
    if table is None:
        return []
    skipped = set(nulled)
    wanted = None if assigned is None else set(assigned) - skipped
    checked = [(key, ref) for key, ref in table.references() if wanted is None or key in wanted]
    references = [ref for _key, ref in checked]
    display, line, column = where
    found: list[Acquisition] = []
    for parent in dict.fromkeys(ref.split(".", 1)[0] for ref in references):
        if parent == table.name or parent not in catalog.tables:
            continue
        if inserting:
            what = f"foreign key check of INSERT INTO {table.name}"
        else:
            keys = list(dict.fromkeys(key for key, ref in checked if ref.split(".", 1)[0] == parent))
            what = f"foreign key check of UPDATE {table.name} SET {', '.join(keys)}"
        index = _referenced_index(catalog.tables[parent], references)
        found.append(
            Acquisition(parent, FOR_KEY_SHARE, True, display, line, what, chain, column=column, index=index)
        )
    return found


def _through(statement: Statement) -> str:
    """``PRIMARY`` when the statement names its rows by their primary key, else unknown."""
    return PRIMARY if statement.pins_primary_key() else ""


def _referenced_index(parent: Table, references: Iterable[str]) -> str:
    """The parent columns a child's foreign keys reference: ``PRIMARY`` when they are its key."""
    columns = tuple(
        dict.fromkeys(ref.split(".", 1)[1] for ref in references if ref.split(".", 1)[0] == parent.name)
    )
    keys = {parent.columns.get(key, key) for key in parent.primary_key}
    if not columns or set(columns) == keys or set(columns) == set(parent.primary_key):
        return PRIMARY
    return f"({','.join(columns)})"


def _databases(live: frozenset[str] | None) -> frozenset[str]:
    """The databases of a statement's ``live`` dialects (MariaDB is folded into mysql there)."""
    if live is None:
        return ALL_DIALECTS
    found = {"postgresql"} & live
    if "mysql" in live or "mariadb" in live:
        found |= _MYSQL_FAMILY
    return frozenset(found)


def _session_like(node: ast.AST, patterns: tuple[str, ...]) -> bool:
    name = dotted_name(node)
    return name is not None and _any_of(patterns).match(name) is not None


@functools.lru_cache(maxsize=8)
def _any_of(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One regex for the name globs (``fnmatchcase`` with any of them, in one match: every
    argument of every call is tried)."""
    return re.compile("|".join(fnmatch.translate(p) for p in patterns) or "(?!)")


@dataclass(frozen=True)
class _Body:
    """What one walk of a function's own body finds (not inside the functions, classes or
    lambdas it holds): its calls in source order, and in walk order the functions it defines and
    its ``if`` statements. Each reading of the function takes these instead of walking it again."""

    calls: list[ast.Call]
    defined: list[ast.FunctionDef | ast.AsyncFunctionDef]
    ifs: list[ast.If]


def _body(function: ast.FunctionDef | ast.AsyncFunctionDef) -> _Body:
    calls: list[ast.Call] = []
    defined: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
    ifs: list[ast.If] = []
    pending: list[ast.AST] = list(function.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            defined.append(node)
            continue
        if isinstance(node, (ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Call):
            calls.append(node)
        elif isinstance(node, ast.If):
            ifs.append(node)
        for name in node._fields:  # ``ast.iter_child_nodes``, in its order, without its generators
            value = getattr(node, name, None)
            if isinstance(value, ast.AST):
                pending.append(value)
            elif isinstance(value, list):
                pending.extend([item for item in value if isinstance(item, ast.AST)])
    calls.sort(key=lambda c: (c.lineno, c.col_offset))
    return _Body(calls, defined, ifs)


def _off(default: ast.expr | None) -> bool:
    return isinstance(default, ast.Constant) and default.value in (False, None)


def switched_blocks(
    function: ast.FunctionDef | ast.AsyncFunctionDef, body: _Body | None = None
) -> list[tuple[int, int, str]]:
    """``(first line, last line, parameter)`` of each ``if <parameter>:`` body whose parameter
    defaults to False or None: what is inside runs only when a caller switches it on. ``body``
    is the function's walk, when the caller made it."""
    switches = switched_parameters(function)
    if not switches:
        return []
    found: list[tuple[int, int, str]] = []
    for node in (body or _body(function)).ifs:
        if isinstance(node.test, ast.Name) and node.test.id in switches:
            first, last = node.body[0].lineno, node.body[-1].end_lineno or node.body[-1].lineno
            found.append((first, last, node.test.id))
    return found


def unit_locks(unit: Unit, display: str, with_statements: bool) -> FunctionLocks:
    """The steps of one analysed function."""
    node = unit.node
    start, end = node.lineno, node.end_lineno or node.lineno
    program = unit.scope.program
    config = program.config if program is not None else None
    patterns = config.session_names if config is not None else ("session",)
    positioned: list[tuple[int, float, Step]] = []
    order = 0
    handed_names: list[str] = []
    starts: list[str] = []
    # by last name, as calls and decorators are matched (a configured ``app.db.provide_session`` too)
    providers = provider_names(config.session_providers if config is not None else ("provide_session",))
    body = _body(node)
    if with_statements:
        last = start
        switched = switched_blocks(node, body)
        calls_by_name: dict[str, list[ast.Call]] = {}
        for call in body.calls:
            called = called_name(call)
            if called:
                calls_by_name.setdefault(called, []).append(call)
        updated = _merges_of_loaded_rows(node, body.calls)
        for statement in unit.statements:
            for acquisition in statement_acquisitions(statement, unit.scope.catalog, display):
                checked = acquisition.what.startswith("foreign key check") and not acquisition.chain
                if statement.write_kind == "MERGE" and checked and acquisition.line in updated:
                    continue  # merging a row already there updates it: no key is checked
                line = acquisition.line
                helper = acquisition.chain[0].rsplit(".", 1)[-1] if acquisition.chain else ""
                candidates = calls_by_name.get(helper, ())
                if start <= line <= end:
                    where = line
                    through = next(
                        (c for c in candidates if c.lineno <= line <= (c.end_lineno or c.lineno)), None
                    )
                else:
                    # built by a helper elsewhere: it runs where this function calls that helper
                    through = next((c for c in candidates if c.lineno >= last), None)
                    where = through.lineno if through is not None else last
                last = where
                switch = _lock_switch(unit, through, acquisition) if through is not None else ""
                if switch is None:
                    continue
                when = switch or next((p for first, final, p in switched if first <= where <= final), "")
                positioned.append((where, order, Step("lock", where, acquisition, when=when)))
                order += 1
    ev = unit.evaluator
    if program is not None and not with_statements:
        ev.types.update(program.parameter_types(ev, node))
    autoflush = program.autoflush if program is not None else True
    for call in body.calls:
        func = call.func
        on_session = isinstance(func, ast.Attribute) and _session_like(func.value, patterns)
        if flush_point(call, on_session, autoflush):
            positioned.append((call.lineno, -1, Step("flush", call.lineno)))  # before the call's own writes
        if isinstance(func, ast.Attribute) and func.attr in _ENDS and not call.args and not call.keywords:
            # on the session or on what wraps it (Airflow's ``prohibit_commit`` guard): locks released
            positioned.append((call.lineno, order, Step("end", call.lineno)))
            order += 1
            continue
        handed = [a for a in call.args if not isinstance(a, ast.Starred)] + [k.value for k in call.keywords]
        if not any(_session_like(arg, patterns) for arg in handed):
            started = _started(unit, call, providers) if program is not None else None
            if started is not None:
                starts.append(started)
            continue
        called = called_name(call)
        if called:
            handed_names.append(called)
        if program is None:
            continue
        try:
            resolved = program.resolve_call(ev, call, need="")
        except RecursionError:
            resolved = None
        if resolved is not None and resolved[0].qualname != f"{unit.scope.resolver.module}.{unit.qualname}":
            own_switches = switched_parameters(node)
            forwards = tuple(
                (k.arg, k.value.id)
                for k in call.keywords
                if k.arg is not None and isinstance(k.value, ast.Name) and k.value.id in own_switches
            )
            passes = tuple(
                k.arg
                for k in call.keywords
                if k.arg is not None and not _off(k.value) and k.arg not in dict(forwards)
            )
            step = Step("call", call.lineno, callee=resolved[0].qualname, passes=passes, forwards=forwards)
            positioned.append((call.lineno, order, step))
            order += 1
    if program is not None:
        own = f"{unit.scope.resolver.module}.{unit.qualname}"
        for line, name in _closure_calls(body, patterns):
            positioned.append((line, order, Step("call", line, callee=f"{own}.{name}")))
            order += 1
    branches = _Branches(node, providers)
    for line in branches.closing:
        positioned.append((line, 1 << 30, Step("end", line)))  # every branch of it ends the transaction
    positioned.sort(key=lambda item: (item[0], item[1]))
    if with_statements or any(step.kind == "end" for _line, _order, step in positioned):
        for written, acquisition in orm_updates(unit, display):
            # flushed before the next statement runs, or at the commit (a step's order breaks ties)
            after = next(
                (
                    (line, rank)
                    for line, rank, step in positioned
                    if line > written or (line == written and step.kind == "end")
                ),
                None,
            )
            at, rank = after if after is not None else (node.end_lineno or written, float(1 << 31))
            positioned.append((at, rank - 0.5, Step("lock", written, acquisition)))
        positioned.sort(key=lambda item: (item[0], item[1]))
    steps = tuple(
        replace(step, context=branches.context(step.line, closing=order == 1 << 30))
        for _line, order, step in _flush_groups(positioned)[:MAX_STEPS]
    )
    return FunctionLocks(
        qualname=f"{unit.scope.resolver.module}.{unit.qualname}",
        name=unit.qualname,
        path=display,
        line=node.lineno,
        steps=steps,
        handed=tuple(dict.fromkeys(handed_names)),
        opens=opens_session(node, providers),
        entry=takes_dependency(node, unit.scope.source.tree, patterns),
        starts=tuple(dict.fromkeys(starts)),
    )


def _flush_groups(positioned: list[tuple[int, float, Step]]) -> list[tuple[int, float, Step]]:
    """The steps without their flush points, each pending write numbered with the flush that
    sends it: a flush point, a commit or rollback, or a call handing the session on (it may run
    statements) closes a flush."""
    found: list[tuple[int, float, Step]] = []
    group = 1
    for line, order, step in positioned:
        if step.kind in ("flush", "end", "call"):
            group += 1
            if step.kind == "flush":
                continue
        acquisition = step.acquisition
        if acquisition is not None and acquisition.flush is not None:
            numbered = replace(acquisition.flush, group=group)
            step = replace(step, acquisition=replace(acquisition, flush=numbered))
        found.append((line, order, step))
    return found


def _merges_of_loaded_rows(
    function: ast.FunctionDef | ast.AsyncFunctionDef, calls: list[ast.Call]
) -> set[int]:
    """Lines of the function's ``session.merge(x)`` calls whose ``x`` is a row it did not make:
    ``self`` (a model's own method), a parameter, an attribute, a loop variable. Merging such a
    row UPDATEs it (SQLAlchemy loads it by key first); only a new instance is INSERTed with its
    foreign keys checked. A name bound to a constructor call in the function counts as new.
    ``calls`` are the function's own (``_body``)."""
    merges = [
        call
        for call in calls
        if called_name(call) == "merge" and len(call.args) == 1 and isinstance(call.func, ast.Attribute)
    ]
    if not merges:
        return set()  # most functions merge nothing: their names need not be read
    made: set[str] = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            made |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    found: set[int] = set()
    for call in merges:
        argument = call.args[0]
        loaded = isinstance(argument, ast.Name) and argument.id not in made
        if loaded or isinstance(argument, ast.Attribute):
            found.update(range(call.lineno, (call.end_lineno or call.lineno) + 1))
    return found


def _closure_calls(body: _Body, patterns: tuple[str, ...]) -> list[tuple[int, str]]:
    """``(line, name)`` where the function (``body``, its walk) calls or hands on
    (``reduce(query, items)``) a function nested in it that runs in its transaction: one that
    uses the enclosing function's session (a closure over it) or is called with a session. Such
    a function is no transaction of its own."""
    nested = {n.name: n for n in body.defined}
    if not nested:
        return []
    inside = {name for name, inner in nested.items() if _uses_enclosing_session(inner, patterns)}
    found: list[tuple[int, str]] = []
    for call in body.calls:
        if isinstance(call.func, ast.Name) and call.func.id in nested:
            handed = [*call.args, *(k.value for k in call.keywords)]
            if call.func.id in inside or any(_session_like(a, patterns) for a in handed):
                found.append((call.lineno, call.func.id))
        for argument in [*call.args, *(k.value for k in call.keywords)]:
            if isinstance(argument, ast.Name) and argument.id in inside:
                found.append((call.lineno, argument.id))  # a callback run by the callee, here
    return sorted(set(found))


def _uses_enclosing_session(inner: ast.FunctionDef | ast.AsyncFunctionDef, patterns: tuple[str, ...]) -> bool:
    """Whether a nested function reads a session it does not take as a parameter: its caller's."""
    args = inner.args
    own = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    own |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
    for node in ast.walk(inner):
        loaded = isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in own
        if loaded and _session_like(node, patterns):
            return True
    return False


def opens_session(function: ast.FunctionDef | ast.AsyncFunctionDef, providers: Collection[str]) -> bool:
    """A function that starts a transaction of its own when called without a session: a
    session-providing decorator gives it a new one (Airflow's ``@provide_session``)."""
    return any(provides_session(d, providers) for d in function.decorator_list)


def takes_dependency(
    function: ast.FunctionDef | ast.AsyncFunctionDef, module: ast.Module, patterns: tuple[str, ...]
) -> bool:
    """Whether a session parameter (named like one, or annotated with a ``Session``) is a
    framework dependency, made per request: ``session: Session = Depends(get_db)``, ``session:
    Annotated[Session, Depends(get_db)]``, or an alias of the latter that the module assigns
    (``SessionDep = Annotated[Session, Depends(get_db)]``)."""
    args = function.args
    positional = [*args.posonlyargs, *args.args]
    defaults: dict[str, ast.expr] = dict(
        zip((a.arg for a in positional[len(positional) - len(args.defaults) :]), args.defaults, strict=True)
    )
    defaults.update(
        (a.arg, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None
    )
    aliases = {
        target.id
        for stmt in module.body
        if isinstance(stmt, ast.Assign) and _annotated_dependency(stmt.value)
        for target in stmt.targets
        if isinstance(target, ast.Name)
    }
    for arg in [*positional, *args.kwonlyargs]:
        annotation = arg.annotation
        aliased = isinstance(annotation, ast.Name) and annotation.id in aliases
        typed = annotation is not None and "Session" in ast.unparse(annotation)
        if not (_session_like(ast.Name(arg.arg), patterns) or typed or aliased):
            continue  # a dependency that is no session (Prefect's ``db = Depends(...)``)
        default = defaults.get(arg.arg)
        if default is not None and _depends(default):
            return True
        if annotation is not None and _annotated_dependency(annotation):
            return True
        if isinstance(annotation, ast.Name) and annotation.id in aliases:
            return True
    return False


def _depends(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and called_name(node) == "Depends"


def _annotated_dependency(node: ast.expr) -> bool:
    """``Annotated[X, Depends(...)]``."""
    if not isinstance(node, ast.Subscript) or not isinstance(node.slice, ast.Tuple):
        return False
    name = dotted_name(node.value)
    return (
        name is not None
        and name.rsplit(".", 1)[-1] == "Annotated"
        and any(_depends(e) for e in node.slice.elts[1:])
    )


def _started(unit: Unit, call: ast.Call, providers: Collection[str]) -> str | None:
    """The project function a call that hands no session reaches, when that function opens a
    session of its own: it runs as a transaction of its own there (``ti.run()`` from the CLI)."""
    program = unit.scope.program
    name = called_name(call)
    if program is None or not name or (program.openers is not None and name not in program.openers):
        return None  # no function of that name opens a session: nothing to resolve
    try:
        resolved = program.resolve_call(unit.evaluator, call, need="")
    except RecursionError:
        return None
    if resolved is None:
        return None
    info = resolved[0]
    if not any(d.rsplit(".", 1)[-1] in providers for d in info.decorators):
        return None
    return info.qualname


SWITCHED = "s="  # the arm of ``if <parameter>:`` whose parameter defaults to off: ``"<node>:s=<parameter>"``


def switched_arm(part: str) -> str:
    """The parameter a context part's arm is switched by (``"12.8:s=commit"``), else ""."""
    _node, _, arm = part.rpartition(":")
    return arm[len(SWITCHED) :] if arm.startswith(SWITCHED) else ""


_TAIL = "z"  # a try body's tail: no statement in it or after it raises (see _Branches._mark_tail)


def _calls(node: ast.AST) -> int:
    """How many calls (or raises, asserts, awaits) a statement or expression makes: where it may raise."""
    return sum(isinstance(n, (ast.Call, ast.Raise, ast.Assert, ast.Await)) for n in ast.walk(node))


def _one_step(stmt: ast.stmt) -> bool:
    """A simple statement, or an ``if`` without ``else`` whose test calls nothing and whose body is
    one simple statement (``if not test_mode: ti.refresh_from_db(lock_for_update=True)``): what
    it locks is locked by its last call, with nothing after it that raises."""
    if isinstance(stmt, ast.If):
        return not stmt.orelse and not _calls(stmt.test) and len(stmt.body) == 1 and _one_step(stmt.body[0])
    return isinstance(stmt, (ast.Expr, ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Return))


def _exclusive_arms(first: str, second: str) -> bool:
    if {first, second} in ({"t", "f"}, {"t", "g"}):
        return True  # if / else; ``if c: ... return`` / the rest of its block
    kinds = {first[:1], second[:1]}
    return kinds == {"c"} or kinds == {"h"} or kinds == {"h", "e"}  # match arms; handlers; handler / else


def exclusive(first: tuple[str, ...], second: tuple[str, ...]) -> bool:
    """Two places no single run of the function passes both: the two arms of one if/else, two
    ``except`` handlers of one try, a handler and the try's ``else``, two ``case`` arms."""
    for index, (a, b) in enumerate(zip(first, second, strict=False)):
        if a == b:
            continue
        node_a, _, arm_a = a.rpartition(":")
        node_b, _, arm_b = b.rpartition(":")
        if node_a != node_b:
            return False
        # the tail of a try body (nothing raises after it) and one of the try's handlers
        tail = f"{node_a}:{_TAIL}"
        if {arm_a[:1], arm_b[:1]} == {"b", "h"}:
            body = first if arm_a == "b" else second
            return body[index + 1 : index + 2] == (tail,)
        return _exclusive_arms(arm_a, arm_b)
    return False


def on_path(outer: tuple[str, ...], inner: tuple[str, ...]) -> bool:
    """Whether a step at ``outer`` is on every path through the block of ``inner`` (its context
    is a prefix of the other's). What follows a guard clause (``if not ids: return``) counts as
    on every path: the guard is taken to let the work through, as the code's author expects."""
    outer = tuple(part for part in outer if not part.endswith(":g"))
    inner = tuple(part for part in inner if not part.endswith(":g"))
    return inner[: len(outer)] == outer


def _transaction_block(expression: ast.expr, providers: Collection[str]) -> bool:
    """A ``with`` item whose exit ends a transaction: a new session (``Session(engine)``, a
    factory such as ``SessionLocal()`` or ``sessionmaker()()``, a session provider such as
    ``create_session()``), or ``session.begin()``, which commits at the exit. Not
    ``begin_nested()``: releasing a savepoint keeps its row locks until the transaction ends."""
    if not isinstance(expression, ast.Call):
        return False
    if isinstance(expression.func, ast.Call):
        return called_name(expression.func) == "sessionmaker"
    name = called_name(expression)
    return name == "begin" or name in providers or "Session" in name


def _leaves(stmt: ast.stmt) -> bool:
    return isinstance(stmt, (ast.Return, ast.Raise, ast.Continue, ast.Break))


def _ends(stmt: ast.stmt) -> bool:
    """A bare ``x.commit()`` / ``x.rollback()`` statement."""
    if not isinstance(stmt, ast.Expr):
        return False
    value = stmt.value.value if isinstance(stmt.value, ast.Await) else stmt.value
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Attribute)
        and value.func.attr in _ENDS
        and not value.args
        and not value.keywords
    )


def _ends_within(stmt: ast.stmt, providers: Collection[str]) -> bool:
    """Whether a commit, a rollback or a session block's exit is anywhere in the statement
    (outside nested functions and classes)."""
    pending: list[ast.AST] = [stmt]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.stmt) and _ends(node):
            return True
        if isinstance(node, (ast.With, ast.AsyncWith)) and any(
            _transaction_block(item.context_expr, providers) for item in node.items
        ):
            return True
        pending.extend(ast.iter_child_nodes(node))
    return False


class _Branches:
    """The branch structure of one function: each statement's context, and the compound
    statements every arm of which commits, rolls back or leaves (those end the transaction for
    what follows them, though no single arm does on every path)."""

    def __init__(
        self, function: ast.FunctionDef | ast.AsyncFunctionDef, providers: Collection[str] = ()
    ) -> None:
        self.places: list[tuple[int, int, tuple[str, ...]]] = []
        self.closing: dict[int, tuple[str, ...]] = {}
        self.providers = providers
        self.switches = switched_parameters(function)
        self._block(function.body, ())

    def context(self, line: int, closing: bool = False) -> tuple[str, ...]:
        if closing:
            return self.closing[line]
        best: tuple[str, ...] = ()
        for first, last, context in self.places:
            if first <= line <= last and len(context) >= len(best):
                best = context
        return best

    def _block(self, body: list[ast.stmt], context: tuple[str, ...]) -> bool:
        """Record the block's statements; whether every path through it ends or leaves."""
        finished = False
        for index, stmt in enumerate(body):
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            last = stmt.end_lineno or stmt.lineno
            key = f"{stmt.lineno}.{stmt.col_offset}"
            if isinstance(stmt, ast.If):
                self._header(stmt, stmt.body, context)
                leaves = any(_leaves(s) for s in stmt.body)
                test = stmt.test
                if isinstance(test, ast.Name) and test.id in self.switches and not stmt.orelse and not leaves:
                    # taken exactly when the caller switches the parameter on (see ``switched_arm``)
                    self._block(stmt.body, (*context, f"{key}:{SWITCHED}{test.id}"))
                    continue
                then = self._block(stmt.body, (*context, f"{key}:t"))
                if not stmt.orelse and leaves:
                    # ``if c: ...; return``: the rest of the block is the other arm ("g", guarded)
                    rest = self._block(body[index + 1 :], (*context, f"{key}:g"))
                    return finished or rest
                otherwise = self._block(stmt.orelse, (*context, f"{key}:f")) if stmt.orelse else False
                done = then and otherwise
            elif isinstance(stmt, (ast.Try, getattr(ast, "TryStar", ast.Try))):
                body_done = self._block(stmt.body, (*context, f"{key}:b"))  # type: ignore[attr-defined]
                self._mark_tail(stmt.body, (*context, f"{key}:b"))  # type: ignore[attr-defined]
                handled = [
                    self._block(h.body, (*context, f"{key}:h{i}"))
                    for i, h in enumerate(stmt.handlers)  # type: ignore[attr-defined]
                ]
                if stmt.orelse:  # type: ignore[attr-defined]
                    body_done = self._block(stmt.orelse, (*context, f"{key}:e")) or body_done  # type: ignore[attr-defined]
                final = self._block(stmt.finalbody, context)  # type: ignore[attr-defined]
                done = final or (body_done and all(handled))
            elif isinstance(stmt, (ast.For, ast.AsyncFor, ast.While)):
                self._header(stmt, stmt.body, context)
                self._block(stmt.body, (*context, f"{key}:l"))
                self._block(stmt.orelse, (*context, f"{key}:le"))
                done = False
            elif isinstance(stmt, ast.Match):
                self._header(stmt, [c.body[0] for c in stmt.cases if c.body], context)
                for i, case in enumerate(stmt.cases):
                    self._block(case.body, (*context, f"{key}:c{i}"))
                done = False
            elif isinstance(stmt, (ast.With, ast.AsyncWith)):
                self._header(stmt, stmt.body, context)
                done = self._block(stmt.body, context)
                # a session block: its exit commits or closes the session, releasing what it locked
                opened = any(_transaction_block(item.context_expr, self.providers) for item in stmt.items)
                if opened and (last not in self.closing or len(context) < len(self.closing[last])):
                    self.closing[last] = context
            else:
                self.places.append((stmt.lineno, last, context))
                done = _ends(stmt) or _leaves(stmt)
            # a statement whose every arm leaves (``if ...: return a else: return b``) ends nothing:
            # only one where some arm commits, rolls back or closes a session block does
            compound = (
                done
                and not isinstance(stmt, ast.Expr)
                and not _leaves(stmt)
                and _ends_within(stmt, self.providers)
            )
            if compound and (last not in self.closing or len(context) < len(self.closing[last])):
                self.closing[last] = context
            finished = finished or done
        return finished

    def _mark_tail(self, body: list[ast.stmt], context: tuple[str, ...]) -> None:
        """Mark the end of a try body that nothing can raise in after it starts (the last statement
        that calls anything, when it is one step, and what follows it): a handler runs only
        after something raised, so what is locked there is never held in a handler (Airflow's
        ``refresh_from_db(lock_for_update=True)`` as the try's last call, and the reschedule
        handler of the exception the task raised before it)."""
        raising = [i for i, stmt in enumerate(body) if _calls(stmt)]
        if not raising:
            return
        last = raising[-1]
        start = last if _one_step(body[last]) else last + 1
        if start >= len(body):
            return
        first, final = body[start].lineno, body[-1].end_lineno or body[-1].lineno
        node = context[-1].rpartition(":")[0]
        size = len(context)
        for index, (begin, end, place) in enumerate(self.places):
            if first <= begin and end <= final and place[:size] == context:
                self.places[index] = (begin, end, (*context, f"{node}:{_TAIL}", *place[size:]))

    def _header(self, stmt: ast.stmt, body: list[ast.stmt], context: tuple[str, ...]) -> None:
        """The lines of a compound statement before its body (its test, iterable, items)."""
        first_body = body[0].lineno if body else (stmt.end_lineno or stmt.lineno) + 1
        self.places.append((stmt.lineno, max(stmt.lineno, first_body - 1), context))


_LOADED = frozenset({"one", "first", "one_or_none", "scalar_one", "scalar_one_or_none", "get", "scalar"})


def orm_updates(unit: Unit, display: str) -> list[tuple[int, Acquisition]]:
    """ORM attribute writes on an instance the function loaded (``run = session.get(Run, id)``,
    ``run = session.query(Run)...one()``, or a helper annotated to return a model), then
    ``run.state = ...``: an UPDATE of that table at the next flush. One per instance and line."""
    node = unit.node
    evaluator, catalog, program = unit.evaluator, unit.scope.catalog, unit.scope.program
    statements: list[ast.Assign | ast.AugAssign | ast.AnnAssign] = []
    pending: list[ast.AST] = list(node.body)
    while pending:
        item = pending.pop()
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(item, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            statements.append(item)
        pending.extend(c for c in ast.iter_child_nodes(item) if isinstance(c, ast.stmt))
    statements.sort(key=lambda n: (n.lineno, n.col_offset))
    loaded: dict[str, Table] = {}
    found: list[tuple[int, Acquisition]] = []
    for stmt in statements:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        for target in targets:
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
                table = loaded.get(target.value.id)
                columns = _written_columns(table, target.attr) if table is not None else ()
                if table is not None and columns:
                    mode, kind = update_mode(table, columns)
                    what = f"{kind} (ORM write of {target.value.id}.{target.attr}, at the next flush)"
                    where = (display, stmt.lineno, target.col_offset + 1)
                    flush = flush_of(table, catalog)
                    acquisition = Acquisition(
                        table.name, mode, True, *where[:2], what, column=where[2], flush=flush
                    )
                    found.append((stmt.lineno, acquisition))
                    value = stmt.value
                    nulled = columns if isinstance(value, ast.Constant) and value.value is None else ()
                    for check in foreign_key_checks(table, columns, nulled, catalog, where):
                        flushed = replace(check, what=f"{check.what}, at the next flush", flush=flush)
                        found.append((stmt.lineno, flushed))
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name = stmt.targets[0].id
            table = _loaded_table(stmt.value, evaluator, catalog, program)
            if table is not None:
                loaded[name] = table
            else:
                loaded.pop(name, None)
    unique: dict[tuple[int, str], tuple[int, Acquisition]] = {}
    for line, acquisition in found:
        unique.setdefault((line, acquisition.table), (line, acquisition))
    return list(unique.values())


def _written_columns(table: Table, attribute: str) -> tuple[str, ...]:
    """The columns an attribute write on an instance of ``table`` sets at flush: the column
    itself, or for a many-to-one relationship (``ti.dag_run = run``) the foreign-key columns that
    point at its target (``()`` for anything else: a collection, a plain Python attribute)."""
    if attribute in table.columns:
        return (attribute,)
    relationship = table.relationship(attribute)
    if relationship is None or relationship.target is None or relationship.target == table.name:
        return ()
    parent = relationship.target
    return tuple(dict.fromkeys(key for key, ref in table.references() if ref.split(".", 1)[0] == parent))


def _loaded_table(value: ast.expr, evaluator: object, catalog: Catalog, program: object) -> Table | None:
    """The mapped table whose instance an expression loads, when it is one."""
    if isinstance(value, ast.Await):
        value = value.value
    if not isinstance(value, ast.Call) or not isinstance(value.func, ast.Attribute):
        return _returned_table(value, evaluator, catalog, program)
    method = value.func.attr
    models = getattr(evaluator, "models", None)
    if models is None:
        return None
    if method == "get" and value.args:
        found = [m.table for m in models(value.args[0])]
        return found[0] if len(found) == 1 else None
    if method in _LOADED:
        for inner in ast.walk(value.func.value):
            if isinstance(inner, ast.Call) and inner.args and called_name(inner) in ("query", "select"):
                if len(inner.args) != 1:
                    return None
                found = [m.table for m in models(inner.args[0]) if getattr(m, "mapped", True)]
                return (
                    found[0]
                    if len(found) == 1
                    and isinstance(inner.args[0], (ast.Name, ast.Attribute))
                    and not _is_column(inner.args[0], found[0])
                    else None
                )
        return None
    return _returned_table(value, evaluator, catalog, program)


def _is_column(node: ast.expr, table: Table) -> bool:
    return isinstance(node, ast.Attribute) and node.attr in table.columns


def _returned_table(value: ast.expr, evaluator: object, catalog: Catalog, program: object) -> Table | None:
    """A call to a project function annotated to return one model (``-> SqlTraceInfo``)."""
    resolve = getattr(program, "resolve_call", None)
    if not isinstance(value, ast.Call) or resolve is None:
        return None
    try:
        resolved = resolve(evaluator, value, need="")
    except RecursionError:
        return None
    if resolved is None or not resolved[0].returns:
        return None
    tables = [t for name in resolved[0].returns.split() if (t := catalog.lookup(name)) is not None]
    return tables[0] if len(tables) == 1 else None


def _lock_switch(unit: Unit, call: ast.Call, acquisition: Acquisition) -> str | None:
    """Whether the lock a helper's query takes is taken where ``call`` runs it: ``""`` yes, None
    no, or the name of one of this function's parameters (default off) when it is taken only if
    the caller passes that one. The helpers ``call`` goes through may apply it only under ``if
    <parameter>:`` with the parameter defaulting to off (MLflow's ``_trace_query(session,
    for_update_or_delete=False)``), each call switching it on or handing on its own switch
    (``_get_sql_trace_info(..., for_update=False)`` passes ``for_update_or_delete=for_update``)."""
    program = unit.scope.program
    if program is None:
        return ""
    evaluator, here = unit.evaluator, unit.scope.path
    # the switches of the function the call is in, and when each is on ("" always, or a parameter)
    current = switched_parameters(unit.node)
    switches = {p: p for p in current}
    required = ""
    for depth in range(min(len(acquisition.chain), 4)):
        if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
            return required  # *args / **kwargs: what is passed is not known
        try:
            resolved = program.resolve_call(evaluator, call, need="")
        except RecursionError:
            return required
        located = program.node_of(resolved[0]) if resolved is not None else None
        if resolved is None or located is None:
            return required
        info, bound_first = resolved
        helper = located[1]
        params = list(info.params[1:] if bound_first else info.params)
        given = [(k.arg, k.value) for k in call.keywords if k.arg is not None]
        given += list(zip(params, call.args, strict=False))
        passed: dict[str, str] = {}
        for param, value in given:
            if _off(value):
                continue
            if isinstance(value, ast.Name) and value.id in switches:
                passed[param] = switches[value.id]  # handed on: on when that switch is
            elif not (isinstance(value, ast.Name) and value.id in current):
                passed[param] = ""  # (a switch of this function that is off hands nothing on)
        inner = acquisition.chain[depth + 1].rsplit(".", 1)[-1] if depth + 1 < len(acquisition.chain) else ""
        first, last = helper.lineno, helper.end_lineno or helper.lineno
        nested: list[ast.Call] = []
        if info.path == here and first <= acquisition.line <= last and not inner:
            lines = [acquisition.line]
        elif inner:
            nested = [c for c in _body(helper).calls if called_name(c) == inner]
            lines = [c.lineno for c in nested]
        else:
            return required
        if not lines:
            return required
        guards = [[p for b0, b1, p in switched_blocks(helper) if b0 <= n <= b1] for n in lines]
        if all(any(p not in passed for p in guard) for guard in guards):
            return None  # every way to the lock is under a switch this call leaves off
        if len(lines) == 1:
            for p in guards[0]:
                required = required or passed[p]
        if len(nested) != 1:
            return required
        made = program.evaluator_for(info, evaluator.scope.depth + 1)
        if made is None:
            return required
        evaluator, here, call = made[0], info.path, nested[0]
        current = switched_parameters(helper)
        switches = {p: passed[p] for p in current if p in passed}
    return required


def switched_parameters(function: ast.FunctionDef | ast.AsyncFunctionDef) -> frozenset[str]:
    """The parameters of ``function`` that default to False or None."""
    args = function.args
    positional = [*args.posonlyargs, *args.args]
    defaulted = positional[len(positional) - len(args.defaults) :]
    found = {arg.arg for arg, default in zip(defaulted, args.defaults, strict=True) if _off(default)}
    found |= {arg.arg for arg, kw in zip(args.kwonlyargs, args.kw_defaults, strict=True) if _off(kw)}
    return frozenset(found)


def file_locks(
    data: bytes, path: Path, display: str, project: Project, checked: CheckedFile | None = None
) -> list[FunctionLocks]:
    """The summaries of the functions of one file that take locks, end transactions or hand
    their session to other functions (functions with none of these are left out). ``checked``
    is what the file's check worked out, when it just ran: its names, and its units whose
    statements it followed (a function is followed once)."""
    from lockorder_lint.engine import candidate_scope, hit_lines, literal_first
    from lockorder_lint.units import candidate_functions, units_of

    helpers = [re.escape(h.rsplit(".", 1)[-1]).encode() + rb"\s*\(" for h in project.config.lock_helpers]
    locking = re.compile(literal_first(b"|".join([LOCK_TRIGGER, *helpers])))
    sessions = re.compile(rb"session|Session|\.commit\(|\.rollback\(|conn")
    program = project.program
    openers = openers_called(program, str(path)) if program is not None else ()
    if not openers and not sessions.search(data):
        return []
    try:
        source = parse_source(data, display)
    except SourceError:
        return []
    if checked is not None and checked.source is source and checked.resolver is not None:
        module, resolver, breaks = checked.module, checked.resolver, checked.breaks
        known = checked.units
    else:
        module = module_name(path, project.root)
        resolver = file_resolver(source.tree, module, path.name == "__init__.py")
        breaks = [m.start() for m in LINE_BREAK_BYTES.finditer(data)]
        known = {}
    lock_lines = hit_lines(data, locking, breaks)
    hits = {"lock": lock_lines, "session": hit_lines(data, sessions, breaks)}
    if openers:  # calls that start a transaction, in functions that may not speak of sessions
        called = re.compile(rb"\b(?:" + b"|".join(re.escape(n.encode()) for n in openers) + rb")\s*\(")
        hits["start"] = hit_lines(data, called, breaks)
    if program is not None:
        program.remember(str(path), source, resolver)
    found: list[FunctionLocks] = []
    for candidate in candidate_functions(source.tree, module, hits):
        scope = candidate_scope(candidate, source, resolver, project, path)
        try:
            for fresh in units_of(candidate, scope):
                own_end = fresh.node.end_lineno or fresh.node.lineno
                with_statements = any(fresh.node.lineno <= line <= own_end for line in lock_lines)
                unit = fresh
                followed = known.get(id(fresh.node)) if with_statements else None
                if followed is not None and followed.node is fresh.node and "statements" in followed.__dict__:
                    unit = followed  # the check followed its statements: the same steps, same evaluation
                summary = unit_locks(unit, display, with_statements)
                if summary.steps or summary.handed or summary.starts:
                    found.append(summary)
        except Exception:  # a function that cannot be followed takes no locks we know of
            continue
    return found


def openers_called(program: Program, path: str) -> tuple[str, ...]:
    """The session-opening functions (``program.openers``) the file at ``path`` calls by name."""
    memo = program.memo("openers_called")
    if not memo:
        memo[""] = ()
        for name in sorted(program.openers or ()):
            for caller in program.call_index.get(name, ()):
                memo[caller] = (*memo.get(caller, ()), name)
    found: tuple[str, ...] = memo.get(path, ())
    return found


def relocate(acquisition: Acquisition, helper: str) -> Acquisition:
    """An acquisition a callee takes, as its caller sees it: reached through ``helper``."""
    return replace(acquisition, chain=(helper, *acquisition.chain))
