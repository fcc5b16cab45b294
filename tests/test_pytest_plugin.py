"""``pytest --lockorder`` on SQLite (no server needed): the plugin is inert unless asked for, records
the locks of transactions run one after another, and reports a cycle with both stacks; its lock
model (``lockdep``) is tested directly too. The Airflow #66734 transactions on real PostgreSQL and
MariaDB are in ``tests/integration/test_runtime_lockorder.py``."""

from __future__ import annotations

import json

import pytest

from lockorder_lint.lockdep import (
    KEY_SHARE,
    NO_KEY_UPDATE,
    SHARE,
    UPDATE,
    Acquisition,
    LockGraph,
    conflicts,
    locks_of,
)
from lockorder_lint.runtime_checks import key_column_names
from lockorder_lint.sql_reader import read_sql

pytest_plugins = ["pytester"]

OPPOSITE_ORDERS = """
import sqlalchemy as sa

metadata = sa.MetaData()
a = sa.Table("a", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.Integer))
b = sa.Table("b", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.Integer))


def engine():
    made = sa.create_engine("sqlite://")
    metadata.create_all(made)
    with made.begin() as connection:
        connection.execute(a.insert(), [{"id": 1, "v": 0}])
        connection.execute(b.insert(), [{"id": 1, "v": 0}])
    return made


def touch_a_then_b(connection):
    connection.execute(a.update().where(a.c.id == 1).values(v=1))
    connection.execute(b.update().where(b.c.id == 1).values(v=1))


def touch_b_then_a(connection):
    connection.execute(sa.text("UPDATE b SET v = 2 WHERE id = :id"), {"id": 1})
    connection.execute(sa.text("UPDATE a SET v = 2 WHERE id = :id"), {"id": 1})


def test_first_order():
    with engine().begin() as connection:
        touch_a_then_b(connection)


def test_second_order():
    with engine().begin() as connection:
        touch_b_then_a(connection)
"""

ONE_ORDER = OPPOSITE_ORDERS.replace(
    'connection.execute(sa.text("UPDATE b SET v = 2 WHERE id = :id"), {"id": 1})\n'
    '    connection.execute(sa.text("UPDATE a SET v = 2 WHERE id = :id"), {"id": 1})',
    'connection.execute(sa.text("UPDATE a SET v = 2 WHERE id = :id"), {"id": 1})\n'
    '    connection.execute(sa.text("UPDATE b SET v = 2 WHERE id = :id"), {"id": 1})',
)


def test_inactive_without_the_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_orders=OPPOSITE_ORDERS)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    assert "lockorder-lint" in out  # installed through the pytest11 entry point
    assert "LCK005" not in out and "lock-order cycle" not in out


def test_reports_a_cycle_with_both_stacks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_orders=OPPOSITE_ORDERS)
    report = pytester.path / "lockorder.json"
    result = pytester.runpytest_subprocess("--lockorder",
                                           f"--lockorder-report={report}")  # fmt: skip
    result.assert_outcomes(passed=2)
    assert result.ret == 0
    out = result.stdout.str()
    assert "LCK005 lock-order cycle between a and b:" in out
    result.stdout.fnmatch_lines(
        [
            "  transaction *: FOR NO KEY UPDATE on a at test_orders.py:18 touch_a_then_b",
            "*then FOR NO KEY UPDATE on b at test_orders.py:19 touch_a_then_b",
            "*transaction *: FOR NO KEY UPDATE on b at test_orders.py:23 touch_b_then_a",
            "*then FOR NO KEY UPDATE on a at test_orders.py:24 touch_b_then_a",
        ]
    )
    [finding] = json.loads(report.read_text(encoding="utf-8"))
    assert (finding["code"], finding["source"], finding["line"]) == ("LCK005", "runtime", 24)
    assert [len(t["steps"]) for t in finding["trace"]] == [2, 2]


def test_strict_fails_the_session_on_a_cycle(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_orders=OPPOSITE_ORDERS)
    result = pytester.runpytest_subprocess("--lockorder", "--lockorder-strict")
    result.assert_outcomes(passed=2)
    assert result.ret == 1


