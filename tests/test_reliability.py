"""Issue 14, the reliability pass: the checker never checks less than asked without saying so,
never crashes with a traceback, and never damages a user's files. One test (or a few) per item,
named after what a user would see."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from lockorder_lint.cli import main
from lockorder_lint.config import ConfigError, load_config
from lockorder_lint.rules import RULES_BY_CODE
from tests.hostile import DRIVER, PYTHON, unreadable
from tests.test_cli import JOBS, MODELS, make_sample, run_cli

# --- item 1: unknown codes and an empty select are errors, never a silent "0 findings" -------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('select = ["LCK999"]\n', "`select` holds 'LCK999', which is not a known code or prefix"),
        ('select = ["LCK0011"]\n', "`select` holds 'LCK0011', which is not a known code or prefix"),
        ('ignore = ["LCK0011"]\n', "`ignore` holds 'LCK0011', which is not a known code or prefix"),
        ('select = ["lck001"]\n', "`select` holds 'lck001', which is not a known code or prefix"),
        ("select = []\n", "`select` is empty"),
        (
            '[tool.lockorder-lint.per-file-ignores]\n"tests/*" = ["LCK999"]\n',
            "`per-file-ignores.tests/*` holds 'LCK999', which is not a known code or prefix",
        ),
    ],
)
def test_unknown_codes_in_the_configuration_are_errors(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(f"[tool.lockorder-lint]\n{body}", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert message in str(raised.value)
    assert str(path) in str(raised.value)


def test_a_mistyped_code_gets_the_closest_known_one(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[tool.lockorder-lint]\nselect = ["LCK0011"]\nignore = ["lck002"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="did you mean 'LCK001'"):
        load_config(path)
    path.write_text('[tool.lockorder-lint]\nignore = ["lck002"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="did you mean 'LCK002'"):
        load_config(path)


@pytest.mark.parametrize("code", ["LCK", "LCK0", "LCK00", *RULES_BY_CODE])
def test_every_rule_code_and_its_prefixes_are_known(tmp_path: Path, code: str) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(f'[tool.lockorder-lint]\nselect = ["{code}"]\nignore = ["{code}"]\n', encoding="utf-8")
    config = load_config(path)
    assert config.select == (code,)


def test_known_codes_follow_the_rule_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rule added to the registry is known without touching the validation."""
    from lockorder_lint import rules

    path = tmp_path / "pyproject.toml"
    path.write_text('[tool.lockorder-lint]\nselect = ["LCK090"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="'LCK090'"):
        load_config(path)
    monkeypatch.setitem(rules.RULES_BY_CODE, "LCK090", rules.RULES_BY_CODE["LCK001"])
    assert load_config(path).select == ("LCK090",)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--select", "LCK999", "'LCK999' is not a known code or prefix"),
        ("--ignore", "LCK0011", "'LCK0011' is not a known code or prefix; did you mean 'LCK001'?"),
        ("--select", "lck001", "'lck001' is not a known code or prefix; did you mean 'LCK001'?"),
        ("--select", "", "argument --select: names no code"),
        ("--select", " , ", "argument --select: names no code"),
    ],
)
def test_unknown_codes_on_the_command_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, message: str
) -> None:
    sample = make_sample(tmp_path / "s")
    code, out, err = run_cli(capsys, option, value, "app", cwd=sample)
    assert (code, out) == (2, "")
    assert message in err


def test_unknown_code_in_the_configuration_fails_the_cli_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = make_sample(tmp_path / "s", 'ignore = ["LCK0011"]\n')
    code, out, err = run_cli(capsys, "--format", "json", "app", cwd=sample)
    assert (code, out) == (2, "")
    assert "config error" in err and "'LCK0011'" in err


