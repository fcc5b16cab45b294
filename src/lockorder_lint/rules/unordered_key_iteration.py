"""LCK006 unordered-key-iteration: a transaction that locks or writes existing rows by key, one
key per iteration, over a collection that is not in sorted key order (a set, a dict, the caller's
list). Two transactions given the same keys in different orders lock them in opposite orders."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from lockorder_lint.iteration import (
    UNORDERED,
    Loop,
    Order,
    OrderReader,
    loops_in,
    references,
    tainted_names,
    transaction_per_iteration,
    uses_bare,
)
from lockorder_lint.rules.base import Report, Rule, RuleContext
from lockorder_lint.walk import walk

if TYPE_CHECKING:
    from lockorder_lint.statements import Span, Statement
    from lockorder_lint.units import Unit


@dataclass(frozen=True)
class KeyedWrite:
    """A statement that locks or writes one existing row by its key, and what it does, in words."""

    statement: Statement
    verb: str  # "merges", "upserts", "locks", "updates", "deletes"
    # The loop's key variable itself is the key (not an attribute of it): sorting keys sorts rows.
    by_loop_key: bool


@dataclass(frozen=True)
class Unsorted:
    """One finding: the loop's iterable, its order, and the keyed writes it drives."""

    loop: Loop
    order: Order
    writes: tuple[KeyedWrite, ...]
    span: Span
    multi_row: bool = False

    @property
    def fixable(self) -> bool:
        """``sorted(...)`` around the iterable is a sorted key order."""
        return (
            self.order.sortable
            and not self.loop.comprehension
            and all(write.by_loop_key for write in self.writes)
        )


def keyed_write(statement: Statement) -> str | None:
    """What ``statement`` does to one existing row it names by key, or None."""
    if statement.target is None:
        return None
    if statement.lock is not None and statement.lock.non_blocking and statement.write is None:
        return None  # SKIP LOCKED / NOWAIT never waits, so it never closes a cycle
    if statement.kind == "get":
        return "locks" if statement.lock is not None else None
    if statement.kind == "merge":
        return "merges"
    if statement.kind == "insert":
        return "upserts" if statement.upsert else None
    if statement.writes_held_rows():
        return None
    by_key = statement.pins_primary_key() or statement.pins_single_row()
    if statement.write is not None and by_key:
        return "deletes" if statement.write_kind == "DELETE" else "updates"
    if statement.lock is not None and by_key:
        return "locks"
    return None


class UnorderedKeyIteration(Rule):
    code = "LCK006"
    name = "unordered-key-iteration"
    summary = "rows locked or written by key in a loop over a set, a dict or the caller's list, not sorted"
    triggers = rb"\.merge\(|with_for_update|on_conflict_do_|on_duplicate_key_update|\b(?:update|delete)\s*\("

    def wants(self, function: ast.FunctionDef | ast.AsyncFunctionDef, config: object) -> bool:
        return any(isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)) for node in walk(function))

    def check(self, unit: Unit, context: RuleContext) -> Iterable[Report]:
        for found in find_unsorted(unit):
            tables = [w.statement.target.name for w in found.writes if w.statement.target is not None]
            table = tables[0]
            evidence = any(w.verb in ("merges", "upserts", "locks") for w in found.writes)
            if not (evidence or any(context.hot(t) for t in tables)):
                context.cold.add((found.span.line, found.span.column))
                continue
            yield Report(self.code, found.span, _message(found), table, _text(found.loop.iter))


