"""What LCK001, LCK002 and LCK004 say about one statement a test executed, judged at run time.

The static checker finds tables, keys and indexes in the code; at run time they come exactly from
the ``MetaData`` the application registered: every table of the MetaData of any table a statement
was compiled from, its primary key, unique constraints and indexes, and its foreign keys (whose
parent rows an INSERT locks). SQL text the application wrote by hand is read with the same SQL
reader and looked up by table name. The verdicts are the static rules' own, worded by them.

Whether a table is contended is decided at the end of the session (see ``Verdict.needs_hot``): the
tables the configuration calls hot, or else, as the static default does from the code, the tables
some test row-locked.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from lockorder_lint.catalog import Catalog, Index, Table
from lockorder_lint.raw_sql import VIA, to_statement
from lockorder_lint.sql_reader import SqlStatement
from lockorder_lint.statements import Span, Statement, joined_tables

_NOWHERE = Span(0, 0, 0, 0)


@dataclass(frozen=True)
class Verdict:
    """A static rule's finding on an executed statement; reported when one of ``needs_hot`` is
    a contended table."""

    code: str
    table: str
    message: str
    needs_hot: tuple[str, ...]


def catalog_table(table: Any) -> Table:
    """A SQLAlchemy ``Table`` as the catalog's table: column keys, the primary key, every unique
    constraint and index, and the foreign keys."""
    keys = {column.name: column.key for column in table.columns}
    indexes: list[Index] = []
    for constraint in table.constraints:
        names = tuple(keys.get(c.name, c.name) for c in getattr(constraint, "columns", ()))
        kind = type(constraint).__name__
        if names and kind in ("UniqueConstraint", "PrimaryKeyConstraint"):
            indexes.append(Index(str(constraint.name or kind), names, unique=True))
    for index in table.indexes:
        names = tuple(
            keys.get(getattr(e, "name", ""), getattr(e, "name", "")) or f"({e})" for e in index.expressions
        )
        indexes.append(Index(str(index.name), names, unique=bool(index.unique)))
    foreign: dict[str, tuple[str, ...]] = {}
    for key in table.foreign_keys:
        try:
            local = keys.get(key.parent.name, key.parent.name)
            foreign[local] = (*foreign.get(local, ()), f"{key.column.table.name}.{key.column.name}")
        except Exception:  # a foreign key to a table not declared yet names no column
            continue
    return Table(
        name=table.name,
        primary_key=tuple(keys.get(c.name, c.name) for c in table.primary_key.columns),
        indexes=indexes,
        columns={column.key: column.name for column in table.columns},
        foreign_keys=foreign,
        definition="the application's MetaData",
    )


def key_column_names(table: Any) -> frozenset[str]:
    """PostgreSQL's key columns of a SQLAlchemy ``Table`` (lower-case names): those of its primary
    key and of each unique constraint or unique index on plain columns without a WHERE (one a
    foreign key could reference). An UPDATE that sets one takes FOR UPDATE, not FOR NO KEY UPDATE."""
    found: set[str] = set()
    for constraint in getattr(table, "constraints", ()):
        if type(constraint).__name__ in ("UniqueConstraint", "PrimaryKeyConstraint"):
            found.update(str(c.name).lower() for c in getattr(constraint, "columns", ()))
    for index in getattr(table, "indexes", ()):
        options = getattr(index, "dialect_options", {})
        partial = any(_option(options, dialect, "where") is not None for dialect in ("postgresql", "sqlite"))
        # a plain column belongs to a table; a function or expression has a name too, but no table
        columns = [
            getattr(e, "name", None) if getattr(e, "table", None) is not None else None
            for e in index.expressions
        ]
        if index.unique and not partial and all(isinstance(c, str) for c in columns):
            found.update(str(c).lower() for c in columns)
    return frozenset(found)


def _option(options: Any, dialect: str, name: str) -> Any:
    try:
        return options[dialect][name]
    except (KeyError, TypeError):
        return None


class RuntimeCatalog:
    """The tables of every MetaData the executed statements came from."""

    def __init__(self) -> None:
        self.catalog = Catalog()
        self._metadata: set[int] = set()
        self._keys: dict[str, frozenset[str]] = {}

    def learn(self, context: Any) -> None:
        """Take in the MetaData of the tables a compiled statement names (once per MetaData)."""
        compiled = getattr(context, "compiled", None)
        statement = getattr(compiled, "statement", None)
        if statement is None:
            return
        for table in _tables_of(statement):
            metadata = getattr(table, "metadata", None)
            if metadata is None or id(metadata) in self._metadata:
                continue
            self._metadata.add(id(metadata))
            for known in metadata.tables.values():
                self.catalog.tables.setdefault(known.name, catalog_table(known))
                self._keys.setdefault(known.name, key_column_names(known))

    def keys(self, table: str) -> frozenset[str]:
        """The key columns (lower-case names) of a table the MetaData declares, else none."""
        return self._keys.get(table, frozenset())

    def parents(self, table: str, changed: Collection[str] | None = None) -> list[str]:
        """The tables ``table``'s foreign keys point at: an INSERT's key checks lock their rows,
        an UPDATE's only for the keys whose ``changed`` columns (lower-case names) it sets."""
        known = self.catalog.tables.get(table)
        if known is None:
            return []
        return list(
            dict.fromkeys(
                target.split(".", 1)[0]
                for key, target in known.references()
                if changed is None or known.columns.get(key, key).lower() in changed
            )
        )


