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
            # Rows named by a whole unique key are point lookups: record locks, not a shared gap
            # (a key that may be absent, then inserted, is LCK008's shape).
            ranged = mysql and not statement.pins_unique_key() and not statement.writes_held_rows()
            hot = context.hot_beyond(table, unit.scope.path, unit.qualname)
            # Callers that insert are looked for only where they decide the verdict: a write on
            # a hot table that does not follow the key is reported anyway.
            callers = (
                self._inserting_callers(unit, table.name)
                if ranged
                and table.name not in inserted
                and not statement.from_parameter
                and not (hot and not statement.reaches_rows_by_key())
                else None
            )
            at_once = (
                self._copies_run_at_once(unit, table.name, callers, context)
                if ranged and (table.name in inserted or bool(callers))
                else ""
            )
            gap = bool(at_once)
            joined_hot = [t for t in _other_tables(statement) if context.hot(t)] if mysql else []
            cold = not (hot or gap or joined_hot)
            if statement.reaches_rows_by_key() and not gap:
                continue
            if statement.writes_held_rows():
                continue  # every row it names is one this transaction already locked
            if statement.opaque_where:
                if not cold:
                    context.unknown.append(statement)
                continue
            if not gap and any(
                self._locks_first(earlier, statement, context) for earlier in statements[:index]
            ):
                continue
            if cold:
                context.cold.add((statement.write.line, statement.write.column))
                continue
            why = ""  # the table's own evidence, unless this finding has a reason of its own
            if gap:
                message = self._gap_message(statement, callers)
                why = "" if context.hot(table) else at_once
            elif not hot:  # only the rows it reads in hot tables are contended
                message = self._joined_message(statement, joined_hot)
                why = context.hot_because(joined_hot[0])
            else:
                message = self.message(statement, context.config.mysql)
            yield Report(
                self.code, statement.write, message, table.name, statement.statement_text, hot_because=why
            )

    @staticmethod
    def _locks_first(earlier: Statement, write: Statement, context: RuleContext) -> bool:
        """The fix's unit: the same function first locked this table's rows in key order."""
        if earlier.lock is None or earlier.table_name != write.table_name or earlier.kind == "get":
            return False
        if not earlier.ordered_by_primary_key():
            return False
        return not context.config.mysql or earlier.lock.non_blocking or earlier.pins_primary_key()

    @staticmethod
    def message(statement: Statement, mysql: bool) -> str:
        """One sentence: what locks rows out of key order, through what, and the fix. Why that
        deadlocks against writers that lock by key is in ``lockorder-lint explain LCK001``."""
        table = statement.target
        assert table is not None
        through = reached_through(statement)
        kind = statement.write_kind or "UPDATE"
        reach = f"locks rows through {through}" if through else "has no WHERE clause: it locks every row"
        if len(table.primary_key) == 1:
            pk = table.primary_key[0]
            order, values, by = f"{pk} order", f"the {pk} values", pk
        else:
            order, values, by = f"key order {key_text(table)}", "the key values", "key"
        if mysql:
            batch = "... FOR UPDATE SKIP LOCKED"
        else:
            batch = f"ORDER BY {', '.join(table.primary_key)} ... FOR UPDATE"
        return (
            f"bulk {kind} of {table.name} {reach}, not in {order}; "
            f"select {values} first ({batch}), then {kind} by {by}"
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
    def _copies_run_at_once(unit: Unit, table: str, callers: list[str] | None, context: RuleContext) -> str:
        """Evidence that two copies of the transaction run at the same time, said as the finding's
        ``hot_because``: a request handler or task runs it, its table is contended, something
        retries it, or several callers compose the same range write with an insert; "" if none."""
        retried = context.contention.retried.get((unit.scope.path, unit.node.lineno))
        if handles_requests(unit.node):
            return f"copies run at once: {unit.qualname} handles requests"
        if context.hot(table):
            return context.hot_because(table) or "hot"
        if retried:
            return f"copies run at once: {unit.qualname} is retried ({retried})"
        if callers is not None and len(callers) > 1:
            return f"copies run at once: {len(callers)} callers compose it with an insert"
        return ""

    @staticmethod
    def _joined_message(statement: Statement, joined: list[str]) -> str:
        table = statement.target
        assert table is not None
        kind = statement.write_kind or "UPDATE"
        others = ", ".join(joined)
        return (
            f"bulk {kind} of {table.name} reads {others} rows in the same statement: on MySQL/MariaDB it "
            f"takes shared locks on them in scan order while other transactions lock them by key; read "
            f"the {others} keys first in a plain SELECT (a consistent read locks nothing), then {kind} "
            f"{table.name} by them"
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
            insert = f"the callers' INSERT into {name} ({callers[0].split(' ', 1)[-1]}{more})"
        else:
            insert = f"the INSERT into {name} in the same transaction"
        return (
            f"on MySQL/MariaDB, {kind} of {name} through {through} takes gap locks that deadlock (1213) "
            f"with {insert}; use READ COMMITTED, lock the parent row first, or retry on 1213"
        )


def _other_tables(statement: Statement) -> list[str]:
    """Tables besides the target a write reads through (joins, subqueries): on MySQL/MariaDB it
    takes shared locks on the rows it reads there."""
    found = [
        p.table for p in statement.predicates if p.op in ("join", "sub") and p.table != statement.table_name
    ]
    found += [p.via.split(" ", 1)[0] for p in statement.predicates if p.op == "sub" and p.via]
    return [t for t in dict.fromkeys(found + list(statement.joins)) if t]
