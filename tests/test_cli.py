"""The command line as a user meets it: exit codes, output formats, selection, suppression,
errors that name what is wrong, and which files a directory walk visits."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lockorder_lint import __version__
from lockorder_lint.cli import COMMANDS, main
from lockorder_lint.progress import progress_for

MODELS = """\
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "account"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(50), index=True)
    status: Mapped[str] = mapped_column(String(20))
"""

JOBS = """\
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.models import Account


def close_owner(session: Session, owner: str) -> None:
    session.execute(update(Account).where(Account.owner == owner).values(status="closed"))


def lock_owner(session: Session, owner: str) -> list[Account]:
    return list(session.scalars(select(Account).where(Account.owner == owner).with_for_update()))
"""

CLEAN = """\
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.models import Account


def close_one(session: Session, ident: int) -> None:
    session.execute(update(Account).where(Account.id == ident).values(status="closed"))
"""

# Where JOBS's findings are, as the CLI prints them (1-based line:column).
LCK001_AT = (8, 21)
LCK002_AT = (12, 79)


def make_sample(root: Path, settings: str = "") -> Path:
    """A small project: one model module and one module with an LCK001 and an LCK002."""
    (root / "app").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "sample"\n\n[tool.lockorder-lint]\n{settings}', encoding="utf-8"
    )
    (root / "app" / "__init__.py").write_text("", encoding="utf-8")
    (root / "app" / "models.py").write_text(MODELS, encoding="utf-8")
    (root / "app" / "jobs.py").write_text(JOBS, encoding="utf-8")
    return root


def run_cli(
    capsys: pytest.CaptureFixture[str], *args: str | Path, cwd: Path | None = None
) -> tuple[int, str, str]:
    """Run ``main`` in-process (one worker, so no pool) and return (exit code, stdout, stderr)."""
    previous = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        words = [str(a) for a in args]
        command = words[:1] if words[:1] and words[0] in COMMANDS else []
        code = main([*command, "-j", "1", *words[len(command) :]])
    finally:
        os.chdir(previous)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return make_sample(tmp_path / "sample")


def test_findings_exit_1_in_sorted_path_line_col_code_message_lines(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (sample / "app" / "a_more.py").write_text(JOBS, encoding="utf-8")
    code, out, err = run_cli(capsys, "app", cwd=sample)
    assert code == 1
    lines = out.splitlines()
    expected_prefixes = [
        f"app/a_more.py:{LCK001_AT[0]}:{LCK001_AT[1]}: LCK001 bulk UPDATE of account",
        f"app/a_more.py:{LCK002_AT[0]}:{LCK002_AT[1]}: LCK002 FOR UPDATE on account",
        f"app/jobs.py:{LCK001_AT[0]}:{LCK001_AT[1]}: LCK001 bulk UPDATE of account",
        f"app/jobs.py:{LCK002_AT[0]}:{LCK002_AT[1]}: LCK002 FOR UPDATE on account",
    ]
    assert len(lines) == len(expected_prefixes)
    for line, prefix in zip(lines, expected_prefixes, strict=True):
        assert line.startswith(prefix), line
    assert err == "4 findings (LCK001 2, LCK002 2) in 4 files checked\n"


def test_clean_code_exits_0(sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (sample / "app" / "jobs.py").write_text(CLEAN, encoding="utf-8")
    code, out, err = run_cli(capsys, sample)
    assert (code, out) == (0, "")
    assert err.startswith("0 findings in 3 files checked")


def test_json_output_is_pure_json_with_the_documented_keys(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "--format", "json", "app/jobs.py", cwd=sample)
    assert code == 1
    data = json.loads(out)
    assert [(d["code"], d["line"], d["column"]) for d in data] == [
        ("LCK001", *LCK001_AT),
        ("LCK002", *LCK002_AT),
    ]
    for key in ("path", "line", "column", "end_line", "end_column", "code", "message", "table"):
        assert key in data[0]
    assert data[0]["path"] == "app/jobs.py"
    assert data[0]["table"] == "account"
    assert data[0]["end_line"] == LCK001_AT[0]
    assert data[0]["end_column"] > data[0]["column"]
    assert err == ""


def test_json_stays_pure_in_a_subprocess_under_ci(sample: Path) -> None:
    env = {**os.environ, "CI": "true", "GITHUB_ACTIONS": "true", "TERM": "xterm-256color"}
    proc = subprocess.run(
        [sys.executable, "-m", "lockorder_lint", "--format", "json", "app"],
        cwd=sample,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert len(json.loads(proc.stdout)) == 2
    assert proc.stderr == ""


@pytest.mark.parametrize(
    ("options", "codes"),
    [
        (["--select", "LCK001"], ["LCK001"]),
        (["--select", "LCK002"], ["LCK002"]),
        (["--ignore", "LCK001"], ["LCK002"]),
        (["--select", "LCK", "--ignore", "LCK00"], []),
        (["--select", "LCK00", "--ignore", "LCK002"], ["LCK001"]),
    ],
)
def test_select_and_ignore(
    sample: Path, capsys: pytest.CaptureFixture[str], options: list[str], codes: list[str]
) -> None:
    code, out, _err = run_cli(capsys, *options, "--format", "json", "app/jobs.py", cwd=sample)
    assert [d["code"] for d in json.loads(out)] == codes
    assert code == (1 if codes else 0)


def test_select_rejects_a_foreign_code(sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "--select", "E501", "app", cwd=sample)
    assert code == 2
    assert out == ""
    assert "'E501' is not an LCK code" in err


def test_config_select_and_per_file_ignores_apply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = make_sample(tmp_path / "s", 'ignore = ["LCK002"]\n[tool.lockorder-lint.per-file-ignores]\n')
    code, out, _err = run_cli(capsys, "--format", "json", "app", cwd=sample)
    assert [d["code"] for d in json.loads(out)] == ["LCK001"]
    other = make_sample(
        tmp_path / "o", '[tool.lockorder-lint.per-file-ignores]\n"app/jobs.py" = ["LCK001"]\n'
    )
    code, out, _err = run_cli(capsys, "--format", "json", "app", cwd=other)
    assert [d["code"] for d in json.loads(out)] == ["LCK002"]


@pytest.mark.parametrize(
    ("comment", "codes"),
    [
        ("  # noqa: LCK001", ["LCK002"]),
        ("  # noqa", ["LCK002"]),
        ("  # noqa: LCK002", ["LCK001", "LCK002"]),
        ("  # NOQA:LCK001,E501", ["LCK002"]),
    ],
)
def test_noqa_on_the_reported_line(
    sample: Path, capsys: pytest.CaptureFixture[str], comment: str, codes: list[str]
) -> None:
    jobs = sample / "app" / "jobs.py"
    lines = jobs.read_text(encoding="utf-8").splitlines()
    lines[LCK001_AT[0] - 1] += comment
    jobs.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _code, out, _err = run_cli(capsys, "--format", "json", "app/jobs.py", cwd=sample)
    assert [d["code"] for d in json.loads(out)] == codes


def test_unparseable_file_is_named_with_line_and_reason_and_others_still_checked(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (sample / "app" / "broken.py").write_text(
        "from sqlalchemy import update\n\ndef f(session):\n    session.execute(update(X)\n", encoding="utf-8"
    )
    code, out, err = run_cli(capsys, "app", cwd=sample)
    assert code == 2
    assert [line.split(": ")[1].split()[0] for line in out.splitlines()] == ["LCK001", "LCK002"]
    errors = [line for line in err.splitlines() if "broken.py" in line]
    assert len(errors) == 1
    assert errors[0].startswith("app/broken.py:4: error: cannot parse: ")
    assert "'(' was never closed" in errors[0]


def test_missing_path_is_an_error(sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run_cli(capsys, "app/nope.py", cwd=sample)
    assert code == 2
    assert "app/nope.py: error: no such file or directory" in err


def test_unknown_config_key_names_key_and_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = make_sample(tmp_path / "s", 'hot-table = ["account"]\n')
    code, out, err = run_cli(capsys, "app", cwd=sample)
    assert (code, out) == (2, "")
    assert "unknown key `hot-table`" in err
    assert str(sample / "pyproject.toml") in err


def test_wrong_config_type_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = make_sample(tmp_path / "s", 'hot-tables = "account"\n')
    code, out, err = run_cli(capsys, "app", cwd=sample)
    assert (code, out) == (2, "")
    assert "`hot-tables` must be a list of strings" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--version"])
    assert code == 0
    assert capsys.readouterr().out.strip() == f"lockorder-lint {__version__}"


def test_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--no-such-option"]) == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


def test_python_dash_m(sample: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lockorder_lint", "app/jobs.py"],
        cwd=sample,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stdout.startswith(f"app/jobs.py:{LCK001_AT[0]}:{LCK001_AT[1]}: LCK001 ")


def test_directory_walk_skips_tool_dirs_and_exclude_globs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = make_sample(tmp_path / "s", 'extend-exclude = ["app/generated", "*_skip.py"]\n')
    for skipped in (".git", ".venv", "node_modules", "app/generated", "env"):
        (sample / skipped).mkdir(parents=True, exist_ok=True)
        (sample / skipped / "jobs.py").write_text(JOBS, encoding="utf-8")
    (sample / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n", encoding="utf-8")
    (sample / "app" / "also_skip.py").write_text(JOBS, encoding="utf-8")
    (sample / "app" / "kept.py").write_text(JOBS, encoding="utf-8")
    code, out, err = run_cli(capsys, ".", cwd=sample)
    assert code == 1
    assert sorted({line.split(":")[0] for line in out.splitlines()}) == ["app/jobs.py", "app/kept.py"]
    assert err.startswith("4 findings (LCK001 2, LCK002 2) in 4 files checked")


def test_show_unknown_lists_statements_on_unknown_tables(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (sample / "app" / "elsewhere.py").write_text(
        "from sqlalchemy import update\nfrom thirdparty import Widget\n\n\n"
        "def retire(session, kind):\n"
        "    session.execute(update(Widget).where(Widget.kind == kind).values(retired=True))\n",
        encoding="utf-8",
    )
    code, out, err = run_cli(capsys, "app/elsewhere.py", cwd=sample)
    assert (code, out) == (0, "")
    assert err == ("0 findings in 1 file checked; 1 statement not checked (--show-unknown lists them)\n")
    code, out, err = run_cli(capsys, "--show-unknown", "app/elsewhere.py", cwd=sample)
    assert err.splitlines()[0] == (
        "app/elsewhere.py:6:21: not checked: UPDATE on Widget: table not in the catalog"
    )


def test_declared_tables_make_unknown_models_checkable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = make_sample(tmp_path / "s", '[tool.lockorder-lint.tables]\n"thirdparty.Widget" = ["id"]\n')
    (sample / "app" / "elsewhere.py").write_text(
        "from sqlalchemy import update\nfrom thirdparty import Widget\n\n\n"
        "def retire(session, kind):\n"
        "    session.execute(update(Widget).where(Widget.kind == kind).values(retired=True))\n",
        encoding="utf-8",
    )
    # Nothing in the project locks Widget rows, so only --all-tables makes the table hot.
    code, out, err = run_cli(capsys, "--all-tables", "app/elsewhere.py", cwd=sample)
    assert code == 1, err
    assert out.startswith("app/elsewhere.py:6:21: LCK001 bulk UPDATE of Widget locks rows through kind")


def test_tables_command(sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["tables", str(sample)])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.splitlines()[0] == (
        f"account  [Account]  primary key: id  defined at: {sample / 'app' / 'models.py'}:9"
    )
    assert captured.err == "1 table; dialects: postgresql (from the code; set `dialects` to decide)\n"
    code = main(["tables", "--format", "json", str(sample)])
    data = json.loads(capsys.readouterr().out)
    assert data[0]["table"] == "account"
    assert data[0]["primary_key"] == ["id"]
    assert data[0]["classes"] == ["Account"]
    assert [i["columns"] for i in data[0]["indexes"]] == [["owner"]]


def test_rules_command_lists_every_rule(capsys: pytest.CaptureFixture[str]) -> None:
    from lockorder_lint.rules import ALL_RULES

    assert main(["rules"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == [r.code for r in ALL_RULES]
    assert out[0].split()[1] == "unordered-bulk-write"
    assert main(["rules", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(d["code"], d["name"]) for d in data] == [(r.code, r.name) for r in ALL_RULES]
    assert all(d["summary"] for d in data)


def test_explain_prints_the_rule_page(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "LCK001"]) == 0
    page = (Path(__file__).resolve().parent.parent / "rules" / "LCK001.md").read_text(encoding="utf-8")
    assert capsys.readouterr().out == page
    assert main(["explain", "unordered-for-update"]) == 0
    assert capsys.readouterr().out.startswith("# LCK002 unordered-for-update\n")


def test_explain_unknown_rule(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "LCK999"]) == 2
    assert "unknown rule LCK999" in capsys.readouterr().err


def test_warn_unused_noqa_reports_lck_codes_that_suppress_nothing(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = sample / "app" / "jobs.py"
    lines = jobs.read_text(encoding="utf-8").splitlines()
    lines[LCK001_AT[0] - 1] += "  # noqa: LCK001, LCK002, E501"  # LCK002 is not reported on this line
    lines[LCK002_AT[0] - 1] += "  # noqa: LCK002"  # used
    lines[0] += "  # noqa: LCK001"  # nothing at all here
    lines[1] += "  # noqa"  # bare: may serve another tool, never reported
    jobs.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "app/jobs.py", cwd=sample)
    assert (code, out) == (0, "")
    assert "unused" not in err
    code, out, err = run_cli(capsys, "--warn-unused-noqa", "app/jobs.py", cwd=sample)
    assert (code, out) == (1, "")
    column = len(JOBS.splitlines()[LCK001_AT[0] - 1]) + 3
    assert [line for line in err.splitlines() if "unused noqa" in line] == [
        f"app/jobs.py:1:{len(JOBS.splitlines()[0]) + 3}: unused noqa: LCK001 suppresses nothing here",
        f"app/jobs.py:{LCK001_AT[0]}:{column}: unused noqa: LCK002 suppresses nothing here",
    ]


def test_warn_unused_noqa_is_quiet_when_every_noqa_is_used(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = sample / "app" / "jobs.py"
    lines = jobs.read_text(encoding="utf-8").splitlines()
    lines[LCK001_AT[0] - 1] += "  # noqa: LCK001"
    jobs.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "--warn-unused-noqa", "--select", "LCK001", "app", cwd=sample)
    assert (code, out) == (0, "")
    assert "unused" not in err


class FakeTerminal(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_only_on_a_terminal_outside_ci() -> None:
    assert progress_for(FakeTerminal(tty=False), {}) is None
    assert progress_for(FakeTerminal(tty=True), {"CI": "true"}) is None
    assert progress_for(FakeTerminal(tty=True), {"CI": "1"}) is None
    assert progress_for(FakeTerminal(tty=True), {}) is not None
    assert progress_for(FakeTerminal(tty=True), {"CI": "false"}) is not None


def test_progress_line_is_drawn_for_many_files_and_erased() -> None:
    stream = FakeTerminal(tty=True)
    progress = progress_for(stream, {})
    assert progress is not None
    for done in range(1, 501):
        progress(done, 500)
    progress.close()
    text = stream.getvalue()
    assert text.startswith("\rchecked 1/500 files (0%)")
    assert "\rchecked 250/500 files (50%)" in text
    assert "\rchecked 500/500 files (100%)" in text
    assert text.endswith("\r\x1b[K")
    assert text.count("\r") == 102  # once per percent, plus the final erase


def test_progress_is_silent_for_a_few_files() -> None:
    stream = FakeTerminal(tty=True)
    progress = progress_for(stream, {})
    assert progress is not None
    for done in range(1, 6):
        progress(done, 5)
    progress.close()
    assert stream.getvalue() == ""


def test_piped_run_over_many_files_prints_no_progress(tmp_path: Path) -> None:
    sample = make_sample(tmp_path / "s")
    for n in range(120):
        (sample / "app" / f"m{n}.py").write_text(CLEAN, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    proc = subprocess.run(
        [sys.executable, "-m", "lockorder_lint", "-j", "1", "app"],
        cwd=sample,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr == "2 findings (LCK001 1, LCK002 1) in 123 files checked\n"
