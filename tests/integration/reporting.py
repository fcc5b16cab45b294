"""What the oracle measured, attached to the test report so the run's summary can print it."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

import pytest

from tests.integration.databases import Database
from tests.integration.orchestration import Attempt

ORACLE_PROPERTY = "lockorder-oracle"


def either_party_deadlocked(database: Database, attempt: Attempt) -> bool:
    return any(database.caused_by_deadlock(error) for error in (attempt.api_error, attempt.scheduler_error))


def record_attempts(
    request: pytest.FixtureRequest,
    database: Database,
    label: str,
    attempts: Sequence[Attempt],
    deadlocked: Callable[[Attempt], bool] | None = None,
) -> None:
    """Attach "<database>: <label>: d/n deadlocks, median and slowest attempt" to the test's report."""
    deadlocks = sum(
        1
        for attempt in attempts
        if (deadlocked(attempt) if deadlocked is not None else either_party_deadlocked(database, attempt))
    )
    times = [attempt.seconds * 1000 for attempt in attempts]
    request.node.user_properties.append(
        (
            ORACLE_PROPERTY,
            f"{database.dialect}: {label}: {deadlocks}/{len(attempts)} deadlocks, "
            f"median {statistics.median(times):.0f} ms, slowest {max(times):.0f} ms per attempt",
        )
    )
