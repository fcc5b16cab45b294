"""Every rule has a page with the fixed headings, and each page's bad example triggers the rule
while its good example is clean: the documentation is executed, so it cannot drift from the code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from lockorder_lint.config import Config, load_config
from lockorder_lint.rules import ALL_RULES, RULES_BY_CODE
from lockorder_lint.runner import check_path, make_project

PAGES = Path(__file__).resolve().parent.parent / "rules"
HEADINGS = [
    "## What it finds",
    "## Why it deadlocks",
    "## Bad example",
    "## Good example",
    "## How to fix",
    "## Options",
    "## References",
]


def page_files() -> list[Path]:
    return sorted(PAGES.glob("LCK*.md"))


def example(text: str, heading: str) -> str:
    """The one ```python block under ``## heading``."""
    section = re.search(rf"^## {heading}\s*$(?P<body>.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, f"no section {heading!r}"
    blocks = re.findall(r"^```python\n(.*?)^```", section.group("body"), re.M | re.S)
    assert len(blocks) == 1, f"{heading!r} must hold exactly one python block, found {len(blocks)}"
    return str(blocks[0])


# A page whose examples need settings (LCK008 runs only for MySQL/MariaDB) says so in an HTML
# comment, ``<!-- example-config: dialects = ["mysql"] -->``, that applies to both examples.
EXAMPLE_CONFIG = re.compile(r"^<!-- example-config: (?P<toml>.*) -->$", re.M)


def findings_for(source: str, tmp_path: Path, settings: str = "") -> list[tuple[int, str]]:
    """Check ``source`` as the only file of a fresh project, so its inline models form the catalog."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    tool = f"\n[tool.lockorder-lint]\n{settings}\n" if settings else ""
    (tmp_path / "pyproject.toml").write_text(f"[project]\nname = 'example'\n{tool}", encoding="utf-8")
    module = tmp_path / "example.py"
    module.write_text(source, encoding="utf-8")
    preview = [rule.code for rule in ALL_RULES if rule.preview]  # examples show every rule at work
    config = load_config(tmp_path / "pyproject.toml") if settings else Config()
    project = make_project(tmp_path, replace(config, select=("LCK", *preview)))
    assert project.hot is not None  # the default: hot tables are those the example locks
    result = check_path(module, "example.py", project)
    assert result.errors == []
    return [(f.line, f.code) for f in result.findings]


def test_every_registered_rule_has_a_page() -> None:
    missing = [rule.code for rule in ALL_RULES if not (PAGES / f"{rule.code}.md").is_file()]
    assert missing == []


@pytest.mark.parametrize("page", page_files(), ids=lambda p: p.stem)
def test_page_has_the_fixed_headings_in_order(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    rule = RULES_BY_CODE.get(page.stem)
    assert rule is not None, f"{page.name} documents a rule that is not registered"
    headings = [line for line in text.splitlines() if line.startswith("#")]
    # Headings only; a '#' inside a code block is a Python comment, never at column 0 in examples.
    assert headings == [f"# {rule.code} {rule.name}", *HEADINGS]


@pytest.mark.parametrize("page", page_files(), ids=lambda p: p.stem)
def test_bad_example_triggers_the_rule(page: Path, tmp_path: Path) -> None:
    text = page.read_text(encoding="utf-8")
    found = findings_for(example(text, "Bad example"), tmp_path, _settings(text))
    assert page.stem in {code for _, code in found}, found


@pytest.mark.parametrize("page", page_files(), ids=lambda p: p.stem)
def test_good_example_is_clean(page: Path, tmp_path: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert findings_for(example(text, "Good example"), tmp_path, _settings(text)) == []


def _settings(text: str) -> str:
    return "\n".join(match.group("toml") for match in EXAMPLE_CONFIG.finditer(text))


def test_pages_and_presets_ship_in_the_wheel(tmp_path: Path) -> None:
    """Build the wheel, install it alone into a directory, and read the pages through it."""
    dist, target = tmp_path / "dist", tmp_path / "target"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            ".",
        ],
        cwd=PAGES.parent,
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("lockorder_lint-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for page in page_files():
        assert f"lockorder_lint/pages/{page.name}" in names
    assert "lockorder_lint/pages/presets/airflow.toml" in names
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    probe = (
        "import lockorder_lint, sys\n"
        "from lockorder_lint.resources import preset_path\n"
        "from lockorder_lint.cli import main\n"
        "assert lockorder_lint.__file__.startswith(sys.argv[1]), lockorder_lint.__file__\n"
        "assert preset_path('airflow') is not None\n"
        "raise SystemExit(main(['explain', 'LCK001']))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    shown = subprocess.run(
        [sys.executable, "-c", probe, str(target)], env=env, capture_output=True, text=True, check=False
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == (PAGES / "LCK001.md").read_text(encoding="utf-8")
