"""The SQL reader: SQL text in, the statement facts the rules judge out, for each dialect and
bind-parameter style; text it cannot read is refused with a reason, never guessed."""

from __future__ import annotations

import pytest

from lockorder_lint.sql_reader import (
    KEY_SHARE,
    NO_KEY_UPDATE,
    SHARE,
    UPDATE,
    SqlCondition,
    SqlLock,
    SqlNotRead,
    SqlStatement,
    normalise_parameters,
    read_sql,
)
from lockorder_lint.statements import EQ, IN, JOIN, OTHER, SUB

DIALECTS = ["postgresql", "mysql", "sqlite"]


def one(sql: str, dialect: str = "postgresql") -> SqlStatement:
    statements = read_sql(sql, [dialect])
    assert len(statements) == 1, statements
    return statements[0]


def conditions(statement: SqlStatement) -> list[tuple[str, str, str]]:
    return [(c.table, c.column, c.op) for c in statement.conditions]


# -- kinds and targets ------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("sql", "kind", "target"),
    [
        ("SELECT id FROM job WHERE state = 'x'", "select", "job"),
        ("UPDATE job SET state = 'x' WHERE id = 1", "update", "job"),
        ("DELETE FROM job WHERE id = 1", "delete", "job"),
        ("INSERT INTO job (id, state) VALUES (1, 'x')", "insert", "job"),
        ("INSERT INTO job (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET state = 'x'", "upsert", "job"),
        ("INSERT INTO job (id) VALUES (1) ON CONFLICT DO NOTHING", "insert", "job"),
        ("CREATE TABLE job (id INT)", "other", None),
    ],
)
def test_kind_and_target(dialect: str, sql: str, kind: str, target: str | None) -> None:
    statement = one(sql, dialect)
    assert (statement.kind, statement.target) == (kind, target)


def test_mysql_upserts() -> None:
    assert (
        one("INSERT INTO job (id) VALUES (1) ON DUPLICATE KEY UPDATE state = 'x'", "mysql").kind == "upsert"
    )
    replace = one("REPLACE INTO job (id) VALUES (1)", "mysql")
    assert (replace.kind, replace.target) == ("upsert", "job")


def test_sqlite_insert_or_replace_is_an_upsert() -> None:
    assert one("INSERT OR REPLACE INTO job (id) VALUES (1)", "sqlite").kind == "upsert"


def test_merge_is_an_upsert() -> None:
    statement = one("MERGE INTO job USING src ON job.id = src.id WHEN MATCHED THEN UPDATE SET state = 'x'")
    assert (statement.kind, statement.target) == ("upsert", "job")


def test_sql_of_another_dialect_is_still_read() -> None:
    """Configured for PostgreSQL, SQL written for MySQL (ON DUPLICATE KEY) says which rows it reaches."""
    statement = one("INSERT INTO job (id) VALUES (%s) ON DUPLICATE KEY UPDATE state = 'x'", "postgresql")
    assert statement.kind == "upsert"


def test_schema_is_dropped_and_unquoted_names_fold_to_lower_case() -> None:
    statement = one('UPDATE public.Job SET state = 1 WHERE "Id" = 1')
    assert statement.target == "job"
    assert conditions(statement) == [("job", "Id", EQ)]


def test_several_statements_in_one_text() -> None:
    statements = read_sql("SELECT 1; UPDATE job SET state = 'x' WHERE owner = 'a'; COMMIT")
    assert [s.kind for s in statements] == ["select", "update", "other"]
    assert statements[1].target == "job"


def test_leading_comment_and_whitespace() -> None:
    statement = one("\n  -- sweep the queue\n  /* bulk */ UPDATE job SET state = 'x' WHERE owner = 'a'\n")
    assert (statement.kind, statement.target) == ("update", "job")


# -- WHERE: what pins the key ---------------------------------------------------------------------


def test_top_level_conjuncts_pin_by_equality_and_in() -> None:
    statement = one(
        "UPDATE task_instance SET state = :state "
        "WHERE dag_id = :dag_id AND run_id = :run_id AND state IN (:a, :b)"
    )
    assert conditions(statement) == [
        ("task_instance", "dag_id", EQ),
        ("task_instance", "run_id", EQ),
        ("task_instance", "state", IN),
    ]
    assert not statement.opaque_where


def test_value_on_the_left_still_pins() -> None:
    assert conditions(one("DELETE FROM job WHERE 5 = id")) == [("job", "id", EQ)]


