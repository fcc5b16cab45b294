"""LCK005 lock-order-inversion: transactions, anywhere in the program, that each hold a row lock
another one waits for (table A then B in one, B then A in another), counting the locks the
database takes on its own. The cycles are found once per run over the whole program
(:mod:`lockorder_lint.lock_graph`); each is reported at one acquisition, with one trace per
transaction."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from lockorder_lint.rules.base import Report, Rule, RuleContext

if TYPE_CHECKING:
    from lockorder_lint.engine import Project
    from lockorder_lint.lock_graph import Cycle, Edge
    from lockorder_lint.protocols import Breach
    from lockorder_lint.transactions import Acquisition
    from lockorder_lint.units import Unit

_DATABASE = {"postgresql": "PostgreSQL", "mysql": "MySQL", "mariadb": "MariaDB"}
TraceStep = tuple[str, int, str, str]  # path, line, function, step


class LockOrderInversion(Rule):
    code = "LCK005"
    name = "lock-order-inversion"
    summary = (
        "transactions that lock the same tables in opposite orders (implicit FK and eager-join locks counted)"
    )
    whole_program = True
    preview = True

    def check(self, unit: Unit, context: RuleContext) -> Iterable[Report]:
        return ()  # whole-program: see program_reports

    def program_reports(
        self, project: Project, path: str
    ) -> list[tuple[Report, str, tuple[tuple[TraceStep, ...], ...]]]:
        """The cycles anchored in the file ``path``: report, function, trace per transaction."""
        from lockorder_lint.lock_graph import project_cycles, shown_path
        from lockorder_lint.statements import Span

        program = project.program
        if program is None:
            return []
        shown = shown_path(program, path)
        found = []
        for cycle in project_cycles(project):
            anchor = cycle.anchor
            if anchor.path != shown:
                continue
            span = Span(anchor.line, anchor.column, anchor.line, anchor.column)
            # What a baseline keys the finding on: the cycle of lock classes, not its lines.
            classes = " | ".join(
                f"{e.held.table} {e.held.mode} -> {e.wanted.table} {e.wanted.mode}" for e in cycle.edges
            )
            report = Report(self.code, span, self.message(cycle), anchor.table, f"{cycle.dialect}: {classes}")
            found.append((report, cycle.edges[0].name, trace(cycle)))
        found.extend(self._breaches(project, shown))
        return found

    def _breaches(
        self, project: Project, shown: str
    ) -> list[tuple[Report, str, tuple[tuple[TraceStep, ...], ...]]]:
        """The transactions anchored in this file that break a lock protocol the others keep,
        unless a cycle already reports that transaction over the same two tables."""
        from lockorder_lint.lock_graph import project_cycles
        from lockorder_lint.protocols import Protocols
        from lockorder_lint.statements import Span

        program = project.program
        protocols = program.lock_protocols if program is not None else None
        if not isinstance(protocols, Protocols):
            return []
        cycles = project_cycles(project)
        found = []
        for breach in protocols.breaches:
            touch = breach.touch
            anchor = touch.acquisition
            if anchor.path != shown:
                continue
            tables = {breach.parent, breach.child}
            if any(
                e.root == touch.root and tables <= set(c.tables()) | {e.wanted.table}
                for c in cycles
                for e in c.edges
            ):
                continue
            span = Span(anchor.line, anchor.column, anchor.line, anchor.column)
            others = ", ".join(breach.followers[:3]) + (
                f" and {len(breach.followers) - 3} more" if len(breach.followers) > 3 else ""
            )
            message = (
                f"{touch.name} breaks the lock protocol: other transactions ({others}) lock {breach.parent} "
                f"before {breach.child}; lock the {breach.parent} row first here (FOR UPDATE), as they do"
            )
            key = f"protocol: {breach.parent} before {breach.child}"
            found.append(
                (Report(self.code, span, message, breach.child, key), touch.name, _protocol_trace(breach))
            )
        return found

    @staticmethod
    def message(cycle: Cycle) -> str:
        from lockorder_lint.lock_graph import shown_mode

        dialect = cycle.dialect

        def lock(acquisition: Acquisition) -> str:
            return f"{acquisition.table} ({shown_mode(dialect, acquisition.mode)})"

        if cycle.against:
            (edge,) = cycle.edges
            first, then = cycle.against
            return (
                f"{edge.name} locks {lock(edge.held)} then {lock(edge.wanted)}, against the declared "
                f"lock-order ({first} before {then}); take {first} first, or take it with NOWAIT/SKIP LOCKED"
            )

        parts = [
            f"{edge.name} locks {lock(edge.held)} then {lock(edge.wanted)}{_so_do(cycle, index)}"
            for index, edge in enumerate(cycle.edges)
        ]
        implicit = [e.wanted for e in cycle.edges if e.wanted.what.startswith("foreign key")]
        eager = [
            e for e in cycle.edges if e.held.what.startswith("joined") or e.wanted.what.startswith("joined")
        ]
        if implicit:
            checked = implicit[0].what.removeprefix("foreign key check of ").split(" ", 1)[0]
            fix = f"lock the parent {implicit[0].table} row first where the {checked} happens"
        elif eager:
            fix = "lock with of=<the model> or without the joined eager load"
        else:
            fix = "take the locks in one order everywhere (" + " before ".join(cycle.tables()) + ")"
        kind = "three-party lock-order cycle" if len(cycle.edges) == 3 else "lock-order inversion"
        return (
            f"{kind} on {_DATABASE.get(dialect, dialect)}: {'; '.join(parts)}; "
            f"{fix}, or take the later lock with NOWAIT/SKIP LOCKED"
        )


def _so_do(cycle: Cycle, index: int) -> str:
    """`` (so do X, Y and 2 more)``: the other transactions that take one edge's locks in its order."""
    others = cycle.also[index] if index < len(cycle.also) else ()
    if not others:
        return ""
    counted: dict[str, int] = {}
    for other in others:  # functions of one name in several modules are told once
        counted[other.name] = counted.get(other.name, 0) + 1
    names = [name if count == 1 else f"{name} (in {count} modules)" for name, count in counted.items()]
    more = cycle.more[index] if index < len(cycle.more) else 0
    if more:
        listed = f"{', '.join(names)} and {more} more"
    else:
        listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return f" (so do {listed})"


