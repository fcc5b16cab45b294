"""The run's process pool, shared by the project's phases (contention evidence, LCK005's lock
summaries) and the file checks.

Workers are forked once the program index is built. What a worker parses while it gathers the
contention evidence (the files of the helpers it follows) stays parsed while it then checks
files, instead of every phase's pool parsing them again. Between the phases the project gains
what the evidence decided (hot tables, the result-cache fingerprint); each task carries that
small update (LCK005's cycles among it), and a worker applies it once.

A worker holds the project it was forked with; the parent's project is never sent whole.
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from lockorder_lint.contention import Contention
    from lockorder_lint.engine import Project

T = TypeVar("T")
R = TypeVar("R")

_tokens = itertools.count(1)


@dataclass(frozen=True)
class Update:
    """What the parent's project learnt after the workers were forked."""

    token: int
    fingerprint: str
    hot: dict[str, list[str]] | None
    contention: Contention
    lock_cycles: list[Any] | None  # LCK005's program-wide cycles, when it runs
    lock_protocols: Any = None  # and the lock protocols found beside them (LCK001/LCK002 read them)


_PROJECT: Project | None = None
_APPLIED = 0


def _start(project: Project) -> None:
    global _PROJECT, _APPLIED
    _PROJECT = project
    _APPLIED = 0
    settle_heap()


def settle_heap() -> None:
    """Before checking files: move the project (catalog, program index) out of the garbage
    collector's way and let it collect less often. Every file's syntax tree is a hundred thousand
    fresh objects; with the default thresholds the collector re-walks the heap so often that it
    costs a third of the run. Memory stays bounded: collections still happen, just fewer."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def _call(task: tuple[Callable[[Project, Any], Any], Update | None, Any]) -> Any:
    global _APPLIED
    function, update, item = task
    assert _PROJECT is not None
    if update is not None and update.token != _APPLIED:
        _PROJECT.fingerprint = update.fingerprint
        _PROJECT.hot = update.hot
        _PROJECT.contention = update.contention
        if _PROJECT.program is not None:
            _PROJECT.program.lock_cycles = update.lock_cycles
            _PROJECT.program.lock_protocols = update.lock_protocols
        _APPLIED = update.token
    return function(_PROJECT, item)


class Workers:
    """A process pool over one project. ``map`` runs ``function(project, item)`` in the workers;
    ``serves`` tells whether they can check files for the project as it is now."""

    def __init__(self, project: Project, jobs: int) -> None:
        self.project = project
        self._pool = ProcessPoolExecutor(max_workers=jobs, initializer=_start, initargs=(project,))
        self._jobs = jobs
        self._update: Update | None = None

    def refresh(self) -> None:
        """Send the project's evidence-phase results along with every later task."""
        project = self.project
        program = project.program
        cycles = program.lock_cycles if program is not None else None
        protocols = program.lock_protocols if program is not None else None
        self._update = Update(
            next(_tokens), project.fingerprint, project.hot, project.contention, cycles, protocols
        )

    def serves(self, project: Project) -> bool:
        """The workers can check files for ``project``: the one they were forked with, with no
        whole-program answers of earlier runs to hand them (those are not sent)."""
        program = project.program
        return project is self.project and (program is None or not program.kept)

    def map(
        self, function: Callable[[Project, T], R], items: Sequence[T], chunksize: int | None = None
    ) -> Iterator[R]:
        chunk = chunksize or max(1, len(items) // (self._jobs * 8))
        tasks = [(function, self._update, item) for item in items]
        return self._pool.map(_call, tasks, chunksize=chunk)

    def close(self) -> None:
        self._pool.shutdown()
