"""Builder-chain evaluation: follow SQLAlchemy statement builders through one function body.

The evaluator walks a function's ``ast`` in source order, follows builders through method
chains, local names, branches and loops, and records every statement the function executes or
otherwise hands on. Values it tracks: statement states (:class:`Statement`), model references
(``FlowRun = db.FlowRun``, ``for model in (A, B):``) and, inside an inlined helper, the caller's
expressions bound to the helper's parameters (:class:`Bound`). Calls to project functions are
followed through :mod:`lockorder_lint.summaries`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from lockorder_lint import locks, predicates, raw_sql
from lockorder_lint.dialects import dialects_where_true
from lockorder_lint.names import Resolver, called_name, dotted_name, is_sqlalchemy
from lockorder_lint.statements import (
    COLUMN_OPTIONS,
    EQ,
    LOADER_STRATEGIES,
    WILDCARD,
    LoaderOption,
    Predicate,
    Span,
    Statement,
)

if TYPE_CHECKING:
    from lockorder_lint.catalog import Catalog, Table
    from lockorder_lint.parsing import Source
    from lockorder_lint.summaries import Program


@dataclass(frozen=True)
class ModelRef:
    """A name that holds a mapped class or Table (``FlowRun = db.FlowRun``, a loop over models)."""

    table: Table
    mapped: bool = True
    cls: str | None = field(default=None, compare=False)  # the mapped class's qualified name


@dataclass(frozen=True)
class Bound:
    """A caller's expression bound to an inlined helper's parameter: evaluated in the caller."""

    node: ast.AST
    evaluator: Evaluator = field(compare=False)
    values: tuple[Value, ...] = ()


@dataclass(frozen=True)
class Instance:
    """An ORM object of a mapped class this function made (``job = Job(...)``): adding it to a
    session inserts a row. ``attributes`` are those its constructor sets (None: not known),
    for the foreign keys the INSERT checks: a key left NULL checks no parent."""

    table: Table
    attributes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Rows:
    """Rows a locking read returned, or values built only from them (``[ti.id for ti in tis]``):
    keys of rows this transaction holds. ``table`` is None once something else was mixed in."""

    table: str | None


Value = Statement | ModelRef | Bound | Instance | Rows

# Session and Query methods that run a statement and hand back its rows.
_EXECUTIONS = frozenset({"execute", "scalars", "scalar", "scalar_one", "scalar_one_or_none"})
_FETCHES = frozenset({"all", "one", "one_or_none", "first", "scalars", "scalar", "unique", "fetchall",
                      "fetchmany", "partitions", "yield_per", "tuples", "mappings", "columns",
                      "items", "values", "keys", "copy"})  # fmt: skip
# Builtins that copy a collection without adding anything to it.
_COPIES = frozenset({"list", "set", "tuple", "frozenset", "sorted", "reversed", "iter"})

# Builder methods that do not change which rows are reached or how they are locked. Any other
# method on a statement (``all``, ``scalars``, ``subquery``...) hands the statement on: it is used.
_PASSTHROUGH = frozenset(
    {
        "values", "execution_options", "options", "returning", "params", "correlate",
        "correlate_except", "distinct", "group_by", "having", "offset", "prefix_with",
        "suffix_with", "with_hint", "ordered_values", "inline", "add_columns",
        "with_only_columns", "enable_eagerloads", "populate_existing", "set_label_style",
        "autoflush", "reduce_columns", "with_statement_hint", "with_entities", "add_entity",
        "with_parent", "label", "union", "union_all", "fetch", "bindparams", "columns",
    }
)  # fmt: skip
# Session methods that stage ORM objects, and the statement each becomes at flush.
_ORM_WRITES = {"add": "INSERT", "add_all": "INSERT", "merge": "MERGE"}
# Methods that turn a statement into a FROM source of another one.
_DERIVING = {"subquery": "subquery", "cte": "cte", "alias": "subquery", "scalar_subquery": "scalar",
             "as_scalar": "scalar", "lateral": "subquery", "exists": "scalar"}  # fmt: skip
_ORIGIN_METHODS = frozenset({"update", "delete", "select", "insert"})
# An INSERT's conflict clauses: the statement then writes a row that may already exist, by its key.
_UPSERTS = {
    "on_conflict_do_update": "ON CONFLICT DO UPDATE",
    "on_conflict_do_nothing": "ON CONFLICT DO NOTHING",
    "on_duplicate_key_update": "ON DUPLICATE KEY UPDATE",
}
MAX_STATES = 8


@dataclass
class Scope:
    """What evaluating one function needs besides its body: the file (positions, text, names),
    the catalog, the whole program for calls, and the configuration that changes statements."""

    source: Source
    resolver: Resolver
    catalog: Catalog
    program: Program | None = None
    class_qualname: str | None = None
    qualname: str = ""
    lock_helpers: frozenset[str] = frozenset()
    dialects: frozenset[str] = frozenset({"postgresql"})
    depth: int = 0
    calls: tuple[str, ...] = ()
    path: str = ""  # the file's absolute path: where its spans come from

    @property
    def mysql(self) -> bool:
        return "mysql" in self.dialects


def positional(call: ast.Call) -> list[ast.expr]:
    return [a for a in call.args if not isinstance(a, ast.Starred)]


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


class Evaluator:
    """Follow SQLAlchemy statement builders through one function body."""

    def __init__(self, scope: Scope, bindings: dict[str, tuple[Value, ...]] | None = None) -> None:
        self.scope = scope
        self.catalog = scope.catalog
        self.env: dict[str, tuple[Value, ...]] = dict(bindings or {})
        self.lists: dict[str, list[ast.AST]] = {}
        self.conditions: dict[str, ast.AST] = {}
        self.consumed: list[Statement] = []
        self.covered: set[int] = set()
        self.parents: dict[int, int | None] = {}
        self.borrowed: set[int] = set()
        self.returned: list[Value] = []
        # ``return`` expressions, for helpers whose result is a condition rather than a statement.
        self.return_nodes: list[ast.expr] = []
        # Names whose class the function knows (annotated parameters, ``db = provide_db()``).
        self.types: dict[str, str] = {}
        self.current_statement: ast.AST | None = None
        self.live = scope.dialects
        self.inlines = 0
        self.parameters: frozenset[str] = frozenset()
        # Names bound to a new empty collection: what is added to them is all they hold.
        self.empties: set[str] = set()
        # Names bound to something this evaluation cannot see (a call's result, a parameter).
        self.unknown: set[str] = set()
        self.function_node: ast.FunctionDef | ast.AsyncFunctionDef | None = None

    @property
    def mysql(self) -> bool:
        return self.scope.mysql

    # -- positions and names ------------------------------------------------------------------

    def span(self, start: ast.AST, end: ast.AST | None = None) -> Span:
        line, column, end_line, end_column = self.scope.source.span(start, end)
        return Span(line, column, end_line, end_column, self.scope.path)

    def method_span(self, call: ast.Call) -> Span:
        """From a method's name to the end of its call: ``with_for_update(...)`` in a chain."""
        func = call.func
        assert isinstance(func, ast.Attribute)
        source = self.scope.source
        end_line = func.end_lineno or func.lineno
        start_byte = (func.end_col_offset or 0) - len(func.attr.encode("utf-8"))
        line, column, last_line, last_column = source.span(call)
        return Span(end_line, source.column(end_line, start_byte), last_line, last_column, self.scope.path)

    def text(self, node: ast.AST) -> str:
        return self.scope.source.segment(node)

    def qualify(self, node: ast.AST) -> str | None:
        """The qualified name of a dotted expression, if its head is imported or module-level."""
        dotted = dotted_name(node)
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        if head == "cls" and self.scope.class_qualname and "cls" not in self.env:
            return f"{self.scope.class_qualname}.{rest}" if rest else self.scope.class_qualname
        if head in self.env:
            return None
        resolver = self.scope.resolver
        if head in resolver.aliases or head in resolver.local_names:
            return resolver.qualify(dotted)
        return None

    def sa_call(self, node: ast.AST, *names: str) -> bool:
        if isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)):
            name = self.qualify(node.func)
            return bool(name and is_sqlalchemy(name, *names))
        return False

    # -- what a name refers to ------------------------------------------------------------------

    def bound_expression(self, node: ast.AST) -> tuple[Evaluator, ast.AST] | None:
        """A parameter of an inlined helper, or a local condition variable: where its expression
        really lives, so that predicates and columns are read there."""
        if isinstance(node, ast.Name):
            if node.id in self.conditions:
                return self, self.conditions[node.id]
            values = self.env.get(node.id, ())
            if len(values) == 1 and isinstance(values[0], Bound):
                return values[0].evaluator, values[0].node
        return None

    def models(self, node: ast.AST) -> list[ModelRef]:
        """Every model or Table an expression may name: through imports and aliases, local
        names, ``cls``, ``self.model``-style class attributes and injected interfaces."""
        if isinstance(node, ast.Call):
            if self.sa_call(node, "aliased") and node.args:
                return self.models(node.args[0])
            return []
        bound = self.bound_expression(node)
        if bound is not None:
            return bound[0].models(bound[1])
        if isinstance(node, ast.Name) and node.id in self.env:
            return [v for v in self.env[node.id] if isinstance(v, ModelRef)]
        qualified = self.qualify(node)
        program = self.scope.program
        if qualified is not None:
            if qualified.endswith(".__table__"):
                table = self.catalog.lookup(qualified[: -len(".__table__")])
                return [ModelRef(table, mapped=False)] if table is not None else []
            table = self.catalog.lookup(qualified)
            if table is not None:
                mapped = not self.catalog.is_table_variable(qualified)
                return [ModelRef(table, mapped=mapped, cls=qualified if mapped else None)]
            own_class = isinstance(node, ast.Name) and node.id == "cls" and "cls" not in self.env
            if own_class and program is not None and self.scope.class_qualname:
                # ``cls`` in a mixin's classmethod: the class is whichever subclass calls it
                return program.subclass_models(self.scope.class_qualname)
            if not (isinstance(node, ast.Attribute) and dotted_name(node.value) == "cls"):
                return []
        if isinstance(node, ast.Attribute):
            if node.attr == "__table__":
                return [ModelRef(m.table, mapped=False) for m in self.models(node.value)]
            if program is not None:
                return program.attribute_models(self, node)
        return []

    def entity(self, node: ast.AST) -> tuple[Table | None, str | None]:
        """Resolve a model, ``Model.__table__``, a Table variable, or a column of one of them."""
        found = self.entities(node)
        return found[0] if len(found) == 1 else (None, None)

    def entities(self, node: ast.AST) -> list[tuple[Table, str | None]]:
        models = self.models(node)
        if models:
            return [(m.table, None) for m in models]
        if not isinstance(node, ast.Attribute):
            return []
        attr, base = node.attr, node.value
        if attr.startswith("_"):
            return []
        if isinstance(base, ast.Attribute) and base.attr in ("c", "columns"):
            owner = base.value
            if isinstance(owner, ast.Attribute) and owner.attr == "__table__":
                owner = owner.value
            return [(m.table, attr) for m in self.models(owner)]
        return [(m.table, attr) for m in self.models(base) if m.mapped or attr not in ("c", "columns")]

    def mapped_class(self, node: ast.AST) -> Table | None:
        """The table of a mapped class expression; None for a column, a Table, ``M.__table__``."""
        models = self.models(node)
        return models[0].table if len(models) == 1 and models[0].mapped else None

    def is_table_object(self, node: ast.AST) -> bool:
        """``Model.__table__`` or a ``Table(...)`` variable: unlike a mapped class, these have
        SQLAlchemy's ``update()``/``delete()`` methods (a model's are the project's own)."""
        models = self.models(node)
        return bool(models) and all(not m.mapped for m in models)

    def column_of(self, node: ast.AST) -> tuple[str, str] | None:
        bound = self.bound_expression(node)
        if bound is not None:
            return bound[0].column_of(bound[1])
        table, col = self.entity(node)
        if table is not None and col is not None:
            return table.name, col
        return None

    def columns_in(self, node: ast.AST) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        bound = self.bound_expression(node)
        if bound is not None:
            return bound[0].columns_in(bound[1])
        if isinstance(node, (ast.Attribute, ast.Name)):
            col = self.column_of(node)
            if col:
                return [col]
            if isinstance(node, ast.Name):
                return []
        for child in ast.iter_child_nodes(node):
            for col in self.columns_in(child):
                if col not in found:
                    found.append(col)
        return found

    def derived_column(self, node: ast.AST) -> str | None:
        """``sub.c.id`` where ``sub`` is a subquery or CTE this function built: what it is."""
        if not isinstance(node, ast.Attribute) or isinstance(node.value, ast.Name):
            return None
        derived = self._derived_source(node)
        return (derived.table_name or "a subquery") if derived is not None else None

    def condition_from_call(self, call: ast.Call) -> tuple[list[Predicate], bool] | None:
        """A project helper that returns a condition (``tuple_in_condition(...)``): its
        predicates and whether part of them cannot be read; None when it is not one."""
        program = self.scope.program
        return program.condition(self, call) if program is not None else None

    def listed(self, node: ast.AST) -> list[tuple[Evaluator, ast.AST] | None]:
        """The elements of ``*name`` where ``name`` is a list or tuple built here (or by a caller,
        for a helper's parameter), each with the evaluator whose names it uses; [None] when unknown."""
        bound = self.bound_expression(node)
        if bound is not None:
            return bound[0].listed(bound[1])
        if isinstance(node, ast.Name) and node.id in self.lists:
            return [(self, item) for item in self.lists[node.id]]
        if isinstance(node, (ast.List, ast.Tuple)):
            return [(self, item) for item in node.elts]
        if isinstance(node, ast.Name) and isinstance(self.conditions.get(node.id), ast.Call):
            return self.listed(self.conditions[node.id])
        if isinstance(node, ast.Call) and self.scope.program is not None:
            returned = self.scope.program.returned_list(self, node)
            if returned is not None:
                return returned
        return [None]

    # -- consumption ---------------------------------------------------------------------------

    def consume(self, values: Iterable[Value]) -> None:
        for value in values:
            if not isinstance(value, Statement):
                continue
            self.consumed.append(value)
            current: int | None = value.id
            while current is not None and current not in self.covered:
                self.covered.add(current)
                current = self.parents.get(current)

    def new(self, state: Statement) -> Statement:
        if state.node is None and self.current_statement is not None:
            state = replace(state, node=self.current_statement)
        if state.live is None or not state.live <= self.live:
            state = replace(state, live=self.live if state.live is None else state.live & self.live)
        self.parents[state.id] = state.parent
        return state

    def finish(self) -> list[Statement]:
        """Statements recorded in source order; built-but-never-used ones count as used at the end."""
        for values in self.env.values():
            self.consume(v for v in values if isinstance(v, Statement) and v.id not in self.covered)
        seen: set[tuple[Span, Span | None, Span | None, str | None]] = set()
        ordered: list[Statement] = []
        for state in self.consumed:
            key = (state.span, state.lock.span if state.lock else None, state.write, state.table_name)
            if key not in seen:
                seen.add(key)
                ordered.append(state)
        return ordered

    def lineage_borrowed(self, state: Statement) -> bool:
        current: int | None = state.id
        while current is not None:
            if current in self.borrowed:
                return True
            current = self.parents.get(current)
        return False

    # -- statements ----------------------------------------------------------------------------

    def run(self, function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[Statement]:
        args = function.args
        self.function_node = function
        self.parameters = frozenset(a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs))
        program = self.scope.program
        if program is not None:
            self.types.update(program.parameter_types(self, function))
        self.block(function.body)
        return self.finish()

    def block(self, body: Sequence[ast.stmt]) -> None:
        """The statements of one block in order. After ``if <dialect test>: return ...`` the rest
        of the block runs only on the other dialects (and not at all when none is left)."""
        outer = self.live
        for stmt in body:
            if not self.live:
                break
            self.statement(stmt)
            if isinstance(stmt, ast.If) and not stmt.orelse and _leaves(stmt.body):
                matched = dialects_where_true(stmt.test)
                if matched is not None:
                    self.live = self.live - matched
        self.live = outer

    def _branches(
        self, branches: Sequence[Sequence[ast.stmt]], may_skip: bool, live: Sequence[frozenset[str]] = ()
    ) -> None:
        """Evaluate alternative blocks from the same state; afterwards a name may hold any of
        the values it held at the end of any branch (or before, if all can be skipped).
        ``live`` gives each branch the dialects it runs on, when a dialect test decides it."""
        start = dict(self.env)
        start_conditions = dict(self.conditions)
        start_unknown = set(self.unknown)
        results: list[dict[str, tuple[Value, ...]]] = [start] if may_skip else []
        unknown: list[set[str]] = [start_unknown] if may_skip else []
        outer = self.live
        for index, branch in enumerate(branches):
            self.env = dict(start)
            self.unknown = set(start_unknown)
            self.live = live[index] if index < len(live) else outer
            self.block(branch)
            results.append(self.env)
            unknown.append(self.unknown)
        self.live = outer
        merged: dict[str, tuple[Value, ...]] = {}
        for env in results:
            for name, values in env.items():
                existing = merged.get(name, ())
                merged[name] = existing + tuple(v for v in values if v not in existing)
        for name, values in merged.items():
            # locked rows on one path and something unknown on another: not only locked rows
            if any(isinstance(v, Rows) for v in values) and any(name in names for names in unknown):
                merged[name] = (Rows(None),)
        self.unknown = set().union(*unknown) - set(merged) if unknown else set(start_unknown)
        self.env = {k: v[:MAX_STATES] for k, v in merged.items()}
        for name in list(self.conditions):
            if start_conditions.get(name) is not self.conditions[name]:
                self.conditions.pop(name)  # a condition rebound on one branch only is unknown

    def statement(self, stmt: ast.stmt) -> None:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return  # nested functions are analysed as units of their own
        self.current_statement = stmt
        if isinstance(stmt, ast.If):
            self.if_statement(stmt)
        elif isinstance(stmt, (ast.For, ast.AsyncFor, ast.While)):
            if isinstance(stmt, ast.While):
                self.consume(self.eval(stmt.test))
                self._branches([stmt.body], may_skip=True)
            else:
                iterated = self.eval(stmt.iter)
                models = [v for v in iterated if isinstance(v, ModelRef)]
                self.consume(iterated)
                self.unbind(stmt.target)
                if models and isinstance(stmt.target, ast.Name):
                    self.env[stmt.target.id] = tuple(models)
                elif _all_rows(iterated):
                    for name in _target_names(stmt.target):
                        self.env[name] = iterated
                        self.unknown.discard(name)
                self._branches([stmt.body], may_skip=True)
            self.block(stmt.orelse)
        elif isinstance(stmt, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            self.block(stmt.body)  # type: ignore[attr-defined]
            handlers = [h.body for h in stmt.handlers]  # type: ignore[attr-defined]
            if stmt.orelse:  # type: ignore[attr-defined]
                handlers.append(stmt.orelse)  # type: ignore[attr-defined]
            self._branches(handlers, may_skip=True)
            self.block(stmt.finalbody)  # type: ignore[attr-defined]
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            for item in stmt.items:
                values = self.eval(item.context_expr)
                if item.optional_vars is not None:
                    self.bind(item.optional_vars, values)
                else:
                    self.consume(values)
            self.block(stmt.body)
        elif isinstance(stmt, ast.Match):
            self.consume(self.eval(stmt.subject))
            self._branches([c.body for c in stmt.cases], may_skip=True)
        elif isinstance(stmt, ast.Assign):
            values = self.eval(stmt.value)
            for target in stmt.targets:
                self.bind(target, values)
                self.set_on_instance(target, stmt.value)
            if len(stmt.targets) == 1:
                for name, value in _pairs(stmt.targets[0], stmt.value):
                    if _empty(value):
                        self.empties.add(name)
                        self.unknown.discard(name)
            first = stmt.targets[0]
            if isinstance(first, ast.Name) and self.scope.program is not None:
                typed = self.scope.program.type_of(self, stmt.value)
                if typed is not None:
                    self.types[first.id] = typed
                else:
                    self.types.pop(first.id, None)
            if len(stmt.targets) == 1 and isinstance(first, ast.Name):
                if isinstance(stmt.value, (ast.List, ast.Tuple)):
                    self.lists[first.id] = list(stmt.value.elts)
                elif looks_like_condition(stmt.value) or (isinstance(stmt.value, ast.Call) and not values):
                    # a call that built no statement may build a condition (``TI.filter_for_tis(tis)``):
                    # a ``where`` that uses the name reads it then
                    self.conditions[first.id] = stmt.value
        elif isinstance(stmt, ast.AnnAssign):
            values = self.eval(stmt.value) if stmt.value is not None else ()
            self.bind(stmt.target, values)
            if isinstance(stmt.target, ast.Name) and stmt.value is not None and _empty(stmt.value):
                self.empties.add(stmt.target.id)
                self.unknown.discard(stmt.target.id)
            if isinstance(stmt.target, ast.Name) and isinstance(stmt.value, (ast.List, ast.Tuple)):
                self.lists[stmt.target.id] = list(stmt.value.elts)
        elif isinstance(stmt, ast.AugAssign):
            self.consume(self.eval(stmt.value))
            self.unbind(stmt.target)
        elif isinstance(stmt, ast.Return):
            if stmt.value is not None:
                self.return_nodes.append(stmt.value)
                values = self.eval(stmt.value)
                self.returned.extend(values)
        elif isinstance(stmt, ast.Expr):
            self.consume(self.eval(stmt.value))
        else:
            for child in ast.iter_child_nodes(stmt):
                if isinstance(child, ast.expr):
                    self.consume(self.eval(child))

    def if_statement(self, stmt: ast.If) -> None:
        """Both branches from the same state; a branch that only runs on databases the
        configuration does not target (``if dialect == "sqlite":``) is not followed."""
        self.consume(self.eval(stmt.test))
        matched = dialects_where_true(stmt.test)
        body_live = self.live if matched is None else self.live & matched
        else_live = self.live if matched is None else self.live - matched
        branches: list[Sequence[ast.stmt]] = []
        live: list[frozenset[str]] = []
        may_skip = not stmt.orelse
        for body, branch_live in ((stmt.body, body_live), (stmt.orelse, else_live)):
            if not body:
                continue
            if branch_live:
                branches.append(body)
                live.append(branch_live)
            else:
                may_skip = True
        self._branches(branches, may_skip, live)

    def bind(self, target: ast.AST, values: tuple[Value, ...]) -> None:
        if isinstance(target, ast.Name):
            self.empties.discard(target.id)
            self.lists.pop(target.id, None)
            self.conditions.pop(target.id, None)
            if values:
                self.env[target.id] = values
                self.unknown.discard(target.id)
            else:
                self.env.pop(target.id, None)
                self.unknown.add(target.id)
        else:
            self.consume(values)
            self.unbind(target)

    def unbind(self, target: ast.AST) -> None:
        if isinstance(target, ast.Name):
            self.empties.discard(target.id)
            self.unknown.add(target.id)
            self.env.pop(target.id, None)
            self.lists.pop(target.id, None)
            self.conditions.pop(target.id, None)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self.unbind(element)
        elif isinstance(target, ast.Starred):
            self.unbind(target.value)

    # -- expressions ---------------------------------------------------------------------------

    def eval_quiet(self, node: ast.AST) -> tuple[Value, ...]:
        """What a name or attribute holds, without evaluating (or consuming) anything."""
        if isinstance(node, ast.Name):
            values = self.env.get(node.id, ())
            if len(values) == 1 and isinstance(values[0], Bound):
                return values[0].values
            return values
        return ()

    def eval(self, node: ast.AST) -> tuple[Value, ...]:
        """The values ``node`` evaluates to; any statement it contains otherwise is consumed."""
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Name):
            values = self.env.get(node.id, ())
            if len(values) == 1 and isinstance(values[0], Bound):
                return values[0].values
            if not values and isinstance(node.ctx, ast.Load) and self.qualify(node) is not None:
                return tuple(self.models(node))  # an imported model, listed or iterated over
            if not values and node.id == "self" and node.id not in self.unknown and self.scope.class_qualname:
                own = self.catalog.lookup(self.scope.class_qualname)
                if own is not None:
                    return (Instance(own),)  # a model's own method: ``session.merge(self)``
            return values
        if isinstance(node, ast.Await):
            return self.eval(node.value)
        if isinstance(node, ast.IfExp):
            self.consume(self.eval(node.test))
            return self.eval(node.body) + self.eval(node.orelse)
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            # A collection of models, or of statements, that a loop may iterate over.
            held: list[Value] = []
            complete = True
            for element in node.elts:
                values = tuple(v for v in self.eval(element) if isinstance(v, (ModelRef, Statement)))
                complete = complete and bool(values)
                held.extend(values)
            if held and complete:
                return tuple(held)
            self.consume(held)
            return ()
        if isinstance(node, (ast.Attribute, ast.Subscript)) and isinstance(node.value, ast.Name):
            rows = self.env.get(node.value.id, ())
            if _all_rows(rows):
                if isinstance(node, ast.Subscript):
                    self.consume(self.eval(node.slice))
                return rows  # a row's key, or one of the rows
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp)) and len(node.generators) == 1:
            generator = node.generators[0]
            iterated = self.eval(generator.iter)
            if _all_rows(iterated) and _built_from(node.elt, generator.target):
                for test in generator.ifs:
                    self.consume(self.eval(test))
                return iterated
            self.consume(iterated)
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            models_found = self.models(node)
            if models_found:
                return tuple(models_found)
            if node.attr == "query":  # Flask-SQLAlchemy's ``Model.query``
                mapped = self.mapped_class(node.value)
                if mapped is not None:
                    span = self.span(node)
                    query = Statement(
                        kind="query",
                        span=span,
                        target=mapped,
                        target_text=mapped.name,
                        orm_entities=(mapped.name,),
                    )
                    return (self.new(query),)
            if isinstance(node.value, ast.Name) and node.value.id in self.env:
                return ()
        if isinstance(node, ast.Lambda):
            return ()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.expr, ast.comprehension, ast.keyword)):
                self.consume(self.eval(child) if not isinstance(child, ast.comprehension) else ())
                if isinstance(child, ast.comprehension):
                    self.consume(self.eval(child.iter))
                    for test in child.ifs:
                        self.consume(self.eval(test))
            elif isinstance(child, ast.keyword):
                self.consume(self.eval(child.value))
        return ()

    def _consume_args(self, call: ast.Call) -> None:
        for arg in call.args:
            self.consume(self.eval(arg.value if isinstance(arg, ast.Starred) else arg))
        for kw in call.keywords:
            self.consume(self.eval(kw.value))

    def call(self, node: ast.Call) -> tuple[Value, ...]:
        func = node.func
        if isinstance(func, ast.Attribute):
            method = func.attr
            if (
                method in ("append", "extend")
                and isinstance(func.value, ast.Name)
                and func.value.id in self.lists
            ):
                bucket = self.lists[func.value.id]
                for arg in positional(node):
                    if method == "append":
                        bucket.append(arg)
                    elif isinstance(arg, (ast.List, ast.Tuple)):
                        bucket.extend(arg.elts)
                    else:
                        bucket.append(ast.Constant(None))  # unknown contents: opaque
                self.note_rows(func.value.id, [self.peek_rows(arg) for arg in positional(node)])
                return ()
            if method in ("append", "add", "extend", "update"):
                added = self.collect(func.value, node)
                if added is not None:
                    return added
            held = self.eval(func.value)
            if method in _FETCHES and _all_rows(held):
                self._consume_args(node)
                return held
            receiver = tuple(v for v in held if isinstance(v, Statement))
            if receiver:
                return self.method(receiver, method, node)
            origin = self.attribute_origin(func, method, node)
            if origin is not None:
                return origin
        qualified = self.qualify(func) if isinstance(func, (ast.Name, ast.Attribute)) else None
        if qualified:
            if is_sqlalchemy(qualified, "select", "update", "delete", "insert"):
                return self.origin(qualified.rsplit(".", 1)[-1], node)
            if is_sqlalchemy(qualified, "text") and positional(node):
                return self.sql_text(positional(node)[0], node)
            if locks.is_lock_helper(qualified, self.scope.lock_helpers):
                return self.lock_helper(qualified, node)
        mapped = self.mapped_class(func) if isinstance(func, (ast.Name, ast.Attribute)) else None
        if mapped is not None:
            self._consume_args(node)
            return (Instance(mapped, self.constructor_attributes(func, node)),)
        if qualified in ("itertools.product", "zip") or (isinstance(func, ast.Name) and func.id == "zip"):
            combined = [self.eval(arg) for arg in node.args]
            if combined and all(_all_rows(values) for values in combined) and not node.keywords:
                return tuple(dict.fromkeys(v for values in combined for v in values))
            self.consume(v for values in combined for v in values)
            return ()
        if (
            isinstance(func, ast.Name)
            and func.id in _COPIES
            and func.id not in self.env
            and len(node.args) == 1
        ):
            copied = self.eval(node.args[0])
            if _all_rows(copied):
                for kw in node.keywords:
                    self.consume(self.eval(kw.value))
                return copied
            self.consume(copied)
            return ()
        program = self.scope.program
        if program is not None:
            inlined = program.inline(self, node)
            if inlined is not None:
                return inlined
        executes = isinstance(func, ast.Attribute) and func.attr in (_EXECUTIONS | raw_sql.EXECUTING_METHODS)
        if executes and positional(node):
            argument = positional(node)[0]
            if raw_sql.looks_like_sql(argument) and not self.eval_quiet(argument):
                ran = self.sql_text(argument, argument)
                if ran:
                    self._consume_args(node)
                    self.consume(ran)
                    return _held_rows(ran)
        if isinstance(func, ast.Attribute) and func.attr in _EXECUTIONS and positional(node):
            return self.execution(node)
        self._consume_args(node)
        if not isinstance(func, (ast.Name, ast.Attribute)):
            self.consume(self.eval(func))
        return ()

    def sql_text(self, argument: ast.AST, anchor: ast.AST) -> tuple[Statement, ...]:
        """Raw SQL: the statements of the text ``argument`` spells (see :mod:`raw_sql`)."""
        return raw_sql.statements_for(self, argument, anchor)

    def execution(self, node: ast.Call) -> tuple[Value, ...]:
        """``session.execute(stmt)``/``scalars(stmt)``: the statement runs here; a locking read
        hands back rows the transaction now holds."""
        ran = self.eval(positional(node)[0])
        for arg in [*positional(node)[1:], *(kw.value for kw in node.keywords)]:
            self.consume(self.eval(arg))
        parameters = positional(node)[1:2] or [k.value for k in node.keywords if k.arg == "params"]
        if parameters:
            ran = tuple(self.parameterised(v, parameters[0]) for v in ran)
        self.consume(ran)
        return _held_rows([v for v in ran if isinstance(v, Statement)])

    def parameterised(self, value: Value, parameters: ast.expr) -> Value:
        """An UPDATE without ``.values()`` run with parameters: SQLAlchemy sets the columns they
        name. A list of them on a mapped class is the ORM's bulk UPDATE by primary key (the key
        columns go to the WHERE clause)."""
        if not isinstance(value, Statement) or value.kind != "update" or value.assigned != ():
            return value
        if isinstance(parameters, ast.Dict):
            return self.new(value.with_assigned(*self.assignments(value, [parameters], [])))
        if isinstance(parameters, (ast.List, ast.Tuple)) and parameters.elts:
            columns: list[str] = []
            nulled: set[str] = set()
            for row in parameters.elts:
                if not isinstance(row, ast.Dict):
                    return self.new(value.with_assigned(None))
                named, row_nulled = self.assignments(value, [row], [])
                if named is None:
                    return self.new(value.with_assigned(None))
                key = value.target.primary_key if value.target is not None else ()
                columns.extend(c for c in named if c not in key and c not in columns)
                nulled = nulled & set(row_nulled) if row is not parameters.elts[0] else set(row_nulled)
            return self.new(value.with_assigned(tuple(columns), tuple(c for c in columns if c in nulled)))
        return self.new(value.with_assigned(None))

    def collect(self, collection: ast.AST, node: ast.Call) -> tuple[Value, ...] | None:
        """``tis.append(ti)`` (or ``groups[ti.dag_id].append(ti)``) on a collection that started
        empty: it holds locked rows as long as nothing else is put in, nor used as a key. None
        when it is not such a collection."""
        keys: list[ast.AST] = []
        while isinstance(collection, ast.Subscript):
            keys.append(collection.slice)
            collection = collection.value
        if not isinstance(collection, ast.Name):
            return None
        name = collection.id
        current = self.env.get(name, ())
        if name not in self.empties and not (current and _all_rows(current)):
            return None
        added: list[Value] = []
        for key in keys:
            parts = key.elts if isinstance(key, ast.Tuple) else [key]
            added.extend(v for part in parts for v in (self.peek_rows(part) or (Rows(None),)))
        for arg in node.args:
            added.extend(self.eval(arg.value if isinstance(arg, ast.Starred) else arg))
        for kw in node.keywords:
            self.consume(self.eval(kw.value))
        self.consume(added)
        self.note_rows(name, [tuple(added)])
        return ()

    def note_rows(self, name: str, added: Sequence[tuple[Value, ...]]) -> None:
        """Record what was put into collection ``name``: locked rows keep it a collection of them."""
        current = self.env.get(name, ())
        if name not in self.empties and not (current and _all_rows(current)):
            return
        self.empties.discard(name)
        if added and all(_all_rows(values) for values in added):
            self.env[name] = tuple(dict.fromkeys([*current, *(v for values in added for v in values)]))
        elif current:
            self.env[name] = (Rows(None),)  # locked rows and something else

    def peek_rows(self, node: ast.AST) -> tuple[Value, ...]:
        """The locked rows a plain name (or its attribute or item) holds, evaluating nothing."""
        while isinstance(node, (ast.Attribute, ast.Subscript)):
            node = node.value
        held = self.env.get(node.id, ()) if isinstance(node, ast.Name) else ()
        return held if _all_rows(held) else ()

    def origin(self, kind: str, node: ast.Call) -> tuple[Value, ...]:
        """``select(...)``, ``update(M)``, ``delete(M)``, ``insert(M)``."""
        args = positional(node)
        span = self.span(node)
        if kind == "select":
            return self.select_like("select", node, span)
        target_node = args[0] if args else None
        targets: list[tuple[Table | None, str | None]] = (
            list(self.entities(target_node)) if target_node is not None else []
        )
        if not targets or any(col is not None for _t, col in targets):
            targets = [(None, None)]
        # A model handed in by a caller: the statement is the caller's to report (through the
        # call, once the caller inlines this function), not an unknown table here.
        handed = target_node is not None and self.is_parameter(target_node)
        states: list[Value] = []
        for table, _col in targets:
            state = Statement(
                kind=kind,
                span=span,
                target=table,
                target_text=self.text(target_node) if target_node is not None else "",
                from_parameter=handed and table is None,
            )
            if kind in ("update", "delete"):
                state = replace(state, write=span, write_kind=kind.upper())
                if len(args) > 1:  # legacy ``update(table, whereclause)``
                    state = predicates.add_where(self, state, [args[1]])
            state = self.new(state)
            if handed and table is not None:
                self.borrowed.add(state.id)
            states.append(state)
        return tuple(states)

    def is_parameter(self, node: ast.AST) -> bool:
        """A name the function received (not rebound since): a caller decides what it holds."""
        if isinstance(node, ast.Name):
            values = self.env.get(node.id, ())
            return node.id in self.parameters and (not values or isinstance(values[0], Bound))
        return False

    def select_like(self, kind: str, node: ast.Call, span: Span) -> tuple[Statement, ...]:
        """``select(...)`` / ``session.query(...)``. When the first entity may be one of several
        models (``cls.db_model`` set by each subclass), one statement per candidate."""
        entities: list[Table] = []
        texts: list[str] = []
        source: Statement | None = None
        candidates: list[Table] = []
        for position, value in enumerate(self._selected(node)):
            inner = value
            if isinstance(value, ast.Attribute) and value.attr in ("columns", "c"):
                inner = value.value
            found = self.entities(inner)
            tables: list[Table] = []
            for table, _col in found:
                if all(table is not seen for seen in tables):
                    tables.append(table)
            if len(tables) == 1:
                if tables[0] not in entities:
                    entities.append(tables[0])
                continue
            if tables and position == 0:
                candidates = tables
                continue
            derived = self._derived_source(inner)
            if derived is not None:
                source = source or derived
                continue
            texts.append(self.text(value))
            self.consume(self.eval(value))
        orm = self.orm_entities(node)
        targets: list[Table | None] = [*candidates] or [
            entities[0] if entities else (source.target if source is not None else None)
        ]
        states = []
        for target in targets:
            extra = [t for t in entities if t is not target]
            states.append(
                self.new(
                    Statement(
                        kind=kind,
                        span=span,
                        target=target,
                        target_text=target.name if target else ", ".join(texts),
                        extra_entities=tuple(t.name for t in (extra if candidates else entities[1:])),
                        orm_entities=orm if not candidates else (target.name,) if target else (),
                        source=source,
                    )
                )
            )
        return tuple(states)

    def _derived_source(self, node: ast.AST) -> Statement | None:
        """``cte.c.id`` or ``cte``: the derived statement a select reads from."""
        base = node
        if (
            isinstance(base, ast.Attribute)
            and isinstance(base.value, ast.Attribute)
            and base.value.attr in ("c", "columns")
        ):
            base = base.value.value
        for value in self.eval_quiet(base):
            if isinstance(value, Statement) and value.derived:
                return value
        return None

    @staticmethod
    def _selected(node: ast.Call) -> list[ast.expr]:
        """The positional arguments of ``select(...)``/``query(...)``, legacy ``select([...])`` unpacked."""
        values: list[ast.expr] = []
        for arg in node.args:
            if isinstance(arg, (ast.List, ast.Tuple)):
                values.extend(arg.elts)
            elif isinstance(arg, ast.Starred):
                values.append(arg.value)  # ``select(*Model.__table__.columns)``
            else:
                values.append(arg)
        return values

    def orm_entities(self, node: ast.Call) -> tuple[str, ...]:
        """Tables selected as mapped classes (``M``, ``aliased(M)``), not as columns or Table objects."""
        found: list[str] = []
        for value in self._selected(node):
            table = self.mapped_class(value)
            if table is not None and table.name not in found:
                found.append(table.name)
        return tuple(found)

    # -- builder methods -----------------------------------------------------------------------

    def method(self, receiver: tuple[Statement, ...], method: str, node: ast.Call) -> tuple[Value, ...]:
        if method in ("where", "filter"):
            values = predicates.condition_nodes(self, node)
            return tuple(self.new(predicates.add_where(self, s.derive(), values)) for s in receiver)
        if method == "filter_by":
            out = []
            for s in receiver:
                preds = list(s.predicates)
                for kw in node.keywords:
                    if kw.arg is not None and s.target is not None:
                        preds.append(Predicate(s.target.name, kw.arg, EQ))
                    self.consume(self.eval(kw.value))
                opaque = s.opaque_where or any(kw.arg is None for kw in node.keywords)
                out.append(self.new(s.derive(predicates=tuple(preds), opaque_where=opaque)))
            return tuple(out)
        if method == "order_by":
            args = positional(node)
            if len(args) == 1 and isinstance(args[0], ast.Constant) and args[0].value is None:
                return tuple(self.new(s.derive(order_by=())) for s in receiver)
            terms = tuple(t for a in args for t in self.order_terms(a))
            return tuple(self.new(s.derive(order_by=s.order_by + terms)) for s in receiver)
        if method == "limit":
            args = positional(node)
            one = bool(args) and isinstance(args[0], ast.Constant) and args[0].value == 1
            return tuple(self.new(s.derive(limit_one=one)) for s in receiver)
        if method == "with_for_update":
            lock = locks.from_call(self, node, self.method_span(node), via="with_for_update")
            return tuple(self.new(s.derive(lock=lock)) for s in receiver)
        if method in ("join", "outerjoin", "select_from", "join_from", "outerjoin_from"):
            joined: list[str] = []
            outer: list[str] = []
            is_outer = (
                method.startswith("outer")
                or locks.truthy(keyword(node, "isouter"))
                or locks.truthy(keyword(node, "full"))
            )
            for arg in positional(node):
                for name, arg_outer in self.join_operands(arg):
                    joined.append(name)
                    if is_outer or arg_outer:
                        outer.append(name)
                if isinstance(arg, ast.Call) or len(positional(node)) > 1:
                    self.consume(v for v in self.eval_quiet(arg) if isinstance(v, Statement))
            for arg in positional(node)[1:]:
                if not self.join_operands(arg):
                    self.consume(self.eval(arg))
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
            args = positional(node)
            off = bool(args) and isinstance(args[0], ast.Constant) and args[0].value is False
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
            span = self.method_span(node)
            self._consume_args(node)
            written = []
            for s in receiver:
                state = s.derive(write=span, write_kind=method.upper())
                if method == "update":
                    given = positional(node)[:1] or [k.value for k in node.keywords if k.arg == "values"]
                    state = state.with_assigned(*self.assignments(state, given, []))
                written.append(self.new(state))
            self.consume(written)
            return ()
        if method in ("values", "ordered_values") and all(s.kind == "update" for s in receiver):
            self._consume_args(node)
            return tuple(
                self.new(s.with_assigned(*self.assignments(s, positional(node), node.keywords)))
                for s in receiver
            )
        if method in _FETCHES and all(s.kind == "query" for s in receiver):
            self._consume_args(node)
            ran = [self.new(s.derive(limit_one=True)) if method == "first" else s for s in receiver]
            self.consume(ran)
            return _held_rows(ran)
        if method in _UPSERTS and all(s.kind == "insert" for s in receiver):
            self._consume_args(node)
            return tuple(self.new(s.derive(upsert=_UPSERTS[method])) for s in receiver)
        if method in _DERIVING:
            self._consume_args(node)
            return tuple(self.new(s.derive(derived=_DERIVING[method])) for s in receiver)
        if method in _PASSTHROUGH:
            self._consume_args(node)
            return receiver
        self._consume_args(node)
        self.consume(receiver)
        return ()

    def assignments(
        self, state: Statement, args: Sequence[ast.expr], keywords: Sequence[ast.keyword]
    ) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
        """The columns an UPDATE's ``.values(...)``/``.ordered_values(...)``/``Query.update({...})``
        sets, as attribute keys of its target, and which of them it sets to NULL. None for the
        columns when any is not spelled out (``**kw``, a dict variable)."""
        pairs: list[tuple[ast.expr | str | None, ast.expr | None]] = [(k.arg, k.value) for k in keywords]
        for arg in args:
            if isinstance(arg, ast.Dict):
                pairs.extend(zip(arg.keys, arg.values, strict=True))
            elif isinstance(arg, ast.Tuple) and len(arg.elts) == 2:  # ``ordered_values((M.a, 1), ...)``
                pairs.append((arg.elts[0], arg.elts[1]))
            else:
                return None, ()
        columns: list[str] = []
        nulled: list[str] = []
        for key, value in pairs:
            column = self.assigned_column(state, key)
            if column is None:
                return None, ()
            columns.append(column)
            if isinstance(value, ast.Constant) and value.value is None:
                nulled.append(column)
        return tuple(dict.fromkeys(columns)), tuple(dict.fromkeys(nulled))

    def assigned_column(self, state: Statement, key: ast.expr | str | None) -> str | None:
        """The attribute key of the column a SET names: ``"name"``, ``name=``, ``M.name``,
        ``table.c.name``; None when it cannot be read."""
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            key = key.value
        if isinstance(key, ast.AST):
            table, attr = self.entity(key)
            if (
                table is None
                or attr is None
                or (state.target is not None and table.name != state.target.name)
            ):
                return None
            key = attr
        if key is None:
            return None  # ``**values``
        target = state.target
        if target is None or key in target.columns:
            return key
        return next((k for k, name in target.columns.items() if name == key), key)

    def join_operands(self, node: ast.AST) -> list[tuple[str, bool]]:
        """Tables named by a join argument, with whether each is on an outer join's nullable side;
        ``join(A, B)`` / ``outerjoin(A, B)`` (as in ``select_from(join(...))``) are opened up."""
        if isinstance(node, ast.Call) and self.sa_call(node, "join", "outerjoin"):
            args = positional(node)
            outer = self.sa_call(node, "outerjoin") or locks.truthy(keyword(node, "isouter"))
            found = self.join_operands(args[0]) if args else []
            if len(args) > 1:
                found += [(name, outer or was) for name, was in self.join_operands(args[1])]
            return found
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr
            in (
                "join",
                "outerjoin",
            )
        ):  # ``A.__table__.join(B.__table__, ...)``
            outer = node.func.attr == "outerjoin" or locks.truthy(keyword(node, "isouter"))
            args = positional(node)
            found = self.join_operands(node.func.value)
            if args:
                found += [(name, outer or was) for name, was in self.join_operands(args[0])]
            return found
        name = self.joined_table(node)
        return [(name, False)] if name else []

    def joined_table(self, node: ast.AST) -> str | None:
        """The table a ``.join(...)`` argument adds: a model, a Table, or a relationship attribute."""
        table, attr = self.entity(node)
        if table is None:
            return None
        if attr is None:
            return table.name
        rel = table.relationship(attr)
        return rel.target if rel is not None else None

    def order_terms(self, node: ast.AST) -> list[tuple[str, str, bool]]:
        desc = False
        target = node
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in (
                "asc", "desc", "nulls_first", "nulls_last", "nullsfirst", "nullslast",
            ):  # fmt: skip
                desc = func.attr == "desc"
                target = func.value
                if (
                    isinstance(target, ast.Call)
                    and isinstance(target.func, ast.Attribute)
                    and target.func.attr in ("asc", "desc")
                ):
                    desc = target.func.attr == "desc"
                    target = target.func.value
            elif node.args:
                name = self.qualify(func) if isinstance(func, (ast.Name, ast.Attribute)) else None
                if name and is_sqlalchemy(name, "asc", "desc"):
                    desc = name.endswith("desc")
                    target = node.args[0]
        table, col = self.entity(target)
        if table is not None and col is not None:
            return [(table.name, col, desc)]
        self.consume(self.eval(node))
        return [("", self.text(node), desc)]

    # -- loader options ------------------------------------------------------------------------

    def loader_options(self, args: Sequence[ast.expr]) -> tuple[tuple[LoaderOption, ...], bool]:
        """The loader options among ``.options(...)`` arguments; True when one cannot be read."""
        found: list[LoaderOption] = []
        opaque = False
        for arg in args:
            values: list[tuple[Evaluator, ast.AST] | ast.AST | None]
            if isinstance(arg, ast.Starred):
                values = list(self.listed(arg.value))
            elif isinstance(arg, (ast.List, ast.Tuple)):  # session.get(..., options=[...])
                values = list(arg.elts)
            else:
                values = [arg]
            for value in values:
                if isinstance(value, tuple):
                    chain = value[0].loader_chain(value[1], ())
                else:
                    chain = self.loader_chain(value, ()) if value is not None else None
                if chain is None:
                    opaque = True
                else:
                    found.extend(chain[0])
        return tuple(found), opaque

    def loader_chain(
        self, node: ast.AST, prefix: tuple[tuple[str, str], ...]
    ) -> tuple[list[LoaderOption], tuple[tuple[str, str], ...]] | None:
        """Read ``lazyload(M.rel)``, ``defaultload(M.a).lazyload(A.b)``, ``Load(M).noload("*")``,
        ``selectinload(M.a).options(...)``: the options and the path the chain ends at."""
        if not isinstance(node, ast.Call):
            return None
        func = node.func
        qualified = self.qualify(func) if isinstance(func, (ast.Name, ast.Attribute)) else None
        if qualified and qualified.startswith("sqlalchemy."):
            short = qualified.rsplit(".", 1)[-1]
            if short == "Load":
                return [], prefix
            return self._loader_step(short, node, prefix, [])
        if isinstance(func, ast.Attribute):
            inner = self.loader_chain(func.value, prefix)
            if inner is None:
                return None
            options, path = inner
            if func.attr == "options":
                for arg in node.args:
                    sub = self.loader_chain(arg, path)
                    if sub is None:
                        return None
                    options.extend(sub[0])
                return options, path
            return self._loader_step(func.attr, node, path, options)
        return None

    def _loader_step(
        self, name: str, node: ast.Call, prefix: tuple[tuple[str, str], ...], options: list[LoaderOption]
    ) -> tuple[list[LoaderOption], tuple[tuple[str, str], ...]] | None:
        if name in COLUMN_OPTIONS:
            return options, prefix
        strategy = LOADER_STRATEGIES.get(name)
        if strategy is None:
            return None
        path = prefix
        args = positional(node)
        for arg in args:  # legacy ``joinedload(M.a, A.b)`` names a whole path
            step = self.loader_step(arg)
            if step is None:
                return None
            path = (*path, step)
            options.append(LoaderOption(strategy if arg is args[-1] else "default", path))
        return options, path

    def loader_step(self, node: ast.AST) -> tuple[str, str] | None:
        """``M.rel`` -> (table, "rel"); ``"rel"`` or ``"*"`` -> ("", name); ``M.rel.of_type(X)`` too."""
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr
            in (
                "of_type",
                "and_",
            )
        ):
            return self.loader_step(node.func.value)
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, str):
                return "", value.rsplit(".", 1)[-1] if value != WILDCARD else WILDCARD
            return None
        table, attr = self.entity(node)
        if table is not None and attr is not None:
            return table.name, attr
        return None

    # -- origins spelled as methods, and locks ---------------------------------------------------

    def attribute_origin(self, func: ast.Attribute, method: str, node: ast.Call) -> tuple[Value, ...] | None:
        """Origins spelled as a method call: ``session.query(M)``, ``M.__table__.update()``,
        ``table.delete()``, ``session.get(M, pk, with_for_update=True)``, Flask-SQLAlchemy's
        ``Model.query``."""
        span = self.span(node)
        if method == "query" and positional(node):
            return self.select_like("query", node, span)
        if method == "get" and positional(node) and keyword(node, "with_for_update") is not None:
            return self.session_get(func, node, span)
        if method in _ORM_WRITES and positional(node):
            staged = self.orm_write(method, node, span)
            if staged is not None:
                return staged
        if method in _ORIGIN_METHODS:
            found = self.entities(func.value)
            if not found or any(col is not None for _t, col in found) or not self.is_table_object(func.value):
                return None
            states: list[Value] = []
            for table, _col in found:
                state = Statement(kind=method, span=span, target=table, target_text=self.text(func.value))
                if method in ("update", "delete"):
                    state = replace(state, write=span, write_kind=method.upper())
                args = positional(node)
                if args and method != "insert":
                    state = predicates.add_where(self, state, [args[0]])
                where = keyword(node, "whereclause")
                if where is not None:
                    state = predicates.add_where(self, state, [where])
                states.append(self.new(state))
            return tuple(states)
        return None

    def constructor_attributes(self, func: ast.expr, node: ast.Call) -> tuple[str, ...] | None:
        """The attributes a mapped class's constructor call sets: what the class's own
        ``__init__`` assigns to ``self`` (Airflow's ``TaskReschedule(task, run_id, ...)``), or,
        with SQLAlchemy's constructor, the keywords given (not those given None). None when not
        known: ``**kwargs``, positional arguments to SQLAlchemy's constructor, an ``__init__`` that
        hands on to ``super().__init__``."""
        models = self.models(func)
        cls = models[0].cls if len(models) == 1 else None
        program = self.scope.program
        init = program.index.method(cls, "__init__", need="") if program is not None and cls else None
        if program is not None and init is not None:
            memo = program.memo("constructor_attributes")
            if init.qualname not in memo:
                found = program.node_of(init)
                memo[init.qualname] = _self_assigned(found[1]) if found is not None else None
            known: tuple[str, ...] | None = memo[init.qualname]
            return known
        if positional(node) or any(k.arg is None for k in node.keywords):
            return None
        return tuple(
            k.arg
            for k in node.keywords
            if k.arg is not None and not (isinstance(k.value, ast.Constant) and k.value.value is None)
        )

    def set_on_instance(self, target: ast.expr, value: ast.expr) -> None:
        """``job.run_id = x`` on an instance this function made: its INSERT sets that attribute too
        (not when set to None)."""
        if not isinstance(target, ast.Attribute) or not isinstance(target.value, ast.Name):
            return
        held = self.env.get(target.value.id, ())
        if not any(isinstance(v, Instance) for v in held):
            return
        if isinstance(value, ast.Constant) and value.value is None:
            return
        self.env[target.value.id] = tuple(
            replace(v, attributes=(*v.attributes, target.attr))
            if isinstance(v, Instance) and v.attributes is not None
            else v
            for v in held
        )

    def orm_write(self, method: str, node: ast.Call, span: Span) -> tuple[Value, ...] | None:
        """``session.add(Job(...))``, ``session.add_all([...])``, ``session.merge(job)``: the rows
        they will insert (or, for merge, upsert by key) at the next flush."""
        argument = positional(node)[0]
        items = list(argument.elts) if isinstance(argument, (ast.List, ast.Tuple)) else [argument]
        tables: list[Table] = []
        columns: dict[str, tuple[str, ...] | None] = {}  # per table, what its new rows set
        for item in items:
            for value in self.eval(item):
                if isinstance(value, Instance):
                    if value.table not in tables:
                        tables.append(value.table)
                        columns[value.table.name] = value.attributes
                    else:
                        before, more = columns[value.table.name], value.attributes
                        joined = None if before is None or more is None else (*before, *more)
                        columns[value.table.name] = joined
        if not tables:
            return None
        kind = _ORM_WRITES[method]
        states = []
        for table in tables:
            preds = (
                tuple(Predicate(table.name, col, EQ) for col in table.primary_key) if kind == "MERGE" else ()
            )
            states.append(
                self.new(
                    Statement(
                        kind="insert" if kind == "INSERT" else "merge",
                        span=span,
                        target=table,
                        target_text=table.name,
                        predicates=preds,
                        write=span,
                        write_kind=kind,
                        set_attributes=columns[table.name],
                        pending=True,
                    )
                )
            )
        self.consume(states)
        return ()

    def session_get(self, func: ast.Attribute, node: ast.Call, span: Span) -> tuple[Value, ...]:
        args = positional(node)
        table, col = self.entity(args[0])
        if table is None or col is not None:
            self._consume_args(node)
            return ()
        lock_arg = keyword(node, "with_for_update")
        lock = None
        if lock_arg is not None and not (
            isinstance(lock_arg, ast.Constant) and lock_arg.value in (False, None)
        ):
            lock = locks.from_options(self, lock_arg, self.method_span(node), via="session.get")
        preds = tuple(Predicate(table.name, col_name, EQ) for col_name in table.primary_key)
        options_arg = keyword(node, "options")
        options, opaque = self.loader_options([options_arg]) if options_arg is not None else ((), False)
        mapped = self.mapped_class(args[0])
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

    def lock_helper(self, qualified: str, node: ast.Call) -> tuple[Value, ...]:
        """A configured lock helper; its statement is the first argument, positional or passed
        by keyword (``with_row_locks(query=select(...), session=session)``)."""
        statement_arg = locks.helper_statement_argument(node)
        states = tuple(
            v
            for v in (self.eval(statement_arg) if statement_arg is not None else ())
            if isinstance(v, Statement)
        )
        for arg in node.args:
            if arg is not statement_arg:
                self.consume(self.eval(arg))
        for kw in node.keywords:
            if kw.value is not statement_arg:
                self.consume(self.eval(kw.value))
        lock = locks.from_call(self, node, self.span(node), via=qualified.rsplit(".", 1)[-1])
        if not states:
            unknown = Statement(
                kind="select",
                span=self.span(node),
                target_text=self.text(statement_arg) if statement_arg is not None else "",
                lock=lock,
                from_parameter=statement_arg is not None and self.is_parameter(statement_arg),
            )
            self.consume((self.new(unknown),))
            return ()
        return tuple(self.new(s.derive(lock=lock)) for s in states)