def find_unsorted(unit: Unit) -> Iterator[Unsorted]:
    """Every loop of ``unit`` over an unsorted collection that drives keyed writes, once per loop."""
    function = unit.node
    loops = loops_in(function)
    if not loops:
        return
    reader = OrderReader(function)
    statements = unit.statements
    nested = {
        node.name: node
        for node in walk(function)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node is not function
    }
    reported: set[int] = set()
    for loop in loops:
        order = reader.order(loop.iter, getattr(loop.node, "lineno", 0))
        if order.kind != UNORDERED or transaction_per_iteration(loop):
            continue
        tainted = tainted_names(loop)
        key = loop.key_name()
        writes: list[KeyedWrite] = []
        for statement in statements:
            verb = keyed_write(statement)
            if verb is None or id(statement) in reported or not _inside(statement, loop):
                continue
            node = statement.node
            if not keyed_by(statement, tainted, loop.body):
                continue
            writes.append(KeyedWrite(statement, verb, key is not None and uses_bare(node, key)))
        writes.extend(_through_nested(unit, loop, tainted, nested))
        writes = [w for w in writes if not _skips_held(w.statement, loop, statements)]
        if not writes:
            continue
        reported.update(id(w.statement) for w in writes)
        yield Unsorted(loop, order, tuple(writes), unit.span(loop.iter))
    yield from _multi_row_upserts(unit, reader, statements)


def keyed_by(statement: Statement, tainted: set[str], body: tuple[ast.AST, ...]) -> bool:
    """The row ``statement`` writes is named by the loop's values: they reach its WHERE clause, or,
    for an object built with its key columns (``Model(id=..., ...)``), they reach a key column.
    A merge of an object whose key is generated (``id=uuid4().hex``) writes a new row each time."""
    node = statement.node
    if not references(node, tainted):
        return False
    target = statement.target
    if target is None or statement.kind != "merge":
        return True
    key = set(target.primary_key)
    built = _constructors(node, body)
    keyed = [call for call in built if key & {kw.arg for kw in call.keywords}]
    if not keyed:
        return True
    return any(kw.arg in key and references(kw.value, tainted) for call in keyed for kw in call.keywords)


def _constructors(node: ast.AST | None, body: tuple[ast.AST, ...]) -> list[ast.Call]:
    """Calls with keyword arguments in ``node``, and in the loop body's assignments of the names
    ``node`` uses (``item = Model(...)`` then ``session.merge(item)``)."""
    if node is None:
        return []
    calls = [n for n in ast.walk(node) if isinstance(n, ast.Call) and n.keywords]
    used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    for part in body:
        for assign in ast.walk(part):
            if (
                isinstance(assign, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id in used for t in assign.targets)
                and isinstance(assign.value, ast.Call)
                and assign.value.keywords
            ):
                calls.append(assign.value)
    return calls


def _skips_held(write: Statement, loop: Loop, statements: list[Statement]) -> bool:
    """Earlier in the same iteration, a locking read that never waits (SKIP LOCKED, NOWAIT)
    locked rows of the same table: the write then names rows this iteration already holds (or
    was skipped), and takes no lock another writer could be holding (Airflow's scheduler deleting
    the queue rows it locked with SKIP LOCKED)."""
    for earlier in statements:
        if earlier is write or earlier.lock is None or not earlier.lock.non_blocking:
            continue
        if (
            earlier.table_name == write.table_name
            and _inside(earlier, loop)
            and earlier.span.line < write.span.line
        ):
            return True
    return False


def _inside(statement: Statement, loop: Loop) -> bool:
    """The statement runs once per iteration: its span lies in the loop body, in this file."""
    span = statement.span
    if loop.comprehension:
        return any(
            getattr(part, "lineno", 0) <= span.line <= (getattr(part, "end_lineno", 0) or 0)
            and _contains(part, statement)
            for part in loop.body
        )
    return loop.holds_line(span.line)


def _contains(part: ast.AST, statement: Statement) -> bool:
    node = statement.node
    return node is None or any(child is part for child in ast.walk(node))


