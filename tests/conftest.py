"""Test-run policy. Database tests (everything under ``tests/integration/``) skip with a reason when
their server URL is not set, so a newcomer's plain ``pytest`` passes; with
``LOCKORDER_REQUIRE_DATABASES=1`` (as ``.ci/run`` sets it) such a skip fails the run instead, so CI can
never pass without having run them. The oracle's measurements are printed in the summary."""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path

import pytest

from tests.integration.reporting import ORACLE_PROPERTY

INTEGRATION_DIR = Path(__file__).parent / "integration"
REQUIRE_DATABASES_VARIABLE = "LOCKORDER_REQUIRE_DATABASES"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "database: runs against a real PostgreSQL or MariaDB server")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.database)


def databases_required() -> bool:
    return os.environ.get(REQUIRE_DATABASES_VARIABLE) == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and databases_required() and item.get_closest_marker("database") is not None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"{REQUIRE_DATABASES_VARIABLE}=1, but this database test was skipped: {reason}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = [
        str(value)
        for reports in terminalreporter.stats.values()
        for report in reports
        if isinstance(report, pytest.TestReport) and report.when == "call"
        for name, value in report.user_properties
        if name == ORACLE_PROPERTY
    ]
    if lines:
        terminalreporter.section("deadlock oracle")
        for line in lines:
            terminalreporter.write_line(line)
