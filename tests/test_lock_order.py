"""LCK005's whole-program pass: the conflict tables, transactions across calls and commits, the
trace a finding carries in each output format, dialects, and the cache that keeps a one-file run
from re-reading the program."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lockorder_lint import lock_graph, transactions
from lockorder_lint.cache import Cache
from lockorder_lint.config import Config, apply_settings
from lockorder_lint.findings import Finding
from lockorder_lint.lock_graph import conflicts
from lockorder_lint.reporters import render_json, render_sarif, render_text
from lockorder_lint.runner import check_path, make_project
from lockorder_lint.transactions import FOR_KEY_SHARE, FOR_NO_KEY_UPDATE, FOR_SHARE, FOR_UPDATE

FIXTURES = Path(__file__).parent / "fixtures"

MODELS = """
from sqlalchemy import Column, ForeignKey, Integer, String, select, update
from sqlalchemy.orm import DeclarativeBase, Session


class Base(DeclarativeBase):
    pass


class Zone(Base):
    __tablename__ = "zone"
    id = Column(Integer, primary_key=True)
    serial = Column(Integer)


class Record(Base):
    __tablename__ = "record"
    id = Column(Integer, primary_key=True)
    zone_id = Column(Integer, ForeignKey("zone.id"))
    data = Column(String(255))


class Audit(Base):
    __tablename__ = "audit"
    id = Column(Integer, primary_key=True)
    note = Column(String(255))
"""


def lck005(tmp_path: Path, source: str, settings: dict[str, object] | None = None) -> list[Finding]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'example'\n", encoding="utf-8")
    module = tmp_path / "example.py"
    module.write_text(MODELS + source, encoding="utf-8")
    config = apply_settings(Config(), {"select": ["LCK005"], **(settings or {})}, "test")
    project = make_project(tmp_path, config)
    result = check_path(module, "example.py", project)
    assert result.errors == []
    return result.findings


@pytest.mark.parametrize(
    ("wanted", "held", "expected"),
    [
        (FOR_KEY_SHARE, FOR_NO_KEY_UPDATE, False),  # an FK check passes a plain UPDATE
        (FOR_NO_KEY_UPDATE, FOR_KEY_SHARE, False),
        (FOR_KEY_SHARE, FOR_UPDATE, True),
        (FOR_SHARE, FOR_SHARE, False),
        (FOR_SHARE, FOR_NO_KEY_UPDATE, True),
        (FOR_NO_KEY_UPDATE, FOR_NO_KEY_UPDATE, True),
        (FOR_UPDATE, FOR_KEY_SHARE, True),
    ],
)
def test_postgresql_row_lock_conflicts(wanted: str, held: str, expected: bool) -> None:
    assert conflicts("postgresql", wanted, held) is expected


def test_innodb_has_shared_and_exclusive_locks_only() -> None:
    assert not conflicts("mysql", FOR_KEY_SHARE, FOR_SHARE)
    assert conflicts("mysql", FOR_KEY_SHARE, FOR_NO_KEY_UPDATE)  # an FK check waits for any write
    assert conflicts("mariadb", FOR_UPDATE, FOR_UPDATE)


KEY_SHARE_PAIR = """

def rename_zone(zone_id: int, session: Session) -> None:
    session.execute(update(Zone).where(Zone.id == zone_id).values(serial=1))
    session.execute(update(Record).where(Record.id == zone_id).values(data="y"))


def copy_record(record_id: int, zone_id: int, session: Session) -> None:
    session.execute(update(Record).where(Record.id == record_id).values(data="copied"))
    session.add(Record(zone_id=zone_id, data="copy"))
