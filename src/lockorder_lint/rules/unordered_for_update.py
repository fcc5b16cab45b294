"""LCK002 unordered-for-update: a row-locking read over many rows with no primary-key order
takes its locks in whatever order the plan visits rows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from lockorder_lint.raw_sql import LOCK_TRIGGER
from lockorder_lint.raw_sql import VIA as SQL_TEXT
from lockorder_lint.rules.base import Report, Rule, RuleContext, key_text, reached_through

if TYPE_CHECKING:
    from lockorder_lint.statements import Statement
    from lockorder_lint.units import Unit


def _in_sql_terms(message: str, via: str) -> str:
    """The fix named as a lock written in SQL text spells it (SKIP LOCKED, NOWAIT)."""
    if via != SQL_TEXT:
        return message
    return message.replace("skip_locked=True", "SKIP LOCKED").replace("nowait=True", "NOWAIT")


class UnorderedForUpdate(Rule):
    code = "LCK002"
    name = "unordered-for-update"
    summary = "FOR UPDATE on a hot table without primary-key pinning, ORDER BY the key, SKIP LOCKED or NOWAIT"
    triggers = rb"with_for_update|" + LOCK_TRIGGER
    uses_lock_helpers = True

    def check(self, unit: Unit, context: RuleContext) -> Iterable[Report]:
        for statement in unit.statements:
            lock = statement.lock
            if lock is None or statement.kind == "get":
                continue
            table = statement.target
            if table is None or not table.primary_key:
                context.unknown.append(statement)
                continue
            if lock.of is not None and table.name not in lock.of:
                continue  # locks only other tables; LCK004 speaks about joins
            pinned = statement.reaches_rows_by_key()
            if pinned or statement.limit_one:
                continue
            if lock.non_blocking:
                continue
            # PostgreSQL sorts before it locks: ORDER BY a unique key is one fixed order
            ordered = statement.ordered_by_unique_key()
            if ordered and not context.config.mysql:
                continue
            if not context.hot(table):
                context.cold.add((lock.span.line, lock.span.column))
                continue
            if statement.opaque_where:
                context.unknown.append(statement)
                continue
            yield Report(
                self.code,
                lock.span,
                self.message(statement, ordered, context.config.mysql),
                table.name,
                statement.statement_text,
            )

    @staticmethod
    def message(statement: Statement, ordered: bool, mysql: bool) -> str:
        table = statement.target
        assert table is not None
        lock = statement.lock
        assert lock is not None
        pk = key_text(table)
        via = f" (via {lock.via})" if lock.via != "with_for_update" else ""
        through = reached_through(statement)
        reach = f"rows through {through}" if through else "every row it scans (no WHERE clause)"
        if ordered:
            order = ", ".join(dict.fromkeys(col for _t, col, _d in statement.order_by))
            return _in_sql_terms(
                f"{lock.mode}{via} on {table.name} locks {reach} as MySQL/MariaDB scans them, before "
                f"ORDER BY {order} sorts them; add skip_locked=True or nowait=True, or pin the rows by {pk}",
                lock.via,
            )
        if mysql:  # InnoDB locks as it scans: an ORDER BY would not fix the order
            fix = f"add skip_locked=True / nowait=True, or pin the rows by {pk}"
        else:
            fix = f"add ORDER BY {', '.join(table.primary_key)}, or skip_locked=True / nowait=True"
        return _in_sql_terms(
            f"{lock.mode}{via} on {table.name} locks {reach} in no fixed order; {fix}", lock.via
        )
