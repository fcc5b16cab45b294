"""``pytest --lockorder`` on asyncio code (``create_async_engine``, ``AsyncSession``) on real
PostgreSQL (psycopg's async mode) and MariaDB (aiomysql): the same engine events fire, and each lock
is placed at the line of the coroutine that awaited it, though SQLAlchemy runs the statement in a
greenlet whose own stack ends at its spawn."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.engine import make_url

from tests.integration.databases import DIALECTS
from tests.integration.inner_runs import run_inner

pytest_plugins = ["pytester"]

INNER = """
import asyncio
import os

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

metadata = sa.MetaData()
a = sa.Table("lockorder_async_a", metadata, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("v", sa.Integer), sa.Column("state", sa.String(20)))
b = sa.Table("lockorder_async_b", metadata, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("v", sa.Integer), sa.Column("state", sa.String(20)))


async def fresh_engine():
    engine = create_async_engine(os.environ["LOCKORDER_INNER_URL"])
    async with engine.begin() as connection:
        await connection.run_sync(metadata.drop_all)
        await connection.run_sync(metadata.create_all)
        for table in (a, b):
            await connection.execute(table.insert(), [{"id": 1, "v": 0, "state": "queued"}])
    return engine


async def core_a_then_b():
    engine = await fresh_engine()
    async with engine.begin() as connection:
        await connection.execute(sa.select(a).where(a.c.id == 1).with_for_update())
        await connection.execute(b.update().where(b.c.id == 1).values(v=1))
    await engine.dispose()


async def orm_b_then_a():
    engine = await fresh_engine()
    async with AsyncSession(engine) as session, session.begin():
        await session.execute(sa.select(b).where(b.c.id == 1).with_for_update())
        await session.execute(a.update().where(a.c.state == "queued").values(v=2))
    async with engine.begin() as connection:
        await connection.run_sync(metadata.drop_all)
    await engine.dispose()


def test_core_a_then_b():
    asyncio.run(core_a_then_b())


def test_orm_b_then_a():
    asyncio.run(orm_b_then_a())
"""


def _async_url(url: str) -> str:
    """The configured server through an asyncio driver: psycopg has an async mode, PyMySQL none."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "mysql":
        parsed = parsed.set(drivername="mysql+aiomysql")
    return parsed.render_as_string(hide_password=False)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_async_transactions_are_recorded_at_the_awaiting_line(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, dialect: str
) -> None:
    report = pytester.path / "lockorder.json"
    options = (f"--lockorder-report={report}",)
    result = run_inner(
        pytester, monkeypatch, dialect, "test_async_orders", INNER, *options, url_for=_async_url
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "LCK005 lock-order cycle between lockorder_async_a and lockorder_async_b:",
            "  transaction *: FOR UPDATE on lockorder_async_a at test_async_orders.py:27 core_a_then_b",
            "      then FOR NO KEY UPDATE on lockorder_async_b at test_async_orders.py:28 core_a_then_b",
            "  transaction *: FOR UPDATE on lockorder_async_b at test_async_orders.py:35 orm_b_then_a",
            "      then FOR NO KEY UPDATE on lockorder_async_a at test_async_orders.py:36 orm_b_then_a",
        ]
    )
    found = [(f["code"], f["line"], f["function"]) for f in json.loads(report.read_text(encoding="utf-8"))]
    assert found == [("LCK005", 36, "orm_b_then_a"), ("LCK001", 36, "orm_b_then_a")]
