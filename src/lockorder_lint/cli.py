"""The ``lockorder-lint`` command line: check (the default), report, tables, explain, rules."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from lockorder_lint import __version__
from lockorder_lint.baseline import (
    BaselineKey,
    compare,
    keys_of,
    missing_files,
    project_paths,
    read_baseline,
    write_baseline,
)
from lockorder_lint.cache import CACHE_DIR_NAME, Cache
from lockorder_lint.config import Config, ConfigError, code_problem, hot_table_warnings, load_config
from lockorder_lint.engine import Project, check_source
from lockorder_lint.files import PathError, find_project_root, find_repository_root
from lockorder_lint.findings import FileError, Finding, Note
from lockorder_lint.noqa import UnusedNoqa, unused_noqa
from lockorder_lint.parsing import decode
from lockorder_lint.progress import progress_for
from lockorder_lint.reporters import (
    render_github,
    render_json,
    render_sarif,
    render_text,
    render_unknown,
    summary,
)
from lockorder_lint.resources import page_path
from lockorder_lint.rules import ALL_RULES, RULES_BY_CODE
from lockorder_lint.runner import (
    RunResult,
    checked_files,
    default_jobs,
    display_path,
    make_project,
    read_file,
    run,
)

if TYPE_CHECKING:  # the fixer imports libcst, which only --fix and --diff need
    from lockorder_lint.fixer import FixReport

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
COMMANDS = ("check", "report", "graph", "tables", "explain", "rules")
REPORT_FORMATS = ("html", "markdown")
GRAPH_FORMATS = ("dot", "mermaid", "json")


def _codes(value: str) -> tuple[str, ...]:
    """Comma-separated codes or prefixes, each one known (see ``config.code_problem``)."""
    codes = tuple(c.strip() for c in value.split(",") if c.strip())
    if not codes:
        raise argparse.ArgumentTypeError("names no code")
    for code in codes:
        problem = code_problem(code)
        if problem is not None:
            raise argparse.ArgumentTypeError(f"{code!r} is {problem}")
    return codes


_DESCRIPTIONS = {
    "report": "Write an audit report (HTML or Markdown) of the findings under PATHS.",
    "graph": "Print the table-level lock-order graph of the code under PATHS (DOT, Mermaid or JSON).",
}


def _parser(command: str = "check") -> argparse.ArgumentParser:
    report = command == "report"
    parser = argparse.ArgumentParser(
        prog=f"lockorder-lint {command}" if command in _DESCRIPTIONS else "lockorder-lint",
        description=_DESCRIPTIONS.get(
            command, "Find SQLAlchemy code that takes row locks in an order that deadlocks."
        ),
        epilog="Commands: check (default) PATHS | report PATHS -o FILE | graph PATHS | tables PATHS | "
        "explain CODE | rules",
    )
    parser.add_argument("paths", nargs="*", type=Path, help="files or directories (default: .)")
    if report:
        parser.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="report file")
        parser.add_argument("--format", choices=REPORT_FORMATS, default="html", help="report format")
        parser.add_argument("--title", help="the report's title (default: the project root's name)")
    elif command == "graph":
        parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="write to FILE, not stdout")
        parser.add_argument("--format", choices=GRAPH_FORMATS, default="dot", help="graph format")
    else:
        parser.add_argument(
            "--format", choices=("text", "json", "sarif", "github"), default="text", help="output format"
        )
    parser.add_argument("--select", type=_codes, help="comma-separated codes or prefixes to report")
    parser.add_argument("--ignore", type=_codes, help="comma-separated codes or prefixes to skip")
    parser.add_argument(
        "--config", type=Path, help="configuration file (default: pyproject.toml at the project root)"
    )
    parser.add_argument("--project-root", type=Path, help="root whose models form the catalog")
    parser.add_argument(
        "--repository-root",
        type=Path,
        metavar="DIR",
        help="what sarif and github paths are relative to (default: the git repository of the project root)",
    )
    parser.add_argument(
        "--python",
        metavar="PATH",
        help="interpreter of the environment whose installed packages hold model bases (default: the "
        "active or project virtualenv)",
    )
    parser.add_argument(
        "--all-tables",
        action="store_true",
        help="treat every table as hot (default without hot-tables: the tables the project row-locks)",
    )
    parser.add_argument(
        "--include-migrations", action="store_true", help="check Alembic migrations too (they run alone)"
    )
    parser.add_argument(
        "--show-unknown", action="store_true", help="list statements on tables the catalog does not know"
    )
    parser.add_argument(
        "--jobs", "-j", type=int, default=None, help="worker processes (default: CPU count; 1 = in-process)"
    )
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="cache directory (default: .lockorder_cache at the project root)",
    )
    parser.add_argument(
        "--write-baseline", type=Path, metavar="FILE", help="record today's findings in FILE and exit 0"
    )
    parser.add_argument(
        "--baseline", type=Path, metavar="FILE", help="report only findings not recorded in FILE"
    )
    parser.add_argument(
        "--warn-unused-noqa",
        action="store_true",
        help="report `# noqa: LCKnnn` comments that suppress nothing",
    )
    parser.add_argument(
        "--fix", action="store_true", help="apply the safe fixes of LCK003 findings (savepoint or rollback)"
    )
    parser.add_argument(
        "--diff", action="store_true", help="print the --fix changes as a diff; write nothing"
    )
    parser.add_argument(
        "--unsafe-fixes",
        action="store_true",
        help="with --fix or --diff, also the unsafe fixes (LCK003 rollbacks that may discard earlier work, "
        "LCK006 sorted(...) around a loop's keys)",
    )
    parser.add_argument("--version", action="version", version=f"lockorder-lint {__version__}")
    return parser


def _project_root(args: argparse.Namespace, paths: list[Path]) -> Path:
    """``--project-root`` if it is a directory, else the root the paths belong to."""
    if args.project_root is not None:
        given: Path = args.project_root
        if not given.is_dir():
            reason = "is not a directory" if os.path.exists(given) else "does not exist"
            raise PathError(f"--project-root {given} {reason}")
        return Path(os.path.realpath(given))
    return find_project_root([p for p in paths if os.path.exists(p)] or [Path(".")])


def _setup(args: argparse.Namespace) -> tuple[Path, Config, list[Path]]:
    paths: list[Path] = args.paths or [Path(".")]
    root = _project_root(args, paths)
    config_path = args.config or root / "pyproject.toml"
    config = load_config(config_path, explicit=args.config is not None)
    if args.select is not None:
        config = replace(config, select=args.select)
    if args.ignore is not None:
        config = replace(config, ignore=config.ignore + args.ignore)
    if getattr(args, "python", None):
        config = replace(config, python=args.python)
    if getattr(args, "all_tables", False):
        config = replace(config, all_tables=True)
    if getattr(args, "include_migrations", False):
        config = replace(config, include_migrations=True)
    return root, config, paths


def cmd_check(args: argparse.Namespace) -> int:
    root, config, paths = _setup(args)
    repository = _repository_root(args, root)
    if args.write_baseline is not None and not os.path.isdir(args.write_baseline.parent or "."):
        raise PathError(
            f"--write-baseline {args.write_baseline}: directory {args.write_baseline.parent} does not exist"
        )
    cache = None if args.no_cache else Cache(args.cache_dir or root / CACHE_DIR_NAME)
    jobs = args.jobs if args.jobs is not None else default_jobs()
    catalog_notes: list[Note] = []
    catalog_errors: list[FileError] = []
    project = make_project(
        root, config, cache, notes=catalog_notes, errors=catalog_errors, jobs=max(1, jobs), cycles_first=False
    )
    for warning in hot_table_warnings(config, project.catalog.tables):
        print(f"lockorder-lint: warning: {warning}", file=sys.stderr)
    progress = progress_for(sys.stderr)
    try:
        result = run(paths, project, jobs=max(1, jobs), progress=progress, cache=cache)
    finally:
        if progress is not None:
            progress.close()
    fix_errors: list[FileError] = []
    diff: FixReport | None = None
    if args.fix or args.diff:
        from lockorder_lint.fixer import apply_fixes

        fixes = apply_fixes(
            result.findings,
            project,
            write=not args.diff,
            diff_out=sys.stdout if args.diff else None,
            unsafe=args.unsafe_fixes,
        )
        fix_errors = fixes.errors
        if args.diff:
            diff = fixes
        else:
            print(
                f"lockorder-lint: {fixes.summary('fixed')}" + _unsafe_left(fixes, "--fix --unsafe-fixes"),
                file=sys.stderr,
            )
            for left in fixes.left:
                print(left.render(), file=sys.stderr)
            if fixes.files:
                result = run(paths, project, jobs=max(1, jobs), cache=cache)
    findings = result.findings
    checked_errors = {e.path for e in result.errors}
    errors = [e for e in catalog_errors if e.path not in checked_errors] + result.errors + fix_errors
    reported = {e.path for e in errors} | {n.path for n in result.notes}
    notes = sorted([n for n in catalog_notes if n.path not in reported] + result.notes, key=lambda n: n.path)
    stale: list[BaselineKey] = []
    if args.write_baseline is not None:
        try:
            count = write_baseline(args.write_baseline, findings, root)
        except OSError as exc:
            raise PathError(f"cannot write baseline {args.write_baseline}: {exc.strerror or exc}") from exc
        print(f"lockorder-lint: wrote {count} findings to baseline {args.write_baseline}", file=sys.stderr)
        findings = []
    elif args.baseline is not None:
        recorded = read_baseline(args.baseline)
        checked = project_paths((display_path(p) for p in checked_files(paths, project).files), root)
        directories = project_paths((str(p) for p in paths if os.path.isdir(p)), root)
        checked |= missing_files(recorded, root, directories)
        outcome = compare(keys_of(findings, root), recorded, checked)
        findings = [findings[i] for i in outcome.new]
        stale = outcome.stale
    unused = _unused_noqa(paths, project) if args.warn_unused_noqa else []
    not_fixed = _not_fixed(findings, diff, project) if diff is not None else []
    if diff is not None:  # stdout holds the diff; the findings it does not fix go to stderr
        sys.stderr.write(render_text(not_fixed))
    else:
        sys.stdout.write(_render(args.format, findings, repository, errors))
    for error in errors:
        print(error.render(), file=sys.stderr)
    for note in notes:
        print(note.render(), file=sys.stderr)
    for entry in stale:
        print(f"{args.baseline}: stale baseline entry: {entry.describe()}", file=sys.stderr)
    for noqa in unused:
        print(noqa.render(), file=sys.stderr)
    if args.show_unknown:
        sys.stderr.write(render_unknown(result.unknown))
    if args.format == "text":
        sys.stderr.write(
            summary(
                (f.code for f in findings),
                result.parsed,
                len(result.unknown),
                len(errors),
                result.migrations,
                result.cold,
                inferred_dialects(project.config, config),
                "not in hot-tables" if config.hot_tables is not None else "with no sign of contention",
            )
        )
    if diff is not None:
        for left in diff.left:
            print(left.render(), file=sys.stderr)
        unsafe = {(item.path, item.line, item.column) for item in diff.left if item.unsafe}
        no_fix = [f for f in not_fixed if (f.path, f.line, f.column) not in unsafe]
        print(
            f"lockorder-lint: {diff.summary('the diff fixes')}; "
            f"{len(no_fix)} finding(s) above have no automatic fix"
            + _unsafe_left(diff, "--diff --unsafe-fixes"),
            file=sys.stderr,
        )
    if errors:
        return EXIT_ERROR
    return EXIT_FINDINGS if findings or unused else EXIT_CLEAN


def inferred_dialects(effective: Config, configured: Config) -> str:
    """``mysql``: databases the run assumed from the code, not from the configuration, so that a
    message reasoning about InnoDB never comes as a surprise."""
    if configured.dialects_set:
        return ""
    return ", ".join(d for d in effective.dialects if d not in configured.dialects)


def _check_for_output(
    args: argparse.Namespace,
) -> tuple[Path, list[Path], Project, RunResult, list[FileError], list[Note]]:
    """The check ``report`` and ``graph`` draw from, run as ``check`` runs it (hot-table
    warnings, progress), with the files it could not read or use, each named once."""
    root, config, paths = _setup(args)
    cache = None if args.no_cache else Cache(args.cache_dir or root / CACHE_DIR_NAME)
    jobs = max(1, args.jobs if args.jobs is not None else default_jobs())
    catalog_notes: list[Note] = []
    catalog_errors: list[FileError] = []
    project = make_project(
        root, config, cache, notes=catalog_notes, errors=catalog_errors, jobs=jobs, cycles_first=False
    )
    for warning in hot_table_warnings(config, project.catalog.tables):
        print(f"lockorder-lint: warning: {warning}", file=sys.stderr)
    progress = progress_for(sys.stderr)
    try:
        result = run(paths, project, jobs=jobs, progress=progress, cache=cache)
    finally:
        if progress is not None:
            progress.close()
    checked_errors = {e.path for e in result.errors}
    errors = [e for e in catalog_errors if e.path not in checked_errors] + result.errors
    reported = {e.path for e in errors} | {n.path for n in result.notes}
    notes = sorted([n for n in catalog_notes if n.path not in reported] + result.notes, key=lambda n: n.path)
    return root, paths, project, result, errors, notes


def cmd_report(args: argparse.Namespace) -> int:
    """Check PATHS as ``check`` does, then write the audit report (see :mod:`lockorder_lint.report`)
    to ``-o FILE``. Exit 0 when it is written, 2 when a file could not be checked (the report
    still lists it)."""
    from lockorder_lint.report import BaselineState, build_report, render

    output: Path = args.output
    if not os.path.isdir(output.parent or "."):
        raise PathError(f"-o {output}: directory {output.parent} does not exist")
    root, paths, project, result, errors, notes = _check_for_output(args)
    baselined: list[bool] | None = None
    state: BaselineState | None = None
    if args.baseline is not None:
        recorded = read_baseline(args.baseline)
        checked = project_paths((display_path(p) for p in checked_files(paths, project).files), root)
        directories = project_paths((str(p) for p in paths if os.path.isdir(p)), root)
        checked |= missing_files(recorded, root, directories)
        outcome = compare(keys_of(result.findings, root), recorded, checked)
        new = set(outcome.new)
        baselined = [i not in new for i in range(len(result.findings))]
        state = BaselineState(
            path=str(args.baseline),
            recorded=sum(recorded.values()),
            matched=len(result.findings) - len(new),
            new=len(new),
            stale=tuple(outcome.stale),
        )
    mode, hot = _hot_evidence(project)
    report = build_report(
        title=args.title or root.name,
        root=root,
        paths=[display_path(p) if p.is_absolute() else p.as_posix() for p in paths],
        dialects=project.config.dialects,
        findings=result.findings,
        baselined=baselined,
        steps=result.steps,
        files_checked=result.parsed,
        files_analysed=result.analysed,
        migrations=result.migrations,
        cold=result.cold,
        hot_mode=mode,
        hot=hot,
        unknown=result.unknown,
        errors=errors,
        notes=notes,
        baseline=state,
    )
    _write_atomically(output, render(report, args.format), "report")
    problems: list[FileError | Note] = [*errors, *notes]
    for problem in problems:
        print(problem.render(), file=sys.stderr)
    count = len(result.findings)
    print(
        f"lockorder-lint: wrote the {args.format} report {output}: "
        f"{count} finding{'s' if count != 1 else ''} in {result.parsed} files checked; "
        f"{len(result.unknown)} statement(s) not checked and "
        f"{len(errors)} file error(s), listed in the report",
        file=sys.stderr,
    )
    return EXIT_ERROR if errors else EXIT_CLEAN


def _write_atomically(output: Path, text: str, what: str) -> None:
    """Write beside ``output``, then rename over it: a reader never sees half a file."""
    temporary = output.with_name(output.name + ".tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(output)
    except OSError as exc:
        raise PathError(f"cannot write {what} {output}: {exc.strerror or exc}") from exc


def cmd_graph(args: argparse.Namespace) -> int:
    """Check PATHS as ``check`` does, then print the lock-order graph of what it followed: tables,
    edges A -> B where a function takes rows of B while holding rows of A (with how B is taken,
    how many functions do so, one of them), hot tables, and the cycles, LCK005's and candidates.
    Exit 0 when it is written, 2 when a file could not be checked."""
    from lockorder_lint.report.graph_text import dot, graph_json
    from lockorder_lint.report.lockgraph import graph_from_steps
    from lockorder_lint.report.markdown import mermaid

    output: Path | None = args.output
    if output is not None and not os.path.isdir(output.parent or "."):
        raise PathError(f"-o {output}: directory {output.parent} does not exist")
    _root, _paths, project, result, errors, notes = _check_for_output(args)
    _mode, hot = _hot_evidence(project)
    graph = graph_from_steps(result.steps, result.findings, hot)
    text = {"dot": dot, "mermaid": mermaid, "json": graph_json}[args.format](graph)
    if output is None:
        sys.stdout.write(text)
    else:
        _write_atomically(output, text, "graph")
    problems: list[FileError | Note] = [*errors, *notes]
    for problem in problems:
        print(problem.render(), file=sys.stderr)
    cycles = len(graph.cycles)
    print(
        f"lockorder-lint: {len(graph.nodes)} tables, {len(graph.drawn_edges())} edges, "
        f"{cycles} cycle{'s' if cycles != 1 else ''} ({sum(c.confirmed for c in graph.cycles)} reported "
        f"by LCK005), from the functions the rules followed in {result.analysed} files",
        file=sys.stderr,
    )
    return EXIT_ERROR if errors else EXIT_CLEAN


def _hot_evidence(project: Project) -> tuple[str, dict[str, list[str]]]:
    """How the run decided which tables are hot, and each hot table's evidence (or setting)."""
    config = project.config
    evidence = project.contention.hot
    if config.hot_tables is not None:
        listed = {t: ["listed in hot-tables", *evidence.get(t, [])] for t in config.hot_tables}
        return f"The hot-tables setting lists {len(listed)} table(s).", listed
    if config.all_tables or project.hot is None:
        return (
            "Every table is treated as hot (all-tables); listed here: the tables the code itself "
            "shows contended (row-locked, or written under a retry).",
            dict(evidence),
        )
    return (
        "Inferred from the code: a table is hot where production code row-locks it or re-runs "
        "its writes on database errors (set hot-tables to decide).",
        dict(project.hot),
    )


