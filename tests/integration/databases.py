"""The databases the oracle runs on: where they are, how a test module gets a namespace of its own in
each, and what the database itself says about a connection (is it waiting for a lock? was that error a
deadlock?), so the tests orchestrate on facts instead of sleeps."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Engine, NullPool, create_engine, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from tests.fixtures.airflow.models import Base

URL_VARIABLES = {
    "postgresql": "LOCKORDER_TEST_POSTGRES_URL",
    "mysql": "LOCKORDER_TEST_MYSQL_URL",
}
DIALECTS = tuple(URL_VARIABLES)

# The error each database raises on the transaction it picks as the deadlock victim.
POSTGRES_DEADLOCK_SQLSTATE = "40P01"
MYSQL_DEADLOCK_ERRNO = 1213

# A broken orchestration must fail the test in seconds, not hang it for the server default.
LOCK_WAIT_LIMIT_SECONDS = 5

# PostgreSQL checks for a deadlock only after a transaction has waited deadlock_timeout; the party
# that closes the cycle checks after 10 ms, the one that waits first keeps the server default of 1 s,
# so the victim is always the same party. InnoDB checks at once, and rolls back the lighter transaction.
ROLE_DEADLOCK_TIMEOUT = {"scheduler": "1s", "api": "10ms", "observer": "1s"}
ROLES = tuple(ROLE_DEADLOCK_TIMEOUT)


def configured_url(dialect: str) -> str | None:
    """The server URL for ``dialect`` from the environment, or None when it is not set."""
    return os.environ.get(URL_VARIABLES[dialect]) or None


def skip_reason(dialect: str) -> str:
    variable = URL_VARIABLES[dialect]
    return (
        f"database test needs {variable} (a {dialect} server URL); it is not set. "
        "See the README section 'Database tests'."
    )


@dataclass
class Database:
    """One server, with a namespace (PostgreSQL schema, MariaDB database) owned by one test module,
    and one engine per role so that each party's session settings stay its own."""

    dialect: str
    server_url: URL
    namespace: str
    engines: dict[str, Engine] = field(default_factory=dict)

    @property
    def is_postgresql(self) -> bool:
        return self.dialect == "postgresql"

    def engine(self, role: str) -> Engine:
        return self.engines[role]

    def sessions(self, role: str) -> sessionmaker[Session]:
        return sessionmaker(self.engine(role), expire_on_commit=False)

    def backend_id(self, connection: Connection) -> int:
        """The server's id for this connection, as its lock views name it."""
        query = "SELECT pg_backend_pid()" if self.is_postgresql else "SELECT CONNECTION_ID()"
        return int(connection.exec_driver_sql(query).scalar_one())

    def is_waiting_for_lock(self, backend_id: int) -> bool:
        """Whether the server reports this connection as blocked on a lock right now."""
        if self.is_postgresql:
            return self._postgres_fact("SELECT cardinality(pg_blocking_pids(:id)) > 0", backend_id)
        return any(
            f"thread id {backend_id}," in entry and "\nLOCK WAIT " in entry
            for entry in self._innodb_transactions()
        )

    def is_blocking_others(self, backend_id: int) -> bool:
        """Whether some other connection waits for a lock this connection holds. On MariaDB, whose
        monitor does not name the holder, any transaction waiting on a row of this namespace counts."""
        if self.is_postgresql:
            return self._postgres_fact(
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE :id = ANY(pg_blocking_pids(pid)))",
                backend_id,
            )
        return any(
            f"thread id {backend_id}," not in entry
            and "\nLOCK WAIT " in entry
            and f"`{self.namespace}`." in entry
            for entry in self._innodb_transactions()
        )

    def _postgres_fact(self, query: str, backend_id: int) -> bool:
        with self.engine("observer").connect() as observer:
            return bool(observer.execute(text(query), {"id": backend_id}).scalar_one())

    def _innodb_transactions(self) -> list[str]:
        """The live InnoDB monitor's entry for each open transaction. (``INNODB_TRX`` is a cache that
        is not refreshed while it is read more often than every 100 ms, so polling it sees the past;
        and only the monitor's transaction list will do, since its "latest detected deadlock" section
        also names threads and lock waits, long over.)"""
        with self.engine("observer").connect() as observer:
            status = str(observer.exec_driver_sql("SHOW ENGINE INNODB STATUS").one()[2])
        transactions = status.partition("LIST OF TRANSACTIONS FOR EACH SESSION:")[2]
        transactions = transactions.partition("\n--------\nFILE I/O")[0]
        return transactions.split("\n---TRANSACTION ")[1:]

    def is_deadlock(self, error: BaseException) -> bool:
        """Whether ``error`` is this database choosing the caller as a deadlock victim."""
        if not isinstance(error, DBAPIError) or error.orig is None:
            return False
        if self.is_postgresql:
            return getattr(error.orig, "sqlstate", None) == POSTGRES_DEADLOCK_SQLSTATE
        return bool(error.orig.args) and error.orig.args[0] == MYSQL_DEADLOCK_ERRNO

    def caused_by_deadlock(self, error: BaseException | None) -> bool:
        """Whether ``error``, or an exception it was raised from or while handling, is a deadlock."""
        seen: set[int] = set()
        while error is not None and id(error) not in seen:
            if self.is_deadlock(error):
                return True
            seen.add(id(error))
            error = error.__cause__ or error.__context__
        return False

    def dispose(self) -> None:
        for engine in self.engines.values():
            engine.dispose()


