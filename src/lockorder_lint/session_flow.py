"""LCK003's flow analysis: where a session whose transaction a swallowed database error aborted
is used again before ``rollback()``.

A forward may-analysis over one function body. Entering a handler that can catch a database
error taints each session the ``try`` body worked on; a reset (``rollback()``, ``close()``...)
or rebinding the name clears the taint; a use of a tainted session is recorded.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from lockorder_lint.dialects import dialects_where_true, normalise
from lockorder_lint.names import dotted_name
from lockorder_lint.sessions import (
    RESET_METHODS,
    SCOPES,
    Calls,
    NodeCache,
    Qualify,
    SessionNames,
    call_text,
    catches_every_database_error,
    chained_receiver,
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


def session_work(
    body: Sequence[ast.stmt],
    sessions: SessionNames,
    qualify: Qualify,
    calls: Calls | None = None,
    strict: bool = False,
) -> dict[str, ast.Call]:
    """For each session ``body`` works on, the call that names the database error it can raise
    and that would leave the session's transaction aborted: the first call that writes, else the
    first that can fail (a write is where lock conflicts and constraint violations happen). Not
    work: staging calls (``add``, ``delete``), acquiring a context (the items of a ``with``), and
    work shielded by a savepoint, a ``begin()`` block, a fresh ``with ... as session``, or an inner
    ``try`` whose database handler rolls back first (with ``strict``, only one that takes every
    database error: the others leave the transaction aborted)."""
    work: dict[str, ast.Call] = {}
    writing: dict[str, ast.Call] = {}

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
            rolled_back = _rolled_back_by_handler(node, sessions, qualify, calls, strict)
            visit_block(node.body, shielded | rolled_back)
            for handler in node.handlers:
                visit_block(handler.body, shielded)
            visit_block(node.orelse, shielded)
            visit_block(node.finalbody, shielded)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, shielded)
        if isinstance(node, ast.Call):
            for found in classify_call(node, sessions, calls):
                if found.kind == "use" and found.work and found.session not in shielded:
                    work.setdefault(found.session, node)
                    if found.writes:
                        writing.setdefault(found.session, node)

    visit_block(body, frozenset())
    return {session: writing.get(session, call) for session, call in work.items()}


def _rolled_back_by_handler(
    stmt: ast.Try, sessions: SessionNames, qualify: Qualify, calls: Calls | None, strict: bool = False
) -> set[str]:
    """Sessions that a handler of ``stmt`` catching database errors rolls back before using:
    an error from that try body does not leave them aborted for an outer handler. With
    ``strict``, only sessions that every clause catching database errors rolls back, up to one
    that takes them all: errors the clauses let through leave the transaction aborted."""
    names: set[str] = set()
    every: set[str] | None = None
    for handler in stmt.handlers:
        if database_error(handler.type, qualify) is None:
            continue
        resets: set[str] = set()
        used: set[str] = set()
        for line in handler.body:
            for call in sessions.nodes.calls_in(line):
                for effect in classify_call(call, sessions, calls):
                    if effect.kind == "reset" and effect.session not in used:
                        resets.add(effect.session)
                    used.add(effect.session)
        names |= resets
        every = resets if every is None else every & resets
        if strict and catches_every_database_error(handler.type, qualify):
            return every
    return set() if strict else names


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


# What is known false on a path: (name, True) for a name that is None there, (name, False) for one
# that is some other false value (``False``, ``0``, ``""``).
Falsy = frozenset[tuple[str, bool]]
# A taint: (session, catch index, phase, names known false on this path since the catch).
Taint = tuple[str, int, str, Falsy]
State = frozenset[Taint]
_NONE: Falsy = frozenset()
# Calls that never return: after one, nothing on that path runs.
_NO_RETURN_CALLS = frozenset(
    {"sys.exit", "os._exit", "exit", "quit", "flask.abort", "werkzeug.exceptions.abort", "pytest.fail",
     "pytest.skip", "pytest.exit", "typer.Exit"}
)  # fmt: skip


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
        calls: Calls | None = None,
    ) -> None:
        self.function = function
        self.calls = calls
        self.dialects = frozenset(normalise(d) for d in dialects)
        self.sessions = sessions
        self.qualify = qualify
        self.catches: list[Catch] = []
        self._catch_index: dict[int, int] = {}
        self.found: dict[tuple[int, str, str], AbortedUse] = {}
        self._retry_targets: list[str] = []
        self._retry_iterators: dict[str, ast.Call] = {}
        # The blocks holding the statement being analysed, outermost first, with its position (or
        # that of the statement holding it) in each.
        self._blocks: list[tuple[Sequence[ast.stmt], int]] = []
        self._statement: ast.AST = function
        self._work_of: dict[int, dict[str, ast.Call]] = {}

    def run(self) -> list[AbortedUse]:
        """The uses found, by catch (in the order the analysis met them: an inner ``try`` of a
        ``try`` body before the outer one's clauses, an outer clause before a ``try`` in it)."""
        self.block(self.function.body, frozenset())
        return [self.found[key] for key in sorted(self.found, key=lambda k: (k[0], k[2], k[1]))]

    # -- blocks and statements

    def block(self, body: Sequence[ast.stmt], state: State) -> _Exits:
        current: State | None = state
        breaks: State = frozenset()
        continues: State = frozenset()
        level = len(self._blocks)
        self._blocks.append((body, 0))
        for position, item in enumerate(body):
            if current is None:
                break
            self._blocks[level] = (body, position)
            exits = self.statement(item, current)
            breaks |= exits.breaks
            continues |= exits.continues
            current = exits.normal
        del self._blocks[level:]
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
        then_state, else_state = _split_on_none(stmt.test, state)
        if _checks_invalidation(stmt.test):
            then_state = frozenset()  # the recipe's reconnect: a fresh connection, nothing aborted
        then = self.block(stmt.body, then_state) if body_live else _Exits(None)
        if not else_live and matched is not None:
            other = _Exits(None)
        elif len(stmt.orelse) == 1 and isinstance(stmt.orelse[0], ast.If):
            other = self.if_statement(stmt.orelse[0], else_state, else_live)
        elif stmt.orelse:
            other = self.block(stmt.orelse, else_state)
        else:
            other = _Exits(else_state)
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
        if isinstance(small, (ast.Return, ast.Raise)) or (state and self._never_returns(small)):
            return _Exits(None)
        if isinstance(small, (ast.Assign, ast.AnnAssign)):
            targets = small.targets if isinstance(small, ast.Assign) else [small.target]
            for target in targets:
                state = self._rebind(target, state)
        return _Exits(state)

    def _never_returns(self, small: ast.stmt) -> bool:
        """``sys.exit(1)``, ``abort(404)``, a project function annotated ``NoReturn``."""
        if not isinstance(small, ast.Expr):
            return False
        call = small.value.value if isinstance(small.value, ast.Await) else small.value
        if not isinstance(call, ast.Call):
            return False
        qualified = self.qualify(call.func) or dotted_name(call.func) or ""
        if qualified in _NO_RETURN_CALLS or qualified.rsplit(".", 1)[-1] in ("abort", "exit"):
            return True
        return self.calls is not None and self.calls.never_returns(call)

    def _rebind(self, target: ast.AST, state: State) -> State:
        """A new object bound to a session's name is a fresh session: its taint ends."""
        if isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                state = self._rebind(element, state)
            return state
        dotted = dotted_name(target)
        if dotted is None:
            return state
        return frozenset(
            (t[0], t[1], t[2], frozenset(f for f in t[3] if f[0] != dotted)) for t in state if t[0] != dotted
        )

    def expression(self, node: ast.AST, state: State) -> State:
        if not state:  # nothing is aborted: neither uses nor resets matter
            return state
        for call in self.sessions.nodes.calls_in(node):
            for effect in classify_call(call, self.sessions, self.calls):
                if effect.kind == "reset":
                    state = frozenset(t for t in state if t[0] != effect.session)
                    continue
                for session, index, phase, _nones in state:
                    if session == effect.session:
                        self._record(session, index, phase, call)
                if _ends_transaction(call, effect.session, self.sessions):
                    # ``commit()`` on an aborted transaction is the use reported above; it also
                    # ends that transaction (PostgreSQL rolls it back), so the next one is new.
                    state = frozenset(t for t in state if t[0] != effect.session)
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
            assert isinstance(stmt.iter, ast.Call)
            self._retry_targets.append(stmt.target.id)
            self._retry_iterators[stmt.target.id] = stmt.iter
        top = state
        breaks: State = frozenset()
        for _ in range(self._MAX_LOOP_PASSES):
            exits = self.block(stmt.body, top)
            breaks |= exits.breaks
            back = _union(exits.normal, exits.continues) or frozenset()
            new_top = top | frozenset((s, i, LOOP if p == AFTER else p, n) for s, i, p, n in back)
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
        falsy = _false_before(self._blocks)
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
                unset = _unset_on_error(stmt.body, falsy, work, self.sessions, self.calls)
                handler_entry = entry | frozenset((s, index, HANDLER, unset) for s in work)
            exits = self.block(handler.body, handler_entry)
            normal.append(self._leave(exits.normal, index, _left_falsy(handler.body)))
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
            found = self._work_of[key] = session_work(body, self.sessions, self.qualify, self.calls)
        return found

    @staticmethod
    def _leave(state: State | None, index: int, nones: Falsy = _NONE) -> State | None:
        """Leaving the handler: its taints now describe the path after the try statement, on
        which the names the handler set to None are None."""
        if state is None or index < 0:
            return state
        return frozenset(
            (s, i, AFTER, n | nones) if i == index and p == HANDLER else (s, i, p, n) for s, i, p, n in state
        )

    def with_statement(self, stmt: ast.With | ast.AsyncWith, state: State) -> _Exits:
        for item in stmt.items:
            self._statement = item.context_expr
            state = self.expression(item.context_expr, state)
            if item.optional_vars is not None:
                state = self._rebind(item.optional_vars, state)
        head = stmt.items[0].context_expr if len(stmt.items) == 1 else None
        attempt = (
            isinstance(head, ast.Name)
            and stmt.items[0].optional_vars is None
            and head.id in self._retry_targets
        )
        exits = self.block(stmt.body, state)
        ended = _transaction_blocks(stmt, self.sessions)
        if ended:
            # ``with session.begin():`` ends its transaction on the way out (commit, or rollback
            # on an error): what was aborted inside it is over for the code after the block.
            def clear(result: State | None) -> State | None:
                return None if result is None else frozenset(t for t in result if t[0] not in ended)

            exits = _Exits(
                clear(exits.normal), clear(exits.breaks) or frozenset(), clear(exits.continues) or frozenset()
            )
        if not attempt:
            return exits
        retrying = self._retry_iterators.get(head.id) if isinstance(head, ast.Name) else None
        work = {
            session: call
            for session, call in self._work(stmt.body).items()
            if retrying is None or not callbacks_reset(retrying, session, self.sessions, self.calls)
        }
        if not work:
            return exits
        index = self._catch(stmt, "a tenacity `with attempt:` block (it swallows the error to retry)", work)
        swallowed = state | (exits.normal or frozenset()) | frozenset((s, index, AFTER, _NONE) for s in work)
        return _Exits(_union(exits.normal, swallowed), exits.breaks, exits.continues)


def _ends_transaction(call: ast.Call, session: str, sessions: SessionNames) -> bool:
    func = call.func
    return isinstance(func, ast.Attribute) and func.attr == "commit" and sessions.of(func.value) == session


def _transaction_blocks(stmt: ast.With | ast.AsyncWith, sessions: SessionNames) -> set[str]:
    """Sessions whose transaction a ``with <session>.begin():`` item opens (and ends)."""
    found: set[str] = set()
    for item in stmt.items:
        expr = item.context_expr
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr == "begin":
            owner = sessions.of(expr.func.value)
            if owner is not None:
                found.add(owner)
    return found


def _falsy_constant(value: ast.AST) -> bool | None:
    """True for ``None``, False for another false constant (``False``, ``0``, ``""``), None else."""
    if not isinstance(value, ast.Constant) or value.value:
        return None
    return value.value is None


def _left_falsy(body: Sequence[ast.stmt]) -> Falsy:
    """Names a handler's top-level statements leave set to a false constant (``deployment =
    None``, ``ok = False``)."""
    names: dict[str, bool] = {}
    for statement in body:
        if isinstance(statement, ast.Assign):
            for target in statement.targets:
                if isinstance(target, ast.Name):
                    kind = _falsy_constant(statement.value)
                    if kind is None:
                        names.pop(target.id, None)
                    else:
                        names[target.id] = kind
    return frozenset(names.items())


def _assigned_names(node: ast.AST) -> set[str]:
    """Names a statement binds anywhere inside it (not in nested scopes)."""
    found: set[str] = set()
    for inner in [node, *own_nodes(node)]:
        if isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Store):
            found.add(inner.id)
    return found


