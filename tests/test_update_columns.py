"""The columns an UPDATE sets, read from each way SQLAlchemy code spells them, and the row locks
that follow: a key column set takes FOR UPDATE, a foreign-key column set (to something other
than NULL) checks the parent row with FOR KEY SHARE; columns not spelled out change nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockorder_lint import transactions
from lockorder_lint.config import Config, apply_settings
from lockorder_lint.engine import Project
from lockorder_lint.raw_sql import to_statement
from lockorder_lint.runner import check_path, make_project
from lockorder_lint.sql_reader import read_sql
from lockorder_lint.statements import Span
from lockorder_lint.transactions import FOR_KEY_SHARE, FOR_NO_KEY_UPDATE, FOR_UPDATE

MODELS = """
from sqlalchemy import Column, ForeignKey, Integer, String, Table, MetaData, select, text, update
from sqlalchemy.orm import DeclarativeBase, Session, relationship


class Base(DeclarativeBase):
    pass


class Team(Base):
    __tablename__ = "team"
    id = Column(Integer, primary_key=True)
    slug = Column(String(50), unique=True)
    name = Column(String(50))


class Member(Base):
    __tablename__ = "member"
    id = Column(Integer, primary_key=True)
    team_id = Column("team", Integer, ForeignKey("team.id"))
    role = Column(String(20))
    team = relationship(Team)

