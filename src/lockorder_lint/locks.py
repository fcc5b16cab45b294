"""Lock extraction: the row lock a ``with_for_update(...)``, a ``session.get(...,
with_for_update=...)`` or a configured lock helper asks for, with its mode and options."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from lockorder_lint.statements import LockClause, Span

if TYPE_CHECKING:
    from lockorder_lint.builders import Evaluator

# Keyword names under which a lock helper may receive its statement (Airflow's is ``query``).
HELPER_STATEMENT_KEYWORDS = frozenset({"query", "statement", "stmt", "select"})


def truthy(node: ast.AST | None) -> bool:
    """A keyword argument that is plainly on: ``True`` or a non-false literal."""
    if node is None:
        return False
    if isinstance(node, ast.Constant):
        return bool(node.value) or node.value is ...
    return True


def is_lock_helper(qualified: str, helpers: frozenset[str]) -> bool:
    """A configured lock helper, named by its dotted path (or by its bare name when configured so)."""
    if qualified in helpers:
        return True
    short = qualified.rsplit(".", 1)[-1]
    return any("." not in h and h == short for h in helpers)


def helper_statement_argument(call: ast.Call) -> ast.expr | None:
    args = [a for a in call.args if not isinstance(a, ast.Starred)]
    if args:
        return args[0]
    for kw in call.keywords:
        if kw.arg in HELPER_STATEMENT_KEYWORDS:
            return kw.value
    return None


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((kw.value for kw in call.keywords if kw.arg == name), None)


def from_call(ev: Evaluator, call: ast.Call, span: Span, via: str) -> LockClause:
    """``with_for_update(read=..., key_share=..., nowait=..., skip_locked=..., of=...)``."""
    of_node = _keyword(call, "of")
    return LockClause(
        span=span,
        read=truthy(_keyword(call, "read")),
        key_share=truthy(_keyword(call, "key_share")),
        skip_locked=truthy(_keyword(call, "skip_locked")),
        nowait=truthy(_keyword(call, "nowait")),
        of=of_tables(ev, of_node) if of_node is not None else None,
        via=via,
    )


def from_options(ev: Evaluator, node: ast.AST, span: Span, via: str) -> LockClause:
    """``with_for_update=True`` or the dict form ``{"of": M, "skip_locked": True}``."""
    if isinstance(node, ast.Dict):
        options: dict[str, ast.AST] = {}
        for key, value in zip(node.keys, node.values, strict=True):
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                options[key.value] = value
        of_node = options.get("of")
        return LockClause(
            span=span,
            read=truthy(options.get("read")),
            key_share=truthy(options.get("key_share")),
            skip_locked=truthy(options.get("skip_locked")),
            nowait=truthy(options.get("nowait")),
            of=of_tables(ev, of_node) if of_node is not None else None,
            via=via,
        )
    return LockClause(span=span, via=via)


def of_tables(ev: Evaluator, node: ast.AST) -> tuple[str, ...]:
    values = list(node.elts) if isinstance(node, (ast.List, ast.Tuple)) else [node]
    names = []
    for value in values:
        table, _col = ev.entity(value)
        names.append(table.name if table else ev.text(value))
    return tuple(names)
