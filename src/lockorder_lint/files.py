"""Which files to check and which project they belong to.

The walk never trusts the tree: a directory it cannot enter, a symbolic link that loops, a FIFO
named like a source file, the same file reached twice, none of them may crash or hang a run, and
each one is reported by name rather than silently left out."""

from __future__ import annotations

import errno
import fnmatch
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT_MARKERS = ("pyproject.toml", "setup.cfg", "setup.py", ".git")
PYTHON_SUFFIXES = (".py", ".pyi")
# What a read may open without blocking (a FIFO opened for reading waits for a writer otherwise).
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


class PathError(Exception):
    """A run cannot start from these paths (no usable project root, a missing directory); exit 2."""


@dataclass(frozen=True)
class WalkProblem:
    """A path the walk could not use. ``error``: something that should have been checked was not
    (an unreadable file or directory, a path given that does not exist); otherwise a note (a FIFO
    or other non-regular file named like a source file, skipped because it is not source)."""

    path: Path
    reason: str
    error: bool = True


@dataclass
class Discovery:
    """The files a walk found (each regular file once, in a stable order), and what it could not use."""

    files: list[Path] = field(default_factory=list)
    problems: list[WalkProblem] = field(default_factory=list)


def is_filesystem_root(path: Path) -> bool:
    return path.parent == path


def find_project_root(paths: Iterable[Path]) -> Path:
    """The nearest parent of the paths' common parent that holds a project marker, else that parent.

    The filesystem root is never a project root (its walk would read the whole machine, ``/proc``
    included): markers there are ignored, and paths whose only common parent is ``/`` are an error."""
    resolved = [Path(os.path.realpath(p)) for p in paths] or [Path(os.path.realpath(os.getcwd()))]
    common = Path(os.path.commonpath([str(p) for p in resolved]))
    if os.path.isfile(common) or (not os.path.exists(common) and common.suffix):
        common = common.parent
    for candidate in (common, *common.parents):
        if is_filesystem_root(candidate):
            break
        if any(os.path.lexists(candidate / marker) for marker in ROOT_MARKERS):
            return candidate
    if is_filesystem_root(common):
        raise PathError(
            "the paths share no directory below the filesystem root and no project marker "
            f"({', '.join(ROOT_MARKERS)}); name the project with --project-root DIR"
        )
    return common


def find_repository_root(start: Path) -> Path:
    """The nearest directory at or above ``start`` holding ``.git`` (a directory, or a file in a
    worktree or submodule), else ``start``: what code-scanning and annotation paths are relative to."""
    start = Path(os.path.realpath(start))
    for candidate in (start, *start.parents):
        if os.path.lexists(candidate / ".git"):
            return candidate
    return start


def relative_to_root(path: Path, root: Path) -> str | None:
    """``path`` relative to ``root`` as a posix string, or None outside it. Paths from the walk
    are already absolute and resolved, so a string comparison does; others are resolved first."""
    text, base = str(path), str(root)
    if not path.is_absolute():
        text = os.path.realpath(path)
    if text.startswith(base + os.sep):
        return text[len(base) + 1 :].replace(os.sep, "/")
    if text == base:
        return "."
    resolved = os.path.realpath(path)
    if resolved.startswith(base + os.sep):
        return resolved[len(base) + 1 :].replace(os.sep, "/")
    return None


def exclude_matcher(patterns: Iterable[str]) -> Callable[[str, str], bool]:
    """``matches(relative_path, name)``. As in ruff: a glob without ``/`` matches an entry's name
    anywhere in the tree (``.*``, ``migrations``, ``*_pb2.py``); one with ``/`` matches the path
    relative to the project root (``app/generated``, ``tests/*``). A trailing ``/`` is ignored."""
    cleaned = [p.rstrip("/") for p in patterns if p.rstrip("/")]

    def combined(globs: list[str]) -> re.Pattern[str] | None:
        return re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs)) if globs else None

    by_name = combined([p for p in cleaned if "/" not in p])
    by_path = combined([p.removeprefix("./") for p in cleaned if "/" in p])

    def matches(relative: str, name: str) -> bool:
        return bool((by_name and by_name.match(name)) or (by_path and by_path.match(relative)))

    return matches


def is_excluded(path: Path, root: Path, patterns: Iterable[str]) -> bool:
    """Whether ``path``, or one of its directories below the root, matches a pattern."""
    matches = exclude_matcher(patterns)
    rel = relative_to_root(path, root)
    if rel is None:
        return matches(path.as_posix(), path.name)
    if rel == ".":
        return False
    parts = rel.split("/")
    return any(matches("/".join(parts[: i + 1]), parts[i]) for i in range(len(parts)))


