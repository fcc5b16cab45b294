"""LCK008 lock-then-insert-gap: on MySQL/MariaDB, a locking read (or UPDATE/DELETE) that names a
row by its key, then an INSERT (or merge) into the same table in the same transaction. When the
row is absent, InnoDB's REPEATABLE READ locks the gap where it would be; two transactions both get
that gap lock (gap locks do not conflict), then each one's INSERT waits for the other's: 1213."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from lockorder_lint.contention import handles_requests
from lockorder_lint.iteration import OrderReader, own_nodes
from lockorder_lint.rules.base import Report, Rule, RuleContext, key_text
from lockorder_lint.walk import walk

if TYPE_CHECKING:
    from lockorder_lint.catalog import Table
    from lockorder_lint.statements import Span, Statement
    from lockorder_lint.units import Unit

_INSERTING_CALLS = frozenset({"insert", "merge", "add", "add_all"})
_MAX_CHAIN = 4


def gap_probe(statement: Statement) -> str | None:
    """What ``statement`` does to a row it names by key that may be absent, or None: a locking
    read pinned by a key (``FOR UPDATE``), an UPDATE or DELETE pinned by the whole key."""
    if statement.target is None or statement.writes_held_rows():
        return None
    if statement.lock is not None and statement.write is None:
        return statement.lock.mode if statement.reaches_rows_by_key() else None
    if statement.write is not None and statement.kind in ("update", "delete", "query"):
        whole = statement.pins_primary_key() or statement.pins_single_row()
        return statement.write_kind if whole else None
    return None


def _probe_span(statement: Statement) -> Span:
    if statement.lock is not None:
        return statement.lock.span
    return statement.write or statement.span


class LockThenInsertGap(Rule):
    code = "LCK008"
    name = "lock-then-insert-gap"
    summary = "MySQL/MariaDB: a row locked or written by key, then an INSERT into its table (gap lock)"
    # The insert is what every finding holds (the lock may come from a helper); ``wants`` then
    # looks no further unless MySQL/MariaDB is configured.
    triggers = rb"\.(?:add|add_all|merge|bulk_save_objects)\(|\binsert\s*\(|_save"
    uses_lock_helpers = True

    def wants(self, function: ast.FunctionDef | ast.AsyncFunctionDef, config: object) -> bool:
        """MySQL/MariaDB only, and a function that both inserts and locks or writes by something
        named for it (``with_for_update``, ``update``, ``delete``, a ``lock`` helper, MLflow's
        ``for_update_or_delete=True``): ``set.add`` alone does not make a function worth reading."""
        if not getattr(config, "mysql", False):
            return False
        inserts = locks = False
        for node in walk(function):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else ""
            )
            inserts = inserts or name in _INSERTING_CALLS or "save" in name
            words = [name.lower(), *((kw.arg or "").lower() for kw in node.keywords)]
            locks = locks or any(
                word in ("update", "delete") or "for_update" in word or "lock" in word for word in words
            )
            if inserts and locks:
                return True
        return False

    def check(self, unit: Unit, context: RuleContext) -> Iterable[Report]:
        if not context.config.mysql:
            return
        statements = unit.statements
        reported: set[str] = set()
        reader: OrderReader | None = None
        for index, probe in enumerate(statements):
            what = gap_probe(probe)
            table = probe.target
            if what is None or table is None or table.name in reported or not probe.runs_on_innodb:
                continue  # (after ``if dialect == "mysql": ... return`` the rest runs elsewhere)
            later = [
                s
                for s in statements
                if s.kind in ("insert", "merge")
                and s.table_name == table.name
                and s.runs_on_innodb
                and _after(s, probe, unit)
            ]
            staged = None if later else _staged_instance(unit, table.name, _probe_span(probe).line)
            if not later and staged is None:
                continue
            reader = reader or OrderReader(unit.node)
            if _keys_read_first(unit, probe, statements[:index], reader):
                continue  # the keys were read from the table first: those rows exist
            if _parent_locked_first(table, statements[:index]):
                continue  # copies of the transaction queue on the parent row: the named fix
            if not (context.hot(table) or handles_requests(unit.node)):
                span = _probe_span(probe)
                context.cold.add((span.line, span.column))
                continue
            reported.add(table.name)
            insert_line, merged = (
                ((later[0].write or later[0].span).line, later[0].kind == "merge")
                if later
                else (staged, False)
            )
            message = _message(probe, what, insert_line or 0, merged)
            yield Report(self.code, _probe_span(probe), message, table.name, probe.statement_text)


def _parent_locked_first(table: Table, earlier: Sequence[Statement]) -> bool:
    """A row of a table this one references (by a foreign key) was locked for update before the
    probe: two copies of the transaction then wait on that row before either reaches the gap."""
    parents = {target.split(".", 1)[0] for _key, target in table.references()}
    return any(
        s.lock is not None and not s.lock.read and not s.lock.non_blocking and s.table_name in parents
        for s in earlier
    )


def _after(insert: Statement, probe: Statement, unit: Unit) -> bool:
    """The insert runs after the probe. Both are placed by their lines in this function; a probe a
    helper elsewhere in the file made (its span is the helper's) runs where this function first
    calls that helper; when no such call is found it is placed nowhere, and any plain insert of
    the function counts (an upsert is more likely the fix, run before the lock, as in MLflow's
    ``ensure_locked_rebuild_entry``)."""
    start, end = unit.node.lineno, unit.node.end_lineno or unit.node.lineno
    line = _probe_span(probe).line
    if not start <= line <= end:
        called = _first_call(unit, probe.calls[0].rsplit(".", 1)[-1]) if probe.calls else None
        if called is None:
            return not insert.upsert
        line = called
    return (insert.write or insert.span).line > line


def _first_call(unit: Unit, name: str) -> int | None:
    """The line of the function's first call of a function named ``name`` (its own body only)."""
    lines = []
    for node in own_nodes(unit.node):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called == name:
                lines.append(node.lineno)
    return min(lines, default=None)


def _keys_read_first(unit: Unit, probe: Statement, earlier: list[Statement], reader: OrderReader) -> bool:
    """The probe's key values come from an earlier read of the same table (MLflow 1.26.0 selects
    the keys that exist, then locks only those): the rows it locks exist, so no gap is locked."""
    reads = {
        id(s.node)
        for s in earlier
        if s.table_name == probe.table_name and s.lock is None and s.write is None and s.node is not None
    }
    if not reads or probe.node is None:
        return False
    line = getattr(probe.node, "lineno", 0)
    pending = {n.id for n in ast.walk(probe.node) if isinstance(n, ast.Name)}
    seen: set[str] = set()
    for _ in range(_MAX_CHAIN):
        next_names: set[str] = set()
        for name in pending - seen:
            seen.add(name)
            for at, value in reader.assignments.get(name, ()):
                if at > line:
                    continue
                for node in own_nodes(unit.node):
                    if isinstance(node, ast.Assign) and node.lineno == at and id(node) in reads:
                        return True
                if value is not None:
                    next_names |= {n.id for n in ast.walk(value) if isinstance(n, ast.Name)}
        if not next_names - seen:
            break
        pending = next_names
    return False


def _staged_instance(unit: Unit, table: str, after: int) -> int | None:
    """The line of an object of ``table``'s class made after line ``after`` when the function also
    stages a collection of objects on the session (``add_all``, ``bulk_save_objects``, or a ``save`` helper
    handed the session) at or after it: objects collected in a dict and saved at the end (MLflow
    1.26.0) are INSERTs too."""
    built = [
        node.lineno
        for node in own_nodes(unit.node)
        if isinstance(node, ast.Call)
        and node.lineno > after
        and isinstance(node.func, (ast.Name, ast.Attribute))
        and (mapped := unit.evaluator.mapped_class(node.func)) is not None
        and mapped.name == table
    ]
    if not built:
        return None
    first = min(built)
    for node in own_nodes(unit.node):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.lineno >= first:
            name = node.func.attr
            # ``add(obj)`` of an object made here is read by the evaluator itself, which knows when
            # a dialect branch returned before it; collections and helpers are not.
            if name in ("add_all", "bulk_save_objects") or ("save" in name and _passes_session(node)):
                return first
    return None


def _passes_session(call: ast.Call) -> bool:
    """A helper handed the session (``self._save_to_db(session=session, objs=...)``)."""
    values = [*call.args, *(kw.value for kw in call.keywords)]
    return any(isinstance(v, ast.Name) and "session" in v.id for v in values)


def _message(probe: Statement, what: str, line: int, merged: bool) -> str:
    table = probe.target
    assert table is not None
    action = "a merge" if merged else "an INSERT"
    return (
        f"{what} of {table.name} by {key_text(table)}, then {action} into it (line {line}): on InnoDB "
        "two copies deadlock on a missing row's gap lock; use ON DUPLICATE KEY UPDATE, insert "
        "first and catch the duplicate, READ COMMITTED, or a parent-row lock"
    )
