"""In what order a loop visits its collection, read from the code that built the collection.

Two transactions that lock the same keys one by one deadlock when they visit them in different
orders. A loop's order is a *sorted* key order when the collection went through ``sorted(...)``
(or ``.sort()``); it is *unordered* when it comes from a set (hash order), a dict (insertion
order: whatever order the request listed the keys in) or a list the caller handed in (the
caller's order). Anything else (query results, attributes, calls into other code) is not judged.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

Function = ast.FunctionDef | ast.AsyncFunctionDef
SORTED, UNORDERED, UNKNOWN = "sorted", "unordered", "unknown"
_SET_TYPES = frozenset({"set", "frozenset", "Set", "FrozenSet", "AbstractSet", "MutableSet"})
_DICT_TYPES = frozenset({"dict", "Dict", "Mapping", "MutableMapping", "defaultdict", "Counter"})
_LIST_TYPES = frozenset(
    {"list", "List", "Sequence", "MutableSequence", "Iterable", "Collection", "Iterator", "Generator"}
)
_SET_METHODS = frozenset({"union", "intersection", "difference", "symmetric_difference"})
_DICT_VIEWS = frozenset({"keys", "items", "values"})
_KEEP_ORDER = frozenset({"list", "tuple", "iter", "reversed", "enumerate"})
_MAX_DEPTH = 6


@dataclass(frozen=True)
class Order:
    """What a loop's order is, and, when unordered, why in words (``the set dags_to_queue``)."""

    kind: str
    why: str = ""
    # The loop variable is the key itself when the collection holds keys (``set``, ``dict``
    # keys, ``.items()`` pairs): then ``sorted(collection)`` is a sorted key order.
    sortable: bool = False


@dataclass(frozen=True)
class Loop:
    """A ``for`` statement or one comprehension generator: what it iterates, its variables, and
    the code that runs once per element."""

    node: ast.AST
    target: ast.expr
    iter: ast.expr
    body: tuple[ast.AST, ...]
    comprehension: bool = False

    @property
    def first_line(self) -> int:
        return min(getattr(node, "lineno", 10**9) for node in self.body) if self.body else 0

    @property
    def last_line(self) -> int:
        return max(getattr(node, "end_lineno", 0) or 0 for node in self.body) if self.body else 0

    def holds_line(self, line: int) -> bool:
        return self.first_line <= line <= self.last_line

    def names(self) -> list[str]:
        return [n.id for n in ast.walk(self.target) if isinstance(n, ast.Name)]

    def key_name(self) -> str | None:
        """The variable that holds the key itself: the loop variable, or a pair's first element
        when iterating ``.items()``."""
        if isinstance(self.target, ast.Name):
            return self.target.id
        if isinstance(self.target, ast.Tuple) and self.target.elts and _is_items(self.iter):
            first = self.target.elts[0]
            return first.id if isinstance(first, ast.Name) else None
        return None


def _is_items(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "items"
        and not node.args
    )


def own_nodes(function: Function) -> Iterator[ast.AST]:
    """Every node of ``function``'s body, not descending into nested functions, lambdas or classes."""
    pending: list[ast.AST] = list(function.body)
    while pending:
        node = pending.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                pending.append(child)


def loops_in(function: Function) -> list[Loop]:
    """The loops of ``function`` itself, in source order."""
    found: list[Loop] = []
    for node in own_nodes(function):
        if isinstance(node, (ast.For, ast.AsyncFor)):
            found.append(Loop(node, node.target, node.iter, tuple(node.body)))
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            element = (node.key, node.value) if isinstance(node, ast.DictComp) else (node.elt,)
            for generator in node.generators:
                body = (*element, *generator.ifs)
                found.append(Loop(node, generator.target, generator.iter, body, comprehension=True))
    found.sort(key=lambda loop: (getattr(loop.node, "lineno", 0), getattr(loop.node, "col_offset", 0)))
    return found


def _annotation_name(annotation: ast.AST | None) -> str:
    """``set`` for ``set[str]``, ``typing.Set[str]``, ``Optional[set[str]]``, ``set[str] | None``."""
    if annotation is None:
        return ""
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        try:
            annotation = ast.parse(annotation.value, mode="eval").body
        except SyntaxError:
            return ""
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        left = _annotation_name(annotation.left)
        return left if left != "None" else _annotation_name(annotation.right)
    if isinstance(annotation, ast.Subscript):
        head = _annotation_name(annotation.value)
        if head == "Optional":
            return _annotation_name(annotation.slice)
        return head
    if isinstance(annotation, ast.Attribute):
        return annotation.attr
    if isinstance(annotation, ast.Name):
        return annotation.id
    if isinstance(annotation, ast.Constant) and annotation.value is None:
        return "None"
    return ""


