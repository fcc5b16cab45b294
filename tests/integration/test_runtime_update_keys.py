"""``pytest --lockorder`` on real PostgreSQL and MariaDB over ``LCK005_update_keys``'s key-update
pair, run one after the other (no threads): ``change_email`` sets the account's unique email, so
PostgreSQL takes ``FOR UPDATE`` on the account row, which ``record_login``'s foreign-key check
(``FOR KEY SHARE``) waits for: a cycle. ``rename_account`` sets no key column (``FOR NO KEY
UPDATE``): no cycle on PostgreSQL, while on MariaDB the UPDATE's exclusive lock still blocks the
check's shared one. What ``test_update_key_lock_order`` measures with two threads."""

from __future__ import annotations

import pytest

from tests.integration.databases import DIALECTS
from tests.integration.inner_runs import run_inner

pytest_plugins = ["pytester"]

INNER = """
import os
from itertools import count

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session

from tests.fixtures.rules import LCK005_update_keys as bad
from tests.fixtures.rules import LCK005_update_keys_ok as ok
from tests.integration.inner_runs import database

CHANGE = bad.change_email if os.environ["LOCKORDER_INNER_FORM"] == "key" else ok.rename_account
ids = count(10**6)


@pytest.fixture(scope="module")
def rows(database):
    engine = database.engine("scheduler")
    bad.Base.metadata.create_all(engine)
    account, login = next(ids), next(ids)
    with Session(engine) as session, session.begin():
        session.execute(insert(bad.Account).values(id=account, email="a@x", name="a"))
        session.execute(insert(bad.Login).values(id=login, account_id=account, note="first"))
    return account, login


def test_record_login(database, rows):
    account, login = rows
    with database.sessions("api").begin() as session:
        bad.record_login(login, account, session)


def test_change_account(database, rows):
    account, login = rows
    with database.sessions("scheduler").begin() as session:
        CHANGE(login, account, "b@x", session)
"""


@pytest.mark.parametrize("form", ["key", "no key"])
@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_key_update_closes_a_cycle_with_a_foreign_key_check(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, dialect: str, form: str
) -> None:
    monkeypatch.setenv("LOCKORDER_INNER_FORM", form)
    result = run_inner(pytester, monkeypatch, dialect, "test_accounts", INNER, "--lockorder-strict")
    result.assert_outcomes(passed=2)
    cycle = form == "key" or dialect != "postgresql"
    assert (result.ret == 1) is cycle, result.stdout.str()
    if cycle:
        mode = "FOR UPDATE" if form == "key" else "FOR NO KEY UPDATE"
        result.stdout.fnmatch_lines(
            [
                "LCK005 lock-order cycle between account and login:",
                f"  transaction *: {mode} on account at *LCK005_update_keys*.py:* *",
            ]
        )
    else:
        assert "no lock-order cycle between the transactions recorded" in result.stdout.str()
