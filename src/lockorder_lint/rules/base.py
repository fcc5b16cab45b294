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
    from lockorder_lint.statements import Span, Statement
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


@dataclass
class RuleContext:
    """What a rule may consult besides the function: the configuration, and where to note
    statements it could not judge."""

    config: Config
    unknown: list[Statement] = field(default_factory=list)
    # Tables with contention evidence (inferred hotness), or None when the configuration decides.
    locked: dict[str, list[str]] | None = None
    contention: Contention = field(default_factory=lambda: Contention())

    def hot(self, table: Table | str) -> bool:
        """A table whose rows writers contend for: configured in ``hot-tables`` (or every table
        with ``all-tables``), else one the project row-locks somewhere."""
        name = table if isinstance(table, str) else table.name
        if self.locked is None or not self.config.infers_hot_tables:
            return self.config.is_hot(name)
        return name in self.locked


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
    """``dag_id, run_id, state (index ti_dag_run)``: how the WHERE clause reaches rows."""
    table = statement.target
    assert table is not None
    columns = statement.columns_on_target()
    if not columns:
        return ""
    pinning = {p.column for p in statement.predicates if p.table == table.name and p.op in ("eq", "in")}
    columns = [
        f"{col} (not pinned)" if col in table.primary_key and col not in pinning else col for col in columns
    ]
    index = table.index_for((p.column, p.op) for p in statement.predicates if p.table == table.name)
    suffix = f" (index {index.name})" if index else ""
    return f"{', '.join(columns)}{suffix}"
