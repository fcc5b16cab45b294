"""What the oracle measured, attached to the test report so the run's summary can print it."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

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
    deadlocked: Sequence[bool] | None = None,
) -> None:
    """Attach "<database>: <label>: d/n deadlocks, median and slowest attempt" to the test's report.
    ``deadlocked`` says, per attempt, whether it deadlocked when no party's error shows it (a handler
    may have swallowed it)."""
    if deadlocked is None:
        deadlocked = [either_party_deadlocked(database, attempt) for attempt in attempts]
    deadlocks = sum(deadlocked)
    times = [attempt.seconds * 1000 for attempt in attempts]
    request.node.user_properties.append(
        (
            ORACLE_PROPERTY,
            f"{database.dialect}: {label}: {deadlocks}/{len(attempts)} deadlocks, "
            f"median {statistics.median(times):.0f} ms, slowest {max(times):.0f} ms per attempt",
        )
    )
