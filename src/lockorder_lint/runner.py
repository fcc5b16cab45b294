"""A whole run: discover files, build the catalog once, check files (in a process pool when
asked), and gather the results in a stable order."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from lockorder_lint.config import Config
from lockorder_lint.engine import FileResult, Project, build_catalog, check_source, read_source
from lockorder_lint.files import iter_python_files, project_python_files
from lockorder_lint.findings import FileError, Finding, Skipped


@dataclass
class RunResult:
    findings: list[Finding] = field(default_factory=list)
    unknown: list[Skipped] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)
    files: int = 0
    analysed: int = 0


def display_path(path: Path) -> str:
    """Paths as the user will click them: relative to the working directory when under it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def make_project(root: Path, config: Config) -> Project:
    files = [(p, display_path(p)) for p in project_python_files(root, config.exclude)]
    return Project(root=root, config=config, catalog=build_catalog(files, root, config))


_WORKER_PROJECT: Project | None = None


def _init_worker(project: Project) -> None:
    global _WORKER_PROJECT
    _WORKER_PROJECT = project


def _check_path(item: tuple[Path, str]) -> FileResult:
    assert _WORKER_PROJECT is not None
    return check_path(item[0], item[1], _WORKER_PROJECT)


def check_path(path: Path, display: str, project: Project) -> FileResult:
    data, error = read_source(path, display)
    if data is None:
        return FileResult(errors=[error] if error else [])
    return check_source(data, path, display, project)


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def run(
    paths: Sequence[Path],
    project: Project,
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Check ``paths`` against ``project``; output order does not depend on ``jobs``."""
    result = RunResult()
    items: list[tuple[Path, str]] = []
    for path in paths:
        if not path.exists():
            result.errors.append(FileError(display_path(path), 0, "no such file or directory"))
    items = [
        (p, display_path(p))
        for p in iter_python_files([p for p in paths if p.exists()], project.root, project.config.exclude)
    ]
    result.files = len(items)
    if jobs > 1 and len(items) > 1:
        with ProcessPoolExecutor(max_workers=jobs, initializer=_init_worker, initargs=(project,)) as pool:
            outcomes = pool.map(_check_path, items, chunksize=max(1, len(items) // (jobs * 8)))
            file_results = []
            for done, outcome in enumerate(outcomes, 1):
                file_results.append(outcome)
                if progress:
                    progress(done, len(items))
    else:
        file_results = []
        for done, (path, display) in enumerate(items, 1):
            file_results.append(check_path(path, display, project))
            if progress:
                progress(done, len(items))
    for file_result in file_results:
        result.findings.extend(file_result.findings)
        result.unknown.extend(file_result.unknown)
        result.errors.extend(file_result.errors)
        result.analysed += file_result.analysed
    result.findings.sort(key=lambda f: (f.path, f.line, f.column, f.code))
    return result
