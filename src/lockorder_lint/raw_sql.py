"""Raw SQL in code: the statements that ``text("...")``, ``exec_driver_sql("...")`` and
``execute("...")`` on a connection or cursor run, in the statement model the rules judge.

The SQL text is assembled statically from what the code spells literally: string literals
(adjacent ones are one literal already), module-level constants, a local name assigned once,
``+`` concatenation, ``%`` formatting and f-strings. A run-time part may stand only where a value
does (the reader checks); anything else is not read, and when the text the code shows holds a
write or a row lock, the statement is counted as not checked rather than guessed. Tables are
looked up in the catalog by name, columns through each table's column names.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lockorder_lint.names import called_name
from lockorder_lint.statements import IN, JOIN, SUB, LockClause, Predicate, Span, Statement

if TYPE_CHECKING:
    from lockorder_lint.builders import Evaluator
    from lockorder_lint.catalog import Catalog, Table
    from lockorder_lint.sql_reader import SqlCondition, SqlStatement

# Text that makes a function worth reading for raw SQL: a write (LCK001) or a row lock (LCK002,
# LCK004). Uppercase keywords are SQL by convention; lowercase ones only in a statement's shape.
WRITE_TRIGGER = (
    rb"\b(?:UPDATE\s+[\w.`\"{]+|DELETE\s+(?:FROM\b|[\w`\"]+\s+FROM\b))"
    rb"|(?i:\bupdate\s+[\w.`\"]+\s+(?:(?:as\s+)?\w+\s+)?set\b|\bdelete\s+from\s+[\w.`\"])"
)
LOCK_TRIGGER = (
    rb"(?i:\bfor\s+(?:no\s+key\s+)?update\b|\bfor\s+(?:key\s+)?share\b|\block\s+in\s+share\s+mode\b)"
)
# What a statement's own text shows even when it cannot be read.
_WRITE_WORDS = re.compile(r"\b(UPDATE)\b.*\bSET\b|\b(DELETE)\b.*\bFROM\b", re.IGNORECASE | re.DOTALL)
_LOCK_WORDS = re.compile(LOCK_TRIGGER.decode())
_SHARE_WORDS = re.compile(r"\bFOR\s+(?:KEY\s+)?SHARE\b|\bLOCK\s+IN\s+SHARE\s+MODE\b", re.IGNORECASE)
# A statement, not a fragment (``text("id DESC")`` in an ORDER BY): only these are judged or counted.
_STATEMENT_START = re.compile(
    r"^\s*\(?\s*(?:SELECT|UPDATE|DELETE|INSERT|REPLACE|MERGE|WITH)\b", re.IGNORECASE
)
VIA = "SQL text"
# Methods that run SQL text handed to them as their first argument.
EXECUTING_METHODS = frozenset({"execute", "exec_driver_sql", "executemany"})
MAX_PIECES = 64  # a concatenation longer than this is not assembled


@dataclass(frozen=True)
class SqlText:
    """SQL assembled from code: the text (run-time parts replaced by value markers), whether any
    part was only known at run time, and whether part of it is a caller's argument (the statement
    is then the caller's, reported at its call)."""

    text: str
    runtime: bool = False
    borrowed: bool = False


class _Assembly:
    """The pieces of one SQL text being assembled, and what they depended on."""

    def __init__(self, ev: Evaluator) -> None:
        self.ev = ev
        self.pieces: list[str] = []
        self.runtime = False
        self.borrowed = False
        self.markers = 0

    def marker(self) -> str:
        from lockorder_lint.sql_reader import RUNTIME_MARK

        self.markers += 1
        self.runtime = True
        return f":{RUNTIME_MARK}{self.markers}"

    def add_known(self, known: SqlText) -> None:
        self.pieces.append(known.text)
        self.runtime |= known.runtime
        self.borrowed |= known.borrowed

    def walk(self, value: ast.AST, depth: int) -> bool:
        """Append what ``value`` spells; False when it is not visibly a string."""
        if len(self.pieces) > MAX_PIECES:
            return False
        if isinstance(value, ast.Constant):
            if isinstance(value.value, str):
                self.pieces.append(value.value)
                return True
            return False
        if isinstance(value, ast.JoinedStr):
            for part in value.values:
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    self.pieces.append(part.value)
                elif isinstance(part, ast.FormattedValue):
                    known = _known_text(self.ev, part.value, depth)
                    if known is not None and not known.runtime and part.format_spec is None:
                        self.add_known(known)
                    else:
                        self.pieces.append(self.marker())
            return True
        if isinstance(value, ast.BinOp) and isinstance(value.op, ast.Add):
            # string concatenation: a side that is not a visible string is run-time text
            before = len(self.pieces)
            left = self.walk(value.left, depth)
            if not left:
                self.pieces.append(self.marker())
            middle = len(self.pieces)
            right = self.walk(value.right, depth)
            if not right:
                del self.pieces[middle:]
                self.pieces.append(self.marker())
            if not (left or right):
                del self.pieces[before:]
                return False
            return True
        if isinstance(value, ast.BinOp) and isinstance(value.op, ast.Mod):
            # ``"... WHERE id = %s" % key`` puts values (or worse) where the ``%s`` stand
            before = len(self.pieces)
            if not self.walk(value.left, depth):
                return False
            formatted = "".join(self.pieces[before:]).replace("%%", "\0")
            del self.pieces[before:]
            filled = re.sub(r"%(?:\(\w+\))?[sdrif]", lambda _m: self.marker(), formatted)
            self.pieces.append(filled.replace("\0", "%"))
            return True
        if isinstance(value, ast.Name):
            known = _known_text(self.ev, value, depth)
            if known is None:
                return False
            self.add_known(known)
            return True
        return False