def _false_before(blocks: Sequence[tuple[Sequence[ast.stmt], int]]) -> dict[str, bool]:
    """Names known false where the statement at the end of ``blocks`` starts: the last statement
    before it that binds them sets them to a false constant (``should_retry = False``). Looking
    out of a loop, names the loop binds anywhere are not known: an earlier iteration may have."""
    falsy: dict[str, bool] = {}
    seen: set[str] = set()
    for level in range(len(blocks) - 1, -1, -1):
        body, position = blocks[level]
        if level < len(blocks) - 1 and isinstance(body[position], _LOOP):
            seen |= _assigned_names(body[position])
        for statement in reversed(body[:position]):
            bound = _assigned_names(statement) - seen
            seen |= bound
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                target = statement.targets[0]
                kind = _falsy_constant(statement.value)
                if isinstance(target, ast.Name) and target.id in bound and kind is not None:
                    falsy[target.id] = kind
    return falsy


def _unset_on_error(
    body: Sequence[ast.stmt],
    before: dict[str, bool],
    work: dict[str, ast.Call],
    sessions: SessionNames,
    calls: Calls | None,
) -> Falsy:
    """Of the names false before the ``try`` (``before``), those still false when its body fails
    in the database: the body binds them only after its last statement that works on the
    session, or by that statement's own assignment (``x = session.get(...)`` binds nothing when
    the call fails)."""
    if not before:
        return _NONE
    falsy = dict(before)
    last = -1
    for position, statement in enumerate(body):
        for call in sessions.nodes.calls_in(statement):
            effects = classify_call(call, sessions, calls)
            if any(e.kind == "use" and e.work and e.session in work for e in effects):
                last = position
                break
    for position, statement in enumerate(body):
        if position > last:
            break
        bound = _assigned_names(statement)
        if position == last and isinstance(statement, (ast.Assign, ast.AnnAssign)):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            bound -= {t.id for t in targets if isinstance(t, ast.Name)}
        for name in bound:
            falsy.pop(name, None)
    return frozenset(falsy.items())


