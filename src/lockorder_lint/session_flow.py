"""LCK003's flow analysis: where a session whose transaction a swallowed database error aborted
is used again before ``rollback()``.

A forward may-analysis over one function body. Entering a handler that can catch a database
error taints each session the ``try`` body worked on; a reset (``rollback()``, ``close()``...)
or rebinding the name clears the taint; a use of a tainted session is recorded.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from lockorder_lint.dialects import dialects_where_true, normalise
from lockorder_lint.names import dotted_name
from lockorder_lint.sessions import (
    SCOPES,
    STAGING_METHODS,
    NodeCache,
    Qualify,
    SessionNames,
    catches_every_database_error,
    classify_call,
    database_error,
    own_nodes,
)

_RETRY_ITERATOR = re.compile(r"retr(?:y|ies|ying)", re.IGNORECASE)
_TRY = (ast.Try, *([ast.TryStar] if hasattr(ast, "TryStar") else []))
_WITH = (ast.With, ast.AsyncWith)
_LOOP = (ast.For, ast.AsyncFor, ast.While)


def _protected(stmt: ast.With | ast.AsyncWith, sessions: SessionNames) -> set[str]:
    """Sessions whose work inside this ``with`` cannot leave an outer transaction aborted: a
    savepoint (``begin_nested``) or a ``begin()`` block rolls back on error, and a ``with ... as
    session`` target is a different session from the one outside."""
    names: set[str] = set()
    for item in stmt.items:
        expr = item.context_expr
        if (
            isinstance(expr, ast.Call)
            and isinstance(expr.func, ast.Attribute)
            and expr.func.attr in ("begin_nested", "begin")
        ):
            owner = sessions.of(expr.func.value)
            if owner is not None:
                names.add(owner)
        if item.optional_vars is not None:
            bound = dotted_name(item.optional_vars)
            if bound is not None:
                names.add(bound)
    return names


def session_work(body: Sequence[ast.stmt], sessions: SessionNames, qualify: Qualify) -> dict[str, ast.Call]:
    """The first call doing work on each session in ``body`` whose failure would leave that
    session's transaction aborted. Not work: staging calls (``add``, ``delete``), acquiring a
    context (the items of a ``with``), and work shielded by a savepoint, a ``begin()`` block, a
    fresh ``with ... as session``, or an inner ``try`` whose database handler rolls back first."""
    work: dict[str, ast.Call] = {}

    def visit_block(block: Sequence[ast.AST], shielded: frozenset[str]) -> None:
        for item in block:
            visit(item, shielded)

    def visit(node: ast.AST, shielded: frozenset[str]) -> None:
        if isinstance(node, SCOPES):
            return
        if isinstance(node, _WITH):
            visit_block(node.body, shielded | _protected(node, sessions))
            return
        if isinstance(node, _TRY):
            visit_block(node.body, shielded | _rolled_back_by_handler(node, sessions, qualify))
            for handler in node.handlers:
                visit_block(handler.body, shielded)
            visit_block(node.orelse, shielded)
            visit_block(node.finalbody, shielded)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, shielded)
        if isinstance(node, ast.Call):
            for found in classify_call(node, sessions):
                if found.kind != "use" or found.session in shielded:
                    continue
                func = node.func
                staging = (
                    isinstance(func, ast.Attribute)
                    and func.attr in STAGING_METHODS
                    and sessions.of(func.value) == found.session
                )
                if not staging:
                    work.setdefault(found.session, node)

    visit_block(body, frozenset())
    return work


def _rolled_back_by_handler(stmt: ast.Try, sessions: SessionNames, qualify: Qualify) -> set[str]:
    """Sessions that a handler of ``stmt`` catching database errors rolls back before using:
    an error from that try body does not leave them aborted for an outer handler."""
    names: set[str] = set()
    for handler in stmt.handlers:
        if database_error(handler.type, qualify) is None:
            continue
        used: set[str] = set()
        for line in handler.body:
            for call in sessions.nodes.calls_in(line):
                for effect in classify_call(call, sessions):
                    if effect.kind == "reset" and effect.session not in used:
                        names.add(effect.session)
                    used.add(effect.session)
    return names


@dataclass(frozen=True)
class Catch:
    """A place that swallows a database error: an ``except`` clause, or a tenacity ``with
    attempt:`` block inside a retry loop (which swallows the error and runs the loop again)."""

    node: ast.AST
    exception: str
    work: dict[str, ast.Call] = field(hash=False, compare=False)


HANDLER, AFTER, LOOP = "handler", "after", "loop"


@dataclass(frozen=True)
class AbortedUse:
    """A use of ``session`` that can run after ``catch`` swallowed a database error raised by
    ``catch.work[session]``, with no rollback in between. ``where`` is ``handler`` (inside the
    except clause), ``after`` (on the path after the try statement) or ``loop`` (in the next
    iteration of the enclosing loop)."""

    session: str
    use: ast.Call
    statement: ast.AST
    catch: Catch
    where: str


# A taint: (session, catch index, phase).
Taint = tuple[str, int, str]
State = frozenset[Taint]


@dataclass
class _Exits:
    """Where control leaves a block: falling off its end (None when it cannot), break, continue.
    Returns and raises leave the function; no session use can follow them here."""

    normal: State | None
    breaks: State = frozenset()
    continues: State = frozenset()


def _union(*states: State | None) -> State | None:
    present = [s for s in states if s is not None]
    if not present:
        return None
    result: frozenset[Taint] = frozenset()
    for state in present:
        result |= state
    return result


def _is_forever(test: ast.AST) -> bool:
    return isinstance(test, ast.Constant) and bool(test.value)


class AbortedSessionAnalysis:
    """For each catch and session, the first use inside the handler and the first use after it
    (after the try statement, or around the loop) are kept."""

    _MAX_LOOP_PASSES = 4

    def __init__(
        self,
        function: ast.FunctionDef | ast.AsyncFunctionDef,
        sessions: SessionNames,
        qualify: Qualify,
        dialects: Sequence[str],
    ) -> None:
        self.function = function
        self.dialects = frozenset(normalise(d) for d in dialects)
        self.sessions = sessions
        self.qualify = qualify
        self.catches: list[Catch] = []
        self._catch_index: dict[int, int] = {}
        self.found: dict[tuple[int, str, str], AbortedUse] = {}
        self._retry_targets: list[str] = []
        self._statement: ast.AST = function
        self._work_of: dict[int, dict[str, ast.Call]] = {}

    def run(self) -> list[AbortedUse]:
        self.block(self.function.body, frozenset())
        return list(self.found.values())

    # -- blocks and statements

    def block(self, body: Sequence[ast.stmt], state: State) -> _Exits:
        current: State | None = state
        breaks: State = frozenset()
        continues: State = frozenset()
        for item in body:
            if current is None:
                break
            exits = self.statement(item, current)
            breaks |= exits.breaks
            continues |= exits.continues
            current = exits.normal
        return _Exits(current, breaks, continues)

    def statement(self, stmt: ast.stmt, state: State) -> _Exits:
        if isinstance(stmt, SCOPES):
            return _Exits(state)
        if isinstance(stmt, ast.If):
            return self.if_statement(stmt, state, self.dialects)
        if isinstance(stmt, _LOOP):
            return self.loop(stmt, state)
        if isinstance(stmt, _TRY):
            return self.try_statement(stmt, state)
        if isinstance(stmt, _WITH):
            return self.with_statement(stmt, state)
        if isinstance(stmt, ast.Match):
            state = self.expression(stmt.subject, state)
            results = [self.block(case.body, state) for case in stmt.cases]
            return _Exits(
                _union(state, *(r.normal for r in results)),
                _union(frozenset(), *(r.breaks for r in results)) or frozenset(),
                _union(frozenset(), *(r.continues for r in results)) or frozenset(),
            )
        return self.small(stmt, state)

    def if_statement(self, stmt: ast.If, state: State, live: frozenset[str]) -> _Exits:
        """An ``if``; a branch that only runs on databases the configuration does not target
        (``if dialect == "sqlite":``) is skipped, since what it does there differs."""
        self._statement = stmt.test
        state = self.expression(stmt.test, state)
        matched = dialects_where_true(stmt.test)
        body_live = live if matched is None else live & matched
        else_live = live if matched is None else live - matched
        then = self.block(stmt.body, state) if body_live else _Exits(None)
        if not else_live and matched is not None:
            other = _Exits(None)
        elif len(stmt.orelse) == 1 and isinstance(stmt.orelse[0], ast.If):
            other = self.if_statement(stmt.orelse[0], state, else_live)
        elif stmt.orelse:
            other = self.block(stmt.orelse, state)
        else:
            other = _Exits(state)
        return _Exits(
            _union(then.normal, other.normal),
            then.breaks | other.breaks,
            then.continues | other.continues,
        )

    def small(self, small: ast.stmt, state: State) -> _Exits:
        self._statement = small
        if isinstance(small, ast.Break):
            return _Exits(None, breaks=state)
        if isinstance(small, ast.Continue):
            return _Exits(None, continues=state)
        state = self.expression(small, state)
        if isinstance(small, (ast.Return, ast.Raise)):
            return _Exits(None)
        if isinstance(small, (ast.Assign, ast.AnnAssign)):
            targets = small.targets if isinstance(small, ast.Assign) else [small.target]
            for target in targets:
                state = self._rebind(target, state)
        return _Exits(state)

    def _rebind(self, target: ast.AST, state: State) -> State:
        """A new object bound to a session's name is a fresh session: its taint ends."""
        if isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                state = self._rebind(element, state)
            return state
        dotted = dotted_name(target)
        if dotted is None:
            return state
        return frozenset(t for t in state if t[0] != dotted)

    def expression(self, node: ast.AST, state: State) -> State:
        if not state:  # nothing is aborted: neither uses nor resets matter
            return state
        for call in self.sessions.nodes.calls_in(node):
            for effect in classify_call(call, self.sessions):
                if effect.kind == "reset":
                    state = frozenset(t for t in state if t[0] != effect.session)
                    continue
                for session, index, phase in state:
                    if session == effect.session:
                        self._record(session, index, phase, call)
        return state

    def _record(self, session: str, index: int, phase: str, call: ast.Call) -> None:
        group = HANDLER if phase == HANDLER else AFTER
        key = (index, session, group)
        if key not in self.found:
            self.found[key] = AbortedUse(session, call, self._statement, self.catches[index], phase)

    # -- compound statements

    def loop(self, stmt: ast.For | ast.AsyncFor | ast.While, state: State) -> _Exits:
        head = stmt.test if isinstance(stmt, ast.While) else stmt.iter
        self._statement = head
        state = self.expression(head, state)
        retry = (
            not isinstance(stmt, ast.While)
            and isinstance(stmt.iter, ast.Call)
            and isinstance(stmt.target, ast.Name)
            and bool(_RETRY_ITERATOR.search(dotted_name(stmt.iter.func) or ""))
        )
        first_catch = len(self.catches)
        if retry:
            assert not isinstance(stmt, ast.While) and isinstance(stmt.target, ast.Name)
            self._retry_targets.append(stmt.target.id)
        top = state
        breaks: State = frozenset()
        for _ in range(self._MAX_LOOP_PASSES):
            exits = self.block(stmt.body, top)
            breaks |= exits.breaks
            back = _union(exits.normal, exits.continues) or frozenset()
            new_top = top | frozenset((s, i, LOOP if p == AFTER else p) for s, i, p in back)
            if new_top == top:
                break
            top = new_top
        if retry:
            self._retry_targets.pop()
            # A retry iterator that runs out raises the last error: nothing after the loop runs
            # on the session its own attempts aborted.
            top = frozenset(t for t in top if t[1] < first_catch or not self._is_retry_catch(t[1]))
        exhausted: State | None = None if isinstance(stmt, ast.While) and _is_forever(stmt.test) else top
        if stmt.orelse and exhausted is not None:
            exhausted = self.block(stmt.orelse, exhausted).normal
        return _Exits(_union(exhausted, breaks if breaks else None))

    def _is_retry_catch(self, index: int) -> bool:
        return isinstance(self.catches[index].node, _WITH)

    def _catch(self, node: ast.AST, exception: str, work: dict[str, ast.Call]) -> int:
        key = id(node)
        if key not in self._catch_index:
            self._catch_index[key] = len(self.catches)
            self.catches.append(Catch(node, exception, work))
        return self._catch_index[key]

    def try_statement(self, stmt: ast.Try, state: State) -> _Exits:
        body = self.block(stmt.body, state)
        catching: list[str | None] = []
        shadowed = False  # an earlier clause already took every database error
        for clause in stmt.handlers:
            catching.append(None if shadowed else database_error(clause.type, self.qualify))
            shadowed = shadowed or catches_every_database_error(clause.type, self.qualify)
        work = self._work(stmt.body) if any(c is not None for c in catching) else {}
        # The handler may be entered from anywhere in the body; taints the body started with or
        # produced reach it too.
        entry = state | (body.normal or frozenset())
        normal: list[State | None] = []
        breaks, continues = body.breaks, body.continues
        if stmt.orelse and body.normal is not None:
            other = self.block(stmt.orelse, body.normal)
            normal.append(other.normal)
            breaks |= other.breaks
            continues |= other.continues
        else:
            normal.append(body.normal)
        for position, handler in enumerate(stmt.handlers):
            self._statement = handler
            exception = catching[position] if work else None
            handler_entry = entry
            index = -1
            if exception is not None:
                index = self._catch(handler, exception, work)
                handler_entry = entry | frozenset((s, index, HANDLER) for s in work)
            exits = self.block(handler.body, handler_entry)
            normal.append(self._leave(exits.normal, index))
            breaks |= self._leave(exits.breaks, index) or frozenset()
            continues |= self._leave(exits.continues, index) or frozenset()
        after = _Exits(_union(*normal), breaks, continues)
        if not stmt.finalbody:
            return after
        final = stmt.finalbody
        through = self.block(final, after.normal) if after.normal is not None else None
        final_breaks = self.block(final, after.breaks).normal if after.breaks else None
        final_continues = self.block(final, after.continues).normal if after.continues else None
        return _Exits(
            through.normal if through is not None else None,
            (final_breaks or frozenset()) | (through.breaks if through else frozenset()),
            (final_continues or frozenset()) | (through.continues if through else frozenset()),
        )

    def _work(self, body: Sequence[ast.stmt]) -> dict[str, ast.Call]:
        """``session_work`` of a block, once: loops analyse their bodies more than once."""
        key = id(body)
        found = self._work_of.get(key)
        if found is None:
            found = self._work_of[key] = session_work(body, self.sessions, self.qualify)
        return found

    @staticmethod
    def _leave(state: State | None, index: int) -> State | None:
        """Leaving the handler: its taints now describe the path after the try statement."""
        if state is None or index < 0:
            return state
        return frozenset((s, i, AFTER if i == index and p == HANDLER else p) for s, i, p in state)

    def with_statement(self, stmt: ast.With | ast.AsyncWith, state: State) -> _Exits:
        for item in stmt.items:
            self._statement = item.context_expr
            state = self.expression(item.context_expr, state)
            if item.optional_vars is not None:
                state = self._rebind(item.optional_vars, state)
        attempt = (
            len(stmt.items) == 1
            and stmt.items[0].optional_vars is None
            and isinstance(stmt.items[0].context_expr, ast.Name)
            and stmt.items[0].context_expr.id in self._retry_targets
        )
        exits = self.block(stmt.body, state)
        if not attempt:
            return exits
        work = self._work(stmt.body)
        if not work:
            return exits
        index = self._catch(stmt, "a tenacity `with attempt:` block (it swallows the error to retry)", work)
        swallowed = state | (exits.normal or frozenset()) | frozenset((s, index, AFTER) for s in work)
        return _Exits(_union(exits.normal, swallowed), exits.breaks, exits.continues)


