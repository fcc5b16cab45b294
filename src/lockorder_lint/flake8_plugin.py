"""flake8 plugin: ``flake8 --select LCK`` reports, per file, exactly what the CLI reports.

flake8 checks files one at a time, but the rules need the whole project's model catalog. The
catalog is built once per project root and kept in this module, and ``parse_options`` (which
flake8 calls in the parent process, before it forks its workers) builds it for the paths on the
command line, so a parallel run still builds it once.

``parse_options`` is also where a bad configuration stops the run: once, on stderr, with exit
status 2, whatever ``--select`` says. flake8 gives plugins no documented way to abort (PyCQA/flake8
issue 1108), so the plugin does what argparse does for flake8's own invalid options."""

from __future__ import annotations

import argparse
import ast
import io
import os
import re
import sys
import tokenize
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar, NoReturn

from lockorder_lint import __version__
from lockorder_lint.config import ConfigError, code_problem, hot_table_warnings, load_config
from lockorder_lint.engine import Project, check_source
from lockorder_lint.files import PathError, find_project_root
from lockorder_lint.findings import FileError, Note
from lockorder_lint.runner import display_path, make_project

# (line, 0-based column, "LCKnnn message", checker type): what flake8 wants from a tree plugin.
Flake8Error = tuple[int, int, str, type]

# The plugin's own code for "could not check", which flake8 options may name besides the rules'.
PLUGIN_CODE = "LCK000"

_PROJECTS: dict[Path, Project | ConfigError] = {}


def project_for(
    root: Path, notes: list[Note] | None = None, errors: list[FileError] | None = None
) -> Project | ConfigError:
    """The project (configuration and catalog) of ``root``, built on first use and then reused;
    what its catalog walk could not read goes to ``notes`` and ``errors`` when it is built."""
    root = root.resolve()
    cached = _PROJECTS.get(root)
    if cached is None:
        try:
            cached = make_project(root, load_config(root / "pyproject.toml"), notes=notes, errors=errors)
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


def _option_codes(options: argparse.Namespace) -> Iterator[tuple[str, str]]:
    """(option, code) for every LCK code that flake8's own selection options name."""
    for name in ("select", "extend_select", "ignore", "extend_ignore"):
        for code in getattr(options, name, None) or ():
            yield f"--{name.replace('_', '-')}", code
    per_file = getattr(options, "per_file_ignores", None) or ""
    for token in re.split(r"[\s,]+", per_file if isinstance(per_file, str) else ""):
        yield "--per-file-ignores", token.rpartition(":")[2]


def _bad_option_code(options: argparse.Namespace) -> str | None:
    """Why one of flake8's options names an LCK code that selects nothing (a typo would otherwise
    silently turn rules off), or None."""
    for option, code in _option_codes(options):
        if not code.upper().startswith("LCK") or PLUGIN_CODE.startswith(code):
            continue
        problem = code_problem(code)
        if problem is not None:
            return f"flake8 option {option} holds {code!r}, which is {problem}"
    return None


def _abort(message: str) -> NoReturn:
    print(f"lockorder-lint: {message}", file=sys.stderr)
    raise SystemExit(2)


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
        line), build its catalog before flake8 forks its workers, and stop the run on a bad
        configuration or an LCK code that names no rule."""
        global _RUN_ROOT
        names = [n for n in getattr(options, "filenames", None) or ["."] if not _is_stdin(n)]
        existing = [Path(n) for n in names if os.path.exists(n)]
        problem = _bad_option_code(options)
        if problem is not None:
            _abort(problem)
        try:
            _RUN_ROOT = find_project_root(existing or [Path.cwd() / "stdin.py"]).resolve()
        except PathError as exc:
            _abort(f"error: {exc}")
        assert _RUN_ROOT is not None
        notes: list[Note] = []
        errors: list[FileError] = []
        project = project_for(_RUN_ROOT, notes, errors)
        if isinstance(project, ConfigError):
            _abort(f"configuration error: {project}")
        lines: list[FileError | Note] = [*errors, *notes]
        for line in lines:
            print(f"lockorder-lint: {line.render()}", file=sys.stderr)
        for warning in hot_table_warnings(project.config, project.catalog.tables):
            print(f"lockorder-lint: warning: {warning}", file=sys.stderr)

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
        try:
            project = project_for(root_for(path))
        except PathError as exc:
            project = ConfigError(str(exc))
        if isinstance(project, ConfigError):  # a file outside the run's root, in a broken project
            yield (1, 0, f"{PLUGIN_CODE} lockorder-lint configuration error: {project}", type(self))
            return
        result = check_source(self._source(), path, display_path(path), project)
        for error in result.errors:
            # flake8 reports syntax errors itself (E999); this is a function the engine could not follow.
            yield (
                max(error.line, 1),
                0,
                f"{PLUGIN_CODE} lockorder-lint could not check: {error.reason}",
                type(self),
            )
        for finding in result.findings:
            # flake8 adds 1 to the column it is given; the CLI's columns are already 1-based.
            yield (finding.line, finding.column - 1, f"{finding.code} {finding.message}", type(self))
