"""``--fix --unsafe-fixes`` for LCK006: wrap a loop's iterable in ``sorted(...)``.

When the loop variable is the key itself (a set or list of keys, a dict's keys or items), iterating
``sorted(collection)`` visits the keys in sorted order, which every writer can share. The fix is
*unsafe*, applied only on request: ``sorted`` raises on elements that cannot be compared (``None``
among strings, mixed types), and nothing says the order did not matter to the code for some other
reason. Findings whose elements are not the keys (objects, ``.values()``, comprehensions feeding a
multi-row upsert) have no automatic fix; the message says what to sort by.

The analysis that reported the finding is re-run on the text being fixed, and each finding is
matched to its loop by function and iterable text (as a baseline matches), so that the edits of
other fixes made first, which move lines, do not matter.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lockorder_lint.parsing import Source, parse_ast

if TYPE_CHECKING:
    from lockorder_lint.engine import Project

CODE = "LCK006"
NOT_THE_KEY = "the loop's elements are not the keys themselves: sort them by the rows' key by hand"
MAY_NOT_COMPARE = "sorted(...) raises if the elements cannot be compared (None among strings, mixed types)"


@dataclass(frozen=True)
class Wanted:
    """A reported LCK006 finding, as the fix finds it again: its function, its iterable's text,
    and where it was reported (for what the run says of it)."""

    function: str
    iterable: str
    line: int
    column: int


@dataclass
class SortedFix:
    text: str
    applied: int = 0
    # (wanted, reason, unsafe): findings left in place, and why
    left: list[tuple[Wanted, str, bool]] = field(default_factory=list)


def _offsets(text: str) -> list[int]:
    starts = [0]
    for index, char in enumerate(text):
        if char == "\n":
            starts.append(index + 1)
    return starts


def _position(text: str, starts: list[int], line: int, byte_column: int) -> int:
    """The string index of a node position (1-based line, UTF-8 byte column)."""
    start = starts[line - 1]
    end = starts[line] if line < len(starts) else len(text)
    prefix = text[start:end].encode("utf-8")[:byte_column].decode("utf-8", errors="ignore")
    return start + len(prefix)


def fix_sorted(text: str, path: Path, wanted: Iterable[Wanted], project: Project, unsafe: bool) -> SortedFix:
    """``text`` with ``sorted(...)`` around the iterable of each wanted finding that has the fix
    (when ``unsafe``), and the findings left in place with the reason."""
    from lockorder_lint.engine import units_in
    from lockorder_lint.rules.unordered_key_iteration import find_unsorted

    pending = list(wanted)
    result = SortedFix(text)
    if not pending:
        return result
    source = Source(str(path), text, parse_ast(text, str(path)))
    edits: list[tuple[int, int]] = []
    for unit in units_in(source, path, project):
        for found in find_unsorted(unit):
            iterable = " ".join(ast.unparse(found.loop.iter).split())
            match = next((w for w in pending if w.function == unit.qualname and w.iterable == iterable), None)
            if match is None:
                continue
            pending.remove(match)
            if not found.fixable:
                result.left.append((match, NOT_THE_KEY, False))
                continue
            if not unsafe:
                result.left.append((match, MAY_NOT_COMPARE, True))
                continue
            node = found.loop.iter
            starts = _offsets(text)
            begin = _position(text, starts, node.lineno, node.col_offset)
            end = _position(text, starts, node.end_lineno or node.lineno, node.end_col_offset or 0)
            edits.append((begin, end))
    for match in pending:
        result.left.append((match, "the analysis found no loop behind it to fix", False))
    new = text
    for begin, end in sorted(set(edits), reverse=True):
        new = f"{new[:begin]}sorted({new[begin:end]}){new[end:]}"
    result.text = new
    result.applied = len(set(edits))
    return result
