"""The model catalog: which tables the project maps, their primary keys, indexes and relationships.

It merges every file's declarations (:mod:`lockorder_lint.declarations`) once per run, resolving
inheritance, mixins, derived table names and imperative mappings across files, so that checking
one file still knows models declared anywhere in the project (or in an installed package it
builds on). Where several definitions map one table name (an Alembic migration, or a helper
kept beside the migrations, re-declaring an old shape of a table), the application's definition
wins and the table says why.
Relationships matter because an eager-joined one (``lazy="joined"``) puts another table in the
FROM clause of every ORM load of the model, and with it into any ``FOR UPDATE`` without ``OF``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from lockorder_lint.config import DeclaredTable
from lockorder_lint.declarations import (
    MIGRATION_CODE,
    MODEL_HINT,
    REVISION,
    ClassDecl,
    ColumnDecl,
    FileModels,
    IndexDecl,
    RelationshipDecl,
    TableDecl,
    apply_tablename_rule,
    read_models,
)

__all__ = ["MODEL_HINT", "Catalog", "FileModels", "Index", "Relationship", "Table", "read_models"]

# Base classes that make their subclasses declarative models (besides any class with a table).
_DECLARATIVE_ROOTS = ("DeclarativeBase", "DeclarativeBaseNoMeta", "SQLModel")
# Bases that never make a class mapped: a class built on these alone is a plain class.
_PLAIN_BASES = frozenset({"object", "builtins.object", "abc.ABC"})


@dataclass(frozen=True)
class Index:
    """A declared index or unique constraint. ``columns`` holds every element in order: a column
    key, or an expression's source in parentheses, which no predicate can name (an expression in
    a unique key means equality on columns does not pin one row)."""

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
    # Columns with a foreign key: attribute key -> each ``table.column`` it references.
    foreign_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Columns with a default (``default=``/``server_default=``): set by every INSERT.
    defaulted: set[str] = field(default_factory=set)
    # Which definition the catalog took, and which it set aside (migration stubs, external copies).
    definition: str = ""
    ignored: list[str] = field(default_factory=list)

    def references(self) -> list[tuple[str, str]]:
        """(column key, the ``table.column`` it references) for every foreign key of the table."""
        return [(key, target) for key, targets in self.foreign_keys.items() for target in targets]

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
                if op is None or op in ("join", "not"):  # a negated condition cannot seek
                    break
                score += 2 if op == "eq" else 1
                if op == "other":
                    break
            if score and (score, index.unique) > best_score:
                best, best_score = index, (score, index.unique)
        return best


def _index_name(table: str, elements: Iterable[str]) -> str:
    """The name PostgreSQL gives an unnamed index, from its plain columns (``expr`` for others)."""
    return f"{table}_{'_'.join(e if not e.startswith('(') else 'expr' for e in elements)}_idx"


def _shared_prefix(first: str, second: str) -> int:
    """How many leading dotted parts two qualified names share."""
    count = 0
    for a, b in zip(first.split("."), second.split("."), strict=False):
        if a != b:
            break
        count += 1
    return count


@dataclass
class _Definition:
    """One declaration of a table (a mapped class or a Table object), ready to merge."""

    name: str
    columns: dict[str, ColumnDecl]
    indexes: list[IndexDecl]
    pk: list[str] | None
    location: str
    migration: str  # "", REVISION or MIGRATION_CODE
    external: bool
    what: str


# Where a definition was read: (what ``tables`` calls the chosen one, why one is set aside).
_SOURCE_OF = {
    "": ("the application", "another application definition"),
    REVISION: ("a migration", "a migration stub"),
    MIGRATION_CODE: (
        "code under a migrations directory",
        "code under a migrations directory (a migration helper, not the application's model)",
    ),
    "external": ("an installed package", "an installed package's copy"),
}


def _source(definition: _Definition) -> str:
    return "external" if definition.external else definition.migration


def _tier(definition: _Definition) -> tuple[bool, bool]:
    """Precedence: the project's application code, then anything under its migrations
    (revisions and the helpers beside them alike), then installed packages."""
    return definition.external, bool(definition.migration)


class _Classes:
    """All class declarations, with lookups by name and the inheritance questions the catalog asks."""

    def __init__(self, classes: dict[str, ClassDecl], flask_dbs: set[str], bases: set[str]) -> None:
        self.classes = classes
        self.flask_dbs = flask_dbs
        self.declarative_vars = bases
        self.short: dict[str, list[str]] = {}
        for qualname in classes:
            self.short.setdefault(qualname.rsplit(".", 1)[-1], []).append(qualname)
        self._unmapped: dict[str, bool] = {}

    def find(self, name: str) -> ClassDecl | None:
        if name in self.classes:
            return self.classes[name]
        candidates = self.short.get(name.rsplit(".", 1)[-1], [])
        return self.classes[candidates[0]] if len(candidates) == 1 else None

    def lineage(self, decl: ClassDecl) -> list[ClassDecl]:
        """The class and its ancestors, nearest first (depth first, in base order)."""
        found: list[ClassDecl] = []
        seen: set[str] = set()

        def walk(current: ClassDecl) -> None:
            if current.qualname in seen:
                return
            seen.add(current.qualname)
            found.append(current)
            for base in current.bases:
                parent = self.find(base)
                if parent is not None:
                    walk(parent)

        walk(decl)
        return found

    def is_root(self, base: str) -> bool:
        """A base that makes subclasses declarative: SQLAlchemy's DeclarativeBase, SQLModel,
        a ``declarative_base()`` variable, Flask-SQLAlchemy's ``db.Model``."""
        short = base.rsplit(".", 1)[-1]
        if short in _DECLARATIVE_ROOTS and base.split(".", 1)[0] in ("sqlalchemy", "sqlmodel"):
            return True
        if base in self.declarative_vars:
            return True
        owner, _, attr = base.rpartition(".")
        return attr == "Model" and (owner in self.flask_dbs or owner.startswith("flask_sqlalchemy"))

    def flask(self, decl: ClassDecl) -> bool:
        return any(
            base.rpartition(".")[2] == "Model"
            and (base.rpartition(".")[0] in self.flask_dbs or base.startswith("flask_sqlalchemy"))
            for ancestor in self.lineage(decl)
            for base in ancestor.bases
        )

    def declarative(self, decl: ClassDecl) -> bool:
        """The class descends from a declarative root (and is not that root's direct stand-in)."""
        return any(self.is_root(base) for ancestor in self.lineage(decl) for base in ancestor.bases)

    def unmapped(self, decl: ClassDecl) -> bool:
        """Provably a plain class, never mapped itself (a mixin such as Flask-AppBuilder's
        ``UserExtensionMixin(object)`` with a ``__tablename__``): every base is ``object`` or a
        class read by its exact name that is plain too. A base that cannot be read (a
        ``declarative_base()`` variable, a re-exported or uninstalled name) leaves the class
        possibly mapped, as do decorators, metaclasses and base expressions."""
        known = self._unmapped.get(decl.qualname)
        if known is not None:
            return known
        self._unmapped[decl.qualname] = False  # an inheritance cycle proves nothing
        plain = not (decl.opaque or decl.sqlmodel_table) and all(
            base in _PLAIN_BASES
            or (not self.is_root(base) and base in self.classes and self.unmapped(self.classes[base]))
            for base in decl.bases
        )
        self._unmapped[decl.qualname] = plain
        return plain

    def inherited_tablename(self, decl: ClassDecl) -> str | None:
        """A ``__tablename__`` a mapped class takes from a plain mixin, found (as Python finds the
        attribute) before any base that is, or may be, mapped."""
        for ancestor in self.lineage(decl)[1:]:
            if not self.unmapped(ancestor):
                return None
            if ancestor.tablename is not None:
                return ancestor.tablename
        return None

    def is_base_class(self, decl: ClassDecl) -> bool:
        """``class Base(DeclarativeBase)``: the registry itself, never mapped."""
        return (
            any(self.is_root(base) for base in decl.bases)
            and not decl.has_table_def
            and not any(col.primary_key for col in decl.columns.values())
        )

    def columns(self, decl: ClassDecl) -> dict[str, ColumnDecl]:
        """Columns from the class and from its mixins and unmapped bases (nearest wins)."""
        merged: dict[str, ColumnDecl] = {}
        for ancestor in reversed(self.lineage(decl)):
            if ancestor is not decl and ancestor.has_table_def and not self.unmapped(ancestor):
                continue
            merged.update(ancestor.columns)
        return merged

    def table_args(self, decl: ClassDecl) -> tuple[list[IndexDecl], list[str] | None]:
        """Indexes and a key constraint from ``__table_args__``, the nearest class's that has them."""
        for ancestor in self.lineage(decl):
            if ancestor is not decl and ancestor.has_table_def and not self.unmapped(ancestor):
                break
            if ancestor.indexes or ancestor.pk_constraint:
                return list(ancestor.indexes), ancestor.pk_constraint
        return [], None

    def derived_name(self, decl: ClassDecl) -> str | None:
        """A table name the class gets without writing one: a ``declared_attr`` rule on it or an
        ancestor, SQLModel's lowercase name, Flask-SQLAlchemy's snake_case name."""
        short = decl.qualname.rsplit(".", 1)[-1]
        if decl.sqlmodel_table:
            return decl.tablename or short.lower()
        for ancestor in self.lineage(decl):
            if ancestor.tablename_rule:
                return apply_tablename_rule(ancestor.tablename_rule, short)
            if ancestor is not decl and ancestor.tablename is not None:
                return None  # an explicit name up the tree: single-table inheritance
        if self.flask(decl):
            return apply_tablename_rule("flask", short)
        return None