def _unsafe_left(fixes: FixReport, options: str) -> str:
    """The tail of the fix summary that counts the unsafe fixes left out, worded as ruff's is."""
    count = fixes.unsafe_left
    return f"; {count} unsafe fix(es) available with {options}" if count else ""


def _not_fixed(findings: list[Finding], fixes: FixReport, project: Project) -> list[Finding]:
    """The findings that the fixes would leave: all those of files they do not touch, and those of
    a fixed file still found in its fixed text (matched on code, function and statement, as a
    baseline matches, since the inserted lines move the rest). Positions are today's."""
    left_in: dict[str, Counter[tuple[str, str | None, str]]] = {}
    for fix in fixes.files:
        after = check_source(fix.after.encode(fix.encoding), fix.path, fix.display, project)
        left_in[fix.display] = Counter((f.code, f.function, f.statement) for f in after.findings)
    left = []
    for finding in findings:
        remaining = left_in.get(finding.path)
        key = (finding.code, finding.function, finding.statement)
        if remaining is None:
            left.append(finding)
        elif remaining[key] > 0:
            remaining[key] -= 1
            left.append(finding)
    return left


def _render(fmt: str, findings: list[Finding], repository: Path, errors: list[FileError]) -> str:
    if fmt == "json":
        return render_json(findings, errors)
    if fmt == "sarif":
        return render_sarif(findings, repository, errors)
    if fmt == "github":
        return render_github(findings, repository, errors)
    return render_text(findings)


