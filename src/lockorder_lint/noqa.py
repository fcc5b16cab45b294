"""``# noqa`` comments, read exactly the way flake8 reads them, and the ones that suppress nothing.

flake8's meaning is the one meaning everywhere: ``# noqa`` alone suppresses every code on its
line; ``# noqa: CODES`` suppresses the codes listed and every code they are a prefix of
(``# noqa: LCK00`` covers LCK001 to LCK009); codes are case-sensitive (``# noqa: lck001``
suppresses nothing, though it is no bare ``# noqa`` either)."""

from __future__ import annotations

import codecs
import io
import re
import tokenize
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

# As flake8 matches it: "noqa" in any case, at most one blank after the colon, codes separated by
# commas or blanks. A code list that does not match this (two blanks after the colon, codes without
# digits) leaves the comment a bare one, which suppresses everything.
NOQA = re.compile(r"#\s*noqa(?::[\s]?(?P<codes>(?:[A-Z]+[0-9]+(?:[,\s]+)?)+))?", re.IGNORECASE)
OWN_PREFIX = "LCK"


def noqa_codes(line: str) -> frozenset[str] | None:
    """``None``: no noqa. Empty set: a bare ``# noqa`` (suppresses everything). Else the codes,
    as written (flake8 compares them case-sensitively)."""
    match = NOQA.search(line)
    if match is None:
        return None
    codes = match.group("codes")
    if not codes:
        return frozenset()
    return frozenset(c for c in re.split(r"[,\s]+", codes) if c)


def covers(noqa_code: str, code: str) -> bool:
    """Whether ``# noqa: noqa_code`` suppresses ``code``: the same code, or a prefix of it."""
    return code.startswith(noqa_code)


def suppressed(line: str, code: str) -> bool:
    codes = noqa_codes(line)
    return codes is not None and (not codes or any(covers(c, code) for c in codes))


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


def _comments(readline: Callable[[], str]) -> Iterator[tokenize.TokenInfo]:
    """The real comments of a source (never text inside a string that looks like one); nothing
    when the source does not tokenize (the check reports that file's error)."""
    try:
        for token in tokenize.generate_tokens(readline):
            if token.type == tokenize.COMMENT:
                yield token
    except (tokenize.TokenError, SyntaxError):
        return


def own_noqa_comments(text: str) -> dict[int, tuple[int, frozenset[str]]]:
    """Lines holding a ``# noqa`` comment that names LCK codes: line -> (1-based column, those codes).

    A bare ``# noqa`` is left alone: it may be there for another tool, and we cannot tell."""
    found: dict[int, tuple[int, frozenset[str]]] = {}
    for token in _comments(io.StringIO(text).readline):
        match = NOQA.search(token.string)
        if match is None:
            continue
        codes = noqa_codes(token.string) or frozenset()
        own = frozenset(c for c in codes if c.startswith(OWN_PREFIX))
        if own:
            line, column = token.start
            found[line] = (column + match.start() + 1, own)
    return found


def without_noqa(data: bytes) -> bytes:
    """The source with every noqa comment blanked to spaces: same lines, same columns. Only real
    comments are blanked, so string literals keep their text."""
    lines = io.BytesIO(data).readlines()  # split as tokenize splits: on \n only
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        text_lines = [line.decode(encoding) for line in lines]
    except (SyntaxError, UnicodeDecodeError, LookupError):
        return data
    codec = "utf-8" if encoding == "utf-8-sig" else encoding
    for token in _comments(iter([*text_lines, ""]).__next__):
        match = NOQA.search(token.string)
        if match is None:
            continue
        row, column = token.start
        line, text = lines[row - 1], text_lines[row - 1]
        bom = len(codecs.BOM_UTF8) if row == 1 and line.startswith(codecs.BOM_UTF8) else 0
        start = bom + len(text[: column + match.start()].encode(codec))
        end = bom + len(text[: column + match.end()].encode(codec))
        lines[row - 1] = line[:start] + b" " * (end - start) + line[end:]
    return b"".join(lines)


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
        reported = would_report.get(line, set())
        idle = sorted(c for c in codes if not any(covers(c, code) for code in reported))
        if idle:
            unused.append(UnusedNoqa(display, line, column, tuple(idle)))
    return unused