def is_async_session(
    session: str, sessions: SessionNames, function: ast.FunctionDef | ast.AsyncFunctionDef
) -> bool:
    """Whether ``session.rollback()`` must be awaited: an async type or ``async with`` binding
    says so; otherwise an awaited call on the session does; otherwise an async function does."""
    if session in sessions.asynchronous:
        return sessions.asynchronous[session]
    for node in own_nodes(function):
        if isinstance(node, ast.Await) and isinstance(node.value, ast.Call):
            effects = classify_call(node.value, sessions)
            if any((f.session == session and f.kind != "use") or _on(f.call, session) for f in effects):
                return True
    if session in sessions.declared:
        return False
    return isinstance(function, ast.AsyncFunctionDef)


def _on(call: ast.Call, session: str) -> bool:
    """The call is a method of ``session`` itself (not the session passed to something else)."""
    func = call.func
    return isinstance(func, ast.Attribute) and dotted_name(func.value) == session


def aborted_session_uses(
    function: ast.FunctionDef | ast.AsyncFunctionDef,
    qualify: Qualify,
    session_patterns: Sequence[str],
    dialects: Sequence[str] = ("postgresql",),
    lock_helpers: Sequence[str] = (),
) -> tuple[list[AbortedUse], SessionNames]:
    """Every use of a session that a swallowed database error may have left aborted."""
    sessions = SessionNames(function, qualify, session_patterns, NodeCache(), lock_helpers)
    analysis = AbortedSessionAnalysis(function, sessions, qualify, dialects)
    return analysis.run(), sessions
