"""Phase one of a run: read every file of the project once into :class:`FileFacts` (its model
declarations, its symbols, whether it is a migration, and why it could not be read), cached per
file by its stat, computed in worker processes when many files are new; then merge them into
the catalog and the program index that every file check consults.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from lockorder_lint.catalog import Catalog
from lockorder_lint.collector import collector_paused
from lockorder_lint.config import Config
from lockorder_lint.declarations import REVISION, FileModels, may_declare_models, migration_kind, models_of
from lockorder_lint.findings import FileError
from lockorder_lint.names import called_name, file_resolver, module_name
from lockorder_lint.parsing import SourceError, decode_check, parse_source
from lockorder_lint.sessions import provider_names
from lockorder_lint.symbols import SESSION_HINT, SQL_HINT, class_lines, decorated_functions
from lockorder_lint.walk import forget as forget_walks

if TYPE_CHECKING:
    from lockorder_lint.cache import Cache
    from lockorder_lint.contention import Contention, FunctionEffects
    from lockorder_lint.engine import Project

_PARALLEL_FROM = 64  # uncached files before a phase is worth a process pool
# The project's code speaks of MySQL/MariaDB: dialect checks, its dialect package, its drivers.
MYSQL_MENTION = re.compile(
    rb"sqlalchemy\.dialects(?:\.mysql| import mysql)|import (?:pymysql|MySQLdb)\b|[\"']mysql\+[a-z]+://|"
    rb"[\"'](?:mysql|mariadb)[\"']"
)
# A session factory or session made without autoflush: its pending writes wait for flush() or commit.
NO_AUTOFLUSH = re.compile(rb"\bautoflush\s*=\s*False")
# A call: the name before an opening parenthesis (keywords and builtins included; harmless).
CALLED_NAME = re.compile(rb"\b([A-Za-z_]\w*)[ \t]*\(")
# A session bound at module level and shared by every function that imports it: its binding
# (``db = SQLAlchemy()``, ``Session = scoped_session(...)``) or its use (``db.session.query(``).
SHARED_SESSION_BINDING = re.compile(
    rb"(?m)^\w+\s*(?::[^=]+)?=\s*(?:[\w.]+\.)?(?:SQLAlchemy|scoped_session|async_scoped_session)\("
)
SHARED_SESSION_USE = re.compile(rb"\.session\.(?:query|execute|scalars?|commit|add|flush|get|merge)\(")
_OWNER = re.compile(rb"(?<![\w.])([A-Za-z_]\w*)$")


def shares_sessions(data: bytes) -> bool:
    """The file binds or uses a module-level session. Literal tests go first: a regex that
    tries an identifier at every offset of every file costs more than parsing some of them."""
    if (b"SQLAlchemy(" in data or b"scoped_session(" in data) and SHARED_SESSION_BINDING.search(data):
        return True
    for use in SHARED_SESSION_USE.finditer(data):
        owner = _OWNER.search(data, max(0, use.start() - 80), use.start())
        if owner is not None and owner.group(1) not in (b"self", b"cls"):
            return True
    return False


def mentions_mysql(data: bytes) -> bool:
    return (b"mysql" in data or b"MySQLdb" in data or b"mariadb" in data) and bool(MYSQL_MENTION.search(data))


@dataclass
class FileFacts:
    """What one file tells the rest of the run, whatever is checked: its module, its model
    declarations, its class statements (to find subclasses without parsing), whether it is an
    Alembic revision, its digest, and why it could not be read."""

    module: str = ""
    models: FileModels = field(default_factory=FileModels)
    builds_sql: bool = False  # mentions statement builders: its functions may be worth inlining
    uses_sessions: bool = False  # mentions sessions: its functions may be worth summarising
    mentions_mysql: bool = False  # dialect checks or drivers for MySQL/MariaDB
    # Functions that add FOR UPDATE to the statement they are handed (``with_row_locks``).
    lock_helpers: tuple[str, ...] = ()
    # Functions that return a statement they were handed with FOR UPDATE added, in any parameter.
    lock_wrappers: tuple[str, ...] = ()
    shares_sessions: bool = False  # binds a session at module level (``db = SQLAlchemy()``)
    classes: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    # Names this file calls (``name(`` or ``.name(``): where to look for a function's callers.
    call_names: frozenset[str] = frozenset()
    # Decorated functions: (name, the last names of its decorators). A function a session
    # provider decorates opens a transaction of its own when called without a session.
    decorated: tuple[tuple[str, tuple[str, ...]], ...] = ()
    no_autoflush: bool = False  # makes sessions with ``autoflush=False`` (Airflow's settings.Session)
    error: FileError | None = None
    migration: bool = False
    digest: str = ""


def file_facts(path: Path, display: str, root: Path) -> FileFacts:
    """Read one file. Never raises: a file that cannot be read says why. Only files that may
    declare models or define lock helpers are parsed here; the rest are parsed when checked or
    when a call needs them."""
    with collector_paused():
        return _file_facts(path, display, root)


def _file_facts(path: Path, display: str, root: Path) -> FileFacts:
    module = module_name(path, root)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return FileFacts(module, error=FileError(display, 0, f"cannot read: {exc.strerror or exc}"))
    digest = hashlib.sha256(data).hexdigest()
    kind = migration_kind(data, path, root)
    migration = kind == REVISION
    has_models = may_declare_models(data)
    locks = b"with_for_update" in data
    models = FileModels(migration=kind)
    helpers: tuple[str, ...] = ()
    wrappers: tuple[str, ...] = ()
    try:
        if has_models or locks:
            source = parse_source(data, display)
            if has_models:
                resolver = file_resolver(source.tree, module, path.name == "__init__.py")
                models = models_of(source.tree, module, resolver, display, kind)
            if locks:
                helpers, wrappers = lock_helpers_in(source.tree, module)
        else:
            decode_check(data)
    except SourceError as exc:
        return FileFacts(module, error=FileError(display, exc.line, exc.reason), digest=digest)
    except RecursionError:
        error = FileError(display, 0, "cannot read: nested too deeply to analyse")
        return FileFacts(module, error=error, digest=digest)
    except Exception as exc:  # a bug must name its file, and not stop the run
        error = FileError(display, 0, f"internal error reading models: {type(exc).__name__}: {exc}")
        return FileFacts(module, error=error, digest=digest)
    return FileFacts(
        module=module,
        models=models,
        builds_sql=SQL_HINT.search(data) is not None,
        uses_sessions=SESSION_HINT.search(data) is not None,
        shares_sessions=shares_sessions(data),
        mentions_mysql=mentions_mysql(data),
        lock_helpers=helpers,
        lock_wrappers=wrappers,
        classes=class_lines(data),
        decorated=decorated_functions(data) if not migration else (),
        no_autoflush=NO_AUTOFLUSH.search(data) is not None if b"autoflush" in data else False,
        call_names=frozenset(m.decode("ascii") for m in CALLED_NAME.findall(data))
        if not migration
        else frozenset(),
        migration=migration,
        digest=digest,
    )


def lock_helpers_in(tree: ast.Module, module: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Functions that return the statement they were handed first with ``with_for_update(...)``
    added (Airflow's ``with_row_locks``): treated like configured ``lock-helpers``, so that the
    lock and its options are read at each call. Second, the wider set also handed the statement
    in another parameter (mlflow's ``_lock_rebuild_entry_query(session, query)``): their calls
    are followed like any helper's, and they mark where a function locks rows."""
    functions: list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef, list[str]]] = []

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}.{node.name}")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                params = [
                    a.arg for a in (*node.args.posonlyargs, *node.args.args) if a.arg not in ("self", "cls")
                ]
                functions.append((f"{prefix}.{node.name}", node, params))

    visit(tree.body, module)
    returned = {name: _returned_locked(node) for name, node, _ in functions}
    helpers = [name for name, _, params in functions if returned[name] & set(params[:1])]
    wrappers = [name for name, _, params in functions if returned[name] & set(params)]
    # A function that hands its statement on to a helper (Airflow's ``lock_rows`` context
    # manager around ``with_row_locks``) locks it too.
    names = {name.rsplit(".", 1)[-1] for name in helpers}
    while names:
        more = [
            name
            for name, node, params in functions
            if name not in helpers and params and _hands_on(node, params[0], names)
        ]
        helpers.extend(more)
        wrappers.extend(name for name in more if name not in wrappers)
        names = {name.rsplit(".", 1)[-1] for name in more}
    return tuple(helpers), tuple(wrappers)