def _through_nested(
    unit: Unit, loop: Loop, tainted: set[str], nested: dict[str, ast.FunctionDef | ast.AsyncFunctionDef]
) -> list[KeyedWrite]:
    """Keyed writes of a function nested here and called once per iteration with the loop's values
    (Airflow's ``_queue_dagrun_if_needed(dag) for dag in dags_to_queue``)."""
    from lockorder_lint.builders import Evaluator

    found: list[KeyedWrite] = []
    for part in loop.body:
        for call in ast.walk(part):
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)):
                continue
            callee = nested.get(call.func.id)
            if callee is None or not any(references(arg, tainted) for arg in call.args):
                continue
            params = [a.arg for a in callee.args.args]
            bound = {
                param
                for param, arg in zip(params, call.args, strict=False)
                if not isinstance(arg, ast.Starred) and references(arg, tainted)
            }
            inner = Loop(callee, ast.Name(id="_"), ast.Name(id="_"), tuple(callee.body))
            reach = tainted_names(replace(inner, target=ast.Tuple(elts=[ast.Name(id=p) for p in bound])))
            evaluator = Evaluator(replace(unit.scope, qualname=f"{unit.qualname}.{callee.name}"))
            for statement in evaluator.run(callee):
                verb = keyed_write(statement)
                if verb is not None and keyed_by(statement, reach, tuple(callee.body)):
                    found.append(KeyedWrite(statement, verb, False))
    return found


def _multi_row_upserts(unit: Unit, reader: OrderReader, statements: list[Statement]) -> Iterator[Unsorted]:
    """``session.execute(upsert, rows)`` (or ``.values(rows)``) whose rows a comprehension built
    from an unsorted collection: one statement, but it writes the rows in that order."""
    upserts: dict[str, Statement] = {}
    for built in statements:
        if built.upsert and isinstance(built.node, ast.Assign):
            for target in built.node.targets:
                if isinstance(target, ast.Name):
                    upserts[target.id] = built
    for node in walk(unit.node):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        args = node.args
        if node.func.attr != "execute" or len(args) < 2 or not isinstance(args[0], ast.Name):
            continue
        statement, rows = upserts.get(args[0].id), args[1]
        if statement is None:
            continue
        comprehension = _comprehension(rows, reader, node.lineno)
        if comprehension is None:
            continue
        generator = comprehension.generators[0]
        order = reader.order(generator.iter, node.lineno)
        if order.kind != UNORDERED:
            continue
        loop = Loop(comprehension, generator.target, generator.iter, (comprehension,), comprehension=True)
        write = KeyedWrite(statement, "upserts", False)
        yield Unsorted(loop, order, (write,), unit.span(generator.iter), multi_row=True)


def _comprehension(node: ast.AST, reader: OrderReader, line: int) -> ast.ListComp | ast.GeneratorExp | None:
    if isinstance(node, (ast.ListComp, ast.GeneratorExp)):
        return node
    if isinstance(node, ast.Name):
        earlier = [value for at, value in reader.assignments.get(node.id, ()) if at <= line]
        if earlier and isinstance(earlier[-1], (ast.ListComp, ast.GeneratorExp)):
            return earlier[-1]
    return None


def _text(node: ast.AST) -> str:
    try:
        return " ".join(ast.unparse(node).split())
    except (ValueError, RecursionError):  # pragma: no cover
        return ""


def _message(found: Unsorted) -> str:
    first = found.writes[0]
    statement = first.statement
    assert statement.target is not None
    table = statement.target.name
    tables = list(dict.fromkeys(w.statement.target.name for w in found.writes if w.statement.target))
    named = table if len(tables) == 1 else ", ".join(tables)
    iterable = _text(found.loop.iter)
    if found.multi_row:
        what = f"multi-row {statement.upsert} into {named} lists its rows"
    else:
        what = f"loop {first.verb} {named} rows by key"
    if found.fixable:
        fix = f"iterate sorted({iterable})"
    else:
        fix = "sort the elements by the rows' key first (sorted(..., key=...))"
    return (
        f"{what} in the order of {found.order.why}, not sorted, so two transactions can lock the same "
        f"rows in opposite orders; {fix}"
    )
