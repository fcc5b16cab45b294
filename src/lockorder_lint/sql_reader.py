"""Reading SQL text: what a raw SQL statement locks, and how it reaches its rows.

The rules judge statements, not syntax. This module turns SQL text (a ``text(...)`` argument, a
driver-level ``execute`` string, a statement a test run executed) into :class:`SqlStatement`:
its kind, the table it targets and the others it reads, the WHERE clause's columns and what
each does to the key (the same operators :mod:`lockorder_lint.predicates` uses), ORDER BY,
LIMIT and the row-lock clause. It knows nothing about the project's catalog; the caller maps
table names onto it. sqlglot does the parsing and is imported on the first call only, since
importing it costs a quarter of a second that a file without SQL text must not pay.

What cannot be read is never guessed: :class:`SqlNotRead` says why.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from lockorder_lint.statements import EQ, IN, JOIN, OTHER, SUB

if TYPE_CHECKING:
    from sqlglot import exp

# What the run-time value of an f-string field or ``%`` operand is replaced with before parsing:
# a named parameter that is accepted only where a value may stand.
RUNTIME_MARK = "lockorder_runtime_"

# The configuration's dialect names, and sqlglot's.
_SQLGLOT_DIALECTS = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite"}
_FALLBACK_ORDER = ("postgresql", "mysql", "sqlite")

# Row-lock strengths, named as PostgreSQL's clauses are.
UPDATE, NO_KEY_UPDATE, SHARE, KEY_SHARE = "update", "no key update", "share", "key share"


class SqlNotRead(Exception):
    """SQL text the reader cannot turn into statements; the message says why, in a few words."""


@dataclass(frozen=True)
class SqlLock:
    """A row-lock clause: ``FOR UPDATE`` and its relatives, ``LOCK IN SHARE MODE``."""

    strength: str = UPDATE
    of: tuple[str, ...] | None = None
    nowait: bool = False
    skip_locked: bool = False

    @property
    def read(self) -> bool:
        return self.strength in (SHARE, KEY_SHARE)

    @property
    def key_share(self) -> bool:
        """SQLAlchemy's ``key_share`` flag: NO KEY UPDATE, or KEY SHARE."""
        return self.strength in (NO_KEY_UPDATE, KEY_SHARE)


@dataclass(frozen=True)
class SqlCondition:
    """One column the WHERE clause reaches rows through. ``table`` is the real table name, or
    ``""`` when the column is unqualified and several tables could hold it (the caller knows the
    columns); ``subquery`` is what ``IN (SELECT ...)`` compares with."""

    table: str
    column: str
    op: str
    subquery: SqlStatement | None = None
    via: str = ""  # a CTE or derived table the column is compared with


@dataclass(frozen=True)
class SqlStatement:
    """One statement of the text. ``kind`` is select, update, delete, insert, upsert or other
    (DDL, transaction control, anything that locks no rows by itself)."""

    kind: str
    target: str | None = None
    # Tables in the FROM clause besides the target, with whether each is an outer join's
    # nullable side: explicit joins, further FROM items, UPDATE ... FROM, DELETE ... USING.
    joins: tuple[tuple[str, bool], ...] = ()
    tables: tuple[str, ...] = ()  # every real table the statement names in its FROM clause
    conditions: tuple[SqlCondition, ...] = ()
    opaque_where: bool = False
    order_by: tuple[tuple[str, str, bool], ...] = ()  # table, column (or text), descending
    limit: int | None = None
    limited: bool = False  # any LIMIT / FETCH, even one whose value is a parameter
    lock: SqlLock | None = None
    # Selecting from a CTE or derived table: the statement that source is.
    source: SqlStatement | None = None
    text: str = field(default="", compare=False)
    # An UPDATE's SET columns, lower-cased (a foreign key is checked only when its columns change,
    # to something other than NULL: ``nulled`` are those it sets to a literal NULL).
    assigned: tuple[str, ...] = ()
    nulled: tuple[str, ...] = ()

    @property
    def writes(self) -> bool:
        return self.kind in ("update", "delete", "insert", "upsert")


def dialect_order(configured: Iterable[str]) -> tuple[str, ...]:
    """The configured dialects first, then the others: SQL written for another database than the
    one configured still says which rows it reaches."""
    ordered = [d for d in configured if d in _SQLGLOT_DIALECTS]
    ordered += [d for d in _FALLBACK_ORDER if d not in ordered]
    return tuple(dict.fromkeys(ordered))


