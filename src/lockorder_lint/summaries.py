"""Whole-program reach: calls into the project's own functions, followed across files.

A caller's call to a project function is evaluated by running the callee's body with its
parameters bound to the caller's argument expressions (context-sensitive inlining, to a bounded
depth). What comes back is what the callee returns (a statement a query builder made, a
statement the caller passed and the callee locked, a condition) and the statements it executed
that the caller built. Statements from other files are re-anchored at the call that reached
them, and remember the helpers they came through. The callee's file is parsed on first use and
kept for the rest of the run (per worker process).

The same index resolves attributes that hold models: ``self.model`` set in subclasses (each
candidate is judged), and interface objects such as Prefect's ``db.Deployment``.
"""

from __future__ import annotations

import ast
import bisect
import contextlib
import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from lockorder_lint.config import Config
from lockorder_lint.names import Resolver, file_resolver, function_lines
from lockorder_lint.parsing import LINE_BREAK_BYTES, Source, SourceError, parse_source
from lockorder_lint.statements import EQ, IN, OTHER, Predicate, Span, Statement
from lockorder_lint.symbols import (
    SESSION_HINT,
    SQL_HINT,
    FileSymbols,
    FunctionInfo,
    ProgramIndex,
    read_symbols,
)

if TYPE_CHECKING:
    from lockorder_lint.builders import Bound, Evaluator, ModelRef, Value
    from lockorder_lint.catalog import Catalog
    from lockorder_lint.sessions import Callee, SessionEffect

T = TypeVar("T")
CALLERS = "callers:"  # a dependency on who calls a name, beside file paths
SYMBOLS = "symbols:"  # a dependency on what a file declares (its symbols), not on its bodies
BODY = "body:"  # a dependency on one function of a file (``body:<path>::<qualname>``), not the rest
MAX_DEPTH = 3  # helpers calling helpers calling helpers
MAX_INLINES = 64  # per analysed function, so that a hub of helpers cannot blow up a run
_IDENTIFIER = re.compile(r"[A-Za-z_][\w.]*")


class _File:
    """A callee's file, parsed once: its text and tree, its names, its functions by qualname."""

    def __init__(self, source: Source, resolver: Resolver, path: str) -> None:
        self.source = source
        self.resolver = resolver
        self.path = path
        self.functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
        self._symbols: FileSymbols | None = None

        def visit(body: list[ast.stmt], prefix: str) -> None:
            for node in body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    if not any(_is_overload(d) for d in node.decorator_list):  # typing stubs
                        self.functions[f"{prefix}.{node.name}"] = node
                elif isinstance(node, ast.ClassDef):
                    visit(node.body, f"{prefix}.{node.name}")
                elif isinstance(node, (ast.If, ast.Try)):
                    visit(node.body, prefix)
                    visit(node.orelse, prefix)

        visit(source.tree.body, resolver.module)

    @property
    def symbols(self) -> FileSymbols:
        if self._symbols is None:
            data = self.source.text.encode("utf-8")
            breaks = [m.start() for m in LINE_BREAK_BYTES.finditer(data)]
            lines = sorted({bisect.bisect_right(breaks, m.start()) + 1 for m in SQL_HINT.finditer(data)})
            session_lines = sorted(
                {bisect.bisect_right(breaks, m.start()) + 1 for m in SESSION_HINT.finditer(data)}
            )
            self._symbols = read_symbols(
                self.source.tree, self.resolver.module, self.resolver, self.path, lines, session_lines
            )
        return self._symbols