def test_one_order_everywhere_is_clean(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_orders=ONE_ORDER)
    result = pytester.runpytest_subprocess("--lockorder", "--lockorder-strict")
    result.assert_outcomes(passed=2)
    assert result.ret == 0
    assert "no lock-order cycle between the transactions recorded" in result.stdout.str()


def test_noqa_on_the_acquiring_line_suppresses(pytester: pytest.Pytester) -> None:
    source = OPPOSITE_ORDERS.replace(
        'connection.execute(sa.text("UPDATE a SET v = 2 WHERE id = :id"), {"id": 1})',
        'connection.execute(sa.text("UPDATE a SET v = 2 WHERE id = :id"), {"id": 1})  # noqa: LCK005',
    )
    pytester.makepyfile(test_orders=source)
    result = pytester.runpytest_subprocess("--lockorder", "--lockorder-strict")
    assert result.ret == 0


SWALLOWED_ERROR = """
import sqlalchemy as sa


def test_keeps_using_the_connection():
    engine = sa.create_engine("sqlite://")
    with engine.connect() as connection:
        connection.begin()
        try:
            connection.execute(sa.text("SELECT * FROM missing_table"))
        except sa.exc.OperationalError:
            pass
        connection.execute(sa.text("SELECT 1"))
"""


def test_an_error_that_leaves_the_transaction_usable_is_not_reported(pytester: pytest.Pytester) -> None:
    """SQLite keeps the transaction after a failed statement (PostgreSQL does not: that case, and
    MariaDB's, run in ``tests/integration/test_runtime_lockorder.py``)."""
    pytester.makepyfile(test_errors=SWALLOWED_ERROR)
    result = pytester.runpytest_subprocess("--lockorder")
    result.assert_outcomes(passed=1)
    assert "LCK003" not in result.stdout.str()


BULK_WRITES = """
import sqlalchemy as sa

metadata = sa.MetaData()
job = sa.Table(
    "job",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("code", sa.String(20)),
    sa.Column("state", sa.String(20)),
    sa.UniqueConstraint("code"),
)


def engine():
    made = sa.create_engine("sqlite://")
    metadata.create_all(made)
    with made.begin() as connection:
        connection.execute(job.insert(), [{"id": 1, "code": "a", "state": "queued"}])
    return made


def test_writes():
    with engine().begin() as connection:
        connection.execute(job.update().where(job.c.state == "queued").values(state="running"))
        connection.execute(job.update().where(job.c.id == 1).values(state="done"))
        connection.execute(sa.text("UPDATE job SET state = 'x' WHERE code = :code"), {"code": "a"})
        connection.execute(sa.text("DELETE FROM job WHERE state = :s"), {"s": "done"})
        connection.execute(sa.text("DELETE FROM job WHERE state = 'y'"))  # noqa: LCK001
"""


def _settings(pytester: pytest.Pytester, settings: str) -> None:
    pytester.makefile(".toml", pyproject=f"[tool.lockorder-lint]\n{settings}\n")


def test_bulk_writes_out_of_key_order_on_a_hot_table(pytester: pytest.Pytester) -> None:
    """LCK001 at run time, judged with the MetaData's keys: a write by a non-key column is
    reported where the test's code ran it; by the primary key, or by a unique constraint known
    only from the MetaData (SQL text names no key), it is not; ``# noqa`` suppresses. The table
    is hot because the project's settings say so (SQLite takes no row locks to infer it from)."""
    _settings(pytester, 'hot-tables = ["job"]')
    pytester.makepyfile(test_jobs=BULK_WRITES)
    report = pytester.path / "lockorder.json"
    result = pytester.runpytest_subprocess("--lockorder", f"--lockorder-report={report}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "LCK001 test_jobs.py:24 test_writes: bulk UPDATE of job locks rows through state, not in id "
            "order; select the id values first (ORDER BY id ... FOR UPDATE), then UPDATE by id",
            "LCK001 test_jobs.py:27 test_writes: bulk DELETE of job locks rows through state, *",
        ]
    )
    findings = json.loads(report.read_text(encoding="utf-8"))
    assert [(f["code"], f["line"], f["table"], f["source"]) for f in findings] == [
        ("LCK001", 24, "job", "runtime"),
        ("LCK001", 27, "job", "runtime"),
    ]


