"""Baselines let a large codebase adopt the checker: today's findings are recorded and only new
ones are reported. Entries are keyed on content (path, code, enclosing function, normalised
statement text), never on line numbers, so moving code around does not bring findings back."""

from __future__ import annotations

import ast
import json
import os
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lockorder_lint.config import ConfigError

FORMAT_VERSION = 1


@dataclass(frozen=True, order=True)
class BaselineKey:
    """What identifies a finding across edits that do not touch the flagged statement."""

    path: str
    code: str
    function: str
    statement: str

    def describe(self) -> str:
        where = f"{self.path}: {self.function}" if self.function else self.path
        return f"{where}: {self.code} {self.statement}"


def _normalise(statement: str) -> str:
    """The statement as canonical code (what findings carry): a baseline written before keys were
    canonical, or edited by hand, still matches after a formatter run."""
    try:
        code = ast.unparse(ast.parse(statement.strip()))
    except (SyntaxError, ValueError, RecursionError):
        code = statement
    return " ".join(code.split())


def _project_path(path: str, root: Path) -> str:
    """Paths relative to the project root, so a baseline works from any working directory."""
    try:
        return Path(os.path.realpath(path)).relative_to(os.path.realpath(root)).as_posix()
    except ValueError:
        return Path(path).as_posix()


def key_for(path: str, code: str, function: str | None, statement: str, root: Path) -> BaselineKey:
    return BaselineKey(_project_path(path, root), code, function or "", _normalise(statement))


class FindingLike(Protocol):
    """What a baseline reads from a finding (a ``Finding`` fits)."""

    @property
    def path(self) -> str: ...
    @property
    def code(self) -> str: ...
    @property
    def function(self) -> str | None: ...
    @property
    def statement(self) -> str: ...


def project_paths(paths: Iterable[str], root: Path) -> set[str]:
    return {_project_path(p, root) for p in paths}


def missing_files(baseline: Iterable[BaselineKey], root: Path, directories: Iterable[str]) -> set[str]:
    """The paths of baseline entries that lie under one of ``directories`` (project-relative;
    ``.`` is the whole project) and whose file no longer exists: a deleted or moved file's entries
    can only be stale, though no run will ever check that path again."""
    scopes = tuple(directories)
    missing = set()
    for key in baseline:
        inside = any(d == "." or key.path == d or key.path.startswith(d + "/") for d in scopes)
        if inside and not (root / key.path).is_file():
            missing.add(key.path)
    return missing


def keys_of(findings: Iterable[FindingLike], root: Path) -> list[BaselineKey]:
    return [key_for(f.path, f.code, f.function, f.statement, root) for f in findings]


def write_baseline(path: Path, findings: Iterable[FindingLike], root: Path) -> int:
    """Write the baseline atomically; returns how many entries it holds."""
    counts = Counter(keys_of(findings, root))
    entries = [
        {"path": k.path, "code": k.code, "function": k.function, "statement": k.statement, "count": n}
        for k, n in sorted(counts.items())
    ]
    data = {"lockorder-lint-baseline": FORMAT_VERSION, "entries": entries}
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)
    return sum(counts.values())


def read_baseline(path: Path) -> Counter[BaselineKey]:
    """The recorded findings as a multiset; a malformed file is a configuration error."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read baseline: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: baseline is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("lockorder-lint-baseline") != FORMAT_VERSION:
        raise ConfigError(f"{path}: not a lockorder-lint baseline (version {FORMAT_VERSION})")
    counts: Counter[BaselineKey] = Counter()
    for entry in data.get("entries", []):
        try:
            key = BaselineKey(
                str(entry["path"]), str(entry["code"]), str(entry["function"]), str(entry["statement"])
            )
            counts[key] += int(entry.get("count", 1))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: malformed baseline entry {entry!r}") from exc
    return counts


@dataclass
class BaselineOutcome:
    """Findings the baseline does not cover, and baseline entries that matched nothing."""

    new: list[int]
    stale: list[BaselineKey]


def compare(
    keys: Sequence[BaselineKey], baseline: Counter[BaselineKey], checked: Collection[str] | None = None
) -> BaselineOutcome:
    """Multiset difference: two identical findings need two baseline entries to be hidden.

    ``new`` holds the indexes into ``keys`` of findings still to report. Only entries for files in
    ``checked`` (project-relative paths; ``None``: all) can be stale, so that checking a few files
    (a pre-commit run) does not call the rest of the baseline stale."""
    remaining = Counter(baseline)
    new: list[int] = []
    for index, key in enumerate(keys):
        if remaining[key] > 0:
            remaining[key] -= 1
        else:
            new.append(index)
    stale = sorted(
        key
        for key, count in remaining.items()
        for _ in range(count)
        if checked is None or key.path in checked
    )
    return BaselineOutcome(new, stale)
