"""The order LCK005 gives the writes of one flush, and what flushes the session."""

from __future__ import annotations

import ast

from lockorder_lint.flushes import Flush, flush_point, in_flush_order


def test_a_flush_sends_parents_first_then_by_class_name() -> None:
    child = Flush(1, "alpha", "app.models.Alpha", parents=("beta",))
    parent = Flush(1, "beta", "app.models.Beta")
    unrelated = Flush(1, "aardvark", "app.models.Aardvark")
    later = Flush(2, "alpha", "app.models.Alpha", parents=("beta",))
    written = ["alpha", "beta", "aardvark", "alpha again"]
    ordered = in_flush_order(written, [child, parent, unrelated, later], [1, 1, 1, 2])
    # by class name Aardvark < Alpha < Beta, but Alpha's rows reference Beta's through a relationship
    assert ordered == [("aardvark", True), ("beta", True), ("alpha", False), ("alpha again", False)]


def test_steps_outside_a_flush_keep_their_place() -> None:
    one = Flush(1, "b", "m.B")
    assert in_flush_order(["x", "b", "y"], [None, one, None], [None, 1, None]) == [
        ("x", False),
        ("b", False),
        ("y", False),
    ]


def call(source: str) -> ast.Call:
    node = ast.parse(source, mode="eval").body
    assert isinstance(node, ast.Call)
    return node


def test_what_flushes_the_session() -> None:
    assert flush_point(call("session.flush()"), True, autoflush=False)
    assert flush_point(call("session.execute(stmt)"), True, autoflush=True)
    assert flush_point(call("session.merge(row)"), True, autoflush=True)
    assert not flush_point(call("session.merge(row, load=False)"), True, autoflush=True)  # no load
    assert not flush_point(call("session.execute(stmt)"), True, autoflush=False)
    assert not flush_point(call("session.add(row)"), True, autoflush=True)
    assert not flush_point(call("cache.get(key)"), False, autoflush=True)  # not a session