class OrderReader:
    """Reads the order of collections in one function."""

    def __init__(self, function: Function) -> None:
        self.function = function
        args = function.args
        self.parameters: dict[str, ast.arg] = {
            a.arg: a for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)
        }
        self.assignments: dict[str, list[tuple[int, ast.AST | None]]] = {}
        self.sorted_in_place: dict[str, list[int]] = {}
        for node in own_nodes(function):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    self._assigned(target, node.value, node.lineno)
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
                value = node.value if isinstance(node, ast.AnnAssign) else None
                if value is not None or isinstance(node, ast.AugAssign):
                    self._assigned(node.target, value, node.lineno)
            elif isinstance(node, ast.NamedExpr):
                self._assigned(node.target, node.value, node.lineno)
            elif isinstance(node, (ast.For, ast.AsyncFor, ast.With, ast.AsyncWith)):
                targets = (
                    [node.target]
                    if isinstance(node, (ast.For, ast.AsyncFor))
                    else [item.optional_vars for item in node.items if item.optional_vars is not None]
                )
                for target in targets:
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name):
                            self.assignments.setdefault(name.id, []).append((node.lineno, None))
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "sort"
                and isinstance(node.func.value, ast.Name)
            ):
                self.sorted_in_place.setdefault(node.func.value.id, []).append(node.lineno)
        for entries in self.assignments.values():
            entries.sort(key=lambda entry: entry[0])

    def _assigned(self, target: ast.AST, value: ast.AST | None, line: int) -> None:
        if isinstance(target, ast.Name):
            self.assignments.setdefault(target.id, []).append((line, value))
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._assigned(element, None, line)
        elif isinstance(target, ast.Starred):
            self._assigned(target.value, None, line)

    def order(self, node: ast.AST, line: int, depth: int = 0) -> Order:
        """The order in which iterating ``node`` (evaluated at ``line``) visits its elements."""
        if depth > _MAX_DEPTH:
            return Order(UNKNOWN)
        if isinstance(node, ast.Call):
            return self._call_order(node, line, depth)
        if isinstance(node, ast.Set):
            return Order(UNORDERED, "a set", sortable=True) if len(node.elts) > 1 else Order(UNKNOWN)
        if isinstance(node, ast.SetComp):
            return Order(UNORDERED, "a set", sortable=True)
        if isinstance(node, ast.Dict):
            return Order(UNORDERED, "a dict", sortable=True) if len(node.keys) > 1 else Order(UNKNOWN)
        if isinstance(node, ast.DictComp):
            inner = self.order(node.generators[0].iter, line, depth + 1)
            return inner if inner.kind != UNORDERED else Order(UNORDERED, inner.why, sortable=True)
        if isinstance(node, (ast.ListComp, ast.GeneratorExp)):
            inner = self.order(node.generators[0].iter, line, depth + 1)
            return Order(inner.kind, inner.why, sortable=False)
        if isinstance(node, ast.Name):
            return self._name_order(node.id, line, depth)
        return Order(UNKNOWN)

    def _call_order(self, node: ast.Call, line: int, depth: int) -> Order:
        func = node.func
        if isinstance(func, ast.Name):
            if func.id == "sorted":
                return Order(SORTED)
            if func.id in ("set", "frozenset"):
                return Order(UNORDERED, "a set", sortable=True) if node.args else Order(UNKNOWN)
            if func.id in ("dict", "defaultdict", "Counter"):
                return (
                    Order(UNORDERED, "a dict", sortable=True)
                    if node.args or node.keywords
                    else Order(UNKNOWN)
                )
            if func.id in _KEEP_ORDER and node.args:
                inner = self.order(node.args[0], line, depth + 1)
                # ``enumerate`` pairs and ``reversed`` keep the order but not the key as the element
                keeps_key = func.id in ("list", "tuple", "iter")
                return Order(inner.kind, inner.why, inner.sortable and keeps_key)
            if func.id == "zip" and node.args:
                inner = self.order(node.args[0], line, depth + 1)
                return Order(inner.kind, inner.why, False)
            return Order(UNKNOWN)
        if isinstance(func, ast.Attribute):
            if func.attr in _DICT_VIEWS and not node.args and not node.keywords:
                receiver = self.order(func.value, line, depth + 1)
                if receiver.kind == SORTED:
                    return receiver  # a dict built from sorted items keeps that order
                if receiver.kind == UNKNOWN and not self._known_dict(func.value, line):
                    return Order(UNKNOWN)
                what = _text(func.value)
                return Order(UNORDERED, f"dict {what}.{func.attr}()", sortable=func.attr != "values")
            if func.attr in _SET_METHODS and node.args:
                return Order(UNORDERED, f"the set {_text(node)}", sortable=True)
            if func.attr == "copy" and not node.args:
                return self.order(func.value, line, depth + 1)
        return Order(UNKNOWN)

    def _known_dict(self, node: ast.AST, line: int) -> bool:
        """``.items()`` on something that is not known to be a dict: a dict-like mapping attribute
        (``trace_info.tags``, ``resource.attributes``) is one, in its producer's order."""
        return isinstance(node, (ast.Name, ast.Attribute, ast.Subscript, ast.Call))

    def _name_order(self, name: str, line: int, depth: int) -> Order:
        if any(sorted_line <= line for sorted_line in self.sorted_in_place.get(name, ())):
            return Order(SORTED)
        earlier = [entry for entry in self.assignments.get(name, ()) if entry[0] <= line]
        if earlier:
            _line, value = earlier[-1]
            if value is None:
                return Order(UNKNOWN)
            found = self.order(value, line, depth + 1)
            if found.kind == UNORDERED and found.why in ("a set", "a dict"):
                return Order(UNORDERED, f"the {found.why[2:]} {name}", found.sortable)
            return found
        parameter = self.parameters.get(name)
        if parameter is None:
            return Order(UNKNOWN)
        kind = _annotation_name(parameter.annotation)
        if kind in _SET_TYPES:
            return Order(UNORDERED, f"the set {name}", sortable=True)
        if kind in _DICT_TYPES:
            return Order(UNORDERED, f"the dict {name}", sortable=True)
        if kind in _LIST_TYPES:
            return Order(UNORDERED, f"the caller's list {name}", sortable=True)
        return Order(UNKNOWN)


