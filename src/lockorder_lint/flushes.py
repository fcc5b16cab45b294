"""When an ORM write reaches the database, and in which order among the writes flushed with it.

``session.add(...)``, ``session.merge(...)`` and attribute writes on a loaded row wait in the
session until its next flush: an explicit ``session.flush()``, a commit, or (unless the project's
sessions are made with ``autoflush=False``) the next statement the session runs, ``merge`` and
``get`` included, since they load first. SQLAlchemy's unit of work then sends the pending writes
of one flush in its own order, not the code's: a table whose rows another pending write's rows
reference through a relationship goes first (parent before child), and the rest by the mapped
class's ``module.ClassName``. Airflow's reschedule adds a ``TaskReschedule`` row and then merges
its ``TaskInstance``: ``airflow.models.taskinstance.TaskInstance`` sorts first, so the task
instance is locked before the reschedule row's foreign-key check waits for the ``dag_run`` row.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from lockorder_lint.catalog import Catalog, Table

# Session methods that run a statement, and so flush what is pending first (autoflush).
AUTOFLUSHING = frozenset(
    {"execute", "scalar", "scalars", "query", "get", "get_one", "refresh", "merge", "connection"}
)


@dataclass(frozen=True)
class Flush:
    """Which flush of its function a pending write belongs to (``group``), and what orders it
    there: the table it writes, its mapped class's ``module.ClassName`` and the tables its rows
    reference through a relationship (their pending writes go first)."""

    group: int
    table: str
    key: str
    parents: tuple[str, ...] = ()


def flush_of(table: Table, catalog: Catalog) -> Flush:
    """How the unit of work orders a write of ``table``'s rows."""
    linked = {r.target for r in table.relationships if r.target is not None}
    parents = tuple(
        dict.fromkeys(
            parent
            for _key, reference in table.references()
            if (parent := reference.split(".", 1)[0]) != table.name
            and (parent in linked or _relates_to(catalog.tables.get(parent), table.name))
        )
    )
    key = table.classes[0] if table.classes else table.name
    return Flush(0, table.name, key, parents)  # numbered by its function (transactions._flush_groups)


def _relates_to(parent: Table | None, child: str) -> bool:
    return parent is not None and any(r.target == child for r in parent.relationships)


def flush_point(call: ast.Call, session_like: bool, autoflush: bool) -> bool:
    """Whether a call flushes the session's pending writes: ``session.flush()`` always, a
    statement the session runs when its sessions autoflush (a ``merge(..., load=False)`` does not load)."""
    func = call.func
    if not session_like or not isinstance(func, ast.Attribute):
        return False
    if func.attr == "flush":
        return True
    if not autoflush or func.attr not in AUTOFLUSHING:
        return False
    return not any(
        k.arg == "load" and isinstance(k.value, ast.Constant) and k.value.value is False
        for k in call.keywords
    )


T = TypeVar("T")


def in_flush_order(
    items: Sequence[T], flush: Sequence[Flush | None], groups: Sequence[object]
) -> list[tuple[T, bool]]:
    """``items`` with each run of writes pending in one flush (the same ``groups`` entry, not
    None, one after another) put in the unit of work's order: parents first, then by class;
    each with whether it went ahead of a write the code made before it."""
    found: list[tuple[T, bool]] = []
    start = 0
    while start < len(items):
        end = start + 1
        while end < len(items) and groups[start] is not None and groups[end] == groups[start]:
            end += 1
        ordered = list(range(start, end))
        if len(ordered) > 1:  # a run of several is pending writes only: each has its flush
            ordered = _unit_of_work([(i, f) for i in ordered if (f := flush[i]) is not None])
        for position, index in enumerate(ordered):
            found.append((items[index], any(other < index for other in ordered[position + 1 :])))
        start = end
    return found


def _unit_of_work(writes: list[tuple[int, Flush]]) -> list[int]:
    """The indices of one flush's writes in the order SQLAlchemy sends them (a write's implicit
    locks, its foreign-key checks, stay with it: they share its table and class)."""
    pending = sorted(writes, key=lambda write: (write[1].key, write[0]))
    ordered: list[int] = []
    while pending:
        waiting = {flush.table for _i, flush in pending}
        ready = next((w for w in pending if not (set(w[1].parents) & (waiting - {w[1].table}))), pending[0])
        ordered.append(ready[0])
        pending.remove(ready)
    return ordered