def _none_test(test: ast.AST) -> tuple[str, bool, bool] | None:
    """``x is None`` / ``not x`` / ``x == None`` -> (x, True, ...); ``x`` / ``x is not None`` ->
    (x, False, ...): the name the test is about, whether the test holds when it is None, and
    whether it tests truth (so that it holds the same for any false value)."""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = _none_test(test.operand)
        return (inner[0], not inner[1], inner[2]) if inner is not None else None
    if isinstance(test, ast.Name):
        return test.id, False, True
    if (
        isinstance(test, ast.Compare)
        and len(test.ops) == 1
        and isinstance(test.left, ast.Name)
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value is None
    ):
        if isinstance(test.ops[0], (ast.Is, ast.Eq)):
            return test.left.id, True, False
        if isinstance(test.ops[0], (ast.IsNot, ast.NotEq)):
            return test.left.id, False, False
    return None


def _split_on_none(test: ast.AST, state: State) -> tuple[State, State]:
    """The taints that can reach each branch of ``if test``: on a path where the handler left
    ``x`` None, ``if not x: raise ...`` always takes its first branch; where ``x`` is still the
    ``False`` it was before the ``try``, ``if x:`` never takes it."""
    about = _none_test(test)
    if about is None:
        return state, state
    name, holds_when_none, truth = about
    then: set[Taint] = set()
    other: set[Taint] = set()
    for taint in state:
        kinds = {is_none for known, is_none in taint[3] if known == name}
        if True in kinds or (truth and False in kinds):
            (then if holds_when_none else other).add(taint)
        else:
            then.add(taint)
            other.add(taint)
    return frozenset(then), frozenset(other)