"""


def test_no_key_update_and_key_share_meet_only_on_innodb(tmp_path: Path) -> None:
    assert lck005(tmp_path / "pg", KEY_SHARE_PAIR) == []
    found = lck005(tmp_path / "my", KEY_SHARE_PAIR, {"dialects": ["mysql"]})
    lines = (MODELS + KEY_SHARE_PAIR).splitlines()
    assert [(f.line, f.code) for f in found] == [
        (
            lines.index('    session.execute(update(Record).where(Record.id == zone_id).values(data="y"))')
            + 1,
            "LCK005",
        )
    ]
    assert "on MySQL" in found[0].message and "record (exclusive)" in found[0].message


def test_a_preview_rule_runs_only_when_selected_by_its_code(tmp_path: Path) -> None:
    found = lck005(tmp_path / "on", KEY_SHARE_PAIR, {"dialects": ["mysql"]})
    assert [f.code for f in found] == ["LCK005"]
    for select in (["LCK"], ["LCK00"]):
        assert lck005(tmp_path / select[0], KEY_SHARE_PAIR, {"dialects": ["mysql"], "select": select}) == []


def test_locks_of_a_helper_handed_the_session_are_the_callers(tmp_path: Path) -> None:
    source = """

def lock_records(zone_id: int, session: Session) -> None:
    query = select(Record).where(Record.zone_id == zone_id).order_by(Record.id)
    session.execute(query.with_for_update()).all()


def publish(zone_id: int, session: Session) -> None:
    session.execute(select(Zone).where(Zone.id == zone_id).with_for_update()).scalar_one()
    lock_records(zone_id, session=session)


def edit(zone_id: int, record_id: int, session: Session) -> None:
    session.execute(select(Record).where(Record.id == record_id).with_for_update()).scalar_one()
    session.execute(update(Zone).where(Zone.id == zone_id).values(serial=2))
"""
    (finding,) = lck005(tmp_path, source)
    held, wanted = finding.trace[0]
    assert held[2] == wanted[2] == "publish"
    assert wanted[3] == "locks record (FOR UPDATE): SELECT ... FOR UPDATE — via lock_records"
    assert [steps[0][2] for steps in finding.trace] == ["publish", "edit"]


def test_commit_ends_the_transaction(tmp_path: Path) -> None:
    source = """

def publish(zone_id: int, record_id: int, session: Session) -> None:
    session.execute(select(Zone).where(Zone.id == zone_id).with_for_update()).scalar_one()
    session.commit()
    session.execute(select(Record).where(Record.id == record_id).with_for_update()).scalar_one()


def edit(zone_id: int, record_id: int, session: Session) -> None:
    session.execute(select(Record).where(Record.id == record_id).with_for_update()).scalar_one()
    session.execute(update(Zone).where(Zone.id == zone_id).values(serial=2))
"""
    assert lck005(tmp_path, source) == []


def test_unrelated_tables_are_not_paired(tmp_path: Path) -> None:
    source = """

def one(zone_id: int, audit_id: int, session: Session) -> None:
    session.execute(select(Zone).where(Zone.id == zone_id).with_for_update()).scalar_one()
    session.execute(update(Audit).where(Audit.id == audit_id).values(note="a"))


def other(zone_id: int, audit_id: int, session: Session) -> None:
    session.execute(select(Audit).where(Audit.id == audit_id).with_for_update()).scalar_one()
    session.execute(update(Zone).where(Zone.id == zone_id).values(serial=2))
