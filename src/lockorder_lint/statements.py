"""The statement model: what a SQLAlchemy statement locks, and how it reaches its rows.

A :class:`Statement` is one state of a statement builder (``select(M).where(...)`` is two
states); the evaluator in :mod:`lockorder_lint.builders` produces them, rules read them. This
module holds only data and the questions rules ask of it (does the WHERE clause pin the key,
is the lock in key order, which other tables does the FROM clause hold).
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lockorder_lint.catalog import Catalog, Table

# How a WHERE clause constrains a column: ``==``, ``IN (values)``, anything else, equality to a
# column of another FROM source (a join), ``IN (subquery)`` whose own rows are not locked in key
# order, and a negated condition (``!=``, ``NOT IN``, ``NOT EXISTS``) that no index can seek.
EQ, IN, OTHER, JOIN, SUB, NOT = "eq", "in", "other", "join", "sub", "not"
PINNING_OPS = frozenset({EQ, IN})
_ids = itertools.count(1)


@dataclass(frozen=True)
class Span:
    """A source range, 1-based lines and columns (code points), in the whole file's coordinates;
    ``origin`` names the file, so that a statement a helper in another file built can be
    re-anchored at the call that reached it."""

    line: int
    column: int
    end_line: int
    end_column: int
    origin: str = field(default="", compare=False, hash=False)


@dataclass(frozen=True)
class Predicate:
    """One column the WHERE clause reaches rows through, and how. ``via`` names what the column
    is compared with when that explains the reach (a subquery's columns), or, for a condition
    that does not pin it, the form of that condition (``NOT IN``, ``in a range``)."""

    table: str
    column: str
    op: str
    via: str = ""
    # The compared values are keys of rows this transaction already locked (the result of an
    # earlier ``FOR UPDATE`` on this table, or something built only from it).
    held: bool = False


@dataclass(frozen=True)
class LockClause:
    """A row lock (``FOR UPDATE`` and its relatives) and its options."""

    span: Span
    read: bool = False
    key_share: bool = False
    skip_locked: bool = False
    nowait: bool = False
    of: tuple[str, ...] | None = None
    via: str = "with_for_update"

    @property
    def non_blocking(self) -> bool:
        return self.skip_locked or self.nowait

    @property
    def mode(self) -> str:
        """PostgreSQL's name for the lock: SQLAlchemy's ``read`` and ``key_share`` flags combined."""
        if self.read:
            return "FOR KEY SHARE" if self.key_share else "FOR SHARE"
        return "FOR NO KEY UPDATE" if self.key_share else "FOR UPDATE"


# SQLAlchemy loader option functions and the relationship loading strategy each one sets.
LOADER_STRATEGIES = {
    "joinedload": "joined",
    "lazyload": "select",
    "noload": "noload",
    "raiseload": "raise",
    "selectinload": "selectin",
    "subqueryload": "subquery",
    "immediateload": "immediate",
    "defaultload": "default",
    "contains_eager": "contains",
}
# Options about columns, not relationships: they never add or remove a join.
COLUMN_OPTIONS = frozenset(
    {"load_only", "defer", "undefer", "undefer_group", "with_expression", "selectin_polymorphic"}
)
WILDCARD = "*"


@dataclass(frozen=True)
class LoaderOption:
    """One step of a ``.options(...)`` loader chain: the strategy it sets for the relationship at
    the end of ``path``, a chain of ``(table, attribute)`` steps from a loaded entity
    (table ``""`` when the option names the attribute by string; attribute ``*`` for a wildcard)."""

    strategy: str
    path: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class JoinedTable:
    """A table a statement puts in its FROM clause besides its target, and why."""

    table: str
    how: str  # join, entity, where, eager
    via: str  # what the message shows: ``explicit join``, ``TaskInstance.dag_run, lazy="joined"``
    outer: bool = False
    # For an eager join: the loaded entity's relationship whose ``lazyload`` stops it (and its chain).
    relationship: str = ""


@dataclass(frozen=True)
class Statement:
    """One state of a statement builder. Each builder call yields a new state.

    ``kind`` is select, update, delete, insert, query (a legacy ``Query``) or get
    (``session.get``); ``derived`` is set once the statement became a subquery, CTE or scalar
    subquery of another one. ``calls`` is the chain of project functions that built or executed
    it, outermost first, when it came from a helper.
    """

    kind: str
    span: Span
    target: Table | None = field(default=None, compare=False, hash=False)
    target_text: str = ""
    joins: tuple[str, ...] = ()
    outer_joins: tuple[str, ...] = ()
    extra_entities: tuple[str, ...] = ()
    # Tables selected as mapped classes (``select(M)``, ``session.get(M, pk)``): their eager
    # relationships are loaded in the same SELECT. Column-only selects load no relationships.
    orm_entities: tuple[str, ...] = ()
    loader_options: tuple[LoaderOption, ...] = ()
    opaque_options: bool = False  # some ``.options(...)`` argument could not be read
    eagerloads: bool = True  # ``Query.enable_eagerloads(False)`` turns every eager join off
    predicates: tuple[Predicate, ...] = ()
    opaque_where: bool = False
    order_by: tuple[tuple[str, str, bool], ...] = ()  # table, column, descending
    limit_one: bool = False
    lock: LockClause | None = None
    write: Span | None = None
    write_kind: str | None = None
    # An INSERT's conflict clause (``ON CONFLICT DO UPDATE``...): it writes rows that may exist.
    upsert: str = ""
    # An UPDATE's SET columns (attribute keys of the target), in the order the code names them:
    # ``()`` while none is named yet, None once some are unknown (``.values(**kw)``, a dict
    # variable). Either way an UPDATE without known columns is taken to set no key and no
    # foreign key (see :meth:`sets`).
    assigned: tuple[str, ...] | None = ()
    # Of those, the ones set to NULL (``= None``): a foreign key set to NULL checks no parent.
    nulled: tuple[str, ...] = ()
    # An ORM INSERT's attributes its new rows set (None: not known, every foreign key checked).
    set_attributes: tuple[str, ...] | None = None
    # An ORM write (``session.add``/``merge``) the session holds until its next flush.
    pending: bool = False
    derived: str | None = None
    # A statement selecting from a subquery or CTE: the statement that CTE is.
    source: Statement | None = field(default=None, compare=False, hash=False)
    calls: tuple[str, ...] = ()
    # Built on a model or statement the function was handed: unknown here, judged at the caller.
    from_parameter: bool = False
    node: ast.AST | None = field(default=None, compare=False, hash=False, repr=False)
    # The configured databases the code that built it runs on (after ``if dialect == "mysql":
    # return`` the rest of a function runs only on the others); None: not known.
    live: frozenset[str] | None = field(default=None, compare=False, hash=False, repr=False)
    id: int = field(default_factory=lambda: next(_ids), compare=False)
    parent: int | None = field(default=None, compare=False)

    def derive(self, **changes: object) -> Statement:
        return replace(self, id=next(_ids), parent=self.id, **changes)  # type: ignore[arg-type]

    @property
    def statement_text(self) -> str:
        """The statement that built this one, formatted canonically (no comments, one quote
        style), so that a baseline keyed on it survives a formatter run."""
        if self.node is None:
            return ""
        try:
            return " ".join(ast.unparse(self.node).split())
        except (ValueError, RecursionError):  # pragma: no cover - unparse of a parsed tree
            return ""

    @property
    def runs_on_innodb(self) -> bool:
        """It may run on MySQL/MariaDB: no dialect test before it rules them out."""
        return self.live is None or bool(self.live & {"mysql", "mariadb"})

    def sets(self) -> tuple[str, ...] | None:
        """The columns an UPDATE is known to set, None when not known."""
        return self.assigned or None

    def with_assigned(self, columns: tuple[str, ...] | None, nulled: tuple[str, ...] = ()) -> Statement:
        """This UPDATE after one more ``.values(...)``: its columns added (None: some unknown)."""
        if self.assigned is None or columns is None:
            return self.derive(assigned=None, nulled=())
        added = tuple(c for c in columns if c not in self.assigned)
        kept = tuple(c for c in self.nulled if c not in columns)  # set again: the last value wins
        return self.derive(assigned=self.assigned + added, nulled=kept + nulled)

    @property
    def table_name(self) -> str | None:
        return self.target.name if self.target else None

    def target_predicates(self) -> list[Predicate]:
        return [p for p in self.predicates if self.target is not None and p.table == self.target.name]

    def columns_on_target(self) -> list[str]:
        """Columns of the target table the WHERE clause uses, in order of first appearance."""
        seen: list[str] = []
        for pred in self.target_predicates():
            if pred.column not in seen:
                seen.append(pred.column)
        return seen

    def _pinned_columns(self) -> set[str]:
        return {p.column for p in self.target_predicates() if p.op in PINNING_OPS}

    def pins_primary_key(self) -> bool:
        """True when every primary-key column is ``==`` or ``IN`` in a top-level conjunct."""
        if not self.target or not self.target.primary_key:
            return False
        pinned = self._pinned_columns()
        return all(col in pinned for col in self.target.primary_key)

    def pins_unique_key(self) -> bool:
        """``==``/``IN`` on every column of the primary key or of a unique index: the rows are
        named one by one (point lookups), not reached through a range."""
        if not self.target:
            return False
        pinned = self._pinned_columns()
        keys = [self.target.primary_key, *(i.columns for i in self.target.indexes if i.unique)]
        return any(key and set(key) <= pinned for key in keys)

    def pins_key_prefix(self) -> bool:
        """True when ``==``/``IN`` holds on a leading part of the primary key: the rows are then
        reached by a range of the key's own index, in key order, whatever else the WHERE says."""
        if not self.target or not self.target.primary_key:
            return False
        return self.target.primary_key[0] in self._pinned_columns()

    def pins_single_row(self) -> bool:
        """True when ``==`` on every column of a declared unique key: at most one row, one lock."""
        if not self.target:
            return False
        equal = {p.column for p in self.target_predicates() if p.op == EQ}
        return any(index.unique and set(index.columns) <= equal for index in self.target.indexes)

    def writes_held_rows(self) -> bool:
        """Every column of a unique key (or the primary key) is compared with keys of rows this
        transaction already holds locked: the statement takes no lock it does not have."""
        if not self.target:
            return False
        held = {p.column for p in self.target_predicates() if p.op in PINNING_OPS and p.held}
        keys = [self.target.primary_key, *(i.columns for i in self.target.indexes if i.unique)]
        return any(key and set(key) <= held for key in keys)

    def reaches_rows_by_key(self) -> bool:
        """The WHERE clause reaches rows in primary-key order, or reaches at most one row: equality
        on a leading part of the key, or on a whole unique key. Such a statement cannot lock rows
        in an order that opposes another writer's key order."""
        return self.pins_key_prefix() or self.pins_single_row()

    def ordered_by_primary_key(self) -> bool:
        """True when ORDER BY starts with the whole primary key, ascending, in declared order."""
        if not self.target or not self.target.primary_key:
            return False
        pk = self.target.primary_key
        leading = self.order_by[: len(pk)]
        return len(leading) == len(pk) and all(
            table == self.target.name and col == want and not desc
            for (table, col, desc), want in zip(leading, pk, strict=True)
        )

    def ordered_by_unique_key(self) -> bool:
        """ORDER BY starts with every column of the primary key or of a unique index, ascending:
        one total order, the same every time the statement runs."""
        if not self.target:
            return False
        keys = [self.target.primary_key, *(i.columns for i in self.target.indexes if i.unique)]
        for key in keys:
            leading = self.order_by[: len(key)]
            columns = {col for table, col, desc in leading if table == self.target.name and not desc}
            if key and len(leading) == len(key) and columns == set(key):
                return True
        return False

    def locks_in_key_order(self, mysql: bool) -> bool:
        """A locking read whose locks are taken in key order on every configured database:
        the accepted fix's first step, and what makes ``pk IN (this)`` safe."""
        if self.lock is None:
            return False
        if self.reaches_rows_by_key() or self.lock.non_blocking:
            return True
        return self.ordered_by_primary_key() and not mysql


def _option_for(options: Sequence[LoaderOption], path: tuple[tuple[str, str], ...]) -> str | None:
    """The strategy the query's options set for the relationship at ``path`` (the last one wins),
    else the wildcard one set at that depth, else None (the relationship's own default)."""

    def matches(step: tuple[str, str], want: tuple[str, str]) -> bool:
        return step[1] == want[1] and step[0] in ("", want[0])

    exact: str | None = None
    wildcard: str | None = None
    for option in options:
        if option.strategy == "default" or len(option.path) != len(path):
            continue
        if not all(matches(step, want) for step, want in zip(option.path[:-1], path[:-1], strict=True)):
            continue
        last = option.path[-1]
        if last[1] == WILDCARD:
            wildcard = option.strategy
        elif matches(last, path[-1]):
            exact = option.strategy
    return exact or wildcard


def joined_tables(statement: Statement, catalog: Catalog) -> list[JoinedTable]:
    """Every table besides the target that the statement's FROM clause holds: explicit joins,
    further entities, tables a WHERE clause joins implicitly, and the eager-joined relationships
    of the loaded entities (and of theirs, as SQLAlchemy chains them) unless the options or
    ``enable_eagerloads(False)`` switch them off."""
    target = statement.table_name
    found: list[JoinedTable] = []
    seen: set[str] = {target} if target else set()

    def add(joined: JoinedTable) -> None:
        if joined.table not in seen:
            seen.add(joined.table)
            found.append(joined)

    for name in statement.joins:
        outer = name in statement.outer_joins
        add(JoinedTable(name, "join", "explicit outer join" if outer else "explicit join", outer))
    for name in statement.extra_entities:
        add(JoinedTable(name, "entity", "selected as a further entity"))
    for pred in statement.predicates:
        if pred.op == JOIN and pred.table:
            add(JoinedTable(pred.table, "where", "joined by the WHERE clause"))
    if not statement.eagerloads or statement.opaque_options:
        return found

    def walk(table: Table, path: tuple[tuple[str, str], ...], on_path: frozenset[str], root: str) -> None:
        """Add the eager-joined relationships of ``table``, all of them before any of theirs,
        so that a table reached both directly and through another is named by the direct one."""
        deeper: list[tuple[Table, tuple[tuple[str, str], ...]]] = []
        for rel in table.relationships:
            if rel.target is None or rel.target in on_path:
                continue
            step = (*path, (table.name, rel.name))
            strategy = _option_for(statement.loader_options, step) or rel.lazy
            if strategy != "joined":
                continue
            how = "joinedload" if rel.lazy != "joined" else f'lazy="{rel.lazy}"'
            if rel.via == "with_polymorphic":
                via = f"{rel.owner} with_polymorphic loads subclass {rel.target_class}"
            else:
                via = f"{root}.{'.'.join(name for _t, name in step)}, {how}"
            first = f"{root}.{path[0][1] if path else rel.name}" if rel.via != "with_polymorphic" else ""
            add(JoinedTable(rel.target, "eager", via, outer=not rel.innerjoin, relationship=first))
            nested = catalog.tables.get(rel.target)
            if nested is not None:
                deeper.append((nested, step))
        for nested, step in deeper:
            walk(nested, step, on_path | {nested.name}, root)

    for name in statement.orm_entities:
        entity = catalog.tables.get(name)
        if entity is not None:
            walk(entity, (), frozenset({name}), entity.classes[0] if entity.classes else name)
    return found
