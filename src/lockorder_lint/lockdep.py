"""Run-time lock-order graph: the kernel's lockdep idea applied to SQL row locks.

While a test suite runs its database tests one after another, each transaction's statements are
read (with :mod:`lockorder_lint.sql_reader`) into the row locks they take: a lock *class* is a
(table, mode) pair. Taking a lock on one table while holding a lock on another adds an edge to a
graph shared by the whole session. Two edges in opposite directions, from different transactions,
whose locks conflict on both tables, are a deadlock waiting for the right interleaving, found
without ever racing; so are three or four edges that close a cycle through as many tables, from
as many transactions. A lock taken with SKIP LOCKED or NOWAIT never waits, so it adds no edge.

This module holds no SQLAlchemy code: :mod:`lockorder_lint.pytest_plugin` feeds it.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from lockorder_lint.sql_reader import SqlNotRead, SqlStatement, read_sql

# Row-lock modes, weakest first, named as PostgreSQL names them; writes take the update modes.
KEY_SHARE, SHARE, NO_KEY_UPDATE, UPDATE = "FOR KEY SHARE", "FOR SHARE", "FOR NO KEY UPDATE", "FOR UPDATE"
_MODES = {"key share": KEY_SHARE, "share": SHARE, "no key update": NO_KEY_UPDATE, "update": UPDATE}
# PostgreSQL's row-level lock conflict table (the documentation's "Conflicting Row-Level Locks").
_POSTGRES_CONFLICTS = {
    KEY_SHARE: {UPDATE},
    SHARE: {NO_KEY_UPDATE, UPDATE},
    NO_KEY_UPDATE: {SHARE, NO_KEY_UPDATE, UPDATE},
    UPDATE: {KEY_SHARE, SHARE, NO_KEY_UPDATE, UPDATE},
}
_SHARED = {KEY_SHARE, SHARE}
MAX_CACHED_STATEMENTS = 4096
MAX_CYCLE = 4  # tables in a cycle the search follows (each further table multiplies its work)


def conflicts(first: str, second: str, dialect: str) -> bool:
    """Whether two row locks on the same row wait for each other. InnoDB has shared and exclusive
    record locks only; SQLite locks the whole database for any write."""
    if dialect == "postgresql":
        return second in _POSTGRES_CONFLICTS[first]
    return not (first in _SHARED and second in _SHARED)


@dataclass(frozen=True)
class Acquisition:
    """One row lock a statement took: its class, where the user's code asked for it, and the SQL."""

    table: str
    mode: str
    where: str  # ``path:line function`` of the first frame in the user's code
    path: str
    line: int
    sql: str
    waits: bool = True  # False for SKIP LOCKED / NOWAIT: it never waits, so it closes no cycle


@dataclass(frozen=True)
class Edge:
    """A lock taken while another was held, in one transaction."""

    held: Acquisition
    taken: Acquisition
    transaction: int
    dialect: str


@dataclass(frozen=True)
class Cycle:
    """Transactions that each hold a lock the next one then wants, the last the first's: two
    (each waits for the other) or more (a three-party cycle, Airflow #27473)."""

    edges: tuple[Edge, ...]
    dialect: str

    @property
    def first(self) -> Edge:
        return self.edges[0]

    @property
    def last(self) -> Edge:
        return self.edges[-1]

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(edge.held.table for edge in self.edges)


@dataclass
class Transaction:
    """The locks one database transaction holds, in the order it took them."""

    number: int
    dialect: str
    held: dict[str, Acquisition] = field(default_factory=dict)


def locks_of(
    statement: SqlStatement,
    foreign_keys: Sequence[str] = (),
    dialect: str = "postgresql",
    keys: Collection[str] = (),
) -> list[tuple[str, str, bool]]:
    """The (table, mode, waits) row locks one statement takes: a locking read locks the rows of the
    tables its lock clause names (all of its FROM tables without OF; on PostgreSQL never an outer
    join's nullable side, while InnoDB locks every row it reads); UPDATE and DELETE lock the rows
    they change (an UPDATE FOR NO KEY UPDATE, or FOR UPDATE when it sets one of ``keys``, the
    target's key columns, lower-case); an INSERT or UPDATE checks each foreign key with FOR KEY
    SHARE on the parent row (``foreign_keys`` names the parent tables)."""
    found: list[tuple[str, str, bool]] = []
    if statement.kind == "select" and statement.lock is not None:
        mode = _MODES[statement.lock.strength]
        waits = not (statement.lock.skip_locked or statement.lock.nowait)
        if statement.lock.of is not None:
            tables: Iterable[str] = statement.lock.of
        else:
            outer = {name for name, is_outer in statement.joins if is_outer and dialect == "postgresql"}
            tables = [t for t in statement.tables if t not in outer]
        found.extend((table, mode, waits) for table in dict.fromkeys(tables))
    elif statement.kind in ("update", "delete", "upsert") and statement.target:
        key_update = statement.kind != "update" or any(column in keys for column in statement.assigned)
        found.append((statement.target, UPDATE if key_update else NO_KEY_UPDATE, True))
    if statement.kind in ("insert", "upsert", "update"):
        found.extend((parent, KEY_SHARE, True) for parent in foreign_keys if parent != statement.target)
    return found