def static_text(ev: Evaluator, node: ast.AST, depth: int = 0) -> SqlText | None:
    """The SQL a Python expression spells, or None when it is not (visibly) a string."""
    if depth > 8:
        return None
    assembly = _Assembly(ev)
    if not assembly.walk(node, depth):
        return None
    return SqlText("".join(assembly.pieces), assembly.runtime, assembly.borrowed)


def _known_text(ev: Evaluator, node: ast.AST, depth: int) -> SqlText | None:
    """A name's string: a caller's argument bound to a helper's parameter, a local assigned once,
    or a module-level constant."""
    if not isinstance(node, ast.Name):
        return static_text(ev, node, depth + 1) if isinstance(node, (ast.Constant, ast.JoinedStr)) else None
    bound = ev.bound_expression(node)
    if bound is not None:
        found = static_text(bound[0], bound[1], depth + 1)
        return SqlText(found.text, found.runtime, borrowed=True) if found is not None else None
    function = getattr(ev, "function_node", None)
    if function is not None:
        assigned = _assignments(function).get(node.id)
        if assigned is not None:
            return static_text(ev, assigned, depth + 1) if assigned is not _MANY else None
        if node.id in ev.parameters:
            return None
    value = module_strings(ev.scope.source.tree).get(node.id)
    return static_text(ev, value, depth + 1) if value is not None else None


_MANY = ast.Constant(None)  # a name assigned more than once
_ASSIGNMENTS: dict[int, tuple[ast.AST, dict[str, ast.AST]]] = {}
_MODULE_STRINGS: dict[int, tuple[ast.AST, dict[str, ast.AST]]] = {}


def _assignments(function: ast.AST) -> dict[str, ast.AST]:
    """Names a function assigns, each with its value when assigned exactly once (and never
    augmented, nor bound by a loop or ``with``), else a marker."""
    cached = _ASSIGNMENTS.get(id(function))
    if cached is not None and cached[0] is function:
        return cached[1]
    found: dict[str, ast.AST] = {}
    for node in ast.walk(function):
        targets: list[ast.AST] = []
        value: ast.AST | None = None
        if isinstance(node, ast.Assign):
            targets, value = list(node.targets), node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        elif isinstance(node, (ast.AugAssign, ast.For, ast.AsyncFor, ast.withitem, ast.NamedExpr)):
            bound = node.optional_vars if isinstance(node, ast.withitem) else node.target
            targets, value = ([bound] if bound is not None else []), _MANY
        for target in targets:
            for name in ast.walk(target):
                if isinstance(name, ast.Name):
                    single = len(targets) == 1 and target is name and value is not None
                    found[name.id] = _MANY if name.id in found or not single else value  # type: ignore[assignment]
    if len(_ASSIGNMENTS) > 256:
        _ASSIGNMENTS.clear()
    _ASSIGNMENTS[id(function)] = (function, found)
    return found


def module_strings(tree: ast.Module) -> dict[str, ast.AST]:
    """Module-level names bound once to a string expression (``SQL = "UPDATE ..."``)."""
    cached = _MODULE_STRINGS.get(id(tree))
    if cached is not None and cached[0] is tree:
        return cached[1]
    found: dict[str, ast.AST] = {}
    seen: set[str] = set()
    for node in tree.body:
        target: ast.AST | None = None
        value: ast.AST | None = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        if isinstance(target, ast.Name) and value is not None:
            value = _text_argument(value) or value
            if target.id in seen:
                found.pop(target.id, None)
            elif isinstance(value, (ast.Constant, ast.JoinedStr, ast.BinOp)):
                found[target.id] = value
            seen.add(target.id)
    if len(_MODULE_STRINGS) > 64:
        _MODULE_STRINGS.clear()
    _MODULE_STRINGS[id(tree)] = (tree, found)
    return found