class Program:
    """The project's functions and classes, indexed by qualified name, and the analyses that
    follow calls and attributes into them."""

    def __init__(
        self,
        modules: dict[str, str],
        subclass_files: dict[str, list[str]],
        catalog: Catalog,
        sql_files: frozenset[str] = frozenset(),
        session_files: frozenset[str] = frozenset(),
        config: Config | None = None,
        class_files: dict[str, list[str]] | None = None,
    ) -> None:
        self.modules = modules
        self.module_of = {path: module for module, path in modules.items()}
        self.subclass_files = subclass_files
        self.sql_files = sql_files
        self.session_files = session_files
        self.catalog = catalog
        self.config = config or Config()
        self.class_files = class_files or {}
        self.index = ProgramIndex(
            modules, subclass_files, self._symbols, sql_files, session_files, self.class_files
        )
        self._effects: dict[str, dict[str, SessionEffect] | None] = {}
        # Module-level sessions by the module that binds them, and the files read to know it.
        self._session_keys: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._files: dict[str, _File | None] = {}
        self._current: tuple[str, _File] | None = None
        # Whether any module binds a session at module level (Flask-SQLAlchemy's ``db``, a
        # ``scoped_session``): only then can a function without sessions of its own reach one.
        self.shared_sessions = False
        # Files whose functions the current check followed: its result depends on them.
        self.touched: set[str] = set()
        # Which files call a function or method of a given name (``name(``): where callers are.
        self.call_index: dict[str, tuple[str, ...]] = {}
        # Names of the functions a session provider decorates (see project.session_openers); None
        # until the project's files were read for them.
        self.openers: frozenset[str] | None = None
        # Whether the project's sessions autoflush (none is made with ``autoflush=False``).
        self.autoflush = True
        self.displays: dict[str, str] = {}  # path -> the path as findings show it
        # Names whose callers the current check looked up: its result depends on who calls them.
        self.touched_names: set[str] = set()
        # Files whose symbols (not bodies) the current check read to resolve names: its result
        # depends on what they declare, not on every line of them.
        self.touched_symbols: set[str] = set()
        self._memos: dict[str, dict[Any, Any]] = {}
        # Content digests of the project's files, to validate what earlier runs worked out.
        self.digests: dict[str, str] = {}
        # Whole-program answers (who calls a helper and inserts) kept across runs, each with
        # the digests of the files and caller lists it read: ``key -> (deps, value)``. ``kept``
        # are those of earlier runs; ``found`` those this process worked out, for the cache.
        self.kept: dict[str, tuple[dict[str, str], Any]] = {}
        self.found: dict[str, tuple[dict[str, str], Any]] = {}
        # LCK005's lock-order cycles, once computed for the run (see lock_graph.project_cycles).
        self.lock_cycles: list[Any] | None = None
        # The lock protocols found beside them (see protocols.find_protocols), read by LCK001/LCK002.
        self.lock_protocols: Any | None = None

    def with_config(self, config: Config) -> Program:
        """The same project under another configuration (its own caches, the same files)."""
        program = Program(
            self.modules, self.subclass_files, self.catalog, self.sql_files, self.session_files, config,
            self.class_files,
        )  # fmt: skip
        program.shared_sessions = self.shared_sessions
        program.call_index = self.call_index
        program.openers = self.openers
        program.autoflush = self.autoflush
        program.displays = self.displays
        program.digests = self.digests
        return program

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_files"] = {}  # parsed trees and symbols stay in the process that read them
        state["_current"] = None
        state["_effects"] = {}
        state["_memos"] = {}
        state["index"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.index = ProgramIndex(
            self.modules,
            self.subclass_files,
            self._symbols,
            self.sql_files,
            self.session_files,
            self.class_files,
        )

    def remember(self, path: str, source: Source, resolver: Resolver) -> None:
        """The file being checked, parsed already: calls into it need no second parse. It is
        held only while it is checked; keeping every checked tree would make the process's
        heap, and every garbage collection, grow with the size of the run."""
        self._current = (path, _File(source, resolver, path))

    def memo(self, name: str) -> dict[Any, Any]:
        """A per-process memo for one whole-program analysis (callers, inserted tables)."""
        return self._memos.setdefault(name, {})

    def callers_named(self, name: str) -> tuple[str, ...]:
        """The files with a call named ``name``; the current check now depends on that list."""
        self.touched_names.add(name)
        return self.call_index.get(name, ())

    def call_index_digest(self, name: str) -> str:
        digests = self.memo("call_index_digest")
        if name not in digests:
            digests[name] = hashlib.sha256("\n".join(self.call_index.get(name, ())).encode()).hexdigest()[:16]
        known: str = digests[name]
        return known

    def dependency_digest(self, key: str) -> str:
        """The current digest of something an answer depended on: a file, who calls a name, or
        what a file declares (``symbols:<path>``, recorded as ``<content>|<declarations>``)."""
        if key.startswith(CALLERS):
            return self.call_index_digest(key[len(CALLERS) :])
        if key.startswith(SYMBOLS):
            path = key[len(SYMBOLS) :]
            return f"{self.digests.get(path, '')}|{self.symbols_digest(path)}"
        if key.startswith(BODY):
            path, _, qualname = key[len(BODY) :].partition("::")
            return f"{self.digests.get(path, '')}|{self.body_digest(path, qualname)}"
        return self.digests.get(key, "")

    def still_valid(self, key: str, recorded: str) -> bool:
        """Whether a dependency is unchanged. For a file's declarations an unchanged content is
        enough, and a changed one is parsed only to compare what it declares."""
        if key.startswith(SYMBOLS):
            path = key[len(SYMBOLS) :]
            content, _, declared = recorded.partition("|")
            return self.digests.get(path, "") == content or self.symbols_digest(path) == declared
        if key.startswith(BODY):
            path, _, qualname = key[len(BODY) :].partition("::")
            content, _, body = recorded.partition("|")
            return self.digests.get(path, "") == content or self.body_digest(path, qualname) == body
        return self.dependency_digest(key) == recorded

    def symbols_digest(self, path: str) -> str:
        """What a file declares, as a digest that ignores line numbers and bodies: edits inside a
        function leave every answer that only resolved names through the file valid."""
        digests = self.memo("symbols_digest")
        if path not in digests:
            loaded = self._peek(path)
            symbols = loaded.symbols if loaded is not None else None
            text = (
                ""
                if symbols is None
                else repr(
                    ([replace(f, lineno=0) for f in symbols.functions], symbols.classes, symbols.imports)
                )
            )
            digests[path] = hashlib.sha256(text.encode()).hexdigest()[:16]
        known: str = digests[path]
        return known

    def body_digest(self, path: str, qualname: str) -> str:
        """One function as an answer that inlined it read it: its text and the lines it spans,
        and the code of its file outside functions (imports, constants, class attributes), but
        not comment lines there: an edit elsewhere in the file leaves the answer valid."""
        digests = self.memo("body_digest")
        key = (path, qualname)
        if key not in digests:
            loaded = self._peek(path)
            node = loaded.functions.get(qualname) if loaded is not None else None
            if loaded is None or node is None:
                text = ""
            else:
                first, last = function_lines(node)
                body = "\n".join(loaded.source.lines[first - 1 : last])
                text = f"{first}:{last}:{body}|{self._outline_digest(loaded)}"
            digests[key] = hashlib.sha256(text.encode()).hexdigest()[:16]
        known: str = digests[key]
        return known

    def _outline_digest(self, loaded: _File) -> str:
        outlines = self.memo("outline_digest")
        if loaded.path not in outlines:
            inside = [False] * (len(loaded.source.lines) + 2)
            for node in loaded.functions.values():
                first, last = function_lines(node)
                inside[first : last + 1] = [True] * (last + 1 - first)
            kept = (
                line
                for number, line in enumerate(loaded.source.lines, 1)
                if not inside[number] and line.strip() and not line.lstrip().startswith("#")
            )
            outlines[loaded.path] = hashlib.sha256("\n".join(kept).encode()).hexdigest()[:16]
        known: str = outlines[loaded.path]
        return known

    def dependencies(self, read: set[str], names: set[str], declared: set[str]) -> dict[str, str]:
        """The recorded digests of what a piece of work read."""
        deps = {key: self.dependency_digest(key) for key in sorted(read)}
        deps.update({CALLERS + name: self.call_index_digest(name) for name in sorted(names)})
        deps.update(
            {SYMBOLS + path: self.dependency_digest(SYMBOLS + path) for path in sorted(declared - read)}
        )
        return deps

    def recall(self, key: str) -> tuple[bool, Any]:
        """A whole-program answer worked out before (in this process or an earlier run) whose
        inputs are unchanged; the current check then depends on those inputs too."""
        entry = self.found.get(key) or self.kept.get(key)
        if entry is None or not all(self.still_valid(d, digest) for d, digest in entry[0].items()):
            return False, None
        for dep in entry[0]:
            if dep.startswith(CALLERS):
                self.touched_names.add(dep[len(CALLERS) :])
            elif dep.startswith(SYMBOLS):
                self.touched_symbols.add(dep[len(SYMBOLS) :])
            else:
                self.touched.add(dep)
        return True, entry[1]

    def answer(self, key: str, work_out: Callable[[], T]) -> T:
        """A whole-program answer: recalled while what it read is unchanged, else worked out
        (and kept). It does not guard against recursion: an answer that may ask for itself
        (``contention.inserted_tables``) keeps its own set of keys being worked out."""
        known, value = self.recall(key)
        if known:
            recalled: T = value
            return recalled
        with self.answering(key) as box:
            box.append(work_out())
        result: T = box[0]
        return result

    @contextlib.contextmanager
    def answering(self, key: str) -> Iterator[list[Any]]:
        """Work out a whole-program answer, recording what it reads; the caller appends the value
        to the yielded list. The answer is kept for later checks and runs."""
        outer = (self.touched, self.touched_names, self.touched_symbols)
        self.touched, self.touched_names, self.touched_symbols = set(), set(), set()
        box: list[Any] = []
        try:
            yield box
        finally:
            read, names, declared = self.touched, self.touched_names, self.touched_symbols
            self.touched, self.touched_names = outer[0] | read, outer[1] | names
            self.touched_symbols = outer[2] | declared
        deps = self.dependencies(read, names, declared)
        if box:
            self.found[key] = (deps, box[0])

    def display(self, path: str) -> str:
        return self.displays.get(path, path)

    def _symbols(self, path: str) -> FileSymbols | None:
        self.touched_symbols.add(path)  # resolving a name reads declarations, not bodies
        loaded = self._peek(path)
        return loaded.symbols if loaded is not None else None

    # -- files and functions ---------------------------------------------------------------------

    def file(self, path: str) -> _File | None:
        self.touched.add(path)
        return self._peek(path)

    def _peek(self, path: str) -> _File | None:
        """A file, parsed once per process, without making the current check depend on it."""
        if self._current is not None and self._current[0] == path:
            return self._current[1]
        if path not in self._files:
            self._files[path] = self._load(path)
        return self._files[path]

    def _load(self, path: str) -> _File | None:
        try:
            data = Path(path).read_bytes()
            source = parse_source(data, path)
        except (OSError, SourceError, RecursionError):
            return None
        module = self.module_of.get(path, Path(path).stem)
        return _File(source, file_resolver(source.tree, module, path.endswith("__init__.py")), path)

    def node_of(self, info: FunctionInfo) -> tuple[_File, ast.FunctionDef | ast.AsyncFunctionDef] | None:
        """A function's file and node, to inline it: what depends on it depends on that function
        (and what its file declares outside functions), not on the file's other functions."""
        loaded = self._peek(info.path)
        node = loaded.functions.get(info.qualname) if loaded is not None else None
        if loaded is None or node is None:
            self.touched.add(info.path)
            return None
        self.touched.add(f"{BODY}{info.path}::{info.qualname}")
        return loaded, node

    # -- what a call, a name, an attribute refers to ---------------------------------------------

    def resolve_call(
        self, ev: Evaluator, call: ast.Call, need: str = "sql"
    ) -> tuple[FunctionInfo, bool] | None:
        """The project function a call reaches, and whether it is called on an instance or class
        (so that its first parameter, ``self``/``cls``, is already bound)."""
        func = call.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            owner = func.value.id
            klass: str | None = None
            if owner in ("self", "cls") and owner not in ev.env and ev.scope.class_qualname:
                klass = ev.scope.class_qualname
            elif owner in ev.types:
                klass = ev.types[owner]
            if klass is not None:
                found = self.index.method(klass, func.attr, need)
                return (found, found.kind != "staticmethod") if found is not None else None
        if isinstance(func, ast.Attribute):
            # A class held by a local name or attribute (``TI = TaskInstance``, ``self.model``):
            # its classmethods and staticmethods, when every candidate is the same class.
            owners = {m.cls for m in ev.models(func.value) if m.mapped}
            if len(owners) == 1 and None not in owners:
                (owner_class,) = owners
                assert owner_class is not None
                found = self.index.method(owner_class, func.attr, need)
                if found is not None and found.kind in ("classmethod", "staticmethod"):
                    return found, found.kind == "classmethod"
        qualified = ev.qualify(func) if isinstance(func, (ast.Name, ast.Attribute)) else None
        if qualified is None:
            return None
        found = self.index.function(qualified, need)
        if found is not None:
            return found, False
        owner_name, _, method = qualified.rpartition(".")
        if owner_name and self.index.find_class(owner_name) is not None:
            found = self.index.method(owner_name, method, need)
            if found is not None:
                return found, found.kind == "classmethod"
        return None

    def parameter_types(
        self, ev: Evaluator, function: ast.FunctionDef | ast.AsyncFunctionDef
    ) -> dict[str, str]:
        """Parameters annotated with a project class (``db: PrefectDBInterface``)."""
        found: dict[str, str] = {}
        args = function.args
        for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs):
            klass = self._annotated_class(arg.annotation, ev.scope.resolver)
            if klass is not None:
                found[arg.arg] = klass
        return found

    def _annotated_class(self, annotation: ast.AST | None, resolver: Resolver) -> str | None:
        if annotation is None:
            return None
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            names = _IDENTIFIER.findall(annotation.value)
        else:
            names = [ast.unparse(n) for n in ast.walk(annotation) if isinstance(n, (ast.Name, ast.Attribute))]
        for name in names:
            klass = self.index.find_class(resolver.qualify(name))
            if klass is not None:
                return klass.qualname
        return None

    def type_of(self, ev: Evaluator, value: ast.AST) -> str | None:
        """The project class a value has: a constructor call, or a function whose return
        annotation names one (``db = provide_database_interface()``)."""
        if isinstance(value, ast.Await):
            value = value.value
        if not isinstance(value, ast.Call):
            return None
        qualified = ev.qualify(value.func) if isinstance(value.func, (ast.Name, ast.Attribute)) else None
        if qualified is None:
            return None
        klass = self.index.find_class(qualified)
        if klass is not None:
            return klass.qualname
        info = self.index.function(qualified)
        if info is not None and info.returns:
            for name in info.returns.split():
                found = self.index.find_class(name)
                if found is not None:
                    return found.qualname
        return None

    def subclass_models(self, class_qualname: str) -> list[ModelRef]:
        """The mapped subclasses of an unmapped class (a mixin whose classmethods use ``cls``):
        each is a candidate, judged on its own."""
        from lockorder_lint.builders import ModelRef

        found: list[ModelRef] = []
        for sub in self.index.descendants(class_qualname):
            table = self.catalog.lookup(sub)
            if table is not None and all(m.table is not table for m in found):
                found.append(ModelRef(table, cls=sub))
        return found

    def attribute_models(self, ev: Evaluator, node: ast.Attribute) -> list[ModelRef]:
        """``self.model`` / ``cls.db_model`` (each value the class or a subclass assigns), and
        ``db.Deployment`` where ``db`` is an instance of a project class whose property or
        attribute of that name holds a model."""
        from lockorder_lint.builders import ModelRef

        base = node.value
        klass: str | None = None
        if isinstance(base, ast.Name):
            if base.id in ("self", "cls") and base.id not in ev.env:
                klass = ev.scope.class_qualname
            else:
                klass = ev.types.get(base.id)
        if klass is None:
            return []
        found: list[ModelRef] = []
        for value in self.index.attribute_values(klass, node.attr):
            table = self.catalog.lookup(value)
            if table is not None and all(m.table is not table for m in found):
                mapped = not self.catalog.is_table_variable(value)
                found.append(ModelRef(table, mapped=mapped, cls=value if mapped else None))
        return found

    # -- inlining --------------------------------------------------------------------------------

    def _child(
        self, ev: Evaluator, call: ast.Call, want: str
    ) -> tuple[Evaluator, ast.FunctionDef | ast.AsyncFunctionDef, list[Bound]] | None:
        """An evaluator for the callee of ``call`` with its parameters bound to the arguments;
        None when the callee cannot give what is wanted (``statement`` or ``condition``)."""
        from lockorder_lint.builders import Bound, Evaluator, Scope

        if ev.scope.depth >= MAX_DEPTH or ev.inlines >= MAX_INLINES:
            return None
        resolved = self.resolve_call(ev, call)
        if resolved is None:
            return None
        info, bound_first = resolved
        if not info.relevant or info.qualname in ev.scope.calls or info.qualname == ev.scope.qualname:
            return None
        if want == "condition" and not info.returns_condition:
            return None
        if want == "list" and not info.returns_statement:
            return None  # a returned name or list literal has the "statement" shape
        if want == "statement" and not info.returns_statement and not _passes_statement(ev, call):
            return None
        located = self.node_of(info)
        if located is None:
            return None
        callee_file, node = located
        ev.inlines += 1
        params = list(info.params)
        if bound_first and params:
            params = params[1:]
        bindings: dict[str, tuple[Value, ...]] = {}
        bounds: list[Bound] = []
        positional = [a for a in call.args if not isinstance(a, ast.Starred)]
        pairs: list[tuple[str, ast.expr]] = list(zip(params, positional, strict=False))
        pairs += [(kw.arg, kw.value) for kw in call.keywords if kw.arg is not None and kw.arg in params]
        for name, arg in pairs:
            bound = Bound(arg, ev, ev.eval(arg))
            bindings[name] = (bound,)
            bounds.append(bound)
        scope = Scope(
            source=callee_file.source,
            resolver=callee_file.resolver,
            catalog=self.catalog,
            program=self,
            class_qualname=info.class_qualname,
            qualname=info.qualname,
            lock_helpers=ev.scope.lock_helpers,
            dialects=ev.scope.dialects,
            depth=ev.scope.depth + 1,
            calls=(*ev.scope.calls, info.qualname),
            path=callee_file.path,
        )
        child = Evaluator(scope, bindings)
        child.inlines = ev.inlines
        for bound in bounds:
            for value in bound.values:
                if isinstance(value, Statement):
                    child.borrowed.add(value.id)
        return child, node, bounds

    def inline(self, ev: Evaluator, call: ast.Call) -> tuple[Value, ...] | None:
        """Evaluate a call into the project: what it returns, in the caller's coordinates; the
        statements the caller built and the callee executed are recorded in the caller."""
        made = self._child(ev, call, "statement")
        if made is None:
            return None
        child, node, bounds = made
        consumed = child.run(node)
        ev.inlines = child.inlines
        ev.parents.update(child.parents)
        call_span = ev.span(call)
        helper = child.scope.qualname.rsplit(".", 1)[-1]
        escaped = [s for s in consumed if child.lineage_borrowed(s)]
        reached: set[int] = set()
        for statement in escaped + [v for v in child.returned if isinstance(v, Statement)]:
            reached |= _lineage(statement, child.parents)
        for bound in bounds:
            ev.consume(v for v in bound.values if isinstance(v, Statement) and v.id not in reached)
        ev.consume(self._anchor(ev, s, call_span, helper) for s in escaped)
        returned: list[Value] = []
        for value in child.returned:
            if isinstance(value, Statement):
                returned.append(self._anchor(ev, value, call_span, helper))
            elif value not in returned:
                returned.append(value)
        return tuple(returned)

    def _anchor(self, ev: Evaluator, statement: Statement, span: Span, helper: str) -> Statement:
        """A statement from a helper, as the caller reports it: spans from other files move to
        the call, and the helper joins the chain it came through."""
        here = ev.scope.path

        def moved(original: Span | None) -> Span | None:
            if original is None or original.origin == here:
                return original
            return span

        lock = statement.lock
        if lock is not None and lock.span.origin != here:
            lock = replace(lock, span=span)
        anchored = replace(
            statement,
            span=moved(statement.span) or span,
            write=moved(statement.write),
            lock=lock,
            calls=(helper, *statement.calls),
            node=statement.node if statement.span.origin == here else ev.current_statement,
        )
        return anchored

    def evaluator_for(
        self, info: FunctionInfo, depth: int
    ) -> tuple[Evaluator, ast.FunctionDef | ast.AsyncFunctionDef] | None:
        """A fresh evaluator for a project function, in its own file's names."""
        from lockorder_lint.builders import Evaluator, Scope

        located = self.node_of(info)
        if located is None:
            return None
        callee_file, node = located
        scope = Scope(
            source=callee_file.source,
            resolver=callee_file.resolver,
            catalog=self.catalog,
            program=self,
            class_qualname=info.class_qualname,
            qualname=info.qualname,
            lock_helpers=frozenset(self.config.lock_helpers),
            depth=depth,
            path=callee_file.path,
        )
        evaluator = Evaluator(scope)
        evaluator.types.update(self.parameter_types(evaluator, node))
        return evaluator, node

    def session_effects(self, info: FunctionInfo, depth: int = 0) -> dict[str, SessionEffect] | None:
        """What a project function does to each session it is handed (by parameter name) or
        shares (module-level sessions, by qualified name), as a :class:`sessions.SessionEffect`.
        Whether it resets a session before any work is read along its body in evaluation order;
        whether it can fail in the database (work) and whether it writes, over its whole body: the
        strongest effect counts, not the first (``add()`` then ``commit()`` is work). Its own calls
        are followed a few levels down: a function that does not mention a session itself may
        still reach a module-level one through them (``update_and_log()`` calling ``create_log()``)."""
        from lockorder_lint.session_flow import session_work
        from lockorder_lint.sessions import NodeCache, SessionEffect, SessionNames, classify_call

        if (not info.sessions and not self.shared_sessions) or depth >= MAX_DEPTH:
            return None
        if info.qualname in self._effects:
            return self._effects[info.qualname]
        self._effects[info.qualname] = None  # a recursive call sees no summary
        made = self.evaluator_for(info, depth + 1)
        if made is None:
            return None
        ev, node = made
        config = self.config
        calls = ProgramCalls(self, ev)
        sessions = SessionNames(
            node, ev.qualify, config.session_names, NodeCache(), config.lock_helpers,
            config.session_providers, calls.in_project, self.session_key,
        )  # fmt: skip
        params = set(info.params)

        def summarised(key: str) -> bool:
            return key in params or ("." in key and not key.startswith(("self.", "cls.")))

        resets_first: dict[str, bool] = {}
        uses: set[str] = set()
        writes: set[str] = set()
        ends: set[str] = set()
        for call in (c for statement in node.body for c in sessions.nodes.calls_in(statement)):
            for effect in classify_call(call, sessions, calls):
                key = effect.session
                if not summarised(key):
                    continue
                if effect.ends:
                    ends.add(key)
                if effect.kind == "reset":
                    resets_first.setdefault(key, True)
                    continue
                uses.add(key)
                if effect.work:
                    resets_first.setdefault(key, False)
                if effect.writes:
                    writes.add(key)
        # Work that can leave the caller's transaction aborted: not under a savepoint, nor in a
        # ``try`` whose handler rolls back every database error before re-raising.
        failing = session_work(node.body, sessions, ev.qualify, calls, strict=True)
        effects = {
            key: SessionEffect(
                resets_first=resets_first.get(key, False),
                work=key in failing,
                writes=key in writes,
                uses=key in uses,
                ends=key in ends,
            )
            for key in dict.fromkeys([*resets_first, *uses, *failing])
            if summarised(key)
        }
        self._effects[info.qualname] = effects
        return effects

    def session_key(self, qualified: str) -> str:
        """A module-level session by the module that binds it, whichever package re-exports it:
        ``superset.db.session``, where ``superset/__init__.py`` imports ``db`` from
        ``superset.extensions``, is ``superset.extensions.db.session``, so that a helper importing
        one and its caller importing the other speak of the same session."""
        known = self._session_keys.get(qualified)
        if known is not None:
            self.touched.update(known[1])  # the result depends on the files read for it
            return known[0]
        current = qualified
        before = set(self.touched)
        for _ in range(3):
            moved = self._reexported_session(current)
            if moved is None or moved == current:
                break
            current = moved
        self._session_keys[qualified] = (current, tuple(self.touched - before))
        return current

    def _reexported_session(self, qualified: str) -> str | None:
        """One step of :meth:`session_key`: the name the longest project module prefix of
        ``qualified`` imports its next part from; None when it binds it itself or is unknown."""
        parts = qualified.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            module = ".".join(parts[:cut])
            path = self.modules.get(module) or self._package_file(module)
            if path is None:
                continue
            loaded = self.file(path)
            if loaded is None or parts[cut] in loaded.resolver.local_names:
                return None
            target = loaded.resolver.aliases.get(parts[cut])
            return ".".join([target, *parts[cut + 1 :]]) if target is not None else None
        return None

    def _package_file(self, module: str) -> str | None:
        """The ``__init__.py`` of a project package that only re-exports names (so it is not among
        the modules the index keeps), found beside the project's modules inside it."""
        prefix = module + "."
        for inner, path in self.modules.items():
            if not inner.startswith(prefix):
                continue
            base = Path(path)
            base = base.parent if base.name == "__init__.py" else base.with_suffix("")
            for _ in range(inner.count(".") - module.count(".")):
                base = base.parent
            candidate = base / "__init__.py"
            if not candidate.is_file():
                return None
            self.module_of.setdefault(str(candidate), module)
            return str(candidate)
        return None

    def returned_list(self, ev: Evaluator, call: ast.Call) -> list[tuple[Evaluator, ast.AST] | None] | None:
        """A helper that builds a list of conditions and returns it (``where(*helper(...))``): its
        items, read in the helper with its parameters bound to the caller's arguments."""
        made = self._child(ev, call, "list")
        if made is None:
            return None
        child, node, _bounds = made
        child.run(node)
        ev.inlines = child.inlines
        items: list[tuple[Evaluator, ast.AST] | None] = []
        for expr in child.return_nodes:
            if isinstance(expr, ast.Name) and expr.id in child.lists:
                items.extend((child, item) for item in child.lists[expr.id])
            elif isinstance(expr, (ast.List, ast.Tuple)):
                items.extend((child, item) for item in expr.elts)
            else:
                return None
        return items

    def condition(self, ev: Evaluator, call: ast.Call) -> tuple[list[Predicate], bool] | None:
        """A helper that returns a condition (Airflow's ``tuple_in_condition``, ``filter_for_tis``):
        its predicates, read in the helper with its parameters bound to the caller's arguments.
        A column is pinned only when every ``return`` pins it."""
        from lockorder_lint import predicates
        from lockorder_lint.builders import looks_like_condition

        made = self._child(ev, call, "condition")
        if made is None:
            return None
        child, node, _bounds = made
        child.run(node)
        ev.inlines = child.inlines
        returns: list[ast.expr] = []
        for expr in child.return_nodes:
            if (isinstance(expr, ast.Constant) and expr.value is None) or child.sa_call(expr, "false"):
                continue  # no condition, or one no row meets
            if (
                isinstance(expr, ast.Subscript)
                and isinstance(expr.value, ast.Name)
                and expr.value.id in child.lists
            ):
                # ``filters[0]``: one of the listed conditions
                returns.extend(e for e in child.lists[expr.value.id] if isinstance(e, ast.expr))
            else:
                returns.append(expr)
        if not returns or not all(looks_like_condition(r) or _is_starred_or(r) for r in returns):
            return None
        pinned: set[tuple[str, str]] | None = None
        held: set[tuple[str, str]] | None = None
        mentioned: list[tuple[str, str]] = []
        opaque = False
        found: list[Predicate] = []
        for expr in returns:
            found = []
            opaque |= predicates.conjuncts(child, expr, found)
            here = {(p.table, p.column) for p in found if p.op in (EQ, IN)}
            pinned = here if pinned is None else pinned & here
            here_held = {(p.table, p.column) for p in found if p.op in (EQ, IN) and p.held}
            held = here_held if held is None else held & here_held
            mentioned.extend((p.table, p.column) for p in found if (p.table, p.column) not in mentioned)
        if len(returns) > 1:
            found = [
                Predicate(t, c, IN, held=(t, c) in (held or set()))
                if (t, c) in (pinned or set())
                else Predicate(t, c, OTHER)
                for t, c in mentioned
            ]
        if _one_item(call):  # ``filter_for_tis([ti])``: every IN it builds holds that one item
            found = [replace(p, op=EQ) if p.op == IN else p for p in found]
        return found, opaque