class LockGraph:
    """The lock-class graph of a whole test session."""

    def __init__(self) -> None:
        self.edges: dict[tuple[str, str], list[Edge]] = {}
        self._numbers = itertools.count(1)
        self._read: dict[tuple[str, str], list[SqlStatement] | None] = {}

    def begin(self, dialect: str) -> Transaction:
        return Transaction(next(self._numbers), dialect)

    def read(self, sql: str, dialect: str) -> list[SqlStatement]:
        """The statements of one executed SQL text (cached: test suites repeat their statements)."""
        key = (sql, dialect)
        if key not in self._read:
            if len(self._read) > MAX_CACHED_STATEMENTS:
                self._read.clear()
            try:
                self._read[key] = read_sql(sql, [dialect])
            except SqlNotRead:
                self._read[key] = None
        return self._read[key] or []

    def take(self, transaction: Transaction, acquisition: Acquisition) -> None:
        """Record a lock taken by ``transaction``: an edge from every other table it holds."""
        current = transaction.held.get(acquisition.table)
        if current is not None and not _stronger(acquisition.mode, current.mode):
            return  # already held at least as strongly: nothing new to wait for
        if acquisition.waits:
            for held in transaction.held.values():
                if held.table == acquisition.table:
                    continue
                edges = self.edges.setdefault((held.table, acquisition.table), [])
                if len(edges) < 16 and not any(
                    e.held.where == held.where and e.taken.where == acquisition.where for e in edges
                ):
                    edges.append(Edge(held, acquisition, transaction.number, transaction.dialect))
        transaction.held[acquisition.table] = acquisition

    def cycles(self) -> list[Cycle]:
        """Every cycle of up to ``MAX_CYCLE`` tables whose edges come from different transactions
        and where each transaction's wanted lock conflicts with the next one's held lock: one per
        cycle of tables (whatever table it is read from), with the first traces that show it."""
        found: list[Cycle] = []
        following: dict[str, list[str]] = {}
        for held, taken in sorted(self.edges):
            following.setdefault(held, []).append(taken)

        def extend(path: list[str]) -> None:
            for table in following.get(path[-1], ()):
                if table == path[0] and len(path) >= 2:
                    cycle = self._conflicting(path)
                    if cycle is not None:
                        found.append(cycle)
                elif table > path[0] and table not in path and len(path) < MAX_CYCLE:
                    extend([*path, table])

        for start in sorted(following):
            extend([start])
        return sorted(found, key=lambda c: (len(c.edges), c.tables))

    def _conflicting(self, tables: Sequence[str]) -> Cycle | None:
        """The first choice of one edge per step of the table cycle that deadlocks: distinct
        transactions, one dialect, and each wanted lock conflicting with the next held one."""
        steps = [self.edges[(tables[i], tables[(i + 1) % len(tables)])] for i in range(len(tables))]

        def choose(chosen: list[Edge]) -> Cycle | None:
            if len(chosen) == len(steps):
                if conflicts(chosen[-1].taken.mode, chosen[0].held.mode, chosen[0].dialect):
                    return Cycle(tuple(chosen), chosen[0].dialect)
                return None
            for edge in steps[len(chosen)]:
                if chosen and (
                    edge.dialect != chosen[0].dialect
                    or any(edge.transaction == c.transaction for c in chosen)
                    or not conflicts(chosen[-1].taken.mode, edge.held.mode, edge.dialect)
                ):
                    continue
                made = choose([*chosen, edge])
                if made is not None:
                    return made
            return None

        return choose([])


def _stronger(mode: str, than: str) -> bool:
    order = [KEY_SHARE, SHARE, NO_KEY_UPDATE, UPDATE]
    return order.index(mode) > order.index(than)
