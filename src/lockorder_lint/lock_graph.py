"""The program's lock-order graph, and its cycles (LCK005).

As lockdep does for kernel locks, locks are grouped in classes (here: tables) and a transaction
that holds a lock of class A while it waits for one of class B adds an edge A -> B. A cycle of
edges from different transactions, where each waited lock conflicts with the lock the next
transaction holds, is a deadlock waiting for two (or three) of them to meet on the same rows.

Transactions are read from function summaries (:mod:`lockorder_lint.transactions`): a function's
steps, with the steps of the functions it hands its session to spliced in where it calls them,
cut at each commit/rollback. Whether two locks conflict is the database's own table:
PostgreSQL's four row-lock modes, InnoDB's shared and exclusive locks.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from lockorder_lint.flushes import in_flush_order
from lockorder_lint.transactions import (
    FOR_KEY_SHARE,
    FOR_NO_KEY_UPDATE,
    FOR_SHARE,
    FOR_UPDATE,
    PRIMARY,
    Acquisition,
    FunctionLocks,
    Step,
    exclusive,
    on_path,
    relocate,
    switched_arm,
)

if TYPE_CHECKING:
    from lockorder_lint.cache import Cache
    from lockorder_lint.catalog import Catalog
    from lockorder_lint.config import Config
    from lockorder_lint.engine import Project
    from lockorder_lint.summaries import Program

# PostgreSQL's row-level lock conflicts ("Conflicting Row-Level Locks" in its manual).
_POSTGRESQL_CONFLICTS = {
    FOR_KEY_SHARE: frozenset({FOR_UPDATE}),
    FOR_SHARE: frozenset({FOR_NO_KEY_UPDATE, FOR_UPDATE}),
    FOR_NO_KEY_UPDATE: frozenset({FOR_SHARE, FOR_NO_KEY_UPDATE, FOR_UPDATE}),
    FOR_UPDATE: frozenset({FOR_KEY_SHARE, FOR_SHARE, FOR_NO_KEY_UPDATE, FOR_UPDATE}),
}
_STRENGTH = {FOR_KEY_SHARE: 1, FOR_SHARE: 2, FOR_NO_KEY_UPDATE: 3, FOR_UPDATE: 4}
MAX_DEPTH = 4  # calls spliced into a transaction: the function, its helpers, theirs...
MAX_SEGMENT = 40  # acquisitions of one transaction compared pairwise
MAX_WITNESSES = 30  # edges between two tables tried when closing a three-party cycle
MAX_ALSO = 3  # other transactions shown per edge of a cycle that take its locks in its order
# An acquisition (None: a commit or rollback) and its place in its function's branches.
Placed = tuple[Acquisition | None, tuple[str, ...]]


def innodb_mode(mode: str) -> str:
    """InnoDB's record lock for a PostgreSQL mode: shared for the share modes, else exclusive
    (MySQL has no key-share variants: ``key_share`` is dropped, FK checks take S)."""
    return "S" if mode in (FOR_SHARE, FOR_KEY_SHARE) else "X"


def conflicts(dialect: str, wanted: str, held: str) -> bool:
    """Whether a lock in mode ``wanted`` waits for another transaction's lock in mode ``held``."""
    if dialect == "postgresql":
        return held in _POSTGRESQL_CONFLICTS[wanted]
    return "X" in (innodb_mode(wanted), innodb_mode(held))


def acquisitions_conflict(dialect: str, wanted: Acquisition, held: Acquisition) -> bool:
    """``conflicts`` for two locks on one table, and on InnoDB through the index each takes: a
    foreign-key check on a secondary unique key locks that key's index record, which a lock taken
    through the primary key alone does not hold (LCK005's MariaDB oracle: no wait, no deadlock)."""
    if not conflicts(dialect, wanted.mode, held.mode):
        return False
    if dialect == "postgresql":
        return True
    indexes = {wanted.index, held.index}
    return not ("" not in indexes and PRIMARY in indexes and len(indexes) == 2)


def shown_mode(dialect: str, mode: str) -> str:
    if dialect == "postgresql":
        return mode
    return "shared" if innodb_mode(mode) == "S" else "exclusive"