"""
    assert lck005(tmp_path, source) == []


def fixture_finding() -> Finding:
    # PostgreSQL only: other fixtures ship MySQL code, which would add the MySQL cycle too
    settings = {"select": ["LCK", "LCK005"], "dialects": ["postgresql"]}
    project = make_project(FIXTURES, apply_settings(Config(), settings, "test"))
    path = FIXTURES / "airflow" / "dag_run_lock_order_3_2_1.py"
    (finding,) = [
        f for f in check_path(path, "dag_run_lock_order_3_2_1.py", project).findings if f.code == "LCK005"
    ]
    return finding


def test_fixture_cycle_trace_names_each_transaction_step() -> None:
    finding = fixture_finding()
    assert finding.line == 24 and finding.function == "schedule_dag_run"
    shown = [[(Path(p).name, line, name, step) for p, line, name, step in steps] for steps in finding.trace]
    assert shown == [
        [
            (
                "dag_run_lock_order_3_2_1.py",
                22,
                "schedule_dag_run",
                "locks dag_run (FOR UPDATE): SELECT ... FOR UPDATE",
            ),
            (
                "dag_run_lock_order_3_2_1.py",
                24,
                "schedule_dag_run",
                "locks task_instance (FOR NO KEY UPDATE): UPDATE",
            ),
        ],
        [
            (
                "dag_run_lock_order_3_2_1.py",
                29,
                "ti_patch",
                "locks task_instance (FOR UPDATE): session.get(..., with_for_update)",
            ),
            (
                "dag_run_lock_order_3_2_1.py",
                29,
                "ti_patch",
                "locks dag_run (FOR UPDATE): joined rows of session.get(..., with_for_update) "
                'on task_instance (TaskInstance.dag_run, lazy="joined")',
            ),
        ],
        *(
            [
                (module, first, "ti_update_state", "locks task_instance (FOR UPDATE): SELECT ... FOR UPDATE"),
                (
                    module,
                    then,
                    "ti_update_state",
                    "locks dag_run (FOR UPDATE): joined rows of session.get(..., with_for_update) on "
                    'task_instance (TaskInstance.dag_run, lazy="joined") — via '
                    "_create_ti_state_update_query_and_update_state",
                ),
            ]
            for module, first, then in (
                ("execution_api_3_2_1.py", 48, 61),
                ("ti_update_state_3_2_1.py", 32, 72),
                ("ti_update_state_fresh_session.py", 35, 77),
            )
        ),
    ]


def test_other_transactions_taking_an_edge_are_named() -> None:
    """The fixtures hold four transactions that lock a task instance and then its dag_run: the
    cycle shows one, and names the others (three shown, one counted) so a fix reaches them all."""
    message = fixture_finding().message
    assert (
        "ti_patch locks task_instance (FOR UPDATE) then dag_run (FOR UPDATE) "
        "(so do ti_update_state (in 3 modules) and 1 more);" in message
    )
    assert message.count("so do") == 1


def test_trace_in_text_json_and_sarif(tmp_path: Path) -> None:
    finding = fixture_finding()
    text = render_text([finding]).splitlines()
    assert (
        text[1] == "    transaction 1:"
        and text[2].startswith("        ")
        and "schedule_dag_run: locks dag_run" in text[2]
    )
    assert (
        len(text) == 1 + 5 * 3
    )  # five transactions (two in the cycle, three taking its order), two steps each
    (entry,) = json.loads(render_json([finding]))
    assert [[step["function"] for step in steps] for steps in entry["trace"]] == [
        ["schedule_dag_run", "schedule_dag_run"],
        ["ti_patch", "ti_patch"],
        *[["ti_update_state", "ti_update_state"]] * 3,
    ]
    result = json.loads(render_sarif([finding], tmp_path))["runs"][0]["results"][0]
    flows = result["codeFlows"][0]["threadFlows"]
    assert len(flows) == 5 and len(flows[0]["locations"]) == 2
    assert len(result["relatedLocations"]) == 10
    other = Finding("a.py", 1, 1, 1, 1, "LCK001", "m")
    assert "trace" not in json.loads(render_json([other]))[0]


def test_a_one_file_run_reuses_the_cached_summaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'example'\n", encoding="utf-8")
    (tmp_path / "example.py").write_text(MODELS + KEY_SHARE_PAIR, encoding="utf-8")
    (tmp_path / "other.py").write_text(
        "from example import Zone\n\n\ndef f(session):\n    session.commit()\n", encoding="utf-8"
    )
    calls: list[str] = []
    original = transactions.file_locks

    def counting(data: bytes, path: Path, display: str, project: object) -> object:
        calls.append(path.name)
        return original(data, path, display, project)  # type: ignore[arg-type]

    monkeypatch.setattr(transactions, "file_locks", counting)
    config = apply_settings(Config(), {"select": ["LCK005"]}, "test")
    cache = Cache(tmp_path / ".cache")
    make_project(tmp_path, config, cache)
    cache.save()
    assert sorted(calls) == ["example.py", "other.py"]
    calls.clear()
    (tmp_path / "other.py").write_text("def f(session):\n    session.rollback()\n", encoding="utf-8")
    make_project(tmp_path, config, Cache(tmp_path / ".cache"))
    assert calls == ["other.py"]
    assert lock_graph.MAX_DEPTH >= 3


SWITCHED = """

