"""The model catalog as the rules rely on it: relationships in every spelling SQLAlchemy accepts,
each resolved to the table it reaches, and declarations that cache and fingerprint stably."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from lockorder_lint.catalog import Catalog, Relationship, read_models
from lockorder_lint.config import Config
from lockorder_lint.runner import make_project

MODELS = '''\
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, backref, declared_attr, mapped_column, relationship

from app import other


class Base(DeclarativeBase):
    pass


class DagRun(Base):
    __tablename__ = "dag_run"

    id: Mapped[int] = mapped_column(primary_key=True)


class TaskInstance(Base):
    __tablename__ = "task_instance"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    run_pk: Mapped[int] = mapped_column(ForeignKey("dag_run.id"))

    dag_run = relationship("DagRun", lazy="joined", innerjoin=True)
    run_again: Mapped[DagRun] = relationship(DagRun, lazy="joined", viewonly=True)
    run_annotated: Mapped["DagRun"] = relationship(lazy="selectin", viewonly=True)
    run_optional: Mapped["DagRun | None"] = relationship(lazy=False, viewonly=True)
    run_lambda = relationship(lambda: DagRun, viewonly=True)
    notes = relationship("Note", backref=backref("task_instance", lazy="joined"))
    elsewhere = relationship("NotInThisProject", lazy="joined")
    dynamic = relationship(other.Thing, lazy=some_setting)


class Note(Base):
    __tablename__ = "note"

    id: Mapped[int] = mapped_column(primary_key=True)


class RunOwned:
    @declared_attr
    def run(cls) -> Mapped[DagRun]:
        return relationship(DagRun, lazy="joined")


class Callback(RunOwned, Base):
    __tablename__ = "callback"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))

    __mapper_args__ = {"polymorphic_on": kind, "with_polymorphic": "*"}


class EmailCallback(Callback):
    __tablename__ = "email_callback"

    id: Mapped[int] = mapped_column(ForeignKey("callback.id"), primary_key=True)


class InlineCallback(Callback):
    """Single-table inheritance: no table of its own, nothing to join."""


DagRun.latest_ti = relationship(TaskInstance, lazy="joined", viewonly=True)
'''


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    root = tmp_path_factory.mktemp("project")
    (root / "app").mkdir()
    (root / "app" / "__init__.py").write_text("")
    (root / "app" / "models.py").write_text(MODELS)
    return make_project(root, Config()).catalog


def relationships(catalog: Catalog, table: str) -> dict[str, Relationship]:
    return {r.name: r for r in catalog.tables[table].relationships}


def test_relationship_spellings_resolve_to_the_table_they_reach(catalog: Catalog) -> None:
    rels = relationships(catalog, "task_instance")
    assert (rels["dag_run"].target, rels["dag_run"].lazy, rels["dag_run"].innerjoin) == (
        "dag_run",
        "joined",
        True,
    )
    assert (rels["run_again"].target, rels["run_again"].lazy) == ("dag_run", "joined")
    assert (rels["run_annotated"].target, rels["run_annotated"].lazy) == ("dag_run", "selectin")
    assert (rels["run_optional"].target, rels["run_optional"].lazy) == ("dag_run", "joined")  # lazy=False
    assert (rels["run_lambda"].target, rels["run_lambda"].lazy) == ("dag_run", "select")
    assert rels["notes"].target == "note"
    assert rels["dag_run"].joined and not rels["run_annotated"].joined


def test_unknown_targets_and_lazy_values_are_kept_but_not_guessed(catalog: Catalog) -> None:
    rels = relationships(catalog, "task_instance")
    assert rels["elsewhere"].target is None
    assert rels["elsewhere"].target_class == "NotInThisProject"
    assert rels["dynamic"].lazy == "unknown"
    assert not rels["dynamic"].joined


def test_backref_declares_the_reverse_relationship_on_the_target(catalog: Catalog) -> None:
    back = relationships(catalog, "note")["task_instance"]
    assert (back.owner, back.target, back.lazy, back.via) == ("Note", "task_instance", "joined", "backref")


def test_relationship_assigned_after_the_class(catalog: Catalog) -> None:
    latest = relationships(catalog, "dag_run")["latest_ti"]
    assert (latest.owner, latest.target, latest.lazy) == ("DagRun", "task_instance", "joined")


def test_mixin_relationship_and_with_polymorphic(catalog: Catalog) -> None:
    rels = relationships(catalog, "callback")
    assert (rels["run"].target, rels["run"].lazy) == ("dag_run", "joined")
    polymorphic = [r for r in rels.values() if r.via == "with_polymorphic"]
    assert [(r.target, r.lazy) for r in polymorphic] == [("email_callback", "joined")]
    # the joined-inheritance subclass inherits the mixin's relationship too
    assert relationships(catalog, "email_callback")["run"].target == "dag_run"


def test_declarations_pickle_to_the_same_bytes_after_a_round_trip(tmp_path: Path) -> None:
    """The runner fingerprints the pickled declarations; a cached (unpickled) copy of an unchanged
    file must fingerprint like a fresh one, or a warm run would miss the cache."""
    path = tmp_path / "models.py"
    path.write_text(MODELS.replace("run_pk", "owner").replace('"DagRun"', '"owner"'))
    fresh = read_models(path.read_bytes(), path, tmp_path, "models.py")
    assert fresh.classes and any(c.relationships for c in fresh.classes)
    cached = pickle.loads(pickle.dumps(fresh, protocol=pickle.HIGHEST_PROTOCOL))
    assert pickle.dumps([fresh], protocol=pickle.HIGHEST_PROTOCOL) == pickle.dumps(
        [cached], protocol=pickle.HIGHEST_PROTOCOL
    )


def test_catalog_with_relationships_pickles(catalog: Catalog) -> None:
    """Worker processes receive the catalog pickled."""
    copy = pickle.loads(pickle.dumps(catalog))
    assert relationships(copy, "task_instance") == relationships(catalog, "task_instance")


def test_string_names_resolve_to_the_nearest_class_of_that_name(tmp_path: Path) -> None:
    for package in ("one", "two"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
        (tmp_path / package / "models.py").write_text(
            "from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship\n\n\n"
            "class Base(DeclarativeBase):\n    pass\n\n\n"
            f"class Parent(Base):\n    __tablename__ = '{package}_parent'\n"
            "    id: Mapped[int] = mapped_column(primary_key=True)\n\n\n"
            f"class Child(Base):\n    __tablename__ = '{package}_child'\n"
            "    id: Mapped[int] = mapped_column(primary_key=True)\n"
            "    parent = relationship('Parent', lazy='joined')\n"
        )
    catalog = make_project(tmp_path, Config()).catalog
    assert relationships(catalog, "one_child")["parent"].target == "one_parent"
    assert relationships(catalog, "two_child")["parent"].target == "two_parent"


def test_tables_command_shows_relationships(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from lockorder_lint.cli import main

    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "models.py").write_text(MODELS)
    assert main(["tables", "--project-root", str(tmp_path), str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "relationship TaskInstance.dag_run -> dag_run  lazy=joined, innerjoin" in text
    assert "relationship TaskInstance.elsewhere -> NotInThisProject (not in the catalog)  lazy=joined" in text
    assert "relationship Note.task_instance -> task_instance  lazy=joined, backref" in text

    assert main(["tables", "--format", "json", "--project-root", str(tmp_path), str(tmp_path)]) == 0
    tables = {t["table"]: t for t in json.loads(capsys.readouterr().out)}
    dag_run = next(r for r in tables["task_instance"]["relationships"] if r["name"] == "dag_run")
    assert dag_run == {
        "class": "TaskInstance",
        "name": "dag_run",
        "target_class": "DagRun",
        "target_table": "dag_run",
        "lazy": "joined",
        "innerjoin": True,
        "declared_by": "relationship",
        "defined_at": dag_run["defined_at"],
    }
    assert dag_run["defined_at"].endswith("models.py:23")


def test_module_level_alias_of_a_model_resolves_across_modules(tmp_path: Path) -> None:
    """Airflow's ``DbCallbackRequest = DagProcessorCallback``, imported from the alias's module."""
    package = tmp_path / "app"
    package.mkdir(exist_ok=True)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'app'\n")
    (package / "__init__.py").write_text("")
    (package / "callback.py").write_text(
        "from sqlalchemy import Column, Integer, String\n"
        "from sqlalchemy.orm import declarative_base\n"
        "Base = declarative_base()\n"
        "class DagProcessorCallback(Base):\n"
        "    __tablename__ = 'callback'\n"
        "    id = Column(Integer, primary_key=True)\n"
        "    bundle = Column(String)\n"
    )
    (package / "db_callback_request.py").write_text(
        "from app.callback import DagProcessorCallback\n\nDbCallbackRequest = DagProcessorCallback\n"
    )
    catalog = make_project(tmp_path, Config()).catalog
    table = catalog.lookup("app.db_callback_request.DbCallbackRequest")
    assert table is not None and table.name == "callback" and table.primary_key == ("id",)


def _catalog_of(root: Path, **modules: str) -> Catalog:
    package = root / "app"
    package.mkdir(exist_ok=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'app'\n")
    (package / "__init__.py").write_text("")
    for name, text in modules.items():
        (package / f"{name}.py").write_text(text)
    return make_project(root, Config()).catalog


PLAIN_MIXINS = """\
from sqlalchemy import Column, ForeignKey, Integer, String
from sqlalchemy.orm import DeclarativeBase, declared_attr