def _repository_root(args: argparse.Namespace, root: Path) -> Path:
    """``--repository-root``, else the git repository holding the project root, else that root."""
    if args.repository_root is None:
        return find_repository_root(root)
    if not os.path.isdir(args.repository_root):
        raise PathError(f"--repository-root {args.repository_root} is not a directory")
    return Path(os.path.realpath(args.repository_root))


def _unused_noqa(paths: list[Path], project: Project) -> list[UnusedNoqa]:
    """Re-check, in this process, only the files that hold a ``# noqa: LCKnnn``."""
    unused: list[UnusedNoqa] = []
    for path in checked_files(paths, project).files:
        display = display_path(path)
        data, _error = read_file(path, display)
        if data is None or b"noqa" not in data.lower():
            continue
        try:
            text = decode(data)
        except (UnicodeDecodeError, LookupError, SyntaxError):
            continue

        def findings_of(source: bytes, path: Path = path, display: str = display) -> list[tuple[int, str]]:
            return [(f.line, f.code) for f in check_source(source, path, display, project).findings]

        unused.extend(unused_noqa(display, data, text, findings_of))
    return unused


def cmd_tables(args: argparse.Namespace) -> int:
    """The catalog as the rules see it: each table's key, indexes and relationships, which
    declaration defined it (and which it set aside), and whether it is hot and why."""
    root, config, _paths = _setup(args)
    notes: list[Note] = []
    errors: list[FileError] = []
    project = make_project(root, config, notes=notes, errors=errors)
    catalog = project.catalog
    problems: list[FileError | Note] = [*errors, *notes]
    for problem in problems:
        print(problem.render(), file=sys.stderr)
    tables = sorted(catalog.tables.values(), key=lambda t: t.name)
    effective = project.config
    from lockorder_lint.protocols import serialized_by

    serialized = serialized_by(project)
    if args.format == "json":
        data = [
            {
                "table": t.name,
                "classes": t.classes,
                "primary_key": list(t.primary_key),
                "indexes": [
                    {"name": i.name, "columns": list(i.columns), "unique": i.unique} for i in t.indexes
                ],
                "defined_at": t.locations,
                "definition": t.definition,
                "set_aside": t.ignored,
                "hot": _hotness(project, t.name)[0],
                "hot_because": _hotness(project, t.name)[1],
                "relationships": [
                    {
                        "class": r.owner,
                        "name": r.name,
                        "target_class": r.target_class,
                        "target_table": r.target,
                        "lazy": r.lazy,
                        "innerjoin": r.innerjoin,
                        "declared_by": r.via,
                        "defined_at": r.location,
                    }
                    for r in t.relationships
                ],
                "serialized_by": [
                    {"parent": p.parent, "modes": list(p.modes), "followers": list(p.followers)}
                    for p in serialized.get(t.name, [])
                ],
            }
            for t in tables
        ]
        print(json.dumps(data, indent=2))
        return EXIT_ERROR if errors else EXIT_CLEAN
    for t in tables:
        pk = ", ".join(t.primary_key) or "(none declared)"
        classes = ", ".join(t.classes) or "-"
        print(f"{t.name}  [{classes}]  primary key: {pk}  defined at: {', '.join(t.locations)}")
        if t.ignored:
            print(f"    definition: {t.definition}; set aside: {'; '.join(t.ignored)}")
        elif t.definition and not t.definition.endswith("(the application)"):
            print(f"    definition: {t.definition}")  # only migrations or a package define it
        hot, because = _hotness(project, t.name)
        print(f"    {'hot' if hot else 'not hot'}: {because}")
        for index in t.indexes:
            unique = " unique" if index.unique else ""
            print(f"    index {index.name}{unique}: {', '.join(index.columns)}")
        for rel in t.relationships:
            reaches = rel.target or f"{rel.target_class} (not in the catalog)"
            join = ", innerjoin" if rel.joined and rel.innerjoin else ""
            origin = f", {rel.via}" if rel.via != "relationship" else ""
            print(f"    relationship {rel.owner}.{rel.name} -> {reaches}  lazy={rel.lazy}{join}{origin}")
        for protocol in serialized.get(t.name, []):
            print(
                f"    serialized by the {protocol.parent} row lock ({' or '.join(protocol.modes)}): "
                f"{', '.join(protocol.followers)} lock it first"
            )
    inferred = "" if effective.dialects_set else " (from the code; set `dialects` to decide)"
    counted = f"{len(tables)} table" + ("" if len(tables) == 1 else "s")
    print(f"{counted}; dialects: {', '.join(effective.dialects)}{inferred}", file=sys.stderr)
    return EXIT_ERROR if errors else EXIT_CLEAN


