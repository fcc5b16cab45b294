"""The flake8 plugin, run by real flake8: the same findings as the CLI (codes, lines, columns,
messages), the project's configuration applied, and the catalog built once per run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lockorder_lint import flake8_plugin
from lockorder_lint.flake8_plugin import LockorderChecker
from tests.test_cli import CLEAN, LCK001_AT, make_sample

REPO = Path(__file__).resolve().parent.parent
FLAKE8 = [sys.executable, "-m", "flake8", "--isolated", "--select", "LCK"]


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)


@pytest.fixture
def fixtures_project(tmp_path: Path) -> Path:
    """The regression fixtures as a project of their own, so the catalog is theirs alone."""
    project = tmp_path / "project"
    shutil.copytree(
        REPO / "tests" / "fixtures", project / "fixtures", ignore=shutil.ignore_patterns("__pycache__")
    )
    (project / "pyproject.toml").write_text('[project]\nname = "fixtures"\n', encoding="utf-8")
    return project


def test_flake8_reports_exactly_what_the_cli_reports_on_the_fixtures(fixtures_project: Path) -> None:
    cli = run([sys.executable, "-m", "lockorder_lint", "-j", "1", "fixtures"], fixtures_project)
    flake8 = run([*FLAKE8, "fixtures"], fixtures_project)
    assert cli.returncode == 1, cli.stderr
    assert flake8.returncode == 1, flake8.stderr
    assert flake8.stderr == ""
    # The CLI indents LCK005's traces under their finding; flake8 shows the finding's line alone.
    cli_lines = [line for line in cli.stdout.splitlines() if not line.startswith(" ")]
    assert len(cli_lines) > 30
    # Same default line format: path:line:col: CODE message.
    assert sorted(flake8.stdout.splitlines()) == sorted(cli_lines)


def test_flake8_applies_the_project_configuration(tmp_path: Path) -> None:
    sample = make_sample(tmp_path / "s", 'ignore = ["LCK002"]\n')
    result = run([*FLAKE8, "app"], sample)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"app/jobs.py:{LCK001_AT[0]}:{LCK001_AT[1]}: LCK001 bulk UPDATE of account")
    quiet = make_sample(tmp_path / "q", 'hot-tables = ["something_else"]\n')
    result = run([*FLAKE8, "app"], quiet)
    assert (result.returncode, result.stdout) == (0, "")


def test_flake8_noqa_and_select(tmp_path: Path) -> None:
    sample = make_sample(tmp_path / "s")
    jobs = sample / "app" / "jobs.py"
    lines = jobs.read_text(encoding="utf-8").splitlines()
    lines[LCK001_AT[0] - 1] += "  # noqa: LCK001"
    jobs.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run([*FLAKE8, "app"], sample)
    assert [line.split(": ")[1].split()[0] for line in result.stdout.splitlines()] == ["LCK002"]
    result = run([sys.executable, "-m", "flake8", "--isolated", "--select", "LCK001", "app"], sample)
    assert (result.returncode, result.stdout) == (0, "")


@pytest.mark.parametrize("select", ["LCK", "LCK001", "E9"])
def test_flake8_config_error_fails_the_run_once_whatever_is_selected(tmp_path: Path, select: str) -> None:
    sample = make_sample(tmp_path / "s", 'hot-table = ["account"]\n')
    (sample / "app" / "more.py").write_text(CLEAN, encoding="utf-8")
    result = run([sys.executable, "-m", "flake8", "--isolated", "--select", select, "app"], sample)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"lockorder-lint: configuration error: {sample / 'pyproject.toml'}: "
        "unknown key `hot-table` in [tool.lockorder-lint]\n"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--select", "LCK999"], "flake8 option --select holds 'LCK999', which is not a known code"),
        (["--extend-select", "LCK0011"], "option --extend-select holds 'LCK0011'"),
        (["--extend-ignore", "LCK9"], "option --extend-ignore holds 'LCK9'"),
        (["--per-file-ignores", "app/*:LCK0011"], "option --per-file-ignores holds 'LCK0011'"),
    ],
)
def test_flake8_options_naming_unknown_lck_codes_fail_the_run(
    tmp_path: Path, options: list[str], message: str
) -> None:
    sample = make_sample(tmp_path / "s")
    result = run([sys.executable, "-m", "flake8", "--isolated", *options, "app"], sample)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith("lockorder-lint: ") and message in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_flake8_options_may_name_the_plugin_code_and_rule_prefixes(tmp_path: Path) -> None:
    sample = make_sample(tmp_path / "s")
    result = run(
        [
            sys.executable,
            "-m",
            "flake8",
            "--isolated",
            "--select",
            "LCK00",
            "--extend-ignore",
            "LCK000",
            "app",
        ],
        sample,
    )
    assert result.returncode == 1, result.stderr
    assert len(result.stdout.splitlines()) == 2


# Runs flake8 with make_project wrapped so that every catalog build, in any process, appends a line.
COUNTING_DRIVER = """
import sys