def _text(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except (ValueError, RecursionError):  # pragma: no cover - unparse of a parsed tree
        return "the collection"


def tainted_names(loop: Loop) -> set[str]:
    """The loop's variables and every name the loop body computes from them."""
    names = set(loop.names())
    assignments: list[tuple[list[str], ast.AST]] = []
    for part in loop.body:
        for node in ast.walk(part):
            if isinstance(node, ast.Assign):
                targets = [n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)]
                assignments.append((targets, node.value))
            elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
                assignments.append(
                    ([n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)], node.value)
                )
            elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
                targets = [n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)]
                assignments.append((targets, node.iter))
    changed = True
    while changed:
        changed = False
        for targets, value in assignments:
            if set(targets) <= names:
                continue
            if references(value, names):
                names.update(targets)
                changed = True
    return names


def references(node: ast.AST | None, names: set[str]) -> bool:
    return node is not None and any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node))


def uses_bare(node: ast.AST | None, name: str) -> bool:
    """``name`` itself appears in ``node``, not only attributes of it (``key``, not ``dag.dag_id``)."""
    if node is None:
        return False
    parents: dict[int, ast.AST] = {}
    for parent in ast.walk(node):
        for child in ast.iter_child_nodes(parent):
            parents[id(child)] = parent
    for found in ast.walk(node):
        if isinstance(found, ast.Name) and found.id == name:
            holder = parents.get(id(found))
            if not (isinstance(holder, (ast.Attribute, ast.Subscript)) and holder.value is found):
                return True
    return False


_NEW_TRANSACTION = ("session", "begin", "connect", "transaction", "atomic")


def transaction_per_iteration(loop: Loop) -> bool:
    """The loop body commits, or opens its own session or transaction: each element is written
    in a transaction of its own, which holds one key's locks at a time."""
    for part in loop.body:
        for node in ast.walk(part):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "commit"
            ):
                return True
            if isinstance(node, (ast.With, ast.AsyncWith)):
                for item in node.items:
                    call = item.context_expr
                    if not isinstance(call, ast.Call):
                        continue
                    func = call.func
                    name = (
                        func.attr
                        if isinstance(func, ast.Attribute)
                        else func.id
                        if isinstance(func, ast.Name)
                        else ""
                    )
                    lowered = name.lower()
                    if lowered == "begin_nested":
                        continue  # a savepoint: still the same transaction
                    if any(word in lowered for word in _NEW_TRANSACTION):
                        return True
    return False