def _checks_invalidation(test: ast.AST) -> bool:
    """``if err.connection_invalidated:``: SQLAlchemy's disconnect-handling recipe."""
    return isinstance(test, ast.Attribute) and test.attr == "connection_invalidated"


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
    providers: Sequence[str] = (),
    calls: Calls | None = None,
    in_project: Callable[[str], bool] = lambda qualified: True,
    canonical: Callable[[str], str] = lambda qualified: qualified,
) -> tuple[list[AbortedUse], SessionNames]:
    """Every use of a session that a swallowed database error may have left aborted."""
    sessions = SessionNames(
        function, qualify, session_patterns, NodeCache(), lock_helpers, providers, in_project, canonical
    )
    if not sessions.any() and (calls is None or not calls.shares_sessions()):
        return [], sessions  # no session here, and none the project shares between modules
    analysis = AbortedSessionAnalysis(function, sessions, qualify, dialects, calls)
    return analysis.run(), sessions


# -- retry decorators --------------------------------------------------------------------------

_RETRY_NAME = re.compile(r"retr(?:y|ies|ying)|on_exception|wrap_db_retry", re.IGNORECASE)


@dataclass(frozen=True)
class RetriedWork:
    """A function a retry decorator runs again after a database error, whose body works on a
    session it did not open (a parameter, or a module-level session) and never rolls it back:
    every retry runs on the aborted transaction."""

    decorator: ast.AST
    name: str
    session: str
    work: ast.Call