def _text_argument(value: ast.AST) -> ast.AST | None:
    """The SQL string of ``text("...")`` (also ``sa.text``, with ``.bindparams(...)`` or
    ``.columns(...)`` chained): a module-level statement the functions run by name."""
    while (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Attribute)
        and value.func.attr in ("bindparams", "columns")
    ):
        value = value.func.value
    if not (isinstance(value, ast.Call) and value.args and not isinstance(value.args[0], ast.Starred)):
        return None
    return value.args[0] if called_name(value) == "text" else None


def looks_like_sql(node: ast.AST) -> bool:
    """An expression that may spell a string: worth assembling as SQL."""
    return isinstance(node, (ast.Constant, ast.JoinedStr, ast.BinOp, ast.Name)) and not (
        isinstance(node, ast.Constant) and not isinstance(node.value, str)
    )


# -- statements ------------------------------------------------------------------------------------


def statements_for(ev: Evaluator, node: ast.AST, anchor: ast.AST) -> tuple[Statement, ...]:
    """The statements SQL text spelled by ``node`` runs, anchored at ``anchor`` (the ``text()``
    call, or the argument of ``execute``). Text that cannot be read yields a statement with no
    table when what it shows writes or locks rows (counted as not checked), else nothing."""
    from lockorder_lint.sql_reader import SqlNotRead, read_sql

    found = static_text(ev, node)
    if found is None or not _STATEMENT_START.match(_without_comments(found.text)):
        return ()
    span = ev.span(anchor)
    try:
        read = read_sql(found.text, _dialects(ev))
    except SqlNotRead as exc:
        return _not_read(ev, found.text, span, str(exc), anchor)
    statements: list[Statement] = []
    for sql in read:
        statement = to_statement(sql, ev.catalog, span, mysql=ev.mysql)
        if statement is not None:
            statements.append(ev.new(statement))
            if found.borrowed:  # the caller's SQL: reported at the call that handed it in
                ev.borrowed.add(statements[-1].id)
    return tuple(statements)


def _without_comments(text: str) -> str:
    return re.sub(r"^(?:\s*(?:--[^\n]*\n|/\*.*?\*/))*", "", text, flags=re.DOTALL)


def _dialects(ev: Evaluator) -> list[str]:
    return sorted(ev.scope.dialects, key=lambda d: d != "postgresql")


def _not_read(ev: Evaluator, text: str, span: Span, reason: str, anchor: ast.AST) -> tuple[Statement, ...]:
    shown = " ".join(text.split())
    words = _WRITE_WORDS.search(shown)
    lock = _LOCK_WORDS.search(shown)
    if words is None and lock is None:
        return ()
    what = f"SQL text (not read: {reason})"
    if lock is not None:
        clause = LockClause(span=span, read=_SHARE_WORDS.search(shown) is not None, via=VIA)
        return (ev.new(Statement(kind="select", span=span, target_text=what, lock=clause)),)
    assert words is not None
    kind = (words.group(1) or words.group(2)).lower()
    return (ev.new(Statement(kind=kind, span=span, target_text=what, write=span, write_kind=kind.upper())),)


def to_statement(
    sql: SqlStatement, catalog: Catalog, span: Span, mysql: bool, via: str = VIA
) -> Statement | None:
    """One read SQL statement as the rules' statement model; None for what locks no rows itself
    (DDL, transaction control). ``via`` is how its lock clause was written (SQL text here; at run
    time, ``with_for_update`` for SQL that SQLAlchemy compiled)."""
    if sql.kind == "other":
        return None
    table = _table(catalog, sql.target)
    kind = {"upsert": "merge"}.get(sql.kind, sql.kind)
    write_kind = {"update": "UPDATE", "delete": "DELETE", "insert": "INSERT", "upsert": "UPSERT"}.get(
        sql.kind
    )
    lock = None
    if sql.lock is not None:
        lock = LockClause(
            span=span,
            read=sql.lock.read,
            key_share=sql.lock.key_share,
            skip_locked=sql.lock.skip_locked,
            nowait=sql.lock.nowait,
            of=sql.lock.of,
            via=via,
        )
    source = to_statement(sql.source, catalog, span, mysql, via) if sql.source is not None else None
    predicates = tuple(_predicates(sql.conditions, sql, catalog, span, mysql))
    joins = tuple(name for name, _outer in sql.joins)
    return Statement(
        kind=kind,
        span=span,
        target=table,
        target_text=sql.target or "",
        joins=joins,
        outer_joins=tuple(name for name, outer in sql.joins if outer),
        predicates=predicates,
        opaque_where=sql.opaque_where,
        order_by=tuple(_order(sql, catalog)),
        limit_one=sql.limit == 1,
        lock=lock,
        write=span if write_kind else None,
        write_kind=write_kind,
        source=source,
        assigned=tuple(_attribute(table, column) for column in sql.assigned),
        nulled=tuple(_attribute(table, column) for column in sql.nulled),
    )


