"""What every rule is: a code, a name, the text triggers that make a file worth analysing, and a
check over one function's statements that returns reports. Rules never parse, walk files or print."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lockorder_lint.config import Config
from lockorder_lint.contention import Contention

if TYPE_CHECKING:  # libcst is imported only when a file needs analysing
    from lockorder_lint.catalog import Table
    from lockorder_lint.engine import Project
    from lockorder_lint.statements import Predicate, Span, Statement
    from lockorder_lint.units import Unit


# One trace per transaction; each step (path, line, function, step).
Trace = tuple[tuple[tuple[str, int, str, str], ...], ...]


@dataclass(frozen=True)
class Report:
    """A rule's verdict on one place; the engine turns it into a Finding."""

    code: str
    span: Span
    message: str
    table: str | None = None
    statement: str = ""
    # Why the rows are contended when the table's own evidence does not say (see Finding).
    hot_because: str = ""


@dataclass
class RuleContext:
    """What a rule may consult besides the function: the configuration, and where to note
    statements it could not judge."""

    config: Config
    unknown: list[Statement] = field(default_factory=list)
    # Tables with contention evidence (inferred hotness), or None when the configuration decides.
    locked: dict[str, list[str]] | None = None
    contention: Contention = field(default_factory=lambda: Contention())
    # Where a rule would have reported a statement had its table been contended (line, column):
    # the summary counts them, so that a quiet run on a project without evidence says why.
    cold: set[tuple[int, int]] = field(default_factory=set)

    def hot(self, table: Table | str) -> bool:
        """A table whose rows writers contend for: configured in ``hot-tables`` (or every table
        with ``all-tables``), else one the project row-locks somewhere."""
        name = table if isinstance(table, str) else table.name
        if self.locked is None or not self.config.infers_hot_tables:
            return self.config.is_hot(name)
        return name in self.locked

    def hot_beyond(self, table: Table | str, path: str, qualname: str) -> bool:
        """Hot by evidence other than the function itself being retried: a retry of the very
        write under judgement shows that it may fail, not that anyone else writes those rows."""
        if not self.hot(table):
            return False
        name = table if isinstance(table, str) else table.name
        if self.locked is None or not self.config.infers_hot_tables:
            return True
        return any(not _retry_of(reason, path, qualname) for reason in self.locked.get(name, []))

    def hot_because(self, table: str | None) -> str:
        """Why a finding's table counts as contended, for the machine formats and the report."""
        if table is None:
            return ""
        if self.config.all_tables:
            return "all-tables is set"
        if self.locked is None or not self.config.infers_hot_tables:
            if not self.config.hot_tables or table not in self.config.hot_tables:
                return ""
            preset = f" (preset {self.config.preset})" if self.config.hot_tables_from_preset else ""
            return f"listed in hot-tables{preset}"
        reasons = self.locked.get(table) or []
        return reasons[0] if reasons else ""


def _retry_of(reason: str, path: str, qualname: str) -> bool:
    """``written under @retry at airflow/models/x.py:90 X.f`` names this very function. A task
    queue's retry (docket's ``Retry``) is not only that: it marks a task many workers run."""
    if not reason.startswith("written under") or not reason.endswith(f" {qualname}"):
        return False
    if reason.startswith("written under a docket"):
        return False
    where = reason.rsplit(" at ", 1)[-1].rsplit(" ", 1)[0].rsplit(":", 1)[0]
    posix = path.replace("\\", "/")
    return posix == where or posix.endswith(f"/{where}")


class Rule:
    code: str = ""
    name: str = ""
    summary: str = ""
    # Regular expression (bytes) over the raw file: a function with no match cannot hold a finding.
    triggers: bytes = b""
    # Whether calls to the configured ``lock-helpers`` are triggers too.
    uses_lock_helpers: bool = False
    # A rule over the whole program (LCK005): its reports come from ``program_reports``, not ``check``.
    whole_program: bool = False
    # A preview rule runs only when ``select`` names its code exactly (``--select LCK005``): it is
    # new, its precision on real projects is still being measured, and a prefix such as ``LCK``
    # must not switch it on under anyone's CI.
    preview: bool = False

    def wants(self, function: ast.FunctionDef | ast.AsyncFunctionDef, config: Config) -> bool:
        """A cheap look at a triggered function's ``ast``: False spares it the libcst analysis."""
        return True

    def check(self, unit: Unit, context: RuleContext) -> Iterable[Report]:
        raise NotImplementedError

    def program_reports(self, project: Project, path: str) -> list[tuple[Report, str, Trace]]:
        """A whole-program rule's reports anchored in the file ``path``, each with the function
        it names and its trace."""
        return []


def key_text(table: Table) -> str:
    """``id`` or ``(dag_id, run_id)``: the primary key as a message names it."""
    pk = table.primary_key
    return pk[0] if len(pk) == 1 else f"({', '.join(pk)})"


def reached_through(statement: Statement) -> str:
    """``dag_id, run_id, state (index ti_dag_run)``: how the WHERE clause reaches rows. A column
    that is not pinned says how it is constrained (``dag_id NOT IN (…)``, ``id IN (subquery on
    dag)``), so that a key column named here never reads as if it were pinned."""
    from lockorder_lint.statements import PINNING_OPS

    table = statement.target
    assert table is not None
    predicates = statement.target_predicates()
    if not predicates:
        return ""
    pinning = {p.column for p in predicates if p.op in PINNING_OPS}
    forms: dict[str, list[str]] = {}
    for pred in predicates:
        phrases = forms.setdefault(pred.column, [])
        if pred.column in pinning:
            continue
        phrase = _constraint_phrase(pred)
        if phrase and phrase not in phrases:
            phrases.append(phrase)
    columns = []
    for column, phrases in forms.items():
        if phrases:
            columns.append(f"{column} {' and '.join(phrases[:2])}")
        elif column in table.primary_key and column not in pinning:
            columns.append(f"{column} (not pinned)")
        else:
            columns.append(column)
    index = table.index_for((p.column, p.op) for p in predicates)
    suffix = f" (index {index.name})" if index else ""
    return f"{', '.join(columns)}{suffix}"


def _constraint_phrase(pred: Predicate) -> str:
    """What a message says of a condition that does not pin its column."""
    from lockorder_lint.statements import JOIN, SUB

    if pred.op == SUB:
        return f"IN (a subquery on {pred.via})" if pred.via else "IN (a subquery)"
    if pred.op == JOIN:
        return f"joined to {pred.via}" if pred.via else "joined to another table"
    if pred.via in ("NOT IN", "IN"):
        return f"{pred.via} (…)"
    if pred.via in ("!=", "LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE", "IS", "IS NOT", "IS DISTINCT FROM"):
        return f"{pred.via} …"
    return pred.via
