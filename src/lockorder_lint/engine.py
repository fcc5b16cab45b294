"""The engine: files -> model catalog -> statements -> rules -> findings.

Each file is checked by a pure function of its bytes and the project (configuration and
catalog), so results can be computed in worker processes and cached by content.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lockorder_lint.catalog import Catalog, FileModels, read_models
from lockorder_lint.config import Config
from lockorder_lint.files import relative_to_root
from lockorder_lint.findings import FileError, Finding, Skipped
from lockorder_lint.names import Resolver, assignment_aliases, import_aliases, module_name
from lockorder_lint.noqa import suppressed
from lockorder_lint.parsing import decode, parse_ast
from lockorder_lint.rules import ALL_RULES, Rule
from lockorder_lint.units import Candidate, candidate_functions, module_level_names, snippet_for

if TYPE_CHECKING:
    from lockorder_lint.statements import Statement, Unit


@dataclass
class Project:
    """Everything a file check depends on besides the file itself."""

    root: Path
    config: Config
    catalog: Catalog
    rules: tuple[Rule, ...] = field(default=ALL_RULES)
    fingerprint: str = ""  # identifies catalog + configuration, for the result cache

    def __post_init__(self) -> None:
        self.rules = tuple(r for r in self.rules if self.config.code_enabled(r.code))
        helpers = [re.escape(h.rsplit(".", 1)[-1]).encode() + rb"\s*\(" for h in self.config.lock_helpers]
        self.rule_triggers: dict[str, re.Pattern[bytes]] = {}
        for rule in self.rules:
            patterns = [rule.triggers] if rule.triggers else []
            if rule.uses_lock_helpers:
                patterns += helpers
            if patterns:
                self.rule_triggers[rule.code] = re.compile(b"|".join(patterns))
        combined = [p.pattern for p in self.rule_triggers.values()]
        self.trigger = re.compile(b"|".join(combined)) if combined else None
        self.lock_helpers = frozenset(self.config.lock_helpers)


@dataclass
class FileResult:
    findings: list[Finding] = field(default_factory=list)
    unknown: list[Skipped] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)
    analysed: bool = False


def read_source(path: Path, display: str) -> tuple[bytes | None, FileError | None]:
    try:
        return path.read_bytes(), None
    except OSError as exc:
        return None, FileError(display, 0, f"cannot read: {exc.strerror or exc}")


def file_models(path: Path, display: str, root: Path) -> FileModels:
    """One file's model declarations; a file that cannot be read or parsed declares nothing
    (if it is also checked, the check reports why)."""
    data, error = read_source(path, display)
    if data is None or error is not None:
        return FileModels()
    try:
        return read_models(data, path, root, display)
    except (SyntaxError, ValueError, RecursionError):
        return FileModels()


def _hit_lines(data: bytes, pattern: re.Pattern[bytes], newlines: list[int]) -> set[int]:
    """The 1-based lines holding a match; ``newlines`` are the offsets of the file's newlines."""
    return {bisect.bisect_left(newlines, m.start()) + 1 for m in pattern.finditer(data)}


def check_source(data: bytes, path: Path, display: str, project: Project) -> FileResult:
    """Check one file's bytes. Never raises: problems become FileErrors."""
    result = FileResult()
    if project.trigger is None or project.trigger.search(data) is None:
        return result  # one scan rejects the many files no rule can look at
    try:
        text = decode(data)
        tree = parse_ast(data, display)
    except SyntaxError as exc:
        result.errors.append(FileError(display, exc.lineno or 0, f"cannot parse: {exc.msg}"))
        return result
    except (UnicodeDecodeError, LookupError) as exc:
        result.errors.append(FileError(display, 0, f"cannot decode: {exc}"))
        return result
    except (ValueError, RecursionError, MemoryError) as exc:
        result.errors.append(FileError(display, 0, f"cannot parse: {exc}"))
        return result
    module = module_name(path, project.root)
    resolver = Resolver(
        module, import_aliases(tree, module, path.name == "__init__.py"), module_level_names(tree)
    )
    assignment_aliases(tree, resolver)
    rules_by_code = {
        rule.code: rule for rule in project.rules if not _ignored_here(rule, path, display, project)
    }
    newlines = [m.start() for m in re.finditer(rb"\n", data)]
    hits_by_rule = {
        code: _hit_lines(data, pattern, newlines)
        for code, pattern in project.rule_triggers.items()
        if code in rules_by_code
    }
    lines = text.splitlines(keepends=True)
    for candidate in candidate_functions(tree, module, hits_by_rule):
        rules = [
            rules_by_code[c]
            for c in sorted(candidate.rules)
            if rules_by_code[c].wants(candidate.node, project.config)
        ]
        if not rules:
            continue
        result.analysed = True
        try:
            units = analyse_candidate(lines, candidate, resolver, project)
        except Exception as exc:  # one bad function must not hide the rest of the file
            result.errors.append(FileError(display, candidate.start_line, describe_failure(exc)))
            continue
        _apply_rules(units, rules, project, display, lines, result)
    result.findings.sort()
    result.unknown.sort()
    return result


