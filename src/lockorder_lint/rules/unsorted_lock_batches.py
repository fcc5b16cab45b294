"""LCK007 unsorted-lock-batches: keys split into batches (``itertools.batched``, slices in a loop,
a chunking helper) and each batch locked or written, where the keys were not sorted before the
split. Each batch may be ``ORDER BY``-ed, but two writers with overlapping keys still take them
batch by batch in opposite orders when their key lists are in different orders."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lockorder_lint.iteration import SORTED, Loop, OrderReader, loops_in, references, tainted_names
from lockorder_lint.names import called_name
from lockorder_lint.rules.base import Report, Rule, RuleContext, key_text
from lockorder_lint.rules.unordered_key_iteration import keyed_write
from lockorder_lint.walk import walk

if TYPE_CHECKING:
    from lockorder_lint.statements import Statement
    from lockorder_lint.units import Unit

_CHUNK_WORDS = ("batch", "chunk", "partition", "split", "slices", "grouper")


@dataclass(frozen=True)
class Batching:
    """How a loop's batches were cut: the expression holding the keys, and the words for it."""

    keys: ast.expr
    how: str


def _call_name(node: ast.AST) -> str:
    if not isinstance(node, ast.Call):
        return ""
    return called_name(node)


def _slice_of(node: ast.AST, index: str) -> ast.expr | None:
    """``keys[i : i + n]`` sliced by ``index``: the keys."""
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.slice, ast.Slice)
        and references(node.slice.lower, {index})
    ):
        return node.value
    return None


def batching(node: ast.AST, reader: OrderReader, line: int, depth: int = 0) -> Batching | None:
    """The batches ``node`` iterates, when it is a split of a key collection: ``batched(keys, n)``,
    ``chunks(keys, n)``, ``[keys[i : i + n] for i in range(...)]``, or a name bound to one."""
    if depth > 3:
        return None
    if isinstance(node, ast.Name):
        earlier = [value for at, value in reader.assignments.get(node.id, ()) if at <= line]
        if earlier and earlier[-1] is not None:
            return batching(earlier[-1], reader, line, depth + 1)
        return None
    name = _call_name(node)
    if isinstance(node, ast.Call) and node.args and any(word in name.lower() for word in _CHUNK_WORDS):
        return Batching(node.args[0], f"{name}(...)")
    if isinstance(node, (ast.ListComp, ast.GeneratorExp)) and len(node.generators) == 1:
        generator = node.generators[0]
        if isinstance(generator.target, ast.Name) and _call_name(generator.iter) == "range":
            keys = _slice_of(node.elt, generator.target.id)
            if keys is not None:
                return Batching(keys, "slices")
    return None


def _slicing_loop(loop: Loop) -> Batching | None:
    """``for i in range(0, len(keys), n): batch = keys[i : i + n]``."""
    if not (isinstance(loop.target, ast.Name) and _call_name(loop.iter) == "range") or loop.comprehension:
        return None
    for part in loop.body:
        for node in ast.walk(part):
            keys = _slice_of(node, loop.target.id)
            if keys is not None:
                return Batching(keys, "slices")
    return None


class UnsortedLockBatches(Rule):
    code = "LCK007"
    name = "unsorted-lock-batches"
    summary = "keys split into batches that are locked or written per batch, without sorting the keys first"
    triggers = rb"with_for_update|\b(?:update|delete)\s*\(|on_conflict_do_|on_duplicate_key_update|\.merge\("

    def wants(self, function: ast.FunctionDef | ast.AsyncFunctionDef, config: object) -> bool:
        return any(isinstance(node, (ast.For, ast.AsyncFor)) for node in walk(function))

    def check(self, unit: Unit, context: RuleContext) -> Iterable[Report]:
        for loop, cut, writes in _unsorted_batches(unit):
            table = writes[0].target
            assert table is not None
            if not (any(w.lock is not None for w in writes) or context.hot(table)):
                span = unit.span(loop.iter)
                context.cold.add((span.line, span.column))
                continue
            keys = " ".join(ast.unparse(cut.keys).split())
            message = (
                f"{keys} is split into batches ({cut.how}) and each batch locks {table.name} rows by "
                f"{key_text(table)}, but the keys are not sorted before the split; sort and de-duplicate "
                f"them first (sorted(set({keys})))"
            )
            yield Report(
                self.code, unit.span(loop.iter), message, table.name, " ".join(ast.unparse(loop.iter).split())
            )


def _unsorted_batches(unit: Unit) -> Iterator[tuple[Loop, Batching, list[Statement]]]:
    loops = loops_in(unit.node)
    if not loops:
        return
    reader = OrderReader(unit.node)
    statements = unit.statements
    # Reads, locking or not: keys a query returned are in the query's order (with a lock, they are
    # rows this transaction holds, as Prefect's vacuum deletes the runs it locked SKIP LOCKED).
    reads = {id(s.node) for s in statements if s.node is not None and s.write is None}
    for loop in loops:
        if loop.comprehension:
            continue
        line = getattr(loop.node, "lineno", 0)
        cut = batching(loop.iter, reader, line) or _slicing_loop(loop)
        if cut is None or reader.order(cut.keys, line).kind == SORTED:
            continue
        if _from_query(cut.keys, reader, line, unit, reads):
            continue  # keys read from the database: their order is the query's, judged by LCK002
        tainted = tainted_names(loop)
        writes = [
            s
            for s in statements
            if keyed_write(s) is not None
            and loop.holds_line(s.span.line)
            and references(s.node, tainted)
            and not _by_held_rows(s)
        ]
        if writes:
            yield loop, cut, writes


def _by_held_rows(statement: Statement) -> bool:
    return statement.writes_held_rows()


def _from_query(keys: ast.expr, reader: OrderReader, line: int, unit: Unit, reads: set[int]) -> bool:
    """The keys are (built from) the result of a read this function ran."""
    if not isinstance(keys, ast.Name):
        return False
    for at, _value in reader.assignments.get(keys.id, ()):
        if at > line:
            continue
        for node in walk(unit.node):
            if isinstance(node, ast.Assign) and node.lineno == at and id(node) in reads:
                return True
    return False
