"""The project's symbol table: every function and class, where it is, and what a reader needs to
follow a call or an attribute into it, read once per file with ``ast`` and cached like models.

Rules never consult this directly; :mod:`lockorder_lint.summaries` does, to resolve calls
(``helper(...)``, ``self.method(...)``, ``cls.build(...)``), class attributes that hold models
(``model = Port`` set in subclasses) and interface properties (Prefect's ``db.Deployment``).
"""

from __future__ import annotations

import ast
import bisect
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from lockorder_lint.names import Resolver, called_name, dotted_name, function_lines

# Text that makes a function worth following into: it builds or returns a statement or a
# condition. Functions (and files) without any of it are never inlined.
SQL_HINT = re.compile(
    rb"select\(|update\(|delete\(|insert\(|\.where\(|\.filter(?:_by)?\(|with_for_update|\.query\b|"
    rb"and_\(|or_\(|tuple_\(|\.in_\(|text\(|__table__|\.c\.|_subquery\(|\.cte\("
)
# Text that makes a function worth summarising for the sessions it is handed or shares.
SESSION_HINT = re.compile(rb"session|Session|\.commit\(|\.rollback\(|\.flush\(|connection|\.execute\(")
_NO_RETURN = frozenset({"NoReturn", "Never"})


@dataclass(frozen=True)
class FunctionInfo:
    """One function or method, as a caller's view of it needs."""

    qualname: str
    module: str
    path: str  # the absolute path of its file
    lineno: int
    class_qualname: str | None
    params: tuple[str, ...]
    annotations: tuple[tuple[str, str], ...]  # (parameter, the qualified names its annotation mentions)
    returns: str | None  # the qualified names the return annotation mentions
    decorators: tuple[str, ...]
    kind: str  # function, method, classmethod, staticmethod, property
    relevant: bool  # builds statements or conditions: worth following into
    no_return: bool = False
    # What its ``return`` statements may hand back, read from their shape: a statement builder
    # (or something that may be one), a condition.
    returns_statement: bool = False
    returns_condition: bool = False
    sessions: bool = False  # mentions sessions: worth summarising for LCK003

    def annotation(self, param: str) -> str | None:
        return next((a for p, a in self.annotations if p == param), None)


@dataclass
class ClassInfo:
    """A class's bases and the attributes a reader may need to resolve through it."""

    qualname: str
    bases: tuple[str, ...]
    # ``model = Port`` in the body, ``self.model = Port`` in a method: qualified dotted values.
    attributes: dict[str, list[str]] = field(default_factory=dict)
    # ``@property def Deployment(self) -> type[orm.Deployment]: return orm.Deployment``.
    properties: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class FileSymbols:
    """The functions and classes one file defines, and the names it imports (a package's
    ``__init__`` re-exports what it imports)."""

    functions: list[FunctionInfo] = field(default_factory=list)
    classes: list[ClassInfo] = field(default_factory=list)
    imports: dict[str, str] = field(default_factory=dict)


def _annotation_names(node: ast.AST | None, resolver: Resolver) -> str | None:
    """The names an annotation mentions, qualified through the file's imports and joined by
    spaces (``Optional[Session]`` -> ``typing.Optional sqlalchemy.orm.Session``); enough to
    recognise a session type, a project class or ``NoReturn`` without rendering the annotation."""
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return " ".join(resolver.qualify(name) for name in _IDENTIFIERS.findall(node.value)) or None
    names: list[str] = []
    pending: list[ast.AST] = [node]
    while pending:
        current = pending.pop()
        dotted = dotted_name(current) if isinstance(current, (ast.Name, ast.Attribute)) else None
        if dotted is not None:
            names.append(resolver.qualify(dotted))
        elif isinstance(current, ast.Constant) and isinstance(current.value, str):
            names.extend(resolver.qualify(name) for name in _IDENTIFIERS.findall(current.value))
        else:
            pending.extend(reversed(list(ast.iter_child_nodes(current))))
    return " ".join(names) or None


_IDENTIFIERS = re.compile(r"[A-Za-z_][\w.]*")


def _function_kind(decorators: list[str]) -> str:
    names = {d.rsplit(".", 1)[-1] for d in decorators}
    if "property" in names or "cached_property" in names:
        return "property"
    if "classmethod" in names:
        return "classmethod"
    if "staticmethod" in names:
        return "staticmethod"
    return ""


