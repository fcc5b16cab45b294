"""flake8 plugin: ``flake8 --select LCK`` reports, per file, exactly what the CLI reports.

flake8 checks files one at a time, but the rules need the whole project's model catalog. The
catalog is built once per project root and kept in this module, and ``parse_options`` (which
flake8 calls in the parent process, before it forks its workers) builds it for the paths on the
command line, so a parallel run still builds it once."""

from __future__ import annotations

import argparse
import ast
import io
import tokenize
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

from lockorder_lint import __version__
from lockorder_lint.config import ConfigError, load_config
from lockorder_lint.engine import Project, check_source
from lockorder_lint.files import find_project_root
from lockorder_lint.runner import display_path, make_project

# (line, 0-based column, "LCKnnn message", checker type): what flake8 wants from a tree plugin.
Flake8Error = tuple[int, int, str, type]

_PROJECTS: dict[Path, Project | ConfigError] = {}


def project_for(root: Path) -> Project | ConfigError:
    """The project (configuration and catalog) of ``root``, built on first use and then reused."""
    root = root.resolve()
    cached = _PROJECTS.get(root)
    if cached is None:
        try:
            cached = make_project(root, load_config(root / "pyproject.toml"))
        except ConfigError as exc:
            cached = exc
        _PROJECTS[root] = cached
    return cached


# The root the CLI would use for this run's paths; set by ``parse_options``.
_RUN_ROOT: Path | None = None


def root_for(path: Path) -> Path:
    """The run's root for files under it (as the CLI has one root per run), else the file's own."""
    if _RUN_ROOT is not None and path.resolve().is_relative_to(_RUN_ROOT):
        return _RUN_ROOT
    return find_project_root([path])


def _is_stdin(filename: str) -> bool:
    return filename in ("-", "stdin")


class LockorderChecker:
    """flake8 entry point for the ``LCK`` codes."""

    name: ClassVar[str] = "lockorder-lint"
    version: ClassVar[str] = __version__

    def __init__(self, tree: ast.AST, filename: str, lines: Sequence[str]) -> None:
        # ``tree`` is what makes flake8 run this once per file; the engine parses what it needs itself.
        self.filename = filename
        self.lines = lines

    @classmethod
    def parse_options(cls, options: argparse.Namespace) -> None:
        """Find the run's project root the way the CLI does (from all the paths on the command
        line) and build its catalog, before flake8 forks its workers."""
        global _RUN_ROOT
        names = [n for n in getattr(options, "filenames", None) or ["."] if not _is_stdin(n)]
        existing = [Path(n) for n in names if Path(n).exists()]
        _RUN_ROOT = find_project_root(existing).resolve() if existing else None
        if _RUN_ROOT is not None:
            project_for(_RUN_ROOT)

    def _source(self) -> bytes:
        """The bytes flake8 is checking. They are the file on disk unless flake8 read them from
        stdin (an editor's unsaved buffer, given a real path by ``--stdin-display-name``)."""
        text = "".join(self.lines)
        path = Path(self.filename)
        if not _is_stdin(self.filename) and path.is_file():
            data = path.read_bytes()
            try:
                encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
                on_disk: str | None = data.decode(encoding)
            except (UnicodeDecodeError, LookupError, SyntaxError):
                on_disk = None
            if on_disk is not None and on_disk.lstrip("\ufeff") == text.lstrip("\ufeff"):
                return data  # keeps a PEP 263 coding cookie meaningful
        return text.encode("utf-8")

    def run(self) -> Iterator[Flake8Error]:
        path = Path(self.filename) if not _is_stdin(self.filename) else Path.cwd() / "stdin.py"
        project = project_for(root_for(path))
        if isinstance(project, ConfigError):
            yield (1, 0, f"LCK000 lockorder-lint configuration error: {project}", type(self))
            return
        result = check_source(self._source(), path, display_path(path), project)
        for error in result.errors:
            # flake8 reports syntax errors itself (E999); this is a function the engine could not follow.
            yield (
                max(error.line, 1),
                0,
                f"LCK000 lockorder-lint could not check: {error.reason}",
                type(self),
            )
        for finding in result.findings:
            # flake8 adds 1 to the column it is given; the CLI's columns are already 1-based.
            yield (finding.line, finding.column - 1, f"{finding.code} {finding.message}", type(self))
