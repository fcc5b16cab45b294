"""``--fix`` and ``--diff``: insert ``<session>.rollback()`` as the first statement of each except
clause that LCK003 reported, so that the aborted session is usable again before its next use.

The edit is made with libcst on the whole file, so comments and formatting stay as they were.
Only reported findings are fixed (noqa and per-file ignores already removed theirs): the file is
analysed again and each reported use is matched to the handler it came from. A file is written
only when it changed, after its new text parses, and never when it is read-only; see
``write_fixed`` for how symbolic and hard links are kept.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import errno
import io
import os
import tempfile
import tokenize
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from lockorder_lint.engine import Project
from lockorder_lint.findings import FileError, Finding
from lockorder_lint.parsing import Source, parse_ast
from lockorder_lint.session_flow import is_async_session

FIXABLE_CODES = frozenset({"LCK003"})


@dataclass(frozen=True)
class FileFix:
    """One file's text before and after the fix."""

    path: Path
    display: str
    encoding: str
    before: str
    after: str
    handlers: int

    def diff(self) -> str:
        return "".join(
            difflib.unified_diff(
                self.before.splitlines(keepends=True),
                self.after.splitlines(keepends=True),
                fromfile=f"a/{self.display}",
                tofile=f"b/{self.display}",
            )
        )


@dataclass
class FixReport:
    """What a ``--fix`` / ``--diff`` run changed (or would change), and what it could not."""

    files: list[FileFix] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)

    @property
    def handlers(self) -> int:
        return sum(f.handlers for f in self.files)


# Handlers to fix, by the (line, 1-based column) where they start, with each session to roll back.
Plan = dict[tuple[int, int], list[tuple[str, bool]]]


def _rollback(session: str, awaited: bool) -> cst.BaseStatement:
    return cst.parse_statement(f"{'await ' if awaited else ''}{session}.rollback()\n")


class _RollbackInserter(cst.CSTTransformer):
    """Puts ``[await] <session>.rollback()`` first in each planned handler, unless it is there;
    wraps the body of each planned tenacity ``with attempt:`` in ``try`` / ``except Exception:``
    rolling back and re-raising, so that the retry starts on a clean session."""

    def __init__(self, plan: dict[cst.CSTNode, list[tuple[str, bool]]]) -> None:
        super().__init__()
        self.plan = plan
        self.inserted = 0

    def leave_With(self, original_node: cst.With, updated_node: cst.With) -> cst.With:
        wanted = self.plan.get(original_node)
        if not wanted or not isinstance(updated_node.body, cst.IndentedBlock):
            return updated_node
        handler = cst.ExceptHandler(
            type=cst.Name("Exception"),
            body=cst.IndentedBlock(
                body=[*(_rollback(s, a) for s, a in wanted), cst.SimpleStatementLine([cst.Raise()])]
            ),
        )
        guarded = cst.Try(
            body=updated_node.body.with_changes(header=cst.TrailingWhitespace()), handlers=[handler]
        )
        self.inserted += len(wanted)
        return updated_node.with_changes(
            body=cst.IndentedBlock(body=[guarded], header=updated_node.body.header)
        )

    def leave_ExceptHandler(
        self, original_node: cst.ExceptHandler, updated_node: cst.ExceptHandler
    ) -> cst.ExceptHandler:
        wanted = self.plan.get(original_node)
        if not wanted:
            return updated_node
        body = updated_node.body
        if isinstance(body, cst.SimpleStatementSuite):
            body = cst.IndentedBlock(
                body=[cst.SimpleStatementLine(body=body.body)], header=body.trailing_whitespace
            )
        assert isinstance(body, cst.IndentedBlock)
        statements = list(body.body)
        present = {_rollback_of(s) for s in statements}
        new: list[cst.BaseStatement] = []
        for session, awaited in wanted:
            if session in present:
                continue
            present.add(session)
            new.append(_rollback(session, awaited))
        if not new:
            return updated_node
        self.inserted += len(new)
        if statements:
            # Comments above the first statement describe the handler: keep them on top.
            first = statements[0]
            if (
                isinstance(first, (cst.SimpleStatementLine, cst.BaseCompoundStatement))
                and first.leading_lines
            ):
                new[0] = new[0].with_changes(leading_lines=first.leading_lines)
                statements[0] = first.with_changes(leading_lines=())
        return updated_node.with_changes(body=body.with_changes(body=[*new, *statements]))


def _rollback_of(statement: cst.CSTNode) -> str | None:
    """The session a ``[await] session.rollback()`` statement rolls back, if it is one."""
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return None
    expr = statement.body[0]
    if not isinstance(expr, cst.Expr):
        return None
    value = expr.value.expression if isinstance(expr.value, cst.Await) else expr.value
    if (
        isinstance(value, cst.Call)
        and isinstance(value.func, cst.Attribute)
        and value.func.attr.value == "rollback"
    ):
        return _cst_dotted(value.func.value)
    return None


def _cst_dotted(node: cst.CSTNode) -> str | None:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        inner = _cst_dotted(node.value)
        return f"{inner}.{node.attr.value}" if inner else None
    return None


def plan_for(source: str, path: Path, targets: set[tuple[int, int]], project: Project) -> Plan:
    """The handlers behind the reported uses at ``targets`` (line, 1-based column), found by the
    very analysis that reported them, and the sessions each must roll back."""
    from lockorder_lint.engine import units_in
    from lockorder_lint.rules.aborted_session_reuse import analyse_sessions

    positions = Source(str(path), source, parse_ast(source, str(path)))
    plan: Plan = {}
    for unit in units_in(positions, path, project):
        found, sessions, _calls = analyse_sessions(unit, project.config)
        for aborted in found:
            line, column, _, _ = positions.span(aborted.use)
            if (line, column) not in targets:
                continue
            written = sessions.written.get(aborted.session)
            if written is None:
                continue  # a session only helpers use: this function has no name for it
            where = positions.span(aborted.catch.node)[:2]
            entry = (written, is_async_session(aborted.session, sessions, unit.node))
            if entry not in plan.setdefault(where, []):
                plan[where].append(entry)
    return plan