def _hotness(project: Project, table: str) -> tuple[bool, str]:
    """Whether the rules treat a table as hot, and the evidence or setting that says so."""
    config = project.config
    if config.hot_tables is not None:
        listed = table in config.hot_tables
        return listed, "listed in hot-tables" if listed else "not listed in hot-tables"
    if config.all_tables or project.hot is None:
        return True, "every table (all-tables)"
    reasons = project.hot.get(table, [])
    if not reasons:
        return False, "nothing in production code row-locks it or retries writes to it"
    more = f" and {len(reasons) - 1} more" if len(reasons) > 1 else ""
    return True, f"{reasons[0]}{more}"


def cmd_explain(args: argparse.Namespace) -> int:
    if not args.paths:
        print("lockorder-lint explain: name a rule, e.g. `lockorder-lint explain LCK001`", file=sys.stderr)
        return EXIT_ERROR
    code = str(args.paths[0]).upper()
    rule = RULES_BY_CODE.get(code) or next((r for r in ALL_RULES if r.name == code.lower()), None)
    if rule is None:
        print(
            f"lockorder-lint explain: unknown rule {code}; known: {', '.join(RULES_BY_CODE)}", file=sys.stderr
        )
        return EXIT_ERROR
    page = page_path(rule.code)
    if page is None:
        print(f"{rule.code} {rule.name}: {rule.summary}")
    else:
        sys.stdout.write(page.read_text(encoding="utf-8"))
    return EXIT_CLEAN


