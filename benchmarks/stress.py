"""Count deadlocks under load: scheduler and execution-API threads hammer the same dag runs, once with
the 3.2.1 scheduler (bulk UPDATE through ``ti_dag_run``) and once with the ordered-batch fix, on each
database; the API threads run the request's two row locks (``ti_update_state``'s first statement,
then ``_create_ti_state_update_query_and_update_state`` from the 3.2.1 fixture) and an UPDATE by id.

Where the deterministic oracle (``tests/integration/``) proves that a cycle can form, this shows how
often it does when nobody steps the threads. A third mix also removes the request's joined ``dag_run``
lock (LCK004's fix): on MariaDB the fixed scheduler alone still sees about one deadlock per two
thousand scheduler transactions, its ``FOR UPDATE SKIP LOCKED`` read through ``ti_dag_run`` having
waited for a row a request held (see ``SHOW ENGINE INNODB STATUS``) instead of skipping it.

Loopback servers only: it creates and drops its own namespace (schema / database ``lockorder_stress``).
URLs come from the same variables as the tests, defaulting to the ones ``.ci/run`` sets.

    .venv/bin/python benchmarks/stress.py                       # 8 threads, 10 s per mix and database
    .venv/bin/python benchmarks/stress.py --threads 4 --seconds 5 --databases mysql
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import select, text, update  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.exc import DBAPIError  # noqa: E402
from sqlalchemy.orm import Session, lazyload  # noqa: E402

from tests.fixtures.airflow import scheduler_3_2_1, scheduler_fixed, ti_update_state_3_2_1  # noqa: E402
from tests.fixtures.airflow.models import DagRun, State, TaskInstance  # noqa: E402
from tests.integration.airflow_rows import SeededRun, seed_backlog, seed_run  # noqa: E402
from tests.integration.databases import (  # noqa: E402
    DIALECTS,
    URL_VARIABLES,
    Database,
    configured_url,
    isolated_database,
)
from tests.integration.orchestration import lock_task_instance  # noqa: E402

CI_URLS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "mysql": "mysql+pymysql://root@127.0.0.1:3306/test",
}
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
RUNS = 6
TASKS_PER_RUN = 6
MYSQL_LOCK_WAIT_TIMEOUT = 1205
POSTGRES_LOCK_TIMEOUT = "55P03"

SchedulerForm = Callable[[DagRun, str, Session], object]
ApiRequest = Callable[[Session, str], None]


def request_3_2_1(session: Session, task_instance_id: str) -> None:
    """``ti_update_state``'s first lock, then the 3.2.1 fixture's ``session.get(..., with_for_update=True)``
    (which also locks ``dag_run`` through the joined relationship), then the UPDATE by id."""
    lock_task_instance(session, task_instance_id)
    query, _ = ti_update_state_3_2_1._create_ti_state_update_query_and_update_state(
        new_state=State.RUNNING,
        task_instance_id=task_instance_id,
        session=session,
        query=update(TaskInstance).where(TaskInstance.id == task_instance_id),
    )
    session.execute(query)


def request_without_joined_lock(session: Session, task_instance_id: str) -> None:
    """The same request with LCK004's fix: the second lock loads the row without joining ``dag_run``."""
    lock_task_instance(session, task_instance_id)
    session.get(
        TaskInstance, task_instance_id, with_for_update=True, options=[lazyload(TaskInstance.dag_run)]
    )
    session.execute(
        update(TaskInstance).where(TaskInstance.id == task_instance_id).values(state=State.RUNNING)
    )


@dataclass(frozen=True)
class Mix:
    name: str
    scheduler: SchedulerForm
    request: ApiRequest


MIXES = (
    Mix("bad", scheduler_3_2_1._verify_integrity_if_dag_changed, request_3_2_1),
    Mix("fixed", scheduler_fixed._verify_integrity_if_dag_changed, request_3_2_1),
    Mix("fixed+lck004", scheduler_fixed._verify_integrity_if_dag_changed, request_without_joined_lock),
)
MIX_DESCRIPTIONS = {
    "bad": "3.2.1 bulk UPDATE; 3.2.1 request",
    "fixed": "ordered batches, SKIP LOCKED; 3.2.1 request",
    "fixed+lck004": "ordered batches; request without the dag_run lock",
}


@dataclass
class Tally:
    """What the threads of one mix saw, shared under a lock."""

    counts: Counter[str]
    lock: threading.Lock

    def add(self, key: str) -> None:
        with self.lock:
            self.counts[key] += 1


def classify(database: Database, error: DBAPIError) -> str:
    if database.is_deadlock(error):
        return "deadlocks"
    if database.is_postgresql:
        code = getattr(error.orig, "sqlstate", None)
    else:
        code = error.orig.args[0] if error.orig is not None and error.orig.args else None
    if code in (MYSQL_LOCK_WAIT_TIMEOUT, POSTGRES_LOCK_TIMEOUT):
        return "lock wait timeouts"
    return f"other errors ({type(error.orig).__name__})"