from elsewhere import ExternalBase


class Base(DeclarativeBase):
    pass


class UserExtensionMixin(object):
    __tablename__ = "ab_user_extended"

    @declared_attr
    def id(cls):
        return Column(Integer, ForeignKey("ab_user.id"), primary_key=True)


class NamedMixin(UserExtensionMixin):
    label = Column(String(20))


class ExtendedUser(NamedMixin, Base):
    level = Column(Integer)


class SingleTable(Base):
    __tablename__ = "single"
    id = Column(Integer, primary_key=True)


class SingleTableChild(SingleTable, UserExtensionMixin):
    '''The mapped parent comes first in the MRO: its table name wins.'''


class Unresolved(ExternalBase):
    __tablename__ = "unresolved"
    id = Column(Integer, primary_key=True)
"""


def test_a_plain_mixin_names_a_table_only_for_mapped_subclasses(tmp_path: Path) -> None:
    """Flask-AppBuilder's ``UserExtensionMixin(object)`` is no table; a mapped class built on it
    maps its ``__tablename__``, with the mixin's columns and key."""
    catalog = _catalog_of(tmp_path, models=PLAIN_MIXINS)
    extended = catalog.tables["ab_user_extended"]
    assert extended.classes == ["ExtendedUser"]
    assert extended.primary_key == ("id",)
    assert set(extended.columns) == {"id", "label", "level"}
    assert catalog.lookup("app.models.UserExtensionMixin") is None
    assert catalog.lookup("app.models.NamedMixin") is None
    assert catalog.tables["single"].classes == ["SingleTable", "SingleTableChild"]
    assert catalog.tables["unresolved"].primary_key == ("id",)


