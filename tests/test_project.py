"""What a default run learns from the project as a whole: which tables are hot (the code's own
row locks), that migrations run alone, which databases the code runs on, bases defined in
installed packages, lock helpers it defines, and syntax newer than the running interpreter."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.test_cli import run_cli

MODELS = """\
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Job(Base):
    __tablename__ = "job"

    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[str] = mapped_column(String(20))


class Note(Base):
    __tablename__ = "note"

    id: Mapped[int] = mapped_column(primary_key=True)
    author: Mapped[str] = mapped_column(String(50))
"""

WORK = """\
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.models import Job, Note


def claim(session: Session, job_id: int) -> None:
    session.get(Job, job_id, with_for_update=True)


def fail_running(session: Session) -> None:
    session.execute(update(Job).where(Job.state == "running").values(state="failed"))


def rename_author(session: Session, old: str, new: str) -> None:
    session.execute(update(Note).where(Note.author == old).values(author=new))
"""


def project(root: Path, **files: str) -> Path:
    (root / "app").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'app'\n", encoding="utf-8")
    (root / "app" / "__init__.py").write_text("", encoding="utf-8")
    for name, text in {"models": MODELS, **files}.items():
        path = root / "app" / f"{name.replace('.', '/')}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def codes_at(out: str) -> list[tuple[str, str]]:
    return [(line.split(":")[0] + ":" + line.split(":")[1], line.split(" ")[1]) for line in out.splitlines()]


def test_only_tables_the_code_row_locks_are_hot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = project(tmp_path / "p", work=WORK)
    code, out, _err = run_cli(capsys, "--no-cache", "app", cwd=root)
    assert code == 1
    assert codes_at(out) == [("app/work.py:12", "LCK001")]  # job is locked in claim(); note is not
    code, out, _err = run_cli(capsys, "--no-cache", "--all-tables", "app", cwd=root)
    assert codes_at(out) == [("app/work.py:12", "LCK001"), ("app/work.py:16", "LCK001")]


def test_tables_shows_why_a_table_is_hot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = project(tmp_path / "p", work=WORK)
    code, out, err = run_cli(capsys, "tables", "app", cwd=root)
    assert code == 0
    lines = out.splitlines()
    assert lines[lines.index(next(x for x in lines if x.startswith("job "))) + 1] == (
        "    hot: row-locked at app/work.py:8 claim"
    )
    assert "    not hot: nothing in production code row-locks it or retries writes to it" in lines
    assert err.strip().endswith("dialects: postgresql (from the code; set `dialects` to decide)")


def test_configured_hot_tables_win(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = project(tmp_path / "p", work=WORK)
    (root / "pyproject.toml").write_text(
        "[project]\nname = 'app'\n[tool.lockorder-lint]\nhot-tables = ['note']\n", encoding="utf-8"
    )
    code, out, _err = run_cli(capsys, "--no-cache", "app", cwd=root)
    assert codes_at(out) == [("app/work.py:16", "LCK001")]


MIGRATION = """\
import sqlalchemy as sa
from alembic import op

from app.models import Job

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    conn = op.get_bind()
    conn.execute(sa.update(Job).where(Job.state == "old").values(state="new"))
"""


def test_migrations_are_counted_not_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = project(tmp_path / "p", work=WORK, **{"migrations.versions.0002_states": MIGRATION})
    code, out, err = run_cli(capsys, "--no-cache", "app", cwd=root)
    assert codes_at(out) == [("app/work.py:12", "LCK001")]
    assert "1 migration not checked (--include-migrations checks them)" in err
    code, out, err = run_cli(capsys, "--no-cache", "--include-migrations", "app", cwd=root)
    assert ("app/migrations/versions/0002_states.py:12", "LCK001") in codes_at(out)


GAP = """\
from flask import Blueprint
from sqlalchemy import update

from app.models import Note

api = Blueprint("notes", __name__)
DIALECT = "mysql"


@api.route("/notes", methods=["POST"])
def new_note(session, author: str) -> None:
    session.execute(update(Note).where(Note.author == author).values(author=author))
    session.add(Note(author=author))