@dataclass(frozen=True)
class Edge:
    """Transaction ``root`` holds ``held`` when it waits for ``wanted``."""

    root: str  # module-qualified name of the function whose transaction it is
    name: str  # that function as shown
    path: str
    held: Acquisition
    wanted: Acquisition


@dataclass(frozen=True)
class Cycle:
    """A lock-order cycle on one database: each edge's wanted lock waits for the next edge's
    held one (the last's for the first's)."""

    dialect: str
    edges: tuple[Edge, ...]
    # Set for one transaction that takes its locks against the configured ``lock-order``: the
    # cycle is closed by the order every other path is meant to follow.
    against: tuple[str, ...] = ()
    # Per edge, the other transactions that take the same two locks in the same order and would
    # close the cycle in that edge's place (best first, at most MAX_ALSO): a fix must reach them too.
    also: tuple[tuple[Edge, ...], ...] = ()
    # Per edge, how many more such transactions there are beyond those in ``also``.
    more: tuple[int, ...] = ()

    @property
    def anchor(self) -> Acquisition:
        return self.edges[0].wanted

    def tables(self) -> list[str]:
        return [edge.held.table for edge in self.edges]


def dialect_families(config: Config) -> list[str]:
    """The databases whose lock tables apply: PostgreSQL, MySQL, MariaDB (the last two differ on OF)."""
    found: list[str] = []
    for name in config.dialects:
        lowered = name.lower()
        family = "postgresql" if lowered in ("postgresql", "postgres") else lowered
        if family in ("postgresql", "mysql", "mariadb") and family not in found:
            found.append(family)
    return found or ["postgresql"]


