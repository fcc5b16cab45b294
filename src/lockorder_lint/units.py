"""Units of analysis: the functions of a file the rules look at, cut out cheaply.

A text scan finds the lines where each rule's triggers occur; a function is worth analysing for
a rule only when one of its lines holds that rule's trigger. Both lookups are binary searches
over sorted line numbers, so a file with thousands of flagged functions costs linear time.
"""

from __future__ import annotations

import ast
import bisect
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from lockorder_lint.builders import Evaluator, Scope
from lockorder_lint.names import function_lines
from lockorder_lint.statements import Span, Statement

Function = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass(frozen=True)
class Candidate:
    """A top-level function or method (with its nested functions) worth a full analysis,
    and the rules whose triggers it holds."""

    qualname: str
    class_qualname: str | None
    start_line: int  # first decorator line
    end_line: int
    node: Function
    rules: frozenset[str]


def _hit_in(lines: list[int], start: int, end: int) -> bool:
    index = bisect.bisect_left(lines, start)
    return index < len(lines) and lines[index] <= end


def candidate_functions(tree: ast.Module, module: str, hits: dict[str, list[int]]) -> list[Candidate]:
    """The outermost functions whose lines hold at least one trigger, in source order.
    ``hits`` maps each rule to the sorted line numbers of its triggers."""
    found: list[Candidate] = []
    all_hits = sorted({line for lines in hits.values() for line in lines})

    def visit(body: list[ast.stmt], prefix: str, class_qualname: str | None) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start, end = function_lines(node)
                if _hit_in(all_hits, start, end):
                    rules = frozenset(code for code, lines in hits.items() if _hit_in(lines, start, end))
                    found.append(Candidate(f"{prefix}{node.name}", class_qualname, start, end, node, rules))
            elif isinstance(node, ast.ClassDef):
                end = node.end_lineno or node.lineno
                if _hit_in(all_hits, node.lineno, end):
                    visit(node.body, f"{prefix}{node.name}.", f"{module}.{prefix}{node.name}")
            elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
                for name in ("body", "orelse", "finalbody"):
                    visit(getattr(node, name, []), prefix, class_qualname)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body, prefix, class_qualname)

    visit(tree.body, "", None)
    return found


def nested_functions(function: Function) -> Iterator[Function]:
    """Functions defined in ``function``'s blocks (not inside classes or nested functions),
    in source order."""
    pending: list[ast.stmt] = list(reversed(function.body))
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node
            continue
        if isinstance(node, ast.ClassDef):
            continue
        inner: list[ast.stmt] = []
        for name in ("body", "orelse", "finalbody"):
            inner.extend(getattr(node, name, None) or [])
        for handler in getattr(node, "handlers", ()):
            inner.extend(handler.body)
        for case in getattr(node, "cases", ()):
            inner.extend(case.body)
        pending.extend(reversed(inner))


@dataclass
class Unit:
    """One function (or method) as the rules see it: its ``ast``, the statements it executes in
    source order, and how to turn its nodes into file positions and names."""

    qualname: str
    node: Function
    scope: Scope
    evaluator: Evaluator = field(init=False)

    def __post_init__(self) -> None:
        self.evaluator = Evaluator(self.scope)

    @functools.cached_property
    def statements(self) -> list[Statement]:
        """Followed on first use: a rule that walks the function itself (LCK003) never pays for it."""
        return self.evaluator.run(self.node)

    def span(self, start: ast.AST, end: ast.AST | None = None) -> Span:
        return self.evaluator.span(start, end)

    def qualify(self, node: ast.AST) -> str | None:
        """The qualified name of a dotted expression whose head is imported or module-level."""
        return self.evaluator.qualify(node)

    def text(self, node: ast.AST) -> str:
        """The node's source, whitespace-normalised."""
        return self.evaluator.text(node)

    def canonical(self, node: ast.AST) -> str:
        """The node as code, formatted canonically (for baselines)."""
        try:
            return " ".join(ast.unparse(node).split())
        except (ValueError, RecursionError):  # pragma: no cover
            return self.text(node)

    @property
    def is_async(self) -> bool:
        return isinstance(self.node, ast.AsyncFunctionDef)


def units_of(candidate: Candidate, scope: Scope) -> list[Unit]:
    """One unit for the candidate and one per function nested in it."""
    units: list[Unit] = []
    pending: list[tuple[Function, str]] = [(candidate.node, candidate.qualname)]
    while pending:
        node, qualname = pending.pop(0)
        units.append(Unit(qualname, node, replace(scope, qualname=qualname)))
        pending.extend((nested, f"{qualname}.{nested.name}") for nested in nested_functions(node))
    return units
