"""Every node under a function, listed once.

Several rules and analyses walk the same function (whether it loops, inserts, locks, which
nested functions it defines, which calls a caller makes), and a walk of a large function costs
about as much as parsing it. ``walk`` lists a function's nodes on first use and hands out that
list afterwards, in ``ast.walk``'s order. Other nodes are walked as ``ast.walk`` walks them.

The lists hold their functions, so ``forget`` drops them all when a file's check is over.
"""

from __future__ import annotations

import ast

_LISTED: dict[int, tuple[ast.AST, tuple[ast.AST, ...]]] = {}
_MAX_LISTED = 20_000  # functions; past this the lists are dropped and made again on demand


def walk(node: ast.AST) -> tuple[ast.AST, ...] | list[ast.AST]:
    """``list(ast.walk(node))``, made once per function."""
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return list(ast.walk(node))
    known = _LISTED.get(id(node))
    if known is not None and known[0] is node:  # the entry holds the node: its id is not reused
        return known[1]
    if len(_LISTED) >= _MAX_LISTED:
        _LISTED.clear()
    nodes = tuple(ast.walk(node))
    _LISTED[id(node)] = (node, nodes)
    return nodes


def forget() -> None:
    """Drop every list (a file's check is over: its trees may go)."""
    _LISTED.clear()
