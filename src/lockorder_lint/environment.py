"""Installed packages a project builds on, found as source files without importing anything.

A project's models often inherit keys, table names and columns from a library's bases and
mixins (neutron-lib's ``BASEV2``, ``HasId``), or a plugin uses an application's models
(a provider package using airflow-core's ``TaskInstance``). Their source is read from the
Python environment the project runs in: the interpreter named by ``python`` (configuration or
``--python``), else the active virtual environment (``VIRTUAL_ENV``), else one in the project
(``.venv``, ``venv``), else the interpreter running the checker. Only ``site-packages``
directories are searched; nothing is executed.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from collections.abc import Iterable
from pathlib import Path


def site_packages(python: str | None, root: Path) -> list[Path]:
    """The ``site-packages`` directories of the environment the project runs in."""
    for prefix in _prefixes(python, root):
        found = sorted(prefix.glob("lib/python3*/site-packages")) + sorted(prefix.glob("Lib/site-packages"))
        if found:
            return found
    if python:
        return []  # an interpreter was named and has no site-packages of its own: say nothing else
    purelib = sysconfig.get_paths().get("purelib")
    return [
        Path(p) for p in dict.fromkeys([purelib, *(p for p in sys.path if p.endswith("site-packages"))]) if p
    ]


def _prefixes(python: str | None, root: Path) -> Iterable[Path]:
    if python:
        interpreter = Path(python).expanduser()
        if not interpreter.is_absolute():
            interpreter = (root / interpreter).absolute()
        # ``<env>/bin/python``: the environment is two levels up (a symlink is not followed, so a
        # virtual environment's python is not mistaken for the base interpreter it links to).
        yield interpreter.parent.parent
        return
    active = os.environ.get("VIRTUAL_ENV")
    if active:
        yield Path(active)
    for name in (".venv", "venv", "env"):
        candidate = root / name
        if (candidate / "pyvenv.cfg").is_file():
            yield candidate


def module_file(module: str, search: Iterable[Path]) -> Path | None:
    """The source file of ``module`` (``pkg/mod.py`` or ``pkg/mod/__init__.py``) on the search path."""
    parts = module.split(".")
    for base in search:
        candidate = base.joinpath(*parts)
        for path in (candidate.with_suffix(".py"), candidate / "__init__.py"):
            if path.is_file():
                return path
    return None


def module_candidates(qualified: str) -> list[str]:
    """The modules a qualified name may live in, longest first (``a.b.C`` -> ``a.b``, ``a``)."""
    parts = qualified.split(".")
    return [".".join(parts[:cut]) for cut in range(len(parts) - 1, 0, -1)]