def cmd_rules(args: argparse.Namespace) -> int:
    if args.format == "json":
        print(
            json.dumps(
                [
                    {"code": r.code, "name": r.name, "summary": r.summary, "preview": r.preview}
                    for r in ALL_RULES
                ],
                indent=2,
            )
        )
    else:
        for rule in ALL_RULES:
            preview = f" (preview: runs only with --select {rule.code})" if rule.preview else ""
            print(f"{rule.code}  {rule.name:<28} {rule.summary}{preview}")
    return EXIT_CLEAN


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = "check"
    if argv and argv[0] in COMMANDS:
        command = argv.pop(0)
    parser = _parser(command)
    try:
        args = parser.parse_args(argv)
        if command in ("report", "graph") and (args.fix or args.diff or args.write_baseline):
            parser.error(
                f"{command} writes a {command} only: run --fix, --diff or --write-baseline as a check"
            )
        if args.diff and args.format != "text":
            parser.error("--diff writes the diff on stdout, so it takes only --format text")
        if args.unsafe_fixes and not (args.fix or args.diff):
            parser.error("--unsafe-fixes only applies with --fix or --diff")
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_ERROR
    handler = {
        "check": cmd_check,
        "report": cmd_report,
        "graph": cmd_graph,
        "tables": cmd_tables,
        "explain": cmd_explain,
        "rules": cmd_rules,
    }[command]
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"lockorder-lint: config error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except PathError as exc:
        print(f"lockorder-lint: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_CLEAN
    except Exception as exc:  # a bug: one line and exit 2, never a traceback and exit 1 ("findings")
        print(f"lockorder-lint: internal error: {_crash_line(exc)}", file=sys.stderr)
        return EXIT_ERROR


def entry() -> None:
    """The console command: ``main``, then exit without tearing down the heap. A run leaves
    millions of objects (syntax trees, the program index) that the interpreter would free one by
    one at exit, a quarter of a pre-commit run's time; the output is flushed first and nothing
    else is pending (the cache is saved by the run itself), so the process just ends, as mypy's
    does."""
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # the reader went away (``| head``): nothing more to say
        code = code or EXIT_CLEAN
    except OSError:
        code = EXIT_ERROR
    os._exit(code)


def _crash_line(exc: BaseException) -> str:
    """The exception in one line, naming first the file it concerns when it says which."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {type(exc).__name__}: {exc.strerror or exc}"
    message = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {message}"