def _is_virtualenv(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, "pyvenv.cfg"))  # never raises


def _strerror(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return name
    return "not a file"


def _given_problem(given: Path, exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return "broken symbolic link" if os.path.islink(given) else "no such file or directory"
    return f"cannot read: {_strerror(exc)}"


def discover(
    paths: Iterable[Path], root: Path, exclude: Iterable[str], named_exclude: Iterable[str] = ()
) -> Discovery:
    """Files named on the command line, and the ``.py``/``.pyi`` files under named directories.

    ``exclude`` prunes the walk (matched against paths relative to ``root`` and against names);
    ``named_exclude`` also drops paths named on the command line (the user's own patterns: the
    built-in defaults never hide a path the user names). Virtual environments (a ``pyvenv.cfg``
    inside) are never walked into; symbolic links to directories are not followed, as ``os.walk``
    does not. A file reached twice (a path given twice, a directory and a file in it, a link to a
    file also walked) is listed once."""
    found = Discovery()
    seen: set[tuple[int, int]] = set()
    walk_matches = exclude_matcher(exclude)
    named = tuple(named_exclude)
    for given in paths:
        try:
            info = os.stat(given)
        except OSError as exc:
            found.problems.append(WalkProblem(given, _given_problem(given, exc)))
            continue
        path = Path(os.path.realpath(given))
        if named and is_excluded(path, root, named):
            continue
        if stat.S_ISDIR(info.st_mode):
            found.files.extend(sorted(_walk(path, root, walk_matches, seen, found.problems)))
        elif not stat.S_ISREG(info.st_mode):
            found.problems.append(WalkProblem(given, f"not a regular file ({_kind(info.st_mode)})"))
        elif (info.st_dev, info.st_ino) not in seen:
            seen.add((info.st_dev, info.st_ino))
            found.files.append(path)
    return found


def _walk(
    top: Path,
    root: Path,
    matches: Callable[[str, str], bool],
    seen: set[tuple[int, int]],
    problems: list[WalkProblem],
) -> list[Path]:
    files: list[Path] = []
    base = str(root) + os.sep
    pending = [str(top)]
    while pending:
        directory = pending.pop()
        try:
            device = os.stat(directory).st_dev
            with os.scandir(directory) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as exc:
            problems.append(WalkProblem(Path(directory), f"cannot open directory: {_strerror(exc)}"))
            continue
        subdirectories = []
        for entry in entries:
            name = entry.name
            relative = entry.path[len(base) :] if entry.path.startswith(base) else entry.path
            if os.sep != "/":
                relative = relative.replace(os.sep, "/")
            try:
                is_directory = entry.is_dir()
            except OSError:
                is_directory = False
            if is_directory:
                if not (entry.is_symlink() or matches(relative, name) or _is_virtualenv(entry.path)):
                    subdirectories.append(entry.path)
                continue
            if not name.endswith(PYTHON_SUFFIXES) or matches(relative, name):
                continue
            try:
                if entry.is_file(follow_symlinks=False):
                    key = (device, entry.inode())
                else:
                    info = entry.stat()
                    if not stat.S_ISREG(info.st_mode):
                        reason = f"not a regular file ({_kind(info.st_mode)}); skipped"
                        problems.append(WalkProblem(Path(entry.path), reason, error=False))
                        continue
                    key = (info.st_dev, info.st_ino)
            except OSError as exc:
                problems.append(WalkProblem(Path(entry.path), f"cannot read: {_strerror(exc)}"))
                continue
            if key not in seen:
                seen.add(key)
                files.append(Path(entry.path))
        pending.extend(reversed(subdirectories))
    return files


def iter_python_files(paths: Iterable[Path], root: Path, exclude: Iterable[str]) -> Iterator[Path]:
    """The files of ``discover``, without its problems."""
    yield from discover(paths, root, exclude, exclude).files


def read_regular_file(path: Path) -> bytes:
    """The bytes of a regular file. Anything else (a FIFO, a device) raises ``OSError`` instead of
    blocking the run: the file is opened non-blocking and checked before it is read."""
    descriptor = os.open(path, _READ_FLAGS)
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, f"not a regular file ({_kind(info.st_mode)})", str(path))
        chunks = []
        while chunk := os.read(descriptor, max(info.st_size, 1 << 16)):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(descriptor)
