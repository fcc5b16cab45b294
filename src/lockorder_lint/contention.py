"""Where writers contend: what makes a table hot, and transactions that range-lock a table and
insert into it.

A deadlock needs two transactions that run at the same time and want the same rows. The code
shows where that happens: it row-locks a table (its authors expect writers to meet there), or it
re-runs its writes on database errors (they failed under contention), or a request handler or
task runs the transaction (copies of it run at once). That evidence is gathered once over the
whole project before any file is checked. For MySQL/MariaDB, a range UPDATE/DELETE whose
transaction also inserts into the table takes a gap lock that two copies of the transaction
both get, then deadlock on their inserts; when the insert is made by a caller or a helper the
caller also calls, :func:`inserting_callers` finds it through the project's call index.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lockorder_lint.names import called_name, dotted_name, file_resolver, module_name
from lockorder_lint.parsing import LINE_BREAK_BYTES, SourceError, parse_source
from lockorder_lint.walk import walk

if TYPE_CHECKING:
    from lockorder_lint.builders import Evaluator
    from lockorder_lint.engine import Project
    from lockorder_lint.summaries import Program
    from lockorder_lint.units import Unit

# Decorators that make a function a request handler or a task: many copies run at once.
_ENTRY_POINTS = frozenset(
    {"route", "get", "post", "put", "patch", "delete", "expose", "api_route", "websocket", "task",
     "shared_task", "periodic_task", "action", "endpoint"}
)  # fmt: skip
# Decorators (and docket's ``Retry`` parameter) that run a function again when it fails.
_RETRY_NAME = re.compile(r"retr(?:y|ies|ying)|on_exception|wrap_db_retry", re.IGNORECASE)
# The text that may make a function retried (then confirmed on its decorators and defaults).
RETRY_TRIGGER = rb"retr(?:y|ies|ying)|Retry|on_exception"
MAX_CALLER_DEPTH = 3  # a range write's helper, the helper's helper, and the transaction above
MAX_CALLER_FILES = 40  # files calling one name, beyond which its callers are not looked for


@dataclass(frozen=True)
class Effect:
    """One row-level effect of a function: ``lock`` (a locking read), ``insert`` (an INSERT or
    ORM add/merge), ``range`` (an UPDATE/DELETE that does not name its rows by the whole primary
    key) or ``keyed`` (one that does)."""

    table: str
    kind: str
    line: int


@dataclass(frozen=True)
class FunctionEffects:
    """What one function does to rows, and what says copies of it run at once."""

    qualname: str  # module-qualified
    path: str
    line: int  # of the ``def``
    where: str  # ``display:line Class.method``, as evidence is shown
    effects: tuple[Effect, ...]
    retried: str = ""  # the retry that re-runs it on errors, if any
    entry: bool = False  # a request handler or a task

    def tables(self, kind: str) -> set[str]:
        return {e.table for e in self.effects if e.kind == kind}


@dataclass
class Contention:
    """The project's contention evidence: hot tables with the reasons, and what retries what."""

    hot: dict[str, list[str]] = field(default_factory=dict)
    # (path, def line) of functions a retry re-runs, with what retries them
    retried: dict[tuple[str, int], str] = field(default_factory=dict)

    def digest(self) -> str:
        """What results depend on, for the result cache."""
        parts = [f"{t}:{len(w)}" for t, w in sorted(self.hot.items())]
        parts += [f"{p}:{line}" for (p, line) in sorted(self.retried)]
        return "|".join(parts)