def _returned_locked(function: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """The names whose statement the function returns with ``with_for_update(...)`` added."""
    roots: set[str] = set()
    for node in ast.walk(function):
        if not isinstance(node, ast.Return) or not isinstance(node.value, ast.Call):
            continue
        func = node.value.func
        if isinstance(func, ast.Attribute) and func.attr == "with_for_update":
            root: ast.AST = func.value
            while isinstance(root, (ast.Call, ast.Attribute)):
                root = root.func if isinstance(root, ast.Call) else root.value
            if isinstance(root, ast.Name):
                roots.add(root.id)
    return roots


def _hands_on(function: ast.FunctionDef | ast.AsyncFunctionDef, param: str, helpers: set[str]) -> bool:
    """The function calls one of ``helpers`` with its parameter as the statement argument."""
    for node in ast.walk(function):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name = called_name(node)
        first = node.args[0]
        if name in helpers and isinstance(first, ast.Name) and first.id == param:
            return True
    return False


def _facts_item(item: tuple[Path, str, Path]) -> FileFacts:
    return file_facts(*item)


def read_facts(
    files: Sequence[tuple[Path, str]], root: Path, cache: Cache | None, jobs: int = 1
) -> list[FileFacts]:
    """Facts of every file, from the cache where the file is unchanged."""
    facts: list[FileFacts | None] = [None] * len(files)
    pending: list[int] = []
    for index, (path, display) in enumerate(files):
        cached = cache.get_models(path, display) if cache is not None else None
        if isinstance(cached, FileFacts):
            facts[index] = cached
        else:
            pending.append(index)
    if jobs > 1 and len(pending) >= _PARALLEL_FROM:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            items = [(files[i][0], files[i][1], root) for i in pending]
            for index, fresh in zip(pending, pool.map(_facts_item, items, chunksize=16), strict=True):
                facts[index] = fresh
    else:
        for index in pending:
            facts[index] = file_facts(files[index][0], files[index][1], root)
    if cache is not None:
        for index in pending:
            computed = facts[index]
            if computed is not None and computed.error is None:
                cache.put_models(files[index][0], files[index][1], computed)
    return [f if f is not None else FileFacts() for f in facts]


def project_fingerprint(facts: Iterable[FileFacts], config_digest: str) -> str:
    """What every file's result depends on besides the file itself and the files whose helpers
    it followed (those are checked by digest): the models and the configuration."""
    digest = hashlib.sha256(config_digest.encode())
    for fact in facts:
        # repr, not pickle: pickle's bytes depend on which equal strings happen to be one object.
        digest.update(repr(fact.models).encode())
    return digest.hexdigest()[:16]


def build_project(
    root: Path,
    config: Config,
    files: Sequence[tuple[Path, str]],
    cache: Cache | None = None,
    jobs: int = 1,
) -> tuple[Project, list[FileFacts]]:
    """The project (configuration, catalog, program index) from all of its files."""
    from lockorder_lint.cache import config_fingerprint
    from lockorder_lint.engine import Project
    from lockorder_lint.summaries import Program

    facts = read_facts(files, root, cache, jobs)
    external = external_models(facts, config, root, cache)
    catalog = Catalog.build((f.models for f in facts), config.declared_tables(), external)
    modules: dict[str, str] = {}
    subclass_files: dict[str, list[str]] = {}
    class_files: dict[str, list[str]] = {}
    openers = session_openers(facts, config)
    for (path, _display), fact in zip(files, facts, strict=True):
        # a module that calls a session-opening function starts transactions, whatever else it does
        if fact.builds_sql or fact.uses_sessions or fact.classes or not fact.call_names.isdisjoint(openers):
            modules.setdefault(fact.module, str(path))
        for name, bases in fact.classes:
            class_files.setdefault(name, []).append(str(path))
            for base in bases:
                holders = subclass_files.setdefault(base, [])
                if not holders or holders[-1] != str(path):
                    holders.append(str(path))
    sql_files = frozenset(str(path) for (path, _), fact in zip(files, facts, strict=True) if fact.builds_sql)
    session_files = frozenset(
        str(path) for (path, _), fact in zip(files, facts, strict=True) if fact.uses_sessions
    )
    config = effective_config(config, files, facts, root)
    program = Program(modules, subclass_files, catalog, sql_files, session_files, config, class_files)
    program.shared_sessions = any(fact.shares_sessions for fact in facts)
    program.call_index, program.displays = call_index(files, facts, modules, root)
    program.openers = openers
    made = zip(files, facts, strict=True)
    program.autoflush = not any(
        fact.no_autoflush for (path, shown), fact in made if not in_tests(path, shown, root)
    )
    project = Project(root=root, config=config, catalog=catalog, program=program)
    project.digests = {str(path): fact.digest for (path, _), fact in zip(files, facts, strict=True)}
    program.digests = project.digests
    project.migrations = {str(path) for (path, _), fact in zip(files, facts, strict=True) if fact.migration}
    if cache is not None:
        # which calls start a transaction of their own depends on every file's decorators
        called = ",".join(sorted(openers))
        flushing = f"autoflush={program.autoflush}"  # when pending writes are sent
        project.fingerprint = project_fingerprint(facts, f"{config_fingerprint(config)}|{called}|{flushing}")
    found = contention_evidence(project, files, facts, cache, jobs)
    project.contention = found
    if config.infers_hot_tables:
        project.hot = found.hot
    if cache is not None:  # results depend on the evidence as much as on the catalog
        project.fingerprint = hashlib.sha256(f"{project.fingerprint}|{found.digest()}".encode()).hexdigest()[
            :16
        ]
    return project, facts  # LCK005's cycles come after: see runner.make_project


def session_openers(facts: Iterable[FileFacts], config: Config) -> frozenset[str]:
    """The names of the project's functions that a session provider decorates (Airflow's
    ``@provide_session``): a call of one that hands no session starts a transaction, even from a
    function that never speaks of sessions (``ti.run()`` from a command)."""
    providers = provider_names(config.session_providers)
    return frozenset(
        name
        for fact in facts
        if not fact.migration
        for name, decorators in fact.decorated
        if any(d in providers for d in decorators)
    )


def call_index(
    files: Sequence[tuple[Path, str]], facts: Sequence[FileFacts], modules: dict[str, str], root: Path
) -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """Which production files call each name, and how each file is displayed: where a
    function's callers are looked for (only files the program can resolve names in). A test
    module is told by its path in the project (run from ``~/tests``, every path shown has a
    ``tests`` part)."""
    known = set(modules.values())
    index: dict[str, list[str]] = {}
    displays: dict[str, str] = {}
    for (path, display), fact in zip(files, facts, strict=True):
        key = str(path)
        if key not in known or fact.migration or in_tests(path, display, root):
            continue
        displays[key] = display
        for name in fact.call_names:
            index.setdefault(name, []).append(key)
    return {name: tuple(paths) for name, paths in index.items()}, displays


# Packages whose classes are bases the catalog understands by name, never read from disk.
_KNOWN_BASES = ("sqlalchemy", "sqlmodel", "flask_sqlalchemy", "typing", "abc", "builtins", "enum", "pydantic")


def external_models(
    facts: Sequence[FileFacts], config: Config, root: Path, cache: Cache | None, depth: int = 3
) -> list[FileModels]:
    """Model declarations of installed packages that the project's models inherit from (bases and
    mixins: neutron-lib's ``BASEV2`` and ``HasId``), read as source from the environment, and
    theirs in turn, a few levels up."""
    from lockorder_lint.environment import module_candidates, module_file, site_packages

    known = {decl.qualname for fact in facts for decl in fact.models.classes}
    modules = {fact.module for fact in facts}
    pending = {base for fact in facts for decl in fact.models.classes for base in decl.bases} - known
    search: list[Path] | None = None
    loaded: list[FileModels] = []
    seen: set[str] = set()
    for _ in range(depth):
        wanted: set[str] = set()
        for name in sorted(pending):
            top = name.split(".", 1)[0]
            if top in _KNOWN_BASES or any(name.startswith(m + ".") for m in modules) or "." not in name:
                continue
            if search is None:
                search = site_packages(config.python, root)
            for module in module_candidates(name):
                path = module_file(module, search)
                if path is None:
                    continue
                if str(path) not in seen:
                    seen.add(str(path))
                    models = _installed_models(path, cache)
                    loaded.append(models)
                    new = {d.qualname for d in models.classes}
                    known |= new
                    wanted |= {b for d in models.classes for b in d.bases} - known
                break
        pending = wanted
        if not pending:
            break
    return loaded


def _installed_models(path: Path, cache: Cache | None) -> FileModels:
    display = str(path)
    cached = cache.get_models(path, display) if cache is not None else None
    if isinstance(cached, FileModels):
        return cached
    models = FileModels()
    try:
        data = path.read_bytes()
        if b"class " in data or may_declare_models(data):
            source = parse_source(data, display)
            module = module_name(path, path.parent)
            resolver = file_resolver(source.tree, module, path.name == "__init__.py")
            models = models_of(source.tree, module, resolver, display, "")
    except (OSError, SourceError, RecursionError):
        pass
    if cache is not None:
        cache.put_models(path, display, models)
    return models


def is_test_path(display: str) -> bool:
    """A test module: its transactions never run beside production code's."""
    parts = display.replace("\\", "/").split("/")
    name = parts[-1]
    return (
        any(part in ("tests", "test", "testing") for part in parts[:-1])
        or name.startswith("test_")
        or name.endswith("_test.py")
        or name == "conftest.py"
    )


def in_tests(path: Path, display: str, root: Path) -> bool:
    """A test module, told by its path in the project, not as shown: run from ``~``, a project in
    ``~/tests/app`` shows every path with a ``tests`` part."""
    from lockorder_lint.files import relative_to_root

    return is_test_path(relative_to_root(path, root) or display)


def effective_config(
    config: Config, files: Sequence[tuple[Path, str]], facts: Sequence[FileFacts], root: Path
) -> Config:
    """The configuration with what the code shows filled in where the user said nothing: the
    databases it runs on (MySQL/MariaDB when production code checks for them or ships their
    drivers) and the lock helpers it defines (functions that add FOR UPDATE to what they are
    handed)."""
    changes: dict[str, object] = {}
    production = [
        (d, f) for (p, d), f in zip(files, facts, strict=True) if not f.migration and not in_tests(p, d, root)
    ]
    if not config.dialects_set and any(f.mentions_mysql for _d, f in production):
        changes["dialects"] = tuple(dict.fromkeys((*config.dialects, "mysql")))
    inferred = [h for _d, f in production for h in f.lock_helpers]
    if inferred:
        changes["lock_helpers"] = tuple(dict.fromkeys((*config.lock_helpers, *inferred)))
    return replace(config, **changes) if changes else config  # type: ignore[arg-type]


def contention_evidence(
    project: Project,
    files: Sequence[tuple[Path, str]],
    facts: Sequence[FileFacts],
    cache: Cache | None,
    jobs: int = 1,
) -> Contention:
    """Where production code row-locks, retries writes, and composes range writes with inserts:
    the evidence that makes a table hot when ``hot-tables`` does not say (see
    :mod:`lockorder_lint.contention`). Each file's part is cached by its digest; the parts not
    cached are worked out in a process pool when there are enough of them."""
    from lockorder_lint.contention import gather

    wrappers = sorted({w.rsplit(".", 1)[-1] for fact in facts for w in fact.lock_wrappers})
    marker = hashlib.sha256(" ".join(wrappers).encode()).hexdigest()[:8]
    parts: list[list[FunctionEffects] | None] = []
    pending: list[tuple[int, str, tuple[Path, str]]] = []
    for (path, display), fact in zip(files, facts, strict=True):
        if fact.migration or fact.error is not None or in_tests(path, display, project.root):
            continue
        if not (fact.builds_sql or fact.uses_sessions):
            continue
        key = f"evidence:{project.fingerprint}:{marker}:{display}:{fact.digest}"
        cached = cache.get_result(key) if cache is not None else None
        if cached is None:
            pending.append((len(parts), key, (path, display)))
        parts.append(cached)
    items = [(path, display, wrappers) for _, _, (path, display) in pending]
    if jobs > 1 and len(pending) >= _PARALLEL_FROM:
        from lockorder_lint.workers import Workers

        workers = Workers(project, jobs)
        computed = list(workers.map(_effects_item, items, chunksize=4))
        project.workers = workers  # they stay up to check the files: what they parsed stays parsed
    else:
        computed = [_effects_item(project, item) for item in items]
    for (index, key, _item), fresh in zip(pending, computed, strict=True):
        parts[index] = fresh
        if cache is not None and fresh is not None:
            cache.put_result(key, fresh)
    return gather([summary for part in parts if part for summary in part])


def _effects_item(project: Project, item: tuple[Path, str, list[str]]) -> list[FunctionEffects] | None:
    """One file's effects, or None when it cannot be read (nothing is cached for it then)."""
    from lockorder_lint.contention import file_effects

    path, display, wrappers = item
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        return file_effects(data, path, display, project, wrappers)
    finally:
        forget_walks()


def worker_count(jobs: int | None) -> int:
    if jobs is not None:
        return max(1, jobs)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
