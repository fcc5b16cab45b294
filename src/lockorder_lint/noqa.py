"""``# noqa`` comments, read the way flake8 reads them, and the ones that suppress nothing."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

NOQA = re.compile(r"#\s*noqa(?::[\s]?(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?", re.IGNORECASE)
NOQA_BYTES = re.compile(NOQA.pattern.encode("ascii"), re.IGNORECASE)
OWN_PREFIX = "LCK"


def noqa_codes(line: str) -> frozenset[str] | None:
    """``None``: no noqa. Empty set: a bare ``# noqa`` (suppresses everything). Else the codes."""
    match = NOQA.search(line)
    if match is None:
        return None
    codes = match.group("codes")
    if not codes:
        return frozenset()
    return frozenset(c.upper() for c in re.split(r"[,\s]+", codes) if c)


def suppressed(line: str, code: str) -> bool:
    codes = noqa_codes(line)
    return codes is not None and (not codes or code in codes)


@dataclass(frozen=True, order=True)
class UnusedNoqa:
    """A ``# noqa: LCKnnn`` whose codes matched no finding on its line (1-based position)."""

    path: str
    line: int
    column: int
    codes: tuple[str, ...]

    def render(self) -> str:
        codes = ", ".join(self.codes)
        return f"{self.path}:{self.line}:{self.column}: unused noqa: {codes} suppresses nothing here"


def own_noqa_comments(text: str) -> dict[int, tuple[int, frozenset[str]]]:
    """Lines holding a ``# noqa`` that names LCK codes: line -> (1-based column, those codes).

    A bare ``# noqa`` is left alone: it may be there for another tool, and we cannot tell."""
    found: dict[int, tuple[int, frozenset[str]]] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        match = NOQA.search(line)
        if match is None:
            continue
        codes = noqa_codes(line) or frozenset()
        own = frozenset(c for c in codes if c.startswith(OWN_PREFIX))
        if own:
            found[lineno] = (match.start() + 1, own)
    return found


def without_noqa(data: bytes) -> bytes:
    """The source with every noqa comment blanked to spaces: same lines, same columns."""
    return NOQA_BYTES.sub(lambda m: b" " * len(m.group(0)), data)


def unused_noqa(
    display: str, data: bytes, text: str, check_unsuppressed: Callable[[bytes], Iterable[tuple[int, str]]]
) -> list[UnusedNoqa]:
    """Which LCK codes in noqa comments suppress nothing.

    ``check_unsuppressed`` runs the checker over the given bytes and yields (line, code) of its
    findings; it is called on the source with noqa comments blanked, so that we see what each
    comment would have suppressed. Files without an LCK noqa are not re-checked."""
    comments = own_noqa_comments(text)
    if not comments:
        return []
    would_report: dict[int, set[str]] = {}
    for line, code in check_unsuppressed(without_noqa(data)):
        would_report.setdefault(line, set()).add(code)
    unused = []
    for line, (column, codes) in sorted(comments.items()):
        idle = sorted(codes - would_report.get(line, set()))
        if idle:
            unused.append(UnusedNoqa(display, line, column, tuple(idle)))
    return unused