def refresh(record_id: int, *, session: Session, lock_for_update: bool = False) -> None:
    query = select(Record).where(Record.id == record_id)
    if lock_for_update:
        query = query.with_for_update()
    session.execute(query).one()


def publish(zone_id: int, record_id: int, session: Session) -> None:
    session.execute(select(Zone).where(Zone.id == zone_id).with_for_update()).scalar_one()
    session.execute(update(Record).where(Record.id == record_id).values(data="x"))


def edit(zone_id: int, record_id: int, session: Session) -> None:
    refresh(record_id, session=session{switch})
    session.execute(update(Zone).where(Zone.id == zone_id).values(serial=2))
"""


def test_a_lock_switched_off_by_default_counts_only_when_the_caller_switches_it_on(tmp_path: Path) -> None:
    assert lck005(tmp_path / "off", SWITCHED.format(switch="")) == []
    (finding,) = lck005(tmp_path / "on", SWITCHED.format(switch=", lock_for_update=True"))
    assert finding.trace[1][0][2:] == (
        "edit",
        "locks record (FOR UPDATE): SELECT ... FOR UPDATE — via refresh",
    )


def test_a_method_called_with_the_session_on_an_unknown_receiver_is_a_helper(tmp_path: Path) -> None:
    source = """

class Runner:
    def step(self, zone_id: int, record_id: int, session: Session) -> None:
        session.execute(select(Record).where(Record.id == record_id).with_for_update()).scalar_one()
        session.execute(update(Zone).where(Zone.id == zone_id).values(serial=2))


def loop(runner, zone_id: int, record_id: int, session: Session) -> None:
    session.execute(select(Zone).where(Zone.id == zone_id).with_for_update()).scalar_one()
    runner.step(zone_id, record_id, session=session)


def publish(zone_id: int, record_id: int, session: Session) -> None:
    session.execute(select(Zone).where(Zone.id == zone_id).with_for_update()).scalar_one()
    session.execute(update(Record).where(Record.id == record_id).values(data="x"))
"""
    # ``step`` runs inside ``loop``'s transaction, which already holds the zone: no cycle with ``publish``
    assert lck005(tmp_path, source) == []


ONE_PATH = """

def edit(zone_id: int, record_id: int, session: Session) -> None:
    session.execute(select(Record).where(Record.id == record_id).with_for_update()).scalar_one()
    session.execute(update(Zone).where(Zone.id == zone_id).values(serial=2))


def publish(zone_id: int, session: Session) -> None:
    session.execute(select(Zone).where(Zone.id == zone_id).with_for_update()).scalar_one()
    records = select(Record).where(Record.zone_id == zone_id).order_by(Record.id)
    session.execute(records.with_for_update()).all()
"""


def test_a_declared_lock_order_reports_the_path_against_it_before_any_other_path_exists(
    tmp_path: Path,
) -> None:
    """Only ``edit`` exists at first: no cycle, but it locks record before zone, against the
    declared order. Once ``publish`` takes them the declared way too, the pair is a cycle,
    reported once as such."""
    alone = ONE_PATH.split("\n\n\ndef publish")[0] + "\n"
    assert lck005(tmp_path / "none", alone) == []
    (finding,) = lck005(tmp_path / "declared", alone, {"lock-order": ["zone", "record"]})
    assert finding.line == MODELS.count("\n") + alone.count("\n")  # the UPDATE of zone
    assert finding.message == (
        "edit locks record (FOR UPDATE) then zone (FOR NO KEY UPDATE), against the declared lock-order "
        "(zone before record); take zone first, or take it with NOWAIT/SKIP LOCKED"
    )
    assert [[step[2] for step in steps] for steps in finding.trace] == [["edit", "edit"]]
    assert lck005(tmp_path / "followed", alone, {"lock-order": ["record", "zone"]}) == []
    (cycle,) = lck005(tmp_path / "both", ONE_PATH, {"lock-order": ["zone", "record"]})
    assert cycle.message.startswith("lock-order inversion")


def test_a_table_named_twice_in_lock_order_is_a_config_error() -> None:
    from lockorder_lint.config import ConfigError

    with pytest.raises(ConfigError, match="names `zone` twice"):
        apply_settings(Config(), {"lock-order": ["zone", "record", "zone"]}, "test")


# A function that takes the record, then the zone, in the block of ``with {opener}``; its blocks
# are two transactions (the exit of each commits or closes) unless one block holds both locks.
SESSION_BLOCKS = """
from contextlib import contextmanager

