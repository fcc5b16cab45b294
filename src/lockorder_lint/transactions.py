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
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from lockorder_lint.names import called_name, dotted_name, file_resolver, module_name
from lockorder_lint.parsing import LINE_BREAK_BYTES, SourceError, parse_source

if TYPE_CHECKING:
    from lockorder_lint.catalog import Catalog, Table
    from lockorder_lint.engine import CheckedFile, Project
    from lockorder_lint.statements import Statement
    from lockorder_lint.units import Unit

# PostgreSQL's row-lock modes, strongest first; InnoDB's are read from them (see lock_graph).
FOR_UPDATE = "FOR UPDATE"
FOR_NO_KEY_UPDATE = "FOR NO KEY UPDATE"
FOR_SHARE = "FOR SHARE"
FOR_KEY_SHARE = "FOR KEY SHARE"
ALL_DIALECTS = frozenset({"postgresql", "mysql", "mariadb"})
_MYSQL_FAMILY = frozenset({"mysql", "mariadb"})

# Text that may take a row lock: a function without it has no lock steps of its own.
LOCK_TRIGGER = (
    rb"for_update|\bupdate\(|\bdelete\(|\binsert\(|\.merge\(|\.add\(|\.add_all\(|upsert|on_conflict"
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
        if kind in writes:
            mode, what = writes[kind]
            index = _through(statement) if kind != "MERGE" else ""
            found.append(
                Acquisition(target, mode, True, display, line, what, chain, column=column, index=index)
            )
        if kind in ("INSERT", "MERGE"):
            table = catalog.tables.get(target)
            references = table.foreign_keys.values() if table is not None else ()
            for parent in dict.fromkeys(ref.split(".", 1)[0] for ref in references):
                if parent == target or parent not in catalog.tables:
                    continue
                what = f"foreign key check of INSERT INTO {target}"
                index = _referenced_index(catalog.tables[parent], references)
                found.append(
                    Acquisition(
                        parent, FOR_KEY_SHARE, True, display, line, what, chain, column=column, index=index
                    )
                )
    if runs_on != ALL_DIALECTS:
        # built under a dialect test (``if self.db_type == MYSQL:``): only those databases lock
        found = [replace(a, dialects=a.dialects & runs_on) for a in found if a.dialects & runs_on]
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
    return name is not None and any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _own_calls(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.Call]:
    """Calls in the function's own body (not in nested functions or classes), in source order."""
    found: list[ast.Call] = []
    pending: list[ast.AST] = list(function.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Call):
            found.append(node)
        pending.extend(ast.iter_child_nodes(node))
    found.sort(key=lambda c: (c.lineno, c.col_offset))
    return found


def _off(default: ast.expr | None) -> bool:
    return isinstance(default, ast.Constant) and default.value in (False, None)


def switched_blocks(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[tuple[int, int, str]]:
    """``(first line, last line, parameter)`` of each ``if <parameter>:`` body whose parameter
    defaults to False or None: what is inside runs only when a caller switches it on."""
    args = function.args
    positional = [*args.posonlyargs, *args.args]
    defaults: dict[str, ast.expr | None] = {}
    for arg, default in zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True):
        defaults[arg.arg] = default
    for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        defaults[arg.arg] = kw_default
    switches = {name for name, default in defaults.items() if _off(default)}
    found: list[tuple[int, int, str]] = []
    if not switches:
        return found
    pending: list[ast.AST] = list(function.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id in switches:
            first, last = node.body[0].lineno, node.body[-1].end_lineno or node.body[-1].lineno
            found.append((first, last, node.test.id))
        pending.extend(ast.iter_child_nodes(node))
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
    if with_statements:
        last = start
        switched = switched_blocks(node)
        calls_by_name: dict[str, list[ast.Call]] = {}
        for call in _own_calls(node):
            called = called_name(call)
            if called:
                calls_by_name.setdefault(called, []).append(call)
        for statement in unit.statements:
            for acquisition in statement_acquisitions(statement, unit.scope.catalog, display):
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
    for call in _own_calls(node):
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr in _ENDS and not call.args and not call.keywords:
            # on the session or on what wraps it (Airflow's ``prohibit_commit`` guard): locks released
            positioned.append((call.lineno, order, Step("end", call.lineno)))
            order += 1
            continue
        handed = [a for a in call.args if not isinstance(a, ast.Starred)] + [k.value for k in call.keywords]
        if not any(_session_like(arg, patterns) for arg in handed):
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
            passes = tuple(k.arg for k in call.keywords if k.arg is not None and not _off(k.value))
            step = Step("call", call.lineno, callee=resolved[0].qualname, passes=passes)
            positioned.append((call.lineno, order, step))
            order += 1
    branches = _Branches(node)
    for line in branches.closing:
        positioned.append((line, 1 << 30, Step("end", line)))  # every branch of it ends the transaction
    positioned.sort(key=lambda item: (item[0], item[1]))
    if with_statements or any(step.kind == "end" for _line, _order, step in positioned):
        for written, acquisition in orm_updates(unit, display):
            # flushed before the next statement runs, or at the commit (a step's order breaks ties)
            after = next(((line, rank) for line, rank, _step in positioned if line > written), None)
            at, rank = after if after is not None else (node.end_lineno or written, float(1 << 31))
            positioned.append((at, rank - 0.5, Step("lock", written, acquisition)))
        positioned.sort(key=lambda item: (item[0], item[1]))
    steps = tuple(
        replace(step, context=branches.context(step.line, closing=order == 1 << 30))
        for _line, order, step in positioned[:MAX_STEPS]
    )
    return FunctionLocks(
        qualname=f"{unit.scope.resolver.module}.{unit.qualname}",
        name=unit.qualname,
        path=display,
        line=node.lineno,
        steps=steps,
        handed=tuple(dict.fromkeys(handed_names)),
    )


def _exclusive_arms(first: str, second: str) -> bool:
    if {first, second} in ({"t", "f"}, {"t", "g"}):
        return True  # if / else; ``if c: ... return`` / the rest of its block
    kinds = {first[:1], second[:1]}
    return kinds == {"c"} or kinds == {"h"} or kinds == {"h", "e"}  # match arms; handlers; handler / else


def exclusive(first: tuple[str, ...], second: tuple[str, ...]) -> bool:
    """Two places no single run of the function passes both: the two arms of one if/else, two
    ``except`` handlers of one try, a handler and the try's ``else``, two ``case`` arms."""
    for a, b in zip(first, second, strict=False):
        if a == b:
            continue
        node_a, _, arm_a = a.rpartition(":")
        node_b, _, arm_b = b.rpartition(":")
        return node_a == node_b and _exclusive_arms(arm_a, arm_b)
    return False


def on_path(outer: tuple[str, ...], inner: tuple[str, ...]) -> bool:
    """Whether a step at ``outer`` is on every path through the block of ``inner`` (its context
    is a prefix of the other's). What follows a guard clause (``if not ids: return``) counts as
    on every path: the guard is taken to let the work through, as the code's author expects."""
    outer = tuple(part for part in outer if not part.endswith(":g"))
    inner = tuple(part for part in inner if not part.endswith(":g"))
    return inner[: len(outer)] == outer


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


class _Branches:
    """The branch structure of one function: each statement's context, and the compound
    statements every arm of which commits, rolls back or leaves (those end the transaction for
    what follows them, though no single arm does on every path)."""

    def __init__(self, function: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.places: list[tuple[int, int, tuple[str, ...]]] = []
        self.closing: dict[int, tuple[str, ...]] = {}
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
                then = self._block(stmt.body, (*context, f"{key}:t"))
                if not stmt.orelse and any(_leaves(s) for s in stmt.body):
                    # ``if c: ...; return``: the rest of the block is the other arm ("g", guarded)
                    rest = self._block(body[index + 1 :], (*context, f"{key}:g"))
                    return finished or rest
                otherwise = self._block(stmt.orelse, (*context, f"{key}:f")) if stmt.orelse else False
                done = then and otherwise
            elif isinstance(stmt, (ast.Try, getattr(ast, "TryStar", ast.Try))):
                body_done = self._block(stmt.body, (*context, f"{key}:b"))  # type: ignore[attr-defined]
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
            else:
                self.places.append((stmt.lineno, last, context))
                done = _ends(stmt) or _leaves(stmt)
            compound = done and not isinstance(stmt, ast.Expr) and not _leaves(stmt)
            if compound and (last not in self.closing or len(context) < len(self.closing[last])):
                self.closing[last] = context
            finished = finished or done
        return finished

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
                if table is not None and target.attr in table.columns:
                    what = f"UPDATE (ORM write of {target.value.id}.{target.attr}, at the next flush)"
                    acquisition = Acquisition(
                        table.name,
                        FOR_NO_KEY_UPDATE,
                        True,
                        display,
                        stmt.lineno,
                        what,
                        column=target.col_offset + 1,
                    )
                    found.append((stmt.lineno, acquisition))
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
            nested = [c for c in _own_calls(helper) if called_name(c) == inner]
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
    if not sessions.search(data):
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
    program = project.program
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
                if summary.steps or summary.handed:
                    found.append(summary)
        except Exception:  # a function that cannot be followed takes no locks we know of
            continue
    return found


def relocate(acquisition: Acquisition, helper: str) -> Acquisition:
    """An acquisition a callee takes, as its caller sees it: reached through ``helper``."""
    return replace(acquisition, chain=(helper, *acquisition.chain))