class ProgramCalls:
    """Calls into the project as the session analysis of one function sees them: the callee and
    what it does to the sessions it is handed or shares (see :class:`sessions.Callee`)."""

    def __init__(self, program: Program, ev: Evaluator) -> None:
        self.program = program
        self.ev = ev

    def callee(self, call: ast.Call) -> Callee | None:
        from lockorder_lint.sessions import Callee

        resolved = self.program.resolve_call(self.ev, call, need="sessions")
        if resolved is None:
            return None
        info, bound_first = resolved
        effects = self.program.session_effects(info, self.ev.scope.depth)
        if effects is None:
            return None
        return Callee(info.params, bound_first, effects, info.qualname)

    def never_returns(self, call: ast.Call) -> bool:
        resolved = self.program.resolve_call(self.ev, call, need="")
        return resolved is not None and resolved[0].no_return

    def rolls_back(self, decorator: ast.AST) -> bool:
        """A project decorator whose own code calls ``rollback()`` (Airflow's retry_db_transaction)."""
        qualified = self.ev.qualify(decorator)
        info = self.program.index.function(qualified, need="sessions") if qualified else None
        located = self.program.node_of(info) if info is not None else None
        if located is None:
            return False
        return any(isinstance(n, ast.Attribute) and n.attr == "rollback" for n in ast.walk(located[1]))

    def shares_sessions(self) -> bool:
        return self.program.shared_sessions

    def in_project(self, qualified: str) -> bool:
        return self.program.index._module_of(qualified) is not None


