"""LCK005's oracle for the locks an UPDATE takes by the columns it sets (``LCK005_update_keys``
and its ``_ok`` counterpart), on real databases.

- A foreign-key column set by an UPDATE is checked: ``move_member`` (member, then the team's row
  under ``FOR KEY SHARE``) against ``promote`` (the team ``FOR UPDATE``, then the member) deadlocks
  on every attempt, on PostgreSQL and MariaDB; ``rename_member`` sets no foreign key, checks no
  team and never does.
- A key column set by an UPDATE takes ``FOR UPDATE``: ``change_email`` (the account's unique
  email, then a login) against ``record_login`` (the login, then a new login's foreign-key check
  of the account) deadlocks on every attempt on PostgreSQL. ``rename_account`` sets no key
  column: its ``FOR NO KEY UPDATE`` lets the check through, and it never deadlocks there. InnoDB
  has no such distinction (an UPDATE takes an exclusive lock, the check a shared one), so on
  MariaDB both deadlock, and LCK005 reports both when MySQL is configured.

Each attempt steps the two: the first party takes its first lock; the second runs until it waits
for a lock or is done; then the first takes its second lock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from functools import partial

import pytest
from sqlalchemy import Engine, event, insert
from sqlalchemy.orm import Session

from tests.fixtures.rules import LCK005_update_keys as bad
from tests.fixtures.rules import LCK005_update_keys_ok as ok
from tests.integration.databases import Database
from tests.integration.orchestration import Attempt, Party, wait_for, wait_until
from tests.integration.reporting import record_attempts

ATTEMPTS = 20
_ids = iter(range(10**6, 10**7))  # above the ids the new logins' sequence hands out


@pytest.fixture(scope="module")
def engine(database: Database) -> Iterator[Engine]:
    made = database.engine("scheduler")
    bad.Base.metadata.create_all(made)  # the _ok module declares the same tables
    yield made


def seed(engine: Engine) -> dict[str, int]:
    rows = {name: next(_ids) for name in ("team", "member", "account", "login")}
    with Session(engine) as session, session.begin():
        session.execute(insert(bad.Team).values(id=rows["team"], name="t"))
        session.execute(insert(bad.Member).values(id=rows["member"], team_id=None, role="member"))
        session.execute(
            insert(bad.Account).values(id=rows["account"], email=f"{rows['account']}@x", name="a")
        )
        session.execute(insert(bad.Login).values(id=rows["login"], account_id=rows["account"], note="first"))
    return rows


def stepped(
    database: Database, first: Callable[[Session], None], second: Callable[[Session], None]
) -> Attempt:
    """``first`` takes its first lock and stops before its next statement; ``second`` runs (and
    commits) until it waits for a lock or is done; then ``first`` goes on and commits."""
    one, two = Party(database, "scheduler"), Party(database, "api")
    holds = threading.Event()
    started = time.monotonic()

    def first_work(me: Party) -> None:
        statements = 0

        def before(*_args: object) -> None:
            nonlocal statements
            statements += 1
            if statements == 2:
                holds.set()
                wait_until(two.blocked_or_past, "the second party waits for a lock or is done")

        event.listen(me.connection, "before_cursor_execute", before)
        first(me.session)
        me.past_contested_statement.set()
        me.session.commit()

    def second_work(me: Party) -> None:
        wait_for(holds, "the first party holds its first lock")
        second(me.session)
        me.session.commit()
        me.past_contested_statement.set()

    one.start(first_work)
    two.start(second_work)
    one.join()
    two.join()
    return Attempt(two.error, one.error, None, time.monotonic() - started)


PAIRS = {
    "FK column UPDATE vs parent FOR UPDATE": (
        lambda r: partial(bad.promote, r["member"], r["team"]),
        lambda r: partial(bad.move_member, r["member"], r["team"]),
        {"postgresql": ATTEMPTS, "mariadb": ATTEMPTS},
    ),
    "non-FK UPDATE vs parent FOR UPDATE": (
        lambda r: partial(ok.promote, r["member"], r["team"]),
        lambda r: partial(ok.rename_member, r["member"]),
        {"postgresql": 0, "mariadb": 0},
    ),
    "key UPDATE vs FK check": (
        lambda r: partial(bad.change_email, r["login"], r["account"], f"new{r['account']}@x"),
        lambda r: partial(bad.record_login, r["login"], r["account"]),
        {"postgresql": ATTEMPTS, "mariadb": ATTEMPTS},
    ),
    "non-key UPDATE vs FK check": (
        lambda r: partial(ok.rename_account, r["login"], r["account"], "renamed"),
        lambda r: partial(ok.record_login, r["login"], r["account"]),
        {"postgresql": 0, "mariadb": ATTEMPTS},
    ),
}


@pytest.mark.parametrize("pair", list(PAIRS))
def test_the_columns_an_update_sets_decide_whether_it_deadlocks(
    database: Database, engine: Engine, request: pytest.FixtureRequest, pair: str
) -> None:
    first, second, expected = PAIRS[pair]
    attempts = []
    for _ in range(ATTEMPTS):
        rows = seed(engine)
        attempts.append(stepped(database, first(rows), second(rows)))
    deadlocked = [
        database.caused_by_deadlock(a.api_error) or database.caused_by_deadlock(a.scheduler_error)
        for a in attempts
    ]
    record_attempts(request, database, pair, attempts, deadlocked)
    described = [f"first={a.scheduler_error!r:.160} second={a.api_error!r:.160}" for a in attempts]
    assert sum(deadlocked) == expected["postgresql" if database.is_postgresql else "mariadb"], described
    others = [a for a, d in zip(attempts, deadlocked, strict=True) if not d]
    assert all(a.api_error is None and a.scheduler_error is None for a in others), described