"""


def test_mysql_is_inferred_from_the_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The code names MySQL, so a request handler's range write followed by an INSERT into the same
    table is the gap-lock deadlock, reported although nothing row-locks the table."""
    root = project(tmp_path / "p", handlers=GAP)
    code, out, err = run_cli(capsys, "--no-cache", "app", cwd=root)
    assert codes_at(out) == [("app/handlers.py:12", "LCK001")]
    assert "gap lock" in out
    assert err.splitlines()[-1].endswith("; mysql assumed from the code (set `dialects` to decide)")
    (root / "pyproject.toml").write_text(
        "[project]\nname = 'app'\n[tool.lockorder-lint]\ndialects = ['postgresql']\n", encoding="utf-8"
    )
    code, out, err = run_cli(capsys, "--no-cache", "app", cwd=root)
    assert (code, out) == (0, "")


HELPER = """\
import contextlib

from sqlalchemy import select


def with_row_locks(query, session, **kwargs):
    return query.with_for_update(**kwargs)


@contextlib.contextmanager
def lock_rows(query, session):
    locked = session.execute(with_row_locks(query, session)).all()
    yield
    del locked
"""

LOCKERS = """\
from sqlalchemy import select

from app.locking import lock_rows, with_row_locks
from app.models import Job


def pick(session, limit):
    return session.scalars(with_row_locks(select(Job).where(Job.state == "queued"), session)).all()


def pick_skipping(session, limit):
    query = select(Job).where(Job.state == "queued")
    return session.scalars(with_row_locks(query, session, skip_locked=True)).all()


def hold(session, state):
    with lock_rows(select(Job).where(Job.state == state), session):
        session.commit()
"""


def test_a_lock_helper_the_project_defines_is_read_at_each_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(tmp_path / "p", locking=HELPER, lockers=LOCKERS)
    code, out, _err = run_cli(capsys, "--no-cache", "app", cwd=root)
    assert codes_at(out) == [("app/lockers.py:8", "LCK002"), ("app/lockers.py:17", "LCK002")]
    assert "(via with_row_locks)" in out
    assert "(via lock_rows)" in out  # a context manager that hands its statement to the helper


BASES = """\
import sqlalchemy as sa
from sqlalchemy import orm


class HasId:
    id = sa.Column(sa.String(36), primary_key=True)


class PluralNames:
    @orm.declared_attr
    def __tablename__(cls):
        return cls.__name__.lower() + "s"


class BASEV2(orm.DeclarativeBase, PluralNames):
    pass
"""

PORTS = """\
import sqlalchemy as sa
from extlib.model_base import BASEV2, HasId


class Port(BASEV2, HasId):
    device_owner = sa.Column(sa.String(255))


def release(session, owner):
    session.get(Port, owner, with_for_update=True)
    session.execute(sa.update(Port).where(Port.device_owner == owner).values(device_owner=None))
"""


def test_bases_from_an_installed_package(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    environment = tmp_path / "env"
    package = environment / "lib" / "python3.11" / "site-packages" / "extlib"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "model_base.py").write_text(BASES, encoding="utf-8")
    root = project(tmp_path / "p", ports=PORTS)
    code, out, err = run_cli(capsys, "--no-cache", "--show-unknown", "app", cwd=root)
    assert out == "" and "not checked: UPDATE on Port" in err
    python = str(environment / "bin" / "python")
    code, out, err = run_cli(capsys, "--no-cache", "--python", python, "app", cwd=root)
    assert codes_at(out) == [("app/ports.py:11", "LCK001")]
    assert "bulk UPDATE of ports locks rows through device_owner, not in id order" in out


NEWER_SYNTAX = """\
from sqlalchemy import update

from app.models import Job


def fail_all(session, names):
    print(f"failing {", ".join(names)}")  # a PEP 701 f-string: Python 3.12 syntax
    session.get(Job, 1, with_for_update=True)
    session.execute(update(Job).where(Job.state == "running").values(state="failed"))
"""


