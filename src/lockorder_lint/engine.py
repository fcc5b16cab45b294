"""The engine: one file's bytes -> syntax tree -> units -> statements -> rules -> findings.

Each file is checked by a pure function of its bytes and the project (configuration, catalog
and program index), so results can be computed in worker processes and cached by content.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockorder_lint.catalog import Catalog
from lockorder_lint.collector import collector_paused
from lockorder_lint.config import Config
from lockorder_lint.contention import Contention
from lockorder_lint.declarations import is_migration
from lockorder_lint.dialects import module_dialect, normalise
from lockorder_lint.files import relative_to_root
from lockorder_lint.findings import FileError, Finding, Skipped, TableStep
from lockorder_lint.names import file_resolver, module_name
from lockorder_lint.noqa import suppressed
from lockorder_lint.parsing import LINE_BREAK_BYTES, Source, SourceError, parse_source
from lockorder_lint.raw_sql import constant_hits
from lockorder_lint.rules import ALL_RULES, Report, Rule
from lockorder_lint.statements import Statement
from lockorder_lint.summaries import BODY, CALLERS, SYMBOLS, Program
from lockorder_lint.walk import forget as forget_walks

if TYPE_CHECKING:
    from lockorder_lint.builders import Scope
    from lockorder_lint.names import Resolver
    from lockorder_lint.units import Candidate, Unit
    from lockorder_lint.workers import Workers


@dataclass
class Project:
    """Everything a file check depends on besides the file itself."""

    root: Path
    config: Config
    catalog: Catalog
    rules: tuple[Rule, ...] = field(default=ALL_RULES)
    fingerprint: str = ""  # identifies catalog + configuration, for the result cache
    program: Program | None = None
    # Content digests of the project's files (helpers a result inlined must be unchanged), and
    # the Alembic revisions among them.
    digests: dict[str, str] = field(default_factory=dict)
    migrations: set[str] = field(default_factory=set)
    # When ``hot-tables`` is not configured: the tables production code row-locks, each with
    # where ("path:line function"). None: hotness comes from the configuration alone.
    hot: dict[str, list[str]] | None = None
    # Where writers contend (hot evidence, range writes composed with inserts by callers).
    contention: Contention = field(default_factory=lambda: Contention())
    # The process pool the project phase started, handed on to the file checks (never sent to
    # a worker: the run takes it off the project before it forks any).
    workers: Workers | None = field(default=None, repr=False, compare=False)

    def still_valid(self, key: str, recorded: str) -> bool:
        """Whether something a cached result depended on is unchanged (see Program.still_valid)."""
        if self.program is not None:
            return self.program.still_valid(key, recorded)
        return self.dependency_digest(key) == recorded

    def dependency_digest(self, key: str) -> str:
        """The current digest of something a cached result depended on: a file, or the list of
        files that call a name (``callers:<name>``)."""
        if self.program is not None:
            return self.program.dependency_digest(key)
        return "" if key.startswith(CALLERS) else self.digests.get(key, "")

    def __post_init__(self) -> None:
        self.rules = tuple(
            r
            for r in self.rules
            if self.config.code_enabled(r.code) and (not r.preview or r.code in self.config.select)
        )
        helpers = [re.escape(h.rsplit(".", 1)[-1]).encode() + rb"\s*\(" for h in self.config.lock_helpers]
        written: dict[str, bytes] = {}
        for rule in self.rules:
            patterns = [rule.triggers] if rule.triggers else []
            if rule.uses_lock_helpers:
                patterns += helpers
            if patterns:
                written[rule.code] = b"|".join(patterns)
        # each written literal-first: a file's scan skips to where a trigger can start
        self.rule_triggers = {code: re.compile(literal_first(p)) for code, p in written.items()}
        combined = literal_first(b"|".join(written.values()))
        self.trigger = re.compile(combined) if combined else None
        self.lock_helpers = frozenset(self.config.lock_helpers)
        self.dialects = frozenset(normalise(d) for d in self.config.dialects)


@dataclass
class FileResult:
    findings: list[Finding] = field(default_factory=list)
    unknown: list[Skipped] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)
    analysed: bool = False
    parsed: bool = False
    migration: bool = False  # an Alembic revision, not checked unless asked
    cold: int = 0  # statements a rule would report if their table were contended
    # Whole-program answers this check worked out (see ``Program.answering``), for the cache.
    answers: dict[str, tuple[dict[str, str], Any]] = field(default_factory=dict)
    # Other files whose functions the check followed, with their digests: a cached result is
    # valid only while they are unchanged.
    deps: dict[str, str] = field(default_factory=dict)
    # The row-locking reads and writes on known tables of the functions the rules followed.
    steps: list[TableStep] = field(default_factory=list)
    # Whether the check sorted its findings (it stops early, unsorted, in files no rule looks at):
    # whole-program findings added after the check keep the order the check would have given.
    ordered: bool = False
    # LCK005's lock summaries of the file, when the run asked the check for them (see ``run``).
    locks: list[Any] | None = None


@dataclass
class CheckedFile:
    """What a file's check worked out that its LCK005 lock summaries reuse (``file_locks``):
    the parse, the module's names, and the check's units by their function node, whose followed
    statements need not be followed again. Empty when the check stopped before it got there."""

    source: Source | None = None
    module: str = ""
    resolver: Resolver | None = None
    breaks: list[int] = field(default_factory=list)
    units: dict[int, Unit] = field(default_factory=dict)


def hit_lines(data: bytes, pattern: re.Pattern[bytes], breaks: list[int]) -> list[int]:
    """The sorted 1-based lines holding a match; ``breaks`` are the offsets of the line breaks."""
    return sorted({bisect.bisect_right(breaks, m.start()) + 1 for m in pattern.finditer(data)})


@functools.lru_cache(maxsize=64)
def literal_first(pattern: bytes) -> bytes:
    """``pattern`` written so that each top-level alternative starts with a literal character,
    matching exactly what it matches. ``re`` can then skip ahead to the characters that start a
    match instead of trying every alternative at every position (several times faster on a long
    file). ``\\b<c>`` is written ``<c>(?<!\\w<c>)``, a leading ``(?:a|b)c`` as ``ac|bc``, a leading
    ``(?i:u...)`` or ``[Rr]`` once per character it can start with; alternatives that start with
    the same character are tried under it, in their order. An alternative that cannot be written
    so is kept as it is (the pattern then matches the same, as slowly). Remembered: a run
    writes the same few patterns for every file."""
    alternatives = _alternatives(pattern)
    if alternatives is None:
        return pattern
    led = [_led(alternative, False) for alternative in alternatives]
    if any(found is None for found in led):
        written = [
            alternative if found is None else b"|".join(re.escape(c) + rest for c, rest in found)
            for alternative, found in zip(alternatives, led, strict=True)
        ]
        return b"|".join(written)
    # every match starts with its alternative's first character: only alternatives that share
    # it compete at a position, so grouping by it keeps the order that matters
    by_first: dict[bytes, list[bytes]] = {}
    for found in led:
        for first, rest in found or ():
            tails = by_first.setdefault(first, [])
            if rest not in tails:
                tails.append(rest)
    return b"|".join(
        re.escape(first) + (tails[0] if len(tails) == 1 else b"(?:" + b"|".join(tails) + b")")
        for first, tails in by_first.items()
    )


_SPECIAL = frozenset(b".^$*+?{}[]\\|()# \t\n\r\f\v")
_REPEATS = (b"?", b"*", b"+", b"{")


def _led(alternative: bytes, folded: bool) -> list[tuple[bytes, bytes]] | None:
    """``alternative`` as ``(first character, rest)`` pairs that together match what it matches,
    in the order ``re`` would try them; ``folded`` inside a case-insensitive group (the first
    characters are then spelled out by the caller). None when it does not start so plainly."""
    if alternative.startswith(rb"\b"):
        bounded = _led(alternative[2:], folded)
        if bounded is None or not all(c.isalnum() or c == b"_" for c, _rest in bounded):
            return None
        return [(c, rb"(?<!\w" + c + b")" + rest) for c, rest in bounded]
    if alternative.startswith((b"(?:", b"(?i:")):
        end = _closing(alternative)
        inner = _alternatives(alternative[alternative.index(b":") + 1 : end]) if end else None
        after = alternative[end + 1 :] if end else b""
        if inner is None or after.startswith(_REPEATS):
            return None
        found: list[tuple[bytes, bytes]] = []
        for part in inner:
            if folded or alternative.startswith(b"(?:"):
                more = _led(part + after, folded)
                if more is None:
                    return None
                found.extend(more)
                continue
            spelled = _led(part, True)
            if spelled is None:
                return None
            for c, rest in spelled:
                found.extend((case, b"(?i:" + rest + b")" + after) for case in _cases(c))
        return found
    if alternative.startswith(b"["):
        end = alternative.find(b"]")
        members = alternative[1:end] if end > 1 else b""
        if not members.isalnum() or alternative[end + 1 :].startswith(_REPEATS):
            return None
        return [(bytes([m]), alternative[end + 1 :]) for m in dict.fromkeys(members)]
    if alternative.startswith(b"\\"):
        first, size = alternative[1:2], 2
        if not first or first.isalnum():
            return None  # a class (``\w``), an assertion (``\A``) or a reference (``\1``)
    else:
        first, size = alternative[:1], 1
        if not first or first[0] in _SPECIAL:
            return None
    if alternative[size:].startswith(_REPEATS):
        return None  # the character is optional or repeated
    return [(first, alternative[size:])]


def _cases(character: bytes) -> list[bytes]:
    return [character.lower(), character.upper()] if character.isalpha() else [character]


def _scan(pattern: bytes) -> Iterator[tuple[int, int]]:
    """``(index, depth)`` of each character of ``pattern`` outside escapes and classes, with the
    group depth after it; ``depth`` -1 when the pattern cannot be read safely."""
    depth, index, in_class = 0, 0, False
    while index < len(pattern):
        char = pattern[index : index + 1]
        if char == b"\\":
            index += 2
            continue
        if in_class:
            in_class = char != b"]"
        elif char == b"[":
            in_class = True
            if pattern[index + 1 : index + 2] in (b"]", b"^"):
                yield index, -1  # ``[]...]`` and ``[^]...]``: not worth reading right
                return
        else:
            depth += (char == b"(") - (char == b")")
            yield index, depth
        index += 1
    if in_class:
        yield len(pattern), -1


def _alternatives(pattern: bytes) -> list[bytes] | None:
    """The top-level alternatives of ``pattern``; None when it cannot be read safely."""
    parts: list[bytes] = []
    start, depth = 0, 0
    for index, depth in _scan(pattern):
        if depth < 0:
            return None
        if depth == 0 and pattern[index : index + 1] == b"|":
            parts.append(pattern[start:index])
            start = index + 1
    if depth != 0:
        return None
    return [*parts, pattern[start:]]


def _closing(pattern: bytes) -> int | None:
    """The index of the ``)`` that closes the group ``pattern`` starts with."""
    for index, depth in _scan(pattern):
        if depth < 0:
            return None
        if depth == 0:
            return index
    return None


def rule_hit_lines(
    data: bytes, breaks: list[int], triggers: dict[str, re.Pattern[bytes]], combined: re.Pattern[bytes]
) -> dict[str, list[int]]:
    """Each rule's trigger lines, as ``hit_lines`` would find them one rule at a time, from one
    scan of the file with every trigger: then each rule's own pattern is tried on those lines only
    (triggers are rare, a file is long)."""
    candidates: set[int] = set()
    for match in combined.finditer(data):
        first = bisect.bisect_right(breaks, match.start()) + 1
        last = bisect.bisect_right(breaks, max(match.end() - 1, match.start())) + 1
        candidates.update(range(first, last + 1))
    found: dict[str, list[int]] = {code: [] for code in triggers}
    for line in sorted(candidates):
        start = breaks[line - 2] + 1 if line > 1 else 0
        end = breaks[line - 1] if line - 1 < len(breaks) else len(data)
        for code, pattern in triggers.items():
            # a trigger may run on past the line's end (``update\n(``), never this far
            here = pattern.search(data, start, min(len(data), end + _TRIGGER_REACH))
            if here is not None and here.start() < end:
                found[code].append(line)
    return found


_TRIGGER_REACH = 512


def check_source(
    data: bytes,
    path: Path,
    display: str,
    project: Project,
    whole_program: bool = True,
    locks_as: str | None = None,
) -> FileResult:
    """Check one file's bytes. Never raises: problems become FileErrors.

    ``whole_program=False`` leaves out the findings of whole-program rules (LCK005), for a run
    that adds them once every file is checked (``whole_program_findings``). ``locks_as`` asks
    for the file's LCK005 lock summaries too, shown as that display: they are worked out from
    the parse the check made, instead of parsing the file again in a pass of their own."""
    with collector_paused():
        try:
            checked = CheckedFile() if locks_as is not None else None
            result = _check_source(data, path, display, project, whole_program, checked)
            program = project.program
            if whole_program and program is not None and program.lock_protocols is not None:
                from lockorder_lint.protocols import outside_protocols

                result.findings = outside_protocols(program, str(path), result.findings)
            if locks_as is not None:
                result.locks = _file_locks(data, path, locks_as, project, checked)
            return result
        finally:
            forget_walks()  # the file's trees may go


def _file_locks(
    data: bytes, path: Path, display: str, project: Project, checked: CheckedFile | None
) -> list[Any] | None:
    """The file's lock summaries (``transactions.file_locks``), None when they could not be
    worked out here (the run then works them out on their own, as it would without the check)."""
    from lockorder_lint.transactions import file_locks

    try:
        return file_locks(data, path, display, project, checked)
    except Exception:
        return None


def _check_source(
    data: bytes,
    path: Path,
    display: str,
    project: Project,
    whole_program: bool = True,
    checked: CheckedFile | None = None,
) -> FileResult:
    result = FileResult()
    try:
        source = parse_source(data, display)
    except SourceError as exc:
        result.errors.append(FileError(display, exc.line, exc.reason))
        return result
    result.parsed = True
    if not project.config.include_migrations and is_migration(data, path):
        result.migration = True  # it runs alone, under the migration lock
        return result
    if whole_program:
        findings, errors = whole_program_findings(path, display, source.line, project)
        result.findings.extend(findings)
        result.errors.extend(errors)
    if project.trigger is None or project.trigger.search(data) is None:
        return result  # one scan rejects the many files no rule can look at
    module = module_name(path, project.root)
    backend = module_dialect(module)
    if backend is not None and backend not in project.dialects:
        return result  # another database's dialect package: what it does there differs
    rules_by_code = {
        rule.code: rule for rule in project.rules if not _ignored_here(rule, path, display, project)
    }
    if not rules_by_code:
        return result
    from lockorder_lint.units import candidate_functions, units_of

    tree = source.tree
    resolver = file_resolver(tree, module, path.name == "__init__.py")
    breaks = [m.start() for m in LINE_BREAK_BYTES.finditer(data)]
    triggers = {code: pattern for code, pattern in project.rule_triggers.items() if code in rules_by_code}
    hits_by_rule = rule_hit_lines(data, breaks, triggers, project.trigger)
    hits_by_rule = constant_hits(tree, data, hits_by_rule, breaks)  # SQL in module constants
    if checked is not None:
        checked.source, checked.module, checked.resolver, checked.breaks = source, module, resolver, breaks
    if project.program is not None:
        project.program.touched = set()
        project.program.touched_names = set()
        project.program.touched_symbols = set()
        project.program.remember(str(path), source, resolver)
        known_answers = set(project.program.found)
    for candidate in candidate_functions(tree, module, hits_by_rule):
        rules = [
            rules_by_code[c]
            for c in sorted(candidate.rules)
            if rules_by_code[c].wants(candidate.node, project.config)
        ]
        if not rules:
            continue
        result.analysed = True
        scope = candidate_scope(candidate, source, resolver, project, path)
        try:
            units = units_of(candidate, scope)
            if checked is not None:
                checked.units.update((id(unit.node), unit) for unit in units)
            _apply_rules(units, rules, project, display, source, result)
        except Exception as exc:  # one bad function must not hide the rest of the file
            result.errors.append(FileError(display, candidate.start_line, describe_failure(exc)))
    if project.program is not None:
        here = str(path)
        program = project.program
        deps = program.dependencies(program.touched, program.touched_names, program.touched_symbols)
        own = (here, SYMBOLS + here)
        result.deps = {k: v for k, v in deps.items() if k not in own and not k.startswith(f"{BODY}{here}::")}
        result.answers = {k: v for k, v in project.program.found.items() if k not in known_answers}
    result.findings.sort()
    result.ordered = True
    result.unknown.sort()
    return result


def whole_program_findings(
    path: Path, display: str, line: Callable[[int], str], project: Project
) -> tuple[list[Finding], list[FileError]]:
    """Findings of whole-program rules (LCK005) anchored in this parsed file, and the errors of
    the program-wide pass; ``line`` gives a line of the file's source (for ``noqa``)."""
    findings: list[Finding] = []
    errors: list[FileError] = []
    for rule in project.rules:
        if not rule.whole_program or project.program is None or _ignored_here(rule, path, display, project):
            continue
        try:
            reports = rule.program_reports(project, str(path))
        except Exception as exc:  # the program-wide pass must not hide this file's other findings
            errors.append(FileError(display, 0, describe_failure(exc)))
            continue
        for report, function, trace in reports:
            if suppressed(line(report.span.line), report.code):
                continue
            findings.append(_finding(display, report, function, trace=trace))
    return findings, errors


