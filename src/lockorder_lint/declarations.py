"""Model declarations as one file states them, read with ``ast``, before anything is resolved
across files: declarative classes (plain SQLAlchemy, SQLModel, Flask-SQLAlchemy), ``Table(...)``
objects, imperative mappings, relationships, module-level indexes and model aliases.

Everything here is plain, picklable data (NamedTuples and small dataclasses), cached per file
and merged into a :class:`~lockorder_lint.catalog.Catalog`.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from lockorder_lint.names import Resolver, dotted_name, file_resolver, module_name
from lockorder_lint.parsing import parse_ast

# A file that matches none of these cannot declare a table, a mapping, an index on a model, or a
# module-level alias of a model (``DbCallbackRequest = DagProcessorCallback``).
MODEL_HINT = re.compile(
    rb"(?m)__tablename__|Column\(|mapped_column\(|relationship\(|Table\(|__table__\s*=|table=True|declared_attr|map_imperatively|mapper\(|Index\(|"
    rb"PrimaryKeyConstraint|primary_key|db\.Model|SQLAlchemy\(|^[A-Z]\w* = [A-Z][\w.]*\s*$"
)
_MODEL_WORDS = (
    b"__tablename__", b"Column(", b"mapped_column(", b"relationship(", b"Table(", b"table=True",
    b"declared_attr", b"map_imperatively", b"mapper(", b"Index(", b"PrimaryKeyConstraint",
    b"primary_key", b"db.Model", b"SQLAlchemy(",
)  # fmt: skip
_TABLE_ASSIGNED = re.compile(rb"__table__\s*=")
_MODEL_ALIAS = re.compile(rb"(?m)^[A-Z]\w* = [A-Z][\w.]*\s*$")


def may_declare_models(data: bytes) -> bool:
    """``MODEL_HINT.search(data)``, three times faster: the literal words by substring tests
    (one regex alternation of fourteen words is tried at every offset), then the two patterns."""
    return (
        any(word in data for word in _MODEL_WORDS)
        or (b"__table__" in data and _TABLE_ASSIGNED.search(data) is not None)
        or _MODEL_ALIAS.search(data) is not None
    )


# What marks an Alembic revision: ``revision``/``down_revision`` identifiers beside alembic.
_MIGRATION = re.compile(rb"(?m)^down_revision\s*[:=]")
# Directories that hold migrations: ``migrations``, ``migration``, ``_migrations``,
# ``db_migrations``, ``alembic_migrations``, ``alembic``; and an Alembic ``versions`` directory.
_MIGRATIONS_DIRECTORY = re.compile(r"_*(?:[A-Za-z0-9]+_)?migrations?|alembic")
_MIGRATION_WORDS = ("migration", "alembic", "versions")

# Where a declaration was read, when not in application code: both describe the schema as it was
# at some revision, so the application's definition of a table wins over them.
REVISION = "revision"  # an Alembic revision file
MIGRATION_CODE = "migration code"  # other code under a migrations directory (helpers, old models)

# ``lazy=`` values that are spelled as constants other than strings (legacy SQLAlchemy forms).
_LAZY_CONSTANTS: dict[object, str] = {True: "select", False: "joined", None: "noload"}


class ColumnDecl(NamedTuple):
    """One mapped column: its database name, and whether it is (part of) the key, indexed, unique,
    and which ``table.column`` its foreign key references."""

    name: str
    primary_key: bool = False
    indexed: bool = False
    unique: bool = False
    # Each ``table.column`` its foreign keys reference: a column may be part of several
    # constraints (Airflow's ``task_reschedule.run_id`` references task_instance and dag_run).
    foreign_keys: tuple[str, ...] = ()
    defaulted: bool = False  # ``default=`` / ``server_default=``: an INSERT that names it not still sets it


# name, elements, unique. An element is a column key, or, for an expression (``func.lower(c)``,
# ``text(...)``), its source in parentheses: no predicate names such a column, so a unique key
# holding one pins no row, and no index is matched past it.
IndexDecl = tuple[str | None, list[str], bool]

# Ordering modifiers that leave an index element the column it orders: ``col.desc()``, ``desc(col)``.
_ORDERING = frozenset({"asc", "desc", "nulls_first", "nulls_last", "nullsfirst", "nullslast"})


class RelationshipDecl(NamedTuple):
    """A ``relationship(...)`` as written, before class names are resolved across files.

    ``target`` is a qualified name, or the string as written (``by_string``) which SQLAlchemy
    resolves in the class registry. A ``backref(...)`` declares a second relationship, on the
    target class, back to ``owner``. A NamedTuple, not a dataclass: it pickles without attribute
    names, whose interning differs between a fresh and an unpickled object and would change the
    catalog fingerprint of an unchanged project.
    """

    owner: str  # qualified class name
    name: str
    target: str | None
    by_string: bool
    lazy: str
    innerjoin: bool
    location: str
    backref: tuple[str, str, bool] | None = None  # (name, lazy, innerjoin)


@dataclass
class ClassDecl:
    """What one class body says, before inheritance is resolved across files."""

    qualname: str
    bases: list[str]
    tablename: str | None
    columns: dict[str, ColumnDecl]
    indexes: list[IndexDecl]
    pk_constraint: list[str] | None
    table_var: str | None  # ``__table__ = some_table`` or an inline Table(...)
    location: str
    has_table_def: bool = False
    relationships: list[RelationshipDecl] = field(default_factory=list)
    polymorphic_eager: bool = False  # ``with_polymorphic`` / ``polymorphic_load="inline"``
    # How a ``declared_attr`` ``__tablename__`` derives names from class names: "lower",
    # "snake", "asis", each optionally followed by "+suffix" (neutron-lib pluralises with "s").
    tablename_rule: str | None = None
    abstract: bool = False
    sqlmodel_table: bool = False  # ``class X(SQLModel, table=True)``
    migration: str = ""  # REVISION or MIGRATION_CODE when read from migrations
    # Something besides its named bases may make the class mapped or declarative: a base that is
    # not a dotted name (``Generic[T]``, ``declarative_base()``), a metaclass, a decorator
    # (``@registry.mapped``). Such a class is never taken for a plain mixin.
    opaque: bool = False


@dataclass
class TableDecl:
    """A ``Table("name", metadata, ...)`` assigned to a module-level (or class) name."""

    qualname: str
    tablename: str
    columns: dict[str, ColumnDecl]
    indexes: list[IndexDecl]
    pk_constraint: list[str] | None
    location: str
    migration: str = ""  # REVISION or MIGRATION_CODE when read from migrations


@dataclass
class FileModels:
    """The model declarations of one file; cached per file, merged into a Catalog."""

    classes: list[ClassDecl] = field(default_factory=list)
    tables: list[TableDecl] = field(default_factory=list)
    # ``Model.attr = relationship(...)`` after the class body (Airflow does this to break cycles).
    relationships: list[RelationshipDecl] = field(default_factory=list)
    # Module-level ``Alias = Model``: (qualified alias, qualified target).
    aliases: list[tuple[str, str]] = field(default_factory=list)
    # ``registry.map_imperatively(Class, table)`` / ``mapper(Class, table)``: (class, table) names.
    mappings: list[tuple[str, str]] = field(default_factory=list)
    # ``Index("name", Model.col, unique=True)`` outside any class: (owner, index).
    indexes: list[tuple[str, IndexDecl]] = field(default_factory=list)
    # Module-level names bound to ``SQLAlchemy()`` (Flask-SQLAlchemy): their ``.Model`` is a base.
    flask_dbs: list[str] = field(default_factory=list)
    migration: str = ""  # REVISION or MIGRATION_CODE when read from migrations


def is_migration(source: bytes | str, path: Path | str) -> bool:
    """An Alembic revision file: it runs alone, under the migration lock."""
    data = source.encode("utf-8", errors="replace") if isinstance(source, str) else source
    return bool(_MIGRATION.search(data)) and b"alembic" in data


def migration_kind(source: bytes | str, path: Path, root: Path) -> str:
    """REVISION for an Alembic revision, MIGRATION_CODE for any other file under a migrations
    directory of the project (Superset's ``migrations/shared/`` helpers and the models they
    declare), else "" (application code)."""
    if is_migration(source, path):
        return REVISION
    return MIGRATION_CODE if in_migrations_directory(path, root) else ""


def in_migrations_directory(path: Path, root: Path) -> bool:
    """The file lies, below the project root, in a directory of migrations: one named like
    ``migrations`` (``_migrations``, ``db_migrations``, ``alembic``...), or an Alembic
    ``versions`` directory (its parent holds the environment's ``env.py``)."""
    if not any(word in str(path.parent) for word in _MIGRATION_WORDS):
        return False
    try:
        parts = path.resolve().parent.relative_to(root.resolve()).parts
    except (OSError, ValueError):
        return False
    for depth, part in enumerate(parts):
        if _MIGRATIONS_DIRECTORY.fullmatch(part):
            return True
        if part == "versions" and _alembic_environment(root.resolve().joinpath(*parts[:depth])):
            return True
    return False


@functools.lru_cache(maxsize=256)
def _alembic_environment(directory: Path) -> bool:
    return (directory / "env.py").is_file() or (directory / "script.py.mako").is_file()


def _call_name(node: ast.AST, resolver: Resolver) -> str | None:
    if isinstance(node, ast.Call):
        dotted = dotted_name(node.func)
        if dotted:
            return resolver.qualify(dotted)
    return None


def _short(qualified: str | None) -> str:
    return (qualified or "").rsplit(".", 1)[-1]


def _kw_true(call: ast.Call, name: str) -> bool:
    return any(
        kw.arg == name and isinstance(kw.value, ast.Constant) and kw.value.value is True
        for kw in call.keywords
    )


def _str_const(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _foreign_keys(call: ast.Call, resolver: Resolver) -> tuple[str, ...]:
    """The ``table.column`` each ``ForeignKey(...)`` argument (or SQLModel's ``foreign_key=``) names."""
    found: list[str] = []
    for kw in call.keywords:
        text = _str_const(kw.value) if kw.arg == "foreign_key" else None
        if text:
            found.append(text)
    for arg in call.args:
        if isinstance(arg, ast.Call) and _short(_call_name(arg, resolver)) == "ForeignKey" and arg.args:
            text = _str_const(arg.args[0])
            dotted = dotted_name(arg.args[0]) if text is None else None
            target = text if text is not None else resolver.qualify(dotted) if dotted else None
            if target:
                found.append(target)
    return tuple(dict.fromkeys(found))


def column_from_call(call: ast.Call, key: str | None, resolver: Resolver) -> tuple[str, ColumnDecl] | None:
    """Read ``Column(...)``, ``mapped_column(...)`` or SQLModel's ``Field(...)``: its key, column
    name, and key/index/unique/foreign-key flags. (``Field``'s first argument is a default.)"""
    named_first = _short(_call_name(call, resolver)) != "Field"
    name = _str_const(call.args[0]) if call.args and named_first else None
    for kw in call.keywords:
        if kw.arg in ("name", "sa_column_kwargs") and _str_const(kw.value):
            name = _str_const(kw.value)
    key = key or name
    if key is None:
        return None
    return key, ColumnDecl(
        name or key,
        _kw_true(call, "primary_key"),
        _kw_true(call, "index"),
        _kw_true(call, "unique"),
        _foreign_keys(call, resolver),
        any(
            kw.arg in ("default", "server_default", "insert_default")
            and not (isinstance(kw.value, ast.Constant) and kw.value.value is None)
            for kw in call.keywords
        ),
    )


def constraint_columns(args: Iterable[ast.AST], names: dict[str, str]) -> list[str]:
    """Column keys named in an ``Index``/constraint, as strings or as class attributes."""
    cols: list[str] = []
    for arg in args:
        text = _str_const(arg)
        if text is not None:
            cols.append(names.get(text, text))
            continue
        dotted = dotted_name(arg)
        if dotted:
            cols.append(dotted.rsplit(".", 1)[-1])
    return cols


def _unordered(node: ast.AST) -> ast.AST:
    """An index element without its ordering modifiers (``cls.timestamp.desc()``,
    ``sa.desc("timestamp")``, ``col.asc().nulls_last()``)."""
    while isinstance(node, ast.Call) and not node.keywords:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in _ORDERING and not node.args:
            node = func.value
        elif _short(dotted_name(func)) in _ORDERING and len(node.args) == 1:
            node = node.args[0]
        else:
            break
    return node


def _element_column(node: ast.AST) -> ast.AST | None:
    """The column an index element names, as a string or a dotted name; None for an expression."""
    node = _unordered(node)
    return node if _str_const(node) is not None or dotted_name(node) else None


# ``text("version_major DESC")``: a column named in SQL, with its ordering.
_TEXT_COLUMN = re.compile(r"\s*(\w+)(?:\s+(?:ASC|DESC))?(?:\s+NULLS\s+(?:FIRST|LAST))?\s*", re.IGNORECASE)


def index_elements(args: Iterable[ast.AST], names: dict[str, str]) -> list[str]:
    """Every element of an ``Index``/``UniqueConstraint``, in order: the column key it names, or an
    expression's source in parentheses (see :data:`IndexDecl`). None is dropped: a key read
    shorter than it is would claim that fewer columns pin a row."""
    elements: list[str] = []
    for arg in args:
        column = _element_column(arg)
        if column is not None:
            elements.extend(constraint_columns([column], names))
            continue
        element = _unordered(arg)
        named = _text_column(element)
        elements.append(names.get(named, named) if named else f"({ast.unparse(element)})")
    return elements


def _text_column(node: ast.AST) -> str | None:
    """The column a ``text("name DESC")`` element orders, when that is all its SQL says."""
    if not (isinstance(node, ast.Call) and len(node.args) == 1 and _short(dotted_name(node.func)) == "text"):
        return None
    sql = _str_const(node.args[0])
    match = _TEXT_COLUMN.fullmatch(sql) if sql is not None else None
    return match.group(1) if match else None


def read_table_items(
    items: Iterable[ast.AST],
    resolver: Resolver,
    columns: dict[str, ColumnDecl],
    indexes: list[IndexDecl],
) -> list[str] | None:
    """Read the Index/constraint/Column items of ``__table_args__`` or ``Table(...)``."""
    pk: list[str] | None = None
    by_name = {col.name: key for key, col in columns.items()}
    for item in items:
        if isinstance(item, ast.Starred) or not isinstance(item, ast.Call):
            continue
        kind = _short(_call_name(item, resolver))
        if kind in ("Column", "mapped_column"):
            read = column_from_call(item, None, resolver)
            if read:
                columns[read[0]] = read[1]
                by_name[read[1].name] = read[0]
        elif kind == "Index":
            index_name = _str_const(item.args[0]) if item.args else None
            cols = index_elements(item.args[1:], by_name)
            if cols:
                indexes.append((index_name, cols, _kw_true(item, "unique")))
        elif kind == "PrimaryKeyConstraint":
            pk = constraint_columns(item.args, by_name) or pk
        elif kind == "UniqueConstraint":
            cols = index_elements(item.args, by_name)
            cname = next((_str_const(k.value) for k in item.keywords if k.arg == "name"), None)
            if cols:
                indexes.append((cname, cols, True))
        elif kind == "ForeignKeyConstraint" and len(item.args) >= 2:
            _read_foreign_key_constraint(item, by_name, columns)
    return pk


def _read_foreign_key_constraint(
    item: ast.Call, by_name: dict[str, str], columns: dict[str, ColumnDecl]
) -> None:
    """``ForeignKeyConstraint(["dag_id", "run_id"], ["dag_run.dag_id", "dag_run.run_id"])``: each
    local column declared here (by name, or as the class attribute ``[dag_id, run_id]``)
    references its ``table.column`` (an INSERT checks the parent row), besides any other
    constraint it is part of."""
    local, remote = item.args[0], item.args[1]
    if not isinstance(local, (ast.List, ast.Tuple)) or not isinstance(remote, (ast.List, ast.Tuple)):
        return
    for mine, theirs in zip(local.elts, remote.elts, strict=False):
        name = mine.id if isinstance(mine, ast.Name) and mine.id in columns else _str_const(mine)
        target = _str_const(theirs)
        if name is None or target is None or "." not in target:
            continue
        key = by_name.get(name, name)
        column = columns.get(key)
        if column is not None and target not in column.foreign_keys:
            columns[key] = column._replace(foreign_keys=(*column.foreign_keys, target))


def _flatten_args(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, (ast.Tuple, ast.List)):
        out: list[ast.AST] = []
        for elt in node.elts:
            out.extend(_flatten_args(elt) if isinstance(elt, (ast.Tuple, ast.List)) else [elt])
        return out
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _flatten_args(node.left) + _flatten_args(node.right)
    return [node]


def is_relationship(call: ast.AST, resolver: Resolver) -> bool:
    return _short(_call_name(call, resolver)) in ("relationship", "relation")


def _lazy_of(call: ast.Call) -> str:
    for kw in call.keywords:
        if kw.arg == "lazy":
            if isinstance(kw.value, ast.Constant):
                value = kw.value.value
                if isinstance(value, str):
                    return value
                return _LAZY_CONSTANTS.get(value, "unknown")
            return "unknown"
    return "select"


def _innerjoin_of(call: ast.Call) -> bool:
    return any(
        kw.arg == "innerjoin" and isinstance(kw.value, ast.Constant) and kw.value.value in (True, "unnested")
        for kw in call.keywords
    )


def _class_reference(node: ast.AST | None, resolver: Resolver) -> tuple[str | None, bool]:
    """The class a relationship argument or ``Mapped[...]`` annotation names: (name, by_string)."""
    if node is None:
        return None, False
    if isinstance(node, ast.Lambda):
        return _class_reference(node.body, resolver)
    text = _str_const(node)
    if text is not None:
        try:
            parsed = ast.parse(text.strip(), mode="eval").body
        except SyntaxError:
            return None, False
        name, _ = _class_reference(parsed, resolver)
        return name, True
    if isinstance(node, ast.Subscript):  # Mapped[X], list[X], Optional[X], Mapped[list[X]]
        inner = node.slice
        if isinstance(inner, ast.Tuple):  # dict[K, V]: the value is the related class
            inner = inner.elts[-1]
        return _class_reference(inner, resolver)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):  # X | None
        left = node.left
        if isinstance(left, ast.Constant) and left.value is None:
            return _class_reference(node.right, resolver)
        return _class_reference(left, resolver)
    dotted = dotted_name(node)
    if dotted:
        return resolver.qualify(dotted), False
    return None, False


def read_relationship(
    call: ast.Call, owner: str, name: str, annotation: ast.AST | None, resolver: Resolver, location: str
) -> RelationshipDecl:
    """Read ``relationship(Target, lazy=..., innerjoin=..., backref=...)``; with no target argument
    the class comes from the ``Mapped[...]`` annotation."""
    argument = call.args[0] if call.args else None
    for kw in call.keywords:
        if kw.arg == "argument":
            argument = kw.value
    target, by_string = _class_reference(argument if argument is not None else annotation, resolver)
    backref: tuple[str, str, bool] | None = None
    for kw in call.keywords:
        if kw.arg != "backref":
            continue
        text = _str_const(kw.value)
        if text is not None:
            backref = (text, "select", False)
        elif isinstance(kw.value, ast.Call) and kw.value.args:
            back_name = _str_const(kw.value.args[0])
            if back_name is not None:
                backref = (back_name, _lazy_of(kw.value), _innerjoin_of(kw.value))
    return RelationshipDecl(
        owner=owner,
        name=name,
        target=target,
        by_string=by_string,
        lazy=_lazy_of(call),
        innerjoin=_innerjoin_of(call),
        location=location,
        backref=backref,
    )


def _is_declared_attr(func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any("declared_attr" in (dotted_name(d) or "") for d in func.decorator_list)


def _returned(func: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.AST | None:
    last = func.body[-1] if func.body else None
    return last.value if isinstance(last, ast.Return) else None


def tablename_rule(expr: ast.AST) -> str | None:
    """How a ``declared_attr`` ``__tablename__`` turns the class name into a table name, read
    from its return expression: ``cls.__name__.lower() + "s"`` -> ``lower+s``."""
    suffix = ""
    while isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add) and _str_const(expr.right) is not None:
        suffix = (_str_const(expr.right) or "") + suffix
        expr = expr.left
    mentions_name = any(isinstance(n, ast.Attribute) and n.attr == "__name__" for n in ast.walk(expr))
    if not mentions_name:
        return None
    calls = [n for n in ast.walk(expr) if isinstance(n, ast.Call)]
    names = [
        (
            c.func.attr
            if isinstance(c.func, ast.Attribute)
            else c.func.id
            if isinstance(c.func, ast.Name)
            else ""
        )
        for c in calls
    ]
    if any(n == "sub" or "snake" in n.lower() or "underscore" in n.lower() for n in names):
        rule = "snake"
    elif "lower" in names:
        rule = "lower"
    elif not calls and isinstance(expr, ast.Attribute):
        rule = "asis"
    else:
        return None
    return f"{rule}+{suffix}" if suffix else rule


def apply_tablename_rule(rule: str, class_name: str) -> str:
    """The table name a derivation rule gives a class: ``snake`` puts ``_`` before every
    capital but the first (``FlowRun`` -> ``flow_run``), as the common recipes do."""
    base, _, suffix = rule.partition("+")
    if base == "snake":
        name = re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()
    elif base == "flask":
        name = re.sub(r"((?<=[a-z0-9])[A-Z]|(?!^)[A-Z](?=[a-z]))", r"_\1", class_name).lower().lstrip("_")
    elif base == "lower":
        name = class_name.lower()
    else:
        name = class_name
    return name + suffix


def _polymorphic_eager(value: ast.AST) -> bool:
    """``__mapper_args__`` that make every load of the class LEFT OUTER JOIN its subclasses' tables."""
    if not isinstance(value, ast.Dict):
        return False
    for key, item in zip(value.keys, value.values, strict=True):
        option = _str_const(key) if key is not None else None
        if option == "with_polymorphic" and not (isinstance(item, ast.Constant) and item.value is None):
            return True
        if option == "polymorphic_load" and _str_const(item) == "inline":
            return True
    return False


def read_table_call(
    call: ast.Call, qualname: str, resolver: Resolver, location: str, migration: str = ""
) -> TableDecl | None:
    tablename = _str_const(call.args[0]) if call.args else None
    if tablename is None:
        return None
    columns: dict[str, ColumnDecl] = {}
    indexes: list[IndexDecl] = []
    pk = read_table_items(call.args[1:], resolver, columns, indexes)
    return TableDecl(qualname, tablename, columns, indexes, pk, location, migration)


# Class decorators that never map a class (``@registry.mapped`` and unknown ones may).
_PLAIN_DECORATORS = frozenset(
    {"dataclasses.dataclass", "functools.total_ordering", "typing.final", "typing_extensions.final"}
)


def _decorator_name(node: ast.AST, resolver: Resolver) -> str:
    """The qualified name of a decorator, called (``@dataclass(frozen=True)``) or not."""
    dotted = dotted_name(node.func if isinstance(node, ast.Call) else node)
    return resolver.qualify(dotted) if dotted else ""


class _ClassReader:
    """Reads one class body."""

    def __init__(
        self, node: ast.ClassDef, prefix: str, resolver: Resolver, path: str, migration: str
    ) -> None:
        self.node = node
        self.resolver = resolver
        self.path = path
        self.qualname = f"{prefix}.{node.name}"
        self.migration = migration
        self.tablename: str | None = None
        self.rule: str | None = None
        self.columns: dict[str, ColumnDecl] = {}
        self.indexes: list[IndexDecl] = []
        self.table_args: list[ast.AST] = []
        self.table_var: str | None = None
        self.inline: TableDecl | None = None
        self.relationships: list[RelationshipDecl] = []
        self.polymorphic_eager = False
        self.abstract = False

    def read(self) -> tuple[ClassDecl, TableDecl | None]:
        for stmt in self.node.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self._method(stmt)
            elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                self._attribute(dotted_name(stmt.targets[0]), stmt.value, None, stmt.lineno)
            elif isinstance(stmt, ast.AnnAssign):
                self._attribute(dotted_name(stmt.target), stmt.value, stmt.annotation, stmt.lineno)
        pk: list[str] | None = None
        for args in self.table_args:
            pk = read_table_items(_flatten_args(args), self.resolver, self.columns, self.indexes) or pk
        sqlmodel_table = any(
            kw.arg == "table" and isinstance(kw.value, ast.Constant) and kw.value.value is True
            for kw in self.node.keywords
        )
        written = [dotted_name(b) for b in self.node.bases]
        decorators = self.node.decorator_list
        bases = [self.resolver.qualify(d) for d in written if d]
        opaque = (
            None in written
            or any(kw.arg == "metaclass" for kw in self.node.keywords)
            or any(_decorator_name(d, self.resolver) not in _PLAIN_DECORATORS for d in decorators)
        )
        decl = ClassDecl(
            qualname=self.qualname,
            bases=bases,
            tablename=self.tablename,
            columns=self.columns,
            indexes=self.indexes,
            pk_constraint=pk,
            table_var=self.table_var,
            location=f"{self.path}:{self.node.lineno}",
            has_table_def=self.tablename is not None or self.table_var is not None,
            relationships=self.relationships,
            polymorphic_eager=self.polymorphic_eager,
            tablename_rule=self.rule,
            abstract=self.abstract,
            sqlmodel_table=sqlmodel_table,
            opaque=opaque,
            migration=self.migration,
        )
        return decl, self.inline

    def _method(self, func: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        """``declared_attr`` methods: a derived ``__tablename__``, ``__table_args__`` built by a
        classmethod, and columns or relationships declared per mapped class (mixins)."""
        if not _is_declared_attr(func):
            return
        value = _returned(func)
        if value is None:
            return
        if func.name == "__tablename__":
            literal = _str_const(value)
            if literal is not None:
                self.tablename = literal
            else:
                self.rule = tablename_rule(value)
        elif func.name == "__table_args__":
            self.table_args.append(value)
        elif isinstance(value, ast.Call) and is_relationship(value, self.resolver):
            location = f"{self.path}:{func.lineno}"
            self.relationships.append(
                read_relationship(value, self.qualname, func.name, None, self.resolver, location)
            )
        elif isinstance(value, ast.Call):
            self._column(func.name, value)

    def _column(self, key: str, call: ast.Call) -> None:
        if _short(_call_name(call, self.resolver)) in ("Column", "mapped_column", "Field"):
            read = column_from_call(call, key, self.resolver)
            if read:
                self.columns[read[0]] = read[1]

    def _attribute(
        self, target: str | None, value: ast.AST | None, annotation: ast.AST | None, line: int
    ) -> None:
        if target is None:
            return
        if value is None:
            if annotation is not None and not target.startswith("_"):
                # SQLModel and annotated declarative: ``name: str`` / ``name: Mapped[str]`` is a column
                self.columns.setdefault(target, ColumnDecl(target))
            return
        if isinstance(value, ast.Call) and is_relationship(value, self.resolver):
            location = f"{self.path}:{line}"
            self.relationships.append(
                read_relationship(value, self.qualname, target, annotation, self.resolver, location)
            )
            return
        if target == "__mapper_args__":
            self.polymorphic_eager = _polymorphic_eager(value)
        elif target == "__abstract__":
            self.abstract = isinstance(value, ast.Constant) and value.value is True
        elif target == "__tablename__":
            self.tablename = _str_const(value)
        elif target == "__table_args__":
            self.table_args.append(value)
        elif target == "__table__":
            if isinstance(value, ast.Call) and _short(_call_name(value, self.resolver)) == "Table":
                self.inline = read_table_call(
                    value, self.qualname + ".__table__", self.resolver, f"{self.path}:{line}", self.migration
                )
                self.table_var = self.qualname + ".__table__"
            else:
                dotted = dotted_name(value)
                self.table_var = self.resolver.qualify(dotted) if dotted else None
        elif isinstance(value, ast.Call):
            self._column(target, value)


def read_models(source: bytes, path: Path, root: Path, display_path: str) -> FileModels:
    """Extract model and Table declarations from one file. Raises SyntaxError on bad input."""
    if not may_declare_models(source):
        return FileModels()
    tree = parse_ast(source, display_path)
    module = module_name(path, root)
    resolver = file_resolver(tree, module, path.name == "__init__.py")
    return models_of(tree, module, resolver, display_path, migration_kind(source, path, root))


def models_of(
    tree: ast.Module, module: str, resolver: Resolver, display_path: str, migration: str
) -> FileModels:
    """The model declarations in an already parsed file."""
    models = FileModels(migration=migration)

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                decl, inline = _ClassReader(node, prefix, resolver, display_path, migration).read()
                models.classes.append(decl)
                if inline:
                    models.tables.append(inline)
                visit(node.body, f"{prefix}.{node.name}")
            elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                _module_assignment(node, prefix, module, resolver, display_path, models, migration)
            elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and prefix == module:
                _module_call(node.value, resolver, models, display_path)
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body, prefix)
                visit(getattr(node, "orelse", []), prefix)

    visit(tree.body, module)
    return models


def _module_assignment(
    node: ast.Assign | ast.AnnAssign,
    prefix: str,
    module: str,
    resolver: Resolver,
    display_path: str,
    models: FileModels,
    migration: str,
) -> None:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    value = node.value
    assert value is not None
    location = f"{display_path}:{node.lineno}"
    alias_of = dotted_name(value) if prefix == module else None
    alias_head = alias_of.partition(".")[0] if alias_of else None
    if alias_of and (alias_head in resolver.aliases or alias_head in resolver.local_names):
        models.aliases.extend(
            (f"{module}.{t.id}", resolver.qualify(alias_of)) for t in targets if isinstance(t, ast.Name)
        )
        return
    if isinstance(value, ast.Call) and len(targets) == 1 and is_relationship(value, resolver):
        owner, _, attr = (dotted_name(targets[0]) or "").rpartition(".")
        if owner and "." not in owner:
            models.relationships.append(
                read_relationship(value, resolver.qualify(owner), attr, None, resolver, location)
            )
        return
    called = _short(_call_name(value, resolver)) if isinstance(value, ast.Call) else ""
    if not isinstance(value, ast.Call):
        return
    if called == "Table":
        for tgt in targets:
            name = dotted_name(tgt)
            if name and "." not in name:
                decl = read_table_call(value, f"{prefix}.{name}", resolver, location, migration)
                if decl:
                    models.tables.append(decl)
    elif called == "SQLAlchemy" and prefix == module:
        models.flask_dbs.extend(f"{module}.{t.id}" for t in targets if isinstance(t, ast.Name))
    elif called == "Index" and prefix == module or called in ("map_imperatively", "mapper"):
        _module_call(value, resolver, models, display_path)


def _module_call(call: ast.Call, resolver: Resolver, models: FileModels, display_path: str) -> None:
    """Module-level ``Index("ix", Model.col, unique=True)`` and ``mapper(Class, table)`` /
    ``registry.map_imperatively(Class, table)``."""
    func = call.func
    called = func.attr if isinstance(func, ast.Attribute) else _short(_call_name(call, resolver))
    if called == "Index" and len(call.args) > 1:
        columns = (_element_column(arg) for arg in call.args[1:])
        owners = {(dotted_name(c) or "").rpartition(".")[0] for c in columns if c is not None}
        owners.discard("")
        if len(owners) != 1:
            return
        owner = owners.pop()
        if owner.endswith((".c", ".columns")):
            owner = owner.rsplit(".", 1)[0]
        cols = index_elements(call.args[1:], {})
        models.indexes.append(
            (resolver.qualify(owner), (_str_const(call.args[0]), cols, _kw_true(call, "unique")))
        )
    elif called in ("map_imperatively", "mapper") and len(call.args) >= 2:
        cls_name, table_name = dotted_name(call.args[0]), dotted_name(call.args[1])
        if cls_name and table_name:
            models.mappings.append((resolver.qualify(cls_name), resolver.qualify(table_name)))
