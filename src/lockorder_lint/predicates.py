"""WHERE clauses: which columns a statement reaches its rows through, and how.

Only top-level conjuncts can pin rows (``and_(...)``, ``&``, several ``where()`` arguments); a
disjunction or any other expression reaches rows through every column it mentions. Equality to
a value pins a column; equality to another FROM source's column is a join; ``IN`` a subquery
reaches rows through that subquery's own WHERE clause, unless the subquery locks its rows in key
order itself (the fix's first step written as a CTE).
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from lockorder_lint.statements import EQ, IN, JOIN, NOT, OTHER, SUB, Predicate, Statement

if TYPE_CHECKING:
    from lockorder_lint.builders import Evaluator, Value

# Column methods whose result is a condition on that column, by what they do to its rows.
_PINNING_METHODS = {"in_": IN, "is_": OTHER, "isnot": OTHER, "is_not": OTHER}


Condition = tuple["Evaluator", ast.AST]


def condition_nodes(ev: Evaluator, call: ast.Call) -> list[Condition | None]:
    """The condition expressions of a ``where``/``filter`` call, each with the evaluator whose
    names it uses; ``None`` marks one we cannot see."""
    values: list[Condition | None] = []
    for arg in call.args:
        if isinstance(arg, ast.Starred):
            values.extend(ev.listed(arg.value))
        else:
            values.append((ev, arg))
    return values


def add_where(ev: Evaluator, state: Statement, values: Sequence[Condition | ast.AST | None]) -> Statement:
    preds = list(state.predicates)
    opaque = state.opaque_where
    for value in values:
        if value is None:
            opaque = True
            continue
        owner, node = value if isinstance(value, tuple) else (ev, value)
        if conjuncts(owner, node, preds):
            opaque = True
    return replace(state, predicates=tuple(preds), opaque_where=opaque)


def conjuncts(ev: Evaluator, node: ast.AST, preds: list[Predicate]) -> bool:
    """Add the predicates of one top-level condition; True if part of it cannot be read."""
    bound = ev.bound_expression(node)
    if bound is not None:
        return conjuncts(bound[0], bound[1], preds)
    if isinstance(node, ast.Call) and ev.sa_call(node, "and_"):
        opaque = False
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                for item in ev.listed(arg.value):
                    opaque |= True if item is None else conjuncts(item[0], item[1], preds)
            else:
                opaque |= conjuncts(ev, arg, preds)
        return opaque
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitAnd):
        return conjuncts(ev, node.left, preds) | conjuncts(ev, node.right, preds)
    if (isinstance(node, ast.Call) and ev.sa_call(node, "or_")) or (
        isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr)
    ):
        return _disjunction(ev, node, preds)
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        found = _comparison(ev, node, preds)
        if found is not None:
            return found
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "in_":
        found = _membership(ev, node, preds)
        if found is not None:
            return found
    if isinstance(node, ast.Call):
        helper = ev.condition_from_call(node)
        if helper is not None:
            preds.extend(helper[0])
            return helper[1]
    if ev.sa_call(node, "text", "literal_column"):
        return True
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and ev.models(node.func.value):
        ev.consume(ev.eval(node))
        return True  # a method of the model class (a condition helper) we could not follow
    found_columns = ev.columns_in(node)
    ev.consume(ev.eval(node))
    if not found_columns:
        return True
    op, form = condition_form(ev, node)
    if form.startswith(("EXISTS", "NOT EXISTS")):  # the subquery's own columns are not the reach
        inner = found_columns[0][0]
        form = f"correlated in {form} on {inner}"
        for table, column in found_columns:
            correlated = table != inner
            how = (op, form) if correlated else (OTHER, "")
            preds.append(Predicate(table, column, how[0], via=how[1]))
        return False
    preds.extend(Predicate(t, c, op, via=form) for t, c in found_columns)
    return False


# Column methods and comparison operators that constrain a column without pinning it, by the
# form a message names them with; the NOT forms no index can seek.
_METHOD_FORMS = {
    "not_in": (NOT, "NOT IN"),
    "notin_": (NOT, "NOT IN"),
    "is_not": (NOT, "IS NOT"),
    "isnot": (NOT, "IS NOT"),
    "is_distinct_from": (NOT, "IS DISTINCT FROM"),
    "isnot_distinct_from": (OTHER, "IS NOT DISTINCT FROM"),
    "is_": (OTHER, "IS"),
    "like": (OTHER, "LIKE"),
    "ilike": (OTHER, "ILIKE"),
    "startswith": (OTHER, "LIKE"),
    "endswith": (NOT, "LIKE '%…'"),
    "contains": (NOT, "LIKE '%…%'"),
    "not_like": (NOT, "NOT LIKE"),
    "notlike": (NOT, "NOT LIKE"),
    "not_ilike": (NOT, "NOT ILIKE"),
    "notilike": (NOT, "NOT ILIKE"),
    "between": (OTHER, "in a range"),
    "any": (OTHER, "EXISTS"),
    "has": (OTHER, "EXISTS"),
    "in_": (OTHER, "IN"),
}
_COMPARE_FORMS: dict[type[ast.cmpop], tuple[str, str]] = {
    ast.NotEq: (NOT, "!="),
    ast.Lt: (OTHER, "in a range"),
    ast.LtE: (OTHER, "in a range"),
    ast.Gt: (OTHER, "in a range"),
    ast.GtE: (OTHER, "in a range"),
    ast.Is: (OTHER, "IS"),
    ast.IsNot: (NOT, "IS NOT"),
}
_NEGATED = {
    "IN": (NOT, "NOT IN"),
    "EXISTS": (NOT, "NOT EXISTS"),
    "LIKE": (NOT, "NOT LIKE"),
    "IS": (NOT, "IS NOT"),
    "in a range": (NOT, "outside a range"),
    "": (NOT, "in a negated condition"),
}


def condition_form(ev: Evaluator, node: ast.AST) -> tuple[str, str]:
    """How a condition that does not pin its columns constrains them: the op (``not`` when no
    index can seek it) and the form a message names (``NOT IN``, ``in a range``, ``EXISTS``)."""
    negated: ast.AST | None = None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Invert, ast.Not)):
        negated = node.operand
    elif isinstance(node, ast.Call) and len(node.args) == 1 and ev.sa_call(node, "not_"):
        negated = node.args[0]
    if negated is not None:
        if isinstance(negated, ast.Compare) and len(negated.ops) == 1 and isinstance(negated.ops[0], ast.Eq):
            return NOT, "!="
        _, form = condition_form(ev, negated)
        return _NEGATED.get(form, (NOT, f"NOT ({form})"))
    if isinstance(node, ast.Call):
        method = node.func.attr if isinstance(node.func, ast.Attribute) else ""
        if ev.sa_call(node, "exists") or method == "exists":
            return OTHER, "EXISTS"
        if isinstance(node.func, ast.Attribute) and node.func.attr in _METHOD_FORMS:
            return _METHOD_FORMS[node.func.attr]
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        return _COMPARE_FORMS.get(type(node.ops[0]), (OTHER, ""))
    return OTHER, ""


def _disjuncts(ev: Evaluator, node: ast.AST) -> list[Condition | None]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _disjuncts(ev, node.left) + _disjuncts(ev, node.right)
    if isinstance(node, ast.Call) and ev.sa_call(node, "or_"):
        found: list[Condition | None] = []
        for arg in node.args:
            found.extend(ev.listed(arg.value) if isinstance(arg, ast.Starred) else [(ev, arg)])
        return found
    return [(ev, node)]


def _disjunction(ev: Evaluator, node: ast.AST, preds: list[Predicate]) -> bool:
    """``or_(a, b)``: a column is pinned only when every alternative pins it (a disjunction of
    exact keys is a key list); every other column it mentions reaches rows some other way."""
    branches = _disjuncts(ev, node)
    if not branches or any(b is None for b in branches):
        ev.consume(ev.eval(node))
        return True
    pinned: set[tuple[str, str]] | None = None
    held: set[tuple[str, str]] | None = None
    mentioned: list[tuple[str, str]] = []
    opaque = False
    for branch in branches:
        assert branch is not None
        found: list[Predicate] = []
        opaque |= conjuncts(branch[0], branch[1], found)
        here = {(p.table, p.column) for p in found if p.op in (EQ, IN)}
        pinned = here if pinned is None else pinned & here
        here_held = {(p.table, p.column) for p in found if p.op in (EQ, IN) and p.held}
        held = here_held if held is None else held & here_held
        mentioned.extend((p.table, p.column) for p in found if (p.table, p.column) not in mentioned)
    for table, column in mentioned:
        if (table, column) in (pinned or set()):
            preds.append(Predicate(table, column, IN, held=(table, column) in (held or set())))
        else:
            preds.append(Predicate(table, column, OTHER, via="in an OR"))
    return opaque


def _comparison(ev: Evaluator, node: ast.Compare, preds: list[Predicate]) -> bool | None:
    """``col == value`` pins; ``col == other_col`` and ``col == subquery.c.x`` join."""
    if not isinstance(node.ops[0], ast.Eq):
        return None
    left, right = node.left, node.comparators[0]
    left_col, right_col = ev.column_of(left), ev.column_of(right)
    if left_col and right_col:
        preds.append(Predicate(*left_col, JOIN))
        preds.append(Predicate(*right_col, JOIN))
        return False
    if not (left_col or right_col):
        return None
    column = left_col or right_col
    assert column is not None
    other = right if left_col else left
    derived = ev.derived_column(other)
    if derived is not None:
        preds.append(Predicate(*column, JOIN, via=derived))
        return False
    values = ev.eval(other)
    ev.consume(values)
    preds.append(Predicate(*column, EQ, held=_held(values, column[0])))
    return False


def _membership(ev: Evaluator, node: ast.Call, preds: list[Predicate]) -> bool | None:
    """``col.in_(values)`` and ``tuple_(a, b).in_(values)``; ``IN (subquery)`` reaches rows
    through the subquery unless the subquery locks them in key order."""
    assert isinstance(node.func, ast.Attribute)
    subject = node.func.value
    columns: list[tuple[str, str]] = []
    if ev.sa_call(subject, "tuple_"):
        assert isinstance(subject, ast.Call)
        for arg in subject.args:
            items = ev.listed(arg.value) if isinstance(arg, ast.Starred) else [(ev, arg)]
            for item in items:
                found = item[0].column_of(item[1]) if item is not None else None
                if found:
                    columns.append(found)
    else:
        column = ev.column_of(subject)
        columns = [column] if column else []
    if not columns:
        return None
    inner: list[Statement] = []
    values: list[Value] = []
    for arg in node.args:
        values.extend(ev.eval(arg))
    inner = [v for v in values if isinstance(v, Statement)]
    if not inner:
        preds.extend(Predicate(*c, IN, held=_held(values, c[0])) for c in columns)
        return False
    ev.consume(inner)
    ordered = all(_locked_in_order(s, ev.mysql) for s in inner)
    via = ", ".join(dict.fromkeys(_subquery_reach(s) for s in inner))
    preds.extend(Predicate(*c, IN if ordered else SUB, via=via) for c in columns)
    return False


def _held(values: Sequence[Value], table: str) -> bool:
    """The compared values are keys of rows of ``table`` this transaction holds locked."""
    from lockorder_lint.builders import Rows

    return bool(values) and all(isinstance(v, Rows) and v.table == table for v in values)


def _locked_in_order(statement: Statement, mysql: bool) -> bool:
    """A subquery (or what it selects from) that pins or locks its own rows in key order."""
    current: Statement | None = statement
    while current is not None:
        if current.locks_in_key_order(mysql) or (current.lock is None and current.pins_primary_key()):
            return True
        current = current.source
    return False


def _subquery_reach(statement: Statement) -> str:
    origin = statement.source or statement
    columns = origin.columns_on_target()
    table = origin.table_name or "a subquery"
    return f"{table} ({', '.join(columns)})" if columns else table