def read_sql(text: str, dialects: Iterable[str] = ("postgresql",)) -> list[SqlStatement]:
    """Every statement of ``text``, read with the first dialect that parses it; raises
    :class:`SqlNotRead` when none does, or when run-time text stands where SQL structure is."""
    sql = normalise_parameters(text)
    if not sql.strip():
        raise SqlNotRead("empty SQL text")
    first_error = ""
    for dialect in dialect_order(dialects):
        try:
            trees = _parse(sql, _SQLGLOT_DIALECTS[dialect])
        except SqlNotRead as exc:
            first_error = first_error or str(exc)
            continue
        return [_Reader(text).statement(tree) for tree in trees if tree is not None]
    raise SqlNotRead(first_error or "SQL text not parsed")


# -- bind parameters ------------------------------------------------------------------------------

# Quoted strings, quoted identifiers and comments are copied as they are; parameters outside them
# are rewritten to ``:name``, which every dialect sqlglot reads here accepts.
_TOKENS = re.compile(
    r"""(?P<skip>'(?:[^']|'')*'|"(?:[^"]|"")*"|`[^`]*`|--[^\n]*|/\*.*?\*/|::)"""
    r"""|(?P<pyformat>%\((?P<pyname>\w+)\)s)"""
    r"""|(?P<format>%s)"""
    r"""|(?P<percent>%%)"""
    r"""|(?P<numeric>\$(?P<number>\d+))"""
    r"""|(?P<qmark>\?)""",
    re.DOTALL,
)


def normalise_parameters(text: str) -> str:
    """``%s``, ``%(name)s``, ``?`` and ``$1`` become ``:name`` parameters; ``%%`` becomes ``%``.
    ``:name`` (SQLAlchemy's ``text()`` style) is already the form used."""
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        kind = match.lastgroup
        if match.group("skip") is not None:
            return match.group(0)
        if match.group("percent") is not None:
            return "%"
        count += 1
        if match.group("pyname") is not None:
            return f":{match.group('pyname')}"
        if match.group("number") is not None:
            return f":p{match.group('number')}"
        del kind
        return f":p{count}"

    return _TOKENS.sub(replace, text)


# -- parsing --------------------------------------------------------------------------------------


class _DropCommandFallback(logging.Filter):
    """sqlglot logs a warning when it keeps a statement it cannot parse as an opaque command;
    here that is an answer (kind ``other``), not something to tell the user about."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Falling back to parsing as a 'Command'" not in record.getMessage()


_FILTER = _DropCommandFallback()


def _parse(sql: str, dialect: str) -> list[Any]:
    import sqlglot
    from sqlglot.errors import ErrorLevel, SqlglotError

    logger = logging.getLogger("sqlglot")
    logger.addFilter(_FILTER)
    try:
        return list(sqlglot.parse(sql, read=dialect, error_level=ErrorLevel.RAISE))
    except SqlglotError as exc:
        raise SqlNotRead(_parse_failure(exc)) from None
    except (RecursionError, ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        raise SqlNotRead(f"SQL text not parsed ({type(exc).__name__})") from None
    finally:
        logger.removeFilter(_FILTER)


def _parse_failure(exc: Exception) -> str:
    """Where the parser gave up, in the SQL text's own lines and columns."""
    errors = getattr(exc, "errors", None) or []
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    line, column = first.get("line"), first.get("col")
    if isinstance(line, int) and isinstance(column, int):
        return f"SQL syntax not understood at line {line}, column {column}"
    return "SQL syntax not understood"


def _arg(node: exp.Expression, name: str) -> Any:
    """An argument of a sqlglot node; newer releases spell Python keywords with a trailing ``_``."""
    value = node.args.get(name)
    return value if value is not None else node.args.get(name + "_")


def _name(identifier: Any) -> str:
    """An identifier's name as the database knows it: unquoted names fold to lower case."""
    from sqlglot import exp

    if isinstance(identifier, exp.Identifier):
        return str(identifier.this) if identifier.quoted else str(identifier.this).lower()
    if isinstance(identifier, str):
        return identifier.lower()
    return ""


