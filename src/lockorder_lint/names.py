"""Module names and import aliases, read with ``ast`` so that ``TI``, ``models.TaskInstance`` and
``sa.update`` all resolve to the qualified names the catalog and the rules speak in."""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable
from pathlib import Path


def module_name(path: Path, root: Path) -> str:
    """The dotted module name of ``path``: its package chain if it has one, else its path under root."""
    path = path.resolve()
    package = _package_of(path.parent)
    parts = [*package, path.stem] if path.name != "__init__.py" else list(package)
    if len(parts) <= 1 and path.name != "__init__.py":
        try:
            rel = path.relative_to(root.resolve()).with_suffix("")
            rel_parts = [p for p in rel.parts if p not in ("src", "lib")]
            if rel_parts:
                return ".".join(rel_parts)
        except ValueError:
            pass
    return ".".join(parts) or path.stem


@functools.lru_cache(maxsize=4096)
def _package_of(directory: Path) -> tuple[str, ...]:
    """The package a directory is (its chain of ``__init__.py`` parents), outermost first; asked
    once per directory, not once per file."""
    if directory == directory.parent or not (directory / "__init__.py").is_file():
        return ()
    return (*_package_of(directory.parent), directory.name)


def _absolute(module: str | None, level: int, current: str, is_package: bool) -> str:
    if level == 0:
        return module or ""
    base = current.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _statements(tree: ast.AST) -> Iterable[ast.stmt]:
    """Every statement, at any depth; imports are statements, so expressions need no visit."""
    pending: list[ast.stmt] = list(getattr(tree, "body", []))
    while pending:
        node = pending.pop()
        yield node
        for name in ("body", "orelse", "finalbody"):
            pending.extend(getattr(node, name, ()))
        for handler in getattr(node, "handlers", ()):
            pending.extend(handler.body)
        for case in getattr(node, "cases", ()):
            pending.extend(case.body)


def import_aliases(tree: ast.AST, current: str, is_package: bool) -> dict[str, str]:
    """Map every name an import binds, anywhere in the file, to the dotted name it stands for."""
    aliases: dict[str, str] = {}
    for node in _statements(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    head = alias.name.split(".")[0]
                    aliases[head] = head
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node.module, node.level, current, is_package)
            for alias in node.names:
                if alias.name == "*":
                    continue
                aliases[alias.asname or alias.name] = f"{source}.{alias.name}" if source else alias.name
    return aliases


def function_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[int, int]:
    """The first and last line of a function, its decorators included."""
    return min([node.lineno, *(d.lineno for d in node.decorator_list)]), node.end_lineno or node.lineno


def called_name(call: ast.Call) -> str:
    """The name a call is made by: ``f`` of ``f(...)``, ``m`` of ``x.y.m(...)``; "" for any other
    callee (a call's result, a subscript)."""
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def dotted_name(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attribute accesses on a name, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = dotted_name(node.value)
        return f"{inner}.{node.attr}" if inner else None
    return None


def assignment_aliases(tree: ast.Module, resolver: Resolver) -> None:
    """Treat module-level ``TI = TaskInstance`` as another import alias of the same thing."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            dotted = dotted_name(node.value)
            head = dotted.partition(".")[0] if dotted else None
            if dotted and (head in resolver.aliases or head in resolver.local_names):
                name = node.targets[0].id
                target = resolver.qualify(dotted)
                resolver.local_names.discard(name)
                resolver.aliases[name] = target


class Resolver:
    """Turns a dotted name as written in one file into the qualified name it refers to."""

    def __init__(self, module: str, aliases: dict[str, str], local_names: Iterable[str] = ()) -> None:
        self.module = module
        self.aliases = aliases
        self.local_names = set(local_names)

    def qualify(self, dotted: str) -> str:
        head, _, rest = dotted.partition(".")
        if head in self.local_names:  # a module-level definition shadows an import of the name
            base = f"{self.module}.{head}" if self.module else head
        elif head in self.aliases:
            base = self.aliases[head]
        else:
            base = head
        return f"{base}.{rest}" if rest else base


def is_sqlalchemy(qualified: str, *names: str) -> bool:
    """True when ``qualified`` is SQLAlchemy's function or class with one of ``names``."""
    return qualified.startswith("sqlalchemy.") and qualified.rsplit(".", 1)[-1] in names


def module_level_names(tree: ast.Module) -> list[str]:
    """Names bound at module level (classes, functions, assignments): they resolve within the file."""
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names.extend(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return names


def file_resolver(tree: ast.Module, module: str, is_package: bool) -> Resolver:
    """The names of one file: its imports, its module-level definitions and ``TI = TaskInstance``."""
    resolver = Resolver(module, import_aliases(tree, module, is_package), module_level_names(tree))
    assignment_aliases(tree, resolver)
    return resolver
