"""Issue 14, the reliability pass: the checker never checks less than asked without saying so,
never crashes with a traceback, and never damages a user's files. One test (or a few) per item,
named after what a user would see."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lockorder_lint.config import ConfigError, load_config
from lockorder_lint.rules import RULES_BY_CODE
from tests.test_cli import make_sample, run_cli

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
    """A rule added to the registry (LCK005 and later) is known without touching the validation."""
    from lockorder_lint import rules

    path = tmp_path / "pyproject.toml"
    path.write_text('[tool.lockorder-lint]\nselect = ["LCK005"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="'LCK005'"):
        load_config(path)
    monkeypatch.setitem(rules.RULES_BY_CODE, "LCK005", rules.RULES_BY_CODE["LCK001"])
    assert load_config(path).select == ("LCK005",)


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