from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

engine = create_engine("postgresql://")
SessionLocal = sessionmaker(engine)


@contextmanager
def create_session():
    with SessionLocal() as session:
        yield session
        session.commit()


def publish(zone_id: int, record_id: int, session: Session) -> None:
    session.execute(select(Zone).where(Zone.id == zone_id).with_for_update()).scalar_one()
    session.execute(update(Record).where(Record.id == record_id).values(data="x"))


def edit(zone_id: int, record_id: int, session: Session) -> None:
    with {opener}:
        session.execute(select(Record).where(Record.id == record_id).with_for_update()).scalar_one()
{between}        session.execute(update(Zone).where(Zone.id == zone_id).values(serial=Zone.serial + 1))
"""
OPENERS = [
    "Session(engine) as session",
    "SessionLocal() as session",
    "sessionmaker(engine)() as session",
    "create_session() as session",
    "session.begin()",
]


@pytest.mark.parametrize("opener", OPENERS)
def test_one_session_block_is_one_transaction(tmp_path: Path, opener: str) -> None:
    source = SESSION_BLOCKS.format(opener=opener, between="")
    assert [f.code for f in lck005(tmp_path, source)] == ["LCK005"]


@pytest.mark.parametrize("opener", OPENERS)
def test_two_session_blocks_are_two_transactions(tmp_path: Path, opener: str) -> None:
    source = SESSION_BLOCKS.format(opener=opener, between=f"    with {opener}:\n")
    assert lck005(tmp_path, source) == []


def test_a_savepoint_block_keeps_its_locks(tmp_path: Path) -> None:
    between = "    with session.begin_nested():\n"
    source = SESSION_BLOCKS.format(opener="session.begin_nested()", between=between)
    assert [f.code for f in lck005(tmp_path, source)] == ["LCK005"]


def test_an_attribute_write_closing_a_session_block_is_flushed_inside_it(tmp_path: Path) -> None:
    source = """
from sqlalchemy import create_engine

engine = create_engine("postgresql://")


def publish(zone_id: int, record_id: int, session: Session) -> None:
    session.execute(select(Zone).where(Zone.id == zone_id).with_for_update()).scalar_one()
    session.execute(update(Record).where(Record.id == record_id).values(data="x"))


def edit(zone_id: int, record_id: int) -> None:
    with Session(engine) as session:
        session.execute(select(Record).where(Record.id == record_id).with_for_update()).scalar_one()
        zone = session.get(Zone, zone_id)
        zone.serial = 2
"""
    (finding,) = lck005(tmp_path, source)
    written = finding.trace[1][-1][3]
    assert written.startswith("locks zone (FOR NO KEY UPDATE): UPDATE (ORM write of zone.serial")


MERGES = """

class Note(Base):
    __tablename__ = "note"
    id = Column(Integer, primary_key=True)
    zone_id = Column(Integer, ForeignKey("zone.id"))
    text = Column(String(255))

    def archive(self, session: Session) -> None:
        session.execute(update(Note).where(Note.id == self.id).values(text="archived"))
        {merge}


def close_zone(zone_id: int, note_id: int, session: Session) -> None:
    session.execute(select(Zone).where(Zone.id == zone_id).with_for_update()).scalar_one()
    session.execute(update(Note).where(Note.id == note_id).values(text="closed"))
