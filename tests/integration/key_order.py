"""Two transactions that write the same keys one by one, each in its own order, stepped so that a
cycle forms whenever the orders differ: each party writes its first key, then waits before its
second write until the other has written its first (or waits for a lock, or is done). With opposite
orders both then want the key the other holds; with one order the second party waits on the first
key and the first party goes on. With ``pause_at=1`` the step comes before the first write: two
transactions that lock a gap and then insert into it both hold the gap before either inserts. The
fixture functions run unchanged: the step is taken in a ``before_cursor_execute`` hook that counts
the statements writing the contested table.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from tests.integration.databases import Database
from tests.integration.orchestration import STEP_LIMIT_SECONDS, Attempt, wait_until


class KeyWriter:
    """One transaction on a connection of its own (kept across the session's rollbacks, so that
    the server's view of it stays this party's), run on its own thread."""

    def __init__(
        self, database: Database, role: str, marker: str, pause_at: int = 2, containing: str = ""
    ) -> None:
        self.database = database
        self.role = role
        self.connection = database.engine(role).connect()
        self.backend_id = database.backend_id(self.connection)
        self.connection.commit()
        self.session = Session(bind=self.connection, expire_on_commit=False)
        self.marker = marker
        self.pause_at = pause_at
        self.containing = containing
        self.holds_first = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.other: KeyWriter | None = None
        self._writes = 0
        self._thread: threading.Thread | None = None
        event.listen(self.connection, "before_cursor_execute", self._before_execute)

    def _before_execute(self, *args: Any) -> None:
        statement = str(args[2])
        if not statement.lstrip().upper().startswith(self.marker.upper()):
            return
        if self.containing and self.containing not in statement:
            return
        self._writes += 1
        if self._writes == self.pause_at:
            self.holds_first.set()
            other = self.other
            assert other is not None
            wait_until(
                lambda: other.holds_first.is_set() or other.done.is_set() or other.is_blocked(),
                f"the other party ({other.role}) holds its first key, waits or is done",
            )

    def is_blocked(self) -> bool:
        return self.database.is_waiting_for_lock(self.backend_id)

    def start(self, work: Callable[[Session], Any]) -> None:
        self._thread = threading.Thread(target=self._run, args=(work,), name=self.role, daemon=True)
        self._thread.start()

    def _run(self, work: Callable[[Session], Any]) -> None:
        try:
            work(self.session)
            self.session.commit()
        except BaseException as error:  # judged by the test
            self.error = error
            self.session.rollback()
        finally:
            self.holds_first.set()
            self.session.close()
            self.connection.close()
            self.done.set()

    def join(self) -> None:
        assert self._thread is not None
        self._thread.join(STEP_LIMIT_SECONDS * 4)
        assert not self._thread.is_alive(), f"the {self.role} party did not finish"


def write_in_orders(
    database: Database,
    marker: str,
    first: Callable[[Session], Any],
    second: Callable[[Session], Any],
    pause_at: int = 2,
    containing: str = "",
) -> Attempt:
    """Run ``first`` and ``second`` at once, stepped on the statements starting with ``marker``
    (and holding ``containing``, when given):
    each waits before its ``pause_at``-th one until the other has reached its own (or waits, or is
    done). With ``pause_at=1`` both have done everything before their first such statement, as two
    transactions that each locked a gap before inserting into it. The second party has the short
    deadlock timeout on PostgreSQL, so it is the usual victim."""
    one = KeyWriter(database, "scheduler", marker, pause_at, containing)
    two = KeyWriter(database, "api", marker, pause_at, containing)
    one.other, two.other = two, one
    started = time.monotonic()
    one.start(first)
    two.start(second)
    one.join()
    two.join()
    return Attempt(two.error, one.error, None, time.monotonic() - started)
