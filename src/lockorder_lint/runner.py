"""A whole run: discover files, build the catalog once, check files (in a process pool when
asked), and gather the results in a stable order."""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lockorder_lint.cache import Cache, content_digest
from lockorder_lint.config import DEFAULT_EXCLUDE, Config
from lockorder_lint.engine import FileResult, Project, check_source, whole_program_findings
from lockorder_lint.files import Discovery, discover, read_regular_file, relative_to_root
from lockorder_lint.findings import FileError, Finding, Note, Skipped, TableStep
from lockorder_lint.parsing import source_lines
from lockorder_lint.project import build_project
from lockorder_lint.workers import Workers, settle_heap

if TYPE_CHECKING:
    from lockorder_lint.lock_graph import LockFile


@dataclass
class RunResult:
    findings: list[Finding] = field(default_factory=list)
    unknown: list[Skipped] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    files: int = 0
    analysed: int = 0
    parsed: int = 0  # files read and parsed (what the summary calls checked)
    migrations: int = 0  # Alembic revisions left out
    cold: int = 0  # statements left alone because nothing shows their table is contended
    cached: int = 0
    # Locks and writes on known tables of the functions the rules followed (the statements they
    # judged), for the report's lock-order graph.
    steps: list[TableStep] = field(default_factory=list)


ANSWER = "answer:"  # cache keys of whole-program answers, beside per-file results


def display_path(path: Path) -> str:
    """Paths as the user will click them: relative to the working directory when under it."""
    relative = relative_to_root(path, _working_directory(os.getcwd()))
    return relative if relative not in (None, ".") else path.as_posix()


@functools.lru_cache(maxsize=8)
def _working_directory(cwd: str) -> Path:
    return Path(cwd).resolve()


def make_project(
    root: Path,
    config: Config,
    cache: Cache | None = None,
    notes: list[Note] | None = None,
    errors: list[FileError] | None = None,
    jobs: int = 1,
    cycles_first: bool = True,
) -> Project:
    """Learn the catalog and the program index from every project file, reusing cached facts of
    unchanged files.

    With a whole-program rule (LCK005) selected, its cycles are worked out here, before any file
    is checked, and the result cache keys on them. ``cycles_first=False`` leaves them to ``run``,
    which works them out from what its checks find (each file is then parsed and followed once).

    ``exclude`` does not apply here: it stops files being checked, not their models being known.
    Only the default skips (hidden directories, caches, installed packages) and virtual
    environments are left out. What the walk could not read goes to ``notes`` (the run goes on;
    if it also checks those paths, the check reports them as errors); a file that could not be
    read or parsed (its models, if any, are not in the catalog) goes to ``errors``."""
    found = discover([root], root, DEFAULT_EXCLUDE)
    for problem in found.problems:
        if notes is not None:
            missed = "; its models are not in the catalog" if problem.error else ""
            notes.append(Note(display_path(problem.path), problem.reason + missed))
    files = [(path, display_path(path)) for path in found.files]
    project, facts = build_project(root, config, files, cache, jobs)
    if errors is not None:
        errors.extend(fact.error for fact in facts if fact.error is not None)
    if cycles_first and any(rule.whole_program for rule in project.rules):
        from lockorder_lint.lock_graph import digest, project_cycles

        cycles = project_cycles(project, cache)  # once per run; each file's part cached
        if cache is not None:  # a file's LCK005 findings depend on every transaction's locks
            protocols = project.program.lock_protocols if project.program is not None else None
            held = protocols.digest() if protocols is not None else ""  # LCK001/LCK002 quiet under one
            combined = f"{project.fingerprint}|{digest(cycles)}|{held}"
            project.fingerprint = hashlib.sha256(combined.encode()).hexdigest()[:16]
    return project


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def checked_files(paths: Sequence[Path], project: Project) -> Discovery:
    """The files a run over ``paths`` checks (see ``files.discover``), and what it could not use."""
    config = project.config
    return discover(paths, project.root, config.walk_exclude, config.named_exclude)