"""


def test_merging_a_new_instance_checks_its_foreign_key(tmp_path: Path) -> None:
    source = MERGES.format(merge="session.merge(Note(id=self.id + 1, zone_id=self.zone_id))")
    (finding,) = lck005(tmp_path, source)
    steps = [step[3] for transaction in finding.trace for step in transaction]
    assert any("foreign key check of INSERT INTO note" in step for step in steps)


def test_merging_its_own_row_updates_it_without_a_key_check(tmp_path: Path) -> None:
    assert lck005(tmp_path, MERGES.format(merge="session.merge(self)")) == []


def test_rows_one_statement_locked_together_are_not_waited_for_again(tmp_path: Path) -> None:
    """The FOR UPDATE with the eager join locks the child and its parent together: a later write
    of the child while the parent is held waits for nothing new (the retry loop around the lock
    keeps it off "every path", so only the statement's own locks tell)."""
    source = """
from sqlalchemy.orm import relationship


class Parent(Base):
    __tablename__ = "parent"
    id = Column(Integer, primary_key=True)
    name = Column(String(50))


class Child(Base):
    __tablename__ = "child"
    id = Column(Integer, primary_key=True)
    parent_id = Column(Integer, ForeignKey("parent.id"))
    state = Column(String(20))
    parent = relationship(Parent, lazy="joined", innerjoin=True)


def finish(child_id: int, session: Session) -> None:
    for _attempt in range(3):
        session.execute(select(Child).where(Child.id == child_id).with_for_update()).scalar_one()
    session.execute(update(Child).where(Child.id == child_id).values(state="done"))


def rename(parent_id: int, child_id: int, session: Session) -> None:
    session.execute(update(Child).where(Child.id == child_id).values(state="renamed"))
    session.execute(update(Parent).where(Parent.id == parent_id).values(name="x"))
"""
    assert lck005(tmp_path, source) == []


@pytest.mark.parametrize(
    ("signature", "entry"),
    [
        ("def route(session: Session = Depends(get_db)): ...", True),
        ("def route(*, db_session: Annotated[Session, Depends(get_db)]): ...", True),
        ("def route(s: SessionDep): ...", True),
        ("def route(db: Database = Depends(provide_database)): ...", False),  # no session
        ("def route(session: Session): ...", False),
    ],
)
def test_a_route_with_a_session_dependency_is_an_entry_point(signature: str, entry: bool) -> None:
    import ast

    module = ast.parse(f"SessionDep = Annotated[Session, Depends(get_db)]\n{signature}\n")
    function = module.body[1]
    assert isinstance(function, ast.FunctionDef)
    assert transactions.takes_dependency(function, module, ("session", "*_session")) is entry


PUBLISH = """

def publish(zone_id: int, record_id: int, session: Session) -> None:
    session.execute(select(Zone).where(Zone.id == zone_id).with_for_update()).scalar_one()
    session.execute(update(Record).where(Record.id == record_id).values(data="x"))
"""


@pytest.mark.parametrize(
    "first_lock",
    [
        "session.execute(select(Zone).where(Zone.id == zone_id).with_for_update()).scalar_one()",
        "session.execute(update(Zone).where(Zone.id == zone_id).values(serial=1))",  # then upgraded
    ],
)
def test_a_switched_arm_is_on_every_path_where_the_caller_switches_it_on(
    tmp_path: Path, first_lock: str
) -> None:
    """``close`` takes the zone first whenever ``commit`` is on, which is the only way its record
    lock is taken (the caller hands ``commit`` on): its later zone lock waits for nothing new."""
    source = (
        PUBLISH
        + f"""

def close(zone_id: int, record_id: int, session: Session, commit: bool = False) -> None:
    if commit:
        {first_lock}
    lock_record(record_id, session=session, commit=commit)
    session.execute(select(Zone).where(Zone.id == zone_id).with_for_update()).scalar_one()


def lock_record(record_id: int, session: Session, commit: bool = False) -> None:
    if commit:
        session.execute(select(Record).where(Record.id == record_id).with_for_update()).scalar_one()


def close_from_the_ui(zone_id: int, record_id: int, session: Session) -> None:
    close(zone_id, record_id, session=session, commit=True)
"""
    )
    assert lck005(tmp_path, source) == []


def test_a_row_written_in_both_arms_of_an_if_is_held_after_it(tmp_path: Path) -> None:
    source = (
        PUBLISH
        + """

def close(zone_id: int, record_id: int, done: bool, session: Session) -> None:
    if done:
        session.execute(update(Zone).where(Zone.id == zone_id).values(serial=1))
    else:
        session.execute(update(Zone).where(Zone.id == zone_id).values(serial=2))
    session.execute(select(Record).where(Record.id == record_id).with_for_update()).scalar_one()
    session.execute(update(Zone).where(Zone.id == zone_id).values(serial=3))
"""
    )
    assert lck005(tmp_path, source) == []


def test_a_module_that_only_calls_a_session_opening_function_starts_its_transaction(tmp_path: Path) -> None:
    """The task command's module imports nothing of SQLAlchemy and names no session: its call of
    a ``@provide_session`` function without a session still starts that function's transaction
    (the module was left out of the program, and its call never seen)."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'example'\n", encoding="utf-8")
    (tmp_path / "example.py").write_text(
        MODELS
        + """

def provide_session(func):
    return func


def publish(zone_id: int, record_id: int, session: Session) -> None:
    session.execute(select(Zone).where(Zone.id == zone_id).with_for_update()).scalar_one()
    session.execute(update(Record).where(Record.id == record_id).values(data="x"))


@provide_session
def touch(zone_id: int, record_id: int, session=None) -> None:
    session.execute(select(Record).where(Record.id == record_id).with_for_update()).scalar_one()
    session.execute(update(Zone).where(Zone.id == zone_id).values(serial=2))


def nightly(zone_id: int, record_id: int, session: Session) -> None:
    session.execute(select(Zone).where(Zone.id == zone_id).with_for_update()).scalar_one()
    touch(zone_id, record_id, session=session)
""",
        encoding="utf-8",
    )
    (tmp_path / "command.py").write_text(
        "from example import touch\n\n\ndef run(zone_id, record_id):\n    touch(zone_id, record_id)\n",
        encoding="utf-8",
    )
    project = make_project(tmp_path, apply_settings(Config(), {"select": ["LCK005"]}, "test"))
    findings = check_path(tmp_path / "example.py", "example.py", project).findings
    # publish and nightly both take the zone before the record; touch, started by the command, the other way
    assert sorted((f.code, f.function) for f in findings) == [("LCK005", "nightly"), ("LCK005", "publish")]
    assert all("touch locks record (FOR UPDATE) then zone" in f.message for f in findings)


FLUSHED_TOGETHER = """
from sqlalchemy.orm import sessionmaker

SessionLocal = sessionmaker({options})


class Reschedule(Base):
    __tablename__ = "reschedule"
    id = Column(Integer, primary_key=True)
    zone_id = Column(Integer, ForeignKey("zone.id"), nullable=False)


def publish(zone_id: int, record_id: int, session: Session) -> None:
    session.execute(select(Zone).where(Zone.id == zone_id).with_for_update()).scalar_one()
    session.execute(update(Record).where(Record.id == record_id).values(data="x"))


def reschedule(zone_id: int, record_id: int, session: Session) -> None:
    record = session.get(Record, record_id)
    session.add(Reschedule(zone_id=zone_id))
    {between}
    record.data = "y"
    session.commit()
"""


@pytest.mark.parametrize(
    "between", ["session.execute(select(Audit)).all()", "session.merge(Audit(id=1, note='n'))", "pass"]
)
@pytest.mark.parametrize("options", ["", "autoflush=False"])
def test_a_statement_flushes_what_is_pending_unless_sessions_do_not_autoflush(
    tmp_path: Path, options: str, between: str
) -> None:
    """A statement the session runs (a merge loads its row first) flushes the reschedule INSERT,
    and its check of the zone row, before the record's UPDATE: publish's zone-then-record order
    is kept. With nothing between them, or where the project's sessions are made with
    ``autoflush=False``, both wait for the commit's flush, which sends ``Record`` before
    ``Reschedule`` (by class name): the record, then the zone."""
    findings = lck005(tmp_path, FLUSHED_TOGETHER.format(options=options, between=between))
    reported = between == "pass" or options == "autoflush=False"
    assert [f.function for f in findings] == (["publish"] if reported else [])
    if reported:
        assert "reschedule locks record (FOR NO KEY UPDATE) then zone (FOR KEY SHARE)" in findings[0].message
        assert "sent ahead by its flush" in findings[0].trace[1][0][3]


INSERTED = """

class Note(Base):
    __tablename__ = "note_by_default"
    id = Column(Integer, primary_key=True)
    zone_id = Column(Integer, ForeignKey("zone.id"), server_default="1")


class Linked(Base):
    __tablename__ = "linked"
    id = Column(Integer, primary_key=True)
    zone_id = Column(Integer, ForeignKey("zone.id"))

    def __init__(self, zone_id: int) -> None:
        self._link(zone_id)

    def _link(self, zone_id: int) -> None:
        self.zone_id = zone_id


def expand(zone_id: int, record_id: int, flag: bool, session: Session) -> None:
    session.execute(select(Record).where(Record.id == record_id).with_for_update()).scalar_one()
    {insert}
    session.flush()


def move(zone_id: int, record_id: int, session: Session) -> None:
    session.execute(select(Zone).where(Zone.id == zone_id).with_for_update()).scalar_one()
    session.execute(update(Record).where(Record.id == record_id).values(data="x"))
"""


@pytest.mark.parametrize(
    ("insert", "checked"),
    [
        ('session.add(Record(zone_id=zone_id, data="x"))', True),
        ('session.add(Record(data="x", zone_id=None))', False),
        ('row = Record(data="x")\n    row.zone_id = zone_id\n    session.add(row)', True),
        (
            'row = Record(data="x")\n    if flag:\n        row = Record(zone_id=zone_id)\n'
            "    session.add(row)",
            True,
        ),
        ("session.add(Note())", True),
        ("session.add(Linked(zone_id))", True),
    ],
    ids=["keyword", "none", "attribute-set-later", "one-branch", "server-default", "init-hands-on"],
)
def test_an_insert_checks_the_foreign_keys_its_rows_set(tmp_path: Path, insert: str, checked: bool) -> None:
    """The new row's zone key is checked (locking the zone row after the record, against move's
    order) whenever the row may carry it: given to the constructor, set on the instance before
    it is added, on one branch, by a column default, or by what ``__init__`` calls; not when it
    is left NULL."""
    findings = lck005(tmp_path, INSERTED.format(insert=insert))
    assert [f.function for f in findings] == (["expand"] if checked else [])


THREE_PARTIES = """

