"""LCK004 for-update-locks-joined-rows: a row-locking read whose FROM clause holds other tables
too (explicit joins, further entities, eager-joined relationships) locks their rows as well,
unless ``of=`` limits the lock; that second lock is taken in an order nobody chose."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

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
    triggers = rb"with_for_update"
    uses_lock_helpers = True

    def check(self, unit: Unit, context: RuleContext) -> Iterable[Report]:
        from lockorder_lint.statements import joined_tables

        reported: set[tuple[int, int]] = set()
        for statement in unit.statements:
            lock = statement.lock
            if lock is None or statement.kind not in _READS or statement.target is None:
                continue
            if lock.of is not None and not context.config.mysql:
                continue  # the statement says which tables it means to lock
            # MariaDB has no OF (SQLAlchemy drops it) and InnoDB locks the rows it reads: there,
            # of= narrows nothing and only loading without the join helps.
            extra = [
                joined
                for joined in joined_tables(statement, unit.evaluator.catalog)
                if context.config.is_hot(joined.table)
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
                self._message(statement, extra, mysql=context.config.mysql),
                statement.target.name,
                statement.statement_text,
            )

    @staticmethod
    def _message(statement: Statement, extra: list[JoinedTable], mysql: bool = False) -> str:
        table = statement.target
        assert table is not None and statement.lock is not None
        lock = statement.lock
        clause = "FOR SHARE" if lock.read else "FOR UPDATE"
        via = f" (via {lock.via})" if lock.via != "with_for_update" else ""
        joined = ", ".join(f"{j.table} ({j.via})" for j in extra)
        entity = table.classes[0] if table.classes else table.name
        stoppers = list(dict.fromkeys(j.relationship for j in extra if j.relationship))
        lazy = ", ".join(f"lazyload({name})" for name in stoppers)
        if statement.kind == "get":
            fix = f'pass with_for_update={{"of": {entity}}}'
            fix += f", or load without the join: options=[{lazy}]" if stoppers else ""
        elif lock.via != "with_for_update":
            fix = f"pass of={entity} to {lock.via}"
            fix += f", or load without the join: .options({lazy})" if stoppers else ""
        else:
            fix = f"use .with_for_update(of={entity})"
            fix += f", or load without the join: .options({lazy})" if stoppers else ""
        if mysql:
            fix = (
                "on MySQL/MariaDB of= does not help (MariaDB has no OF and SQLAlchemy drops it; "
                "InnoDB locks the rows it reads): load without the join"
                + (f" (.options({lazy}))" if stoppers else "")
                + " or lock the rows by key first in a statement of their own"
            )
        outer = [j.table for j in extra if j.outer]
        outer_note = ""
        if outer:
            outer_note = f" (PostgreSQL rejects it outright for the outer join to {', '.join(outer)})"
        if mysql and lock.of is not None:
            return (
                f"{clause}{via} on {table.name} also locks the rows of {joined} on MySQL/MariaDB, "
                f"a second lock taken in an order other transactions do not share; {fix}"
            )
        return (
            f"{clause}{via} on {table.name} also locks the rows of {joined}: without OF, PostgreSQL "
            f"locks the rows of every table in FROM and MySQL/MariaDB every row read, a second lock "
            f"taken in an order other transactions do not share{outer_note}; {fix}"
        )