def test_known_codes_still_select(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = make_sample(tmp_path / "s", 'select = ["LCK00"]\nignore = ["LCK002"]\n')
    code, out, _err = run_cli(capsys, "--format", "json", "app", cwd=sample)
    assert code == 1
    assert [d["code"] for d in json.loads(out)] == ["LCK001"]


# --- item 2: every file read for any reason and not parsed is named; CR-only reads like LF -------


def test_a_file_without_trigger_words_that_does_not_parse_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = make_sample(tmp_path / "s")
    (sample / "app" / "plain.py").write_text("def f(:\n    pass\n", encoding="utf-8")
    (sample / "app" / "blob.py").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (sample / "app" / "wide.py").write_bytes("x = 1\n".encode("utf-16"))
    code, out, err = run_cli(capsys, "--no-cache", "app", cwd=sample)
    assert code == 2
    assert lines_by_file(out) == {"app/jobs.py": ["LCK001", "LCK002"]}
    nul = "error: cannot parse: not Python source (it contains NUL bytes; binary or UTF-16?)"
    assert err.splitlines() == [
        f"app/blob.py: {nul}",
        "app/plain.py:1: error: cannot parse: invalid syntax",
        f"app/wide.py: {nul}",
        "2 findings (LCK001 1, LCK002 1) in 3 files checked; 3 file errors",
    ]


def _models_outside_the_checked_paths(root: Path, models: bytes) -> Path:
    """The sample with its models moved to ``lib/models.py``, which only the catalog reads."""
    sample = make_sample(root)
    (sample / "app" / "models.py").unlink()
    (sample / "lib").mkdir()
    (sample / "lib" / "__init__.py").write_text("", encoding="utf-8")
    (sample / "lib" / "models.py").write_bytes(models)
    jobs = sample / "app" / "jobs.py"
    jobs.write_text(JOBS.replace("from app.models", "from lib.models"), encoding="utf-8")
    return sample


def test_a_models_file_only_the_catalog_reads_is_named_when_it_does_not_parse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = (MODELS + "owners = (\n").encode("utf-8")
    sample = _models_outside_the_checked_paths(tmp_path / "s", broken)
    code, out, err = run_cli(capsys, "--no-cache", "app", cwd=sample)
    assert (code, out) == (2, "")  # the table is unknown, and the run says why
    assert err.splitlines() == [
        "lib/models.py:15: error: cannot parse: '(' was never closed",
        "0 findings in 2 files checked; 2 statements not checked (--show-unknown lists them); 1 file error",
    ]
    result = subprocess.run(
        [PYTHON, "-m", "flake8", "--isolated", "--select", "LCK", "app"],
        cwd=sample,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.stdout == ""
    assert result.stderr == "lockorder-lint: lib/models.py:15: error: cannot parse: '(' was never closed\n"


def test_a_models_file_with_cr_only_line_endings_forms_the_catalog(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = _models_outside_the_checked_paths(tmp_path / "s", MODELS.replace("\n", "\r").encode("utf-8"))
    code, out, err = run_cli(capsys, "--no-cache", "app", cwd=sample)
    assert code == 1, err
    assert lines_by_file(out) == {"app/jobs.py": ["LCK001", "LCK002"]}


# --- items 5 and 6: exclude governs checking, not the catalog; virtualenvs by marker, not by name ---


def lines_by_file(out: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in out.splitlines():
        path, _, rest = line.partition(":")
        found.setdefault(path, []).append(rest.split(": ")[1].split()[0])
    return found


def test_excluded_models_still_form_the_catalog(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = make_sample(tmp_path / "s", 'exclude = ["app/models.py"]\n')
    code, out, err = run_cli(capsys, "app", cwd=sample)
    assert code == 1, err
    assert lines_by_file(out) == {"app/jobs.py": ["LCK001", "LCK002"]}
    assert err.startswith("2 findings (LCK001 1, LCK002 1) in 2 files checked")


def test_build_dist_and_venv_directories_are_checked_unless_they_are_virtualenvs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = make_sample(tmp_path / "s")
    for name in ("build", "dist", "venv", "env"):
        (sample / "app" / name).mkdir()
        (sample / "app" / name / "jobs.py").write_text(JOBS, encoding="utf-8")
    (sample / "app" / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n", encoding="utf-8")
    code, out, _err = run_cli(capsys, "app", cwd=sample)
    assert code == 1
    assert sorted(lines_by_file(out)) == [
        "app/build/jobs.py",
        "app/dist/jobs.py",
        "app/jobs.py",
        "app/venv/jobs.py",
    ]


def test_exclude_replaces_the_default_skips_and_extend_exclude_adds_to_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = make_sample(tmp_path / "s", 'extend-exclude = ["generated"]\n')
    for name in (".hidden", "generated", "node_modules"):
        (sample / "app" / name).mkdir()
        (sample / "app" / name / "jobs.py").write_text(JOBS, encoding="utf-8")
    _code, out, _err = run_cli(capsys, "app", cwd=sample)
    assert sorted(lines_by_file(out)) == ["app/jobs.py"]
    replaced = sample / "pyproject.toml"
    replaced.write_text('[tool.lockorder-lint]\nexclude = ["generated"]\n', encoding="utf-8")
    _code, out, _err = run_cli(capsys, "app", cwd=sample)
    assert sorted(lines_by_file(out)) == ["app/.hidden/jobs.py", "app/jobs.py", "app/node_modules/jobs.py"]


def test_default_skips_never_hide_a_path_the_user_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = make_sample(tmp_path / "s", 'extend-exclude = ["legacy"]\n')
    for name in (".github", "legacy"):
        (sample / name).mkdir()
        (sample / name / "jobs.py").write_text(JOBS, encoding="utf-8")
    _code, out, _err = run_cli(capsys, ".github", "legacy/jobs.py", cwd=sample)
    assert sorted(lines_by_file(out)) == [".github/jobs.py"]


# --- item 9: a file is checked once however often it is named ------------------------------------


def test_paths_given_twice_or_overlapping_are_checked_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = make_sample(tmp_path / "s")
    (sample / "app" / "link.py").symlink_to("jobs.py")
    code, out, err = run_cli(capsys, "app", "app/jobs.py", "./app", str(sample / "app"), cwd=sample)
    assert code == 1
    assert lines_by_file(out) == {"app/jobs.py": ["LCK001", "LCK002"]}
    assert err.startswith("2 findings (LCK001 1, LCK002 1) in 3 files checked")
    code, out, err = run_cli(capsys, "--write-baseline", "b.json", "app", "app/jobs.py", cwd=sample)
    entries = json.loads((sample / "b.json").read_text(encoding="utf-8"))["entries"]
    assert [(e["code"], e["count"]) for e in entries] == [("LCK001", 1), ("LCK002", 1)]


# --- item 10: a directory nobody can enter is skipped with a line naming it, never a crash --------


def test_unreadable_directory_beside_the_checked_paths_is_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sample = make_sample(tmp_path / "s")
    volume = sample / "pgdata"
    volume.mkdir()
    with unreadable(volume, monkeypatch):
        code, out, err = run_cli(capsys, "--no-cache", "app", cwd=sample)
    assert code == 1
    assert lines_by_file(out) == {"app/jobs.py": ["LCK001", "LCK002"]}
    assert err.splitlines() == [
        "pgdata: note: cannot open directory: Permission denied; its models are not in the catalog",
        "2 findings (LCK001 1, LCK002 1) in 3 files checked",
    ]


def test_unreadable_directory_in_the_checked_paths_is_an_error_and_the_rest_is_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sample = make_sample(tmp_path / "s")
    locked = sample / "app" / "locked"
    locked.mkdir()
    (locked / "jobs.py").write_text(JOBS, encoding="utf-8")
    with unreadable(locked, monkeypatch):
        code, out, err = run_cli(capsys, "--no-cache", "app", cwd=sample)
    assert code == 2
    assert lines_by_file(out) == {"app/jobs.py": ["LCK001", "LCK002"]}
    assert err.splitlines() == [
        "app/locked: error: cannot open directory: Permission denied",
        "2 findings (LCK001 1, LCK002 1) in 3 files checked; 1 file error",
    ]


def test_flake8_skips_an_unreadable_directory_with_one_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample = make_sample(tmp_path / "s")
    volume = sample / "pgdata"
    volume.mkdir()
    with unreadable(volume, monkeypatch) as env:
        monkeypatch.undo()  # the subprocess simulates it (as root) from the environment
        result = subprocess.run(
            [PYTHON, "-c", DRIVER, "flake8", "--isolated", "--select", "LCK", "app"],
            cwd=sample,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    assert result.returncode == 1, result.stderr
    assert len(result.stdout.splitlines()) == 2
    assert result.stderr == (
        "lockorder-lint: pgdata: note: cannot open directory: Permission denied; "
        "its models are not in the catalog\n"
    )


# --- item 11: loops, missing directories and the filesystem root are clear errors ---------------


def test_self_symlink_named_or_walked_is_an_error_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = make_sample(tmp_path / "s")
    (sample / "app" / "loop.py").symlink_to("loop.py")
    for args in (["app/loop.py", "app/jobs.py"], ["app"]):
        code, out, err = run_cli(capsys, "--no-cache", *args, cwd=sample)
        assert code == 2
        assert lines_by_file(out) == {"app/jobs.py": ["LCK001", "LCK002"]}
        assert "app/loop.py: error: cannot read: Too many levels of symbolic links" in err.splitlines()


def test_write_baseline_into_a_missing_directory_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = make_sample(tmp_path / "s")
    code, out, err = run_cli(capsys, "--write-baseline", "missing/b.json", "app", cwd=sample)
    assert (code, out) == (2, "")
    assert err == (
        "lockorder-lint: error: --write-baseline missing/b.json: directory missing does not exist\n"
    )


def test_paths_in_unrelated_trees_do_not_make_the_filesystem_root_the_project(tmp_path: Path) -> None:
    here = tmp_path / "here.py"
    here.write_text(JOBS, encoding="utf-8")
    elsewhere = Path(tempfile.mkdtemp(dir="/var/tmp" if Path("/var/tmp").is_dir() else None))
    try:
        assert os.path.commonpath([elsewhere, tmp_path]) == os.sep, "the trees must be unrelated"
        (elsewhere / "there.py").write_text(JOBS, encoding="utf-8")
        result = subprocess.run(
            [PYTHON, "-m", "lockorder_lint", "--no-cache", str(here), str(elsewhere / "there.py")],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    finally:
        shutil.rmtree(elsewhere)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(
        "lockorder-lint: error: the paths share no directory below the filesystem"
    )
    assert "--project-root" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_flake8_refuses_the_filesystem_root_as_project_root(tmp_path: Path) -> None:
    here = tmp_path / "here.py"
    here.write_text(JOBS, encoding="utf-8")
    elsewhere = Path(tempfile.mkdtemp(dir="/var/tmp" if Path("/var/tmp").is_dir() else None))
    try:
        (elsewhere / "there.py").write_text(JOBS, encoding="utf-8")
        result = subprocess.run(
            [PYTHON, "-m", "flake8", "--isolated", "--select", "LCK", str(here), str(elsewhere / "there.py")],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    finally:
        shutil.rmtree(elsewhere)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(
        "lockorder-lint: error: the paths share no directory below the filesystem"
    )


def test_no_project_marker_below_the_root_keeps_the_common_parent(tmp_path: Path) -> None:
    from lockorder_lint.files import PathError, find_project_root

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert find_project_root([tmp_path / "a", tmp_path / "b"]) == tmp_path.resolve()
    with pytest.raises(PathError, match="--project-root"):
        find_project_root([Path("/")])


# --- item 12: a FIFO named like a source file never hangs a run ---------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_in_the_tree_is_skipped_with_a_note_and_named_explicitly_is_an_error(tmp_path: Path) -> None:
    sample = make_sample(tmp_path / "s")
    os.mkfifo(sample / "app" / "pipe.py")
    os.mkfifo(sample / "outside.py")

    def lint(*args: str) -> subprocess.CompletedProcess[str]:
        command = [PYTHON, "-m", "lockorder_lint", "--no-cache", "-j", "1", *args]
        return subprocess.run(command, cwd=sample, capture_output=True, text=True, check=False, timeout=60)

    walked = lint("app")
    assert walked.returncode == 1, walked.stderr
    assert lines_by_file(walked.stdout) == {"app/jobs.py": ["LCK001", "LCK002"]}
    assert walked.stderr.splitlines() == [
        "app/pipe.py: note: not a regular file (FIFO); skipped",
        "outside.py: note: not a regular file (FIFO); skipped",
        "2 findings (LCK001 1, LCK002 1) in 3 files checked",
    ]
    named = lint("app/pipe.py", "app/jobs.py")
    assert named.returncode == 2
    assert "app/pipe.py: error: not a regular file (FIFO)" in named.stderr.splitlines()
    assert len(named.stdout.splitlines()) == 2


def test_read_regular_file_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    from lockorder_lint.files import read_regular_file

    os.mkfifo(tmp_path / "pipe.py")
    with pytest.raises(OSError, match=r"not a regular file \(FIFO\)"):
        read_regular_file(tmp_path / "pipe.py")
    (tmp_path / "big.py").write_bytes(b"x = 1\n" * 50_000)
    assert read_regular_file(tmp_path / "big.py") == b"x = 1\n" * 50_000


# --- item 4: a --project-root that does not exist ------------------------------------------------


@pytest.mark.parametrize(("make", "reason"), [(False, "does not exist"), (True, "is not a directory")])
def test_project_root_that_is_not_a_directory_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: bool, reason: str
) -> None:
    sample = make_sample(tmp_path / "s")
    if make:
        (sample / "root").write_text("", encoding="utf-8")
    code, out, err = run_cli(capsys, "--project-root", "root", "app", cwd=sample)
    assert (code, out) == (2, "")
    assert err == f"lockorder-lint: error: --project-root root {reason}\n"
    assert make == (sample / "root").exists()
    assert not (sample / "root" / ".lockorder_cache").exists()
    code, _out, err = run_cli(capsys, "tables", "--project-root", "root", cwd=sample)
    assert code == 2 and reason in err


# --- item 13: a bug is one line naming the file, and exit 2 --------------------------------------


def test_a_crash_checking_one_file_names_it_and_the_others_are_still_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from lockorder_lint import runner

    sample = make_sample(tmp_path / "s")
    (sample / "app" / "more.py").write_text(JOBS, encoding="utf-8")
    original = runner.check_source

    def crashing(data: bytes, path: Path, display: str, project: object, *more: Any) -> object:
        if path.name == "more.py":
            raise RuntimeError("boom")
        return original(data, path, display, project, *more)  # type: ignore[arg-type]

    monkeypatch.setattr(runner, "check_source", crashing)
    code, out, err = run_cli(capsys, "--no-cache", "app", cwd=sample)
    assert code == 2
    assert lines_by_file(out) == {"app/jobs.py": ["LCK001", "LCK002"]}
    assert "app/more.py: error: internal error: RuntimeError: boom" in err.splitlines()


def test_a_crash_reading_models_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from lockorder_lint import project

    sample = make_sample(tmp_path / "s")
    (sample / "app" / "audit.py").write_text(
        "from app.models import Base\n\n\nclass Audit(Base):\n    __tablename__ = 'audit'\n", encoding="utf-8"
    )
    original = project.models_of

    def crashing(tree: object, module: str, resolver: object, display: str, migration: bool) -> object:
        if display.endswith("audit.py"):
            raise KeyError("x")
        return original(tree, module, resolver, display, migration)  # type: ignore[arg-type]

    monkeypatch.setattr(project, "models_of", crashing)
    code, out, err = run_cli(capsys, "--no-cache", "app", cwd=sample)
    assert code == 2
    assert "app/audit.py: error: internal error reading models: KeyError: 'x'" in err.splitlines()
    assert lines_by_file(out) == {"app/jobs.py": ["LCK001", "LCK002"]}
    assert main(["tables", str(sample)]) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith("account  [Account]")
    assert f"{sample}/app/audit.py: error: internal error reading models: KeyError: 'x'" in captured.err


@pytest.mark.parametrize(
    ("exception", "line"),
    [
        (
            RuntimeError("boom\nsecond line"),
            "lockorder-lint: internal error: RuntimeError: boom second line\n",
        ),
        (
            IsADirectoryError(21, "Is a directory", "app/x.py"),
            "lockorder-lint: internal error: app/x.py: IsADirectoryError: Is a directory\n",
        ),
        (
            PermissionError(13, "Permission denied", "/etc/shadow"),
            "lockorder-lint: internal error: /etc/shadow: PermissionError: Permission denied\n",
        ),
    ],
)
def test_any_unexpected_exception_is_one_line_and_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    exception: Exception,
    line: str,
) -> None:
    from lockorder_lint import cli

    sample = make_sample(tmp_path / "s")

    def crashing(*args: object, **kwargs: object) -> object:
        raise exception

    monkeypatch.setattr(cli, "run", crashing)
    code, out, err = run_cli(capsys, "--no-cache", "app", cwd=sample)
    assert (code, out, err) == (2, "", line)


# --- item 3: a hot-tables entry that names no table is said, with the closest table -------------


def test_hot_table_that_names_no_table_is_a_warning_naming_the_closest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = make_sample(
        tmp_path / "s",
        'hot-tables = ["acount", "remote", "zzz"]\n[tool.lockorder-lint.tables]\nremote = ["id"]\n',
    )
    code, out, err = run_cli(capsys, "app", cwd=sample)
    assert (code, out) == (0, "")
    where = sample / "pyproject.toml"
    assert err.splitlines() == [
        f"lockorder-lint: warning: {where}: `hot-tables` names 'acount', which is not a table in the "
        "catalog; did you mean 'account'?",
        f"lockorder-lint: warning: {where}: `hot-tables` names 'zzz', which is not a table in the catalog",
        "0 findings in 3 files checked; 2 statements on tables not in hot-tables (--all-tables checks them)",
    ]


def test_hot_tables_of_a_preset_are_not_checked_against_the_catalog(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = make_sample(tmp_path / "s", 'preset = "airflow"\n')
    code, _out, err = run_cli(capsys, "app", cwd=sample)
    assert code == 0
    assert "warning" not in err


def test_flake8_warns_once_about_a_hot_table_that_names_no_table(tmp_path: Path) -> None:
    sample = make_sample(tmp_path / "s", 'hot-tables = ["accounts"]\n')
    (sample / "app" / "more.py").write_text(JOBS, encoding="utf-8")
    result = subprocess.run(
        [PYTHON, "-m", "flake8", "--isolated", "--select", "LCK", "app"],
        cwd=sample,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr == (
        f"lockorder-lint: warning: {sample / 'pyproject.toml'}: `hot-tables` names 'accounts', which is not "
        "a table in the catalog; did you mean 'account'?\n"
    )


# --- item 24 (the summary half): findings broken down by rule ------------------------------------


def test_summary_breaks_findings_down_by_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lockorder_lint.reporters import summary

    sample = make_sample(tmp_path / "s")
    (sample / "app" / "more.py").write_text(JOBS.split("\n\ndef lock_owner")[0] + "\n", encoding="utf-8")
    code, _out, err = run_cli(capsys, "app", cwd=sample)
    assert code == 1
    assert err == "3 findings (LCK001 2, LCK002 1) in 4 files checked\n"
    assert summary(["LCK003"] * 5 + ["LCK001"] * 7, 748, 0, 0) == (
        "12 findings (LCK001 7, LCK003 5) in 748 files checked\n"
    )
    assert summary([], 1, 2, 1) == (
        "0 findings in 1 file checked; 2 statements not checked (--show-unknown lists them); 1 file error\n"
    )


# --- item 24 (the message half): one sentence that leads with what and the fix; the story is in explain


def _fixture_messages() -> dict[str, list[str]]:
    """Every finding's message on the rule fixtures, by code."""
    from lockorder_lint.runner import check_path
    from tests.test_fixtures import fixture_config, fixture_files, project_for

    found: dict[str, list[str]] = {}
    for path in fixture_files():
        project = project_for(fixture_config(path.read_text(encoding="utf-8")))
        for finding in check_path(path, str(path), project).findings:
            found.setdefault(finding.code, []).append(finding.message)
    return found


LECTURES = [
    "in another order than writers that lock by",  # LCK001: why key order matters
    "in whatever order the plan visits them",  # LCK002
    "a second lock in an order other transactions do not share",  # LCK004
    "(a rollback would ",  # LCK003: why a savepoint and not a rollback
    "around the attempt's body keeps earlier work",
]


def test_messages_are_one_short_sentence_that_leaves_the_story_to_explain() -> None:
    """Preview rules are left out: LCK005 names one trace per transaction of a cycle, and its
    message has not had this pass yet."""
    messages = _fixture_messages()
    stable = {code for code, rule in RULES_BY_CODE.items() if not rule.preview}
    assert stable <= set(messages)
    for code, texts in messages.items():
        if code not in stable:
            continue
        lengths = sorted(len(text) for text in texts)
        assert lengths[len(lengths) // 2] <= 240, (code, lengths)
        for text in texts:
            assert len(text) <= 340, text
            assert not re.search(r"(?<!\.)\.(?: [A-Z]|$)", text), text  # one sentence ("..." is not a stop)
            assert not any(lecture in text for lecture in LECTURES), text
    # LCK003 used to end every message with the same long tail; now each ends with its own fix, short.
    fixes = {text.rsplit("; ", 1)[1] for text in messages["LCK003"]}
    assert len(fixes) >= 4 and max(len(fix) for fix in fixes) <= 100, fixes


def test_an_lck001_message_keeps_the_table_columns_index_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = make_sample(tmp_path / "s")
    code, out, _err = run_cli(capsys, "--no-cache", "--format", "json", "app/jobs.py", cwd=sample)
    assert code == 1
    assert [f["message"] for f in json.loads(out)] == [
        "bulk UPDATE of account locks rows through owner (index ix_account_owner), not in id order; "
        "select the id values first (ORDER BY id ... FOR UPDATE), then UPDATE by id",
        "FOR UPDATE on account locks rows through owner (index ix_account_owner) in no fixed order; "
        "add ORDER BY id, or skip_locked=True / nowait=True",
    ]


# --- item 23: time linear in a file's functions (measured by benchmarks/bench.py --functions) ----


def test_the_cycle_collector_is_paused_while_one_file_is_checked_and_then_restored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Full collections re-walk the checked file's whole tree, which made the time per function grow
    with the file; ``benchmarks/bench.py --functions 5000,20000,50000`` shows the time, this the
    mechanism (never a timed unit test)."""
    import gc

    from lockorder_lint import engine, project
    from lockorder_lint.collector import collector_paused
    from lockorder_lint.runner import check_path, make_project

    sample = make_sample(tmp_path / "s")
    seen: list[tuple[str, bool]] = []
    check, facts = engine._check_source, project._file_facts

    def checking(*args: Any) -> Any:
        seen.append(("check", gc.isenabled()))
        return check(*args)

    def reading(*args: Any) -> Any:
        seen.append(("catalog", gc.isenabled()))
        return facts(*args)

    monkeypatch.setattr(engine, "_check_source", checking)
    monkeypatch.setattr(project, "_file_facts", reading)
    assert gc.isenabled()
    checked = make_project(sample, load_config(sample / "pyproject.toml"))
    result = check_path(sample / "app" / "jobs.py", "app/jobs.py", checked)
    assert [f.code for f in result.findings] == ["LCK001", "LCK002"]
    assert ("catalog", False) in seen and ("check", False) in seen
    assert all(not enabled for _, enabled in seen)
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("a bug in a rule")
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()


# --- item 8: --diff reports like a check: what it cannot fix, file errors, summary, exit status ---

HANDLER = """\
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.models import Account


def mark(session: Session, ident: int) -> None:
    try:
        session.execute(update(Account).where(Account.id == ident).values(status="busy"))
    except Exception:
        session.execute(update(Account).where(Account.id == ident).values(status="failed"))
"""

HANDLER_DIFF = (
    """\
--- a/app/handler.py
+++ b/app/handler.py
@@ -6,6 +6,7 @@
"""
    + " \n"
    + """\
 def mark(session: Session, ident: int) -> None:
     try:
-        session.execute(update(Account).where(Account.id == ident).values(status="busy"))
+        with session.begin_nested():
+            session.execute(update(Account).where(Account.id == ident).values(status="busy"))
     except Exception:
         session.execute(update(Account).where(Account.id == ident).values(status="failed"))
"""
)


def test_diff_also_reports_unfixable_findings_file_errors_and_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = make_sample(tmp_path / "s")
    (sample / "app" / "handler.py").write_text(HANDLER, encoding="utf-8")
    (sample / "app" / "broken.py").write_text("def f(session):\n    session.delete(\n", encoding="utf-8")
    before = {p.name: p.read_bytes() for p in (sample / "app").iterdir()}
    code, out, err = run_cli(capsys, "--no-cache", "--diff", "app", cwd=sample)
    assert code == 2
    assert out == HANDLER_DIFF
    lines = err.splitlines()
    assert [line.split(": ")[1].split()[0] for line in lines[:2]] == ["LCK001", "LCK002"]
    assert lines[0].startswith("app/jobs.py:8:21: LCK001 ")
    assert lines[2].startswith("app/broken.py:2: error: cannot parse")
    assert lines[3:] == [
        "3 findings (LCK001 1, LCK002 1, LCK003 1) in 4 files checked; 1 file error",
        "lockorder-lint: the diff fixes 1 handler(s) in 1 file(s); 2 finding(s) above have no automatic fix",
    ]
    assert {p.name: p.read_bytes() for p in (sample / "app").iterdir()} == before


def test_diff_exits_like_a_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = make_sample(tmp_path / "s")
    (sample / "app" / "handler.py").write_text(HANDLER, encoding="utf-8")
    code, out, err = run_cli(capsys, "--no-cache", "--diff", "app/handler.py", cwd=sample)
    assert (code, out) == (1, HANDLER_DIFF)
    assert err.splitlines() == [
        "1 finding (LCK003 1) in 1 file checked",
        "lockorder-lint: the diff fixes 1 handler(s) in 1 file(s); 0 finding(s) above have no automatic fix",
    ]
    code, out, err = run_cli(capsys, "--no-cache", "--diff", "app/models.py", cwd=sample)
    assert (code, out) == (0, "")


def test_diff_takes_only_the_text_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = make_sample(tmp_path / "s")
    code, out, err = run_cli(capsys, "--diff", "--format", "json", "app", cwd=sample)
    assert (code, out) == (2, "")
    assert "--diff writes the diff on stdout, so it takes only --format text" in err


# --- item 16: --fix respects read-only files and keeps symbolic and hard links ------------------

FIXED_HANDLER = HANDLER.replace(
    '        session.execute(update(Account).where(Account.id == ident).values(status="busy"))\n',
    "        with session.begin_nested():\n"
    '            session.execute(update(Account).where(Account.id == ident).values(status="busy"))\n',
)


def test_fix_does_not_write_a_read_only_file_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = make_sample(tmp_path / "s")
    handler = sample / "app" / "handler.py"
    handler.write_text(HANDLER, encoding="utf-8")
    handler.chmod(0o444)
    code, out, err = run_cli(capsys, "--no-cache", "--fix", "app/handler.py", cwd=sample)
    assert code == 2
    assert out.startswith("app/handler.py:11:9: LCK003 ")
    assert "app/handler.py: error: the file is read-only; the fix was not written" in err.splitlines()
    assert "lockorder-lint: fixed 0 handler(s) in 0 file(s)" in err.splitlines()
    assert handler.read_text(encoding="utf-8") == HANDLER
    assert handler.stat().st_mode & 0o777 == 0o444


def test_fix_writes_through_a_symbolic_link_to_its_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = make_sample(tmp_path / "s")
    real = sample / "shared" / "handler_impl.py"
    real.parent.mkdir()
    real.write_text(HANDLER, encoding="utf-8")
    link = sample / "app" / "handler.py"
    link.symlink_to(Path("..") / "shared" / "handler_impl.py")
    code, _out, err = run_cli(capsys, "--no-cache", "--fix", "app", cwd=sample)  # the walk meets the link
    assert code == 1, err  # jobs.py's findings have no automatic fix
    assert "lockorder-lint: fixed 1 handler(s) in 1 file(s)" in err.splitlines()
    assert link.is_symlink() and os.readlink(link) == str(Path("..") / "shared" / "handler_impl.py")
    assert real.read_text(encoding="utf-8") == FIXED_HANDLER
    assert sorted(p.name for p in real.parent.iterdir()) == ["handler_impl.py"]


def test_fix_keeps_hard_links(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = make_sample(tmp_path / "s")
    handler = sample / "app" / "handler.py"
    handler.write_text(HANDLER, encoding="utf-8")
    handler.chmod(0o640)
    other = sample / "handler_copy.txt"
    os.link(handler, other)
    inode = handler.stat().st_ino
    code, _out, err = run_cli(capsys, "--no-cache", "--fix", "app/handler.py", cwd=sample)
    assert code == 0, err
    assert handler.stat().st_ino == inode == other.stat().st_ino
    assert handler.stat().st_nlink == 2
    assert other.read_text(encoding="utf-8") == FIXED_HANDLER
    assert handler.stat().st_mode & 0o777 == 0o640
    assert not [p for p in (sample / "app").iterdir() if p.name.startswith(".")]


def test_fix_of_an_ordinary_file_is_atomic_and_keeps_mode(tmp_path: Path) -> None:
    from lockorder_lint.fixer import write_fixed

    target = tmp_path / "m.py"
    target.write_text("x = 1\n", encoding="utf-8")
    target.chmod(0o600)
    inode = target.stat().st_ino
    write_fixed(target, "x = 2\n", "utf-8")
    assert target.read_text(encoding="utf-8") == "x = 2\n"
    assert target.stat().st_ino != inode, "replaced by os.replace, not rewritten in place"
    assert target.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.py"]


# --- item 18: SARIF paths relative to the repository, percent-encoded; distinct fingerprints -----

URI_REFERENCE = re.compile(r"^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-F]{2})*$")


@pytest.fixture(scope="module")
def sarif_validator() -> Any:
    schema = json.loads(
        (Path(__file__).parent / "data" / "sarif-2.1.0-rtm.5.json").read_text(encoding="utf-8")
    )
    return jsonschema.validators.validator_for(schema)(schema)


def monorepo(tmp_path: Path, git_file: bool = False) -> Path:
    """A repository whose lockorder project is one directory of it, as airflow-core is in Airflow."""
    repository = tmp_path / "repo"
    repository.mkdir()
    if git_file:  # a worktree or submodule: .git is a file pointing elsewhere
        (repository / ".git").write_text("gitdir: /elsewhere/.git/worktrees/repo\n", encoding="utf-8")
    else:
        (repository / ".git").mkdir()
    return make_sample(repository / "airflow-core")


def sarif_uris(log: dict[str, Any]) -> list[str]:
    return [
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in log["runs"][0]["results"]
    ]


@pytest.mark.parametrize("git_file", [False, True])
def test_sarif_uris_are_relative_to_the_repository_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sarif_validator: Any, git_file: bool
) -> None:
    project = monorepo(tmp_path, git_file)
    code, out, _err = run_cli(capsys, "--format", "sarif", "app", cwd=project)
    assert code == 1
    log = json.loads(out)
    sarif_validator.validate(log)
    assert sarif_uris(log) == ["airflow-core/app/jobs.py", "airflow-core/app/jobs.py"]
    (run,) = log["runs"]
    assert run["originalUriBaseIds"] == {"SRCROOT": {"uri": (tmp_path / "repo").resolve().as_uri() + "/"}}
    location = run["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert location["uriBaseId"] == "SRCROOT"


def test_repository_root_option_overrides_the_git_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = monorepo(tmp_path)
    code, out, _err = run_cli(capsys, "--format", "sarif", "--repository-root", ".", "app", cwd=project)
    assert sarif_uris(json.loads(out)) == ["app/jobs.py", "app/jobs.py"]
    code, out, err = run_cli(capsys, "--format", "sarif", "--repository-root", "nope", "app", cwd=project)
    assert (code, out) == (2, "")
    assert err == "lockorder-lint: error: --repository-root nope is not a directory\n"


def test_sarif_uris_are_percent_encoded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sarif_validator: Any
) -> None:
    sample = make_sample(tmp_path / "s")
    odd = sample / "my app" / "50%#ü"
    odd.mkdir(parents=True)
    (odd / "jobs.py").write_text(JOBS, encoding="utf-8")
    (odd / "broken.py").write_text("def f(session):\n    session.delete(\n", encoding="utf-8")
    code, out, _err = run_cli(capsys, "--format", "sarif", "my app", cwd=sample)
    assert code == 2
    log = json.loads(out)
    sarif_validator.validate(log)
    assert sarif_uris(log) == ["my%20app/50%25%23%C3%BC/jobs.py"] * 2
    (notification,) = log["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    uri = notification["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "my%20app/50%25%23%C3%BC/broken.py"
    assert all(URI_REFERENCE.match(u) for u in [*sarif_uris(log), uri])


def test_identical_findings_get_distinct_fingerprints_that_survive_line_moves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = make_sample(tmp_path / "s")
    statement = '    session.execute(update(Account).where(Account.owner == owner).values(status="closed"))\n'
    jobs = sample / "app" / "jobs.py"
    lines = JOBS.splitlines(keepends=True)
    jobs.write_text("".join([*lines[:8], statement, *lines[8:]]), encoding="utf-8")

    def fingerprints() -> list[str]:
        _code, out, _err = run_cli(capsys, "--format", "sarif", "--select", "LCK001", "app", cwd=sample)
        return [
            r["partialFingerprints"]["lockorderContent/v1"] for r in json.loads(out)["runs"][0]["results"]
        ]

    first = fingerprints()
    assert len(first) == 2 and len(set(first)) == 2
    jobs.write_text(
        "# a comment that moves every line\n\n" + jobs.read_text(encoding="utf-8"), encoding="utf-8"
    )
    assert fingerprints() == first


# --- item 19: json and github carry file errors; github paths are repository-relative ------------


def test_json_carries_file_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = make_sample(tmp_path / "s")
    (sample / "app" / "broken.py").write_text("def f(session):\n    session.delete(\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "--format", "json", "app", cwd=sample)
    assert code == 2
    entries = json.loads(out)
    assert [(e["type"], e["code"]) for e in entries] == [
        ("finding", "LCK001"),
        ("finding", "LCK002"),
        ("error", None),
    ]
    error = entries[2]
    assert (error["path"], error["line"]) == ("app/broken.py", 2)
    assert error["message"].startswith("cannot parse")
    assert set(error) == set(entries[0])
    assert "app/broken.py:2: error: cannot parse" in err


def test_github_annotations_are_relative_to_the_repository_and_carry_file_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = monorepo(tmp_path)
    (project / "app" / "broken.py").write_text("def f(session):\n    session.delete(\n", encoding="utf-8")
    code, out, _err = run_cli(capsys, "--format", "github", ".", cwd=project / "app")
    assert code == 2
    lines = out.splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "::error file=airflow-core/app/jobs.py",
        "::error file=airflow-core/app/jobs.py",
        "::error file=airflow-core/app/broken.py",
    ]
    assert lines[2].startswith(
        "::error file=airflow-core/app/broken.py,line=2,title=lockorder-lint%3A file not checked::"
        "cannot parse"
    )


# --- item 20: baseline entries of deleted or moved files are stale -------------------------------


def test_baseline_entries_of_a_deleted_or_moved_file_are_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = make_sample(tmp_path / "s")
    run_cli(capsys, "--write-baseline", "b.json", "app", cwd=sample)
    (sample / "app" / "jobs.py").rename(sample / "app" / "tasks.py")
    code, out, err = run_cli(capsys, "--baseline", "b.json", "app", cwd=sample)
    assert code == 1
    assert sorted(lines_by_file(out)) == ["app/tasks.py"]
    stale = [line for line in err.splitlines() if "stale" in line]
    assert [line.split(" session.")[0].split(" return ")[0] for line in stale] == [
        "b.json: stale baseline entry: app/jobs.py: close_owner: LCK001",
        "b.json: stale baseline entry: app/jobs.py: lock_owner: LCK002",
    ]
    (sample / "app" / "tasks.py").unlink()
    code, out, err = run_cli(capsys, "--baseline", "b.json", ".", cwd=sample)
    assert (code, out) == (0, "")
    assert len([line for line in err.splitlines() if "stale baseline entry: app/jobs.py" in line]) == 2


def test_entries_of_deleted_files_outside_the_checked_paths_are_not_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = make_sample(tmp_path / "s")
    (sample / "lib").mkdir()
    run_cli(capsys, "--write-baseline", "b.json", "app", cwd=sample)
    (sample / "app" / "jobs.py").unlink()
    for scope in ("lib", "app/models.py"):
        code, out, err = run_cli(capsys, "--baseline", "b.json", scope, cwd=sample)
        assert (code, out) == (0, "")
        assert "stale" not in err


# --- item 22: one meaning of noqa comments in the CLI and flake8; real comments only ---------------


def with_comment(sample: Path, line: int, comment: str) -> None:
    jobs = sample / "app" / "jobs.py"
    lines = jobs.read_text(encoding="utf-8").splitlines()
    lines[line - 1] += comment
    jobs.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize(
    ("comment", "codes"),
    [
        ("  # noqa: LCK00", ["LCK002"]),
        ("  # noqa: LCK", ["LCK002"]),  # without digits it is no code list: all suppressed, as in flake8
        ("  # noqa:LCK0", ["LCK002"]),
        ("  # noqa: lck001", ["LCK001", "LCK002"]),  # codes are case-sensitive, as in flake8
        ("  # noqa: LCK0011", ["LCK001", "LCK002"]),
        ("  # noqa: E501 LCK001", ["LCK002"]),
    ],
)
def test_noqa_means_the_same_in_the_cli_and_in_flake8(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], comment: str, codes: list[str]
) -> None:
    sample = make_sample(tmp_path / "s")
    with_comment(sample, 8, comment)
    _code, out, _err = run_cli(capsys, "--no-cache", "--format", "json", "app/jobs.py", cwd=sample)
    assert [d["code"] for d in json.loads(out)] == codes
    flake8 = subprocess.run(
        [PYTHON, "-m", "flake8", "--isolated", "--select", "LCK", "app/jobs.py"],
        cwd=sample,
        capture_output=True,
        text=True,
        check=False,
    )
    assert [line.split(": ")[1].split()[0] for line in flake8.stdout.splitlines()] == codes


def test_unused_noqa_counts_prefixes_and_ignores_text_in_strings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = make_sample(tmp_path / "s")
    with_comment(sample, 8, "  # noqa: LCK00")  # used: LCK001 is reported here
    jobs = sample / "app" / "jobs.py"
    jobs.write_text(
        jobs.read_text(encoding="utf-8")
        + 'HELP = "write # noqa: LCK002 on the line"  # noqa: LCK004\n'
        + 'DOC = """\n# noqa: LCK001\n"""\n',
        encoding="utf-8",
    )
    code, out, err = run_cli(capsys, "--no-cache", "--warn-unused-noqa", "app/jobs.py", cwd=sample)
    assert code == 1
    assert len(out.splitlines()) == 1  # LCK002; LCK001 is suppressed
    column = len('HELP = "write # noqa: LCK002 on the line"  ') + 1
    assert [line for line in err.splitlines() if "unused noqa" in line] == [
        f"app/jobs.py:13:{column}: unused noqa: LCK004 suppresses nothing here"
    ]


def test_without_noqa_blanks_comments_not_strings() -> None:
    from lockorder_lint.noqa import without_noqa

    source = b'x = "# noqa: LCK001"  # noqa: LCK001\n'
    assert without_noqa(source) == b'x = "# noqa: LCK001"                \n'
    latin = "# -*- coding: latin-1 -*-\ny = '\xe9'  # noqa: LCK002\n".encode("latin-1")
    assert without_noqa(latin) == "# -*- coding: latin-1 -*-\ny = '\xe9'                \n".encode("latin-1")
    bom = b"\xef\xbb\xbfz = 1  # noqa\n"
    assert without_noqa(bom) == b"\xef\xbb\xbfz = 1        \n"
