"""LCK001 unordered-bulk-write: a bulk UPDATE/DELETE that reaches rows through something other
than the primary key locks them in that path's order, against writers that lock by key."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from lockorder_lint.rules.base import Report, Rule, RuleContext, key_text, reached_through

if TYPE_CHECKING:
    from lockorder_lint.statements import Statement
    from lockorder_lint.units import Unit


class UnorderedBulkWrite(Rule):
    code = "LCK001"
    name = "unordered-bulk-write"
    summary = "bulk UPDATE/DELETE on a hot table that does not pin rows by primary key"
    triggers = rb"\b(?:update|delete)\s*\("

    def check(self, unit: Unit, context: RuleContext) -> Iterable[Report]:
        for index, statement in enumerate(unit.statements):
            if statement.write is None or statement.kind == "insert":
                continue
            table = statement.target
            if table is None or not table.primary_key:
                context.unknown.append(statement)
                continue
            if not context.hot(table) or statement.reaches_rows_by_key():
                continue
            if statement.opaque_where:
                context.unknown.append(statement)
                continue
            if any(self._locks_first(earlier, statement, context) for earlier in unit.statements[:index]):
                continue
            yield Report(
                self.code,
                statement.write,
                self._message(statement, context),
                table.name,
                statement.statement_text,
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
    def _message(statement: Statement, context: RuleContext) -> str:
        table = statement.target
        assert table is not None
        pk = key_text(table)
        pk_cols = ", ".join(table.primary_key)
        through = reached_through(statement)
        kind = statement.write_kind or "UPDATE"
        reach = (
            f"reaches its rows through {through}" if through else "has no WHERE clause and reaches every row"
        )
        message = (
            f"bulk {kind} of {table.name} {reach}, not the primary key {pk}; "
            f"lock them in {pk} order first (SELECT {pk_cols} ... ORDER BY {pk_cols} "
            f"FOR UPDATE SKIP LOCKED, then {kind} ... WHERE {pk} IN (...))"
        )
        if context.config.mysql:
            message += (
                "; on MySQL/MariaDB keep SKIP LOCKED: InnoDB locks rows as it scans, "
                "before ORDER BY sorts them"
            )
        return message
