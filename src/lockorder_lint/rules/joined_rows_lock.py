"""LCK004 for-update-locks-joined-rows: a row-locking read whose FROM clause holds other tables
too (explicit joins, further entities, eager-joined relationships) locks their rows as well,
unless ``of=`` limits the lock; that second lock is taken in an order nobody chose."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from lockorder_lint.raw_sql import LOCK_TRIGGER
from lockorder_lint.raw_sql import VIA as SQL_TEXT
from lockorder_lint.rules.base import Report, Rule, RuleContext

if TYPE_CHECKING:
    from lockorder_lint.statements import JoinedTable, Statement
    from lockorder_lint.units import Unit

# Statement kinds that read rows (and so can lock them); writes lock what they write.
_READS = frozenset({"select", "query", "get"})


class JoinedRowsLock(Rule):
    code = "LCK004"
    name = "for-update-locks-joined-rows"
    summary = "FOR UPDATE without of= on a statement that joins other tables (explicitly or by eager loading)"
    triggers = rb"with_for_update|" + LOCK_TRIGGER
    uses_lock_helpers = True

    def check(self, unit: Unit, context: RuleContext) -> Iterable[Report]:
        from lockorder_lint.statements import joined_tables

        reported: set[tuple[int, int]] = set()
        for statement in unit.statements:
            lock = statement.lock
            if lock is None or statement.kind not in _READS or statement.target is None:
                continue
            if lock.of is not None and not context.config.mariadb:
                continue  # the statement says which tables it means to lock
            if lock.non_blocking and not context.config.mariadb:
                continue  # it never waits for a joined row, so it closes no cycle
            # (MariaDB is left out: there a SKIP LOCKED scan was seen waiting on a row that a
            # secondary-index read reached; see benchmarks/stress.py.)
            # MariaDB has no OF (SQLAlchemy drops it) and InnoDB locks the rows it reads: there,
            # of= narrows nothing and only loading without the join helps.
            extra = [
                joined
                for joined in joined_tables(statement, unit.evaluator.catalog)
                if context.hot(joined.table)
            ]
            if not extra:
                continue
            where = (lock.span.line, lock.span.column)
            if where in reported:
                continue
            reported.add(where)
            yield Report(
                self.code,
                lock.span,
                self.message(statement, extra, mariadb=context.config.mariadb),
                statement.target.name,
                statement.statement_text,
            )

    @staticmethod
    def message(statement: Statement, extra: list[JoinedTable], mariadb: bool = False) -> str:
        """One sentence: the lock, the rows it also takes and why they are in the FROM clause,
        and the fix; outer joins get PostgreSQL's refusal noted."""
        table = statement.target
        assert table is not None and statement.lock is not None
        lock = statement.lock
        via = f" (via {lock.via})" if lock.via != "with_for_update" else ""
        joined = ", ".join(f"{j.table} ({j.via})" for j in extra)
        entity = table.classes[0] if table.classes else table.name
        stoppers = list(dict.fromkeys(j.relationship for j in extra if j.relationship))
        lazy = ", ".join(f"lazyload({name})" for name in stoppers)
        without_join = (
            f"load without the join ({lazy})"
            if stoppers
            else "lock the joined rows in a statement of their own"
        )
        if mariadb:
            fix = f"{without_join}: MariaDB has no OF (SQLAlchemy drops it)"
        elif lock.via == SQL_TEXT:
            fix = f"add OF {table.name} to the lock clause, or {without_join}"
        elif statement.kind == "get":
            fix = f'pass with_for_update={{"of": {entity}}}, or {without_join}'
        elif lock.via != "with_for_update":
            fix = f"pass of={entity} to {lock.via}, or {without_join}"
        else:
            fix = f"use .with_for_update(of={entity}), or {without_join}"
        outer = [j.table for j in extra if j.outer]
        refused = (
            f" (PostgreSQL refuses it for the outer join to {', '.join(outer)})"
            if outer and not mariadb
            else ""
        )
        return f"{lock.mode}{via} on {table.name} also locks the joined rows of {joined}{refused}; {fix}"