class _Reader:
    """Reads one parsed statement (and the subqueries and CTEs it holds)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def statement(self, tree: exp.Expression, ctes: dict[str, SqlStatement] | None = None) -> SqlStatement:
        from sqlglot import exp

        self._check_runtime_marks(tree)
        ctes = dict(ctes or {})
        with_ = _arg(tree, "with")
        if isinstance(with_, exp.With):
            for cte in with_.expressions:
                body = cte.this
                name = _name(cte.args["alias"].this) if cte.args.get("alias") else ""
                if name and isinstance(body, exp.Expression):
                    ctes[name] = self.statement(body, ctes)
        if isinstance(tree, exp.Select):
            return self._select(tree, ctes)
        if isinstance(tree, exp.Update):
            return self._update(tree, ctes)
        if isinstance(tree, exp.Delete):
            return self._delete(tree, ctes)
        if isinstance(tree, exp.Insert):
            return self._insert(tree)
        if isinstance(tree, exp.Merge):
            target = tree.this
            return SqlStatement("upsert", target=_table_name(target), text=self.text)
        if isinstance(tree, (exp.Union, exp.Intersect, exp.Except)):
            return SqlStatement("select", text=self.text)
        if isinstance(tree, exp.Subquery) and isinstance(tree.this, exp.Expression):
            return self.statement(tree.this, ctes)
        if isinstance(tree, exp.Command) and str(tree.this).upper() == "REPLACE":
            found = re.match(r"\s*INTO\s+([\w.`\"]+)", str(tree.expression.this), re.IGNORECASE)
            target = found.group(1).strip('`"').rsplit(".", 1)[-1].lower() if found else None
            return SqlStatement("upsert", target=target, text=self.text)
        return SqlStatement("other", text=self.text)

    def _check_runtime_marks(self, tree: exp.Expression) -> None:
        """Run-time text may stand for a value, never for a table, a column, a keyword or a whole
        condition: those change which rows the statement reaches."""
        from sqlglot import exp

        for node in tree.find_all(exp.Placeholder, exp.Column, exp.Identifier, exp.Table):
            name = node.name if not isinstance(node, exp.Identifier) else str(node.this)
            if not str(name).startswith(RUNTIME_MARK):
                continue
            if not isinstance(node, exp.Placeholder) or not _value_position(node):
                raise SqlNotRead("run-time text stands for part of the SQL structure")

    # -- statement kinds ---------------------------------------------------------------------

    def _select(self, tree: exp.Select, ctes: dict[str, SqlStatement]) -> SqlStatement:
        scope = _Scope(ctes)
        from_ = _arg(tree, "from")
        sources: list[exp.Expression] = []
        if from_ is not None:
            sources.extend(from_.expressions or [from_.this])
        outer: set[int] = set()
        for join in tree.args.get("joins") or []:
            sources.append(join.this)
            if str(join.args.get("side") or "").upper() in ("LEFT", "RIGHT", "FULL"):
                outer.add(id(join.this))
        source: SqlStatement | None = None
        for item in sources:
            derived = scope.add(item, self)
            if derived is not None and source is None:
                source = derived
        target = scope.tables[0] if scope.tables else (source.target if source is not None else None)
        joins = tuple(
            (name, id(node) in outer) for name, node in zip(scope.tables, scope.nodes, strict=True)
        )[1:]
        conditions, opaque = self._where(tree, scope)
        for join in tree.args.get("joins") or []:
            on = join.args.get("on")
            if on is not None:  # a join condition says how rows pair up, not which are reached
                self._collect(on, scope, [], top=False)
        order = self._order(tree, scope)
        limit, limited = _limit(tree)
        return SqlStatement(
            "select",
            target=target,
            joins=joins,
            tables=tuple(scope.tables),
            conditions=tuple(conditions),
            opaque_where=opaque,
            order_by=order,
            limit=limit,
            limited=limited,
            lock=_lock(tree, scope),
            source=source,
            text=self.text,
        )

    def _update(self, tree: exp.Update, ctes: dict[str, SqlStatement]) -> SqlStatement:
        from sqlglot import exp

        scope = _Scope(ctes)
        outer: set[int] = set()
        self._add_with_joins(tree.this, scope, outer)
        from_ = _arg(tree, "from")
        if from_ is not None:
            for item in from_.expressions or [from_.this]:
                scope.add(item, self)
            for join in from_.args.get("joins") or []:
                scope.add(join.this, self)
        sets = [e for e in tree.expressions if isinstance(e, exp.EQ) and isinstance(e.this, exp.Column)]
        assigned = tuple(str(e.this.name).lower() for e in sets)
        nulled = tuple(str(e.this.name).lower() for e in sets if isinstance(e.expression, exp.Null))
        return replace(self._write("update", tree, scope, outer), assigned=assigned, nulled=nulled)

    def _delete(self, tree: exp.Delete, ctes: dict[str, SqlStatement]) -> SqlStatement:
        scope = _Scope(ctes)
        outer: set[int] = set()
        named = [t for t in tree.args.get("tables") or [] if isinstance(t, _table_type())]
        if named:  # MySQL's ``DELETE t FROM t JOIN u ...``: the first named table is written
            first = _table_name(named[0])
            self._add_with_joins(tree.this, scope, outer)
            if first and first in scope.aliases:
                first = scope.aliases[first]
            if first in scope.tables:
                scope.tables.remove(first)
                scope.tables.insert(0, first)
        else:
            self._add_with_joins(tree.this, scope, outer)
        for item in tree.args.get("using") or []:
            scope.add(item, self)
        return self._write("delete", tree, scope, outer)

    def _add_with_joins(self, node: exp.Expression | None, scope: _Scope, outer: set[int]) -> None:
        if node is None:
            return
        scope.add(node, self)
        for join in node.args.get("joins") or []:
            scope.add(join.this, self)
            if str(join.args.get("side") or "").upper() in ("LEFT", "RIGHT", "FULL"):
                outer.add(id(join.this))

    def _write(self, kind: str, tree: exp.Expression, scope: _Scope, outer: set[int]) -> SqlStatement:
        conditions, opaque = self._where(tree, scope)
        limit, limited = _limit(tree)
        joins = tuple((name, id(node) in outer) for name, node in zip(scope.tables, scope.nodes, strict=True))
        return SqlStatement(
            kind,
            target=scope.tables[0] if scope.tables else None,
            joins=joins[1:],
            tables=tuple(scope.tables),
            conditions=tuple(conditions),
            opaque_where=opaque,
            order_by=self._order(tree, scope),
            limit=limit,
            limited=limited,
            text=self.text,
        )

    def _insert(self, tree: exp.Insert) -> SqlStatement:
        from sqlglot import exp

        target = tree.this
        if isinstance(target, exp.Schema):
            target = target.this
        conflict = tree.args.get("conflict")
        upsert = str(tree.args.get("alternative") or "").upper() == "REPLACE" or (
            isinstance(conflict, exp.OnConflict)
            and "NOTHING" not in str(conflict.args.get("action") or "").upper()
        )
        return SqlStatement("upsert" if upsert else "insert", target=_table_name(target), text=self.text)

    # -- clauses -----------------------------------------------------------------------------

    def _where(self, tree: exp.Expression, scope: _Scope) -> tuple[list[SqlCondition], bool]:
        where = tree.args.get("where")
        if where is None:
            return [], False
        found: list[SqlCondition] = []
        opaque = self._collect(where.this, scope, found, top=True)
        return found, opaque

    def _collect(self, node: exp.Expression, scope: _Scope, found: list[SqlCondition], top: bool) -> bool:
        """Add the conditions of one (top-level when ``top``) expression; True when part of it
        cannot be read. Only top-level conjuncts pin the key."""
        from sqlglot import exp

        if isinstance(node, exp.Paren):
            return self._collect(node.this, scope, found, top)
        if isinstance(node, exp.And):
            left = self._collect(node.this, scope, found, top)
            return self._collect(node.expression, scope, found, top) or left
        if top and isinstance(node, exp.Or):
            return self._disjunction(node, scope, found)
        if top and isinstance(node, exp.EQ):
            pinned = self._equality(node, scope, found)
            if pinned is not None:
                return pinned
        if top and isinstance(node, exp.In):
            pinned = self._membership(node, scope, found)
            if pinned is not None:
                return pinned
        columns = self._columns(node, scope)
        for table, column in columns:
            found.append(SqlCondition(table, column, OTHER))
        return False

    def _disjunction(self, node: exp.Or, scope: _Scope, found: list[SqlCondition]) -> bool:
        """``a OR b``: a column is pinned only when every alternative pins it."""
        from sqlglot import exp

        branches: list[exp.Expression] = []
        pending: list[exp.Expression] = [node]
        while pending:
            current = pending.pop()
            while isinstance(current, exp.Paren):
                current = current.this
            if isinstance(current, exp.Or):
                pending.extend([current.expression, current.this])
            else:
                branches.append(current)
        pinned: set[tuple[str, str]] | None = None
        mentioned: list[tuple[str, str]] = []
        opaque = False
        for branch in branches:
            here: list[SqlCondition] = []
            opaque |= self._collect(branch, scope, here, top=True)
            keys = {(c.table, c.column) for c in here if c.op in (EQ, IN)}
            pinned = keys if pinned is None else pinned & keys
            mentioned.extend((c.table, c.column) for c in here if (c.table, c.column) not in mentioned)
        for table, column in mentioned:
            found.append(SqlCondition(table, column, IN if (table, column) in (pinned or set()) else OTHER))
        return opaque

    def _equality(self, node: exp.EQ, scope: _Scope, found: list[SqlCondition]) -> bool | None:
        """``col = value`` pins; ``col = other_col`` joins; ``col = ANY(values)`` is a key list."""
        from sqlglot import exp

        left, right = _unwrap(node.this), _unwrap(node.expression)
        left_col = scope.column(left) if isinstance(left, exp.Column) else None
        right_col = scope.column(right) if isinstance(right, exp.Column) else None
        if left_col and right_col:
            # each side names the derived source (CTE, subquery) it meets, if any
            found.append(SqlCondition(*left_col[:2], JOIN, via=left_col[2] or right_col[2]))
            found.append(SqlCondition(*right_col[:2], JOIN, via=right_col[2] or left_col[2]))
            return False
        column = left_col or right_col
        if column is None:
            return None
        other = right if left_col else left
        if column[2]:  # a column of a CTE or derived table: no table of its own
            return None
        if isinstance(other, exp.Any):
            found.append(SqlCondition(column[0], column[1], IN))
            return False
        if isinstance(other, (exp.Subquery, exp.Select)):
            inner = self.statement(other.this if isinstance(other, exp.Subquery) else other, scope.ctes)
            found.append(SqlCondition(column[0], column[1], SUB, subquery=inner))
            return False
        if self._columns(other, scope):
            return None
        found.append(SqlCondition(column[0], column[1], EQ))
        return False

    def _membership(self, node: exp.In, scope: _Scope, found: list[SqlCondition]) -> bool | None:
        """``col IN (values)``, ``(a, b) IN ((..), (..))``, ``col IN (SELECT ...)``."""
        from sqlglot import exp

        if node.args.get("not"):
            return None
        subject = _unwrap(node.this)
        items = [_unwrap(e) for e in subject.expressions] if isinstance(subject, exp.Tuple) else [subject]
        columns = [scope.column(c) for c in items if isinstance(c, exp.Column)]
        if not columns or any(c is None or c[2] for c in columns) or len(columns) != len(items):
            return None
        query = node.args.get("query")
        if query is not None:
            body = query.this if isinstance(query, exp.Subquery) else query
            inner = self.statement(body, scope.ctes) if isinstance(body, exp.Expression) else None
            for table, column, _via in columns:  # type: ignore[misc]
                found.append(SqlCondition(table, column, SUB, subquery=inner))
            return False
        values = node.expressions
        if any(self._columns(value, scope) for value in values):
            return None
        for table, column, _via in columns:  # type: ignore[misc]
            found.append(SqlCondition(table, column, IN))
        return False

    def _columns(self, node: exp.Expression, scope: _Scope) -> list[tuple[str, str]]:
        """Columns of this statement's tables that an expression mentions (not inside subqueries,
        whose own FROM clauses name their own columns)."""
        from sqlglot import exp

        found: list[tuple[str, str]] = []
        for column in node.find_all(exp.Column):
            if column.find_ancestor(exp.Select, exp.Subquery) not in (None, *_ancestors_to(node)):
                continue
            resolved = scope.column(column)
            if resolved is not None and not resolved[2] and resolved[:2] not in found:
                found.append(resolved[:2])
        return found

    def _order(self, tree: exp.Expression, scope: _Scope) -> tuple[tuple[str, str, bool], ...]:
        from sqlglot import exp

        order = tree.args.get("order")
        if order is None:
            return ()
        terms: list[tuple[str, str, bool]] = []
        for item in order.expressions:
            desc = bool(item.args.get("desc")) if isinstance(item, exp.Ordered) else False
            value = _unwrap(item.this if isinstance(item, exp.Ordered) else item)
            resolved = scope.column(value) if isinstance(value, exp.Column) else None
            if resolved is not None and not resolved[2]:
                terms.append((resolved[0], resolved[1], desc))
            else:
                terms.append(("", value.sql(), desc))
        return tuple(terms)


def _table_type() -> type:
    from sqlglot import exp

    return exp.Table


def _ancestors_to(node: exp.Expression) -> list[Any]:
    """``node`` and its ancestors: the statement a column found under ``node`` belongs to."""
    chain: list[Any] = []
    current: Any = node
    while current is not None:
        chain.append(current)
        current = current.parent
    return chain


def _unwrap(node: Any) -> Any:
    from sqlglot import exp

    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _table_name(node: Any) -> str | None:
    """A table's own name, without schema or database, as the database folds it."""
    from sqlglot import exp

    if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
        return _name(node.this)
    return None