@pytest.mark.parametrize(
    "settings",
    [
        "",  # no evidence that job is contended: no test row-locked it
        'hot-tables = ["other"]',
        'hot-tables = ["job"]\nignore = ["LCK001"]',
        'hot-tables = ["job"]\nper-file-ignores = { "test_jobs.py" = ["LCK00"] }',
    ],
)
def test_the_project_settings_decide_what_is_reported(pytester: pytest.Pytester, settings: str) -> None:
    _settings(pytester, settings)
    pytester.makepyfile(test_jobs=BULK_WRITES)
    result = pytester.runpytest_subprocess("--lockorder")
    result.assert_outcomes(passed=1)
    assert "LCK001" not in result.stdout.str()


def test_a_settings_error_stops_the_session_with_one_line(pytester: pytest.Pytester) -> None:
    _settings(pytester, 'hot-tables = "job"')
    pytester.makepyfile(test_jobs=BULK_WRITES)
    result = pytester.runpytest_subprocess("--lockorder")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*lockorder-lint: config error: *hot-tables*"])


# -- the lock model -----------------------------------------------------------------------------


def _locks(sql: str, parents: tuple[str, ...] = ()) -> list[tuple[str, str, bool]]:
    [statement] = read_sql(sql)
    return locks_of(statement, parents)


def test_locks_of_each_statement_kind() -> None:
    assert _locks("SELECT * FROM job WHERE id = 1 FOR UPDATE") == [("job", UPDATE, True)]
    assert _locks("SELECT * FROM job WHERE id = 1 FOR SHARE SKIP LOCKED") == [("job", SHARE, False)]
    assert _locks("SELECT * FROM job JOIN run ON run.id = job.run_id FOR UPDATE") == [
        ("job", UPDATE, True),
        ("run", UPDATE, True),
    ]
    assert _locks("SELECT * FROM job JOIN run ON run.id = job.run_id FOR UPDATE OF job") == [
        ("job", UPDATE, True)
    ]
    assert _locks("SELECT * FROM job LEFT JOIN run ON run.id = job.run_id FOR UPDATE") == [
        ("job", UPDATE, True)
    ]
    assert _locks("SELECT * FROM job WHERE id = 1") == []
    assert _locks("UPDATE job SET state = 'x' WHERE id = 1", ("run",)) == [
        ("job", NO_KEY_UPDATE, True),
        ("run", KEY_SHARE, True),
    ]
    assert _locks("DELETE FROM job WHERE id = 1") == [("job", UPDATE, True)]
    # an UPDATE that sets a key column (primary key, unique constraint) takes FOR UPDATE
    [key_update] = read_sql("UPDATE job SET code = 'x' WHERE id = 1")
    assert locks_of(key_update, (), "postgresql", {"id", "code"}) == [("job", UPDATE, True)]
    assert locks_of(key_update, (), "postgresql", {"id"}) == [("job", NO_KEY_UPDATE, True)]
    assert _locks("INSERT INTO job (id, run_id) VALUES (1, 2)", ("run",)) == [("run", KEY_SHARE, True)]


def test_key_columns_are_those_of_the_primary_key_and_whole_unique_indexes() -> None:
    """A foreign key can reference the primary key or a unique constraint or index on plain
    columns; PostgreSQL counts no partial or expression index among the key columns."""

    import sqlalchemy as sa

    name = sa.Column("name", sa.String)
    table = sa.Table(
        "team",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("Slug", sa.String, unique=True),
        name,
        sa.Column("code", sa.String),
        sa.Column("label", sa.String),
        sa.Index("team_code", "code", unique=True, postgresql_where=name.is_not(None)),
        sa.Index("team_label", sa.func.lower(sa.text("label")), unique=True),
    )
    assert key_column_names(table) == {"id", "slug"}


