"""The on-disk cache under ``.lockorder_cache/``: per-file model declarations keyed by file
stat, and per-file results keyed by content, tool, configuration and catalog. A warm re-run of
an unchanged tree parses nothing."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any

from lockorder_lint import __version__
from lockorder_lint.config import Config

CACHE_DIR_NAME = ".lockorder_cache"
_FORMAT = 1
_MAX_RESULTS = 200_000


def _code_fingerprint() -> str:
    """The tool version, the parsers whose reading the results hold (libcst, sqlglot: a new
    sqlglot may read SQL text differently), and the stat of its own modules, so a changed
    checkout or an upgraded parser never reuses results."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256(f"{__version__}:{_FORMAT}:{_parser_versions()}".encode())
    for path in sorted(package.rglob("*.py")):
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_mtime_ns}:{stat.st_size}".encode())
    return digest.hexdigest()[:16]


def _parser_versions() -> str:
    """Each parser's package file, by its stat (an upgrade rewrites it), found without importing
    it: importing the parsers, or reading their installed metadata, would cost a warm run more
    than all its other work."""
    from importlib.util import find_spec

    found = []
    for name in ("libcst", "sqlglot"):
        spec = find_spec(name)
        origin = spec.origin if spec is not None else None
        try:
            stat = os.stat(origin) if origin else None
        except OSError:
            stat = None
        found.append(f"{name}={origin}:{stat.st_mtime_ns}:{stat.st_size}" if stat else f"{name}=absent")
    return ",".join(found)


def config_fingerprint(config: Config) -> str:
    values = tuple((f.name, getattr(config, f.name)) for f in fields(config) if f.name != "source")
    return hashlib.sha256(repr(values).encode()).hexdigest()[:16]


def content_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Cache:
    """Two pickled maps in one directory; every write is atomic, and any unreadable cache is
    simply treated as empty (it is a cache, never a source of truth)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.prefix = _code_fingerprint()
        self._models: dict[str, Any] | None = None
        self._results: dict[str, Any] | None = None
        self._dirty: set[str] = set()

    def _path(self, name: str) -> Path:
        return self.directory / f"{name}-{self.prefix}.pickle"

    def _load(self, name: str) -> dict[str, Any]:
        try:
            with self._path(name).open("rb") as handle:
                data = pickle.load(handle)
            return data if isinstance(data, dict) else {}
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError):
            return {}

    @property
    def models(self) -> dict[str, Any]:
        if self._models is None:
            self._models = self._load("models")
        return self._models

    @property
    def results(self) -> dict[str, Any]:
        if self._results is None:
            self._results = self._load("results")
        return self._results

    def get_models(self, path: Path, display: str) -> Any | None:
        key = str(path)  # absolute and resolved: it comes from the project walk
        entry = self.models.get(key)
        if entry is None:
            return None
        try:
            stat = path.stat()
        except OSError:
            return None
        if entry[0] == (stat.st_mtime_ns, stat.st_size, display):
            return entry[1]
        return None

    def put_models(self, path: Path, display: str, models: Any) -> None:
        try:
            stat = path.stat()
        except OSError:
            return
        self.models[str(path)] = ((stat.st_mtime_ns, stat.st_size, display), models)
        self._dirty.add("models")

    def get_result(self, key: str) -> Any | None:
        return self.results.get(key)

    def put_result(self, key: str, result: Any) -> None:
        self.results[key] = result
        self._dirty.add("results")

    def save(self) -> None:
        """Write what changed; a cache that cannot be written is skipped silently."""
        if not self._dirty:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            ignore = self.directory / ".gitignore"
            if not ignore.exists():
                ignore.write_text("# Created by lockorder-lint\n*\n", encoding="utf-8")
            for old in self.directory.glob("*.pickle"):
                if not old.name.endswith(f"-{self.prefix}.pickle"):
                    old.unlink(missing_ok=True)
        except OSError:
            return
        for name in sorted(self._dirty):
            data = self.models if name == "models" else self.results
            if len(data) > _MAX_RESULTS:
                for key in list(data)[: len(data) - _MAX_RESULTS]:
                    del data[key]
            self._write_atomically(self._path(name), data)
        self._dirty.clear()

    @staticmethod
    def _write_atomically(path: Path, data: dict[str, Any]) -> None:
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                pickle.dump(data, handle, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError, UnboundLocalError):
                os.unlink(tmp)
