"""The model catalog: which tables the project maps, their primary keys, indexes and relationships.

It is learned from the source with a cheap ``ast`` pass over the files that can define
models, so that checking one file still knows models declared anywhere in the project.
Relationships matter because an eager-joined one (``lazy="joined"``) puts another table in the
FROM clause of every ORM load of the model, and with it into any ``FOR UPDATE`` without ``OF``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from lockorder_lint.config import DeclaredTable
from lockorder_lint.names import Resolver, dotted_name, import_aliases, module_name
from lockorder_lint.parsing import parse_ast

# A file that matches none of these cannot declare a table (or a module-level alias of a model,
# ``DbCallbackRequest = DagProcessorCallback``, by the capitalised-class convention).
MODEL_HINT = re.compile(rb"(?m)__tablename__|Table\(|__table__\s*=|^[A-Z]\w* = [A-Z][\w.]*\s*$")


@dataclass(frozen=True)
class Index:
    name: str
    columns: tuple[str, ...]
    unique: bool = False


# ``lazy=`` values that are spelled as constants other than strings (legacy SQLAlchemy forms).
_LAZY_CONSTANTS: dict[object, str] = {True: "select", False: "joined", None: "noload"}


@dataclass(frozen=True)
class Relationship:
    """A mapped relationship of a model, with the table it reaches and its default loading.

    ``lazy`` is SQLAlchemy's loader strategy name (``select``, ``joined``, ``selectin``, ``raise``,
    ``noload``...; ``unknown`` when it is not a literal). ``target`` is None when the class named
    is not in the catalog.
    """

    owner: str  # class name that has the attribute
    name: str
    target_class: str
    target: str | None
    lazy: str = "select"
    innerjoin: bool = False
    location: str = ""
    via: str = "relationship"  # relationship, backref, or with_polymorphic

    @property
    def joined(self) -> bool:
        """Loaded by a JOIN in the same SELECT as its owner, unless a query says otherwise."""
        return self.lazy == "joined"


@dataclass
class Table:
    """A database table as the project declares it. Column names are mapped attribute keys."""

    name: str
    primary_key: tuple[str, ...]
    indexes: list[Index] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)  # attribute key -> column name
    classes: list[str] = field(default_factory=list)
    locations: list[str] = field(default_factory=list)  # "path:line"
    relationships: list[Relationship] = field(default_factory=list)

    def relationship(self, name: str) -> Relationship | None:
        """The relationship mapped under attribute ``name`` on a class of this table."""
        return next((r for r in self.relationships if r.name == name), None)

    def index_for(self, predicates: Iterable[tuple[str, str]]) -> Index | None:
        """The declared index that most likely serves a WHERE clause, given (column, op) pairs.

        An index is usable for its longest leading run of constrained columns; equality counts
        more than ``IN`` or a range, and on a tie a unique index wins, as a planner would pick.
        """
        ops: dict[str, str] = {}
        for column, how in predicates:
            if ops.get(column) != "eq":
                ops[column] = how
        best: Index | None = None
        best_score = (0, False)
        for index in self.indexes:
            score = 0
            for col in index.columns:
                op: str | None = ops.get(col)
                if op is None or op == "join":
                    break
                score += 2 if op == "eq" else 1
                if op == "other":
                    break
            if score and (score, index.unique) > best_score:
                best, best_score = index, (score, index.unique)
        return best


class _RelationshipDecl(NamedTuple):
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
class _ClassDecl:
    """What one class body says, before inheritance is resolved across files."""

    qualname: str
    bases: list[str]
    tablename: str | None
    columns: dict[str, tuple[str, bool, bool, bool]]  # key -> (column name, pk, index, unique)
    indexes: list[tuple[str | None, list[str], bool]]
    pk_constraint: list[str] | None
    table_var: str | None  # ``__table__ = some_table`` or an inline Table(...)
    location: str
    has_table_def: bool = False
    relationships: list[_RelationshipDecl] = field(default_factory=list)
    polymorphic_eager: bool = False  # ``with_polymorphic`` / ``polymorphic_load="inline"``


@dataclass
class _TableDecl:
    """A ``Table("name", metadata, ...)`` assigned to a module-level (or class) name."""

    qualname: str
    tablename: str
    columns: dict[str, tuple[str, bool, bool, bool]]
    indexes: list[tuple[str | None, list[str], bool]]
    pk_constraint: list[str] | None
    location: str


@dataclass
class FileModels:
    """The model declarations of one file; cached per file, merged into a Catalog."""

    classes: list[_ClassDecl] = field(default_factory=list)
    tables: list[_TableDecl] = field(default_factory=list)
    # ``Model.attr = relationship(...)`` after the class body (Airflow does this to break cycles).
    relationships: list[_RelationshipDecl] = field(default_factory=list)
    # Module-level ``Alias = Model``: (qualified alias, qualified target).
    aliases: list[tuple[str, str]] = field(default_factory=list)


def _shared_prefix(first: str, second: str) -> int:
    """How many leading dotted parts two qualified names share."""
    count = 0
    for a, b in zip(first.split("."), second.split("."), strict=False):
        if a != b:
            break
        count += 1
    return count


def _call_name(node: ast.AST, resolver: Resolver) -> str | None:
    if isinstance(node, ast.Call):
        dotted = dotted_name(node.func)
        if dotted:
            return resolver.qualify(dotted)
    return None


def _kw_true(call: ast.Call, name: str) -> bool:
    return any(
        kw.arg == name and isinstance(kw.value, ast.Constant) and kw.value.value is True
        for kw in call.keywords
    )


def _str_const(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _column_from_call(call: ast.Call, key: str | None) -> tuple[str, tuple[str, bool, bool, bool]] | None:
    """Read ``Column(...)`` / ``mapped_column(...)``: its key, column name, and pk/index/unique flags."""
    name = _str_const(call.args[0]) if call.args else None
    for kw in call.keywords:
        if kw.arg == "name" and _str_const(kw.value):
            name = _str_const(kw.value)
    key = key or name
    if key is None:
        return None
    return key, (
        name or key,
        _kw_true(call, "primary_key"),
        _kw_true(call, "index"),
        _kw_true(call, "unique"),
    )


def _constraint_columns(call: ast.Call, names: dict[str, str]) -> list[str]:
    """Column keys named in an ``Index``/constraint, as strings or as class attributes."""
    cols: list[str] = []
    for arg in call.args:
        text = _str_const(arg)
        if text is not None:
            cols.append(names.get(text, text))
            continue
        dotted = dotted_name(arg)
        if dotted:
            cols.append(dotted.rsplit(".", 1)[-1])
    return cols


def _read_table_items(
    items: Iterable[ast.AST],
    resolver: Resolver,
    columns: dict[str, tuple[str, bool, bool, bool]],
    indexes: list[tuple[str | None, list[str], bool]],
) -> list[str] | None:
    """Read the Index/constraint/Column items of ``__table_args__`` or ``Table(...)``."""
    pk: list[str] | None = None
    by_name = {col: key for key, (col, *_rest) in columns.items()}
    for item in items:
        if isinstance(item, ast.Starred):
            continue
        qualified = _call_name(item, resolver)
        if not qualified or not isinstance(item, ast.Call):
            continue
        kind = qualified.rsplit(".", 1)[-1]
        if kind == "Column":
            read = _column_from_call(item, None)
            if read:
                columns[read[0]] = read[1]
                by_name[read[1][0]] = read[0]
        elif kind == "Index":
            index_name = _str_const(item.args[0]) if item.args else None
            cols = _constraint_columns(ast.Call(func=item.func, args=item.args[1:], keywords=[]), by_name)
            if cols:
                indexes.append((index_name, cols, _kw_true(item, "unique")))
        elif kind in ("UniqueConstraint", "PrimaryKeyConstraint"):
            cols = _constraint_columns(item, by_name)
            cname = next((_str_const(k.value) for k in item.keywords if k.arg == "name"), None)
            if kind == "PrimaryKeyConstraint":
                pk = cols
            elif cols:
                indexes.append((cname, cols, True))
    return pk


def _flatten_args(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, (ast.Tuple, ast.List)):
        out: list[ast.AST] = []
        for elt in node.elts:
            out.extend(_flatten_args(elt) if isinstance(elt, (ast.Tuple, ast.List)) else [elt])
        return out
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _flatten_args(node.left) + _flatten_args(node.right)
    return [node]


def _is_relationship(call: ast.AST, resolver: Resolver) -> bool:
    called = _call_name(call, resolver)
    return bool(called) and called.rsplit(".", 1)[-1] in ("relationship", "relation")  # type: ignore[union-attr]


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


def _read_relationship(
    call: ast.Call, owner: str, name: str, annotation: ast.AST | None, resolver: Resolver, location: str
) -> _RelationshipDecl:
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
    return _RelationshipDecl(
        owner=owner,
        name=name,
        target=target,
        by_string=by_string,
        lazy=_lazy_of(call),
        innerjoin=_innerjoin_of(call),
        location=location,
        backref=backref,
    )


def _declared_relationship(
    func: ast.FunctionDef | ast.AsyncFunctionDef, resolver: Resolver
) -> ast.Call | None:
    """``@declared_attr def rel(cls): return relationship(...)`` (mixins declare them this way)."""
    decorated = any("declared_attr" in (dotted_name(d) or "") for d in func.decorator_list)
    last = func.body[-1] if func.body else None
    value = last.value if isinstance(last, ast.Return) else None
    if decorated and isinstance(value, ast.Call) and _is_relationship(value, resolver):
        return value
    return None


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


def _read_table_call(call: ast.Call, qualname: str, resolver: Resolver, location: str) -> _TableDecl | None:
    tablename = _str_const(call.args[0]) if call.args else None
    if tablename is None:
        return None
    columns: dict[str, tuple[str, bool, bool, bool]] = {}
    indexes: list[tuple[str | None, list[str], bool]] = []
    pk = _read_table_items(call.args[1:], resolver, columns, indexes)
    return _TableDecl(qualname, tablename, columns, indexes, pk, location)


def _read_class(
    node: ast.ClassDef, module: str, resolver: Resolver, path: str
) -> tuple[_ClassDecl, _TableDecl | None]:
    tablename: str | None = None
    columns: dict[str, tuple[str, bool, bool, bool]] = {}
    indexes: list[tuple[str | None, list[str], bool]] = []
    table_args: ast.AST | None = None
    table_var: str | None = None
    inline_table: _TableDecl | None = None
    qualname = f"{module}.{node.name}"
    relationships: list[_RelationshipDecl] = []
    polymorphic_eager = False
    for stmt in node.body:
        target: str | None = None
        value: ast.AST | None = None
        annotation: ast.AST | None = None
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, value = dotted_name(stmt.targets[0]), stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            target, value, annotation = dotted_name(stmt.target), stmt.value, stmt.annotation
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            declared = _declared_relationship(stmt, resolver)
            if declared is not None:
                relationships.append(
                    _read_relationship(declared, qualname, stmt.name, None, resolver, f"{path}:{stmt.lineno}")
                )
        if target is None or value is None:
            continue
        if isinstance(value, ast.Call) and _is_relationship(value, resolver):
            relationships.append(
                _read_relationship(value, qualname, target, annotation, resolver, f"{path}:{stmt.lineno}")
            )
            continue
        if target == "__mapper_args__":
            polymorphic_eager = _polymorphic_eager(value)
        elif target == "__tablename__":
            tablename = _str_const(value)
        elif target == "__table_args__":
            table_args = value
        elif target == "__table__":
            called = _call_name(value, resolver)
            if isinstance(value, ast.Call) and called and called.rsplit(".", 1)[-1] == "Table":
                inline_table = _read_table_call(
                    value, qualname + ".__table__", resolver, f"{path}:{stmt.lineno}"
                )
                table_var = qualname + ".__table__"
            else:
                dotted = dotted_name(value)
                table_var = resolver.qualify(dotted) if dotted else None
        elif isinstance(value, ast.Call):
            called = _call_name(value, resolver) or ""
            if called.rsplit(".", 1)[-1] in ("Column", "mapped_column"):
                read = _column_from_call(value, target)
                if read:
                    columns[read[0]] = read[1]
    pk: list[str] | None = None
    if table_args is not None:
        pk = _read_table_items(_flatten_args(table_args), resolver, columns, indexes)
    bases = [resolver.qualify(d) for d in (dotted_name(b) for b in node.bases) if d]
    decl = _ClassDecl(
        qualname=qualname,
        bases=bases,
        tablename=tablename,
        columns=columns,
        indexes=indexes,
        pk_constraint=pk,
        table_var=table_var,
        location=f"{path}:{node.lineno}",
        has_table_def=tablename is not None or table_var is not None,
        relationships=relationships,
        polymorphic_eager=polymorphic_eager,
    )
    return decl, inline_table


def read_models(source: bytes, path: Path, root: Path, display_path: str) -> FileModels:
    """Extract model and Table declarations from one file. Raises SyntaxError on bad input."""
    models = FileModels()
    if not MODEL_HINT.search(source):
        return models
    tree = parse_ast(source, display_path)
    module = module_name(path, root)
    local = [
        n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
    ]
    resolver = Resolver(module, import_aliases(tree, module, path.name == "__init__.py"), local)

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                decl, inline = _read_class(node, prefix, resolver, display_path)
                models.classes.append(decl)
                if inline:
                    models.tables.append(inline)
                visit(node.body, f"{prefix}.{node.name}")
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                value = node.value
                alias_of = dotted_name(value) if value is not None and prefix == module else None
                alias_head = alias_of.partition(".")[0] if alias_of else None
                if alias_of and (alias_head in resolver.aliases or alias_head in resolver.local_names):
                    models.aliases.extend(
                        (f"{module}.{t.id}", resolver.qualify(alias_of))
                        for t in targets
                        if isinstance(t, ast.Name)
                    )
                    continue
                if isinstance(value, ast.Call) and len(targets) == 1 and _is_relationship(value, resolver):
                    owner, _, attr = (dotted_name(targets[0]) or "").rpartition(".")
                    if owner and "." not in owner:
                        models.relationships.append(
                            _read_relationship(
                                value,
                                resolver.qualify(owner),
                                attr,
                                None,
                                resolver,
                                f"{display_path}:{node.lineno}",
                            )
                        )
                    continue
                called = _call_name(value, resolver) if value is not None else None
                if isinstance(value, ast.Call) and called and called.rsplit(".", 1)[-1] == "Table":
                    for tgt in targets:
                        name = dotted_name(tgt)
                        if name and "." not in name:
                            decl_t = _read_table_call(
                                value, f"{prefix}.{name}", resolver, f"{display_path}:{node.lineno}"
                            )
                            if decl_t:
                                models.tables.append(decl_t)
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body, prefix)
                visit(getattr(node, "orelse", []), prefix)

    visit(tree.body, module)
    return models


class Catalog:
    """Every table the project declares, reachable by class or variable qualified name."""

    def __init__(self) -> None:
        self.tables: dict[str, Table] = {}
        self.by_qualname: dict[str, Table] = {}
        self.table_variables: set[str] = set()
        self._by_short: dict[str, list[str]] = {}

    @classmethod
    def build(cls, files: Iterable[FileModels], declared: dict[str, DeclaredTable] | None = None) -> Catalog:
        catalog = cls()
        classes: dict[str, _ClassDecl] = {}
        table_decls: dict[str, _TableDecl] = {}
        late_relationships: list[_RelationshipDecl] = []
        aliases: list[tuple[str, str]] = []
        for fm in files:
            for decl in fm.classes:
                classes[decl.qualname] = decl
            for tdecl in fm.tables:
                table_decls[tdecl.qualname] = tdecl
            late_relationships.extend(getattr(fm, "relationships", ()))
            aliases.extend(getattr(fm, "aliases", ()))
        for tdecl in table_decls.values():
            table = catalog._table(tdecl.tablename, tdecl.location)
            catalog._merge(table, tdecl.columns, tdecl.indexes, tdecl.pk_constraint)
            catalog._register(tdecl.qualname, table)
            catalog.table_variables.add(tdecl.qualname)
        short_classes: dict[str, list[str]] = {}
        for qualname in classes:
            short_classes.setdefault(qualname.rsplit(".", 1)[-1], []).append(qualname)

        def find_class(name: str) -> _ClassDecl | None:
            if name in classes:
                return classes[name]
            candidates = short_classes.get(name.rsplit(".", 1)[-1], [])
            return classes[candidates[0]] if len(candidates) == 1 else None

        def all_columns(decl: _ClassDecl, seen: set[str]) -> dict[str, tuple[str, bool, bool, bool]]:
            merged: dict[str, tuple[str, bool, bool, bool]] = {}
            for base in decl.bases:
                parent = find_class(base)
                if parent and parent.qualname not in seen and not parent.has_table_def:
                    merged.update(all_columns(parent, seen | {parent.qualname}))
            merged.update(decl.columns)
            return merged

        def table_of(decl: _ClassDecl, seen: set[str]) -> Table | None:
            if decl.qualname in catalog.by_qualname:
                return catalog.by_qualname[decl.qualname]
            table: Table | None = None
            if decl.table_var:
                table = catalog.by_qualname.get(decl.table_var)
                if table is None:
                    cands = catalog._by_short.get(decl.table_var.rsplit(".", 1)[-1], [])
                    table = catalog.by_qualname[cands[0]] if len(cands) == 1 else None
            elif decl.tablename:
                table = catalog._table(decl.tablename, decl.location)
                columns = all_columns(decl, {decl.qualname})
                indexes = list(decl.indexes)
                pk = decl.pk_constraint
                catalog._merge(table, columns, indexes, pk)
                if not table.primary_key:
                    for base in decl.bases:  # joined inheritance shares the parent's key
                        parent = find_class(base)
                        parent_table = (
                            table_of(parent, seen | {decl.qualname})
                            if parent and parent.qualname not in seen
                            else None
                        )
                        if parent_table and parent_table.primary_key:
                            table.primary_key = parent_table.primary_key
                            break
            else:
                for base in decl.bases:  # single-table inheritance maps to the parent's table
                    parent = find_class(base)
                    if parent and parent.qualname not in seen:
                        table = table_of(parent, seen | {decl.qualname})
                        if table:
                            break
            if table is not None:
                catalog._register(decl.qualname, table)
                if decl.qualname.rsplit(".", 1)[-1] not in table.classes:
                    table.classes.append(decl.qualname.rsplit(".", 1)[-1])
            return table

        for decl in classes.values():
            table_of(decl, {decl.qualname})
        catalog._link_relationships(classes, late_relationships, find_class)
        for alias, target in aliases:
            aliased = catalog.lookup(target)
            if aliased is not None and alias not in catalog.by_qualname:
                catalog._register(alias, aliased)
                if catalog.is_table_variable(target):
                    catalog.table_variables.add(alias)
        for name, spec in (declared or {}).items():
            table = catalog._table(name.rsplit(".", 1)[-1], "configuration")
            table.primary_key = spec.primary_key
            table.indexes.extend(Index(iname, cols) for iname, cols in spec.indexes)
            catalog._register(name, table)
        return catalog

    def _link_relationships(
        self,
        classes: dict[str, _ClassDecl],
        late: list[_RelationshipDecl],
        find_class: Callable[[str], _ClassDecl | None],
    ) -> None:
        """Give every table the relationships of the classes mapped to it (inherited ones and
        backrefs included), each with the table it reaches."""
        own: dict[str, list[_RelationshipDecl]] = {q: list(d.relationships) for q, d in classes.items()}
        for rel in late:
            owner = find_class(rel.owner)
            if owner is not None:
                own[owner.qualname].append(rel)

        def resolve(rel: _RelationshipDecl) -> _ClassDecl | None:
            if rel.target is None:
                return None
            if rel.target in classes:
                return classes[rel.target]
            short = rel.target.rsplit(".", 1)[-1]
            candidates = [q for q in classes if q.rsplit(".", 1)[-1] == short]
            if len(candidates) > 1:  # the registry nearest the owner: same module, then package
                candidates.sort(key=lambda q: -_shared_prefix(q, rel.owner))
            return classes[candidates[0]] if candidates else None

        def lineage(decl: _ClassDecl, seen: set[str]) -> list[_ClassDecl]:
            """The class and its ancestors, nearest first."""
            found = [decl]
            for base in decl.bases:
                parent = find_class(base)
                if parent is not None and parent.qualname not in seen:
                    seen.add(parent.qualname)
                    found.extend(lineage(parent, seen))
            return found

        def add(table: Table, rel: Relationship) -> None:
            if not any(
                (r.name, r.target, r.lazy) == (rel.name, rel.target, rel.lazy) for r in table.relationships
            ):
                table.relationships.append(rel)

        for decl in classes.values():
            table = self.by_qualname.get(decl.qualname)
            if table is None:
                continue
            short = decl.qualname.rsplit(".", 1)[-1]
            ancestors = lineage(decl, {decl.qualname})
            for ancestor in ancestors:
                for rel in own.get(ancestor.qualname, ()):
                    target_decl = resolve(rel)
                    target_table = self.by_qualname.get(target_decl.qualname) if target_decl else None
                    target_short = (rel.target or "?").rsplit(".", 1)[-1]
                    add(
                        table,
                        Relationship(
                            short,
                            rel.name,
                            target_short,
                            target_table.name if target_table else None,
                            rel.lazy,
                            rel.innerjoin,
                            rel.location,
                        ),
                    )
                    if rel.backref is not None and target_table is not None and ancestor is decl:
                        back_name, back_lazy, back_inner = rel.backref
                        add(
                            target_table,
                            Relationship(
                                target_short,
                                back_name,
                                short,
                                table.name,
                                back_lazy,
                                back_inner,
                                rel.location,
                                "backref",
                            ),
                        )
            if decl.has_table_def:
                for ancestor in ancestors[1:]:
                    parent_table = self.by_qualname.get(ancestor.qualname)
                    if parent_table is None or parent_table is table:
                        continue
                    if ancestor.polymorphic_eager or decl.polymorphic_eager:
                        add(
                            parent_table,
                            Relationship(
                                ancestor.qualname.rsplit(".", 1)[-1],
                                f"<{short}>",
                                short,
                                table.name,
                                "joined",
                                False,
                                decl.location,
                                "with_polymorphic",
                            ),
                        )

    def _table(self, name: str, location: str) -> Table:
        table = self.tables.get(name)
        if table is None:
            table = self.tables[name] = Table(name=name, primary_key=())
        if location not in table.locations:
            table.locations.append(location)
        return table

    def _merge(
        self,
        table: Table,
        columns: dict[str, tuple[str, bool, bool, bool]],
        indexes: list[tuple[str | None, list[str], bool]],
        pk: list[str] | None,
    ) -> None:
        for key, (colname, _pk, index, unique) in columns.items():
            table.columns.setdefault(key, colname)
            if index or unique:
                name = f"ix_{table.name}_{colname}" if index else f"{table.name}_{colname}_key"
                if not any(ix.columns == (key,) for ix in table.indexes):
                    table.indexes.append(Index(name, (key,), unique))
        for iname, cols, unique in indexes:
            keys = tuple(cols)
            if not any(ix.columns == keys for ix in table.indexes):
                table.indexes.append(Index(iname or f"{table.name}_{'_'.join(keys)}_idx", keys, unique))
        declared_pk = tuple(pk) if pk else tuple(k for k, v in columns.items() if v[1])
        if declared_pk and not table.primary_key:
            table.primary_key = declared_pk

    def _register(self, qualname: str, table: Table) -> None:
        self.by_qualname[qualname] = table
        self._by_short.setdefault(qualname.rsplit(".", 1)[-1], []).append(qualname)

    def is_table_variable(self, qualname: str) -> bool:
        """Whether ``qualname`` names a ``Table(...)`` object rather than a mapped class."""
        if qualname in self.table_variables:
            return True
        if qualname in self.by_qualname:
            return False
        short = qualname.rsplit(".", 1)[-1]
        candidates = self._by_short.get(short, [])
        return bool(candidates) and all(c in self.table_variables for c in candidates)

    def lookup(self, qualname: str) -> Table | None:
        """The table for a class or Table variable, by qualified name, else by a unique short name."""
        table = self.by_qualname.get(qualname)
        if table is not None:
            return table
        short = qualname.rsplit(".", 1)[-1]
        candidates = self._by_short.get(short, [])
        if len(candidates) == 1:
            return self.by_qualname[candidates[0]]
        if candidates:
            # Prefer a candidate in the package the name was imported from.
            package = qualname.rsplit(".", 1)[0]
            near = [c for c in candidates if c.startswith(package + ".") or c.rsplit(".", 1)[0] == package]
            if len({id(self.by_qualname[c]) for c in near}) == 1:
                return self.by_qualname[near[0]]
            if len({id(self.by_qualname[c]) for c in candidates}) == 1:
                return self.by_qualname[candidates[0]]
        return None