def _table(catalog: Catalog, name: str | None) -> Table | None:
    if not name:
        return None
    return catalog.tables.get(name) or catalog.tables.get(name.lower())


def _attribute(table: Table | None, column: str) -> str:
    """The mapped attribute key of a column name (the statement model speaks in keys)."""
    if table is None:
        return column
    for key, name in table.columns.items():
        if name == column:
            return key
    for key, name in table.columns.items():
        if name.lower() == column.lower():
            return key
    return column


def _owner(condition_table: str, column: str, sql: SqlStatement, catalog: Catalog) -> str:
    """The table an unqualified column belongs to: the one FROM table that has it, else the target."""
    if condition_table:
        return condition_table
    having = [
        name
        for name in sql.tables
        if (t := _table(catalog, name)) is not None and column in t.columns.values()
    ]
    if len(having) == 1:
        return having[0]
    return sql.target or ""


def _predicates(
    conditions: Sequence[SqlCondition], sql: SqlStatement, catalog: Catalog, span: Span, mysql: bool
) -> Iterable[Predicate]:
    for condition in conditions:
        if condition.op == JOIN and condition.via and not condition.table:
            continue  # the CTE's side of a join; the table's side says what it reaches
        owner = _owner(condition.table, condition.column, sql, catalog)
        column = _attribute(_table(catalog, owner), condition.column)
        if condition.op == SUB:
            inner = (
                to_statement(condition.subquery, catalog, span, mysql)
                if condition.subquery is not None
                else None
            )
            ordered = inner is not None and _locked_in_order(inner, mysql)
            yield Predicate(owner, column, IN if ordered else SUB, via=_reach(inner))
        elif condition.op == JOIN and condition.via:
            yield Predicate(owner, column, JOIN, via=condition.via)
        else:
            yield Predicate(owner, column, condition.op)


def _locked_in_order(statement: Statement, mysql: bool) -> bool:
    """A subquery that pins or locks its own rows in key order (the fix's first step inline)."""
    current: Statement | None = statement
    while current is not None:
        if current.locks_in_key_order(mysql) or (current.lock is None and current.pins_primary_key()):
            return True
        current = current.source
    return False


def _reach(statement: Statement | None) -> str:
    if statement is None:
        return "a subquery"
    origin = statement.source or statement
    columns = origin.columns_on_target()
    table = origin.table_name or origin.target_text or "a subquery"
    return f"{table} ({', '.join(columns)})" if columns else table


def _order(sql: SqlStatement, catalog: Catalog) -> Iterable[tuple[str, str, bool]]:
    for table, column, desc in sql.order_by:
        if not table:
            yield "", column, desc
            continue
        yield table, _attribute(_table(catalog, table), column), desc


# -- triggers for names bound at module level -----------------------------------------------------


def constant_hits(
    tree: ast.Module, data: bytes, hits: dict[str, list[int]], breaks: list[int]
) -> dict[str, list[int]]:
    """A module-level constant holding a trigger (``SQL = "UPDATE ..."``) makes the lines that
    use its name triggers too, for the same rules: the function that runs it is worth reading."""
    import bisect

    names: dict[str, set[str]] = {}
    for node in tree.body:
        if not isinstance(node, (ast.Assign, ast.AnnAssign)):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if len(targets) != 1 or not isinstance(targets[0], ast.Name):
            continue
        start, end = node.lineno, node.end_lineno or node.lineno
        for code, lines in hits.items():
            index = bisect.bisect_left(lines, start)
            if index < len(lines) and lines[index] <= end:
                names.setdefault(targets[0].id, set()).add(code)
    if not names:
        return hits
    extended = {code: set(lines) for code, lines in hits.items()}
    for name, codes in names.items():
        for match in re.finditer(rb"\b" + re.escape(name.encode()) + rb"\b", data):
            line = bisect.bisect_right(breaks, match.start()) + 1
            for code in codes:
                extended[code].add(line)
    return {code: sorted(lines) for code, lines in extended.items()}