def read_file(path: Path, display: str) -> tuple[bytes | None, FileError | None]:
    """A checked file's bytes, or why they could not be read (never blocks on a FIFO)."""
    try:
        return read_regular_file(path), None
    except OSError as exc:
        return None, FileError(display, 0, f"cannot read: {exc.strerror or exc}")


# One file to check: path, display, bytes, and the display its LCK005 lock summaries are
# worked out under (None: not wanted from this check).
Item = tuple[Path, str, bytes, str | None]


def _check_item(project: Project, item: Item) -> FileResult:
    path, display, data, locks_as = item
    return _check_safely(data, path, display, project, False, locks_as)  # whole-program findings: see _run


def _check_safely(
    data: bytes,
    path: Path,
    display: str,
    project: Project,
    whole_program: bool = True,
    locks_as: str | None = None,
) -> FileResult:
    """``check_source``, with a bug in it turned into an error line naming the file."""
    try:
        return check_source(data, path, display, project, whole_program, locks_as)
    except Exception as exc:
        return FileResult(errors=[FileError(display, 0, f"internal error: {_describe(exc)}")])


def check_path(path: Path, display: str, project: Project) -> FileResult:
    data, error = read_file(path, display)
    if data is None:
        return FileResult(errors=[error] if error else [])
    return _check_safely(data, path, display, project)


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def run(
    paths: Sequence[Path],
    project: Project,
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
    cache: Cache | None = None,
) -> RunResult:
    """Check ``paths`` against ``project``; output order does not depend on ``jobs`` or the cache."""
    workers, project.workers = project.workers, None
    try:
        return _run(paths, project, jobs, progress, cache, workers)
    finally:
        if workers is not None:
            workers.close()


def _run(
    paths: Sequence[Path],
    project: Project,
    jobs: int,
    progress: Callable[[int, int], None] | None,
    cache: Cache | None,
    workers: Workers | None,
) -> RunResult:
    settle_heap()
    result = RunResult()
    found = checked_files(paths, project)
    for problem in found.problems:
        display = display_path(problem.path)
        if problem.error:
            result.errors.append(FileError(display, 0, problem.reason))
        else:
            result.notes.append(Note(display, problem.reason))
    files = [(p, display_path(p)) for p in found.files]
    result.files = len(files)
    answers = f"{ANSWER}{project.fingerprint}:"  # the catalog and configuration they hold for
    if cache is not None and project.program is not None:  # whole-program answers of earlier runs
        kept = {k[len(answers) :]: v for k, v in cache.results.items() if k.startswith(answers)}
        project.program.kept = kept
    lock_files = _lock_files(project)
    wanted = {file.path: file.display for file in lock_files}
    outcomes: list[FileResult | None] = [None] * len(files)
    pending: list[tuple[int, str, Item]] = []
    for index, (path, display) in enumerate(files):
        data, error = read_file(path, display)
        if data is None:
            outcomes[index] = FileResult(errors=[error] if error else [])
            continue
        key = f"{project.fingerprint}:{display}:{content_digest(data)}"
        cached = cache.get_result(key) if cache is not None else None
        if cached is not None and not all(project.still_valid(p, d) for p, d in cached.deps.items()):
            cached = None  # a helper it followed into another file, or who calls it, has changed
        if cached is not None:
            outcomes[index] = cached
            result.cached += 1
        else:
            pending.append((index, key, (path, display, data, wanted.get(str(path)))))
    done = result.cached
    if progress and done:
        progress(done, len(files))
    started: Workers | None = None  # a pool this run starts, closed when it is done with it
    try:
        if jobs > 1 and len(pending) > 1:
            if workers is None or not workers.serves(project):
                if workers is not None:
                    workers.close()
                workers = started = Workers(project, jobs)
            workers.refresh()  # what the project learnt since they were forked
            computed = workers.map(_check_item, [item for _, _, item in pending])
            for (index, _key, _item), outcome in zip(pending, computed, strict=True):
                outcomes[index] = outcome
                done += 1
                if progress:
                    progress(done, len(files))
        else:
            for index, _key, item in pending:
                outcomes[index] = _check_item(project, item)
                done += 1
                if progress:
                    progress(done, len(files))
        if lock_files:
            _find_cycles(project, cache, workers, lock_files, pending, outcomes)
    finally:
        if started is not None:
            started.close()
    for index, key, _item in pending:
        fresh = outcomes[index]
        if fresh is not None:
            fresh.locks = None  # cached on their own (see ``lock_graph.project_cycles``)
        if cache is not None and fresh is not None and not _has_internal_error(fresh):
            for answer, entry in fresh.answers.items():
                cache.put_result(f"{answers}{answer}", entry)
            fresh.answers = {}
            cache.put_result(key, fresh)
    whole_program = project.program is not None and any(rule.whole_program for rule in project.rules)
    for (path, display), final in zip(files, outcomes, strict=True):
        assert final is not None
        findings, errors = final.findings, final.errors
        if whole_program and final.parsed and not final.migration:
            findings, errors = _with_whole_program(path, display, project, final)
        result.findings.extend(findings)
        result.unknown.extend(final.unknown)
        result.errors.extend(errors)
        result.steps.extend(getattr(final, "steps", ()))  # results cached before steps had none
        result.analysed += final.analysed
        result.parsed += final.parsed and not final.migration
        result.migrations += final.migration
        result.cold += final.cold
    result.findings.sort(key=lambda f: (f.path, f.line, f.column, f.code))
    if cache is not None:
        cache.save()
    return result


