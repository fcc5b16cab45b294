"""Read Python source the way the interpreter does, without the interpreter's chatter.

Every file is read into one :class:`Source`: its text, its lines split exactly where Python's
tokenizer splits them (``\\n``, ``\\r\\n`` and a lone ``\\r``; not form feeds or ``\\u2028``, which
``str.splitlines`` would also split on), and its ``ast``. Syntax newer than the running
interpreter (PEP 701 f-strings from 3.12, PEP 695 type parameters) is read with libcst and
handed to ``ast`` with those constructs blanked out, keeping every other line and column.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
import warnings
from dataclasses import dataclass, field

LINE_BREAK = re.compile(r"\r\n|\r|\n")
LINE_BREAK_BYTES = re.compile(rb"\r\n|\r|\n")


class SourceError(Exception):
    """A file that cannot be read as Python; ``line`` is 0 when the whole file is at fault."""

    def __init__(self, reason: str, line: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line


def decode(data: bytes) -> str:
    """Decode source bytes by their PEP 263 cookie or BOM, defaulting to UTF-8."""
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    text = data.decode(encoding)
    return text[1:] if text.startswith("\ufeff") else text


def split_lines(text: str) -> list[str]:
    """The source's lines without their line breaks, numbered as ``ast`` numbers them."""
    return LINE_BREAK.split(text)


def source_lines(data: bytes) -> list[str]:
    """A file's lines as its :class:`Source` holds them, without parsing it; [] when it cannot
    be decoded."""
    try:
        return split_lines(decode_check(data))
    except SourceError:
        return []


def parse_ast(data: bytes | str, filename: str) -> ast.Module:
    """``ast.parse`` with compile-time SyntaxWarnings silenced: they concern the checked code's
    authors, and would otherwise be printed into the checker's output."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(data, filename=filename)


@dataclass
class Source:
    """One file's text, lines and syntax tree; ``newer_syntax`` when libcst had to read it."""

    display: str
    text: str
    tree: ast.Module
    newer_syntax: bool = False
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.lines:
            self.lines = split_lines(self.text)

    def line(self, number: int) -> str:
        return self.lines[number - 1] if 0 < number <= len(self.lines) else ""

    def column(self, line: int, byte_offset: int) -> int:
        """The 1-based character column of ``ast``'s UTF-8 byte offset on ``line``."""
        text = self.line(line)
        if text.isascii():
            return byte_offset + 1
        return len(text.encode("utf-8")[:byte_offset].decode("utf-8", errors="ignore")) + 1

    def span(self, start: ast.AST, end: ast.AST | None = None) -> tuple[int, int, int, int]:
        """(line, column, end line, end column) from the start of ``start`` to the end of ``end``."""
        last = end if end is not None else start
        line, col = getattr(start, "lineno", 1), getattr(start, "col_offset", 0)
        end_line = getattr(last, "end_lineno", None) or line
        end_col = getattr(last, "end_col_offset", None)
        return (
            line,
            self.column(line, col),
            end_line,
            self.column(end_line, end_col) if end_col is not None else self.column(line, col),
        )

    def segment(self, node: ast.AST) -> str:
        """The node's source text, whitespace-normalised (comments inside it included)."""
        line, col = getattr(node, "lineno", 0), getattr(node, "col_offset", 0)
        end_line, end_col = getattr(node, "end_lineno", None), getattr(node, "end_col_offset", None)
        if not line or end_line is None or end_col is None:
            return ""
        chunk = [self.line(n).encode("utf-8") for n in range(line, end_line + 1)]
        if len(chunk) == 1:
            chunk[0] = chunk[0][col:end_col]
        else:
            chunk[0], chunk[-1] = chunk[0][col:], chunk[-1][:end_col]
        return " ".join(b" ".join(chunk).decode("utf-8", errors="replace").split())


def decode_check(data: bytes) -> str:
    """The source text, or :class:`SourceError` when the bytes are not Python source text."""
    if b"\x00" in data:
        raise SourceError("cannot parse: not Python source (it contains NUL bytes; binary or UTF-16?)")
    try:
        return decode(data)
    except (UnicodeDecodeError, LookupError, SyntaxError) as exc:
        raise SourceError(f"cannot decode: {exc}") from exc