class Transactions:
    """Each function's transactions: its steps with callees spliced in, cut at commit/rollback."""

    def __init__(self, summaries: Iterable[FunctionLocks]) -> None:
        self.functions = {summary.qualname: summary for summary in summaries}
        self._expanded: dict[tuple[str, int, tuple[str, ...]], list[Placed]] = {}
        self._splices = itertools.count(1)
        # Functions other functions hand their session to: never a transaction of their own.
        self.helpers = {
            step.callee
            for summary in self.functions.values()
            for step in summary.steps
            if step.kind == "call" and step.callee != summary.qualname
        }
        handed = {name for summary in self.functions.values() for name in summary.handed}
        self.helpers |= {q for q in self.functions if q.rsplit(".", 1)[-1] in handed}
        self.roots = self._roots()

    def _roots(self) -> set[str]:
        """The functions whose own transaction is one: those no caller hands a session (entry
        points among them), and those that open a session of their own (``@provide_session``)
        where a caller calls them without one; and a web framework's entry points (a route taking
        a ``Depends`` session). A function called both ways is both: a helper
        inside its callers' transactions, a root of its own. (A call on a receiver of unknown
        type that hands a session is taken to reach every method of its name: such a method is
        not taken for an entry point.)"""
        started = {name for summary in self.functions.values() for name in summary.starts}
        return {
            qualname
            for qualname, summary in self.functions.items()
            if qualname not in self.helpers or summary.entry or (summary.opens and qualname in started)
        }

    def expanded(
        self, qualname: str, depth: int = 0, stack: tuple[str, ...] = (), switched: tuple[str, ...] = ()
    ) -> list[Placed]:
        """The function's acquisitions in order, each with its place in the function's branches
        (a callee's places nested under its call's); None marks a commit or rollback.
        ``switched`` are the keywords its caller passes: locks under ``if <parameter>:`` count
        only when passed."""
        key = (qualname, depth, switched)
        if key in self._expanded:
            return self._expanded[key]
        summary = self.functions.get(qualname)
        found: list[Placed] = []
        if summary is not None:
            for raw in summary.steps:
                step = _switched(raw, switched)
                if step is None:
                    continue  # under ``if <parameter>:`` that this call leaves off
                if step.kind == "lock" and step.acquisition is not None:
                    if not step.when or step.when in switched:
                        found.append((step.acquisition, step.context))
                elif step.kind == "end":
                    found.append((None, step.context))
                elif step.kind == "call" and depth < MAX_DEPTH and step.callee not in stack:
                    callee = self.functions.get(step.callee)
                    if callee is None:
                        continue
                    passes = (*step.passes, *(k for k, p in step.forwards if p in switched))
                    inner = self.expanded(step.callee, depth + 1, (*stack, qualname), tuple(sorted(passes)))
                    prefix = f"{step.line}>"
                    splice = next(self._splices) << 20  # the callee's flushes are this call's own
                    found.extend(
                        (
                            _spliced(a, callee.name, splice) if a is not None else None,
                            (*step.context, *(prefix + part for part in context)),
                        )
                        for a, context in inner
                    )
        self._expanded[key] = found
        return found

    def edges(self, dialect: str, hot: Config | None = None) -> list[Edge]:
        """Every (held, wanted) pair of different tables in one transaction, once per function and
        pair of lock classes; the wanted lock waits (it is not NOWAIT/SKIP LOCKED). A lock is held
        at a later one unless they are on exclusive branches, or a commit/rollback lies on every
        path between them; a lock already held as strongly on every path to it adds nothing."""
        found: list[Edge] = []
        for qualname, summary in self.functions.items():
            if qualname not in self.roots:
                continue  # it runs inside its callers' transactions, which include its steps
            seen: set[tuple[str, str, str, str]] = set()
            for segment in _segments(self.expanded(qualname)):
                live: list[Placed] = []
                count = 0
                for acquisition, context in segment:
                    if acquisition is not None:
                        if dialect not in acquisition.dialects:
                            continue
                        if hot is not None and not hot.is_hot(acquisition.table):
                            continue
                        count += 1
                        if count > MAX_SEGMENT:
                            break
                    live.append((acquisition, context))
                live = _in_flush_order(live)
                held: list[tuple[int, Acquisition, tuple[str, ...]]] = []
                ends: list[tuple[int, tuple[str, ...]]] = []
                for index, (wanted, where) in enumerate(live):
                    if wanted is None:
                        ends.append((index, where))
                        continue
                    holding: dict[str, list[Acquisition]] = {}  # per table, the locks that may be held
                    covering: list[tuple[str, ...]] = []  # where the wanted row is held as strongly
                    for at, lock, place in held:
                        if exclusive(place, where) or any(
                            at < end and (on_path(ended, place) or on_path(ended, where))
                            for end, ended in ends
                        ):
                            continue  # never held together, or released on every path between
                        holding.setdefault(lock.table, []).append(lock)
                        if lock.table == wanted.table and _covers(lock.mode, wanted.mode):
                            if on_path(place, where):
                                break  # already held on every path here: the same rows, most likely
                            covering.append(place)
                    else:
                        if wanted.waits and not _both_arms(covering, where):
                            for table, locks in holding.items():
                                # the strongest lock on the table that is not always taken with
                                # the wanted table's row (an eager join locks both at once)
                                candidates = [
                                    lock
                                    for lock in locks
                                    if not _alternatives(lock, wanted) and not _taken_with(lock, wanted, held)
                                ]
                                if table == wanted.table or not candidates:
                                    continue
                                lock = max(candidates, key=lambda a: _STRENGTH[a.mode])
                                key = (lock.table, lock.mode, wanted.table, wanted.mode)
                                if key not in seen:
                                    seen.add(key)
                                    found.append(Edge(qualname, summary.name, summary.path, lock, wanted))
                        held.append((index, wanted, where))
        return found


def _in_flush_order(live: list[Placed]) -> list[Placed]:
    """The steps with each flush's pending writes in the order SQLAlchemy sends them; a write
    sent ahead of one the code made before it says so."""
    flush = [a.flush if a is not None else None for a, _place in live]
    groups = [f.group if f is not None else None for f in flush]
    if not any(g is not None and g == groups[i + 1] for i, g in enumerate(groups[:-1])):
        return live
    return [
        (replace(a, what=f"{a.what}, {_sent_first(a)}") if ahead and a is not None else a, place)
        for (a, place), ahead in in_flush_order(live, flush, groups)
    ]


