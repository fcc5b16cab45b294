"""Configuration from ``[tool.lockorder-lint]``, validated strictly: a typo never silently disables a rule."""

from __future__ import annotations

import difflib
import fnmatch
import sys
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lockorder_lint.resources import preset_path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

SECTION = "lockorder-lint"
KNOWN_DIALECTS = ("postgresql", "mysql", "mariadb")
DEFAULT_SESSION_NAMES = (
    "session",
    "*_session",
    "sess",
    "conn",
    "connection",
    "self.session",
    "db.session",
)
# Functions, decorators and dependencies that hand out a session: ``with create_session() as s``,
# ``@provide_session def f(session=...)``, ``db: Session = Depends(get_db)``. Matched by last name.
DEFAULT_SESSION_PROVIDERS = (
    "provide_session",
    "create_session",
    "session_scope",
    "session_context",
    "get_session",
    "get_db",
    "get_db_session",
    "new_session",
)

# What a directory walk skips unless ``exclude`` replaces it: hidden directories (.git, .venv,
# .tox, caches), byte-code caches, JavaScript dependencies, installed packages and build metadata.
# Virtual environments are skipped by their pyvenv.cfg whatever they are called.
DEFAULT_EXCLUDE = (".*", "__pycache__", "node_modules", "site-packages", "*.egg-info")


class ConfigError(Exception):
    """A configuration problem; the message names the file and the key."""


@dataclass(frozen=True)
class DeclaredTable:
    """A table declared by hand because its model is defined outside the project."""

    primary_key: tuple[str, ...]
    indexes: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class Config:
    """Everything that changes what the rules report. Hashable, so it can key the cache."""

    hot_tables: tuple[str, ...] | None = None
    hot_tables_from_preset: bool = False
    lock_helpers: tuple[str, ...] = ()
    # The project's intended global order of row locks, first table first (LCK005 reports any
    # transaction that takes them against it).
    lock_order: tuple[str, ...] = ()
    select: tuple[str, ...] = ("LCK",)
    ignore: tuple[str, ...] = ()
    exclude: tuple[str, ...] | None = None  # None: DEFAULT_EXCLUDE
    extend_exclude: tuple[str, ...] = ()
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = ()
    dialects: tuple[str, ...] = ("postgresql",)
    dialects_set: bool = False  # False: the project's code says which databases it runs on
    include_migrations: bool = False  # check Alembic revisions too (they run alone, by default not)
    all_tables: bool = False  # every table is hot, whatever the code shows
    python: str | None = None  # the interpreter whose installed packages hold bases the models use
    session_names: tuple[str, ...] = DEFAULT_SESSION_NAMES
    session_providers: tuple[str, ...] = DEFAULT_SESSION_PROVIDERS
    tables: tuple[tuple[str, DeclaredTable], ...] = ()
    preset: str | None = None
    source: str = field(default="", compare=False)

    def is_hot(self, table: str) -> bool:
        """Hot by configuration: listed in ``hot-tables``, or every table (``all-tables``, or no
        inference at hand). A project's own evidence is consulted by ``RuleContext.hot``."""
        return self.all_tables or self.hot_tables is None or table in self.hot_tables

    @property
    def infers_hot_tables(self) -> bool:
        return self.hot_tables is None and not self.all_tables

    def code_enabled(self, code: str) -> bool:
        selected = max((len(p) for p in self.select if code.startswith(p)), default=-1)
        ignored = max((len(p) for p in self.ignore if code.startswith(p)), default=-1)
        return selected >= 0 and selected > ignored

    def ignored_in(self, names: Sequence[str], code: str) -> bool:
        """``per-file-ignores``: a pattern matching one of a file's ``names`` (its path relative to
        the project root, as shown, its base name) ignores codes starting with its prefixes."""
        return any(
            any(fnmatch.fnmatch(name, pattern) for name in names) and any(code.startswith(c) for c in codes)
            for pattern, codes in self.per_file_ignores
        )

    @property
    def walk_exclude(self) -> tuple[str, ...]:
        """What a directory walk of the checked paths skips: ``exclude`` (or the defaults) and
        ``extend-exclude``."""
        return (DEFAULT_EXCLUDE if self.exclude is None else self.exclude) + self.extend_exclude

    @property
    def named_exclude(self) -> tuple[str, ...]:
        """What is skipped even when named on the command line: the user's own patterns only."""
        return (self.exclude or ()) + self.extend_exclude

    @property
    def mysql(self) -> bool:
        """InnoDB semantics (MySQL or MariaDB): locks taken as rows are scanned, gap locks."""
        return "mysql" in self.dialects or "mariadb" in self.dialects

    @property
    def mariadb(self) -> bool:
        """MariaDB specifically: no ``FOR UPDATE OF`` (SQLAlchemy drops it), unlike MySQL 8."""
        return "mariadb" in self.dialects

    def declared_tables(self) -> dict[str, DeclaredTable]:
        return dict(self.tables)