def test_classes_that_may_be_mapped_keep_their_tables(tmp_path: Path) -> None:
    """Only a class proved plain loses its table: a ``declarative_base()`` variable, a decorator,
    a metaclass or a base expression may map it."""
    key = "    id = Column(Integer, primary_key=True)\n"
    catalog = _catalog_of(
        tmp_path,
        models=(
            "from typing import Generic, TypeVar\n"
            "from sqlalchemy import Column, Integer\n"
            "from sqlalchemy.orm import declarative_base, registry\n"
            "from sqlalchemy.orm.decl_api import DeclarativeMeta\n"
            "Base = declarative_base()\n"
            "reg = registry()\n"
            "T = TypeVar('T')\n"
            f"class ByVariable(Base):\n    __tablename__ = 'by_variable'\n{key}"
            f"@reg.mapped\nclass ByDecorator:\n    __tablename__ = 'by_decorator'\n{key}"
            "class MetaBase(metaclass=DeclarativeMeta):\n    __abstract__ = True\n"
            f"class ByMetaclass(MetaBase):\n    __tablename__ = 'by_metaclass'\n{key}"
            f"class ByExpression(Generic[T]):\n    __tablename__ = 'by_expression'\n{key}"
            f"class Plain:\n    __tablename__ = 'plain'\n{key}"
        ),
    )
    assert sorted(catalog.tables) == ["by_decorator", "by_expression", "by_metaclass", "by_variable"]


