"""The statement model: what a SQLAlchemy statement built inside one function locks, and how.

An evaluator walks a function's libcst tree in source order, follows statement builders through
method chains and local reassignments, and records every statement the function executes (or
otherwise hands on) as a frozen :class:`Statement`. Rules read those; they never walk code.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import libcst as cst
from libcst.metadata import CodeRange

from lockorder_lint.catalog import Catalog, Table
from lockorder_lint.names import Resolver, is_sqlalchemy

EQ, IN, OTHER, JOIN = "eq", "in", "other", "join"
_ids = itertools.count(1)


class Span:
    """A source range, 1-based lines and columns, in the coordinates of the whole file.

    Positions are computed lazily: libcst derives them by generating code for the whole
    function, which costs as much as parsing it, and most statements are never reported.
    """

    __slots__ = ("_resolve", "_value")

    def __init__(self, resolve: Callable[[], tuple[int, int, int, int]]) -> None:
        self._resolve: Callable[[], tuple[int, int, int, int]] | None = resolve
        self._value: tuple[int, int, int, int] | None = None

    @classmethod
    def fixed(cls, line: int, column: int, end_line: int, end_column: int) -> Span:
        return cls(lambda: (line, column, end_line, end_column))

    @property
    def value(self) -> tuple[int, int, int, int]:
        if self._value is None:
            assert self._resolve is not None
            self._value, self._resolve = self._resolve(), None
        return self._value

    line = property(lambda self: self.value[0])
    column = property(lambda self: self.value[1])
    end_line = property(lambda self: self.value[2])
    end_column = property(lambda self: self.value[3])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Span) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return f"Span{self.value}"


@dataclass(frozen=True)
class Predicate:
    """One column the WHERE clause reaches rows through, and how (eq, in, other, join)."""

    table: str
    column: str
    op: str


@dataclass(frozen=True)
class LockClause:
    """A ``FOR UPDATE``-style row lock and its options."""

    span: Span
    read: bool = False
    skip_locked: bool = False
    nowait: bool = False
    of: tuple[str, ...] | None = None
    via: str = "with_for_update"

    @property
    def non_blocking(self) -> bool:
        return self.skip_locked or self.nowait


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
_COLUMN_OPTIONS = frozenset(
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
    """One state of a statement builder. Each builder call yields a new state."""

    kind: str  # select, update, delete, insert, query, get
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
    source: Callable[[], str] | None = field(default=None, compare=False, repr=False)
    id: int = field(default_factory=lambda: next(_ids), compare=False)
    parent: int | None = field(default=None, compare=False)

    def derive(self, **changes: object) -> Statement:
        return replace(self, id=next(_ids), parent=self.id, **changes)  # type: ignore[arg-type]

    @property
    def statement_text(self) -> str:
        """The whitespace-normalised source of the statement that built this one (for baselines)."""
        return self.source() if self.source is not None else ""

    @property
    def table_name(self) -> str | None:
        return self.target.name if self.target else None

    def columns_on_target(self) -> list[str]:
        """Columns of the target table the WHERE clause uses, in order of first appearance."""
        seen: list[str] = []
        for pred in self.predicates:
            if self.target and pred.table == self.target.name and pred.column not in seen:
                seen.append(pred.column)
        return seen

    def pins_primary_key(self) -> bool:
        """True when every primary-key column is ``==`` or ``in_`` in a top-level conjunct."""
        if not self.target or not self.target.primary_key:
            return False
        pinned = {p.column for p in self.predicates if p.table == self.target.name and p.op in (EQ, IN)}
        return all(col in pinned for col in self.target.primary_key)

    def pins_single_row(self) -> bool:
        """True when ``==`` on every column of a declared unique key: at most one row, one lock."""
        if not self.target:
            return False
        equal = {p.column for p in self.predicates if p.table == self.target.name and p.op == EQ}
        return any(index.unique and set(index.columns) <= equal for index in self.target.indexes)

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


@dataclass
class Unit:
    """One function (or method) as the rules see it: its libcst node, the statements it
    executes in source order, and how to turn its nodes into file positions and names."""

    qualname: str
    node: cst.FunctionDef
    evaluator: FunctionEvaluator

    @functools.cached_property
    def statements(self) -> list[Statement]:
        """Followed on first use: a rule that walks the function itself (LCK003) never pays for it."""
        return self.evaluator.run(self.node)

    def span(self, start: cst.CSTNode, end: cst.CSTNode | None = None) -> Span:
        """The file span from ``start`` to the end of ``end`` (or of ``start``)."""
        return self.evaluator.span(start, end)

    def qualify(self, node: cst.BaseExpression) -> str | None:
        """The qualified name of a dotted expression whose head is imported or module-level."""
        return self.evaluator.qualify(node)

    def text(self, node: cst.CSTNode) -> str:
        """The node's source, whitespace-normalised."""
        return self.evaluator.text(node)

    @property
    def is_async(self) -> bool:
        return self.node.asynchronous is not None


