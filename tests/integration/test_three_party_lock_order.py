"""LCK005's oracle for a three-party cycle: ``LCK005_bad``'s ``close_order`` (orders, then order
lines), ``settle_line`` (order lines, then payments) and ``refund`` (payments, then orders). No two
of them lock two tables in opposite orders, yet stepped so that each holds its first row when the
next one asks for it, they deadlock on every attempt, on PostgreSQL and MariaDB. With the refund
taking the order first (``refund_in_order`` below: it cannot be a fixture beside ``LCK005_bad``,
whose ``refund`` it would form a two-party cycle with) all three follow one order and never
deadlock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import pytest
from sqlalchemy import Engine, event, insert, select
from sqlalchemy.orm import Session

from tests.fixtures.rules import LCK005_bad
from tests.integration.databases import Database
from tests.integration.orchestration import Attempt, Party, wait_until
from tests.integration.reporting import record_attempts

ATTEMPTS = 20
_ids = iter(range(1, 10**6))


def refund_in_order(payment_id: int, order_id: int, session: Session) -> None:
    """``LCK005_bad.refund`` in the order the other two follow: the order, then the payment."""
    order, payment = LCK005_bad.Order, LCK005_bad.Payment
    session.execute(select(order).where(order.id == order_id).with_for_update()).scalar_one()
    session.execute(select(payment).where(payment.id == payment_id).with_for_update()).scalar_one()


@pytest.fixture(scope="module")
def orders(database: Database) -> Iterator[Engine]:
    engine = database.engine("scheduler")
    LCK005_bad.Base.metadata.create_all(engine)
    yield engine


@dataclass(frozen=True)
class Rows:
    order: int
    line: int
    payment: int


def seed(engine: Engine) -> Rows:
    rows = Rows(next(_ids), next(_ids), next(_ids))
    with Session(engine) as session, session.begin():
        session.execute(insert(LCK005_bad.Order).values(id=rows.order, state="open"))
        session.execute(insert(LCK005_bad.OrderLine).values(id=rows.line, order_id=rows.order, state="open"))
        session.execute(
            insert(LCK005_bad.Payment).values(
                id=rows.payment, order_id=rows.order, line_id=rows.line, state="paid"
            )
        )
    return rows


def three_parties(
    database: Database, work: Sequence[Callable[[Session], None]]
) -> list[BaseException | None]:
    """Each party takes its first lock; once every party holds one (or waits for one), each
    takes its second."""
    parties = [Party(database, role) for role in ("scheduler", "api", "observer")]
    holding = [threading.Event() for _ in parties]

    def run(index: int) -> Callable[[Party], None]:
        def body(me: Party) -> None:
            statements = 0

            def before(*_args: object) -> None:
                nonlocal statements
                statements += 1
                if statements == 2:  # about to take its second lock
                    holding[index].set()
                    wait_until(
                        lambda: all(
                            h.is_set() or p.blocked_or_past() for h, p in zip(holding, parties, strict=True)
                        ),
                        "every party holds its first lock or waits for it",
                    )

            event.listen(me.connection, "before_cursor_execute", before)
            work[index](me.session)
            me.past_contested_statement.set()
            me.session.commit()

        return body

    for index, party in enumerate(parties):
        party.start(run(index))
    for party in parties:
        party.join()
    return [party.error for party in parties]


@pytest.mark.parametrize("fixed", [False, True], ids=["three-party cycle", "one order"])
def test_three_transactions_in_a_ring(
    database: Database, orders: Engine, request: pytest.FixtureRequest, fixed: bool
) -> None:
    attempts: list[Attempt] = []
    deadlocked: list[bool] = []
    for _ in range(ATTEMPTS):
        rows = seed(orders)
        refund = refund_in_order if fixed else LCK005_bad.refund
        started = time.monotonic()
        work = [
            partial(LCK005_bad.close_order, rows.order, rows.line),
            partial(LCK005_bad.settle_line, rows.line, rows.payment),
            partial(refund, rows.payment, rows.order),
        ]
        errors = three_parties(database, work)
        attempts.append(Attempt(errors[1], errors[0], None, time.monotonic() - started))
        deadlocked.append(any(database.caused_by_deadlock(e) for e in errors))
    label = "three parties, one order" if fixed else "three parties in a ring"
    record_attempts(request, database, label, attempts, deadlocked)
    assert sum(deadlocked) == (0 if fixed else ATTEMPTS), [repr(a) for a in attempts]