class Catalog:
    """Every table the project declares, reachable by class or variable qualified name."""

    def __init__(self) -> None:
        self.tables: dict[str, Table] = {}
        self.by_qualname: dict[str, Table] = {}
        self.table_variables: set[str] = set()
        self._by_short: dict[str, list[str]] = {}

    @classmethod
    def build(
        cls,
        files: Iterable[FileModels],
        declared: dict[str, DeclaredTable] | None = None,
        external: Iterable[FileModels] = (),
    ) -> Catalog:
        """Merge declarations: ``files`` are the project's, ``external`` those of installed
        packages the project builds on (their definitions yield to the project's)."""
        catalog = cls()
        classes: dict[str, ClassDecl] = {}
        table_decls: dict[str, tuple[TableDecl, bool]] = {}
        late: list[RelationshipDecl] = []
        aliases: list[tuple[str, str]] = []
        mappings: list[tuple[str, str]] = []
        loose_indexes: list[tuple[str, IndexDecl]] = []
        flask_dbs: set[str] = set()
        outside: set[str] = set()
        for is_external, group in ((True, external), (False, files)):
            for fm in group:
                for decl in fm.classes:
                    classes[decl.qualname] = decl
                    if is_external:
                        outside.add(decl.qualname)
                for tdecl in fm.tables:
                    table_decls[tdecl.qualname] = (tdecl, is_external)
                late.extend(fm.relationships)
                aliases.extend(fm.aliases)
                mappings.extend(fm.mappings)
                loose_indexes.extend(fm.indexes)
                flask_dbs.update(fm.flask_dbs)
        known = _Classes(classes, flask_dbs, set())

        definitions: dict[str, list[_Definition]] = {}
        table_of_var: dict[str, str] = {}
        for qualname, (tdecl, is_external) in table_decls.items():
            table_of_var[qualname] = tdecl.tablename
            definitions.setdefault(tdecl.tablename, []).append(
                _Definition(
                    tdecl.tablename, tdecl.columns, tdecl.indexes, tdecl.pk_constraint, tdecl.location,
                    tdecl.migration, is_external, f"Table at {tdecl.location}",
                )
            )  # fmt: skip
        class_table: dict[str, str] = {}
        for decl in classes.values():
            name = catalog._class_table_name(decl, known, table_of_var, classes)
            if name is None:
                continue
            class_table[decl.qualname] = name
            if decl.table_var:
                continue  # the Table object is the definition
            indexes, pk = known.table_args(decl)
            short = decl.qualname.rsplit(".", 1)[-1]
            definitions.setdefault(name, []).append(
                _Definition(
                    name, known.columns(decl), indexes, pk, decl.location, decl.migration,
                    decl.qualname in outside, f"model {short} at {decl.location}",
                )
            )  # fmt: skip
        for class_name, var in mappings:
            var_table = table_of_var.get(var) or next(
                (t for q, t in table_of_var.items() if q.rsplit(".", 1)[-1] == var.rsplit(".", 1)[-1]), None
            )
            if var_table is not None:
                class_table.setdefault(class_name, var_table)

        for name, defs in definitions.items():
            catalog._define(name, defs)
        for qualname, name in table_of_var.items():
            catalog._register(qualname, catalog.tables[name])
            catalog.table_variables.add(qualname)
        for qualname, name in class_table.items():
            table = catalog.tables.get(name)
            if table is None:
                continue
            catalog._register(qualname, table)
            short = qualname.rsplit(".", 1)[-1]
            if short not in table.classes:
                table.classes.append(short)
        # Joined inheritance: a subclass table without a key of its own shares its parent's.
        for qualname in class_table:
            table = catalog.by_qualname.get(qualname)
            subclass = classes.get(qualname)
            if table is None or subclass is None or table.primary_key:
                continue
            for ancestor in known.lineage(subclass)[1:]:
                parent = catalog.by_qualname.get(ancestor.qualname)
                if parent is not None and parent.primary_key:
                    table.primary_key = parent.primary_key
                    break
        for owner, (iname, cols, unique) in loose_indexes:
            table = catalog.lookup(owner)
            if table is not None and cols and not any(ix.columns == tuple(cols) for ix in table.indexes):
                table.indexes.append(Index(iname or _index_name(table.name, cols), tuple(cols), unique))
        catalog._link_relationships(classes, late, known.find)
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
            table.definition = (
                table.definition or "declared in the configuration ([tool.lockorder-lint.tables])"
            )
            catalog._register(name, table)
        return catalog

    def _class_table_name(
        self, decl: ClassDecl, known: _Classes, table_of_var: dict[str, str], classes: dict[str, ClassDecl]
    ) -> str | None:
        """The table a class maps to: its own name or Table, a derived name, or (single-table
        inheritance) its nearest mapped ancestor's; None for mixins, bases and abstract classes.
        A plain mixin's ``__tablename__`` names the table of each mapped class that inherits it."""
        if decl.abstract or known.unmapped(decl):
            return None
        if decl.tablename:
            return decl.tablename
        inherited = known.inherited_tablename(decl)
        if inherited is not None and not decl.table_var:
            return inherited
        if decl.table_var:
            var = decl.table_var
            if var in table_of_var:
                return table_of_var[var]
            short = var.rsplit(".", 1)[-1]
            matches = [t for q, t in table_of_var.items() if q.rsplit(".", 1)[-1] == short]
            return matches[0] if len(set(matches)) == 1 else None
        if known.is_base_class(decl):
            return None
        lineage = known.lineage(decl)
        own_key = any(col.primary_key for col in decl.columns.values()) or bool(decl.pk_constraint)
        mapped_parent = next(
            (
                a
                for a in lineage[1:]
                if not a.abstract
                and (a.has_table_def or a.sqlmodel_table)
                and not known.is_base_class(a)
                and not known.unmapped(a)
            ),
            None,
        )
        if mapped_parent is not None and not own_key and not decl.sqlmodel_table:
            return self._class_table_name(mapped_parent, known, table_of_var, classes)
        if decl.sqlmodel_table or known.declarative(decl) or any(a.tablename_rule for a in lineage):
            has_key = any(col.primary_key for col in known.columns(decl).values()) or bool(
                known.table_args(decl)[1]
            )
            if has_key or mapped_parent is not None:
                return known.derived_name(decl)
        return None

    def _define(self, name: str, defs: list[_Definition]) -> None:
        """Build one table from its definitions: the project's application code first, then
        migrations, then installed packages; lesser ones only fill what the winners leave open."""
        ranked = sorted(defs, key=_tier)
        chosen = [d for d in ranked if _tier(d) == _tier(ranked[0])]
        table = self._table(name, chosen[0].location)
        for definition in chosen:
            self._merge(table, definition.columns, definition.indexes, definition.pk)
            if definition.location not in table.locations:
                table.locations.append(definition.location)
        table.definition = f"{chosen[0].what} ({_SOURCE_OF[_source(chosen[0])][0]})"
        for definition in ranked[len(chosen) :]:
            table.ignored.append(f"{definition.what}: {_SOURCE_OF[_source(definition)][1]}")

    def _link_relationships(
        self,
        classes: dict[str, ClassDecl],
        late: list[RelationshipDecl],
        find_class: Callable[[str], ClassDecl | None],
    ) -> None:
        """Give every table the relationships of the classes mapped to it (inherited ones and
        backrefs included), each with the table it reaches."""
        own: dict[str, list[RelationshipDecl]] = {q: list(d.relationships) for q, d in classes.items()}
        for rel in late:
            owner = find_class(rel.owner)
            if owner is not None:
                own[owner.qualname].append(rel)

        def resolve(rel: RelationshipDecl) -> ClassDecl | None:
            if rel.target is None:
                return None
            if rel.target in classes:
                return classes[rel.target]
            short = rel.target.rsplit(".", 1)[-1]
            candidates = [q for q in classes if q.rsplit(".", 1)[-1] == short]
            if len(candidates) > 1:  # the registry nearest the owner: same module, then package
                candidates.sort(key=lambda q: -_shared_prefix(q, rel.owner))
            return classes[candidates[0]] if candidates else None

        def lineage(decl: ClassDecl, seen: set[str]) -> list[ClassDecl]:
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
        columns: dict[str, ColumnDecl],
        indexes: list[IndexDecl],
        pk: list[str] | None,
    ) -> None:
        for key, column in columns.items():
            table.columns.setdefault(key, column.name)
            if column.foreign_keys and key not in table.foreign_keys:
                table.foreign_keys[key] = column.foreign_keys
            if column.defaulted:
                table.defaulted.add(key)
            if column.indexed or column.unique:
                name = (
                    f"ix_{table.name}_{column.name}" if column.indexed else f"{table.name}_{column.name}_key"
                )
                if not any(ix.columns == (key,) for ix in table.indexes):
                    table.indexes.append(Index(name, (key,), column.unique))
        for iname, cols, unique in indexes:
            keys = tuple(cols)
            if not any(ix.columns == keys for ix in table.indexes):
                table.indexes.append(Index(iname or _index_name(table.name, keys), keys, unique))
        declared_pk = tuple(pk) if pk else tuple(k for k, v in columns.items() if v.primary_key)
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
        package = qualname.rsplit(".", 1)[0]
        # A Table variable (``tables = Table("TABLES", ...)``) is found by its short name only
        # from its own module: elsewhere ``cls.tables`` is some dict or set of that name.
        candidates = [
            c
            for c in self._by_short.get(short, [])
            if c not in self.table_variables or c.rsplit(".", 1)[0] == package
        ]
        if len(candidates) == 1:
            return self.by_qualname[candidates[0]]
        if candidates:
            # Prefer a candidate in the package the name was imported from.
            near = [c for c in candidates if c.startswith(package + ".") or c.rsplit(".", 1)[0] == package]
            if len({id(self.by_qualname[c]) for c in near}) == 1:
                return self.by_qualname[near[0]]
            if len({id(self.by_qualname[c]) for c in candidates}) == 1:
                return self.by_qualname[candidates[0]]
        return None
