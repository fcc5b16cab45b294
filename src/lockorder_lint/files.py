"""Which files to check and which project they belong to."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT_MARKERS = ("pyproject.toml", "setup.cfg", "setup.py", ".git")
SKIPPED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        "node_modules",
        "build",
        "dist",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".lockorder_cache",
        "site-packages",
        ".eggs",
    }
)


def find_project_root(paths: Iterable[Path]) -> Path:
    """The nearest parent of the paths' common parent that holds a project marker, else that parent."""
    resolved = [p.resolve() for p in paths] or [Path.cwd().resolve()]
    common = Path(os.path.commonpath([str(p) for p in resolved]))
    if common.is_file() or (not common.exists() and common.suffix):
        common = common.parent
    for candidate in (common, *common.parents):
        if any((candidate / marker).exists() for marker in ROOT_MARKERS):
            return candidate
    return common


def relative_to_root(path: Path, root: Path) -> str | None:
    """``path`` relative to ``root`` as a posix string, or None outside it. Paths from the walk
    are already absolute and resolved, so a string comparison does; others are resolved first."""
    text, base = str(path), str(root)
    if not path.is_absolute():
        text = str(path.resolve())
    if text.startswith(base + os.sep):
        return text[len(base) + 1 :].replace(os.sep, "/")
    if text == base:
        return "."
    resolved = str(path.resolve())
    if resolved.startswith(base + os.sep):
        return resolved[len(base) + 1 :].replace(os.sep, "/")
    return None


def is_excluded(path: Path, root: Path, patterns: Iterable[str]) -> bool:
    patterns = tuple(patterns)
    if not patterns:
        return False
    rel = relative_to_root(path, root) or path.as_posix()
    for pattern in patterns:
        pattern = pattern.rstrip("/")
        if fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(path.name, pattern):
            return True
        if fnmatch.fnmatch(rel, pattern + "/*") or rel.startswith(pattern + "/"):
            return True
    return False


def _is_virtualenv(path: Path) -> bool:
    return (path / "pyvenv.cfg").is_file()


def iter_python_files(paths: Iterable[Path], root: Path, exclude: Iterable[str]) -> Iterator[Path]:
    """Files named on the command line, and the ``.py`` files under named directories, sorted."""
    exclude = tuple(exclude)
    for given in paths:
        path = given.resolve()  # once: everything walked below it is then resolved too
        if path.is_dir():
            found: list[Path] = []
            for dirpath, dirnames, filenames in os.walk(path):
                base = Path(dirpath)
                dirnames[:] = sorted(
                    d
                    for d in dirnames
                    if d not in SKIPPED_DIRS
                    and not d.startswith(".")
                    and not d.endswith(".egg-info")
                    and not _is_virtualenv(base / d)
                    and not is_excluded(base / d, root, exclude)
                )
                found.extend(
                    base / f
                    for f in filenames
                    if f.endswith((".py", ".pyi")) and not is_excluded(base / f, root, exclude)
                )
            yield from sorted(found)
        elif not is_excluded(path, root, exclude):
            yield path


def project_python_files(root: Path, exclude: Iterable[str]) -> Iterator[Path]:
    """Every Python file of the project, for the model catalog."""
    yield from iter_python_files([root], root, exclude)