def test_unique_keys_keep_every_element(tmp_path: Path) -> None:
    """Ordered elements are their columns (``text("name DESC")`` too); expressions stay, in
    parentheses, so that no predicate on the columns around them pins a row."""
    catalog = _catalog_of(
        tmp_path,
        models=(
            "import sqlalchemy as sa\n"
            "from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column\n"
            "class Base(DeclarativeBase):\n    pass\n"
            "class State(Base):\n    __tablename__ = 'state'\n"
            "    id: Mapped[int] = mapped_column(primary_key=True)\n"
            "    run_id: Mapped[int] = mapped_column()\n"
            "    at: Mapped[int] = mapped_column('timestamp')\n"
            "    name: Mapped[str] = mapped_column()\n"
            "    __table_args__ = (\n"
            "        sa.Index('uq_desc', 'run_id', sa.desc('timestamp'), unique=True),\n"
            "        sa.Index('uq_nulls', at.asc().nulls_last(), run_id, unique=True),\n"
            "        sa.Index('uq_lower', run_id, sa.func.lower(name), unique=True),\n"
            "        sa.UniqueConstraint('run_id', *extra, name='uq_starred'),\n"
            "        sa.Index(None, sa.text('lower(name)'), unique=True),\n"
            "    sa.Index('uq_text', sa.text('name DESC'), sa.text('timestamp NULLS LAST'), unique=True),\n"
            "        sa.Index('uq_expr_desc', sa.func.coalesce(run_id, 0).desc(), unique=True),\n"
            "    )\n"
        ),
    )
    indexes = {ix.name: (ix.columns, ix.unique) for ix in catalog.tables["state"].indexes}
    assert indexes == {
        "uq_desc": (("run_id", "at"), True),
        "uq_nulls": (("at", "run_id"), True),
        "uq_lower": (("run_id", "(sa.func.lower(name))"), True),
        "uq_starred": (("run_id", "(*extra)"), True),
        "state_expr_idx": (("(sa.text('lower(name)'))",), True),
        "uq_text": (("name", "at"), True),
        "uq_expr_desc": (("(sa.func.coalesce(run_id, 0))",), True),
    }


def _model(cls: str, table: str, key: str = "id") -> str:
    key_column = f"    {key} = sa.Column(sa.Integer, primary_key=True)\n"
    return f"class {cls}(Base):\n    __tablename__ = '{table}'\n{key_column}"