import lockorder_lint.flake8_plugin as plugin
from flake8.main.cli import main

log_path = sys.argv.pop(1)
original = plugin.make_project


def counting(*args, **kwargs):
    with open(log_path, "a") as log:
        log.write("built\\n")
    return original(*args, **kwargs)


plugin.make_project = counting
sys.exit(main())
"""


def test_catalog_is_built_once_per_flake8_run_even_with_workers(
    tmp_path: Path, fixtures_project: Path
) -> None:
    driver = tmp_path / "driver.py"
    driver.write_text(COUNTING_DRIVER, encoding="utf-8")
    log = tmp_path / "builds.log"
    result = run(
        [sys.executable, str(driver), str(log), "--isolated", "--select", "LCK", "-j", "2", "fixtures"],
        fixtures_project,
    )
    assert result.returncode == 1, result.stderr
    assert len(result.stdout.splitlines()) > 30
    assert log.read_text(encoding="utf-8") == "built\n"


def test_checkers_of_one_project_share_the_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sample = make_sample(tmp_path / "s")
    (sample / "app" / "more.py").write_text((sample / "app" / "jobs.py").read_text(), encoding="utf-8")
    monkeypatch.setattr(flake8_plugin, "_PROJECTS", {})
    builds: list[Path] = []
    original = flake8_plugin.make_project

    def counting(root: Path, *args: object, **kwargs: object) -> object:
        builds.append(root)
        return original(root, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(flake8_plugin, "make_project", counting)
    found = []
    for name in ("jobs.py", "more.py"):
        path = sample / "app" / name
        checker = LockorderChecker(None, str(path), path.read_text().splitlines(keepends=True))  # type: ignore[arg-type]
        found.append([(line, col, text.split()[0]) for line, col, text, _ in checker.run()])
    assert builds == [sample.resolve()]
    expected = [(LCK001_AT[0], LCK001_AT[1] - 1, "LCK001"), (12, 78, "LCK002")]
    assert found == [expected, expected]


def test_flake8_checks_what_it_reads_from_stdin(tmp_path: Path) -> None:
    """Editors pipe the unsaved buffer and name it with --stdin-display-name."""
    sample = make_sample(tmp_path / "s")
    fixed = subprocess.run(
        [*FLAKE8, "--stdin-display-name", "app/jobs.py", "-"],
        cwd=sample,
        input=CLEAN,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (fixed.returncode, fixed.stdout) == (0, ""), fixed.stderr
    broken = subprocess.run(
        [*FLAKE8, "--stdin-display-name", "app/other.py", "-"],
        cwd=sample,
        input=(sample / "app" / "jobs.py").read_text(encoding="utf-8"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert broken.returncode == 1
    assert [line.split(": ")[1].split()[0] for line in broken.stdout.splitlines()] == ["LCK001", "LCK002"]
    assert broken.stdout.startswith(f"app/other.py:{LCK001_AT[0]}:{LCK001_AT[1]}: LCK001 ")


def test_flake8_uses_one_root_for_the_run_like_the_cli(tmp_path: Path) -> None:
    """Without a project marker, the root is the paths' common parent, for flake8 as for the CLI,
    so models in a sibling package are known."""
    sample = make_sample(tmp_path / "s")
    (sample / "pyproject.toml").unlink()
    (sample / "app" / "sub").mkdir()
    (sample / "app" / "jobs.py").rename(sample / "app" / "sub" / "jobs.py")
    cli = run([sys.executable, "-m", "lockorder_lint", "-j", "1", "app"], sample)
    flake8 = run([*FLAKE8, "app"], sample)
    assert cli.returncode == 1, cli.stderr
    assert len(cli.stdout.splitlines()) == 2
    assert sorted(flake8.stdout.splitlines()) == sorted(cli.stdout.splitlines())