class Order(Base):
    __tablename__ = "orders"
    id = Column(Integer, primary_key=True)


class OrderLine(Base):
    __tablename__ = "order_line"
    id = Column(Integer, primary_key=True)
    order_id = Column(Integer, ForeignKey("orders.id"))


class Payment(Base):
    __tablename__ = "payment"
    id = Column(Integer, primary_key=True)
    line_id = Column(Integer, ForeignKey("order_line.id"))
    order_id = Column(Integer, ForeignKey("orders.id"))


def close_order(order_id: int, line_id: int, session: Session) -> None:
    session.execute(select(Order).where(Order.id == order_id).with_for_update()).scalar_one()
    session.execute(select(OrderLine).where(OrderLine.id == line_id).with_for_update()).scalar_one()


def settle_line(line_id: int, payment_id: int, session: Session) -> None:
    session.execute(select(OrderLine).where(OrderLine.id == line_id).with_for_update()).scalar_one()
    session.execute(select(Payment).where(Payment.id == payment_id).with_for_update()).scalar_one()


def refund(payment_id: int, order_id: int, session: Session) -> None:
    session.execute(select(Payment).where(Payment.id == payment_id).with_for_update()).scalar_one()
    session.execute(select(Order).where(Order.id == order_id).with_for_update()).scalar_one()


def chargeback(payment_id: int, order_id: int, session: Session) -> None:
    session.execute(select(Payment).where(Payment.id == payment_id).with_for_update()).scalar_one()
    session.execute(select(Order).where(Order.id == order_id).with_for_update()).scalar_one()
"""


def test_a_three_party_cycle_names_the_other_transactions_of_an_edge(tmp_path: Path) -> None:
    (finding,) = lck005(tmp_path, THREE_PARTIES)
    assert "three-party" in finding.message and finding.message.count("(so do") == 1
    assert "refund locks payment (FOR UPDATE) then orders (FOR UPDATE) (so do chargeback)" in finding.message
    assert [steps[0][2] for steps in finding.trace] == ["close_order", "settle_line", "refund", "chargeback"]
