"""``--fix`` and ``--diff`` for LCK003: make a session that a swallowed database error left with an
aborted transaction usable again before its next use, keeping what the transaction did before the
``try`` wherever that can be done.

Each reported except clause (or tenacity ``with attempt:`` block) gets, per session, one remedy:

* savepoint: the ``try`` body (the attempt's body) runs under ``with session.begin_nested():``, so
  the error rolls back to the savepoint and the transaction stays usable with its earlier work;
* rollback: ``session.rollback()`` first in the handler (in a ``with attempt:`` block, a ``try``
  that rolls back and re-raises), which discards the whole transaction;
* none, with the reason: an ``except*`` clause, a handler inside a ``begin()`` block (where a
  rollback breaks the block) whose ``try`` body cannot run under a savepoint, and AUTOCOMMIT code.

A fix is *safe* when it cannot discard work the transaction did before the ``try`` on the
configured ``dialects``; any other fix is *unsafe* and applied only on request (``--unsafe-fixes``),
the way ruff separates the two. A rollback is safe when the session is created in this function,
does no work before the ``try``, and the ``try`` is not in a loop; else a savepoint is used when
the ``try`` body allows one. A savepoint is safe on PostgreSQL (ROLLBACK TO SAVEPOINT ends the
error and keeps the earlier work and its locks); on MySQL/MariaDB a deadlock rolls back the whole
transaction, savepoint included, so there it is unsafe. A fix on a session known only by its name
(``session-names``) is unsafe too: it may not be a session. ``rules/LCK003.md`` says why at length.
The decision itself (``remedy_for``) lives in :mod:`lockorder_lint.session_flow`, next to the
analysis, so that the finding's message names the same remedy without importing libcst.

The edit is made with libcst on the whole file, so comments and formatting stay as they were.
Only reported findings are fixed (noqa and per-file ignores already removed theirs): the file is
analysed again and each reported use is matched to the handler it came from; a reuse that nested
``try`` statements left aborted through several clauses is one finding, and every clause behind it
is fixed, so that a second run finds nothing more to do. A file is written
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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from lockorder_lint.catalog import Catalog
from lockorder_lint.config import Config
from lockorder_lint.engine import Project
from lockorder_lint.findings import FileError, Finding
from lockorder_lint.parsing import Source, parse_ast
from lockorder_lint.session_flow import ROLLBACK, FunctionView, is_async_session, remedy_for

FIXABLE_CODES = frozenset({"LCK003", "LCK006"})


@dataclass(frozen=True)
class LeftOut:
    """A finding that a fix run leaves in place, and why: it has no fix, or its fix is unsafe and
    ``--unsafe-fixes`` was not given. ``fix`` names the remedy (several findings can share one)."""

    path: str
    line: int
    column: int
    reason: str
    unsafe: bool
    fix: tuple[int, int, str] = field(compare=False)
    code: str = "LCK003"

    def render(self) -> str:
        what = "unsafe fix not applied (--unsafe-fixes applies it)" if self.unsafe else "not fixed"
        return f"{self.path}:{self.line}:{self.column}: {self.code} {what}: {self.reason}"


@dataclass(frozen=True)
class FileFix:
    """One file's text before and after the fix."""

    path: Path
    display: str
    encoding: str
    before: str
    after: str
    handlers: int
    loops: int = 0  # LCK006 loops whose iterable was wrapped in sorted(...)

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
    left: list[LeftOut] = field(default_factory=list)

    @property
    def handlers(self) -> int:
        return sum(f.handlers for f in self.files)

    @property
    def loops(self) -> int:
        return sum(f.loops for f in self.files)

    def summary(self, verb: str) -> str:
        """``fixed 2 handler(s)`` (and ``, sorted 1 loop(s)`` when LCK006 fixes were made)."""
        loops = f", sorted {self.loops} loop(s)" if self.loops else ""
        return f"{verb} {self.handlers} handler(s){loops} in {len(self.files)} file(s)"

    @property
    def unsafe_left(self) -> int:
        """How many unsafe fixes were left out (a fix may serve several findings)."""
        return len({(item.path, item.fix) for item in self.left if item.unsafe})


@dataclass
class SourceFix:
    """One source text after its fixes: how many were applied, and the findings left in place."""

    text: str
    applied: int
    left: list[LeftOut] = field(default_factory=list)