def _tables_of(statement: Any) -> Iterable[Any]:
    """The ``Table`` objects a Core or ORM statement names: a DML statement's table, a SELECT's
    FROM clause (joins walked)."""
    table = getattr(statement, "table", None)
    if table is not None and hasattr(table, "metadata"):
        yield table
    froms: Iterable[Any] = ()
    for name in ("get_final_froms", "get_children"):
        method = getattr(statement, name, None)
        if method is not None:
            try:
                froms = list(method())
            except Exception:  # an ORM statement that cannot list its FROMs outside a session
                continue
            break
    pending = list(froms)
    while pending:
        item = pending.pop()
        if hasattr(item, "metadata") and hasattr(item, "primary_key"):
            yield item
        for side in ("left", "right", "element"):
            inner = getattr(item, side, None)
            if inner is not None:
                pending.append(inner)


def judge(
    sql: SqlStatement,
    catalog: Catalog,
    dialect: str,
    locked_in_order: Collection[str] = (),
    compiled: bool = False,
    mariadb: bool = False,
) -> list[Verdict]:
    """The findings LCK001, LCK002 and LCK004 would report on this statement. ``locked_in_order``
    names the tables whose rows this transaction already locked in key order (a later write on
    them takes no new locks out of order); ``compiled`` SQL came from SQLAlchemy's builders, so the
    fixes are said in their terms (``with_for_update(skip_locked=True)``), not in SQL's."""
    from lockorder_lint.rules.joined_rows_lock import JoinedRowsLock
    from lockorder_lint.rules.unordered_bulk_write import UnorderedBulkWrite
    from lockorder_lint.rules.unordered_for_update import UnorderedForUpdate

    mysql = dialect == "mysql"
    statement = to_statement(sql, catalog, _NOWHERE, mysql, "with_for_update" if compiled else VIA)
    if statement is None or statement.target is None or not statement.target.primary_key:
        return []
    table = statement.target
    found: list[Verdict] = []
    if (
        statement.kind in ("update", "delete")
        and not statement.opaque_where
        and not statement.reaches_rows_by_key()
        and table.name not in locked_in_order
    ):
        message = UnorderedBulkWrite.message(statement, mysql)
        found.append(Verdict("LCK001", table.name, message, (table.name,)))
    lock = statement.lock
    if lock is None or statement.kind != "select":
        return found
    if (lock.of is None or table.name in lock.of) and _unordered_lock(statement, mysql):
        message = UnorderedForUpdate.message(statement, statement.ordered_by_unique_key(), mysql)
        found.append(Verdict("LCK002", table.name, message, (table.name,)))
    if lock.of is None and not lock.non_blocking:
        joined = [j for j in joined_tables(statement, catalog) if not (j.outer and dialect == "postgresql")]
        if joined:
            message = JoinedRowsLock.message(statement, joined, mariadb=mariadb)
            found.append(Verdict("LCK004", table.name, message, tuple(j.table for j in joined)))
    return found


def _unordered_lock(statement: Statement, mysql: bool) -> bool:
    """LCK002's shape: a lock that waits, over rows not pinned by key, not in a fixed key order."""
    lock = statement.lock
    assert lock is not None
    if statement.reaches_rows_by_key() or statement.limit_one or lock.non_blocking or statement.opaque_where:
        return False
    return mysql or not statement.ordered_by_unique_key()


def locks_in_key_order(sql: SqlStatement, catalog: Catalog, dialect: str) -> str | None:
    """The table whose rows a locking read locks in key order (the fix's first step), if any."""
    statement = to_statement(sql, catalog, _NOWHERE, dialect == "mysql")
    if statement is None or statement.lock is None or statement.table_name is None:
        return None
    if statement.locks_in_key_order(dialect == "mysql") or statement.reaches_rows_by_key():
        return statement.table_name
    return None