def test_other_comparisons_reach_rows_without_pinning() -> None:
    statement = one("DELETE FROM job WHERE id > 5 AND state <> 'x' AND owner IS NULL AND name LIKE 'a%%'")
    assert conditions(statement) == [
        ("job", "id", OTHER),
        ("job", "state", OTHER),
        ("job", "owner", OTHER),
        ("job", "name", OTHER),
    ]


def test_not_in_and_functions_of_a_column_do_not_pin() -> None:
    statement = one("UPDATE job SET a = 1 WHERE id NOT IN (1, 2) AND lower(owner) = 'x'")
    assert conditions(statement) == [("job", "id", OTHER), ("job", "owner", OTHER)]


def test_equality_to_any_array_is_a_key_list() -> None:
    assert conditions(one("UPDATE job SET a = 1 WHERE id = ANY(:ids)")) == [("job", "id", IN)]


def test_tuple_in_pins_each_column() -> None:
    statement = one("UPDATE ledger SET kind = 'x' WHERE (account_id, seq) IN ((1, 2), (3, 4))")
    assert conditions(statement) == [("ledger", "account_id", IN), ("ledger", "seq", IN)]


def test_disjunction_pins_only_columns_every_branch_pins() -> None:
    assert conditions(one("UPDATE job SET a = 1 WHERE id = 1 OR id = 2")) == [("job", "id", IN)]
    mixed = one("UPDATE job SET a = 1 WHERE (id = 1 AND owner = 'x') OR id = 2")
    assert conditions(mixed) == [("job", "id", IN), ("job", "owner", OTHER)]
    assert conditions(one("UPDATE job SET a = 1 WHERE id = 1 OR owner = 'x'")) == [
        ("job", "id", OTHER),
        ("job", "owner", OTHER),
    ]


def test_a_nested_or_inside_a_conjunct_pins_nothing_it_mentions() -> None:
    statement = one("UPDATE job SET a = 1 WHERE owner = 'x' AND NOT (id = 1 OR id = 2)")
    assert conditions(statement) == [("job", "owner", EQ), ("job", "id", OTHER)]


def test_in_subquery_carries_the_subquery() -> None:
    statement = one(
        "UPDATE job SET state = 'x' WHERE id IN "
        "(SELECT id FROM job WHERE state = 'queued' ORDER BY id LIMIT 10 FOR UPDATE SKIP LOCKED)"
    )
    [condition] = statement.conditions
    assert (condition.table, condition.column, condition.op) == ("job", "id", SUB)
    inner = condition.subquery
    assert inner is not None
    assert inner.target == "job"
    assert conditions(inner) == [("job", "state", EQ)]
    assert inner.order_by == (("job", "id", False),)
    assert inner.limit == 10
    assert inner.lock == SqlLock(UPDATE, skip_locked=True)


def test_columns_of_a_subquery_are_not_the_outer_statement_s() -> None:
    statement = one("DELETE FROM job WHERE owner = 'x' AND EXISTS (SELECT 1 FROM worker WHERE worker.id = 3)")
    assert conditions(statement) == [("job", "owner", EQ)]


def test_join_in_where_is_a_join_not_a_key() -> None:
    statement = one("SELECT * FROM job j, worker w WHERE j.worker_id = w.id AND w.id = 5 FOR UPDATE")
    assert conditions(statement) == [("job", "worker_id", JOIN), ("worker", "id", JOIN), ("worker", "id", EQ)]
    assert statement.joins == (("worker", False),)


def test_unqualified_columns_among_several_tables_are_left_to_the_catalog() -> None:
    statement = one("SELECT * FROM job JOIN worker ON job.worker_id = worker.id WHERE state = 'x' FOR UPDATE")
    assert conditions(statement) == [("", "state", EQ)]
    assert statement.tables == ("job", "worker")


def test_no_where_clause() -> None:
    statement = one("UPDATE job SET state = 'x'")
    assert statement.conditions == ()
    assert not statement.opaque_where


# -- FROM: joins, aliases, derived sources ---------------------------------------------------------


def test_aliases_resolve_to_tables() -> None:
    statement = one("SELECT t.id FROM task_instance AS t WHERE t.dag_id = 'a' ORDER BY t.id FOR UPDATE OF t")
    assert statement.target == "task_instance"
    assert conditions(statement) == [("task_instance", "dag_id", EQ)]
    assert statement.order_by == (("task_instance", "id", False),)
    assert statement.lock is not None and statement.lock.of == ("task_instance",)