def retried_session_work(
    function: ast.FunctionDef | ast.AsyncFunctionDef,
    sessions: SessionNames,
    qualify: Qualify,
    calls: Calls | None = None,
) -> RetriedWork | None:
    for decorator in function.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = qualify(target) or dotted_name(target) or ""
        short = name.rsplit(".", 1)[-1]
        if not _RETRY_NAME.search(short) or "inactive" in short:
            continue  # neutron's retry_if_session_inactive retries only outside a transaction
        if calls is not None and calls.rolls_back(target):
            continue  # the project's own decorator rolls the session back before it retries
        if not _retries_database_errors(decorator, function, qualify):
            continue
        params = {a.arg for a in (*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs)}
        for session, call in session_work(function.body, sessions, qualify, calls).items():
            handed = session in params or ("." in session and not session.startswith(("self.", "cls.")))
            if not handed or _rolls_back(function, session, sessions, calls):
                continue
            if isinstance(decorator, ast.Call) and callbacks_reset(decorator, session, sessions, calls):
                continue  # a callback run between tries rolls the session back
            return RetriedWork(decorator, name, session, call)
    return None


# Keywords of a retry decorator or iterator whose callables run between two tries: backoff's
# ``on_backoff``, tenacity's ``before`` (before each try), ``after`` (after a failed try that
# will be retried) and ``before_sleep``. Not ``on_giveup``, ``on_success`` or tenacity's
# ``retry_error_callback``: they run once the retrying is over.
_BETWEEN_TRIES = frozenset({"on_backoff", "before", "after", "before_sleep"})


def callbacks_reset(retrying: ast.Call, session: str, sessions: SessionNames, calls: Calls | None) -> bool:
    """Whether a callable that ``retrying`` (``@backoff.on_exception(...)``, ``Retrying(...)``)
    runs between tries resets ``session``: a lambda whose body rolls it back, or a project
    function that resets it before any work; then every retry starts on a clean session."""
    for keyword in retrying.keywords:
        if keyword.arg not in _BETWEEN_TRIES:
            continue
        value = keyword.value
        handlers = value.elts if isinstance(value, (ast.List, ast.Tuple)) else [value]
        if any(_callback_resets(handler, session, sessions, calls) for handler in handlers):
            return True
    return False


def _callback_resets(handler: ast.AST, session: str, sessions: SessionNames, calls: Calls | None) -> bool:
    if isinstance(handler, ast.Lambda):
        for call in sessions.nodes.calls_in(handler.body):
            func = call.func
            if isinstance(func, ast.Attribute) and func.attr in RESET_METHODS:
                receiver = dotted_name(chained_receiver(func.value))
                if receiver is not None and sessions.key(receiver) == session:
                    return True
            if any(e.kind == "reset" and e.session == session for e in classify_call(call, sessions, calls)):
                return True
        return False
    if isinstance(handler, (ast.Name, ast.Attribute)) and calls is not None:
        callee = calls.callee(ast.Call(func=handler, args=[], keywords=[]))
        effect = callee.effects.get(session) if callee is not None else None
        return effect is not None and effect.resets_first
    return False


def _rolls_back(
    function: ast.FunctionDef | ast.AsyncFunctionDef,
    session: str,
    sessions: SessionNames,
    calls: Calls | None,
) -> bool:
    nodes = sessions.nodes
    return any(
        effect.kind == "reset" and effect.session == session
        for statement in function.body
        for call in nodes.calls_in(statement)
        for effect in classify_call(call, sessions, calls)
    )


def _retries_database_errors(
    decorator: ast.AST, function: ast.FunctionDef | ast.AsyncFunctionDef, qualify: Qualify
) -> bool:
    """Whether the decorator retries on what a database error becomes: any exception (tenacity's
    default), a database error type, or an exception the function raises from one."""
    if not isinstance(decorator, ast.Call):
        return True
    named: list[ast.expr] = []
    for kw in decorator.keywords:
        if kw.arg == "retry" and isinstance(kw.value, ast.Call) and kw.value.args:
            named.extend(kw.value.args)
    func_name = (dotted_name(decorator.func) or "").rsplit(".", 1)[-1]
    if func_name == "on_exception" and len(decorator.args) > 1:
        named.append(decorator.args[1])
    if not named:
        return True
    flat: list[ast.expr] = []
    for node in named:
        flat.extend(node.elts if isinstance(node, ast.Tuple) else [node])
    if any(database_error(node, qualify) is not None for node in flat):
        return True
    raised = {dotted_name(n) for n in flat}
    for handler in (n for n in ast.walk(function) if isinstance(n, ast.ExceptHandler)):
        if database_error(handler.type, qualify) is None:
            continue
        for inner in ast.walk(handler):
            if isinstance(inner, ast.Raise) and inner.exc is not None:
                exc = inner.exc.func if isinstance(inner.exc, ast.Call) else inner.exc
                if dotted_name(exc) in raised:
                    return True
    return False


# -- remedies ---------------------------------------------------------------------------------