def _sent_first(acquisition: Acquisition) -> str:
    flush = acquisition.flush
    name = flush.key.rsplit(".", 1)[-1] if flush is not None else acquisition.table
    return f"sent ahead by its flush (SQLAlchemy sends parents first, then by class name: {name} here)"


def _spliced(acquisition: Acquisition, helper: str, splice: int) -> Acquisition:
    """A callee's acquisition as its caller sees it: reached through ``helper``, its flush
    numbered for this call."""
    moved = relocate(acquisition, helper)
    flush = moved.flush
    return replace(moved, flush=replace(flush, group=splice + flush.group)) if flush is not None else moved


def _both_arms(places: Sequence[tuple[str, ...]], where: tuple[str, ...]) -> bool:
    """Whether locks at ``places`` are held on every path to ``where`` together: one in each arm
    of an if/else whose statement is on every path there (``if state == RUNNING: run.start_date
    = ... else: run.end_date = ...`` writes the run either way)."""
    arms: dict[tuple[str, ...], set[str]] = {}
    for place in places:
        for depth, part in enumerate(place):
            node, _, arm = part.rpartition(":")
            if arm in ("t", "f"):
                arms.setdefault((*place[:depth], node), set()).add(arm)
    return any(found == {"t", "f"} and on_path(key[:-1], where) for key, found in arms.items())


def _switched(step: Step, switched: tuple[str, ...]) -> Step | None:
    """The step as a run with the ``switched`` parameters on sees it: None when it lies under
    ``if <parameter>:`` with that parameter off; else with those arms taken as on every path."""
    arms = [switched_arm(part) for part in step.context]
    if not any(arms):
        return step
    if any(arm and arm not in switched for arm in arms):
        return None
    return replace(step, context=tuple(p for p, arm in zip(step.context, arms, strict=True) if not arm))


def _segments(sequence: Sequence[Placed]) -> list[list[Placed]]:
    """The transactions of a function: cut at each commit/rollback on every path (not inside a
    branch); a conditional one stays in, as a marker. Only those with two locks or more."""
    segments: list[list[Placed]] = [[]]
    for item in sequence:
        if item[0] is None and not item[1]:
            segments.append([])
        else:
            segments[-1].append(item)
    return [s for s in segments if sum(a is not None for a, _ in s) > 1]


def _covers(held: str, wanted: str) -> bool:
    """Whether a row held in mode ``held`` waits for nothing another transaction that could be in
    a cycle with us holds when taken again in mode ``wanted``: held as strongly, or held ``FOR NO
    KEY UPDATE`` and wanted ``FOR UPDATE`` (the upgrade waits only for a foreign-key check's
    ``KEY SHARE``; a holder of any stronger lock on the row could not be holding it now)."""
    return _STRENGTH[held] >= _STRENGTH[wanted] or (held, wanted) == (FOR_NO_KEY_UPDATE, FOR_UPDATE)


def _site(acquisition: Acquisition) -> tuple[str, int, int, tuple[str, ...]]:
    return (acquisition.path, acquisition.line, acquisition.column, acquisition.chain)


def _taken_with(
    lock: Acquisition, wanted: Acquisition, held: Sequence[tuple[int, Acquisition, tuple[str, ...]]]
) -> bool:
    """Whether the statement that took ``lock`` also took a lock on the wanted table at least as
    strong (a ``FOR UPDATE`` with an eager join locks the task instance and its ``dag_run``
    together): the wanted row is then held wherever ``lock`` is, and waits for nothing new."""
    site = _site(lock)
    return any(
        other.table == wanted.table
        and _STRENGTH[other.mode] >= _STRENGTH[wanted.mode]
        and _site(other) == site
        for _at, other, _place in held
    )


def _alternatives(first: Acquisition, second: Acquisition) -> bool:
    """Two explicit locks of one statement on different tables: the candidates of a model chosen
    at run time (``update(model)`` with ``model`` one of several), not one lock after another."""
    same_place = (first.path, first.line, first.column, first.chain) == (
        second.path,
        second.line,
        second.column,
        second.chain,
    )
    return same_place and not _implicit(first) and not _implicit(second)