"""


def project_of(tmp_path: Path, body: str) -> Project:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'example'\n", encoding="utf-8")
    (tmp_path / "example.py").write_text(MODELS + body, encoding="utf-8")
    return make_project(tmp_path, apply_settings(Config(), {"select": ["LCK005"]}, "test"))


def locks(tmp_path: Path, body: str) -> list[tuple[str, str]]:
    """(table, mode) of each lock step of function ``run`` in ``body``."""
    project = project_of(tmp_path, body)
    module = tmp_path / "example.py"
    summaries = transactions.file_locks(module.read_bytes(), module, "example.py", project)
    (run,) = [s for s in summaries if s.name == "run"]
    return [(s.acquisition.table, s.acquisition.mode) for s in run.steps if s.acquisition is not None]


MEMBER_1 = "session.execute(update(Member).where(Member.id == 1)"
MEMBER_UPDATE = [("member", FOR_NO_KEY_UPDATE)]
FK_CHECKED = [("member", FOR_NO_KEY_UPDATE), ("team", FOR_KEY_SHARE)]
KEY_UPDATE = [("team", FOR_UPDATE)]


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("session.execute(update(Member).where(Member.id == 1).values(role='x'))", MEMBER_UPDATE),
        ("session.execute(update(Member).where(Member.id == 1).values(team_id=2))", FK_CHECKED),
        ("session.execute(update(Member).where(Member.id == 1).values({Member.team_id: 2}))", FK_CHECKED),
        ("session.execute(update(Member).where(Member.id == 1).values({'team_id': 2}))", FK_CHECKED),
        # the column's database name ("team") names the same attribute
        ("session.execute(update(Member).where(Member.id == 1).values({'team': 2}))", FK_CHECKED),
        (f"{MEMBER_1}.ordered_values((Member.team_id, 2)))", FK_CHECKED),
        (f"{MEMBER_1}.values(role='x').values(team_id=2))", FK_CHECKED),
        ("session.execute(update(Member).where(Member.id == 1).values(team_id=None))", MEMBER_UPDATE),
        ("session.execute(update(Member).where(Member.id == 1).values(**changes))", MEMBER_UPDATE),
        ("session.execute(update(Member).where(Member.id == 1).values(changes))", MEMBER_UPDATE),
        ("session.query(Member).filter(Member.id == 1).update({Member.team_id: 2})", FK_CHECKED),
        ("session.query(Member).filter(Member.id == 1).update({'role': 'x'})", MEMBER_UPDATE),
        ("session.query(Member).filter(Member.id == 1).update(changes)", MEMBER_UPDATE),
        ("session.execute(update(Member), [{'id': 1, 'team_id': 2}, {'id': 3, 'team_id': 4}])", FK_CHECKED),
        ("session.execute(update(Member).where(Member.id == 1), {'team_id': 2})", FK_CHECKED),
        ("session.execute(update(Member), rows)", MEMBER_UPDATE),
        ("session.execute(update(Team).where(Team.id == 1).values(slug='a'))", KEY_UPDATE),
        ("session.execute(update(Team).where(Team.id == 1).values(id=5))", KEY_UPDATE),
        ("session.execute(update(Team).where(Team.id == 1).values(name='a'))", [("team", FOR_NO_KEY_UPDATE)]),
        # ORM bulk UPDATE by primary key: the key goes to the WHERE clause, it is not set
        ("session.execute(update(Team), [{'id': 1, 'name': 'a'}])", [("team", FOR_NO_KEY_UPDATE)]),
    ],
)
def test_the_columns_an_update_sets_decide_its_locks(
    tmp_path: Path, statement: str, expected: list[tuple[str, str]]
) -> None:
    body = f"def run(session: Session, changes: dict, rows: list) -> None:\n    {statement}\n"
    assert locks(tmp_path, body) == expected


@pytest.mark.parametrize(
    ("write", "expected"),
    [
        ("member.role = 'x'", [("member", FOR_NO_KEY_UPDATE)]),
        ("member.team_id = 2", [("member", FOR_NO_KEY_UPDATE), ("team", FOR_KEY_SHARE)]),
        ("member.team_id = None", [("member", FOR_NO_KEY_UPDATE)]),
        ("member.id = 9", [("member", FOR_UPDATE)]),
        # a many-to-one relationship sets the foreign-key columns that point at its target
        ("member.team = Team(id=2)", [("member", FOR_NO_KEY_UPDATE), ("team", FOR_KEY_SHARE)]),
        ("member.team = None", [("member", FOR_NO_KEY_UPDATE)]),
        ("member.nickname = 'x'", []),
    ],
)
def test_an_orm_attribute_write_is_an_update_of_that_column(
    tmp_path: Path, write: str, expected: list[tuple[str, str]]
) -> None:
    loaded = "member = session.get(Member, 1)"
    body = f"def run(session: Session) -> None:\n    {loaded}\n    {write}\n    session.commit()\n"
    assert locks(tmp_path, body) == expected


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("UPDATE member SET team = 2 WHERE id = 1", FK_CHECKED),
        ("UPDATE member SET team = NULL, role = 'x' WHERE id = 1", MEMBER_UPDATE),
        ("UPDATE member SET role = 'x' WHERE id = 1", MEMBER_UPDATE),
        ("UPDATE team SET slug = 'a' WHERE id = 1", KEY_UPDATE),
    ],
)
def test_sql_text_updates_lock_by_the_columns_they_set(
    tmp_path: Path, sql: str, expected: list[tuple[str, str]]
) -> None:
    catalog = project_of(tmp_path, "").catalog
    (read,) = read_sql(sql, ["postgresql"])
    statement = to_statement(read, catalog, Span(1, 1, 1, 1), mysql=False)
    assert statement is not None
    acquisitions = transactions.statement_acquisitions(statement, catalog, "example.py")
    assert [(a.table, a.mode) for a in acquisitions] == expected


def _fixture_findings(tmp_path: Path, name: str, dialects: list[str]) -> list[str]:
    """The LCK005 messages for one fixture module checked on its own, on ``dialects``."""
    source = (Path(__file__).parent / "fixtures" / "rules" / name).read_text(encoding="utf-8")
    tmp_path.mkdir()
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'example'\n", encoding="utf-8")
    module = tmp_path / "example.py"
    module.write_text(source, encoding="utf-8")
    config = apply_settings(Config(), {"select": ["LCK005"], "dialects": dialects}, "test")
    result = check_path(module, "example.py", make_project(tmp_path, config))
    assert result.errors == []
    return sorted(f.message for f in result.findings)


def test_the_fixtures_agree_with_the_oracle_on_each_database(tmp_path: Path) -> None:
    """What ``tests/integration/test_update_key_lock_order.py`` measures: both bad pairs deadlock
    on PostgreSQL and MariaDB; on MariaDB the non-key UPDATE deadlocks against the foreign-key
    check as well (InnoDB's exclusive lock), the non-foreign-key UPDATE nowhere."""
    postgres = _fixture_findings(tmp_path / "bad-pg", "LCK005_update_keys.py", ["postgresql"])
    assert len(postgres) == 2 and all("on PostgreSQL" in m for m in postgres)
    mysql = _fixture_findings(tmp_path / "bad-my", "LCK005_update_keys.py", ["mysql"])
    assert len(mysql) == 2 and all("on MySQL" in m for m in mysql)
    assert _fixture_findings(tmp_path / "ok-pg", "LCK005_update_keys_ok.py", ["postgresql"]) == []
    (innodb,) = _fixture_findings(tmp_path / "ok-my", "LCK005_update_keys_ok.py", ["mysql"])
    assert "record_login locks login (exclusive) then account (shared)" in innodb
    assert "member" not in innodb