# Sessions to fix, by the (line, 1-based column) where the edited node starts: the handler or
# ``with attempt:`` for rollbacks, the ``try`` or ``with attempt:`` for savepoints.
Sessions = list[tuple[str, bool]]


@dataclass
class _Plan:
    rollbacks: dict[tuple[int, int], Sessions] = field(default_factory=dict)
    savepoints: dict[tuple[int, int], Sessions] = field(default_factory=dict)
    left: list[LeftOut] = field(default_factory=list)


# -- planning: the remedies of one file --------------------------------------------------------


def _plan(
    source: str, path: Path, display: str, targets: set[tuple[int, int]], project: Project, unsafe: bool
) -> _Plan:
    """The edits behind the reported uses at ``targets`` (line, 1-based column), found by the
    very analysis that reported them (the same units, scope and helpers' summaries), and the
    targets left in place with the reason."""
    from lockorder_lint.engine import units_in
    from lockorder_lint.rules.aborted_session_reuse import analyse_sessions

    config = project.config
    positions = Source(str(path), source, parse_ast(source, str(path)))
    plan = _Plan()
    matched: set[tuple[int, int]] = set()
    for unit in units_in(positions, path, project):
        node = unit.node
        found, sessions, calls = analyse_sessions(unit, config)
        function: FunctionView | None = None
        for aborted in found:
            line, column, _, _ = positions.span(aborted.use)
            if (line, column) not in targets:
                continue
            matched.add((line, column))
            catch = aborted.catch.node
            written = sessions.written.get(aborted.session)
            if written is None:
                reason = (
                    "the session is used only inside helpers: this function has no name to roll it back by"
                )
                key = (*positions.span(catch)[:2], aborted.session)
                plan.left.append(LeftOut(display, line, column, reason, False, key))
                continue
            function = function or FunctionView(node, sessions, calls)
            awaited = is_async_session(aborted.session, sessions, node)
            remedy = remedy_for(aborted, function, config.dialects, awaited, written)
            if remedy.kind is None or (not remedy.safe and not unsafe):
                key = (*positions.span(catch)[:2], written)
                plan.left.append(LeftOut(display, line, column, remedy.reason, remedy.kind is not None, key))
                continue
            if remedy.kind == ROLLBACK:
                where, edits = positions.span(catch)[:2], plan.rollbacks
            else:
                anchor = function.parents[catch] if isinstance(catch, ast.ExceptHandler) else catch
                where, edits = positions.span(anchor)[:2], plan.savepoints
            entry = (written, awaited)
            if entry not in edits.setdefault(where, []):
                edits[where].append(entry)
    for line, column in sorted(targets - matched):
        reason = "the analysis found no handler behind it to fix"
        plan.left.append(LeftOut(display, line, column, reason, False, (line, column, "")))
    return plan


def _project(settings: Project | Config, path: Path) -> Project:
    """A bare project for a configuration alone (a file fixed on its own, as tests do)."""
    if isinstance(settings, Project):
        return settings
    return Project(root=path.parent, config=settings, catalog=Catalog())


# -- editing ------------------------------------------------------------------------------------


def _rollback(session: str, awaited: bool) -> cst.BaseStatement:
    return cst.parse_statement(f"{'await ' if awaited else ''}{session}.rollback()\n")


def _indented(block: cst.BaseSuite) -> cst.IndentedBlock:
    """A block as an indented one: ``try: x  # c`` on one line becomes ``try:`` and ``x  # c``."""
    if isinstance(block, cst.SimpleStatementSuite):
        line = cst.SimpleStatementLine(body=block.body, trailing_whitespace=block.trailing_whitespace)
        return cst.IndentedBlock(body=[line])
    assert isinstance(block, cst.IndentedBlock)
    return block


def _is_savepoint(statement: cst.CSTNode, session: str) -> bool:
    if not isinstance(statement, cst.With) or len(statement.items) != 1:
        return False
    return cst.Module(body=[]).code_for_node(statement.items[0].item) == f"{session}.begin_nested()"