def test_explicit_joins_with_outer_sides() -> None:
    statement = one(
        "SELECT * FROM job JOIN worker ON job.worker_id = worker.id "
        "LEFT OUTER JOIN queue q ON q.id = job.queue_id WHERE job.id = 1 FOR UPDATE"
    )
    assert statement.target == "job"
    assert statement.joins == (("worker", False), ("queue", True))
    assert conditions(statement) == [("job", "id", EQ)]  # ON conditions pair rows, they reach none


def test_update_from_and_delete_using_read_other_tables() -> None:
    update = one(
        "UPDATE job SET state = 'x' FROM worker WHERE job.worker_id = worker.id AND worker.host = 'h'"
    )
    assert update.target == "job"
    assert update.joins == (("worker", False),)
    assert conditions(update) == [("job", "worker_id", JOIN), ("worker", "id", JOIN), ("worker", "host", EQ)]
    delete = one("DELETE FROM job USING worker WHERE job.worker_id = worker.id")
    assert (delete.target, delete.joins) == ("job", (("worker", False),))


def test_mysql_multi_table_update_and_delete() -> None:
    update = one(
        "UPDATE job JOIN worker ON job.worker_id = worker.id SET job.state = 'x' WHERE worker.host = 'h'",
        "mysql",
    )
    assert (update.target, update.joins) == ("job", (("worker", False),))
    assert conditions(update) == [("worker", "host", EQ)]
    delete = one("DELETE j FROM job j JOIN worker w ON j.worker_id = w.id WHERE w.host = 'h'", "mysql")
    assert (delete.kind, delete.target, delete.joins) == ("delete", "job", (("worker", False),))


def test_select_from_a_cte_names_the_cte_s_statement() -> None:
    statement = one(
        "WITH batch AS (SELECT id FROM job WHERE state = 'q' ORDER BY id LIMIT 5 FOR UPDATE SKIP LOCKED) "
        "SELECT * FROM batch"
    )
    assert statement.target == "job"
    assert statement.source is not None and statement.source.lock == SqlLock(UPDATE, skip_locked=True)


def test_update_joined_to_a_cte() -> None:
    statement = one(
        "WITH batch AS (SELECT id FROM job ORDER BY id FOR UPDATE) "
        "UPDATE job SET state = 'x' FROM batch WHERE job.id = batch.id"
    )
    assert statement.target == "job"
    assert statement.joins == ()
    assert [(c.table, c.column, c.op, c.via) for c in statement.conditions] == [
        ("job", "id", JOIN, "batch"),
        ("", "id", JOIN, "batch"),
    ]


# -- ORDER BY, LIMIT ---------------------------------------------------------------------------


def test_order_by_columns_directions_and_expressions() -> None:
    statement = one("SELECT * FROM job ORDER BY id DESC, owner ASC, lower(name) FOR UPDATE")
    assert statement.order_by == (("job", "id", True), ("job", "owner", False), ("", "LOWER(name)", False))


@pytest.mark.parametrize(
    ("sql", "limit", "limited"),
    [
        ("SELECT * FROM job LIMIT 1", 1, True),
        ("SELECT * FROM job LIMIT :n", None, True),
        ("SELECT * FROM job FETCH FIRST 1 ROWS ONLY", 1, True),
        ("SELECT * FROM job", None, False),
    ],
)
def test_limit(sql: str, limit: int | None, limited: bool) -> None:
    statement = one(sql)
    assert (statement.limit, statement.limited) == (limit, limited)


# -- lock clauses per dialect ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("clause", "lock"),
    [
        ("FOR UPDATE", SqlLock(UPDATE)),
        ("FOR NO KEY UPDATE", SqlLock(NO_KEY_UPDATE)),
        ("FOR SHARE", SqlLock(SHARE)),
        ("FOR KEY SHARE", SqlLock(KEY_SHARE)),
        ("FOR UPDATE NOWAIT", SqlLock(UPDATE, nowait=True)),
        ("FOR UPDATE SKIP LOCKED", SqlLock(UPDATE, skip_locked=True)),
        ("FOR NO KEY UPDATE OF job SKIP LOCKED", SqlLock(NO_KEY_UPDATE, of=("job",), skip_locked=True)),
        ("FOR UPDATE OF job, worker NOWAIT", SqlLock(UPDATE, of=("job", "worker"), nowait=True)),
        ("", None),
    ],
)
def test_postgresql_lock_clauses(clause: str, lock: SqlLock | None) -> None:
    statement = one(f"SELECT * FROM job, worker WHERE job.worker_id = worker.id {clause}")
    assert statement.lock == lock


