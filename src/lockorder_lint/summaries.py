"""Whole-program reach: calls into the project's own functions, followed across files.

(Filled in by the cross-function work; the evaluator asks a :class:`Program` what a call into
the project returns and which models a ``self.model``-style attribute may hold.)
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lockorder_lint.builders import Evaluator, ModelRef, Value
    from lockorder_lint.statements import Predicate


class Program:
    """The project's functions and classes, indexed by qualified name."""

    def inline(self, ev: Evaluator, call: ast.Call) -> tuple[Value, ...] | None:
        return None

    def condition(self, ev: Evaluator, call: ast.Call) -> tuple[list[Predicate], bool] | None:
        return None

    def attribute_models(self, ev: Evaluator, node: ast.Attribute) -> list[ModelRef]:
        return []