def nested_functions(function: cst.FunctionDef) -> list[cst.FunctionDef]:
    """Functions defined in ``function``'s blocks (not inside classes or nested functions),
    in source order. Walks statement fields only: libcst's ``children`` is costly."""
    found: list[cst.FunctionDef] = []
    stack: list[cst.CSTNode | None] = [function.body]
    while stack:
        node = stack.pop()
        if node is None or isinstance(
            node, (cst.ClassDef, cst.SimpleStatementLine, cst.SimpleStatementSuite)
        ):
            continue
        if isinstance(node, cst.FunctionDef):
            found.append(node)
        elif isinstance(node, cst.IndentedBlock):
            stack.extend(reversed(node.body))
        elif isinstance(node, (cst.Try, cst.TryStar)):
            stack.extend([node.finalbody, node.orelse, *reversed(node.handlers), node.body])
        elif isinstance(node, cst.Match):
            stack.extend(reversed(node.cases))
        else:  # If, For, While, With, Else, Finally, ExceptHandler, MatchCase
            stack.extend([getattr(node, "orelse", None), getattr(node, "body", None)])
    return found


# Builder methods that do not change which rows are reached or how they are locked. Any other
# method on a statement (``all``, ``scalars``, ``subquery``...) hands the statement on: it is used.
_PASSTHROUGH = frozenset(
    {
        "values", "execution_options", "options", "returning", "params", "correlate",
        "correlate_except", "distinct", "group_by", "having", "offset", "prefix_with",
        "suffix_with", "with_hint", "ordered_values", "inline", "add_columns",
        "with_only_columns", "enable_eagerloads", "populate_existing", "set_label_style",
        "autoflush", "reduce_columns", "with_statement_hint", "with_entities", "add_entity",
        "with_parent",
    }
)  # fmt: skip
_ORIGIN_METHODS = frozenset({"update", "delete", "select", "insert"})
# Keyword names under which a lock helper may receive its statement (Airflow's is ``query``).
_HELPER_STATEMENT_KEYWORDS = frozenset({"query", "statement", "stmt", "select"})


