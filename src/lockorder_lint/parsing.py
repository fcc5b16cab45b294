"""Read Python source the way the interpreter does, without the interpreter's chatter."""

from __future__ import annotations

import ast
import io
import tokenize
import warnings


def decode(data: bytes) -> str:
    """Decode source bytes by their PEP 263 cookie or BOM, defaulting to UTF-8."""
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    return data.decode(encoding)


def parse_ast(data: bytes | str, filename: str) -> ast.Module:
    """``ast.parse`` with compile-time SyntaxWarnings silenced: they concern the checked code's
    authors, and would otherwise be printed into the checker's output."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(data, filename=filename)
