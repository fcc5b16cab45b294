"""LCK003 aborted-session-reuse: an ``except`` clause that swallows a database error raised by
work on a session, after which the same session is used before ``rollback()``. The transaction
is already dead, so the write meant to record the failure is lost (Airflow #66734)."""

from __future__ import annotations

import ast
import fnmatch
from collections.abc import Iterable
from typing import TYPE_CHECKING

from lockorder_lint.config import Config
from lockorder_lint.names import dotted_name
from lockorder_lint.rules.base import Report, Rule, RuleContext

if TYPE_CHECKING:
    from lockorder_lint.session_flow import AbortedUse
    from lockorder_lint.units import Unit


class AbortedSessionReuse(Rule):
    code = "LCK003"
    name = "aborted-session-reuse"
    summary = "session used again after an except clause swallowed a database error, before rollback()"
    # ``except`` clauses, and tenacity-style retry loops (``for attempt in Retrying(...)``).
    triggers = rb"\bexcept\b|[Rr]etr(?:y|ies|ying)\w*\s*\("

    def wants(self, function: ast.FunctionDef | ast.AsyncFunctionDef, config: Config) -> bool:
        """Only a function with a ``try`` (or a retry loop) and something that may be a session
        is worth parsing: most functions with an ``except`` never touch a database."""
        has_try = has_retry = has_session = False
        for node in ast.walk(function):
            if isinstance(node, _TRY_NODES):
                has_try = True
            elif isinstance(node, ast.Call):
                callee = dotted_name(node.func) or ""
                last = callee.rsplit(".", 1)[-1].lower()
                has_retry = has_retry or "retr" in last
                has_session = has_session or "session" in last or last in ("connect", "begin")
            elif isinstance(node, (ast.Name, ast.Attribute)) and not has_session:
                dotted = dotted_name(node)
                has_session = dotted is not None and any(
                    fnmatch.fnmatchcase(dotted, p) for p in config.session_names
                )
            elif isinstance(node, ast.arg) and node.annotation is not None and not has_session:
                text = ast.unparse(node.annotation)
                has_session = "Session" in text or "Connection" in text
            if (has_try or has_retry) and has_session:
                return True
        return False

    def check(self, unit: Unit, context: RuleContext) -> Iterable[Report]:
        from lockorder_lint.session_flow import aborted_session_uses

        found, _sessions = aborted_session_uses(
            unit.node,
            unit.qualify,
            context.config.session_names,
            context.config.dialects,
            context.config.lock_helpers,
        )
        for aborted in sorted(found, key=lambda a: (unit.span(a.use).line, unit.span(a.use).column)):
            yield Report(
                self.code,
                unit.span(aborted.use),
                self._message(aborted, unit),
                None,
                unit.canonical(aborted.statement),
            )

    @staticmethod
    def _message(aborted: AbortedUse, unit: Unit) -> str:
        from lockorder_lint.sessions import call_text

        session = aborted.session
        work = aborted.catch.work[session]
        work_at = f"`{call_text(work, session)}` (line {unit.span(work).line})"
        catch_line = unit.span(aborted.catch.node).line
        use = f"`{call_text(aborted.use, session)}`"
        if aborted.where == "handler":
            what = (
                f"{aborted.catch.exception} can catch a database error from {work_at}, which "
                f"aborts {session}'s transaction; the handler then runs {use} on it before "
                f"{session}.rollback()"
            )
        elif aborted.where == "after":
            what = (
                f"{aborted.catch.exception} (line {catch_line}) can swallow a database error from "
                f"{work_at} without {session}.rollback(), so {use} after it runs on the aborted "
                "transaction"
            )
        else:
            what = (
                f"{aborted.catch.exception} (line {catch_line}) can swallow a database error from "
                f"{work_at} without {session}.rollback(), and the loop's next iteration runs {use} "
                "on the aborted transaction"
            )
        return (
            f"{what}: PostgreSQL rejects it (InFailedSqlTransaction) and the write is lost, MySQL "
            f"runs it without the rolled-back work; call {session}.rollback() first or use a fresh "
            "session, and retry deadlocks and serialization failures (40P01, 40001, MySQL 1213) "
            "instead of recording a failure"
        )


# ``try``/``except*`` (the latter from Python 3.11).
_TRY_NODES: tuple[type[ast.AST], ...] = (ast.Try, *([ast.TryStar] if hasattr(ast, "TryStar") else []))
