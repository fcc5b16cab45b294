"""Locate the rule pages and presets, whether installed from a wheel or run from a checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def pages_dir() -> Path:
    """The directory holding ``LCKnnn.md``: inside the wheel, else the checkout's ``rules/``."""
    bundled = _PACKAGE / "pages"
    if bundled.is_dir():
        return bundled
    return _PACKAGE.parent.parent / "rules"


def page_path(code: str) -> Path | None:
    path = pages_dir() / f"{code}.md"
    return path if path.is_file() else None


def preset_path(name: str) -> Path | None:
    if not name.replace("-", "").replace("_", "").isalnum():
        return None
    path = pages_dir() / "presets" / f"{name}.toml"
    return path if path.is_file() else None