SAVEPOINT, ROLLBACK = "savepoint", "rollback"

_TRY_STAR = getattr(ast, "TryStar", None)
_LOOP = (ast.For, ast.AsyncFor, ast.While)
_WITH = (ast.With, ast.AsyncWith)
# Calls on the session in a ``try`` body that rule out wrapping that body in a savepoint.
_ENDS_TRANSACTION = frozenset({"commit", "rollback", "close", "invalidate", "reset", "remove"})

EXCEPT_STAR = (
    "the errors an `except*` clause receives may come from concurrent tasks, and neither a "
    "rollback nor a savepoint on one session shared by concurrent tasks is safe (SQLAlchemy wants "
    "one session per task); fix it by hand"
)
MYSQL_SAVEPOINT = (
    "on MySQL/MariaDB (in `dialects`) a deadlock rolls back the whole transaction, savepoint "
    "included: the work before the `try` is lost anyway and the handler gets error 1305 (SAVEPOINT "
    "does not exist) instead of the deadlock 1213"
)


@dataclass(frozen=True)
class Remedy:
    """How one except clause (or ``with attempt:``) and one session are fixed: ``kind`` is
    SAVEPOINT, ROLLBACK or None (no fix); ``reason`` says why the fix is unsafe, or why there is
    none ("" for a safe fix)."""

    kind: str | None
    safe: bool
    reason: str = ""
    # What a rollback first in the handler would also discard, in a few words ("the caller's work
    # in this transaction"): "" when nothing; and the ``with`` block whose transaction it would end.
    discards: str = ""
    block: str = ""


# -- remedies: which fix, and is it safe (the message and --fix share the decision) -----------


class FunctionView:
    """One function's ast with what the decisions ask of it: parents, its sessions, and the
    project's helpers (what they do to the sessions they are handed)."""

    def __init__(
        self,
        node: ast.FunctionDef | ast.AsyncFunctionDef,
        sessions: SessionNames,
        calls: Calls | None = None,
    ) -> None:
        self.node = node
        self.sessions = sessions
        self.calls = calls
        self.parents: dict[ast.AST, ast.AST] = {}
        for parent in ast.walk(node):
            for child in ast.iter_child_nodes(parent):
                self.parents[child] = parent

    def ancestors(self, node: ast.AST) -> list[ast.AST]:
        """From ``node``'s parent up to the function, not included."""
        found = []
        current = self.parents.get(node)
        while current is not None and current is not self.node:
            found.append(current)
            current = self.parents.get(current)
        return found

    def parameters(self) -> set[str]:
        args = self.node.args
        names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
        names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
        return set(names)


def remedy_for(
    aborted: AbortedUse,
    function: FunctionView,
    dialects: Sequence[str],
    awaited: bool,
    written: str | None = None,
) -> Remedy:
    """The fix for the except clause (or ``with attempt:``) behind ``aborted`` and its session
    (``written`` is how the function names it, when that differs from its key: ``db.session``).
    A session known only by its name (``session-names``) may be something else that has no
    ``rollback()`` or ``begin_nested()``, so its fix is never safe."""
    remedy = _remedy(aborted, function, dialects, awaited, written or aborted.session)
    session = written or aborted.session
    declared = function.sessions.declared
    if remedy.kind is None or not remedy.safe or session in declared or aborted.session in declared:
        return remedy
    method = "begin_nested" if remedy.kind == SAVEPOINT else "rollback"
    return replace(
        remedy,
        safe=False,
        reason=f"`{session}` is a session only by its name (`session-names`): if it is not a "
        f"SQLAlchemy session or connection, it may have no `{method}()`",
    )


