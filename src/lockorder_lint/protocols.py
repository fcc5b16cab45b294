"""Lock protocols: a parent row lock that serializes every transaction touching its children.

When every transaction that locks or writes rows of a child table, scoped by its foreign key to
one parent row (``WHERE span.trace_id = :id``, or an INSERT/merge of a child), first holds a lock
on that parent row that conflicts with itself (``FOR UPDATE``, ``FOR NO KEY UPDATE``, an UPDATE or
DELETE of it, named by its key), two of them never touch the same children at once: the parent
lock serializes them, and the order in which each then locks the children cannot deadlock. MLflow
locks the trace row before it writes the trace's spans and assessments.

Such a protocol silences LCK001/LCK002 on the children where they run under it, and
``lockorder-lint tables`` says which children are serialized by which parent. A single
transaction that touches the children without the parent lock, while two or more others take it
first, breaks the protocol: the others' child locks can deadlock against it again (LCK005).

Read from the whole program's transactions (:class:`lockorder_lint.lock_graph.Transactions`), so
only computed when LCK005's pass runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lockorder_lint.transactions import (
    FOR_NO_KEY_UPDATE,
    FOR_UPDATE,
    PRIMARY,
    Acquisition,
    exclusive,
    on_path,
)

if TYPE_CHECKING:
    from lockorder_lint.catalog import Catalog, Table
    from lockorder_lint.engine import Project
    from lockorder_lint.findings import Finding
    from lockorder_lint.lock_graph import Placed, Transactions
    from lockorder_lint.summaries import Program

# The rules a protocol quiets on the children it serializes.
PROTOCOL_QUIETED = frozenset({"LCK001", "LCK002"})
# Row locks that conflict with themselves: two transactions cannot both hold one on a row.
SERIALIZING = frozenset({FOR_UPDATE, FOR_NO_KEY_UPDATE})
Site = tuple[str, int, int, str]  # path as shown, line, column, child table
_ORM_FLUSH = "UPDATE (ORM write"  # how transactions.orm_updates names an attribute write


@dataclass(frozen=True)
class Touch:
    """One transaction's lock or write on a child table's rows, and whether it kept the protocol:
    ``parent_lock`` is the serializing lock on the parent row held on every path to it, None if
    it had none (or its statement is not scoped by the parent)."""

    root: str  # module-qualified name of the function whose transaction it is
    name: str  # that function as shown
    acquisition: Acquisition
    parent_lock: Acquisition | None
    # It goes on to wait for another lock on the parent or the children (a later statement, or
    # the same one again in a loop): without the parent lock it can then wait for a follower.
    waits_after: bool = False
    repeated: bool = False  # in a loop: child rows taken one statement at a time


@dataclass(frozen=True)
class Protocol:
    """Every transaction touching ``child`` rows locks the ``parent`` row first (``followers``,
    two or more functions), under ``modes`` (strongest first)."""

    parent: str
    child: str
    followers: tuple[str, ...]
    modes: tuple[str, ...]


@dataclass(frozen=True)
class Breach:
    """The one transaction (``touch``) that touches ``child`` rows without the ``parent`` lock
    the ``followers`` all take first."""

    parent: str
    child: str
    touch: Touch
    followers: tuple[str, ...]
    example: Touch  # one follower's child lock, with the parent lock it holds


@dataclass(frozen=True)
class Protocols:
    """What the rules read: the protocols that hold, the child lock sites they cover (LCK001 and
    LCK002 stay quiet there), and the transactions that break one."""

    held: tuple[Protocol, ...] = ()
    covered: frozenset[Site] = frozenset()
    breaches: tuple[Breach, ...] = ()

    def covers(self, path: str, line: int, column: int, table: str) -> bool:
        return (path, line, column, table) in self.covered

    def digest(self) -> str:
        """What file results depend on, for the result cache."""
        text = "\n".join(sorted(f"{p}|{line}|{column}|{table}" for p, line, column, table in self.covered))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def parents_of(table: Table) -> dict[str, tuple[str, ...]]:
    """Each parent table of ``table`` and the child's columns (attribute keys) that reference it."""
    found: dict[str, list[str]] = {}
    for column, reference in table.references():
        parent = reference.split(".", 1)[0]
        if parent != table.name and column not in found.get(parent, ()):
            found.setdefault(parent, []).append(column)
    return {parent: tuple(columns) for parent, columns in found.items()}


def _referenced(child: Table, parent: Table) -> set[str]:
    """The parent's columns (attribute keys) the child's foreign keys reference."""
    by_column = {column: key for key, column in parent.columns.items()}
    return {
        by_column.get(ref.split(".", 1)[1], ref.split(".", 1)[1])
        for _key, ref in child.references()
        if ref.split(".", 1)[0] == parent.name
    }


