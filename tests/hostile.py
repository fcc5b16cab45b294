"""Directories the user cannot enter, for tests. Permissions do not stop root, so when the tests run
as root the refusal is simulated: ``os`` answers EACCES the way the kernel does for a directory
without search permission (the directory itself can be stat-ed, nothing in it can be listed, stat-ed
or opened). As any other user the directory really is made unreadable."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

LOCKED_VARIABLE = "LOCKORDER_TEST_LOCKED_DIRS"
RUNNING_AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _denying(locked: list[str]) -> dict[str, Callable[..., Any]]:
    """Replacements for ``os`` functions that refuse paths in (or, for listing, at) ``locked``."""
    originals = {name: getattr(os, name) for name in ("scandir", "listdir", "stat", "lstat", "open")}

    def refused(path: Any, listing: bool) -> bool:
        if isinstance(path, int):
            return False
        text = os.path.abspath(os.fsdecode(os.fspath(path)))
        return any(text.startswith(d + os.sep) or (listing and text == d) for d in locked)

    def deny(path: Any) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(os.fspath(path)))

    def listing(name: str) -> Callable[..., Any]:
        def replacement(path: Any = ".", *args: Any, **kwargs: Any) -> Any:
            if refused(path, listing=True):
                deny(path)
            return originals[name](path, *args, **kwargs)

        return replacement

    def inside(name: str) -> Callable[..., Any]:
        def replacement(path: Any, *args: Any, **kwargs: Any) -> Any:
            if refused(path, listing=False):
                deny(path)
            return originals[name](path, *args, **kwargs)

        return replacement

    return {
        "scandir": listing("scandir"),
        "listdir": listing("listdir"),
        "stat": inside("stat"),
        "lstat": inside("lstat"),
        "open": inside("open"),
    }


def lock_from_environment() -> None:
    """For a test driver run as a subprocess: simulate the directories the test named (as root)."""
    locked = [d for d in os.environ.get(LOCKED_VARIABLE, "").split(os.pathsep) if d]
    if locked and RUNNING_AS_ROOT:
        for name, replacement in _denying([os.path.abspath(d) for d in locked]).items():
            setattr(os, name, replacement)


@contextmanager
def unreadable(directory: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Make ``directory`` impossible to enter for this process, and yield the environment a
    subprocess needs (with ``lock_from_environment``) to see it the same way."""
    env = {**os.environ, LOCKED_VARIABLE: str(directory), "PYTHONPATH": str(Path(__file__).parent.parent)}
    if RUNNING_AS_ROOT:
        for name, replacement in _denying([os.path.abspath(directory)]).items():
            monkeypatch.setattr(os, name, replacement)
        yield env
        return
    mode = directory.stat().st_mode
    directory.chmod(0)
    try:
        yield env
    finally:
        directory.chmod(mode)


# A test driver: ``python -c DRIVER flake8|cli ARGS...`` with the locked directories simulated.
DRIVER = """
import sys
from tests.hostile import lock_from_environment
lock_from_environment()
tool = sys.argv.pop(1)
if tool == "flake8":
    from flake8.main.cli import main
else:
    from lockorder_lint.cli import main
sys.exit(main())
"""
PYTHON = sys.executable