def _implicit(acquisition: Acquisition) -> bool:
    """A lock the database takes on its own (FK check, eager-joined rows)."""
    return acquisition.what.startswith(("foreign key", "joined"))


def _preference(edge: Edge) -> tuple[int, int, str, int]:
    """Which witness of a lock-class edge to show: explicit locks before implicit ones, short
    call chains, then by place."""
    implicit = int(
        edge.held.what.startswith(("foreign key", "joined"))
        or edge.wanted.what.startswith(("foreign key", "joined"))
    )
    return (implicit, len(edge.held.chain) + len(edge.wanted.chain), edge.path, edge.wanted.line)


def related(catalog: Catalog) -> Callable[[str, str], bool]:
    """Whether two tables are parent and child (a foreign key or a relationship joins them, either
    way): transactions meet on the same rows of two tables when one's keys lead to the other's."""
    links: set[frozenset[str]] = set()
    for table in catalog.tables.values():
        for _key, reference in table.references():
            links.add(frozenset({table.name, reference.split(".", 1)[0]}))
        for relationship in table.relationships:
            if relationship.target is not None:
                links.add(frozenset({table.name, relationship.target}))
    return lambda a, b: frozenset({a, b}) in links


def find_cycles(
    transactions: Transactions,
    dialects: Sequence[str],
    config: Config | None = None,
    linked: Callable[[str, str], bool] | None = None,
) -> list[Cycle]:
    """Two- and three-party cycles, each reported once per set of lock-class edges (on the first
    database that has it); a three-party cycle only over tables no two-party cycle already joins."""
    hot = _listed_hot(config)
    cycles: list[Cycle] = []
    reported: set[frozenset[tuple[str, str, str, str]]] = set()
    pairs: set[frozenset[str]] = set()
    for dialect in dialects:
        edges = sorted(transactions.edges(dialect, hot), key=_preference)
        by_tables: dict[tuple[str, str], list[Edge]] = {}
        for edge in edges:
            if linked is not None and not linked(edge.held.table, edge.wanted.table):
                continue  # unrelated tables: nothing leads two transactions to the same rows of both
            by_tables.setdefault((edge.held.table, edge.wanted.table), []).append(edge)

        def closes(first: Edge, second: Edge, dialect: str = dialect) -> bool:
            """``first`` waits for a lock ``second``'s transaction holds."""
            return first.root != second.root and acquisitions_conflict(dialect, first.wanted, second.held)

        for (a, b), forward in by_tables.items():
            for first in forward:
                matching = [e for e in by_tables.get((b, a), ()) if closes(first, e) and closes(e, first)]
                if not matching:
                    continue
                # the same lock classes, other places: one cycle; a witness in the same file reads best
                second = min(matching, key=lambda e, p=first.path: e.path != p)  # type: ignore[misc]
                classes = frozenset({_classes(first), _classes(second)})
                if classes in reported:
                    continue
                reported.add(classes)
                pairs.add(frozenset({a, b}))
                also = (
                    _same_order(forward, first, second, closes),
                    _same_order(by_tables[(b, a)], second, first, closes),
                )
                cycles.append(_canonical(Cycle(dialect, (first, second)), also))
        for (a, b), forward in by_tables.items():
            for (b2, c), middle in by_tables.items():
                if b2 != b or c == a:
                    continue
                closing = by_tables.get((c, a), ())
                if not closing:
                    continue
                if any(frozenset(p) in pairs for p in ((a, b), (b, c), (c, a))):
                    continue
                found = _three(
                    forward[:MAX_WITNESSES], middle[:MAX_WITNESSES], closing[:MAX_WITNESSES], closes
                )
                if found is not None:
                    classes = frozenset(_classes(e) for e in found)
                    if classes not in reported:
                        reported.add(classes)
                        lists = (forward, middle, closing)
                        others = tuple(
                            _same_order(lists[i], found[i], found[i - 1], closes, found[(i + 1) % 3], found)
                            for i in range(3)
                        )
                        cycles.append(_canonical(Cycle(dialect, found), others))
    return cycles


def _listed_hot(config: Config | None) -> Config | None:
    """The configuration when it lists hot tables (only their locks count), else None (every
    table's do)."""
    return config if config is not None and config.hot_tables is not None else None