def _hit(lines: list[int], start: int, end: int) -> bool:
    index = bisect.bisect_left(lines, start)
    return index < len(lines) and lines[index] <= end


def read_symbols(
    tree: ast.Module,
    module: str,
    resolver: Resolver,
    path: str,
    relevant_lines: list[int],
    session_lines: Sequence[int] = (),
) -> FileSymbols:
    """The file's functions (top-level, methods, nested) and classes. ``relevant_lines`` and
    ``session_lines`` are the sorted lines where :data:`SQL_HINT` and :data:`SESSION_HINT` matched."""
    symbols = FileSymbols(imports=dict(resolver.aliases))
    session_list = list(session_lines)
    # Functions without SQL text of their own, by position in ``symbols.functions``: one that
    # returns what a builder of this file returns (``return self._locked(query)``) is one too.
    quiet: dict[int, ast.FunctionDef | ast.AsyncFunctionDef] = {}

    def decorators_of(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> list[str]:
        found = []
        for decorator in node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            dotted = dotted_name(target)
            if dotted:
                found.append(resolver.qualify(dotted))
        return found

    def function(node: ast.FunctionDef | ast.AsyncFunctionDef, prefix: str, owner: str | None) -> None:
        decorators = decorators_of(node)
        if any(d.rsplit(".", 1)[-1] == "overload" for d in decorators):
            return  # a typing stub: calls run the implementation that follows it
        kind = _function_kind(decorators) or ("method" if owner else "function")
        args = node.args
        params = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
        start, end = function_lines(node)
        qualname = f"{prefix}.{node.name}"
        relevant = _hit(relevant_lines, start, end)
        sessions = _hit(session_list, start, end)
        returns = _annotation_names(node.returns, resolver)
        no_return = returns is not None and returns.rsplit(".", 1)[-1] in _NO_RETURN
        annotations: tuple[tuple[str, str], ...] = ()
        shapes: set[str] = set()
        if relevant or sessions:  # only functions worth following pay for the rest
            annotations = _annotations(node, resolver)
            shapes = {_return_shape(r.value) for r in _own_returns(node) if r.value is not None}
        if not relevant:
            quiet[len(symbols.functions)] = node
        symbols.functions.append(
            FunctionInfo(
                qualname, module, path, node.lineno, owner, tuple(params), annotations, returns,
                tuple(decorators), kind, relevant, no_return, "statement" in shapes, "condition" in shapes,
                sessions,
            )
        )  # fmt: skip

    def klass(node: ast.ClassDef, prefix: str) -> None:
        qualname = f"{prefix}.{node.name}"
        bases = tuple(resolver.qualify(d) for d in (dotted_name(b) for b in node.bases) if d)
        info = ClassInfo(qualname, bases)
        for stmt in node.body:
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                value = stmt.value
                for target in targets:
                    if isinstance(target, ast.Name) and value is not None:
                        _record(info.attributes, target.id, value, resolver)
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                function(stmt, qualname, qualname)
                decorators = decorators_of(stmt)
                if _function_kind(decorators) == "property":
                    returned = [
                        r.value for r in ast.walk(stmt) if isinstance(r, ast.Return) and r.value is not None
                    ]
                    for value in returned:
                        _record(info.properties, stmt.name, value, resolver)
                    text = _annotation_names(stmt.returns, resolver)
                    for name in (text or "").split():
                        if name.rsplit(".", 1)[-1] not in _TYPING_NAMES:
                            values = info.properties.setdefault(stmt.name, [])
                            if name not in values:
                                values.append(name)
                if stmt.name != "__init__":
                    continue
                for inner_node in ast.walk(stmt):
                    if isinstance(inner_node, ast.Assign):
                        for target in inner_node.targets:
                            if (
                                isinstance(target, ast.Attribute)
                                and isinstance(target.value, ast.Name)
                                and target.value.id == "self"
                            ):
                                _record(info.attributes, target.attr, inner_node.value, resolver)
            elif isinstance(stmt, ast.ClassDef):
                klass(stmt, qualname)
        symbols.classes.append(info)

    def visit(body: Iterable[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                function(node, prefix, None)
            elif isinstance(node, ast.ClassDef):
                klass(node, prefix)
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body, prefix)
                visit(node.orelse, prefix)

    visit(tree.body, module)
    _relay_builders(symbols, quiet, resolver)
    return symbols


def _annotations(
    node: ast.FunctionDef | ast.AsyncFunctionDef, resolver: Resolver
) -> tuple[tuple[str, str], ...]:
    args = node.args
    return tuple(
        (a.arg, text)
        for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)
        if (text := _annotation_names(a.annotation, resolver)) is not None
    )


def _relay_builders(
    symbols: FileSymbols, quiet: dict[int, ast.FunctionDef | ast.AsyncFunctionDef], resolver: Resolver
) -> None:
    """Mark relevant the functions that hand back what a statement builder of the same file
    returns, with no SQL text of their own: ``return self._apply_lock(query)`` under ``if
    for_update:`` (MLflow's ``_trace_query``). Without this the lock the caller asked for is lost."""
    for _ in range(3):  # a wrapper of a wrapper of a builder
        builders = {
            info.qualname.rsplit(".", 1)[-1]
            for info in symbols.functions
            if info.relevant and info.returns_statement
        }
        changed = False
        for index, node in list(quiet.items()):
            returns = [r.value for r in _own_returns(node) if r.value is not None]
            relays = any(isinstance(value, ast.Call) and called_name(value) in builders for value in returns)
            if not relays:
                continue
            shapes = {_return_shape(value) for value in returns}
            info = symbols.functions[index]
            symbols.functions[index] = replace(
                info,
                relevant=True,
                annotations=info.annotations or _annotations(node, resolver),
                returns_statement="statement" in shapes,
                returns_condition="condition" in shapes,
            )
            del quiet[index]
            changed = True
        if not changed:
            break


# Methods whose result is rows, a count or a plain value, never a statement to build on.
_RESULT_METHODS = frozenset(
    {
        "all", "one", "first", "one_or_none", "scalar", "scalars", "scalar_one", "scalar_one_or_none",
        "fetchall", "fetchone", "fetchmany", "execute", "count", "get", "unique", "mappings", "exists_",
        "commit", "flush", "format", "join_path", "items", "keys", "values", "append", "dumps", "loads",
    }
)  # fmt: skip
_CONDITION_CALLS = frozenset(
    {"and_", "or_", "not_", "in_", "not_in", "notin_", "is_", "is_not", "isnot", "like", "ilike", "between",
     "tuple_", "false", "true", "exists"}
)  # fmt: skip


def _own_returns(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.Return]:
    """The function's ``return`` statements (not those of functions nested in it); statements
    are reached through their blocks only, which is far cheaper than a full walk."""
    found: list[ast.Return] = []
    pending: list[ast.stmt] = list(function.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Return):
            found.append(node)
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for name in ("body", "orelse", "finalbody"):
                pending.extend(getattr(node, name, None) or ())
            for handler in getattr(node, "handlers", ()):
                pending.extend(handler.body)
            for case in getattr(node, "cases", ()):
                pending.extend(case.body)
    return found


def _return_shape(value: ast.AST) -> str:
    """``statement`` for what may be a builder (a name, a chain ending in a builder method, a call
    to another function), ``condition`` for a SQL condition, ``value`` for anything else."""
    if isinstance(value, ast.Await):
        value = value.value
    if isinstance(value, (ast.Compare, ast.BoolOp)) or (
        isinstance(value, ast.BinOp) and isinstance(value.op, (ast.BitAnd, ast.BitOr))
    ):
        return "condition"
    if isinstance(value, ast.Call):
        name = called_name(value)
        if name in _CONDITION_CALLS:
            return "condition"
        return "value" if name in _RESULT_METHODS else "statement"
    if isinstance(value, (ast.Name, ast.Attribute, ast.IfExp, ast.Subscript)):
        return "statement"
    return "value"


# Names in annotations that wrap the type a property returns rather than being it.
_TYPING_NAMES = frozenset({"type", "Type", "Optional", "Union", "None", "ClassVar", "Any"})


def _record(bucket: dict[str, list[str]], name: str, value: ast.AST, resolver: Resolver) -> None:
    """Remember what an attribute may hold, when it is a plain (qualified) name."""
    dotted = dotted_name(value)
    if dotted is None:
        return
    qualified = resolver.qualify(dotted) if dotted.partition(".")[0] not in ("self", "cls") else dotted
    values = bucket.setdefault(name, [])
    if qualified not in values:
        values.append(qualified)


# ``class Name(Bases):`` lines: enough, read from the bytes of every file, to know which files
# may hold the subclasses of a class without parsing them.
CLASS_LINE = re.compile(rb"(?m)^[ \t]*class[ \t]+(\w+)[ \t]*\(([^)]*)\)")
_BASE_WORD = re.compile(r"\w+")


# A decorator's name, and the ``def`` a decorator line may stand over (a decorator whose
# arguments span lines is not matched: session providers are written bare or with short arguments).
DECORATOR = re.compile(rb"@[ \t]*([\w.]+)")
# blank and comment lines may stand between a decorator and its ``def``
DECORATED_DEF = re.compile(rb"(?:[ \t]*(?:#[^\n]*)?\r?\n)*[ \t]*(?:async[ \t]+)?def[ \t]+(\w+)")


def decorated_functions(data: bytes) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(function name, the last names of its decorators) for every decorated ``def`` in the
    bytes: read without parsing, so the whole project's session-opening functions are known
    before any file is checked. Each ``@`` is looked at once (a regex anchored at every line
    start costs more than all the other facts of a file together)."""
    if b"@" not in data:
        return ()
    found: list[tuple[str, tuple[str, ...]]] = []
    names: list[str] = []
    expected = -1  # where the next line of the current decorator stack starts
    for match in DECORATOR.finditer(data):
        line_start = data.rfind(b"\n", 0, match.start()) + 1
        if data[line_start : match.start()].strip(b" \t"):
            continue  # not at the start of a line: a matrix product, an e-mail address
        if line_start != expected:
            names = []
        names.append(match.group(1).decode("ascii", "replace").rsplit(".", 1)[-1])
        expected = data.find(b"\n", match.end()) + 1
        if not expected:
            break
        function = DECORATED_DEF.match(data, expected)
        if function is not None:
            found.append((function.group(1).decode("ascii", "replace"), tuple(names)))
            names, expected = [], -1
    return tuple(found)


def class_lines(data: bytes) -> list[tuple[str, tuple[str, ...]]]:
    """(class name, the last words of its bases) for every class statement in the bytes."""
    found = []
    for match in CLASS_LINE.finditer(data):
        bases = tuple(
            word.rsplit(".", 1)[-1]
            for word in (
                b.strip().split("[")[0] for b in match.group(2).decode("utf-8", "replace").split(",")
            )
            if word and "=" not in word
        )
        found.append((match.group(1).decode("ascii", "replace"), bases))
    return found


class ProgramIndex:
    """Every function and class of the project by qualified name, with the lookups callers need:
    a method through the class's bases, a class's subclasses, what an attribute may hold.

    Files are read lazily: a module's symbols are loaded (parsed) the first time a lookup needs
    them, so that a run pays only for the helpers its checked files actually call."""

    def __init__(
        self,
        modules: dict[str, str],
        subclass_files: dict[str, list[str]],
        load: Callable[[str], FileSymbols | None],
        sql_files: frozenset[str] = frozenset(),
        session_files: frozenset[str] = frozenset(),
        class_files: dict[str, list[str]] | None = None,
    ) -> None:
        self.modules = modules  # module name -> file path
        self.subclass_files = subclass_files  # base short name -> files with a class deriving it
        self.sql_files = sql_files  # files that build statements: only their functions are inlined
        self.session_files = session_files  # files that use sessions: their functions are summarised
        self.class_files = class_files or {}  # class short name -> files with a class of that name
        self._load = load
        self._loaded: dict[str, FileSymbols | None] = {}
        self.functions: dict[str, FunctionInfo] = {}
        self.classes: dict[str, ClassInfo] = {}
        self._short_classes: dict[str, list[str]] = {}

    def symbols(self, path: str) -> FileSymbols | None:
        if path not in self._loaded:
            symbols = self._loaded[path] = self._load(path)
            if symbols is not None:
                for info in symbols.functions:
                    self.functions.setdefault(info.qualname, info)
                for klass in symbols.classes:
                    self.classes.setdefault(klass.qualname, klass)
                    self._short_classes.setdefault(klass.qualname.rsplit(".", 1)[-1], []).append(
                        klass.qualname
                    )
        return self._loaded[path]

    def _module_of(self, qualname: str) -> str | None:
        """The longest leading part of ``qualname`` that is a module of the project."""
        parts = qualname.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            module = ".".join(parts[:cut])
            if module in self.modules:
                return module
        return None

    def _load_for(self, qualname: str, need: str = "") -> None:
        module = self._module_of(qualname)
        if module is None:
            return
        path = self.modules[module]
        if need == "sql" and path not in self.sql_files:
            return
        if need == "sessions" and path not in self.session_files and path not in self.sql_files:
            return
        self.symbols(path)

    def _reexported(self, qualname: str) -> str | None:
        """``pkg.Name`` where ``pkg/__init__.py`` imports ``Name`` from a submodule: the name it
        really has."""
        module = self._module_of(qualname)
        if module is None:
            return None
        symbols = self.symbols(self.modules[module])
        rest = qualname[len(module) + 1 :]
        head, _, tail = rest.partition(".")
        target = symbols.imports.get(head) if symbols is not None else None
        if target is None or target == qualname:
            return None
        return f"{target}.{tail}" if tail else target

    def function(self, qualname: str, need: str = "sql", hops: int = 0) -> FunctionInfo | None:
        """A function by qualified name, if its file has what ``need`` asks for (``sql``: it
        builds statements; ``sessions``: it uses sessions), so other files are never parsed."""
        if qualname not in self.functions:
            self._load_for(qualname, need)
        found = self.functions.get(qualname)
        if found is None and hops < 3 and need == "":
            target = self._reexported(qualname)
            if target is not None:
                return self.function(target, need, hops + 1)
        return found

    def find_class(self, name: str, hops: int = 0) -> ClassInfo | None:
        if name not in self.classes:
            self._load_for(name)
        if name in self.classes:
            return self.classes[name]
        if hops < 3:
            target = self._reexported(name)
            if target is not None:
                found = self.find_class(target, hops + 1)
                if found is not None:
                    return found
        short = name.rsplit(".", 1)[-1]
        for path in self.class_files.get(short, [])[:4]:
            self.symbols(path)
        candidates = self._short_classes.get(short, [])
        if len(candidates) == 1 and "." in name:
            package = name.split(".", 1)[0]
            if candidates[0].split(".", 1)[0] == package:
                return self.classes[candidates[0]]
        return None

    def ancestors(self, qualname: str) -> list[ClassInfo]:
        """The class and its ancestors in the project, nearest first."""
        found: list[ClassInfo] = []
        seen: set[str] = set()
        pending = [qualname]
        while pending:
            current = self.find_class(pending.pop(0))
            if current is None or current.qualname in seen:
                continue
            seen.add(current.qualname)
            found.append(current)
            pending.extend(current.bases)
        return found

    def descendants(self, qualname: str) -> list[str]:
        """Subclasses anywhere in the project, found through the files whose class lines name
        the class's short name as a base."""
        found: list[str] = []
        pending = [qualname]
        while pending:
            current = pending.pop(0)
            short = current.rsplit(".", 1)[-1]
            for path in self.subclass_files.get(short, ()):
                symbols = self.symbols(path)
                for klass in symbols.classes if symbols is not None else ():
                    if klass.qualname in found or klass.qualname == qualname:
                        continue
                    if any(self._same_class(base, current) for base in klass.bases):
                        found.append(klass.qualname)
                        pending.append(klass.qualname)
        return found

    def _same_class(self, base: str, qualname: str) -> bool:
        if base == qualname:
            return True
        resolved = self.find_class(base)
        return resolved is not None and resolved.qualname == qualname

    def method(self, class_qualname: str, name: str, need: str = "sql") -> FunctionInfo | None:
        """``name`` as the class (or its nearest ancestor) defines it."""
        for klass in self.ancestors(class_qualname):
            found = self.function(f"{klass.qualname}.{name}", need)
            if found is not None:
                return found
        return None

    def attribute_values(self, class_qualname: str, name: str) -> list[str]:
        """What ``self.<name>`` may hold in an instance of the class or of any subclass: the
        nearest definition up the tree, and every subclass's own."""
        values: list[str] = []
        for klass in self.ancestors(class_qualname):
            own = klass.attributes.get(name) or klass.properties.get(name)
            if own:
                values.extend(v for v in own if v not in values)
                break
        for sub in self.descendants(class_qualname):
            klass = self.classes[sub]
            for value in klass.attributes.get(name, []) + klass.properties.get(name, []):
                if value not in values:
                    values.append(value)
        return values