def describe_failure(exc: BaseException) -> str:
    """One line saying why a function could not be analysed."""
    name = type(exc).__name__
    if name == "ParserSyntaxError":
        message = str(exc).strip().splitlines()[0]
        return f"cannot parse with libcst: {message}"
    if isinstance(exc, RecursionError):
        return "skipped: expression nested too deeply to analyse"
    return f"internal error: {name}: {exc}"


def analyse_candidate(
    lines: Sequence[str], candidate: Candidate, resolver: Resolver, project: Project
) -> list[Unit]:
    """Parse one candidate function with libcst; one unit for it and one per nested function."""
    import libcst as cst
    from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

    from lockorder_lint.statements import FunctionEvaluator, Unit, nested_functions

    snippet, offset = snippet_for(list(lines), candidate)
    module = cst.parse_module(snippet)
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    resolved: list[Mapping[cst.CSTNode, CodeRange]] = []

    def position(node: cst.CSTNode) -> CodeRange:
        if not resolved:  # only functions with something to report pay for positions
            resolved.append(wrapper.resolve(PositionProvider))
        return resolved[0][node]

    first: cst.CSTNode = module.body[0]
    if isinstance(first, cst.If) and isinstance(first.body, cst.IndentedBlock):
        first = first.body.body[0]
    if not isinstance(first, cst.FunctionDef):
        return []
    units: list[Unit] = []
    pending: list[tuple[cst.FunctionDef, str]] = [(first, candidate.qualname)]
    while pending:
        node, qualname = pending.pop(0)
        evaluator = FunctionEvaluator(
            resolver=resolver,
            catalog=project.catalog,
            lock_helpers=project.lock_helpers,
            position=position,
            line_offset=offset,
            code_for=module.code_for_node,
            class_qualname=candidate.class_qualname,
        )
        units.append(Unit(qualname, node, evaluator))
        pending.extend((nested, f"{qualname}.{nested.name.value}") for nested in nested_functions(node))
    return units


def _apply_rules(
    units: list[Unit],
    rules: Sequence[Rule],
    project: Project,
    display: str,
    lines: Sequence[str],
    result: FileResult,
) -> None:
    from lockorder_lint.rules.base import RuleContext

    context = RuleContext(project.config)
    for unit in units:
        for rule in rules:
            for report in rule.check(unit, context):
                line_text = lines[report.span.line - 1] if 0 < report.span.line <= len(lines) else ""
                if suppressed(line_text, report.code):
                    continue
                result.findings.append(
                    Finding(
                        path=display,
                        line=report.span.line,
                        column=report.span.column,
                        end_line=report.span.end_line,
                        end_column=report.span.end_column,
                        code=report.code,
                        message=report.message,
                        table=report.table,
                        function=unit.qualname,
                        statement=report.statement,
                    )
                )
    seen: set[tuple[int, int, str]] = set()
    for statement in context.unknown:
        _note_unknown(statement, display, seen, result)


def _note_unknown(
    statement: Statement, display: str, seen: set[tuple[int, int, str]], result: FileResult
) -> None:
    span = statement.write or (statement.lock.span if statement.lock else statement.span)
    kind = statement.write_kind or ("FOR SHARE" if statement.lock and statement.lock.read else "FOR UPDATE")
    if statement.target is not None:
        target = (
            f"{statement.target.name} (WHERE clause built elsewhere)"
            if statement.target.primary_key
            else f"{statement.target.name} (no primary key declared)"
        )
    else:
        target = statement.target_text or "?"
    key = (span.line, span.column, kind)
    if key in seen:
        return
    seen.add(key)
    result.unknown.append(Skipped(display, span.line, span.column, kind, target))


def _ignored_here(rule: Rule, path: Path, display: str, project: Project) -> bool:
    """``per-file-ignores``: patterns match the path relative to the project root (or as shown)."""
    import fnmatch

    if not project.config.per_file_ignores:
        return False
    relative = relative_to_root(path, project.root) or display
    for pattern, codes in project.config.per_file_ignores:
        names = (relative, display, path.name)
        if any(fnmatch.fnmatch(name, pattern) for name in names) and any(
            rule.code.startswith(c) for c in codes
        ):
            return True
    return False
