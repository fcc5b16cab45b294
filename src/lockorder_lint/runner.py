"""A whole run: discover files, build the catalog once, check files (in a process pool when
asked), and gather the results in a stable order."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lockorder_lint.cache import Cache, content_digest
from lockorder_lint.config import DEFAULT_EXCLUDE, Config
from lockorder_lint.engine import FileResult, Project, check_source
from lockorder_lint.files import Discovery, discover, read_regular_file, relative_to_root
from lockorder_lint.findings import FileError, Finding, Note, Skipped, TableStep
from lockorder_lint.project import build_project
from lockorder_lint.workers import Workers, settle_heap


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
) -> Project:
    """Learn the catalog and the program index from every project file, reusing cached facts of
    unchanged files.

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


def _check_item(project: Project, item: tuple[Path, str, bytes]) -> FileResult:
    return _check_safely(item[2], item[0], item[1], project)


def _check_safely(data: bytes, path: Path, display: str, project: Project) -> FileResult:
    """``check_source``, with a bug in it turned into an error line naming the file."""
    try:
        return check_source(data, path, display, project)
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
    outcomes: list[FileResult | None] = [None] * len(files)
    pending: list[tuple[int, str, tuple[Path, str, bytes]]] = []
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
            pending.append((index, key, (path, display, data)))
    done = result.cached
    if progress and done:
        progress(done, len(files))
    if jobs > 1 and len(pending) > 1:
        if workers is None or not workers.serves(project):
            if workers is not None:
                workers.close()
            workers = Workers(project, jobs)
        workers.refresh()  # what the project learnt since they were forked
        try:
            computed = workers.map(_check_item, [item for _, _, item in pending])
            for (index, _key, _item), outcome in zip(pending, computed, strict=True):
                outcomes[index] = outcome
                done += 1
                if progress:
                    progress(done, len(files))
        finally:
            workers.close()
    else:
        for index, _key, (path, display, data) in pending:
            outcomes[index] = _check_safely(data, path, display, project)
            done += 1
            if progress:
                progress(done, len(files))
    for index, key, _item in pending:
        fresh = outcomes[index]
        if cache is not None and fresh is not None and not _has_internal_error(fresh):
            for answer, entry in fresh.answers.items():
                cache.put_result(f"{answers}{answer}", entry)
            fresh.answers = {}
            cache.put_result(key, fresh)
    for final in outcomes:
        assert final is not None
        result.findings.extend(final.findings)
        result.unknown.extend(final.unknown)
        result.errors.extend(final.errors)
        result.steps.extend(getattr(final, "steps", ()))  # results cached before steps had none
        result.analysed += final.analysed
        result.parsed += final.parsed and not final.migration
        result.migrations += final.migration
        result.cold += final.cold
    result.findings.sort(key=lambda f: (f.path, f.line, f.column, f.code))
    if cache is not None:
        cache.save()
    return result


def _has_internal_error(outcome: FileResult) -> bool:
    return any(e.reason.startswith("internal error") for e in outcome.errors)
