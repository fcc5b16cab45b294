"""A fuzz-style walk over generated trees full of hostile entries (issue 14, "Done when"): a
directory nobody can enter, a FIFO, a symbolic link to itself, a binary file, a UTF-16 file and a
file with CR-only line endings, all named ``*.py`` and scattered among ordinary files with known
findings. Whatever the layout, the run must not crash, must name every entry it could not check,
must exit 2, and must still report every finding of every readable file (the one with CR-only
line endings included: it is read like any other)."""

from __future__ import annotations

import os
import random
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.hostile import DRIVER, PYTHON, unreadable
from tests.test_cli import JOBS, LCK001_AT, LCK002_AT, make_sample

SEEDS = [1, 2, 3]
DIRECTORY_NAMES = ["core", "jobs", "build", "dist", "venv", "api", "deep", "x y"]


@dataclass
class HostileTree:
    root: Path
    ordinary: list[str] = field(default_factory=list)  # files with LCK001 and LCK002 at known places
    locked: str = ""
    fifo: str = ""
    loop: str = ""
    binary: str = ""
    utf16: str = ""
    cr_only: str = ""


def build(root: Path, seed: int) -> HostileTree:
    """The sample project, plus ordinary files and one of each hostile entry at random places."""
    rng = random.Random(seed)
    make_sample(root)
    tree = HostileTree(root)
    directories = [Path("app")]
    for _ in range(5):
        directory = rng.choice(directories) / rng.choice(DIRECTORY_NAMES)
        (root / directory).mkdir(parents=True, exist_ok=True)
        directories.append(directory)
    directories = sorted(set(directories))

    def place(name: str) -> Path:
        return rng.choice(directories) / name

    tree.ordinary.append("app/jobs.py")
    for number in range(rng.randint(3, 8)):
        path = place(f"ordinary_{number}.py")
        (root / path).write_text(JOBS, encoding="utf-8")
        tree.ordinary.append(path.as_posix())
    locked = place("pgdata")
    (root / locked).mkdir()
    (root / locked / "jobs.py").write_text(JOBS, encoding="utf-8")
    tree.locked = locked.as_posix()
    fifo = place("pipe.py")
    os.mkfifo(root / fifo)
    tree.fifo = fifo.as_posix()
    loop = place("loop.py")
    (root / loop).symlink_to(loop.name)
    tree.loop = loop.as_posix()
    binary = place("blob.py")
    (root / binary).write_bytes(bytes(rng.randrange(128, 256) for _ in range(512)) + b"\x00\x00")
    tree.binary = binary.as_posix()
    utf16 = place("wide.py")
    (root / utf16).write_bytes(JOBS.encode("utf-16"))
    tree.utf16 = utf16.as_posix()
    cr_only = place("mac.py")
    (root / cr_only).write_bytes(JOBS.replace("\n", "\r").encode("utf-8"))
    tree.cr_only = cr_only.as_posix()
    return tree


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    def findings(self, path: str) -> list[tuple[int, int, str]]:
        found = []
        for line in self.stdout.splitlines():
            where, _, rest = line.partition(": ")
            file, line_number, column = where.rsplit(":", 2)
            if file == path:
                found.append((int(line_number), int(column), rest.split()[0]))
        return found


@pytest.fixture(scope="module", params=SEEDS, ids=[f"seed{s}" for s in SEEDS])
def checked(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[HostileTree, Outcome]:
    """The tree of one seed, checked once by the CLI in a subprocess with two workers."""
    tree = build(tmp_path_factory.mktemp("hostile") / "tree", request.param)
    with pytest.MonkeyPatch.context() as monkeypatch, unreadable(tree.root / tree.locked, monkeypatch) as env:
        monkeypatch.undo()  # the subprocess simulates it (as root) from the environment
        result = subprocess.run(
            [PYTHON, "-c", DRIVER, "cli", "--no-cache", "-j", "2", "."],
            cwd=tree.root,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    return tree, Outcome(result.returncode, result.stdout, result.stderr)


def test_no_crash_every_unreadable_entry_named_and_exit_2(checked: tuple[HostileTree, Outcome]) -> None:
    tree, outcome = checked
    assert "Traceback" not in outcome.stderr + outcome.stdout
    assert outcome.code == 2
    lines = outcome.stderr.splitlines()
    assert f"{tree.locked}: error: cannot open directory: Permission denied" in lines
    assert f"{tree.loop}: error: cannot read: Too many levels of symbolic links" in lines
    assert f"{tree.fifo}: note: not a regular file (FIFO); skipped" in lines
    assert not any(line.startswith(f"{tree.locked}/") for line in outcome.stdout.splitlines())


def test_every_readable_file_is_still_checked(checked: tuple[HostileTree, Outcome]) -> None:
    tree, outcome = checked
    expected = [(*LCK001_AT, "LCK001"), (*LCK002_AT, "LCK002")]
    for path in tree.ordinary:
        assert outcome.findings(path) == expected, path
    summary = outcome.stderr.splitlines()[-1]
    count = len(tree.ordinary) + 1  # and the file with CR-only line endings
    assert summary.startswith(f"{2 * count} findings (LCK001 {count}, LCK002 {count}) in ")


def test_a_binary_file_is_named_as_an_error(checked: tuple[HostileTree, Outcome]) -> None:
    tree, outcome = checked
    assert any(
        line.startswith(f"{tree.binary}:") and " error: " in line for line in outcome.stderr.splitlines()
    )


def test_a_utf16_file_is_named_as_an_error(checked: tuple[HostileTree, Outcome]) -> None:
    tree, outcome = checked
    assert any(
        line.startswith(f"{tree.utf16}:") and " error: " in line for line in outcome.stderr.splitlines()
    )


def test_a_file_with_cr_only_line_endings_is_checked_like_lf(checked: tuple[HostileTree, Outcome]) -> None:
    tree, outcome = checked
    assert outcome.findings(tree.cr_only) == [(*LCK001_AT, "LCK001"), (*LCK002_AT, "LCK002")]