def test_postgresql_conflict_table() -> None:
    assert not conflicts(KEY_SHARE, NO_KEY_UPDATE, "postgresql")
    assert conflicts(KEY_SHARE, UPDATE, "postgresql")
    assert not conflicts(SHARE, SHARE, "postgresql")
    assert conflicts(SHARE, NO_KEY_UPDATE, "postgresql")
    assert conflicts(NO_KEY_UPDATE, NO_KEY_UPDATE, "postgresql")
    assert not conflicts(SHARE, KEY_SHARE, "mysql")
    assert conflicts(KEY_SHARE, NO_KEY_UPDATE, "mysql")


def _take(graph: LockGraph, number: int, steps: list[tuple[str, str, bool]]) -> None:
    transaction = graph.begin("postgresql")
    for index, (table, mode, waits) in enumerate(steps):
        where = f"app.py:{number * 10 + index} t{number}"
        graph.take(transaction, Acquisition(table, mode, where, "app.py", number * 10 + index, "sql", waits))


def test_cycle_needs_conflicting_locks_on_both_tables() -> None:
    graph = LockGraph()
    _take(graph, 1, [("run", UPDATE, True), ("job", UPDATE, True)])
    _take(graph, 2, [("job", UPDATE, True), ("run", UPDATE, True)])
    [cycle] = graph.cycles()
    assert cycle.tables == ("job", "run")

    shared = LockGraph()  # FK checks (FOR KEY SHARE) do not conflict with NO KEY UPDATE
    _take(shared, 1, [("run", KEY_SHARE, True), ("job", NO_KEY_UPDATE, True)])
    _take(shared, 2, [("job", NO_KEY_UPDATE, True), ("run", NO_KEY_UPDATE, True)])
    assert shared.cycles() == []


def test_a_lock_that_never_waits_closes_no_cycle() -> None:
    graph = LockGraph()
    _take(graph, 1, [("run", UPDATE, True), ("job", UPDATE, False), ("job", NO_KEY_UPDATE, True)])
    _take(graph, 2, [("job", UPDATE, True), ("run", UPDATE, True)])
    assert graph.cycles() == []


def test_three_transactions_that_close_a_cycle_through_three_tables() -> None:
    """Airflow #27473's shape: no two transactions lock two tables in opposite orders, yet the
    three together wait in a ring. Reported once, whichever table it is read from."""
    graph = LockGraph()
    _take(graph, 1, [("dag_run", UPDATE, True), ("task_instance", NO_KEY_UPDATE, True)])
    _take(graph, 2, [("task_instance", UPDATE, True), ("job", UPDATE, True)])
    _take(graph, 3, [("job", UPDATE, True), ("dag_run", UPDATE, True)])
    [cycle] = graph.cycles()
    assert cycle.tables == ("dag_run", "task_instance", "job")
    assert [e.transaction for e in cycle.edges] == [1, 2, 3]

    open_chain = LockGraph()  # the third takes its locks the same way round as the first two
    _take(open_chain, 1, [("dag_run", UPDATE, True), ("task_instance", NO_KEY_UPDATE, True)])
    _take(open_chain, 2, [("task_instance", UPDATE, True), ("job", UPDATE, True)])
    _take(open_chain, 3, [("dag_run", UPDATE, True), ("job", UPDATE, True)])
    assert open_chain.cycles() == []

    shared = LockGraph()  # one link of the ring does not conflict: KEY SHARE against NO KEY UPDATE
    _take(shared, 1, [("dag_run", KEY_SHARE, True), ("task_instance", NO_KEY_UPDATE, True)])
    _take(shared, 2, [("task_instance", UPDATE, True), ("job", UPDATE, True)])
    _take(shared, 3, [("job", UPDATE, True), ("dag_run", NO_KEY_UPDATE, True)])
    assert shared.cycles() == []

    one_transaction = LockGraph()  # a transaction cannot wait for itself
    _take(
        one_transaction,
        1,
        [("a", UPDATE, True), ("b", UPDATE, True), ("c", UPDATE, True), ("a", UPDATE, True)],
    )
    assert one_transaction.cycles() == []