def _passes_statement(ev: Evaluator, call: ast.Call) -> bool:
    """Some argument names a statement the caller built (the callee may lock or execute it)."""
    for arg in [*call.args, *(kw.value for kw in call.keywords)]:
        value = arg.value if isinstance(arg, ast.Starred) else arg
        if isinstance(value, ast.Name) and any(isinstance(v, Statement) for v in ev.eval_quiet(value)):
            return True
        if isinstance(value, ast.Call):
            return True  # ``helper(select(...))``: evaluating it tells
    return False


def _is_starred_or(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, (ast.Name, ast.Attribute))
        and ((node.func.id if isinstance(node.func, ast.Name) else node.func.attr) in ("or_", "and_"))
    )


def _lineage(statement: Statement, parents: dict[int, int | None]) -> set[int]:
    found: set[int] = set()
    current: int | None = statement.id
    while current is not None and current not in found:
        found.add(current)
        current = parents.get(current)
    return found


def _is_overload(decorator: ast.expr) -> bool:
    """``@overload`` / ``@typing.overload``: the function under it is a stub, not the code."""
    return (isinstance(decorator, ast.Name) and decorator.id == "overload") or (
        isinstance(decorator, ast.Attribute) and decorator.attr == "overload"
    )


def _one_item(call: ast.Call) -> bool:
    """The call hands the helper one collection, a literal of exactly one item, and nothing else
    but constants: whatever ``IN`` lists it builds from it name one value each."""
    data = [a for a in (*call.args, *(k.value for k in call.keywords)) if not isinstance(a, ast.Constant)]
    if len(data) != 1 or not isinstance(data[0], (ast.List, ast.Tuple, ast.Set)):
        return False
    items = data[0].elts
    return len(items) == 1 and not isinstance(items[0], ast.Starred)