_RECENT: dict[tuple[str, bytes], Source] = {}
_MAX_RECENT = 4  # files: what one check reads twice (its contention evidence, then its rules)


def parse_source(data: bytes, display: str) -> Source:
    """Decode and parse one file. Raises :class:`SourceError` naming what is wrong. The last few
    files parsed are kept: a pre-commit run reads its changed file for the contention evidence
    and again for the check, and nothing changes a syntax tree once made."""
    key = (display, data)
    known = _RECENT.get(key)
    if known is not None:
        return known
    parsed = _parse_source(data, display)
    if len(_RECENT) >= _MAX_RECENT:
        del _RECENT[next(iter(_RECENT))]
    _RECENT[key] = parsed
    return parsed


def _parse_source(data: bytes, display: str) -> Source:
    text = decode_check(data)
    try:
        return Source(display, text, parse_ast(text, display))
    except SyntaxError as exc:
        first_error = exc
    except (ValueError, MemoryError) as exc:
        raise SourceError(f"cannot parse: {exc}") from exc
    except RecursionError as exc:
        raise SourceError("cannot parse: nested too deeply for Python's parser") from exc
    downgraded = _downgrade(text)
    if downgraded is None:
        raise SourceError(f"cannot parse: {first_error.msg}", first_error.lineno or 0)
    try:
        return Source(display, text, parse_ast(downgraded, display), newer_syntax=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise SourceError(f"cannot parse: {first_error.msg}", first_error.lineno or 0) from None


def _downgrade(text: str) -> str | None:
    """``text`` with the constructs this interpreter's ``ast`` may not read (f-strings, type
    parameters, ``type`` statements) blanked, every other character where it was; None when
    libcst cannot parse it either (the file is plainly wrong)."""
    try:
        import libcst as cst
        from libcst.metadata import MetadataWrapper, PositionProvider
    except ImportError:  # pragma: no cover - libcst is a dependency
        return None
    try:
        wrapper = MetadataWrapper(cst.parse_module(text), unsafe_skip_copy=True)
        positions = wrapper.resolve(PositionProvider)
    except Exception:  # libcst raises its own error types, and more than one
        return None
    blanks: list[tuple[tuple[int, int], tuple[int, int], str]] = []
    for node, where in positions.items():
        start, end = (where.start.line, where.start.column), (where.end.line, where.end.column)
        if isinstance(node, cst.FormattedString):
            blanks.append((start, end, "string"))
        elif isinstance(node, cst.TypeParameters):
            blanks.append((start, end, "space"))
        elif isinstance(node, cst.TypeAlias):
            blanks.append((start, end, "pass"))
    if not blanks:
        return None
    lines = LINE_BREAK.split(text)
    breaks = LINE_BREAK.findall(text)
    # Outermost first, and skip those inside an already blanked range.
    blanks.sort()
    kept: list[tuple[tuple[int, int], tuple[int, int], str]] = []
    for blank in blanks:
        if kept and blank[0] < kept[-1][1]:
            continue
        kept.append(blank)
    for (sl, sc), (el, ec), how in reversed(kept):
        _blank(lines, sl - 1, sc, el - 1, ec, how)
    return "".join(line + (breaks[i] if i < len(breaks) else "") for i, line in enumerate(lines))


def _blank(lines: list[str], sl: int, sc: int, el: int, ec: int, how: str) -> None:
    """Replace lines[sl][sc:] .. lines[el][:ec] by a placeholder of the same shape."""
    width = (ec - sc) if sl == el else len(lines[sl]) - sc
    if how == "string":
        head = '""' if sl == el else '(""'
    elif how == "pass":
        head = "pass"
    else:
        head = ""
    if sl == el:
        lines[sl] = lines[sl][:sc] + head.ljust(width) + lines[sl][ec:]
        return
    lines[sl] = lines[sl][:sc] + head.ljust(width)
    for index in range(sl + 1, el):
        lines[index] = " " * len(lines[index])
    closing = ")" if how == "string" else ""
    lines[el] = (" " * max(0, ec - len(closing))) + closing + lines[el][ec:]