def _value_position(node: exp.Expression) -> bool:
    """A parameter standing where a value may: compared with a column, an element of an IN list
    or VALUES row, a SET right-hand side, LIMIT/OFFSET."""
    from sqlglot import exp

    child: Any = node
    parent = node.parent
    while isinstance(parent, (exp.Paren, exp.Tuple, exp.Cast, exp.Neg, exp.Any, exp.Array)):
        child, parent = parent, parent.parent
    if isinstance(parent, (exp.Values, exp.Limit, exp.Offset, exp.Fetch)):
        return True
    if isinstance(parent, (exp.In, exp.Between)):
        return child is not parent.this and parent.this.find(exp.Column) is not None
    if isinstance(parent, (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Like, exp.ILike, exp.Is)):
        other = parent.expression if child is parent.this else parent.this
        return isinstance(other, exp.Expression) and other.find(exp.Column) is not None
    return False


def _limit(tree: exp.Expression) -> tuple[int | None, bool]:
    from sqlglot import exp

    limit = tree.args.get("limit")
    if limit is None:
        return None, False
    value = limit.args.get("count") if isinstance(limit, exp.Fetch) else limit.expression
    if isinstance(value, exp.Literal) and not value.is_string:
        try:
            return int(str(value.this)), True
        except ValueError:
            return None, True
    return None, True