@pytest.mark.parametrize(
    ("clause", "lock"),
    [
        ("FOR UPDATE", SqlLock(UPDATE)),
        ("LOCK IN SHARE MODE", SqlLock(SHARE)),
        ("FOR SHARE", SqlLock(SHARE)),
        ("FOR UPDATE NOWAIT", SqlLock(UPDATE, nowait=True)),
        ("FOR UPDATE SKIP LOCKED", SqlLock(UPDATE, skip_locked=True)),
    ],
)
def test_mysql_lock_clauses(clause: str, lock: SqlLock) -> None:
    assert one(f"SELECT * FROM job WHERE owner = %s {clause}", "mysql").lock == lock


def test_mariadb_wait_n_is_neither_nowait_nor_skip_locked() -> None:
    assert one("SELECT * FROM job FOR UPDATE WAIT 5", "mysql").lock == SqlLock(UPDATE)


def test_lock_flags_map_onto_sqlalchemy_s() -> None:
    assert (SqlLock(SHARE).read, SqlLock(SHARE).key_share) == (True, False)
    assert (SqlLock(KEY_SHARE).read, SqlLock(KEY_SHARE).key_share) == (True, True)
    assert (SqlLock(NO_KEY_UPDATE).read, SqlLock(NO_KEY_UPDATE).key_share) == (False, True)


# -- bind parameters -----------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "parameter",
    [":owner", "%s", "%(owner)s", "?", "$1"],
    ids=["named", "format", "pyformat", "qmark", "numeric"],
)
def test_every_bind_style_parses_in_every_dialect(dialect: str, parameter: str) -> None:
    sql = f"SELECT * FROM job WHERE owner = {parameter} AND id IN ({parameter}, {parameter}) FOR UPDATE"
    statement = one(sql, dialect)
    assert conditions(statement) == [("job", "owner", EQ), ("job", "id", IN)]
    assert statement.lock == SqlLock(UPDATE)


def test_parameters_are_rewritten_outside_quotes_comments_and_casts_only() -> None:
    sql = "SELECT '%s ?', \"a?\" FROM t WHERE a = %s AND b = ? AND c = $2 AND d = %(n)s AND e::int = 1 -- ?\n"
    assert normalise_parameters(sql) == (
        "SELECT '%s ?', \"a?\" FROM t WHERE a = :p1 AND b = :p2 AND c = :p2 AND d = :n AND e::int = 1 -- ?\n"
    )
    assert normalise_parameters("a %% b") == "a % b"


# -- what is not read -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE :lockorder_runtime_1 SET a = 1",
        "UPDATE job SET a = 1 WHERE :lockorder_runtime_1",
        "UPDATE job SET a = 1 WHERE :lockorder_runtime_1 = 1 AND id = 2",
        "SELECT * FROM job ORDER BY :lockorder_runtime_1 FOR UPDATE",
        "UPDAT job SET a = 1",
        "   ",
    ],
)
def test_unreadable_text_is_refused_with_a_reason(sql: str) -> None:
    with pytest.raises(SqlNotRead) as refused:
        read_sql(sql)
    assert str(refused.value)


def test_run_time_values_are_read() -> None:
    statement = one(
        "UPDATE job SET a = :lockorder_runtime_1 WHERE id IN (:lockorder_runtime_2) "
        "LIMIT :lockorder_runtime_3"
    )
    assert conditions(statement) == [("job", "id", IN)]


def test_conditions_are_value_objects() -> None:
    assert SqlCondition("job", "id", EQ) == SqlCondition("job", "id", EQ)


def test_an_update_says_which_columns_it_sets() -> None:
    """What a foreign key's check depends on: an UPDATE checks only the keys whose columns it sets."""
    [statement] = read_sql("UPDATE child SET v = :v, Parent_Id = :p WHERE child.id = :id")
    assert statement.assigned == ("v", "parent_id")
    [qualified] = read_sql("UPDATE child AS c SET c.v = 1 WHERE c.id = 2", ["mysql"])
    assert qualified.assigned == ("v",)