def dotted_name(node: cst.CSTNode) -> str | None:
    """``session``, ``TI.dag_id``: the dotted text of a plain name chain, else None."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        inner = dotted_name(node.value)
        return f"{inner}.{node.attr.value}" if inner else None
    return None


def _kw(call: cst.Call, name: str) -> cst.BaseExpression | None:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg.value
    return None


def _truthy(node: cst.BaseExpression | None) -> bool:
    """A keyword argument that is plainly on: ``True`` or a non-false literal."""
    if node is None:
        return False
    if isinstance(node, cst.Name):
        return node.value not in ("False", "None")
    if isinstance(node, cst.Integer):
        return node.value not in ("0",)
    return True


def _positional(call: cst.Call) -> list[cst.Arg]:
    return [a for a in call.args if a.keyword is None and not a.star]


class FunctionEvaluator:
    """Follow SQLAlchemy statement builders through one function body."""

    def __init__(
        self,
        *,
        resolver: Resolver,
        catalog: Catalog,
        lock_helpers: frozenset[str],
        position: Callable[[cst.CSTNode], CodeRange],
        line_offset: int,
        code_for: Callable[[cst.CSTNode], str],
        class_qualname: str | None,
    ) -> None:
        self.resolver = resolver
        self.catalog = catalog
        self.lock_helpers = lock_helpers
        self._position = position
        self.line_offset = line_offset
        self._code_for = code_for
        self.class_qualname = class_qualname
        self.env: dict[str, tuple[Statement, ...]] = {}
        self.lists: dict[str, list[cst.BaseExpression]] = {}
        self.consumed: list[Statement] = []
        self.covered: set[int] = set()
        self.parents: dict[int, int | None] = {}
        self.current_statement: cst.CSTNode | None = None

    # -- positions and names ------------------------------------------------------------------

    def span(self, start: cst.CSTNode, end: cst.CSTNode | None = None) -> Span:
        def resolve() -> tuple[int, int, int, int]:
            first = self._position(start)
            last = self._position(end) if end is not None else first
            return (
                first.start.line + self.line_offset,
                first.start.column + 1,
                last.end.line + self.line_offset,
                last.end.column + 1,
            )

        return Span(resolve)

    def qualify(self, node: cst.BaseExpression) -> str | None:
        """The qualified name of a dotted expression, if its head is imported or module-level."""
        dotted = dotted_name(node)
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        if head == "cls" and self.class_qualname:
            return f"{self.class_qualname}.{rest}" if rest else self.class_qualname
        if head in self.resolver.aliases or head in self.resolver.local_names:
            return self.resolver.qualify(dotted)
        return None

    def entity(self, node: cst.BaseExpression) -> tuple[Table | None, str | None]:
        """Resolve a model, ``Model.__table__``, a Table variable, or a column of one of them."""
        if isinstance(node, cst.Call) and isinstance(node.func, (cst.Name, cst.Attribute)):
            name = self.qualify(node.func)
            if name and is_sqlalchemy(name, "aliased") and node.args:
                return self.entity(node.args[0].value)
            return None, None
        qualified = self.qualify(node)
        if qualified is None:
            return None, None
        table = self.catalog.lookup(qualified)
        if table is not None:
            return table, None
        if qualified.endswith(".__table__"):
            return self.catalog.lookup(qualified[: -len(".__table__")]), None
        base, _, attr = qualified.rpartition(".")
        for suffix in (".c", ".columns", ".__table__.c"):
            if base.endswith(suffix):
                owner = base[: -len(suffix)]
                table = self.catalog.lookup(owner)
                if table is not None:
                    return table, attr
        if base:
            table = self.catalog.lookup(base)
            if table is not None and not attr.startswith("_"):
                return table, attr
        return None, None

    # -- consumption ---------------------------------------------------------------------------

    def consume(self, states: Iterable[Statement]) -> None:
        for state in states:
            self.consumed.append(state)
            current: int | None = state.id
            while current is not None and current not in self.covered:
                self.covered.add(current)
                current = self.parents.get(current)

    def new(self, state: Statement) -> Statement:
        self.parents[state.id] = state.parent
        if state.source is None and self.current_statement is not None:
            node = self.current_statement
            state = replace(state, source=lambda: self.text(node))
            self.parents[state.id] = state.parent
        return state

    def finish(self) -> list[Statement]:
        """Statements recorded in source order; built-but-never-used ones count as used at the end."""
        for states in self.env.values():
            self.consume(s for s in states if s.id not in self.covered)
        seen: set[tuple[int, int, int]] = set()
        ordered: list[Statement] = []
        for state in self.consumed:
            # Spans are shared by every state derived from the same node: identity is enough.
            key = (id(state.span), id(state.lock.span) if state.lock else 0, id(state.write))
            if key not in seen:
                seen.add(key)
                ordered.append(state)
        return ordered

    # -- statements ----------------------------------------------------------------------------

    def run(self, function: cst.FunctionDef) -> list[Statement]:
        self.block(function.body)
        return self.finish()

    def block(self, body: cst.BaseSuite) -> None:
        items: Sequence[cst.CSTNode] = body.body if isinstance(body, cst.IndentedBlock) else [body]
        for stmt in items:
            self.statement(stmt)

    def _branches(self, branches: Sequence[cst.CSTNode], may_skip: bool) -> None:
        """Evaluate alternative blocks from the same state; afterwards a name may hold any of
        the statements it held at the end of any branch (or before, if all can be skipped)."""
        start = dict(self.env)
        results: list[dict[str, tuple[Statement, ...]]] = [start] if may_skip else []
        for branch in branches:
            self.env = dict(start)
            if isinstance(branch, cst.BaseSuite):
                self.block(branch)
            else:
                self.statement(branch)  # an ``elif``
            results.append(self.env)
        merged: dict[str, tuple[Statement, ...]] = {}
        for env in results:
            for name, states in env.items():
                existing = merged.get(name, ())
                merged[name] = existing + tuple(s for s in states if s not in existing)
        self.env = {k: v[:8] for k, v in merged.items()}

    def statement(self, stmt: cst.CSTNode) -> None:
        if isinstance(stmt, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
            for small in stmt.body:
                self.current_statement = small
                self.small(small)
            self.current_statement = None
        elif isinstance(stmt, cst.FunctionDef):
            return  # analysed as a unit of its own
        elif isinstance(stmt, cst.ClassDef):
            return
        elif isinstance(stmt, cst.If):
            self.current_statement = stmt.test
            self.consume(self.eval(stmt.test))
            orelse = stmt.orelse
            branches: list[cst.CSTNode] = [stmt.body]
            if orelse is not None:
                branches.append(orelse if isinstance(orelse, cst.If) else orelse.body)
            self._branches(branches, may_skip=orelse is None)
        elif isinstance(stmt, (cst.For, cst.While)):
            head = stmt.iter if isinstance(stmt, cst.For) else stmt.test
            self.current_statement = head
            self.consume(self.eval(head))
            if isinstance(stmt, cst.For):
                self.unbind(stmt.target)
            self._branches([stmt.body], may_skip=True)
            if stmt.orelse is not None:
                self.block(stmt.orelse.body)
        elif isinstance(stmt, (cst.Try, cst.TryStar)):
            self.block(stmt.body)
            handlers: list[cst.CSTNode] = [h.body for h in stmt.handlers]
            if stmt.orelse is not None:
                handlers.append(stmt.orelse.body)
            self._branches(handlers, may_skip=True)
            if stmt.finalbody is not None:
                self.block(stmt.finalbody.body)
        elif isinstance(stmt, cst.With):
            for item in stmt.items:
                self.current_statement = item
                states = self.eval(item.item)
                if item.asname is not None:
                    self.bind(item.asname.name, states)
                else:
                    self.consume(states)
            self.block(stmt.body)
        elif isinstance(stmt, cst.Match):
            self.consume(self.eval(stmt.subject))
            self._branches([c.body for c in stmt.cases], may_skip=True)
        else:
            for child in stmt.children:
                if isinstance(child, cst.BaseSuite):
                    self.block(child)

    def bind(
        self, target: cst.BaseExpression | cst.BaseAssignTargetExpression, states: tuple[Statement, ...]
    ) -> None:
        if isinstance(target, cst.Name):
            self.lists.pop(target.value, None)
            if states:
                self.env[target.value] = states
            else:
                self.env.pop(target.value, None)
        else:
            self.consume(states)
            self.unbind(target)

    def unbind(self, target: cst.CSTNode) -> None:
        if isinstance(target, cst.Name):
            self.env.pop(target.value, None)
            self.lists.pop(target.value, None)
        for child in target.children:
            if isinstance(child, (cst.Name, cst.Tuple, cst.List, cst.Element, cst.StarredElement)):
                self.unbind(child)

    def small(self, node: cst.BaseSmallStatement) -> None:
        if isinstance(node, cst.Assign):
            value = node.value
            states = self.eval(value)
            for assign_target in node.targets:
                self.bind(assign_target.target, states)
            first = node.targets[0].target
            if (
                len(node.targets) == 1
                and isinstance(first, cst.Name)
                and isinstance(value, (cst.List, cst.Tuple))
            ):
                self.lists[first.value] = [e.value for e in value.elements if isinstance(e, cst.Element)]
        elif isinstance(node, cst.AnnAssign):
            states = self.eval(node.value) if node.value is not None else ()
            self.bind(node.target, states)
        elif isinstance(node, cst.AugAssign):
            self.consume(self.eval(node.value))
            self.unbind(node.target)
        else:
            self.consume(self.eval(node))

    # -- expressions ---------------------------------------------------------------------------

    def eval(self, node: cst.CSTNode) -> tuple[Statement, ...]:
        """The builder states ``node`` evaluates to; anything else it contains is consumed."""
        if isinstance(node, cst.Call):
            return self.call(node)
        if isinstance(node, cst.Name):
            return self.env.get(node.value, ())
        if isinstance(node, cst.Await):
            return self.eval(node.expression)
        if isinstance(node, cst.IfExp):
            self.consume(self.eval(node.test))
            return self.eval(node.body) + self.eval(node.orelse)
        if isinstance(node, (cst.Lambda, cst.FunctionDef, cst.ClassDef)):
            return ()
        for child in node.children:
            self.consume(self.eval(child))
        return ()

    def _consume_args(self, call: cst.Call) -> None:
        for arg in call.args:
            self.consume(self.eval(arg.value))

    def call(self, node: cst.Call) -> tuple[Statement, ...]:
        func = node.func
        if isinstance(func, cst.Attribute):
            method = func.attr.value
            if (
                method in ("append", "extend")
                and isinstance(func.value, cst.Name)
                and func.value.value in self.lists
            ):
                bucket = self.lists[func.value.value]
                for arg in _positional(node):
                    if method == "append":
                        bucket.append(arg.value)
                    elif isinstance(arg.value, (cst.List, cst.Tuple)):
                        bucket.extend(e.value for e in arg.value.elements if isinstance(e, cst.Element))
                return ()
            receiver = self.eval(func.value)
            if receiver:
                return self.method(receiver, method, node)
            origin = self.attribute_origin(func, method, node)
            if origin is not None:
                return origin
        qualified = self.qualify(func) if isinstance(func, (cst.Name, cst.Attribute)) else None
        if qualified:
            if is_sqlalchemy(qualified, "select", "update", "delete", "insert"):
                return self.origin(qualified.rsplit(".", 1)[-1], node)
            if qualified in self.lock_helpers or qualified.rsplit(".", 1)[-1] in {
                h.rsplit(".", 1)[-1] for h in self.lock_helpers if "." not in h
            }:
                return self.lock_helper(qualified, node)
        self._consume_args(node)
        if not isinstance(func, (cst.Name, cst.Attribute)):
            self.consume(self.eval(func))
        return ()

    def origin(self, kind: str, node: cst.Call) -> tuple[Statement, ...]:
        """``select(...)``, ``update(M)``, ``delete(M)``, ``insert(M)``."""
        args = _positional(node)
        span = self.span(node)
        if kind == "select":
            return (self.select_like("select", node, span),)
        target_node = args[0].value if args else None
        table, _col = self.entity(target_node) if target_node is not None else (None, None)
        state = Statement(
            kind=kind,
            span=span,
            target=table,
            target_text=self.text(target_node) if target_node is not None else "",
        )
        if kind in ("update", "delete"):
            state = replace(state, write=span, write_kind=kind.upper())
            if len(args) > 1:  # legacy ``update(table, whereclause)``
                state = self.add_where(state, [args[1].value])
        return (self.new(state),)

    def select_like(self, kind: str, node: cst.Call, span: Span) -> Statement:
        entities: list[Table] = []
        texts: list[str] = []
        for value in self._selected(node):
            inner = value
            if isinstance(value, cst.Attribute) and value.attr.value in ("columns", "c"):
                inner = value.value
            table, _col = self.entity(inner)
            if table is not None:
                if table not in entities:
                    entities.append(table)
            else:
                texts.append(self.text(value))
        target = entities[0] if entities else None
        return self.new(
            Statement(
                kind=kind,
                span=span,
                target=target,
                target_text=target.name if target else ", ".join(texts),
                extra_entities=tuple(t.name for t in entities[1:]),
                orm_entities=self.orm_entities(node),
            )
        )

    @staticmethod
    def _selected(node: cst.Call) -> list[cst.BaseExpression]:
        """The positional arguments of ``select(...)``/``query(...)``, legacy ``select([...])`` unpacked."""
        values: list[cst.BaseExpression] = []
        for arg in node.args:
            if arg.keyword is not None:
                continue
            if isinstance(arg.value, (cst.List, cst.Tuple)):
                values.extend(e.value for e in arg.value.elements if isinstance(e, cst.Element))
            else:
                values.append(arg.value)
        return values

    def orm_entities(self, node: cst.Call) -> tuple[str, ...]:
        """Tables selected as mapped classes (``M``, ``aliased(M)``), not as columns or Table objects."""
        found: list[str] = []
        for value in self._selected(node):
            table = self.mapped_class(value)
            if table is not None and table.name not in found:
                found.append(table.name)
        return tuple(found)

    def mapped_class(self, node: cst.BaseExpression) -> Table | None:
        """The table of a mapped class expression; None for a column, a Table, ``M.__table__``."""
        if isinstance(node, cst.Call):
            name = self.qualify(node.func) if isinstance(node.func, (cst.Name, cst.Attribute)) else None
            if name and is_sqlalchemy(name, "aliased") and node.args:
                return self.mapped_class(node.args[0].value)
            return None
        qualified = self.qualify(node)
        if qualified is None or qualified.endswith(".__table__") or self.catalog.is_table_variable(qualified):
            return None
        return self.catalog.lookup(qualified)

    # -- loader options ------------------------------------------------------------------------

    def loader_options(self, args: Sequence[cst.Arg]) -> tuple[tuple[LoaderOption, ...], bool]:
        """The loader options among ``.options(...)`` arguments; True when one cannot be read."""
        found: list[LoaderOption] = []
        opaque = False
        for arg in args:
            values: list[cst.BaseExpression] = [arg.value]
            if arg.star == "*":
                if isinstance(arg.value, cst.Name) and arg.value.value in self.lists:
                    values = list(self.lists[arg.value.value])
                elif isinstance(arg.value, (cst.List, cst.Tuple)):
                    values = [e.value for e in arg.value.elements if isinstance(e, cst.Element)]
                else:
                    opaque = True
                    continue
            elif isinstance(arg.value, (cst.List, cst.Tuple)):  # session.get(..., options=[...])
                values = [e.value for e in arg.value.elements if isinstance(e, cst.Element)]
            for value in values:
                chain = self.loader_chain(value, ())
                if chain is None:
                    opaque = True
                else:
                    found.extend(chain[0])
        return tuple(found), opaque

    def loader_chain(
        self, node: cst.BaseExpression, prefix: tuple[tuple[str, str], ...]
    ) -> tuple[list[LoaderOption], tuple[tuple[str, str], ...]] | None:
        """Read ``lazyload(M.rel)``, ``defaultload(M.a).lazyload(A.b)``, ``Load(M).noload("*")``,
        ``selectinload(M.a).options(...)``: the options and the path the chain ends at."""
        if not isinstance(node, cst.Call):
            return None
        func = node.func
        qualified = self.qualify(func) if isinstance(func, (cst.Name, cst.Attribute)) else None
        if qualified and qualified.startswith("sqlalchemy."):
            short = qualified.rsplit(".", 1)[-1]
            if short == "Load":
                return [], prefix
            return self._loader_step(short, node, prefix, [])
        if isinstance(func, cst.Attribute):
            inner = self.loader_chain(func.value, prefix)
            if inner is None:
                return None
            options, path = inner
            if func.attr.value == "options":
                for arg in node.args:
                    sub = self.loader_chain(arg.value, path)
                    if sub is None:
                        return None
                    options.extend(sub[0])
                return options, path
            return self._loader_step(func.attr.value, node, path, options)
        return None

    def _loader_step(
        self, name: str, node: cst.Call, prefix: tuple[tuple[str, str], ...], options: list[LoaderOption]
    ) -> tuple[list[LoaderOption], tuple[tuple[str, str], ...]] | None:
        if name in _COLUMN_OPTIONS:
            return options, prefix
        strategy = LOADER_STRATEGIES.get(name)
        if strategy is None:
            return None
        path = prefix
        for arg in _positional(node):  # legacy ``joinedload(M.a, A.b)`` names a whole path
            step = self.loader_step(arg.value)
            if step is None:
                return None
            path = (*path, step)
            options.append(LoaderOption(strategy if arg is _positional(node)[-1] else "default", path))
        return options, path

    def loader_step(self, node: cst.BaseExpression) -> tuple[str, str] | None:
        """``M.rel`` -> (table, "rel"); ``"rel"`` or ``"*"`` -> ("", name); ``M.rel.of_type(X)`` too."""
        if (
            isinstance(node, cst.Call)
            and isinstance(node.func, cst.Attribute)
            and node.func.attr.value
            in (
                "of_type",
                "and_",
            )
        ):
            return self.loader_step(node.func.value)
        if isinstance(node, cst.SimpleString):
            value = node.evaluated_value
            if isinstance(value, str):
                return "", value.rsplit(".", 1)[-1] if value != WILDCARD else WILDCARD
            return None
        table, attr = self.entity(node)
        if table is not None and attr is not None:
            return table.name, attr
        return None

    def joined_table(self, node: cst.BaseExpression) -> str | None:
        """The table a ``.join(...)`` argument adds: a model, a Table, or a relationship attribute."""
        table, attr = self.entity(node)
        if table is None:
            return None
        if attr is None:
            return table.name
        rel = table.relationship(attr)
        return rel.target if rel is not None else None

    def attribute_origin(
        self, func: cst.Attribute, method: str, node: cst.Call
    ) -> tuple[Statement, ...] | None:
        """Origins spelled as a method call: ``session.query(M)``, ``M.__table__.update()``,
        ``table.delete()``, ``session.get(M, pk, with_for_update=True)``."""
        span = self.span(node)
        if method == "query" and _positional(node):
            return (self.select_like("query", node, span),)
        if method == "get" and _positional(node) and _kw(node, "with_for_update") is not None:
            args = _positional(node)
            table, col = self.entity(args[0].value)
            if table is None or col is not None:
                self._consume_args(node)
                return ()
            lock_arg = _kw(node, "with_for_update")
            lock = None
            if lock_arg is not None and not (
                isinstance(lock_arg, cst.Name) and lock_arg.value in ("False", "None")
            ):
                lock = self.lock_from_options(lock_arg, self.span(func.attr, node), via="session.get")
            preds = tuple(Predicate(table.name, col_name, EQ) for col_name in table.primary_key)
            options_arg = _kw(node, "options")
            options, opaque = (
                self.loader_options([cst.Arg(options_arg)]) if options_arg is not None else ((), False)
            )
            mapped = self.mapped_class(args[0].value)
            state = self.new(
                Statement(
                    kind="get",
                    span=span,
                    target=table,
                    target_text=table.name,
                    predicates=preds,
                    lock=lock,
                    orm_entities=(mapped.name,) if mapped is not None else (),
                    loader_options=options,
                    opaque_options=opaque,
                )
            )
            self.consume((state,))
            return ()
        if method in _ORIGIN_METHODS:
            table, col = self.entity(func.value)
            if table is None or col is not None or not self.is_table_object(func.value):
                return None
            state = Statement(kind=method, span=span, target=table, target_text=self.text(func.value))
            if method in ("update", "delete"):
                state = replace(state, write=span, write_kind=method.upper())
            args = _positional(node)
            if args and method != "insert":
                state = self.add_where(state, [args[0].value])
            where = _kw(node, "whereclause")
            if where is not None:
                state = self.add_where(state, [where])
            return (self.new(state),)
        return None

    def lock_helper(self, qualified: str, node: cst.Call) -> tuple[Statement, ...]:
        """A configured lock helper; its statement is the first argument, positional or passed
        by keyword (``with_row_locks(query=select(...), session=session)``)."""
        args = _positional(node)
        statement_arg = (
            args[0]
            if args
            else next(
                (
                    a
                    for a in node.args
                    if a.keyword is not None and a.keyword.value in _HELPER_STATEMENT_KEYWORDS
                ),
                None,
            )
        )
        states = self.eval(statement_arg.value) if statement_arg is not None else ()
        for arg in node.args:
            if arg is not statement_arg:
                self.consume(self.eval(arg.value))
        lock = self.lock_from_call(node, self.span(node), via=qualified.rsplit(".", 1)[-1])
        if not states:
            unknown = Statement(
                kind="select",
                span=self.span(node),
                target_text=self.text(statement_arg.value) if statement_arg is not None else "",
                lock=lock,
            )
            self.consume((self.new(unknown),))
            return ()
        return tuple(self.new(s.derive(lock=lock)) for s in states)

    def lock_from_call(self, call: cst.Call, span: Span, via: str) -> LockClause:
        of_node = _kw(call, "of")
        return LockClause(
            span=span,
            read=_truthy(_kw(call, "read")),
            skip_locked=_truthy(_kw(call, "skip_locked")),
            nowait=_truthy(_kw(call, "nowait")),
            of=self.of_tables(of_node) if of_node is not None else None,
            via=via,
        )

    def lock_from_options(self, node: cst.BaseExpression, span: Span, via: str) -> LockClause:
        """``with_for_update=True`` or the dict form ``{"of": M, "skip_locked": True}``."""
        if isinstance(node, cst.Dict):
            options: dict[str, cst.BaseExpression] = {}
            for element in node.elements:
                if isinstance(element, cst.DictElement) and isinstance(element.key, cst.SimpleString):
                    options[
                        element.key.evaluated_value if isinstance(element.key.evaluated_value, str) else ""
                    ] = element.value
            of_node = options.get("of")
            return LockClause(
                span=span,
                read=_truthy(options.get("read")),
                skip_locked=_truthy(options.get("skip_locked")),
                nowait=_truthy(options.get("nowait")),
                of=self.of_tables(of_node) if of_node is not None else None,
                via=via,
            )
        return LockClause(span=span, via=via)

    def of_tables(self, node: cst.BaseExpression) -> tuple[str, ...]:
        values = [node]
        if isinstance(node, (cst.List, cst.Tuple)):
            values = [e.value for e in node.elements if isinstance(e, cst.Element)]
        names = []
        for value in values:
            table, _col = self.entity(value)
            names.append(table.name if table else self.text(value))
        return tuple(names)

    def method(self, receiver: tuple[Statement, ...], method: str, node: cst.Call) -> tuple[Statement, ...]:
        if method in ("where", "filter"):
            values = self.condition_nodes(node)
            return tuple(self.new(self.add_where(s.derive(), values)) for s in receiver)
        if method == "filter_by":
            out = []
            for s in receiver:
                preds = list(s.predicates)
                for arg in node.args:
                    if arg.keyword is not None and s.target is not None:
                        preds.append(Predicate(s.target.name, arg.keyword.value, EQ))
                    self.consume(self.eval(arg.value))
                out.append(self.new(s.derive(predicates=tuple(preds))))
            return tuple(out)
        if method == "order_by":
            args = _positional(node)
            if len(args) == 1 and isinstance(args[0].value, cst.Name) and args[0].value.value == "None":
                return tuple(self.new(s.derive(order_by=())) for s in receiver)
            terms = tuple(t for a in args for t in self.order_terms(a.value))
            return tuple(self.new(s.derive(order_by=s.order_by + terms)) for s in receiver)
        if method == "limit":
            args = _positional(node)
            one = bool(args) and isinstance(args[0].value, cst.Integer) and args[0].value.value == "1"
            return tuple(self.new(s.derive(limit_one=one)) for s in receiver)
        if method == "with_for_update":
            lock = self.lock_from_call(node, self.span(node.func.attr, node), via="with_for_update")  # type: ignore[attr-defined]
            return tuple(self.new(s.derive(lock=lock)) for s in receiver)
        if method in ("join", "outerjoin", "select_from", "join_from", "outerjoin_from"):
            joined: list[str] = []
            outer: list[str] = []
            is_outer = (
                method.startswith("outer") or _truthy(_kw(node, "isouter")) or _truthy(_kw(node, "full"))
            )
            for arg in _positional(node):
                for name, arg_outer in self.join_operands(arg.value):
                    joined.append(name)
                    if is_outer or arg_outer:
                        outer.append(name)
            return tuple(
                self.new(
                    s.derive(
                        joins=s.joins + tuple(j for j in joined if j not in s.joins),
                        outer_joins=s.outer_joins + tuple(j for j in outer if j not in s.outer_joins),
                    )
                )
                for s in receiver
            )
        if method == "options":
            options, opaque = self.loader_options(node.args)
            return tuple(
                self.new(
                    s.derive(
                        loader_options=s.loader_options + options, opaque_options=s.opaque_options or opaque
                    )
                )
                for s in receiver
            )
        if method == "enable_eagerloads":
            args = _positional(node)
            off = bool(args) and isinstance(args[0].value, cst.Name) and args[0].value.value == "False"
            return tuple(self.new(s.derive(eagerloads=not off)) for s in receiver)
        if method in ("with_entities", "with_only_columns"):
            self._consume_args(node)
            entities = self.orm_entities(node)
            return tuple(self.new(s.derive(orm_entities=entities)) for s in receiver)
        if method == "add_entity":
            self._consume_args(node)
            added = self.orm_entities(node)
            return tuple(
                self.new(
                    s.derive(orm_entities=s.orm_entities + tuple(a for a in added if a not in s.orm_entities))
                )
                for s in receiver
            )
        if method in ("update", "delete") and all(s.kind == "query" for s in receiver):
            span = self.span(node.func.attr, node)  # type: ignore[attr-defined]
            for arg in node.args:
                self.consume(self.eval(arg.value))
            self.consume(self.new(s.derive(write=span, write_kind=method.upper())) for s in receiver)
            return ()
        if method == "first" and all(s.kind == "query" for s in receiver):
            self.consume(self.new(s.derive(limit_one=True)) for s in receiver)
            return ()
        if method in _PASSTHROUGH:
            self._consume_args(node)
            return receiver
        self._consume_args(node)
        self.consume(receiver)
        return ()

    def join_operands(self, node: cst.BaseExpression) -> list[tuple[str, bool]]:
        """Tables named by a join argument, with whether each is on an outer join's nullable side;
        ``join(A, B)`` / ``outerjoin(A, B)`` (as in ``select_from(join(...))``) are opened up."""
        if isinstance(node, cst.Call) and self._sa_call(node, "join", "outerjoin"):
            args = _positional(node)
            outer = self._sa_call(node, "outerjoin") or _truthy(_kw(node, "isouter"))
            found = self.join_operands(args[0].value) if args else []
            if len(args) > 1:
                found += [(name, outer or was) for name, was in self.join_operands(args[1].value)]
            return found
        if (
            isinstance(node, cst.Call)
            and isinstance(node.func, cst.Attribute)
            and node.func.attr.value in ("join", "outerjoin")
        ):  # ``A.__table__.join(B.__table__, ...)``
            outer = node.func.attr.value == "outerjoin" or _truthy(_kw(node, "isouter"))
            args = _positional(node)
            found = self.join_operands(node.func.value)
            if args:
                found += [(name, outer or was) for name, was in self.join_operands(args[0].value)]
            return found
        name = self.joined_table(node)
        return [(name, False)] if name else []

    def order_terms(self, node: cst.BaseExpression) -> list[tuple[str, str, bool]]:
        desc = False
        target = node
        if isinstance(node, cst.Call):
            if isinstance(node.func, cst.Attribute) and node.func.attr.value in (
                "asc",
                "desc",
                "nulls_first",
                "nulls_last",
                "nullsfirst",
                "nullslast",
            ):
                desc = node.func.attr.value == "desc"
                target = node.func.value
                if (
                    isinstance(target, cst.Call)
                    and isinstance(target.func, cst.Attribute)
                    and target.func.attr.value in ("asc", "desc")
                ):
                    desc = target.func.attr.value == "desc"
                    target = target.func.value
            elif node.args:
                name = self.qualify(node.func) if isinstance(node.func, (cst.Name, cst.Attribute)) else None
                if name and is_sqlalchemy(name, "asc", "desc"):
                    desc = name.endswith("desc")
                    target = node.args[0].value
        table, col = self.entity(target)
        if table is not None and col is not None:
            return [(table.name, col, desc)]
        self.consume(self.eval(node))
        return [("", self.text(node), desc)]

    # -- WHERE clauses -------------------------------------------------------------------------

    def condition_nodes(self, call: cst.Call) -> list[cst.BaseExpression | None]:
        """The condition expressions of a ``where``/``filter`` call; ``None`` marks one we cannot see."""
        values: list[cst.BaseExpression | None] = []
        for arg in call.args:
            if arg.star == "*":
                if isinstance(arg.value, cst.Name) and arg.value.value in self.lists:
                    values.extend(self.lists[arg.value.value])
                elif isinstance(arg.value, (cst.List, cst.Tuple)):
                    values.extend(e.value for e in arg.value.elements if isinstance(e, cst.Element))
                else:
                    values.append(None)
            elif arg.keyword is None:
                values.append(arg.value)
        return values

    def add_where(self, state: Statement, values: Sequence[cst.BaseExpression | None]) -> Statement:
        preds = list(state.predicates)
        opaque = state.opaque_where
        for value in values:
            if value is None:
                opaque = True
                continue
            if self.conjuncts(value, preds):
                opaque = True
        return replace(state, predicates=tuple(preds), opaque_where=opaque)

    def _sa_call(self, node: cst.BaseExpression, *names: str) -> bool:
        if isinstance(node, cst.Call) and isinstance(node.func, (cst.Name, cst.Attribute)):
            name = self.qualify(node.func)
            return bool(name and is_sqlalchemy(name, *names))
        return False

    def conjuncts(self, node: cst.BaseExpression, preds: list[Predicate]) -> bool:
        """Add the predicates of one top-level condition; True if part of it cannot be read."""
        if isinstance(node, cst.Call) and self._sa_call(node, "and_"):
            opaque = False
            for arg in node.args:
                if arg.star == "*":
                    if isinstance(arg.value, cst.Name) and arg.value.value in self.lists:
                        for item in self.lists[arg.value.value]:
                            opaque |= self.conjuncts(item, preds)
                    else:
                        opaque = True
                else:
                    opaque |= self.conjuncts(arg.value, preds)
            return opaque
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.BitAnd):
            return self.conjuncts(node.left, preds) | self.conjuncts(node.right, preds)
        if isinstance(node, cst.Comparison) and len(node.comparisons) == 1:
            target = node.comparisons[0]
            left = self.column_of(node.left)
            right = self.column_of(target.comparator)
            if isinstance(target.operator, cst.Equal):
                if left and right:
                    preds.append(Predicate(*left, JOIN))
                    preds.append(Predicate(*right, JOIN))
                    return False
                if left or right:
                    col = left or right
                    assert col is not None
                    other = target.comparator if left else node.left
                    self.consume(self.eval(other))
                    preds.append(Predicate(*col, EQ))
                    return False
                self.consume(self.eval(node))
                return True
        if (
            isinstance(node, cst.Call)
            and isinstance(node.func, cst.Attribute)
            and node.func.attr.value == "in_"
        ):
            subject = node.func.value
            cols: list[tuple[str, str]] = []
            if self._sa_call(subject, "tuple_"):
                assert isinstance(subject, cst.Call)
                cols = [c for c in (self.column_of(a.value) for a in subject.args) if c]
            else:
                col = self.column_of(subject)
                cols = [col] if col else []
            if cols:
                self._consume_args(node)
                preds.extend(Predicate(*c, IN) for c in cols)
                return False
        if self._sa_call(node, "text", "literal_column"):
            return True
        found = self.columns_in(node)
        self.consume(self.eval(node))
        if not found:
            return True
        preds.extend(Predicate(t, c, OTHER) for t, c in found)
        return False

    def is_table_object(self, node: cst.BaseExpression) -> bool:
        """``Model.__table__`` or a ``Table(...)`` variable: unlike a mapped class, these have
        SQLAlchemy's ``update()``/``delete()`` methods (a model's are the project's own)."""
        qualified = self.qualify(node)
        if qualified is None:
            return False
        return qualified.endswith(".__table__") or self.catalog.is_table_variable(qualified)

    def column_of(self, node: cst.BaseExpression) -> tuple[str, str] | None:
        table, col = self.entity(node)
        if table is not None and col is not None:
            return table.name, col
        return None

    def columns_in(self, node: cst.CSTNode) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        if isinstance(node, (cst.Attribute, cst.Name)):
            col = self.column_of(node)
            if col:
                return [col]
            if isinstance(node, cst.Name):
                return []
        for child in node.children:
            for col in self.columns_in(child):
                if col not in found:
                    found.append(col)
        return found

    def text(self, node: cst.CSTNode) -> str:
        return " ".join(self._code_for(node).split())