def handles_requests(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A web endpoint (Flask, FastAPI, Flask-AppBuilder's ``@expose``) or a task queue's task."""
    for decorator in function.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = (dotted_name(target) or "").rsplit(".", 1)[-1]
        if name in _ENTRY_POINTS:
            return True
    return False


def retried_by(function: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """What re-runs the function when it raises: a retry decorator (tenacity, backoff, oslo.db,
    Airflow's ``retry_db_transaction``), docket's ``retry: Retry = Retry(...)`` parameter, or a
    tenacity ``for attempt in Retrying(...)`` loop in its body; "" if nothing does."""
    for decorator in function.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = (dotted_name(target) or "").rsplit(".", 1)[-1]
        if _RETRY_NAME.search(name) and "inactive" not in name:  # neutron's retries only outside
            return f"@{name}"
    args = function.args
    for default in [*args.defaults, *(d for d in args.kw_defaults if d is not None)]:
        if isinstance(default, ast.Call) and (dotted_name(default.func) or "").rsplit(".", 1)[-1] in (
            "Retry",
            "ExponentialRetry",
        ):
            return "a docket Retry"
    for node in walk(function):
        if isinstance(node, (ast.For, ast.AsyncFor)) and isinstance(node.iter, ast.Call):
            name = (dotted_name(node.iter.func) or "").rsplit(".", 1)[-1]
            if _RETRY_NAME.search(name):
                return f"a {name} loop"
    return ""


def _with_nested(
    function: ast.FunctionDef | ast.AsyncFunctionDef,
) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    from lockorder_lint.units import nested_functions

    return [function, *nested_functions(function)]


def unit_effects(unit: Unit, display: str) -> FunctionEffects:
    """The row-level effects of one analysed function."""
    effects: list[Effect] = []
    for statement in unit.statements:
        table = statement.table_name
        if table is None:
            continue
        if statement.lock is not None:
            effects.append(Effect(table, "lock", statement.lock.span.line))
        if statement.write is None:
            continue
        if statement.kind in ("insert", "merge"):
            effects.append(Effect(table, "insert", statement.write.line))
        elif statement.pins_primary_key() or statement.writes_held_rows():
            effects.append(Effect(table, "keyed", statement.write.line))
        else:
            effects.append(Effect(table, "range", statement.write.line))
    module = unit.scope.resolver.module
    return FunctionEffects(
        qualname=f"{module}.{unit.qualname}",
        path=unit.scope.path,
        line=unit.node.lineno,
        where=f"{display}:{unit.node.lineno} {unit.qualname}",
        effects=tuple(dict.fromkeys(effects)),
        retried=retried_by(unit.node),
        entry=handles_requests(unit.node),
    )


def file_effects(
    data: bytes, path: Path, display: str, project: Project, wrappers: Sequence[str] = ()
) -> list[FunctionEffects]:
    """The effects of the functions of one file that lock rows (themselves, or through a lock
    helper or one of the project's ``wrappers`` that add FOR UPDATE) or that a retry re-runs."""
    from lockorder_lint.engine import candidate_scope, hit_lines
    from lockorder_lint.raw_sql import LOCK_TRIGGER
    from lockorder_lint.units import candidate_functions, units_of

    names = [h.rsplit(".", 1)[-1] for h in project.config.lock_helpers] + list(wrappers)
    helpers = [re.escape(name).encode() + rb"\s*\(" for name in dict.fromkeys(names)]
    locking = re.compile(b"|".join([rb"with_for_update", LOCK_TRIGGER, *helpers]))
    retrying = re.compile(RETRY_TRIGGER)
    if not (locking.search(data) or retrying.search(data)):
        return []
    try:
        source = parse_source(data, display)
    except SourceError:
        return []
    module = module_name(path, project.root)
    resolver = file_resolver(source.tree, module, path.name == "__init__.py")
    breaks = [m.start() for m in LINE_BREAK_BYTES.finditer(data)]
    hits = {"lock": hit_lines(data, locking, breaks), "retry": hit_lines(data, retrying, breaks)}
    found: list[FunctionEffects] = []
    for candidate in candidate_functions(source.tree, module, hits):
        if "lock" not in candidate.rules and not any(retried_by(f) for f in _with_nested(candidate.node)):
            continue  # "retry" in its text, but nothing re-runs it
        scope = candidate_scope(candidate, source, resolver, project, path)
        try:
            for unit in units_of(candidate, scope):
                summary = unit_effects(unit, display)
                if summary.tables("lock") or (summary.retried and summary.effects):
                    found.append(summary)
        except Exception:  # evidence is best effort: a function that cannot be followed adds none
            continue
    return found


def gather(summaries: Sequence[FunctionEffects]) -> Contention:
    """The project's contention evidence from its functions' effects."""
    found = Contention()
    for summary in summaries:
        if summary.retried:
            found.retried[(summary.path, summary.line)] = summary.retried
        for effect in summary.effects:
            if effect.kind == "lock":
                _add(found.hot, effect.table, f"row-locked at {_at(summary, effect)}")
            elif summary.retried:
                _add(found.hot, effect.table, f"written under {summary.retried} at {_at(summary, effect)}")
    return found


def _at(summary: FunctionEffects, effect: Effect) -> str:
    display, _, name = summary.where.partition(" ")
    return f"{display.rsplit(':', 1)[0]}:{effect.line} {name}"


def _add(evidence: dict[str, list[str]], table: str, reason: str) -> None:
    reasons = evidence.setdefault(table, [])
    if reason not in reasons:
        reasons.append(reason)


# -- range writes whose transaction inserts elsewhere ------------------------------------------


def inserting_callers(program: Program, qualname: str, table: str) -> list[str]:
    """The callers (a few levels up) of function ``qualname`` whose transaction also inserts
    into ``table``, themselves or through another helper: each as ``path:line Class.method``.
    Callers are found by name in the project's call index, then confirmed by resolving the call
    as the checker resolves any call; what they insert comes from their statements."""
    key = f"inserting-callers:{qualname}:{table}"
    return list(program.answer(key, lambda: tuple(_inserting_callers(program, qualname, table))))


def _inserting_callers(program: Program, qualname: str, table: str) -> list[str]:
    composers: list[str] = []
    frontier = [qualname]
    seen = set(frontier)
    for _ in range(MAX_CALLER_DEPTH):
        upper: list[str] = []
        for callee in frontier:
            for caller in _callers(program, callee):
                if caller.qualname in seen:
                    continue
                seen.add(caller.qualname)
                if table in caller.inserts or any(table in inserted_tables(program, c) for c in caller.calls):
                    composers.append(caller.where)
                else:
                    upper.append(caller.qualname)
        frontier = upper
        if not frontier:
            break
    return composers


def inserted_tables(program: Program, qualname: str) -> frozenset[str]:
    """Tables a project function inserts into (INSERT, ORM add/merge) in its own body."""
    running = program.memo("inserted_tables")
    if qualname in running:
        return frozenset()  # a recursive call sees nothing
    running[qualname] = True
    try:
        return program.answer(f"inserted:{qualname}", lambda: _inserted_tables(program, qualname))
    finally:
        del running[qualname]


def _inserted_tables(program: Program, qualname: str) -> frozenset[str]:
    info = program.index.function(qualname, "")
    made = program.evaluator_for(info, 1) if info is not None else None
    if made is None:
        return frozenset()
    evaluator, node = made
    try:
        statements = evaluator.run(node)
    except Exception:  # a function we cannot follow inserts nothing we know of
        statements = []
    return frozenset(s.table_name for s in statements if s.kind in ("insert", "merge") and s.table_name)


@dataclass(frozen=True)
class _Caller:
    qualname: str
    where: str
    calls: tuple[str, ...]  # the project functions it calls, resolved
    inserts: frozenset[str]  # tables it inserts into itself


def _callers(program: Program, qualname: str) -> list[_Caller]:
    name = qualname.rsplit(".", 1)[-1]
    found: list[_Caller] = []
    paths = program.callers_named(name)
    if len(paths) <= MAX_CALLER_FILES:  # a name called everywhere (``set``, ``run``) is not followed
        pattern = re.compile(rf"\b{re.escape(name)}\s*\(")
        for path in paths:
            key = f"callers-in:{path}:{qualname}"  # one file's answer outlives edits elsewhere
            work_out = functools.partial(_callers_in, program, path, name, qualname, pattern)
            found.extend(program.answer(key, work_out))
    return found


def _callers_in(
    program: Program, path: str, name: str, qualname: str, pattern: re.Pattern[str]
) -> tuple[_Caller, ...]:
    """The functions of one file with a call named ``name`` that resolves to ``qualname``. Such
    a call is first resolved from the function's parameters and names alone; only a function
    that calls it through a local variable is followed first (its types come from its body)."""
    from lockorder_lint.builders import Evaluator, Scope

    loaded = program.file(path)
    if loaded is None:
        return ()
    text = loaded.source.text
    hits = [text.count("\n", 0, m.start()) + 1 for m in pattern.finditer(text)]
    found: list[_Caller] = []
    for function_name, node in loaded.functions.items():
        end = node.end_lineno or node.lineno
        if not any(node.lineno <= hit <= end for hit in hits):
            continue
        calls = [
            c for c in walk(node) if isinstance(c, ast.Call) and isinstance(c.func, (ast.Name, ast.Attribute))
        ]
        named = [c for c in calls if called_name(c) == name]
        if not named:
            continue
        info = program.index.function(function_name, "")
        scope = Scope(
            source=loaded.source,
            resolver=loaded.resolver,
            catalog=program.catalog,
            program=program,
            class_qualname=info.class_qualname if info is not None else None,
            qualname=function_name,
            path=path,
        )
        evaluator = Evaluator(scope)
        try:
            evaluator.types.update(program.parameter_types(evaluator, node))
            if not any(_resolves_to(program, evaluator, c, qualname) for c in named):
                if not any(_through_local(evaluator, c) for c in named):
                    continue
                evaluator = Evaluator(scope)
                statements = evaluator.run(node)
                if not any(_resolves_to(program, evaluator, c, qualname) for c in named):
                    continue
            else:
                statements = evaluator.run(node)  # the body's own names type the other calls
            resolved = [hit[0].qualname for c in calls if (hit := program.resolve_call(evaluator, c, ""))]
        except Exception:  # a caller we cannot follow is not counted
            continue
        local = function_name[len(loaded.resolver.module) + 1 :]
        inserts = frozenset(
            s.table_name for s in statements if s.kind in ("insert", "merge") and s.table_name
        )
        display = program.display(path)
        found.append(_Caller(function_name, f"{display}:{node.lineno} {local}", tuple(resolved), inserts))
    return tuple(found)


def _resolves_to(program: Program, evaluator: Evaluator, call: ast.Call, qualname: str) -> bool:
    hit = program.resolve_call(evaluator, call, "")
    return hit is not None and hit[0].qualname == qualname


def _through_local(evaluator: Evaluator, call: ast.Call) -> bool:
    """``helper.name(...)`` where ``helper`` is a local variable: its class is known only after
    following the function's body."""
    func = call.func
    if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)):
        return False
    owner = func.value.id
    return (
        owner not in ("self", "cls")
        and owner not in evaluator.types
        and evaluator.qualify(func.value) is None
    )