def scheduler_loop(
    database: Database, form: SchedulerForm, runs: list[SeededRun], deadline: float, tally: Tally
) -> None:
    """One scheduler: pick a run, lock it as the scheduler does (SKIP LOCKED), bring its task
    instances to a new DAG version with ``form``; a run another scheduler holds is skipped."""
    sessions = database.sessions("scheduler")
    rng = random.Random()
    while time.monotonic() < deadline:
        seeded = rng.choice(runs)
        with sessions() as session:
            try:
                held = session.scalars(
                    select(DagRun.id).where(DagRun.id == seeded.dag_run.id).with_for_update(skip_locked=True)
                ).all()
                if held:
                    form(seeded.dag_run, str(uuid.uuid4()), session)
                session.commit()
                tally.add("scheduler commits" if held else "scheduler skips")
            except DBAPIError as error:
                session.rollback()
                tally.add(classify(database, error))


def api_loop(
    database: Database, request: ApiRequest, runs: list[SeededRun], deadline: float, tally: Tally
) -> None:
    """One API worker: ``request`` on a random task instance, one transaction each."""
    sessions = database.sessions("api")
    rng = random.Random()
    while time.monotonic() < deadline:
        task_instance_id = rng.choice(rng.choice(runs).task_instance_ids)
        with sessions() as session:
            try:
                request(session, task_instance_id)
                session.commit()
                tally.add("api commits")
            except DBAPIError as error:
                session.rollback()
                tally.add(classify(database, error))


def server_deadlock_count(database: Database) -> int:
    """The server's own deadlock counter (whole server on MariaDB, this database on PostgreSQL)."""
    with database.engine("observer").connect() as connection:
        if database.is_postgresql:
            connection.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
            query = "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
            return int(connection.execute(text(query)).scalar_one())
        return int(connection.exec_driver_sql("SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'").one()[1])


def settled_server_deadlock_count(database: Database) -> int:
    """PostgreSQL publishes a backend's counters when it exits; read until two readings agree."""
    previous = server_deadlock_count(database)
    for _ in range(15):
        time.sleep(0.2)
        current = server_deadlock_count(database)
        if current == previous:
            return current
        previous = current
    return previous


def run_mix(database: Database, mix: Mix, threads: int, seconds: float) -> tuple[Counter[str], int]:
    runs = [seed_run(database, [State.RUNNING] * TASKS_PER_RUN) for _ in range(RUNS)]
    tally = Tally(Counter(), threading.Lock())
    before = server_deadlock_count(database)
    deadline = time.monotonic() + seconds
    schedulers = max(1, threads // 2)
    workers = [
        threading.Thread(
            target=scheduler_loop, args=(database, mix.scheduler, runs, deadline, tally), daemon=True
        )
        for _ in range(schedulers)
    ] + [
        threading.Thread(target=api_loop, args=(database, mix.request, runs, deadline, tally), daemon=True)
        for _ in range(max(1, threads - schedulers))
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(seconds + 30)
        if worker.is_alive():
            raise RuntimeError("a worker did not stop")
    for role in ("scheduler", "api"):
        database.engine(role).dispose()
    return tally.counts, settled_server_deadlock_count(database) - before


def url_for(dialect: str) -> str:
    url = configured_url(dialect) or CI_URLS[dialect]
    host = make_url(url).host or "localhost"
    if host not in LOOPBACK_HOSTS:
        raise SystemExit(f"{URL_VARIABLES[dialect]} points at {host}; this harness runs on loopback only")
    return url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--threads", type=int, default=8, help="threads per mix, half of them schedulers")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each mix")
    parser.add_argument("--databases", default=",".join(DIALECTS), help="comma-separated: postgresql,mysql")
    parser.add_argument(
        "--mixes", default=",".join(m.name for m in MIXES), help="comma-separated: bad,fixed,fixed+lck004"
    )
    args = parser.parse_args(argv)
    if not 2 <= args.threads <= 64 or not 0 < args.seconds <= 600:
        parser.error("--threads must be 2..64 and --seconds 0..600")

    print(f"{args.threads} threads ({args.threads // 2} schedulers), {args.seconds:g} s per mix")
    for dialect in args.databases.split(","):
        with isolated_database(dialect, url_for(dialect), "stress") as database:
            seed_backlog(database)
            for mix in MIXES:
                if mix.name not in args.mixes.split(","):
                    continue
                counts, server_deadlocks = run_mix(database, mix, args.threads, args.seconds)
                details = ", ".join(
                    f"{key} {value}" for key, value in sorted(counts.items()) if key != "deadlocks"
                )
                print(
                    f"{dialect:10} {mix.name:12} deadlocks {counts['deadlocks']:4} (server counter "
                    f"{server_deadlocks:4}) | {MIX_DESCRIPTIONS[mix.name]} | {details}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
