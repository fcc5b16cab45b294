"""Findings are plain frozen data so that reporters, caches and baselines all share one shape."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, order=True)
class Finding:
    """One reported hazard. Lines and columns are 1-based, like every editor shows them."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int
    code: str
    message: str
    table: str | None = None
    function: str | None = None
    statement: str = ""
    # Why the table counts as contended: the configuration, or the first piece of evidence the
    # code gave ("row-locked at airflow/models/dagrun.py:812 DagRun.next_dagruns_to_examine").
    hot_because: str = ""
    # For a finding about several transactions (LCK005): one trace per transaction, each step
    # (path, line, function, step).
    trace: tuple[tuple[tuple[str, int, str, str], ...], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        found = asdict(self)
        found.pop("trace")
        if self.trace:
            found["trace"] = [
                [{"path": p, "line": line, "function": f, "step": step} for p, line, f, step in steps]
                for steps in self.trace
            ]
        return found


@dataclass(frozen=True, order=True)
class Skipped:
    """A statement the rules could not judge because its table is not in the catalog."""

    path: str
    line: int
    column: int
    kind: str
    target: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, order=True)
class TableStep:
    """One statement an analysed function runs that locks (``lock``) or writes (``write``,
    ``insert``) rows of a known table, in the function's source order. A function's steps say
    which tables it takes row locks on, one after another: the edges of the report's lock-order
    graph. Only functions a rule already followed have steps, so recording them costs nothing."""

    path: str
    function: str
    line: int
    table: str
    kind: str


@dataclass(frozen=True)
class FileError:
    """A file that could not be checked, with the reason; the run goes on without it."""

    path: str
    line: int
    reason: str

    def render(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: error: {self.reason}"


@dataclass(frozen=True)
class Note:
    """Something a run left out on purpose, said by name: a FIFO named like a source file, a
    directory under the project root that the catalog could not enter. Unlike a FileError it does
    not fail the run."""

    path: str
    reason: str

    def render(self) -> str:
        return f"{self.path}: note: {self.reason}"