def against_declared_order(
    transactions: Transactions, dialects: Sequence[str], config: Config
) -> list[Cycle]:
    """Each function whose transaction waits for a lock on a table while holding one on a table
    that ``lock-order`` puts after it: reported even when no path takes them the other way yet.
    One per function and pair of tables, on the first database that has it."""
    hot = _listed_hot(config)
    rank = {table: index for index, table in enumerate(config.lock_order)}
    found: list[Cycle] = []
    seen: set[tuple[str, str, str]] = set()
    for dialect in dialects:
        for edge in sorted(transactions.edges(dialect, hot), key=_preference):
            held, wanted = edge.held.table, edge.wanted.table
            if held not in rank or wanted not in rank or rank[wanted] > rank[held]:
                continue
            key = (edge.root, held, wanted)
            if key not in seen:
                seen.add(key)
                found.append(Cycle(dialect, (edge,), against=(wanted, held)))
    return found


def _classes(edge: Edge) -> tuple[str, str, str, str]:
    """The edge between lock classes, (table, mode) to (table, mode): what a cycle is made of."""
    return (edge.held.table, edge.held.mode, edge.wanted.table, edge.wanted.mode)


def _three(
    forward: Sequence[Edge], middle: Sequence[Edge], closing: Sequence[Edge], closes: object
) -> tuple[Edge, Edge, Edge] | None:
    assert callable(closes)
    # three parties meeting through implicit locks (FK checks, eager joins): too speculative to say
    forward, middle, closing = (
        [e for e in edges if not _implicit(e.wanted)] for edges in (forward, middle, closing)
    )
    for first in forward:
        for second in middle:
            if second.root == first.root or not closes(first, second):
                continue
            for third in closing:
                if third.root in (first.root, second.root):
                    continue
                if closes(second, third) and closes(third, first):
                    return first, second, third
    return None


def _same_order(
    candidates: Sequence[Edge],
    edge: Edge,
    before: Edge,
    closes: Callable[[Edge, Edge], bool],
    after: Edge | None = None,
    taken: Sequence[Edge] = (),
) -> tuple[Edge, ...]:
    """The other transactions among ``candidates`` (in preference order) that take ``edge``'s two
    lock classes in its order and would close the cycle in its place: ``before``'s transaction
    waits for what they hold, and they wait for what ``after``'s holds (``before``'s, in a
    two-party cycle). One per transaction, none of the cycle's own (``taken``)."""
    after = after if after is not None else before
    parties = {edge.root, before.root, after.root, *(e.root for e in taken)}
    found: dict[str, Edge] = {}
    for candidate in candidates:
        if candidate.root in parties or candidate.root in found:
            continue
        if _classes(candidate) == _classes(edge) and closes(before, candidate) and closes(candidate, after):
            found[candidate.root] = candidate
    return tuple(found.values())


def _canonical(cycle: Cycle, also: tuple[tuple[Edge, ...], ...]) -> Cycle:
    """The same cycle always starts at the same edge: the one whose wanted lock comes first by
    place. ``also`` (per edge, the other transactions taking it) is cut to MAX_ALSO, the rest counted."""
    edges = cycle.edges
    start = min(range(len(edges)), key=lambda i: (edges[i].wanted.path, edges[i].wanted.line, edges[i].root))
    turned = also[start:] + also[:start]
    return replace(
        cycle,
        edges=edges[start:] + edges[:start],
        also=tuple(others[:MAX_ALSO] for others in turned),
        more=tuple(max(0, len(others) - MAX_ALSO) for others in turned),
    )