THREE_PARTIES = """
import sqlalchemy as sa

metadata = sa.MetaData()
tables = {
    name: sa.Table(name, metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.Integer))
    for name in ("a", "b", "c")
}


def engine():
    made = sa.create_engine("sqlite://")
    metadata.create_all(made)
    with made.begin() as connection:
        for table in tables.values():
            connection.execute(table.insert(), [{"id": 1, "v": 0}])
    return made


def touch(connection, first, second):
    connection.execute(tables[first].update().where(tables[first].c.id == 1).values(v=1))
    connection.execute(tables[second].update().where(tables[second].c.id == 1).values(v=1))


def test_a_then_b():
    with engine().begin() as connection:
        touch(connection, "a", "b")


def test_b_then_c():
    with engine().begin() as connection:
        touch(connection, "b", "c")


def test_c_then_a():
    with engine().begin() as connection:
        touch(connection, "c", "a")
"""


def test_a_three_party_cycle_is_reported_with_every_transaction(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ring=THREE_PARTIES)
    report = pytester.path / "lockorder.json"
    result = pytester.runpytest_subprocess(
        "--lockorder", "--lockorder-strict", f"--lockorder-report={report}"
    )
    result.assert_outcomes(passed=3)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "LCK005 lock-order cycle between a, b and c:",
            "  transaction *: FOR NO KEY UPDATE on a at test_ring.py:20 touch",
            "      then FOR NO KEY UPDATE on b at test_ring.py:21 touch",
            "  transaction *: FOR NO KEY UPDATE on b at test_ring.py:20 touch",
            "      then FOR NO KEY UPDATE on c at test_ring.py:21 touch",
            "  transaction *: FOR NO KEY UPDATE on c at test_ring.py:20 touch",
            "      then FOR NO KEY UPDATE on a at test_ring.py:21 touch",
            "  run at the same time, each waits for the next one's lock; take the locks in one order "
            "(a before b before c everywhere)*",
        ]
    )
    [finding] = json.loads(report.read_text(encoding="utf-8"))
    assert [len(t["steps"]) for t in finding["trace"]] == [2, 2, 2]
    assert finding["message"] == (
        "lock-order cycle between a, b and c: transactions take their locks in orders that close a cycle"
    )


FOREIGN_KEY_IN_TEXT = """
import sqlalchemy as sa
from sqlalchemy import Column, Integer, Table

metadata = sa.MetaData()
parent = Table("parent", metadata, Column("id", Integer, primary_key=True), Column("v", Integer))
tally = Table("tally", metadata, Column("id", Integer, primary_key=True), Column("v", Integer))
key = sa.Column("parent_id", sa.ForeignKey("parent.id"))
child = sa.Table("child", metadata, sa.Column("id", sa.Integer, primary_key=True), key)


def engine():
    made = sa.create_engine("sqlite://")
    metadata.create_all(made)
    with made.begin() as connection:
        connection.execute(parent.insert(), [{"id": 1, "v": 0}])
        connection.execute(tally.insert(), [{"id": 1, "v": 0}])
    return made


def test_tally_then_child():
    with engine().begin() as connection:
        connection.execute(tally.update().where(tally.c.id == 1).values(v=1))
        connection.execute(sa.text("INSERT INTO child (id, parent_id) VALUES (2, 1)"))


def test_parent_then_tally():
    with engine().begin() as connection:
        connection.execute(parent.update().where(parent.c.id == 1).values(v=2))
        connection.execute(tally.update().where(tally.c.id == 1).values(v=2))
"""