def _remedy(
    aborted: AbortedUse, function: FunctionView, dialects: Sequence[str], awaited: bool, session: str
) -> Remedy:
    catch, key = aborted.catch.node, aborted.session
    autocommit = _autocommit(function)
    if autocommit is not None:
        return Remedy(
            None,
            False,
            f'the function sets isolation_level="AUTOCOMMIT" (line {autocommit}): a failed statement '
            "aborts no transaction there, and a savepoint cannot be set outside one",
        )
    if isinstance(catch, ast.ExceptHandler):
        anchor = function.parents[catch]
        if _TRY_STAR is not None and isinstance(anchor, _TRY_STAR):
            return Remedy(None, False, EXCEPT_STAR)
        assert isinstance(anchor, ast.Try)
        body, where = anchor.body, "the `try` body"
    else:
        assert isinstance(catch, _WITH)
        anchor, body, where = catch, catch.body, "the `with attempt:` body"
    if awaited and not isinstance(function.node, ast.AsyncFunctionDef):
        return Remedy(
            None,
            False,
            f"`{session}` is asynchronous but `{function.node.name}` is not a coroutine function, so "
            f"neither `await {session}.rollback()` nor `async with {session}.begin_nested():` can go there",
        )
    no_savepoint = _savepoint_obstacle(body, where, key, session, function)
    block = _transaction_block(anchor, key, function)
    if block is not None:
        if no_savepoint is None:
            return replace(_savepoint(dialects), block=block)
        return Remedy(
            None,
            False,
            f"inside `{block}` a `{session}.rollback()` would end the block's transaction and its next "
            'statement would raise "Can\'t operate on closed transaction inside context manager", '
            f"and no savepoint can go around {where}: {no_savepoint}; re-raise, or fix it by hand",
        )
    risk = _rollback_risk(anchor, catch, key, session, function)
    if risk is None:
        return Remedy(ROLLBACK, True)
    reason, discards = risk
    if no_savepoint is None:
        return replace(_savepoint(dialects), discards=discards)
    return Remedy(ROLLBACK, False, f"{reason} (no savepoint instead: {no_savepoint})", discards)


def _autocommit(function: FunctionView) -> int | None:
    """The line of an ``isolation_level="AUTOCOMMIT"`` option in the function, if it has one."""
    for node in own_nodes(function.node):
        if (
            isinstance(node, ast.keyword)
            and node.arg == "isolation_level"
            and isinstance(node.value, ast.Constant)
            and str(node.value.value).upper() == "AUTOCOMMIT"
        ):
            return node.value.lineno
    return None


def _savepoint(dialects: Sequence[str]) -> Remedy:
    if "mysql" in {normalise(d) for d in dialects}:
        return Remedy(
            SAVEPOINT, False, f"`begin_nested()` keeps earlier work on PostgreSQL, but {MYSQL_SAVEPOINT}"
        )
    return Remedy(SAVEPOINT, True)


def _calls_of(body: Sequence[ast.stmt]) -> Iterable[ast.Call]:
    """The calls of a block, not looking into nested functions, classes or lambdas."""
    for statement in body:
        if isinstance(statement, SCOPES):
            continue
        for node in own_nodes(statement):
            if isinstance(node, ast.Call):
                yield node


def _savepoint_obstacle(
    body: Sequence[ast.stmt], where: str, key: str, session: str, function: FunctionView
) -> str | None:
    """Why ``body`` (``where``, for the message) cannot run under ``with session.begin_nested():``
    (``key`` is the session's key, ``session`` its name as written)."""
    sessions = function.sessions
    for call in _calls_of(body):
        func = call.func
        if not isinstance(func, ast.Attribute) or sessions.of(chained_receiver(func.value)) != key:
            for effect in classify_call(call, sessions, function.calls):
                if effect.session == key and effect.ends:
                    return (
                        f"{where} calls `{call_text(call, session)}` (line {call.lineno}), which "
                        f"commits, rolls back or closes `{session}` and would end the savepoint's "
                        "transaction"
                    )
            continue
        if func.attr in _ENDS_TRANSACTION:
            return (
                f"{where} calls `{session}.{func.attr}()` (line {call.lineno}), which would end "
                "the savepoint's transaction"
            )
        if func.attr == "begin":
            return f"{where} begins a transaction itself (line {call.lineno})"
        if func.attr == "flush":
            return (
                f"`begin_nested()` flushes pending changes before its SAVEPOINT, so a failing "
                f"`{session}.flush()` (line {call.lineno}) would still abort the transaction"
            )
    return None


def _transaction_block(anchor: ast.AST, session: str, function: FunctionView) -> str | None:
    """The ``with`` holding ``anchor`` that opened ``session``'s transaction as a block
    (``session.begin()``, ``begin_nested()``, ``engine.begin() as conn``), as source text."""
    for outer in function.ancestors(anchor):
        if not isinstance(outer, _WITH):
            continue
        for item in outer.items:
            expr = item.context_expr
            if not (isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute)):
                continue
            method = expr.func.attr
            owner = function.sessions.of(expr.func.value)
            bound = dotted_name(item.optional_vars) if item.optional_vars is not None else None
            if (method in ("begin", "begin_nested") and owner == session) or (
                method == "begin" and bound == session
            ):
                prefix = "async with" if isinstance(outer, ast.AsyncWith) else "with"
                return f"{prefix} {ast.unparse(item)}:"
    return None


