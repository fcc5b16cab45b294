"""The ``lockorder-lint`` command line: check (the default), tables, explain, rules."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from lockorder_lint import __version__
from lockorder_lint.config import Config, ConfigError, load_config
from lockorder_lint.files import find_project_root
from lockorder_lint.reporters import render_json, render_text, render_unknown, summary
from lockorder_lint.resources import page_path
from lockorder_lint.rules import ALL_RULES, RULES_BY_CODE
from lockorder_lint.runner import default_jobs, make_project, run

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
COMMANDS = ("check", "tables", "explain", "rules")


def _codes(value: str) -> tuple[str, ...]:
    codes = tuple(c.strip().upper() for c in value.split(",") if c.strip())
    for code in codes:
        if not code.startswith("LCK"):
            raise argparse.ArgumentTypeError(f"{code!r} is not an LCK code or prefix")
    return codes


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lockorder-lint",
        description="Find SQLAlchemy code that takes row locks in an order that deadlocks.",
        epilog="Commands: check (default) PATHS | tables PATHS | explain CODE | rules",
    )
    parser.add_argument("paths", nargs="*", type=Path, help="files or directories (default: .)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    parser.add_argument("--select", type=_codes, help="comma-separated codes or prefixes to report")
    parser.add_argument("--ignore", type=_codes, help="comma-separated codes or prefixes to skip")
    parser.add_argument(
        "--config", type=Path, help="configuration file (default: pyproject.toml at the project root)"
    )
    parser.add_argument("--project-root", type=Path, help="root whose models form the catalog")
    parser.add_argument(
        "--show-unknown", action="store_true", help="list statements on tables the catalog does not know"
    )
    parser.add_argument(
        "--jobs", "-j", type=int, default=None, help="worker processes (default: CPU count; 1 = in-process)"
    )
    parser.add_argument("--version", action="version", version=f"lockorder-lint {__version__}")
    return parser


def _setup(args: argparse.Namespace) -> tuple[Path, Config, list[Path]]:
    paths: list[Path] = args.paths or [Path(".")]
    root = (args.project_root or find_project_root([p for p in paths if p.exists()] or [Path(".")])).resolve()
    config_path = args.config or root / "pyproject.toml"
    config = load_config(config_path, explicit=args.config is not None)
    if args.select is not None:
        config = replace(config, select=args.select)
    if args.ignore is not None:
        config = replace(config, ignore=config.ignore + args.ignore)
    return root, config, paths


def cmd_check(args: argparse.Namespace) -> int:
    root, config, paths = _setup(args)
    project = make_project(root, config)
    jobs = args.jobs if args.jobs is not None else default_jobs()
    result = run(paths, project, jobs=max(1, jobs))
    out = render_json(result.findings) if args.format == "json" else render_text(result.findings)
    sys.stdout.write(out)
    for error in result.errors:
        print(error.render(), file=sys.stderr)
    if args.show_unknown:
        sys.stderr.write(render_unknown(result.unknown))
    if args.format == "text":
        sys.stderr.write(summary(len(result.findings), result.files, len(result.unknown), len(result.errors)))
    if result.errors:
        return EXIT_ERROR
    return EXIT_FINDINGS if result.findings else EXIT_CLEAN


def cmd_tables(args: argparse.Namespace) -> int:
    root, config, _paths = _setup(args)
    catalog = make_project(root, config).catalog
    tables = sorted(catalog.tables.values(), key=lambda t: t.name)
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
            }
            for t in tables
        ]
        print(json.dumps(data, indent=2))
        return EXIT_CLEAN
    for t in tables:
        pk = ", ".join(t.primary_key) or "(none declared)"
        classes = ", ".join(t.classes) or "-"
        print(f"{t.name}  [{classes}]  primary key: {pk}  defined at: {', '.join(t.locations)}")
        for index in t.indexes:
            unique = " unique" if index.unique else ""
            print(f"    index {index.name}{unique}: {', '.join(index.columns)}")
    print(f"{len(tables)} tables", file=sys.stderr)
    return EXIT_CLEAN


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
            json.dumps([{"code": r.code, "name": r.name, "summary": r.summary} for r in ALL_RULES], indent=2)
        )
    else:
        for rule in ALL_RULES:
            print(f"{rule.code}  {rule.name:<28} {rule.summary}")
    return EXIT_CLEAN


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = "check"
    if argv and argv[0] in COMMANDS:
        command = argv.pop(0)
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_ERROR
    handler = {"check": cmd_check, "tables": cmd_tables, "explain": cmd_explain, "rules": cmd_rules}[command]
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"lockorder-lint: config error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_CLEAN