def _under_savepoints(block: cst.BaseSuite, sessions: Sessions) -> cst.IndentedBlock | None:
    """``block``'s statements under ``with <session>.begin_nested():`` (``async with`` when
    awaited), one ``with`` per session; None when the block already is exactly that. Comments
    above the first statement stay on top; the header comment stays on its line."""
    block = _indented(block)
    statements = list(block.body)
    if len(statements) == 1 and _is_savepoint(statements[0], sessions[0][0]):
        return None
    first = statements[0]
    leading: Sequence[cst.EmptyLine] = ()
    if isinstance(first, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
        leading = first.leading_lines
        statements[0] = first.with_changes(leading_lines=())
    inner = cst.IndentedBlock(body=statements, indent=block.indent)
    for session, awaited in reversed(sessions):
        savepoint = cst.With(
            items=[cst.WithItem(item=cst.parse_expression(f"{session}.begin_nested()"))],
            body=inner,
            asynchronous=cst.Asynchronous() if awaited else None,
        )
        inner = cst.IndentedBlock(body=[savepoint], indent=block.indent)
    outer = inner.body[0]
    assert isinstance(outer, cst.With)
    return block.with_changes(body=[outer.with_changes(leading_lines=leading)])


class _Fixer(cst.CSTTransformer):
    """Applies the plan: a savepoint around each planned ``try`` body (or ``with attempt:``
    body); ``[await] <session>.rollback()`` first in each planned handler, unless it is there; and
    for each planned tenacity ``with attempt:`` rollback, its body in ``try`` / ``except
    Exception:`` rolling back and re-raising, so that the retry starts on a clean session."""

    def __init__(
        self, rollbacks: dict[cst.CSTNode, Sessions], savepoints: dict[cst.CSTNode, Sessions]
    ) -> None:
        super().__init__()
        self.rollbacks = rollbacks
        self.savepoints = savepoints
        self.applied = 0

    def leave_Try(self, original_node: cst.Try, updated_node: cst.Try) -> cst.Try:
        wanted = self.savepoints.get(original_node)
        if not wanted:
            return updated_node
        body = _under_savepoints(updated_node.body, wanted)
        if body is None:
            return updated_node
        self.applied += len(wanted)
        return updated_node.with_changes(body=body)

    def leave_With(self, original_node: cst.With, updated_node: cst.With) -> cst.With:
        rollbacks = self.rollbacks.get(original_node)
        if rollbacks:
            handler = cst.ExceptHandler(
                type=cst.Name("Exception"),
                body=cst.IndentedBlock(
                    body=[*(_rollback(s, a) for s, a in rollbacks), cst.SimpleStatementLine([cst.Raise()])]
                ),
            )
            body = _indented(updated_node.body)
            guarded = cst.Try(body=body.with_changes(header=cst.TrailingWhitespace()), handlers=[handler])
            self.applied += len(rollbacks)
            updated_node = updated_node.with_changes(
                body=cst.IndentedBlock(body=[guarded], header=body.header, indent=body.indent)
            )
        savepoints = self.savepoints.get(original_node)
        if savepoints:
            wrapped = _under_savepoints(updated_node.body, savepoints)
            if wrapped is not None:
                self.applied += len(savepoints)
                updated_node = updated_node.with_changes(body=wrapped)
        return updated_node

    def leave_ExceptHandler(
        self, original_node: cst.ExceptHandler, updated_node: cst.ExceptHandler
    ) -> cst.ExceptHandler:
        wanted = self.rollbacks.get(original_node)
        if not wanted:
            return updated_node
        body = _indented(updated_node.body)
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
        self.applied += len(new)
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


def fix_source(
    source: str,
    path: Path,
    targets: set[tuple[int, int]],
    settings: Project | Config,
    *,
    unsafe: bool = False,
    display: str | None = None,
) -> SourceFix:
    """``source`` with the fixes for the reported uses at ``targets`` (line, 1-based column): the
    safe ones, and the unsafe ones too when ``unsafe``; with the targets it leaves in place."""
    plan = _plan(source, path, display or str(path), targets, _project(settings, path), unsafe)
    if not plan.rollbacks and not plan.savepoints:
        return SourceFix(source, 0, plan.left)
    wrapper = MetadataWrapper(cst.parse_module(source))
    positions = wrapper.resolve(PositionProvider)
    rollbacks: dict[cst.CSTNode, Sessions] = {}
    savepoints: dict[cst.CSTNode, Sessions] = {}
    for node, where in positions.items():
        key = (where.start.line, where.start.column + 1)
        if isinstance(node, (cst.ExceptHandler, cst.With)) and key in plan.rollbacks:
            rollbacks[node] = plan.rollbacks[key]
        if isinstance(node, (cst.Try, cst.With)) and key in plan.savepoints:
            savepoints[node] = plan.savepoints[key]
    fixer = _Fixer(rollbacks, savepoints)
    new_module = wrapper.module.visit(fixer)
    return SourceFix(new_module.code, fixer.applied, plan.left)


def _encoding(data: bytes) -> str:
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    return encoding


def plan_fixes(findings: Iterable[Finding], settings: Project | Config, *, unsafe: bool = False) -> FixReport:
    """The fixed text of every file with fixable findings; files that cannot be fixed become errors."""
    from lockorder_lint.key_order_fix import Wanted, fix_sorted

    report = FixReport()
    targets: dict[str, set[tuple[int, int]]] = {}
    loops: dict[str, list[Wanted]] = {}
    for finding in findings:
        if finding.code == "LCK003":
            targets.setdefault(finding.path, set()).add((finding.line, finding.column))
        elif finding.code == "LCK006":
            wanted = Wanted(finding.function or "", finding.statement, finding.line, finding.column)
            loops.setdefault(finding.path, []).append(wanted)
    for display in sorted(set(targets) | set(loops)):
        path = Path(display)
        try:
            data = path.read_bytes()
            encoding = _encoding(data)
            before = data.decode(encoding)
            spots = targets.get(display, set())
            fixed = SourceFix(before, 0)
            if spots:
                fixed = fix_source(before, path, spots, settings, unsafe=unsafe, display=display)
            ordered = fix_sorted(fixed.text, path, loops.get(display, ()), _project(settings, path), unsafe)
        except (OSError, SyntaxError, UnicodeDecodeError, LookupError, cst.ParserSyntaxError) as exc:
            report.errors.append(FileError(display, 0, f"cannot fix: {exc}"))
            continue
        report.left.extend(fixed.left)
        for wanted, reason, is_unsafe in ordered.left:
            key = (wanted.line, wanted.column, "sorted")
            report.left.append(LeftOut(display, wanted.line, wanted.column, reason, is_unsafe, key, "LCK006"))
        after = ordered.text
        if (fixed.applied or ordered.applied) and after != before:
            try:
                cst.parse_module(after)
                ast.parse(after)
            except (SyntaxError, cst.ParserSyntaxError) as exc:  # pragma: no cover - a bug if reached
                report.errors.append(FileError(display, 0, f"fix not applied, it does not parse: {exc}"))
                continue
            report.files.append(
                FileFix(path, display, encoding, before, after, fixed.applied, ordered.applied)
            )
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
    findings: Sequence[Finding],
    settings: Project | Config,
    *,
    write: bool,
    diff_out: TextIO | None = None,
    unsafe: bool = False,
) -> FixReport:
    """Fix (``write``) or only show (``diff_out``) the safe fixes for the fixable findings, and
    the unsafe ones too when ``unsafe``."""
    report = plan_fixes(findings, settings, unsafe=unsafe)
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
        # The findings left in a written file are reported again at their new places: say where.
        for fix in report.files:
            report.left = [
                _moved(item, fix.before, fix.after) if item.path == fix.display else item
                for item in report.left
            ]
    report.left.sort(key=lambda item: (item.path, item.line, item.column))
    return report


def _moved(item: LeftOut, before: str, after: str) -> LeftOut:
    """``item`` at its place in ``after``, the fixed text of ``before``: lines the fix left alone
    keep their text, lines it re-indented (under a savepoint) keep it too, stripped of indent."""
    old, new = before.splitlines(), after.splitlines()
    index = item.line - 1
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if not i1 <= index < i2:
            continue
        if tag == "equal":
            return replace(item, line=j1 + index - i1 + 1)
        text = old[index].strip()
        same = [j for j in range(j1, j2) if new[j].strip() == text]
        if tag == "replace" and len(same) == 1:
            shift = _indent(new[same[0]]) - _indent(old[index])
            return replace(item, line=same[0] + 1, column=item.column + shift)
    return item


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())