def _step(edge: Edge, acquisition: Acquisition, dialect: str) -> TraceStep:
    from lockorder_lint.lock_graph import shown_mode

    via = f" — via {' → '.join(acquisition.chain)}" if acquisition.chain else ""
    text = f"locks {acquisition.table} ({shown_mode(dialect, acquisition.mode)}): {acquisition.what}{via}"
    return (acquisition.path, acquisition.line, edge.name, text)


def trace(cycle: Cycle) -> tuple[tuple[TraceStep, ...], ...]:
    """One trace per transaction: the lock it holds, then the one it waits for; the cycle's
    transactions first, then the others that take one of its edges in the same order."""
    edges = (*cycle.edges, *(other for others in cycle.also for other in others))
    return tuple(
        (_step(edge, edge.held, cycle.dialect), _step(edge, edge.wanted, cycle.dialect)) for edge in edges
    )


def _protocol_trace(breach: Breach) -> tuple[tuple[TraceStep, ...], ...]:
    """The breaking transaction's child lock; then one follower's parent lock and child lock."""

    def step(name: str, acquisition: Acquisition) -> TraceStep:
        via = f" — via {' → '.join(acquisition.chain)}" if acquisition.chain else ""
        text = f"locks {acquisition.table} ({acquisition.mode}): {acquisition.what}{via}"
        return (acquisition.path, acquisition.line, name, text)

    example = breach.example
    assert example.parent_lock is not None
    return (
        (step(breach.touch.name, breach.touch.acquisition),),
        (step(example.name, example.parent_lock), step(example.name, example.acquisition)),
    )