def fix_source(source: str, path: Path, targets: set[tuple[int, int]], project: Project) -> tuple[str, int]:
    """``source`` with a rollback inserted in every handler behind a reported use at ``targets``
    (line, 1-based column); and how many rollbacks were inserted."""
    plan = plan_for(source, path, targets, project)
    if not plan:
        return source, 0
    wrapper = MetadataWrapper(cst.parse_module(source))
    positions = wrapper.resolve(PositionProvider)
    by_node: dict[cst.CSTNode, list[tuple[str, bool]]] = {}
    for node, where in positions.items():
        if isinstance(node, (cst.ExceptHandler, cst.With)):
            wanted = plan.get((where.start.line, where.start.column + 1))
            if wanted:
                by_node[node] = wanted
    inserter = _RollbackInserter(by_node)
    new_module = wrapper.module.visit(inserter)
    return new_module.code, inserter.inserted


def _encoding(data: bytes) -> str:
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    return encoding


def plan_fixes(findings: Iterable[Finding], project: Project) -> FixReport:
    """The fixed text of every file with fixable findings; files that cannot be fixed become errors."""
    report = FixReport()
    targets: dict[str, set[tuple[int, int]]] = {}
    for finding in findings:
        if finding.code in FIXABLE_CODES:
            targets.setdefault(finding.path, set()).add((finding.line, finding.column))
    for display, spots in sorted(targets.items()):
        path = Path(display)
        try:
            data = path.read_bytes()
            encoding = _encoding(data)
            before = data.decode(encoding)
            after, count = fix_source(before, path, spots, project)
        except (OSError, SyntaxError, UnicodeDecodeError, LookupError, cst.ParserSyntaxError) as exc:
            report.errors.append(FileError(display, 0, f"cannot fix: {exc}"))
            continue
        if count and after != before:
            try:
                cst.parse_module(after)
                ast.parse(after)
            except (SyntaxError, cst.ParserSyntaxError) as exc:  # pragma: no cover - a bug if reached
                report.errors.append(FileError(display, 0, f"fix not applied, it does not parse: {exc}"))
                continue
            report.files.append(FileFix(path, display, encoding, before, after, count))
    return report


class ReadOnlyFile(OSError):
    """The file to fix may not be written: it is reported, never forced."""


def _writable(info: os.stat_result, path: Path) -> bool:
    """Whether the user may write ``path``; a file with no write bit at all counts as read-only
    even for root, who ``os.access`` says may write anything."""
    return bool(info.st_mode & 0o222) and os.access(path, os.W_OK)


def write_fixed(path: Path, text: str, encoding: str) -> None:
    """Write the fixed text over ``path`` without breaking what leads to it.

    A symbolic link stays a link: its target is written. A read-only file raises ``ReadOnlyFile``.
    A file with one name is replaced atomically: the text goes to a temporary file beside it,
    flushed to disk, with the file's mode (and owner, when allowed), then ``os.replace``-d over it,
    so an interrupted run leaves the old or the new file, never a mix. ``os.replace`` would give a
    file with several hard links a new inode that only this name sees, so such a file is rewritten
    in place instead, keeping every link; that write is not atomic, so the old text is first
    saved beside it and removed only once the new text is on disk."""
    target = Path(os.path.realpath(path))
    info = target.stat()
    if not _writable(info, target):
        raise ReadOnlyFile(errno.EACCES, "the file is read-only; the fix was not written", str(path))
    data = text.encode(encoding)
    if info.st_nlink > 1:
        backup = _write_temporary(target, target.read_bytes(), info, ".lockorder-orig")
        with target.open("r+b") as out:
            out.write(data)
            out.truncate()
            out.flush()
            os.fsync(out.fileno())
        os.unlink(backup)
        return
    temporary = _write_temporary(target, data, info, ".lockorder-tmp")
    try:
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _write_temporary(beside: Path, data: bytes, info: os.stat_result, suffix: str) -> str:
    """A hidden file next to ``beside`` holding ``data`` on disk, with ``beside``'s mode and owner."""
    handle, temporary = tempfile.mkstemp(dir=beside.parent, prefix=f".{beside.name}.", suffix=suffix)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, info.st_mode & 0o7777)
        if hasattr(os, "chown"):
            with contextlib.suppress(PermissionError):
                os.chown(temporary, info.st_uid, info.st_gid)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return temporary


def apply_fixes(
    findings: Sequence[Finding], project: Project, *, write: bool, diff_out: TextIO | None = None
) -> FixReport:
    """Fix (``write``) or only show (``diff_out``) the rollbacks for the fixable findings."""
    report = plan_fixes(findings, project)
    written: list[bool] = []
    for fix in report.files:
        if diff_out is not None:
            diff_out.write(fix.diff())
        if write:
            try:
                write_fixed(fix.path, fix.after, fix.encoding)
            except ReadOnlyFile as exc:
                report.errors.append(FileError(fix.display, 0, str(exc.strerror)))
                written.append(False)
            except OSError as exc:
                report.errors.append(
                    FileError(fix.display, 0, f"cannot write the fix: {exc.strerror or exc}")
                )
                written.append(False)
            else:
                written.append(True)
    if write:
        report.files = [fix for fix, done in zip(report.files, written, strict=True) if done]
    return report