def test_syntax_newer_than_the_interpreter_is_still_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(tmp_path / "p", newer=NEWER_SYNTAX)
    code, out, err = run_cli(capsys, "--no-cache", "app", cwd=root)
    assert "error" not in err
    assert codes_at(out) == [("app/newer.py:9", "LCK001")]
    assert out.splitlines()[0].startswith("app/newer.py:9:21: ")  # columns survive the blanking


RETRIED = """\
import tenacity
from sqlalchemy import delete, update

from app.models import Job, Note


@tenacity.retry(stop=tenacity.stop_after_attempt(3))
def bump(session, job_id: int) -> None:
    session.execute(update(Job).where(Job.id == job_id).values(state="x"))
    session.rollback()


def prune(session) -> None:
    session.execute(delete(Job).where(Job.state == "gone"))


class Retry:
    def __init__(self, attempts: int) -> None:
        self.attempts = attempts


async def mark_ready(session, retry: Retry = Retry(attempts=5)) -> None:
    session.execute(update(Note).where(Note.author == "new").values(author="ready"))
"""


def test_writes_the_code_retries_make_a_table_hot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A retry decorator, or docket's ``retry: Retry = Retry(...)`` parameter, re-runs the writes
    when they fail: the authors saw writers meet on those tables."""
    root = project(tmp_path / "p", retried=RETRIED)
    code, out, _err = run_cli(capsys, "--no-cache", "app", cwd=root)
    assert codes_at(out) == [("app/retried.py:14", "LCK001"), ("app/retried.py:23", "LCK001")]
    code, out, _err = run_cli(capsys, "tables", "app", cwd=root)
    lines = out.splitlines()
    job = lines[lines.index(next(x for x in lines if x.startswith("job "))) + 1]
    assert job == "    hot: written under @retry at app/retried.py:9 bump"
    note = lines[lines.index(next(x for x in lines if x.startswith("note "))) + 1]
    assert note == "    hot: written under a docket Retry at app/retried.py:23 mark_ready"


LEASES = """\
from sqlalchemy import Integer, String, delete
from sqlalchemy.orm import Mapped, mapped_column

from app.models import Base, Note

DIALECT = "mysql"


class Lease(Base):
    __tablename__ = "lease"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    expires_at: Mapped[int] = mapped_column(Integer)

    def save(self, session) -> None:
        session.merge(self)


class LeaseStore:
    @staticmethod
    def sweep_expired(session, now: int) -> None:
        session.execute(delete(Lease).where(Lease.expires_at < now))

    @staticmethod
    def create(session, name: str, until: int) -> None:
        session.add(Lease(name=name, expires_at=until))


def forget(session, author: str) -> None:
    session.execute(delete(Note).where(Note.author == author))
"""

LEASE_USERS = """\
from app.leases import Lease, LeaseStore, forget
from app.models import Note


def acquire(session, name: str, now: int) -> None:
    LeaseStore.sweep_expired(session, now)
    LeaseStore.create(session, name, now + 30)
    session.commit()


def renew(session, name: str, now: int) -> None:
    LeaseStore.sweep_expired(session, now)
    lease = Lease(name=name, expires_at=now + 60)
    lease.save(session)
    session.commit()


def rewrite(session, author: str) -> None:
    forget(session, author)
    session.add(Note(author=author))
    session.commit()