def test_code_under_migrations_yields_to_the_application(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Superset's ``migrations/shared/`` helpers are not revisions, but their models describe an
    old schema: the application's definition wins, and ``tables`` says why. A ``versions``
    directory is a migrations directory only beside an Alembic ``env.py``."""
    header = (
        "import sqlalchemy as sa\nfrom sqlalchemy.orm import declarative_base\nBase = declarative_base()\n"
    )

    def old(table: str, legacy: str) -> str:
        return header + _model("Slice", table, "datasource_id") + _model("Legacy", legacy)

    app = tmp_path / "app"
    for package in ("migrations", "migrations/shared", "db", "db/versions", "api", "api/versions"):
        (app / package).mkdir(parents=True)
        (app / package / "__init__.py").write_text("")
    (app / "migrations" / "shared" / "helpers.py").write_text(old("slices", "legacy"))
    (app / "db" / "env.py").write_text("from alembic import context\n")
    (app / "db" / "versions" / "helpers.py").write_text(old("charts", "legacy_db"))
    (app / "api" / "versions" / "v1.py").write_text(old("dashboards", "legacy_api"))
    models = header + "".join(
        _model(cls, table)
        for cls, table in (("Slice", "slices"), ("Chart", "charts"), ("Dashboard", "dashboards"))
    )
    catalog = _catalog_of(tmp_path, aaa_models=models)
    slices = catalog.tables["slices"]
    assert slices.primary_key == ("id",)
    assert slices.definition.endswith("aaa_models.py:4 (the application)")
    assert [reason.rsplit(": ", 1)[-1] for reason in slices.ignored] == [
        "code under a migrations directory (a migration helper, not the application's model)"
    ]
    assert catalog.tables["charts"].primary_key == ("id",)
    # Not a migrations directory: two application definitions, merged as before.
    assert len(catalog.tables["dashboards"].locations) == 2 and not catalog.tables["dashboards"].ignored
    # Defined only under migrations: still in the catalog, and said so.
    for name in ("legacy", "legacy_db"):
        assert catalog.tables[name].definition.endswith("(code under a migrations directory)")
    assert catalog.tables["legacy_api"].definition.endswith("(the application)")

    from lockorder_lint.cli import main

    assert main(["tables", "--no-cache", "--project-root", str(tmp_path), str(tmp_path)]) == 0
    text = capsys.readouterr().out
    shared = tmp_path / "app" / "migrations" / "shared" / "helpers.py"
    assert (
        f"    definition: model Slice at {tmp_path / 'app' / 'aaa_models.py'}:4 (the application); "
        f"set aside: model Slice at {shared}:4: code under a migrations directory" in text
    )
    assert f"    definition: model Legacy at {shared}:7 (code under a migrations directory)\n" in text


def test_a_column_keeps_every_parent_its_foreign_keys_reference(tmp_path: Path) -> None:
    """Airflow 2.2's ``task_reschedule.run_id`` is in a constraint to ``task_instance`` and one to
    ``dag_run`` (columns named by class attribute); a Column may carry several ``ForeignKey``s; a
    default is recorded (an INSERT that does not name the column still sets it)."""
    (tmp_path / "models.py").write_text(
        "from sqlalchemy import Column, ForeignKey, ForeignKeyConstraint, Integer, String\n"
        "from sqlalchemy.orm import DeclarativeBase\n\n\n"
        "class Base(DeclarativeBase):\n    pass\n\n\n"
        "class Reschedule(Base):\n    __tablename__ = 'reschedule'\n"
        "    id = Column(Integer, primary_key=True)\n"
        "    run_id = Column(String(250), nullable=False)\n"
        "    task_id = Column(String(250), nullable=False)\n"
        "    owner_id = Column(\n"
        "        Integer, ForeignKey('owner.id'), ForeignKey('account.id'), server_default='1'\n"
        "    )\n"
        "    __table_args__ = (\n"
        "        ForeignKeyConstraint(\n"
        "            [run_id, task_id], ['task_instance.run_id', 'task_instance.task_id']\n"
        "        ),\n"
        "        ForeignKeyConstraint([run_id], ['dag_run.run_id']),\n"
        "    )\n"
    )
    table = make_project(tmp_path, Config()).catalog.tables["reschedule"]
    assert table.foreign_keys == {
        "run_id": ("task_instance.run_id", "dag_run.run_id"),
        "task_id": ("task_instance.task_id",),
        "owner_id": ("owner.id", "account.id"),
    }
    assert table.defaulted == {"owner_id"}
