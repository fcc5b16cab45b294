"""LCK001 unordered-bulk-write: a bulk UPDATE/DELETE that reaches rows through something other
than the primary key locks them in that path's order, against writers that lock by key."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from lockorder_lint.contention import handles_requests, inserting_callers
from lockorder_lint.raw_sql import WRITE_TRIGGER
from lockorder_lint.rules.base import Report, Rule, RuleContext, key_text, reached_through

if TYPE_CHECKING:
    from lockorder_lint.statements import Statement
    from lockorder_lint.units import Unit


class UnorderedBulkWrite(Rule):
    code = "LCK001"
    name = "unordered-bulk-write"
    summary = "bulk UPDATE/DELETE on a hot table that does not pin rows by primary key"
    triggers = rb"\b(?:update|delete)\s*\(|" + WRITE_TRIGGER

    def check(self, unit: Unit, context: RuleContext) -> Iterable[Report]:
        statements = unit.statements
        inserted = {s.table_name for s in statements if s.kind in ("insert", "merge") and s.table_name}
        for index, statement in enumerate(statements):
            if statement.write is None or statement.kind in ("insert", "merge"):
                continue
            table = statement.target
            if table is None or not table.primary_key:
                context.unknown.append(statement)
                continue
            mysql = context.config.mysql
            # On MySQL/MariaDB a range write takes next-key (gap) locks: against INSERTs into the
            # same range by another copy of this transaction, key order does not help.
            ranged = mysql and not statement.pins_primary_key() and not statement.writes_held_rows()
            # Callers that insert are looked for only where they decide the verdict: a write on
            # a hot table that does not follow the key is reported anyway.
            callers = (
                self._inserting_callers(unit, table.name)
                if ranged
                and table.name not in inserted
                and not statement.from_parameter
                and not (context.hot(table) and not statement.reaches_rows_by_key())
                else None
            )
            gap = (
                ranged
                and (table.name in inserted or bool(callers))
                and self._copies_run_at_once(unit, table.name, callers, context)
            )
            joins_hot = mysql and any(context.hot(t) for t in _other_tables(statement))
            if not (context.hot(table) or gap or joins_hot):
                continue
            if statement.reaches_rows_by_key() and not gap:
                continue
            if statement.writes_held_rows():
                continue  # every row it names is one this transaction already locked
            if statement.opaque_where:
                context.unknown.append(statement)
                continue
            if not gap and any(
                self._locks_first(earlier, statement, context) for earlier in statements[:index]
            ):
                continue
            message = self._gap_message(statement, callers) if gap else self._message(statement, context)
            yield Report(self.code, statement.write, message, table.name, statement.statement_text)

    @staticmethod
    def _locks_first(earlier: Statement, write: Statement, context: RuleContext) -> bool:
        """The fix's unit: the same function first locked this table's rows in key order."""
        if earlier.lock is None or earlier.table_name != write.table_name or earlier.kind == "get":
            return False
        if not earlier.ordered_by_primary_key():
            return False
        return not context.config.mysql or earlier.lock.non_blocking or earlier.pins_primary_key()

    @staticmethod
    def _message(statement: Statement, context: RuleContext) -> str:
        table = statement.target
        assert table is not None
        pk = key_text(table)
        through = reached_through(statement)
        kind = statement.write_kind or "UPDATE"
        reach = f"reaches rows through {through}" if through else "has no WHERE clause"
        batch = "SKIP LOCKED" if context.config.mysql else "ORDER BY " + ", ".join(table.primary_key)
        return (
            f"bulk {kind} of {table.name} {reach}, not its key {pk}, so it locks rows in another order than "
            f"writers that lock by {pk}: select the {pk} values first ({batch} ... FOR UPDATE), then "
            f"{kind} by {pk}"
        )

    @staticmethod
    def _inserting_callers(unit: Unit, table: str) -> list[str] | None:
        """The callers whose transaction runs this function's range write and also inserts into
        its table (a helper's sweep, then the caller's INSERT)."""
        program = unit.scope.program
        if program is None:
            return None
        return inserting_callers(program, f"{unit.scope.resolver.module}.{unit.qualname}", table)

    @staticmethod
    def _copies_run_at_once(unit: Unit, table: str, callers: list[str] | None, context: RuleContext) -> bool:
        """Evidence that two copies of the transaction run at the same time: a request handler
        or task runs it, its table is contended, something retries it, or several callers
        compose the same range write with an insert."""
        return (
            handles_requests(unit.node)
            or context.hot(table)
            or (unit.scope.path, unit.node.lineno) in context.contention.retried
            or (callers is not None and len(callers) > 1)
        )

    @staticmethod
    def _gap_message(statement: Statement, callers: list[str] | None) -> str:
        table = statement.target
        assert table is not None
        through = reached_through(statement) or "every row"
        kind = statement.write_kind or "UPDATE"
        name = table.name
        if callers:
            more = f" and {len(callers) - 1} more" if len(callers) > 1 else ""
            where = f"transactions that also insert into {name} ({callers[0].split(' ', 1)[-1]}{more})"
        else:
            where = f"a transaction that also inserts into {name}"
        return (
            f"{kind} of {name} through {through} in {where}: on MySQL/MariaDB two of them take the same "
            "gap lock and deadlock on their INSERTs (1213); use READ COMMITTED, lock the parent row first, "
            "or retry on 1213"
        )


def _other_tables(statement: Statement) -> list[str]:
    """Tables besides the target a write reads through (joins, subqueries): on MySQL/MariaDB it
    takes shared locks on the rows it reads there."""
    found = [
        p.table for p in statement.predicates if p.op in ("join", "sub") and p.table != statement.table_name
    ]
    found += [p.via.split(" ", 1)[0] for p in statement.predicates if p.op == "sub" and p.via]
    return [t for t in dict.fromkeys(found + list(statement.joins)) if t]