"""


def test_a_sweep_composed_with_an_insert_by_its_callers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """MySQL: a helper's range DELETE, then an INSERT into the same table made by the caller
    (itself, through another helper, or through the model's own ``merge(self)``) is the gap-lock
    deadlock when copies of the transaction run at once: here two callers compose it. A single
    plain caller, on a table nobody locks or retries, is not reported."""
    root = project(tmp_path / "p", leases=LEASES, users=LEASE_USERS)
    code, out, _err = run_cli(capsys, "--no-cache", "app", cwd=root)
    assert codes_at(out) == [("app/leases.py:23", "LCK001")]
    assert (
        "DELETE of lease through expires_at in a range takes gap locks that deadlock (1213) with the "
        "callers' INSERT into lease (acquire and 1 more)" in out
    )
    code, out, _err = run_cli(capsys, "--no-cache", "--format", "json", "app", cwd=root)
    why = [f["hot_because"] for f in json.loads(out)]
    assert why == ["copies run at once: 2 callers compose it with an insert"]
    (root / "app" / "users.py").write_text(
        LEASE_USERS.replace("    LeaseStore.sweep_expired(session, now)\n    lease", "    lease"),
        encoding="utf-8",
    )
    code, out, _err = run_cli(capsys, "--no-cache", "app", cwd=root)
    assert out == ""


def test_cached_results_follow_new_evidence_and_new_callers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A result depends on other files: a lock added elsewhere makes a table hot, a new caller
    composes a sweep with an insert. The cache must not hide either."""
    root = project(tmp_path / "p", work=WORK)
    cache = str(tmp_path / "cache")
    code, out, _err = run_cli(capsys, "--cache-dir", cache, "app", cwd=root)
    assert codes_at(out) == [("app/work.py:12", "LCK001")]
    (root / "app" / "lock_notes.py").write_text(
        "from app.models import Note\n\n\n"
        "def claim(session, i):\n    session.get(Note, i, with_for_update=True)\n",
        encoding="utf-8",
    )
    code, out, _err = run_cli(capsys, "--cache-dir", cache, "app", cwd=root)
    assert codes_at(out) == [("app/work.py:12", "LCK001"), ("app/work.py:16", "LCK001")]

    (root / "app" / "leases.py").write_text(LEASES, encoding="utf-8")
    single = LEASE_USERS.split("\n\n\ndef renew")[0] + "\n"
    (root / "app" / "users.py").write_text(single, encoding="utf-8")
    code, out, _err = run_cli(capsys, "--cache-dir", cache, "app", cwd=root)
    assert "app/leases.py:23" not in out  # one caller: no evidence that copies run at once
    (root / "app" / "more_users.py").write_text(
        "from app.leases import LeaseStore\n\n\ndef take(session, name, now):\n"
        "    LeaseStore.sweep_expired(session, now)\n    LeaseStore.create(session, name, now)\n",
        encoding="utf-8",
    )
    code, out, _err = run_cli(capsys, "--cache-dir", cache, "app", cwd=root)
    assert ("app/leases.py:23", "LCK001") in codes_at(out)
    # An edit of the helper's file alone re-checks it with the callers' answers kept from the
    # last run; an edit of a caller's file works its answer out again.
    (root / "app" / "leases.py").write_text(LEASES + "# edited\n", encoding="utf-8")
    code, out, _err = run_cli(capsys, "--cache-dir", cache, "app/leases.py", cwd=root)
    assert codes_at(out) == [("app/leases.py:23", "LCK001"), ("app/leases.py:31", "LCK001")]  # note is hot
    (root / "app" / "more_users.py").write_text(
        "from app.leases import LeaseStore\n\n\ndef take(session, name, now):\n"
        "    LeaseStore.sweep_expired(session, now)\n",
        encoding="utf-8",
    )
    code, out, _err = run_cli(capsys, "--cache-dir", cache, "app/leases.py", cwd=root)
    assert "app/leases.py:23" not in out


def test_findings_say_why_their_table_is_hot_and_the_summary_counts_cold_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(tmp_path / "p", work=WORK)
    code, out, err = run_cli(capsys, "--no-cache", "--format", "json", "app", cwd=root)
    findings = [entry for entry in json.loads(out) if entry["type"] == "finding"]
    assert [(f["line"], f["table"], f["hot_because"]) for f in findings] == [
        (12, "job", "row-locked at app/work.py:8 claim")
    ]
    code, out, err = run_cli(capsys, "--no-cache", "app", cwd=root)
    assert err.splitlines()[-1] == (
        "1 finding (LCK001 1) in 3 files checked; 1 statement on tables with no sign of contention"
        " (--all-tables checks them)"
    )
    code, out, err = run_cli(capsys, "--no-cache", "--all-tables", "--format", "json", "app", cwd=root)
    assert [f["hot_because"] for f in json.loads(out)] == ["all-tables is set", "all-tables is set"]
    (root / "pyproject.toml").write_text(
        "[project]\nname = 'app'\n[tool.lockorder-lint]\nhot-tables = ['note']\n", encoding="utf-8"
    )
    code, out, err = run_cli(capsys, "--no-cache", "--format", "json", "app", cwd=root)
    assert [(f["table"], f["hot_because"]) for f in json.loads(out)] == [("note", "listed in hot-tables")]


CONDITIONS = """\
from sqlalchemy import delete, exists, not_, select, update
from sqlalchemy.orm import Session

from app.models import Job, Note


def claim(session: Session, job_id: int) -> None:
    session.get(Job, job_id, with_for_update=True)


def sweep(session: Session, keep: list[int], cutoff: int) -> None:
    session.execute(delete(Job).where(Job.id.not_in(keep)))
    session.execute(delete(Job).where(~exists(select(Note.id).where(Note.id == Job.id))))
    session.execute(update(Job).where(Job.id.in_(select(Job.id).where(Job.state == "x"))).values(state="y"))
    session.execute(update(Job).where(Job.id > cutoff, Job.state != "done").values(state="z"))
    session.execute(update(Job).where(not_(Job.state.in_(["a", "b"]))).values(state="z"))
    session.execute(delete(Job))
"""


def test_messages_say_how_a_column_that_is_not_pinned_is_constrained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(tmp_path / "p", work=CONDITIONS)
    code, out, _err = run_cli(capsys, "--no-cache", "--format", "json", "app", cwd=root)
    *messages, everything = [f["message"] for f in json.loads(out)]
    assert everything == (
        "bulk DELETE of job has no WHERE clause: it locks every row, not in id order; "
        "select the id values first (ORDER BY id ... FOR UPDATE), then DELETE by id"
    )
    reached = [m.split(" locks rows through ")[1].split(", not in ")[0] for m in messages]
    assert reached == [
        "id NOT IN (…)",
        "id correlated in NOT EXISTS on note",
        "id IN (a subquery on job (state))",
        "id in a range, state != …",
        "state NOT IN (…)",
    ]


def test_all_tables_overrides_a_configured_hot_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(tmp_path / "p", work=WORK)
    (root / "pyproject.toml").write_text(
        "[project]\nname = 'app'\n[tool.lockorder-lint]\nhot-tables = ['note']\n", encoding="utf-8"
    )
    code, out, _err = run_cli(capsys, "--no-cache", "--all-tables", "app", cwd=root)
    assert codes_at(out) == [("app/work.py:12", "LCK001"), ("app/work.py:16", "LCK001")]


SELF_EVIDENCE = """\
import tenacity
from sqlalchemy import delete, update

from app.models import Job, Note


def claim(session, job_id: int) -> None:
    session.get(Job, job_id, with_for_update=True)


@tenacity.retry(stop=tenacity.stop_after_attempt(3))
def reap(session) -> None:
    session.execute(update(Note).where(Note.author == "gone").values(author="x"))
"""

JOINED = """\
from sqlalchemy import delete

from app.models import Job, Note


def claim(session, job_id: int) -> None:
    session.get(Job, job_id, with_for_update=True)


def purge(session) -> None:
    session.execute(delete(Note).where(Note.author == Job.state, Job.state == "gone"))
"""


def test_a_retry_of_the_write_itself_is_no_evidence_and_joined_hot_rows_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Airflow's ``adopt_or_reset_orphaned_tasks`` retries its own sweep of the job table: that
    shows the write may fail, not that anyone else writes those rows. On MySQL a write that reads
    rows of a hot table through a join takes shared locks on them (Airflow's
    ``purge_inactive_dag_warnings``): the message says so, not that its own rows are out of order."""
    root = project(tmp_path / "p", work=SELF_EVIDENCE)
    code, out, err = run_cli(capsys, "--no-cache", "--select", "LCK001", "app", cwd=root)
    assert out == ""
    assert "1 statement on tables with no sign of contention" in err.splitlines()[-1]
    root = project(tmp_path / "q", work=JOINED)
    (root / "pyproject.toml").write_text(
        "[project]\nname = 'app'\n[tool.lockorder-lint]\ndialects = ['postgresql', 'mysql']\n",
        encoding="utf-8",
    )
    code, out, err = run_cli(capsys, "--no-cache", "--format", "json", "app", cwd=root)
    found = [(f["line"], f["message"].split(":")[0], f["hot_because"]) for f in json.loads(out)]
    assert found == [
        (11, "bulk DELETE of note reads job rows in the same statement", "row-locked at app/work.py:7 claim")
    ]


def test_a_table_variable_is_found_by_its_short_name_only_from_its_own_module(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SQLAlchemy's MSSQL ``tables = Table("TABLES", ...)`` is not what ``cls.tables.update(...)`` (a
    dict) means in another module."""
    root = project(
        tmp_path / "p",
        schema="from sqlalchemy import Column, Integer, MetaData, Table\n\n"
        'tables = Table("TABLES", MetaData(), Column("id", Integer))\n',
        fixtures="class Fixture:\n    tables = {}\n\n    @classmethod\n    def setup(cls, more, session):\n"
        "        cls.tables.update(more)\n        session.commit()\n",
    )
    code, out, err = run_cli(capsys, "--no-cache", "--show-unknown", "app", cwd=root)
    assert "not checked" not in err


def test_a_cached_result_survives_an_edit_inside_a_function_it_only_resolved(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A check that resolved a call into another file read what that file declares, not its
    bodies: an edit inside a function there keeps the result; a change of what it declares does
    not."""
    from lockorder_lint import runner

    notify = (
        "from sqlalchemy import select\n\nfrom app.models import Job\n\n\n"
        "def running():\n    return select(Job).where(Job.state == 'running')\n\n\n"
        "def notify(session, job_id):\n    print('job', job_id)\n"
    )
    imports = "from app.helpers import notify\nfrom app.models import Job, Note\n"
    work = WORK.replace("from app.models import Job, Note\n", imports).replace(
        '    session.execute(update(Job).where(Job.state == "running").values(state="failed"))\n',
        '    session.execute(update(Job).where(Job.state == "running").values(state="failed"))\n'
        "    notify(session, 1)\n",
    )
    root = project(tmp_path / "p", work=work, helpers=notify)
    checked: list[str] = []
    original = runner._check_safely

    def counting(data: bytes, path: Path, display: str, project: object, *more: Any) -> object:
        checked.append(path.name)
        return original(data, path, display, project, *more)  # type: ignore[arg-type]

    monkeypatch.setattr(runner, "_check_safely", counting)
    cache = str(tmp_path / "cache")
    code, first, _err = run_cli(capsys, "--jobs", "1", "--cache-dir", cache, "app", cwd=root)
    assert "app/work.py:13" in first
    (root / "app" / "helpers.py").write_text(notify.replace("'job'", "'job:'"), encoding="utf-8")
    checked.clear()
    code, out, _err = run_cli(capsys, "--jobs", "1", "--cache-dir", cache, "app", cwd=root)
    assert (out, checked) == (first, ["helpers.py"])
    (root / "app" / "helpers.py").write_text(notify.replace("job_id", "ident"), encoding="utf-8")
    checked.clear()
    code, out, _err = run_cli(capsys, "--jobs", "1", "--cache-dir", cache, "app", cwd=root)
    assert out == first and "work.py" in checked


# The quick tests that decide which files say something (models, shared sessions, MySQL) must
# answer as the patterns that define them, on every kind of file the repository holds.
_SHARED_SESSION = re.compile(
    rb"(?m)^\w+\s*(?::[^=]+)?=\s*(?:[\w.]+\.)?(?:SQLAlchemy|scoped_session|async_scoped_session)\(|"
    rb"(?<![\w.])(?!self\.|cls\.)[A-Za-z_]\w*\.session\.(?:query|execute|scalars?|commit|add|flush|get|merge)\("
)
_SAMPLES = [
    b"db = SQLAlchemy(app)\n",
    b"Session: scoped_session = scoped_session(factory)\n",
    b"    x = orm.scoped_session(f)\n",  # indented: not a module-level binding
    b"db.session.query(User)\n",
    b"self.session.query(User)\n",
    b"app.db.session.add(x)\n",
    b"cls.session.commit()\n",
    b"_db2.session.execute(stmt)\n",
    b"class Job(Base):\n    __tablename__ = 'job'\n",
    b"job = Table('job', metadata)\n",
    b"Job.__table__ = t\n",
    b"Alias = models.Job\n",
    b"import pymysql\n",
    b"url = 'mysql+pymysql://x'\n",
    b"if dialect == 'mariadb':\n",
    b"MySQL is mentioned only in prose\n",
]


def _repository_files() -> list[bytes]:
    root = Path(__file__).resolve().parent.parent
    return [p.read_bytes() for p in sorted((*root.glob("src/**/*.py"), *root.glob("tests/**/*.py")))]


def test_quick_file_tests_answer_as_their_patterns() -> None:
    from lockorder_lint.declarations import MODEL_HINT, may_declare_models
    from lockorder_lint.project import MYSQL_MENTION, mentions_mysql, shares_sessions

    texts = _SAMPLES + _repository_files()
    assert [may_declare_models(t) for t in texts] == [MODEL_HINT.search(t) is not None for t in texts]
    assert [shares_sessions(t) for t in texts] == [_SHARED_SESSION.search(t) is not None for t in texts]
    assert [mentions_mysql(t) for t in texts] == [MYSQL_MENTION.search(t) is not None for t in texts]
    assert [shares_sessions(t) for t in _SAMPLES[:8]] == [True, True, False, True, False, False, False, True]


def test_callers_are_indexed_when_the_project_sits_under_a_tests_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether a module is a test is read from its path in the project: run from ``~``, a
    project in ``~/tests/app`` shows every path with a ``tests`` part, and its callers (and what
    its production code tells about the databases) were lost."""
    from lockorder_lint.config import Config
    from lockorder_lint.runner import make_project

    root = tmp_path / "tests" / "app"
    (root / "pkg").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'app'\n", encoding="utf-8")
    (root / "pkg" / "__init__.py").write_text("", encoding="utf-8")
    (root / "pkg" / "jobs.py").write_text(
        "from sqlalchemy.orm import Session\n\n\ndef nightly(session: Session) -> None:\n"
        "    archive(session)\n\n\ndef archive(session: Session) -> None:\n    session.commit()\n",
        encoding="utf-8",
    )
    (root / "pkg" / "test_jobs.py").write_text(
        "def test_it(session):\n    archive(session)\n", encoding="utf-8"
    )
    (root / "pkg" / "db.py").write_text("import pymysql\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    project = make_project(root.resolve(), Config())
    program = project.program
    assert program is not None
    assert program.call_index["archive"] == (str((root / "pkg" / "jobs.py").resolve()),)
    assert "mysql" in project.config.dialects  # production code ships a MySQL driver


def test_decorated_functions_are_read_without_parsing() -> None:
    """What ``session_openers`` reads from every file: each decorated ``def`` (async, in a class,
    under stacked decorators, with CRLF line ends) and its decorators' last names; an ``@`` that
    does not begin a line (a matrix product, inside a string) is no decorator."""
    from lockorder_lint.symbols import decorated_functions

    source = (
        b"@provide_session\ndef f(session=None):\n    pass\n\n\nclass A:\n    @staticmethod\n"
        b"    @utils.provide_session\n    async def g():\n        pass\n\n    @app.get('/a@b')\n"
        b"    def h():\n        pass\n\n\nx = a @ b\n@deco\r\ndef crlf():\n    pass\n@dangling"
    )
    assert decorated_functions(source) == (
        ("f", ("provide_session",)),
        ("g", ("staticmethod", "provide_session")),
        ("h", ("get",)),
        ("crlf", ("deco",)),
    )
    assert decorated_functions(b"def plain():\n    return 1\n") == ()
    # blank and comment lines between the decorator and its def
    assert decorated_functions(b"@provide_session\n\n# why\ndef later(session=None):\n    pass\n") == (
        ("later", ("provide_session",)),
    )