def find_protocols(transactions: Transactions, catalog: Catalog) -> Protocols:
    """The protocols of the program: for each child table with a foreign key, which transactions
    touch its rows and whether each held a serializing lock on the parent row first."""
    links = {
        (parent, child.name): columns
        for child in catalog.tables.values()
        for parent, columns in parents_of(child).items()
        if parent in catalog.tables
    }
    if not links:
        return Protocols()
    children: dict[str, list[tuple[str, tuple[str, ...], set[str]]]] = {}
    for (parent, child), columns in links.items():
        referenced = _referenced(catalog.tables[child], catalog.tables[parent])
        children.setdefault(child, []).append((parent, columns, referenced))
    touches: dict[tuple[str, str], list[Touch]] = {}
    for qualname, summary in transactions.functions.items():
        if qualname in transactions.helpers:
            continue  # it runs inside its callers' transactions, which include its steps
        for segment in _transactions_of(transactions.expanded(qualname)):
            tables = {a.inserted or a.table for a, _place in segment if a is not None}
            for child in tables & children.keys():
                for parent, columns, referenced in children[child]:
                    for touch in _touches(
                        segment, parent, child, columns, referenced, qualname, summary.name
                    ):
                        touches.setdefault((parent, child), []).append(touch)
    held: list[Protocol] = []
    covered: set[Site] = set()
    breaches: list[Breach] = []
    for (parent, child), found in sorted(touches.items()):
        kept = {t.root for t in found if t.parent_lock is not None}
        broken = {t.root for t in found if t.parent_lock is None}
        followers = tuple(sorted({t.name for t in found if t.root in kept - broken}))
        if len(kept - broken) < 2:
            continue
        if not broken:
            modes = {t.parent_lock.mode for t in found if t.parent_lock is not None}
            strongest = tuple(m for m in (FOR_UPDATE, FOR_NO_KEY_UPDATE) if m in modes)
            held.append(Protocol(parent, child, followers, strongest))
            for t in found:
                a = t.acquisition
                covered.add((a.path, a.line, a.column, a.table))
        elif len(broken) == 1:
            keeping = [t for t in found if t.root in kept - broken]
            first = next((t for t in found if t.parent_lock is None and _contends(t, keeping)), None)
            if first is not None:
                example = next(t for t in found if t.root in kept - broken)
                breaches.append(Breach(parent, child, first, followers, example))
    return Protocols(tuple(held), frozenset(covered), tuple(breaches))


def _transactions_of(sequence: Sequence[Placed]) -> list[list[Placed]]:
    """A function's transactions: its acquisitions cut at each commit/rollback on every path (one
    inside a branch stays in as a marker). Unlike the lock graph's, a transaction of one lock
    counts: it touches the children too."""
    found: list[list[Placed]] = [[]]
    for item in sequence:
        if item[0] is None and not item[1]:
            found.append([])
        else:
            found[-1].append(item)
    return [s for s in found if any(a is not None for a, _ in s)]


def _touches(
    segment: Sequence[Placed],
    parent: str,
    child: str,
    columns: tuple[str, ...],
    referenced: set[str],
    root: str,
    name: str,
) -> list[Touch]:
    """The transaction's locks and writes on ``child`` rows, each with the parent lock it holds."""
    found: list[Touch] = []
    locks: list[tuple[int, Acquisition, tuple[str, ...]]] = []
    ends: list[tuple[int, tuple[str, ...]]] = []
    for index, (acquisition, place) in enumerate(segment):
        if acquisition is None:
            ends.append((index, place))
            continue
        if _touches_child(acquisition, parent, child):
            holding = None
            if _scoped(acquisition, child, columns):
                live = [
                    (lock, where)
                    for at, lock, where in locks
                    if not exclusive(where, place)
                    and acquisition.dialects <= lock.dialects
                    and not any(at < end and (on_path(e, where) or on_path(e, place)) for end, e in ends)
                ]
                holding = _on_every_path(live, place)
            waits_after = any(
                later is not None
                and later.waits
                and later.table in (parent, child)
                and not exclusive(where, place)
                for later, where in segment[index + 1 :]
            )
            repeated = any(part.endswith(":l") for part in place)
            found.append(Touch(root, name, acquisition, holding, waits_after, repeated))
        if _serializes(acquisition, parent, referenced):
            locks.append((index, acquisition, place))
    return found