def _finding(display: str, report: Report, function: str | None, **more: Any) -> Finding:
    """A rule's report as the finding a reporter shows: anchored at the report's span."""
    span = report.span
    return Finding(
        path=display,
        line=span.line,
        column=span.column,
        end_line=span.end_line,
        end_column=span.end_column,
        code=report.code,
        message=report.message,
        table=report.table,
        function=function,
        statement=report.statement,
        **more,
    )


def candidate_scope(
    candidate: Candidate, source: Source, resolver: Resolver, project: Project, path: Path
) -> Scope:
    """The scope one function of a checked file is analysed in: the file's names, the project's
    catalog, program, lock helpers and databases."""
    from lockorder_lint.builders import Scope

    return Scope(
        source=source,
        resolver=resolver,
        catalog=project.catalog,
        program=project.program,
        class_qualname=candidate.class_qualname,
        qualname=candidate.qualname,
        lock_helpers=project.lock_helpers,
        dialects=project.dialects,
        path=str(path),
    )


def units_in(source: Source, path: Path, project: Project) -> list[Unit]:
    """Every function of a parsed file as a unit, in the scope the rules see it: what ``--fix``
    re-analyses, so that it finds exactly the handlers the rules reported."""
    from lockorder_lint.units import candidate_functions, units_of

    module = module_name(path, project.root)
    resolver = file_resolver(source.tree, module, path.name == "__init__.py")
    if project.program is not None:
        project.program.remember(str(path), source, resolver)
    every_line = {"*": list(range(1, len(source.lines) + 1))}
    units: list[Unit] = []
    for candidate in candidate_functions(source.tree, module, every_line):
        scope = candidate_scope(candidate, source, resolver, project, path)
        units.extend(units_of(candidate, scope))
    return units


