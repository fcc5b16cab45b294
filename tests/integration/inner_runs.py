"""Running a test module of its own under ``pytest --lockorder`` against a configured database:
what the plugin's integration tests share (the inner module gets the server's URL and dialect
from the environment, and imports ``database`` from here for a namespace of its own)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.databases import Database, configured_url, isolated_database, skip_reason

REPO = Path(__file__).resolve().parents[2]


def run_inner(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    dialect: str,
    module: str,
    source: str,
    *options: str,
    url_for: Callable[[str], str] = lambda url: url,
) -> pytest.RunResult:
    """Write ``source`` as test module ``module`` and run it with ``--lockorder`` and ``options``
    in a subprocess; skipped with the reason when the dialect's server is not configured."""
    url = configured_url(dialect)
    if url is None:
        pytest.skip(skip_reason(dialect))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("LOCKORDER_INNER_DIALECT", dialect)
    monkeypatch.setenv("LOCKORDER_INNER_URL", url_for(url))
    pytester.makepyfile(**{module: source})
    return pytester.runpytest_subprocess("--lockorder", "-p", "no:cacheprovider", *options)


@pytest.fixture(scope="module")
def database(request: pytest.FixtureRequest) -> Iterator[Database]:
    """The Airflow schema in a namespace named for the inner module."""
    dialect, url = os.environ["LOCKORDER_INNER_DIALECT"], os.environ["LOCKORDER_INNER_URL"]
    with isolated_database(dialect, url, f"{request.module.__name__}_inner") as isolated:
        yield isolated
