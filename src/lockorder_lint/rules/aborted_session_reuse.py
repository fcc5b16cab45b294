"""LCK003 aborted-session-reuse: an ``except`` clause that swallows a database error raised by
work on a session, after which the same session is used before ``rollback()``. The transaction
is already dead, so the write meant to record the failure is lost (Airflow #66734)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from lockorder_lint.rules.base import Report, Rule, RuleContext

if TYPE_CHECKING:
    from lockorder_lint.sessions import AbortedUse
    from lockorder_lint.statements import Unit


class AbortedSessionReuse(Rule):
    code = "LCK003"
    name = "aborted-session-reuse"
    summary = "session used again after an except clause swallowed a database error, before rollback()"
    # ``except`` clauses, and tenacity-style retry loops (``for attempt in Retrying(...)``).
    triggers = rb"\bexcept\b|[Rr]etr(?:y|ies|ying)\w*\s*\("

    def check(self, unit: Unit, context: RuleContext) -> Iterable[Report]:
        from lockorder_lint.sessions import aborted_session_uses

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
                unit.text(aborted.statement),
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
