"""The pre-commit hook, run for real: ``pre-commit try-repo`` installs this checkout into its own
environment and runs the ``lockorder-lint`` hook over a throwaway repository.

try-repo is pointed at the checkout's HEAD commit (``--ref``), so the test checks what is
committed, and uncommitted work in the checkout cannot break it. pre-commit builds the package
with pip, which needs the package index for the build backend and libcst."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cli import CLEAN, LCK001_AT, LCK002_AT, make_sample

REPO = Path(__file__).resolve().parent.parent
HOOKS = REPO / ".pre-commit-hooks.yaml"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One pre-commit cache for the module: the hook environment is installed once."""
    return tmp_path_factory.mktemp("pre-commit-home")


def try_repo(project: Path, home: Path) -> subprocess.CompletedProcess[str]:
    head = git(REPO, "rev-parse", "HEAD").strip()
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "PRE_COMMIT_COLOR": "never"}
    env.pop("CI", None)
    pre_commit = shutil.which("pre-commit", path=str(Path(sys.executable).parent)) or "pre-commit"
    return subprocess.run(
        [pre_commit, "try-repo", str(REPO), "lockorder-lint", "--all-files", "--ref", head],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_hook_definition() -> None:
    text = HOOKS.read_text(encoding="utf-8")
    for line in (
        "- id: lockorder-lint",
        "  entry: lockorder-lint",
        "  language: python",
        "  types: [python]",
        "  require_serial: true",
    ):
        assert line in text.splitlines()


def test_hook_fails_on_a_bad_file_and_passes_once_fixed(tmp_path: Path, pre_commit_home: Path) -> None:
    project = make_sample(tmp_path / "project")
    git(project, "init", "-q", ".")
    git(project, "add", ".")
    git(project, "commit", "-q", "-m", "bad")

    bad = try_repo(project, pre_commit_home)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "lockorder-lint" in bad.stdout
    assert "Failed" in bad.stdout
    lines = bad.stdout.splitlines()
    assert any(line.startswith(f"app/jobs.py:{LCK001_AT[0]}:{LCK001_AT[1]}: LCK001 ") for line in lines)
    assert any(line.startswith(f"app/jobs.py:{LCK002_AT[0]}:{LCK002_AT[1]}: LCK002 ") for line in lines)

    (project / "app" / "jobs.py").write_text(CLEAN, encoding="utf-8")
    git(project, "add", ".")
    git(project, "commit", "-q", "-m", "fixed")
    fixed = try_repo(project, pre_commit_home)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "Passed" in fixed.stdout
    assert "LCK00" not in fixed.stdout