def test_an_insert_in_sql_text_locks_the_parent_its_metadata_names(pytester: pytest.Pytester) -> None:
    """The INSERT is hand-written SQL, so SQLAlchemy compiled no Table for it: its foreign key to
    ``parent`` comes from the MetaData the other statements were compiled from, and its check's
    lock on the parent row closes the cycle."""
    pytester.makepyfile(test_fk=FOREIGN_KEY_IN_TEXT)
    result = pytester.runpytest_subprocess("--lockorder")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "LCK005 lock-order cycle between parent and tally:",
            "*FOR NO KEY UPDATE on parent at test_fk.py:28 test_parent_then_tally",
            "*then FOR NO KEY UPDATE on tally at test_fk.py:29 test_parent_then_tally",
            "*FOR NO KEY UPDATE on tally at test_fk.py:22 test_tally_then_child",
            "*then FOR KEY SHARE on parent at test_fk.py:23 test_tally_then_child",
        ]
    )


CHILD_UPDATE = """
import sqlalchemy as sa
from sqlalchemy import Column, ForeignKey, Integer, Table

metadata = sa.MetaData()
parent = Table("parent", metadata, Column("id", Integer, primary_key=True), Column("v", Integer))
tally = Table("tally", metadata, Column("id", Integer, primary_key=True), Column("v", Integer))
child = Table(
    "child", metadata, Column("id", Integer, primary_key=True), Column("parent_id", ForeignKey("parent.id")),
    Column("v", Integer),
)


def engine():
    made = sa.create_engine("sqlite://")
    metadata.create_all(made)
    with made.begin() as connection:
        for table in (parent, tally):
            connection.execute(table.insert(), [{"id": 1, "v": 0}])
        connection.execute(child.insert(), [{"id": 1, "parent_id": 1, "v": 0}])
    return made


def test_tally_then_child():
    with engine().begin() as connection:
        connection.execute(tally.update().where(tally.c.id == 1).values(v=1))
        CHANGE


def test_parent_then_tally():
    with engine().begin() as connection:
        connection.execute(parent.update().where(parent.c.id == 1).values(v=2))
        connection.execute(tally.update().where(tally.c.id == 1).values(v=2))
"""
CHANGES = {
    "v": "connection.execute(child.update().where(child.c.id == 1).values(v=1))",
    "v in text": 'connection.execute(sa.text("UPDATE child SET v = 1 WHERE id = 1"))',
    "key": "connection.execute(child.update().where(child.c.id == 1).values(parent_id=1))",
    "key in text": 'connection.execute(sa.text("UPDATE child SET parent_id = 1 WHERE id = 1"))',
    "key to NULL": "connection.execute(child.update().where(child.c.id == 1).values(parent_id=None))",
    "key to NULL in text": 'connection.execute(sa.text("UPDATE child SET parent_id = NULL WHERE id = 1"))',
}


@pytest.mark.parametrize(
    ("change", "cycle"),
    [
        ("v", False),
        ("v in text", False),
        ("key", True),
        ("key in text", True),
        ("key to NULL", False),
        ("key to NULL in text", False),
    ],
)
def test_an_update_checks_the_parent_only_when_it_changes_the_key(
    pytester: pytest.Pytester, change: str, cycle: bool
) -> None:
    """PostgreSQL and InnoDB check a foreign key on UPDATE only when its columns change: an
    UPDATE of other columns locks no parent row, so it closes no cycle with the parent's writer."""
    pytester.makepyfile(test_fk=CHILD_UPDATE.replace("CHANGE", CHANGES[change]))
    result = pytester.runpytest_subprocess("--lockorder")
    result.assert_outcomes(passed=2)
    assert ("LCK005 lock-order cycle between parent and tally:" in result.stdout.str()) is cycle


def test_a_statement_the_recorder_fails_on_is_said_at_the_end(pytester: pytest.Pytester) -> None:
    """Recording never breaks a test, and never fails unseen: a bug of the recorder on a statement
    is counted and named in the summary."""
    pytester.makeconftest(
        "import lockorder_lint.lockdep as lockdep\n\n"
        "def boom(*args, **kwargs):\n    raise RuntimeError('reader broke')\n\n"
        "lockdep.read_sql = boom\n"
    )
    pytester.makepyfile(test_orders=OPPOSITE_ORDERS)
    result = pytester.runpytest_subprocess("--lockorder")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "lockorder-lint: internal error: * statement(s) not recorded, the first because of "
            "RuntimeError: reader broke;*"
        ]
    )
