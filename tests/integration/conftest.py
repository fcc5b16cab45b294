"""One isolated copy of the Airflow schema per test module and database, with a backlog of runs in it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.airflow_rows import seed_backlog
from tests.integration.databases import DIALECTS, Database, configured_url, isolated_database, skip_reason


@pytest.fixture(scope="module", params=DIALECTS)
def database(request: pytest.FixtureRequest) -> Iterator[Database]:
    dialect: str = request.param
    url = configured_url(dialect)
    if url is None:
        pytest.skip(skip_reason(dialect))
    with isolated_database(dialect, url, request.module.__name__) as isolated:
        seed_backlog(isolated)
        yield isolated