def describe_failure(exc: BaseException) -> str:
    """One line saying why a function could not be analysed."""
    if isinstance(exc, RecursionError):
        return "skipped: expression nested too deeply to analyse"
    return f"internal error: {type(exc).__name__}: {exc}"


def _apply_rules(
    units: Sequence[object],
    rules: Sequence[Rule],
    project: Project,
    display: str,
    source: Source,
    result: FileResult,
) -> None:
    from lockorder_lint.rules.base import RuleContext
    from lockorder_lint.units import Unit

    context = RuleContext(project.config, locked=project.hot, contention=project.contention)
    for unit in units:
        assert isinstance(unit, Unit)
        for rule in rules:
            for report in rule.check(unit, context):
                if suppressed(source.line(report.span.line), report.code):
                    continue
                why = report.hot_because or context.hot_because(report.table)
                result.findings.append(_finding(display, report, unit.qualname, hot_because=why))
        result.steps.extend(table_steps(unit, display))
    result.cold += len(context.cold)
    seen: set[tuple[int, int, str]] = set()
    for statement in context.unknown:
        _note_unknown(statement, display, seen, result)


def table_steps(unit: Unit, display: str) -> list[TableStep]:
    """The unit's locks and writes on known tables in source order, if a rule already followed
    its statements (never followed here only for this)."""
    statements: list[Statement] | None = unit.__dict__.get("statements")
    steps: dict[tuple[int, str, str], TableStep] = {}
    for statement in statements or ():
        table = statement.table_name
        if table is None or statement.from_parameter:
            continue
        if statement.lock is not None:
            line = statement.lock.span.line
            steps.setdefault((line, table, "lock"), TableStep(display, unit.qualname, line, table, "lock"))
        if statement.write is not None:
            kind = "insert" if statement.kind in ("insert", "merge") else "write"
            line = statement.write.line
            steps.setdefault((line, table, kind), TableStep(display, unit.qualname, line, table, kind))
    return sorted(steps.values(), key=lambda s: (s.line, s.table, s.kind))


def _note_unknown(
    statement: Statement, display: str, seen: set[tuple[int, int, str]], result: FileResult
) -> None:
    if statement.from_parameter:
        return  # the caller's statement: judged where it is called with a known model
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
    if not project.config.per_file_ignores:
        return False
    relative = relative_to_root(path, project.root) or display
    return project.config.ignored_in((relative, display, path.name), rule.code)