def _contends(breaker: Touch, followers: Sequence[Touch]) -> bool:
    """Whether the touch that breaks the protocol can deadlock with a follower: it holds child
    rows and then waits for another child row or the parent row (a later lock, or the same
    statement again in a loop), or it reaches several child rows while a follower takes them in
    another order. Two that reach the same rows through the same index take them in the same
    order: the protocol is broken, but not into a deadlock."""
    if breaker.waits_after or breaker.repeated:
        return True
    if _writes_new_row(breaker.acquisition) or breaker.acquisition.index == PRIMARY:
        return False
    return any(_other_order(f, breaker) for f in followers if not _writes_new_row(f.acquisition))


def _writes_new_row(acquisition: Acquisition) -> bool:
    return bool(acquisition.inserted) or acquisition.what.startswith("merge")


def _other_order(follower: Touch, breaker: Touch) -> bool:
    """The follower reaches child rows another way than the breaker does: one at a time in a loop,
    by key against a scan, or through other columns (another index)."""
    mine, theirs = follower.acquisition, breaker.acquisition
    return follower.repeated or mine.index != theirs.index or set(mine.pins) != set(theirs.pins)


def _on_every_path(
    locks: Sequence[tuple[Acquisition, tuple[str, ...]]], place: tuple[str, ...]
) -> Acquisition | None:
    """A lock held on every path to ``place``: one on its path, or one in each arm of an
    ``if``/``else`` that ``place`` follows (``if x: lock(for_update=True) else: lock(...)``)."""
    for lock, where in locks:
        if on_path(where, place):
            return lock
    arms: dict[tuple[tuple[str, ...], str], dict[str, Acquisition]] = {}
    for lock, where in locks:
        for depth, part in enumerate(where):
            node, _, arm = part.rpartition(":")
            if arm in ("t", "f") and on_path(where[:depth], place) and part not in place:
                arms.setdefault((where[:depth], node), {}).setdefault(arm, lock)
                break
    for found in arms.values():
        if len(found) == 2:
            return found["t"]
    return None


def _touches_child(acquisition: Acquisition, parent: str, child: str) -> bool:
    """A lock or write on ``child`` rows (its own, or joined ones), or an INSERT/merge of one
    (seen as the foreign-key check it makes on ``parent``)."""
    if acquisition.table == child:
        return True
    return acquisition.table == parent and acquisition.inserted == child


def _scoped(acquisition: Acquisition, child: str, columns: tuple[str, ...]) -> bool:
    """The child rows belong to one parent row: the WHERE pins every foreign-key column, or it is
    an INSERT/merge (the new row names its parent)."""
    if acquisition.inserted == child or acquisition.what.startswith("merge"):
        return True
    if acquisition.what.startswith(("joined", "foreign key")):
        return False
    return bool(columns) and set(columns) <= set(acquisition.pins)


def _serializes(acquisition: Acquisition, parent: str, referenced: set[str]) -> bool:
    """A lock on the parent row that no second transaction can hold at once, on the row named by
    its key (the primary key, or the columns the foreign key references)."""
    if acquisition.table != parent or acquisition.mode not in SERIALIZING:
        return False
    if acquisition.what.startswith(("joined", "foreign key")):
        return False
    if acquisition.what.startswith(_ORM_FLUSH):
        return True  # an attribute write on a loaded instance: flushed as an UPDATE by its key
    return acquisition.index == PRIMARY or (bool(referenced) and referenced <= set(acquisition.pins))


def outside_protocols(program: Program, path: str, findings: list[Finding]) -> list[Finding]:
    """A file's findings less the LCK001/LCK002 ones on child rows whose lock or write runs, in
    every transaction that reaches it, under a parent lock that all of the child's lockers take
    first. Protocols are known only once LCK005's whole-program pass ran (``--select LCK005``):
    before the checks (then each check applies this) or after them (then the run does)."""
    protocols = program.lock_protocols
    if not isinstance(protocols, Protocols) or not protocols.covered:
        return findings
    from lockorder_lint.lock_graph import shown_path

    shown = shown_path(program, path)
    return [
        f
        for f in findings
        if f.code not in PROTOCOL_QUIETED
        or f.table is None
        or not protocols.covers(shown, f.line, f.column, f.table)
    ]


def serialized_by(project: Project) -> dict[str, list[Protocol]]:
    """Each child table's protocols, for ``lockorder-lint tables``: worked out here from the whole
    program's transactions when the run did not already (LCK005 not selected)."""
    from lockorder_lint.lock_graph import project_cycles

    program = project.program
    if program is None:
        return {}
    if program.lock_protocols is None:
        project_cycles(project)
    found: dict[str, list[Protocol]] = {}
    if isinstance(program.lock_protocols, Protocols):
        for protocol in program.lock_protocols.held:
            found.setdefault(protocol.child, []).append(protocol)
    return found