def looks_like_condition(node: ast.AST) -> bool:
    """An expression assigned to a name that is a SQL condition (``cond = M.a == 1``)."""
    if isinstance(node, ast.Compare):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr)):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Invert):
        return True
    if isinstance(node, ast.Call):
        name = called_name(node)
        return name in ("and_", "or_", "not_", "in_", "not_in", "notin_", "is_", "is_not", "isnot",
                        "like", "ilike", "between", "contains", "startswith", "endswith")  # fmt: skip
    return False


def _leaves(body: Sequence[ast.stmt]) -> bool:
    """The block always ends in ``return`` or ``raise``."""
    return bool(body) and isinstance(body[-1], (ast.Return, ast.Raise))


def _all_rows(values: Sequence[Value]) -> bool:
    """Values that are all keys of locked rows of one known table."""
    return bool(values) and all(isinstance(v, Rows) and v.table is not None for v in values)


def _held_rows(ran: Sequence[Statement]) -> tuple[Value, ...]:
    """What running ``ran`` hands back: rows it holds locked, when it is a locking read of one table."""
    tables = {s.table_name for s in ran if s.lock is not None and s.target is not None}
    if ran and len(tables) == 1 and all(s.lock is not None for s in ran):
        return (Rows(tables.pop()),)
    return ()


