"""LCK003 aborted-session-reuse: an ``except`` clause that swallows a database error raised by
work on a session, after which the same session is used before ``rollback()``. The transaction
is already dead, so the write meant to record the failure is lost (Airflow #66734)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from lockorder_lint.config import Config
from lockorder_lint.names import dotted_name
from lockorder_lint.rules.base import Report, Rule, RuleContext
from lockorder_lint.walk import walk

if TYPE_CHECKING:
    from lockorder_lint.session_flow import AbortedUse, FunctionView, RetriedWork
    from lockorder_lint.sessions import Calls, SessionNames
    from lockorder_lint.units import Unit


class AbortedSessionReuse(Rule):
    code = "LCK003"
    name = "aborted-session-reuse"
    summary = "session used again after an except clause swallowed a database error, before rollback()"
    # ``except`` clauses, tenacity-style retry loops (``for attempt in Retrying(...)``), and retry
    # decorators (``@retry(...)``, ``@backoff.on_exception(...)``, ``@retry_db_transaction``).
    triggers = rb"\bexcept\b|[Rr]etr(?:y|ies|ying)\w*\s*\(|@[\w.]*(?:[Rr]etr|on_exception)"

    def wants(self, function: ast.FunctionDef | ast.AsyncFunctionDef, config: Config) -> bool:
        """A function with a ``try``, a retry loop or a retry decorator: the sessions it may work
        on, its own or those its helpers share, are only known once it is analysed."""
        if any(
            _RETRY.search(dotted_name(d.func if isinstance(d, ast.Call) else d) or "")
            for d in function.decorator_list
        ):
            return True
        for node in walk(function):
            if isinstance(node, _TRY_NODES):
                return True
            if isinstance(node, ast.Call) and _RETRY.search(dotted_name(node.func) or ""):
                return True
        return False

    def check(self, unit: Unit, context: RuleContext) -> Iterable[Report]:
        from lockorder_lint.session_flow import FunctionView, retried_session_work

        found, sessions, calls = analyse_sessions(unit, context.config)
        view = FunctionView(unit.node, sessions, calls) if found else None
        for aborted in one_per_use(found):
            assert view is not None
            yield Report(
                self.code,
                unit.span(aborted.use),
                self._message(aborted, unit, sessions, calls, view, context.config),
                None,
                unit.canonical(aborted.statement),
            )
        retried = retried_session_work(unit.node, sessions, unit.qualify, calls)
        if retried is not None:
            yield Report(
                self.code,
                unit.span(retried.decorator),
                self._retry_message(retried, unit, sessions.written.get(retried.session)),
                None,
                unit.canonical(retried.decorator),
            )

    @staticmethod
    def _message(
        aborted: AbortedUse,
        unit: Unit,
        sessions: SessionNames,
        calls: Calls | None,
        view: FunctionView,
        config: Config,
    ) -> str:
        """One sentence: what swallowed which error, what then runs on the aborted transaction,
        what happens to it, and the fix (the one ``--fix`` would write). The story behind it is in
        ``lockorder-lint explain``."""
        from lockorder_lint.sessions import call_text, classify_call

        session = aborted.session
        written = sessions.written.get(session)
        shown = written or _shown(session)
        work = aborted.catch.work[session]
        work_at = f"`{call_text(work, shown)}` (line {unit.span(work).line})"
        catch_line = unit.span(aborted.catch.node).line
        use = f"`{call_text(aborted.use, shown)}`"
        writes = any(e.session == session and e.writes for e in classify_call(aborted.use, sessions, calls))
        outcome = "its write never lands" if writes else "it fails"
        fix = _fix_text(aborted, shown, written, view, config)
        if aborted.where == "handler":
            return (
                f"{aborted.catch.exception} catches a database error from {work_at}, then runs {use} on "
                f"the aborted transaction: {outcome}; {fix}"
            )
        where = "here" if aborted.where == "after" else "in the loop's next iteration"
        if isinstance(aborted.catch.node, ast.ExceptHandler):
            caught = f"{aborted.catch.exception} (line {catch_line}) swallows a database error"
        else:  # a tenacity ``with attempt:`` block swallows the error to retry
            caught = f"the tenacity `with attempt:` block (line {catch_line}) retries after a database error"
        return (
            f"{caught} from {work_at} without rollback, so {use} {where} runs on the aborted "
            f"transaction: {outcome}; {fix}"
        )

    @staticmethod
    def _retry_message(retried: RetriedWork, unit: Unit, written: str | None) -> str:
        from lockorder_lint.sessions import call_text

        shown = written or _shown(retried.session)
        decorator = retried.name.rsplit(".", 2)[-2:] if "." in retried.name else [retried.name]
        function = unit.qualname.rsplit(".", 1)[-1]
        work = f"`{call_text(retried.work, shown)}` (line {unit.span(retried.work).line})"
        return (
            f"@{'.'.join(decorator)} runs {function}() again after a database error, but {work} works on "
            f"{shown}, which nothing rolls back: every retry runs on the aborted transaction; roll back "
            "before retrying, or give each attempt a fresh session"
        )


def one_per_use(found: Iterable[AbortedUse]) -> list[AbortedUse]:
    """One finding per reused call and session, in source order: nested ``try`` statements can
    leave the same session aborted through two clauses, and the call after them is one reuse. The
    clause the analysis met first is named (``found`` comes in that order: for a ``try`` nested in
    a ``try`` body, the inner one); ``--fix`` still fixes every clause behind the reuse."""
    kept: dict[tuple[int, str], AbortedUse] = {}
    for aborted in found:
        key = (id(aborted.use), aborted.session)
        if key not in kept:
            kept[key] = aborted
    return sorted(kept.values(), key=lambda a: (a.use.lineno, a.use.col_offset))


def _fix_text(
    aborted: AbortedUse, shown: str, written: str | None, view: FunctionView, config: Config
) -> str:
    """The remedy ``--fix`` would apply, in words: a rollback where it discards nothing older, a
    savepoint where a rollback would discard earlier work (or end a ``begin()`` block); for a
    retry, roll back before retrying. Why one and not the other is the rule page's, not the message's."""
    from lockorder_lint.session_flow import SAVEPOINT, is_async_session, remedy_for

    remedy = None
    awaited = is_async_session(aborted.session, view.sessions, view.node)
    if written is not None:
        remedy = remedy_for(aborted, view, config.dialects, awaited, written)
    savepoint = remedy is not None and remedy.kind == SAVEPOINT
    nested = f"`{'async with' if awaited else 'with'} {shown}.begin_nested():`"
    rollback = f"{'await ' if awaited else ''}{shown}.rollback()"
    if not isinstance(aborted.catch.node, ast.ExceptHandler):  # a tenacity ``with attempt:``
        if savepoint:
            return f"run the attempt's body under {nested}"
        return "roll back before retrying, or give each attempt a fresh session"
    if remedy is not None and savepoint:  # why not a rollback: ``lockorder-lint explain LCK003``
        return f"run the `try` body under {nested}"
    if remedy is not None and remedy.kind is None:
        return "re-raise, or record the failure in a fresh session"
    if remedy is not None and remedy.discards:
        return f"call {rollback} first (it also discards {remedy.discards}) or use a fresh session"
    return f"call {rollback} first or use a fresh session"


def analyse_sessions(unit: Unit, config: Config) -> tuple[list[AbortedUse], SessionNames, Calls | None]:
    """LCK003's analysis of one function, as the rule runs it and as ``--fix`` repeats it."""
    from lockorder_lint.session_flow import aborted_session_uses
    from lockorder_lint.summaries import ProgramCalls

    program = unit.scope.program
    calls = ProgramCalls(program, unit.evaluator) if program is not None else None
    found, sessions = aborted_session_uses(
        unit.node,
        unit.qualify,
        config.session_names,
        config.dialects,
        config.lock_helpers,
        config.session_providers,
        calls,
        calls.in_project if calls is not None else (lambda qualified: True),
        program.session_key if program is not None else (lambda qualified: qualified),
    )
    return found, sessions, calls


def _shown(session: str) -> str:
    """A session as the message names it: ``db.session`` rather than its qualified name."""
    parts = session.split(".")
    return ".".join(parts[-2:]) if len(parts) > 2 else session


_RETRY = re.compile(r"[Rr]etr(?:y|ies|ying)|on_exception|wrap_db_retry")


# ``try``/``except*`` (the latter from Python 3.11).
_TRY_NODES: tuple[type[ast.AST], ...] = (ast.Try, *([ast.TryStar] if hasattr(ast, "TryStar") else []))