def _lock_files(project: Project) -> list[LockFile]:
    """The files whose LCK005 lock summaries the checks are to work out, when the run still has
    to find LCK005's cycles (see ``make_project``'s ``cycles_first``)."""
    program = project.program
    if program is None or program.lock_cycles is not None:
        return []
    if not any(rule.whole_program for rule in project.rules):
        return []
    from lockorder_lint.lock_graph import lock_files

    return lock_files(project)


def _find_cycles(
    project: Project,
    cache: Cache | None,
    workers: Workers | None,
    files: Sequence[LockFile],
    pending: Sequence[tuple[int, str, Item]],
    outcomes: Sequence[FileResult | None],
) -> None:
    """LCK005's cycles, from the lock summaries the checks worked out, the cached ones, and the
    rest (files the run does not check) worked out in the run's workers."""
    from lockorder_lint.lock_graph import project_cycles

    known = {}
    for index, _key, (path, _display, _data, locks_as) in pending:
        outcome = outcomes[index]
        if locks_as is not None and outcome is not None and outcome.locks is not None:
            known[str(path)] = outcome.locks
    project.workers = workers if workers is not None and workers.serves(project) else None
    try:
        project_cycles(project, cache, known, files)
    finally:
        project.workers = None


def _with_whole_program(
    path: Path, display: str, project: Project, outcome: FileResult
) -> tuple[list[Finding], list[FileError]]:
    """A checked file's findings and errors with those of the whole-program rules (LCK005) added,
    as its check would have added them had the cycles been known then (see ``check_source``)."""
    lines: list[str] | None = None

    def line(number: int) -> str:
        nonlocal lines
        if lines is None:
            data, _error = read_file(path, display)
            lines = source_lines(data) if data is not None else []
        return lines[number - 1] if 0 < number <= len(lines) else ""

    found, errors = whole_program_findings(path, display, line, project)
    kept = outcome.findings
    if project.program is not None:
        from lockorder_lint.protocols import outside_protocols

        kept = outside_protocols(project.program, str(path), kept)
    if not found and not errors:
        return kept, outcome.errors
    findings = found + kept
    if outcome.ordered:
        findings.sort()
    return findings, errors + outcome.errors


def _has_internal_error(outcome: FileResult) -> bool:
    return any(e.reason.startswith("internal error") for e in outcome.errors)