def _lock(tree: exp.Select, scope: _Scope) -> SqlLock | None:
    """The first row-lock clause (PostgreSQL allows several; the strongest rarely differs)."""
    from sqlglot import exp

    locks = tree.args.get("locks") or []
    if not locks:
        return None
    lock = locks[0]
    update = bool(lock.args.get("update"))
    key = bool(lock.args.get("key"))
    strength = (NO_KEY_UPDATE if key else UPDATE) if update else (KEY_SHARE if key else SHARE)
    wait = lock.args.get("wait")
    of_tables: tuple[str, ...] | None = None
    if lock.expressions:
        names = []
        for item in lock.expressions:
            name = _table_name(item) if isinstance(item, exp.Table) else _name(getattr(item, "this", None))
            if name:
                names.append(scope.aliases.get(name, name))
        of_tables = tuple(names)
    return SqlLock(strength, of_tables, nowait=wait is True, skip_locked=wait is False)


class _Scope:
    """The FROM sources of one statement: real tables in order, their aliases, and CTEs or
    derived tables (whose columns belong to no table)."""

    def __init__(self, ctes: dict[str, SqlStatement]) -> None:
        self.ctes = ctes
        self.tables: list[str] = []
        self.nodes: list[exp.Expression] = []
        self.aliases: dict[str, str] = {}
        self.derived: dict[str, SqlStatement] = {}

    def add(self, node: exp.Expression, reader: _Reader) -> SqlStatement | None:
        """Add one FROM item; returns the statement it is when it is a CTE or derived table."""
        from sqlglot import exp

        alias = _name(node.args["alias"].this) if node.args.get("alias") is not None else ""
        if isinstance(node, exp.Table):
            name = _table_name(node)
            if name is None:
                return None
            if name in self.ctes and not node.args.get("db"):
                self.derived[alias or name] = self.ctes[name]
                return self.ctes[name]
            self.tables.append(name)
            self.nodes.append(node)
            self.aliases[alias or name] = name
            if alias:
                self.aliases.setdefault(name, name)
            return None
        if isinstance(node, exp.Subquery) and isinstance(node.this, exp.Expression):
            inner = reader.statement(node.this, self.ctes)
            if alias:
                self.derived[alias] = inner
            return inner
        return None

    def column(self, node: exp.Column) -> tuple[str, str, str] | None:
        """(table, column, derived source) of a column reference; table ``""`` when unqualified
        among several tables; the derived source's name when it is a CTE's or subquery's column."""
        column = _name(node.this)
        if not column or column == "*":
            return None
        qualifier = _name(node.args.get("table"))
        if qualifier:
            if qualifier in self.derived:
                return "", column, qualifier
            table = self.aliases.get(qualifier)
            return (table, column, "") if table else None
        if len(self.tables) == 1 and not self.derived:
            return self.tables[0], column, ""
        return "", column, ""