def _empty(node: ast.AST) -> bool:
    """``[]``, ``set()``, ``{}``, ``defaultdict(list)``: a new empty collection."""
    if isinstance(node, (ast.List, ast.Set, ast.Tuple)):
        return not node.elts
    if isinstance(node, ast.Dict):
        return not node.keys
    if not isinstance(node, ast.Call) or node.keywords:
        return False
    name = dotted_name(node.func) or ""
    if name in ("list", "set", "dict"):
        return not node.args
    # ``defaultdict(list)``, ``defaultdict(lambda: defaultdict(list))``: empty, whatever the factory
    return name.rsplit(".", 1)[-1] == "defaultdict" and len(node.args) <= 1


def _pairs(target: ast.AST, value: ast.AST) -> list[tuple[str, ast.AST]]:
    """``a = x`` and ``a, b = x, y``: each name with the expression it is bound to."""
    if isinstance(target, ast.Name):
        return [(target.id, value)]
    if not (isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List))):
        return []
    if len(target.elts) != len(value.elts):
        return []
    return [pair for t, v in zip(target.elts, value.elts, strict=True) for pair in _pairs(t, v)]


def _target_names(target: ast.AST) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [name for element in target.elts for name in _target_names(element)]
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    return []


def _built_from(element: ast.AST, target: ast.AST) -> bool:
    """A comprehension element that is its loop variable or an attribute of it (``ti.id``)."""
    if not isinstance(target, ast.Name):
        return False
    while isinstance(element, ast.Attribute):
        element = element.value
    return isinstance(element, ast.Name) and element.id == target.id


def _self_assigned(init: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[str, ...] | None:
    """The attributes an ``__init__`` sets on ``self``; None when it hands on to another
    constructor (``super().__init__(...)``), calls one of its own methods (which may set more:
    ``self._link(trigger_id)``) or sets attributes by name."""
    found: list[str] = []
    for node in ast.walk(init):
        if isinstance(node, ast.Call):
            func = node.func
            own = (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id == "self"
            )
            if called_name(node) in ("setattr", "__init__") or own:
                return None
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        for target in targets:
            for part in ast.walk(target):
                owner = part.value if isinstance(part, ast.Attribute) else None
                if isinstance(part, ast.Attribute) and isinstance(owner, ast.Name) and owner.id == "self":
                    found.append(part.attr)
    return tuple(dict.fromkeys(found))
