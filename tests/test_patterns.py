"""``literal_first``: a trigger pattern rewritten so that ``re`` can skip ahead, matching exactly
what the pattern as written matches."""

from __future__ import annotations

import re

import pytest

from lockorder_lint.engine import literal_first
from lockorder_lint.rules import ALL_RULES
from lockorder_lint.transactions import LOCK_TRIGGER

TEXTS = [
    b"",
    b"u",
    b"update(",
    b"xupdate(",
    b"_update(",
    b"a.update(x)\nsession.delete(row)",
    b"\nupdate(",
    b"for_update upsert on_conflict .add( .add_all(",
    b"\xe9update( insert( Xinsert( 9delete(",
    b"foo( xfoo( bar baz x",
    b"UPDATE task SET x = 1; Update t as a set y; xUPDATE t DELETE FROM t delete  from t",
    b"FOR UPDATE for no key update For Key Share LOCK IN SHARE MODE xfor update",
    b"except: excepted retry( Retrying( @tenacity.retry @on_exception .merge( _save",
]


@pytest.mark.parametrize(
    "pattern",
    [
        LOCK_TRIGGER,
        LOCK_TRIGGER + rb"|lock_rows\s*\(",
        rb"\bu?pdate|\bfoo\(|[|]\bbar|(\bbaz|x)",
        rb"\bexcept\b|[Rr]etr(?:y|ies|ying)\w*\s*\(",
        *(rule.triggers for rule in ALL_RULES if rule.triggers),
        b"|".join(rule.triggers for rule in ALL_RULES if rule.triggers),
        rb"a|ab|\ba(?:b|c)d|(?i:\bA|b)|[Aa]c",
    ],
)
def test_the_rewritten_pattern_matches_what_the_pattern_matches(pattern: bytes) -> None:
    written = re.compile(literal_first(pattern))
    for text in TEXTS:
        assert [m.span() for m in written.finditer(text)] == [m.span() for m in re.finditer(pattern, text)]


def test_only_a_word_boundary_before_a_plain_word_character_at_the_top_level_is_rewritten() -> None:
    assert literal_first(rb"\bupdate\(|for_update") == rb"u(?<!\wu)pdate\(|for_update"
    assert literal_first(rb"\bu?pdate") == rb"\bu?pdate"  # the letter is optional: kept
    assert literal_first(rb"(\bbaz|x)") == rb"(\bbaz|x)"  # inside a group: kept
    assert literal_first(rb"[|]\bbar") == rb"[|]\bbar"  # ``|`` in a class is no alternative
    assert literal_first(rb"(\bunbalanced") == rb"(\bunbalanced"
    # no alternative of the lock trigger starts with a word boundary once written
    assert not any(part.startswith(rb"\b") for part in literal_first(LOCK_TRIGGER).split(b"|"))


def test_groups_cases_and_classes_at_the_start_are_spelled_out_and_alternatives_grouped() -> None:
    assert literal_first(rb"\b(?:ab|cd)e") == rb"a(?<!\wa)be|c(?<!\wc)de"
    assert literal_first(rb"(?i:\bab)|x") == rb"a(?i:(?<!\wa)b)|A(?i:(?<!\wa)b)|x"
    assert literal_first(rb"[Rr]x|ry") == rb"Rx|r(?:x|y)"
    assert literal_first(rb"a|\d") == rb"a|\d"  # one alternative is not literal-led: no grouping
    assert literal_first(rb"(?:a|b)?c") == rb"(?:a|b)?c"  # an optional group: kept