def _str_list(value: Any, key: str, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: `{key}` must be a list of strings")
    return tuple(value)


def _declared_tables(value: Any, where: str) -> tuple[tuple[str, DeclaredTable], ...]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: `tables` must be a table of table names")
    result = []
    for name, spec in value.items():
        key = f"tables.{name}"
        if isinstance(spec, list):
            result.append((name, DeclaredTable(_str_list(spec, key, where))))
            continue
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: `{key}` must be a list of primary-key columns or a table")
        unknown = set(spec) - {"primary-key", "indexes"}
        if unknown:
            raise ConfigError(f"{where}: unknown key `{key}.{sorted(unknown)[0]}`")
        if "primary-key" not in spec:
            raise ConfigError(f"{where}: `{key}` needs `primary-key`")
        pk = _str_list(spec["primary-key"], f"{key}.primary-key", where)
        indexes_raw = spec.get("indexes", {})
        if not isinstance(indexes_raw, Mapping):
            raise ConfigError(f"{where}: `{key}.indexes` must map index names to column lists")
        indexes = tuple(
            (iname, _str_list(cols, f"{key}.indexes.{iname}", where)) for iname, cols in indexes_raw.items()
        )
        result.append((name, DeclaredTable(pk, indexes)))
    return tuple(result)


def _per_file_ignores(value: Any, where: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: `per-file-ignores` must map glob patterns to lists of codes")
    return tuple(
        (pattern, _codes(codes, f"per-file-ignores.{pattern}", where)) for pattern, codes in value.items()
    )


CODE_PREFIX = "LCK"


def rule_codes() -> tuple[str, ...]:
    """The codes of the registered rules (read lazily: the rules import this module)."""
    from lockorder_lint.rules import RULES_BY_CODE

    return tuple(RULES_BY_CODE)


def known_codes() -> frozenset[str]:
    """Every rule code and every prefix of one that still starts with ``LCK``: what ``select``,
    ``ignore`` and ``per-file-ignores`` may name. Derived from the rule registry, so a new rule is
    known as soon as it is registered."""
    return frozenset(code[:end] for code in rule_codes() for end in range(len(CODE_PREFIX), len(code) + 1))


def code_problem(code: str) -> str | None:
    """Why ``code`` selects no rule, as "<code> is ..." would go on (None when it names a rule or
    a prefix of rule codes). Codes are case-sensitive, as in flake8."""
    known = known_codes()
    if code in known:
        return None
    if not code.upper().startswith(CODE_PREFIX):
        return f"not an {CODE_PREFIX} code or prefix"
    rules = sorted(rule_codes())
    close = [code.upper()] if code.upper() in known else difflib.get_close_matches(code.upper(), rules, 1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(rules)} and their prefixes"
    return f"not a known code or prefix{hint}"


def _codes(value: Any, key: str, where: str) -> tuple[str, ...]:
    codes = _str_list(value, key, where)
    for code in codes:
        problem = code_problem(code)
        if problem is not None:
            raise ConfigError(f"{where}: `{key}` holds {code!r}, which is {problem}")
    if key == "select" and not codes:
        raise ConfigError(f"{where}: `select` is empty, so no rule would run (leave it out to run all)")
    return codes


def apply_settings(config: Config, settings: Mapping[str, Any], where: str) -> Config:
    """Validate one ``[tool.lockorder-lint]`` table and lay it over ``config``."""
    changes: dict[str, Any] = {}
    for key, value in settings.items():
        if key == "hot-tables":
            changes["hot_tables"] = _str_list(value, key, where)
            changes["hot_tables_from_preset"] = False
        elif key == "lock-helpers":
            changes["lock_helpers"] = _str_list(value, key, where)
        elif key == "lock-order":
            order = _str_list(value, key, where)
            repeated = sorted({t for t in order if order.count(t) > 1})
            if repeated:
                raise ConfigError(f"{where}: `lock-order` names `{repeated[0]}` twice")
            changes["lock_order"] = order
        elif key in ("select", "ignore"):
            changes[key] = _codes(value, key, where)
        elif key == "exclude":
            changes["exclude"] = _str_list(value, key, where)
        elif key == "extend-exclude":
            changes["extend_exclude"] = _str_list(value, key, where)
        elif key == "per-file-ignores":
            changes["per_file_ignores"] = _per_file_ignores(value, where)
        elif key == "dialects":
            dialects = _str_list(value, key, where)
            for dialect in dialects:
                if dialect not in KNOWN_DIALECTS:
                    raise ConfigError(
                        f"{where}: `dialects` holds {dialect!r}; known: {', '.join(KNOWN_DIALECTS)}"
                    )
            changes["dialects"] = dialects
            changes["dialects_set"] = True
        elif key == "session-names":
            changes["session_names"] = _str_list(value, key, where)
        elif key == "python":
            if not isinstance(value, str):
                raise ConfigError(f"{where}: `python` must be a path to an interpreter")
            changes["python"] = value
        elif key in ("include-migrations", "all-tables"):
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: `{key}` must be true or false")
            changes[key.replace("-", "_")] = value
        elif key == "session-providers":
            changes["session_providers"] = _str_list(value, key, where)
        elif key == "tables":
            changes["tables"] = _declared_tables(value, where)
        elif key == "preset":
            continue  # applied first, by load_config
        else:
            raise ConfigError(f"{where}: unknown key `{key}` in [tool.{SECTION}]")
    return replace(config, **changes)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data: dict[str, Any] = tomllib.load(handle)
            return data
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc


def _apply_preset(config: Config, name: Any, where: str) -> Config:
    if not isinstance(name, str):
        raise ConfigError(f"{where}: `preset` must be a string")
    path = preset_path(name)
    if path is None:
        raise ConfigError(f"{where}: unknown preset {name!r}")
    data = _read_toml(path)
    config = apply_settings(config, data.get("tool", {}).get(SECTION, data), str(path))
    return replace(config, preset=name, hot_tables_from_preset=config.hot_tables is not None)


def load_config(path: Path | None, explicit: bool = False) -> Config:
    """Read the settings from ``path`` (a pyproject.toml or a bare lockorder-lint TOML file)."""
    if path is None or (not explicit and not path.is_file()):
        return Config()
    if explicit and not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    data = _read_toml(path)
    if path.name == "pyproject.toml" or "tool" in data:
        section = data.get("tool", {}).get(SECTION)
        if section is None:
            return Config(source=str(path))
    else:
        section = data
    if not isinstance(section, Mapping):
        raise ConfigError(f"{path}: [tool.{SECTION}] must be a table")
    config = Config()
    if "preset" in section:
        config = _apply_preset(config, section["preset"], str(path))
    config = apply_settings(config, section, str(path))
    return replace(config, source=str(path))


def hot_table_warnings(config: Config, tables: Collection[str]) -> list[str]:
    """One warning per ``hot-tables`` entry that names no table in the catalog, with the closest
    table's name: a typo there silently turns the rules off for the table meant.

    Warnings, not errors: the catalog holds what the code declares, and a hot table may be
    missing from it for good reasons (a checked subset of a project, a configuration shared by
    branches). A preset's list is not checked: it is written for several versions of a project."""
    if config.hot_tables is None or config.hot_tables_from_preset:
        return []
    where = config.source or "configuration"
    warnings = []
    for name in config.hot_tables:
        if name in tables:
            continue
        close = difflib.get_close_matches(name, sorted(tables), 1)
        hint = f"; did you mean {close[0]!r}?" if close else " (the catalog is empty)" if not tables else ""
        warnings.append(f"{where}: `hot-tables` names {name!r}, which is not a table in the catalog{hint}")
    return warnings