def _rollback_risk(
    anchor: ast.stmt, catch: ast.AST, key: str, session: str, function: FunctionView
) -> tuple[str, str] | None:
    """Why ``session.rollback()`` may discard work done before the ``try``, and that work in a
    few words; None when it cannot: the session is created in this function, does no work before
    the ``try``, and the ``try`` does not run in a loop (a tenacity retry loop aside) that would
    make earlier iterations earlier work."""
    rollback = f"`{session}.rollback()`"
    if session in function.parameters():
        return (
            f"{rollback} would also discard what the caller did in this transaction "
            f"(`{session}` is a parameter)",
            "the caller's work",
        )
    creation = _creation(session, anchor, function)
    if creation is None:
        return (
            f"`{session}` is not created in this function, so {rollback} would also discard work "
            "done on it before",
            "the transaction's earlier work",
        )
    binding, scope = creation
    earlier = _earlier_use(key, binding, anchor, function)
    if earlier is not None:
        return (
            f"{rollback} would also discard what `{session}` did earlier in this function (line {earlier})",
            f"the work done since line {earlier}",
        )
    retry_loop = function.parents.get(catch) if isinstance(catch, _WITH) else None
    for outer in function.ancestors(anchor):
        if outer is scope:
            break
        if isinstance(outer, _LOOP) and outer is not retry_loop:
            return (
                f"the `try` runs in a loop (line {outer.lineno}), so {rollback} would also discard "
                "what earlier iterations did",
                "earlier iterations' work",
            )
    return None


def _creates_session(value: ast.AST) -> bool:
    """``Session()``, ``SessionLocal()``, ``create_session()``, ``sessionmaker(...)()``,
    ``engine.connect()``: a call that hands out a session or connection of its own."""
    if not isinstance(value, ast.Call):
        return False
    func = value.func.func if isinstance(value.func, ast.Call) else value.func
    callee = dotted_name(func)
    if callee is None:
        return False
    last = callee.rsplit(".", 1)[-1].lower()
    return "session" in last or last == "connect"


def _creation(session: str, anchor: ast.stmt, function: FunctionView) -> tuple[ast.stmt, ast.AST] | None:
    """The one statement of this function that creates ``session`` and is in force at ``anchor``,
    and the innermost node that holds both: ``(with, with)`` for a ``with ... as session:``
    holding ``anchor``; ``(assign, owner)`` for ``session = Factory()`` earlier in the block (of
    ``owner``) that holds ``anchor`` or one of its ancestors. None when the name is bound
    elsewhere, more than once, or otherwise."""
    if "." in session:
        return None
    bindings = [
        node
        for node in own_nodes(function.node)
        if (isinstance(node, ast.Name) and node.id == session and isinstance(node.ctx, ast.Store))
        or (isinstance(node, ast.ExceptHandler) and node.name == session)
        or (isinstance(node, (ast.Global, ast.Nonlocal)) and session in node.names)
        or (isinstance(node, ast.alias) and (node.asname or node.name) == session)
    ]
    if len(bindings) != 1 or not isinstance(bindings[0], ast.Name):
        return None
    holder = function.parents.get(bindings[0])
    chain = [anchor, *function.ancestors(anchor)]
    if isinstance(holder, ast.withitem) and _creates_session(holder.context_expr):
        statement = function.parents.get(holder)
        if isinstance(statement, _WITH) and statement in chain:
            return statement, statement
        return None
    if isinstance(holder, ast.Assign) and len(holder.targets) == 1 and _creates_session(holder.value):
        for node in chain:
            block = _block_of(node, function)
            if block is not None and holder in block:
                owner = function.parents[node]
                return (holder, owner) if block.index(holder) < block.index(node) else None
    return None


def _block_of(statement: ast.AST, function: FunctionView) -> list[ast.AST] | None:
    """The statement list that holds ``statement``."""
    parent = function.parents.get(statement)
    if parent is None:
        return None
    for name in ("body", "orelse", "finalbody", "handlers"):
        block = getattr(parent, name, None)
        if isinstance(block, list) and statement in block:
            return block
    return None


def _earlier_use(session: str, binding: ast.stmt, anchor: ast.stmt, function: FunctionView) -> int | None:
    """The line of the first use of ``session`` written after ``binding`` and before ``anchor``."""
    if isinstance(binding, _WITH):
        last = binding.items[-1].optional_vars or binding.items[-1].context_expr
        after = (last.end_lineno or last.lineno, last.end_col_offset or 0)
    else:
        after = (binding.end_lineno or binding.lineno, binding.end_col_offset or 0)
    before = (anchor.lineno, anchor.col_offset)
    uses = [
        node.lineno
        for node in own_nodes(function.node)
        if isinstance(node, ast.Call)
        and after <= (node.lineno, node.col_offset) < before
        and any(c.session == session and c.kind == "use" for c in classify_call(node, function.sessions))
    ]
    return min(uses) if uses else None
