"""Cut a file into the functions the rules need, cheaply.

``ast`` (fast, in C) finds the functions that contain a trigger; only those are handed to
libcst, each parsed on its own and positioned back into file coordinates. A file with no
trigger is never given to libcst at all.
"""

from __future__ import annotations

import ast
import bisect
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    """A top-level function or method (with its nested functions) worth a full analysis,
    and the rules whose triggers it holds."""

    qualname: str
    class_qualname: str | None
    start_line: int  # first decorator line
    end_line: int
    node: ast.FunctionDef | ast.AsyncFunctionDef
    rules: frozenset[str]


def candidate_functions(tree: ast.Module, module: str, hits: dict[str, set[int]]) -> list[Candidate]:
    """The outermost functions whose lines hold at least one trigger, in source order."""
    found: list[Candidate] = []
    all_hits = sorted(set().union(*hits.values())) if hits else []

    def has_hit(start: int, end: int) -> bool:
        index = bisect.bisect_left(all_hits, start)
        return index < len(all_hits) and all_hits[index] <= end

    def rules_hit(start: int, end: int) -> frozenset[str]:
        return frozenset(code for code, lines in hits.items() if any(start <= n <= end for n in lines))

    def visit(body: list[ast.stmt], prefix: str, class_qualname: str | None) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                end = node.end_lineno or node.lineno
                if has_hit(start, end):
                    found.append(
                        Candidate(
                            f"{prefix}{node.name}", class_qualname, start, end, node, rules_hit(start, end)
                        )
                    )
            elif isinstance(node, ast.ClassDef):
                end = node.end_lineno or node.lineno
                if has_hit(node.lineno, end):
                    visit(node.body, f"{prefix}{node.name}.", f"{module}.{prefix}{node.name}")
            elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
                for field in ("body", "orelse", "finalbody"):
                    visit(getattr(node, field, []), prefix, class_qualname)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body, prefix, class_qualname)

    visit(tree.body, "", None)
    return found


def snippet_for(lines: list[str], candidate: Candidate) -> tuple[str, int]:
    """The candidate's source, made parseable on its own, and the line offset back to the file.

    An indented method is wrapped in ``if True:`` so that its columns stay exactly as in the file.
    """
    segment = lines[candidate.start_line - 1 : candidate.end_line]
    first = segment[0] if segment else ""
    if first[:1] in (" ", "\t"):
        return "if True:\n" + "".join(segment), candidate.start_line - 2
    return "".join(segment), candidate.start_line - 1


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