def namespace_for(module_name: str) -> str:
    """A stable identifier for a test module, so a rerun replaces what a killed run left behind."""
    return "lockorder_" + re.sub(r"[^a-z0-9_]", "_", module_name.rsplit(".", 1)[-1].lower())[:40]


def _role_engine(dialect: str, server_url: URL, namespace: str, role: str) -> Engine:
    if dialect == "postgresql":
        options = (
            f"-c search_path={namespace} -c deadlock_timeout={ROLE_DEADLOCK_TIMEOUT[role]}"
            f" -c lock_timeout={LOCK_WAIT_LIMIT_SECONDS}s"
        )
        return create_engine(server_url, connect_args={"options": options}, pool_size=4)
    init = f"SET SESSION innodb_lock_wait_timeout = {LOCK_WAIT_LIMIT_SECONDS}"
    return create_engine(server_url.set(database=namespace), connect_args={"init_command": init}, pool_size=4)


def _recreate_namespace(dialect: str, admin: Connection, namespace: str) -> None:
    if dialect == "postgresql":
        admin.exec_driver_sql(f"DROP SCHEMA IF EXISTS {namespace} CASCADE")
        admin.exec_driver_sql(f"CREATE SCHEMA {namespace}")
    else:
        admin.exec_driver_sql(f"DROP DATABASE IF EXISTS {namespace}")
        admin.exec_driver_sql(f"CREATE DATABASE {namespace} CHARACTER SET utf8mb4")


def _drop_namespace(dialect: str, admin: Connection, namespace: str) -> None:
    kind = "SCHEMA" if dialect == "postgresql" else "DATABASE"
    suffix = " CASCADE" if dialect == "postgresql" else ""
    admin.exec_driver_sql(f"DROP {kind} IF EXISTS {namespace}{suffix}")


@contextmanager
def isolated_database(dialect: str, url: str, module_name: str) -> Iterator[Database]:
    """The Airflow schema in a namespace of its own, created fresh and dropped afterwards."""
    server_url = make_url(url)
    namespace = namespace_for(module_name)
    admin_engine = create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin_engine.connect() as admin:
        _recreate_namespace(dialect, admin, namespace)
    database = Database(dialect, server_url, namespace)
    try:
        for role in ROLES:
            database.engines[role] = _role_engine(dialect, server_url, namespace, role)
        Base.metadata.create_all(database.engine("scheduler"))
        yield database
    finally:
        database.dispose()
        with admin_engine.connect() as admin:
            _drop_namespace(dialect, admin, namespace)
        admin_engine.dispose()