def digest(cycles: Sequence[Cycle]) -> str:
    """What results depend on, for the result cache."""
    text = "\n".join(
        f"{c.dialect}|{','.join(c.against)}|"
        + "|".join(
            f"{e.root}:{e.held.line}:{e.wanted.path}:{e.wanted.line}"
            for e in (*c.edges, *(o for others in c.also for o in others))
        )
        + f"|{c.more}"
        for c in cycles
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def shown_path(program: Program, path: str) -> str:
    """A file as findings and traces show it: its display in the run, else relative to the
    working directory when under it (test files are not in the program's displays)."""
    import os

    known = program.displays.get(path)
    if known is not None:
        return known
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


@dataclass(frozen=True)
class LockFile:
    """A production file whose lock summaries LCK005 reads: its path, its display (as traces
    show it), and the key its summaries are cached under ("" when it has no digest)."""

    path: str
    display: str
    key: str


def lock_files(project: Project) -> list[LockFile]:
    """The files whose functions' transactions LCK005 compares, in path order (witnesses
    depend on it): every production module of the program index, not migrations (they run
    alone) or tests (they never run beside production transactions)."""
    from pathlib import Path

    from lockorder_lint.files import relative_to_root
    from lockorder_lint.project import is_test_path

    program = project.program
    if program is None:
        return []
    found: list[LockFile] = []
    for path in sorted(set(program.modules.values())):
        relative = relative_to_root(Path(path), project.root) or path
        if path in project.migrations or is_test_path(relative):
            continue
        display = shown_path(program, path)
        digest_of = project.digests.get(path, "")
        key = f"locks:{project.fingerprint}:{display}:{digest_of}" if digest_of else ""
        found.append(LockFile(path, display, key))
    return found


def project_cycles(
    project: Project,
    cache: Cache | None = None,
    known: Mapping[str, list[FunctionLocks]] | None = None,
    files: Sequence[LockFile] | None = None,
) -> list[Cycle]:
    """The program's cycles, computed once per run (or once per worker, for a project built
    without them) from every production file's summaries; each file's summaries are cached by
    its content when a cache is given. ``known`` holds the summaries the file checks already
    worked out, by path (they parsed and followed those files anyway); ``files`` are
    ``lock_files(project)`` when the caller has them."""
    program = project.program
    if program is None:
        return []
    if program.lock_cycles is not None:
        return program.lock_cycles
    current, touched, names = program._current, set(program.touched), set(program.touched_names)
    declared = set(program.touched_symbols)
    files = lock_files(project) if files is None else files
    parts: list[list[FunctionLocks] | None] = []  # per file, in path order
    pending: list[int] = []
    for index, file in enumerate(files):
        found = known.get(file.path) if known is not None else None
        if found is not None:
            if cache is not None and file.key:
                cache.put_result(file.key, found)
        elif cache is not None and file.key:
            found = cache.get_result(file.key)
        if found is None:
            pending.append(index)
        parts.append(found)
    workers = project.workers  # the project phase's pool, when it started one
    items = [(files[i].path, files[i].display) for i in pending]
    if workers is not None and len(items) > 1:
        workers.refresh()
        computed = list(workers.map(_file_locks_item, items, chunksize=4))
    else:
        computed = [_file_locks_item(project, item) for item in items]
    for index, found in zip(pending, computed, strict=True):
        parts[index] = found
        if found is not None and cache is not None and files[index].key:
            cache.put_result(files[index].key, found)
    summaries = [summary for part in parts if part for summary in part]
    program._current, program.touched, program.touched_names = current, touched, names
    program.touched_symbols = declared
    linked = related(project.catalog)
    transactions = Transactions(summaries)
    from lockorder_lint.protocols import find_protocols

    program.lock_protocols = find_protocols(transactions, project.catalog)
    dialects = dialect_families(project.config)
    cycles = find_cycles(transactions, dialects, project.config, linked)
    if project.config.lock_order:
        in_cycles = {(e.root, _classes(e)) for c in cycles for e in c.edges}
        violations = against_declared_order(transactions, dialects, project.config)
        cycles += [v for v in violations if (v.edges[0].root, _classes(v.edges[0])) not in in_cycles]
    program.lock_cycles = cycles
    return cycles


def _file_locks_item(project: Project, item: tuple[str, str]) -> list[FunctionLocks] | None:
    """One file's lock summaries (in a worker, or here), None when it cannot be read."""
    from pathlib import Path

    from lockorder_lint.transactions import file_locks
    from lockorder_lint.walk import forget

    path, display = item
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    try:
        return file_locks(data, Path(path), display, project)
    finally:
        forget()  # as after a file's check: its trees may go
