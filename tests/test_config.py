"""Configuration: strict validation that names the file and the key, and the Airflow preset."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lockorder_lint.config import Config, ConfigError, load_config
from lockorder_lint.resources import preset_path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


def pyproject(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(f"[tool.lockorder-lint]\n{body}", encoding="utf-8")
    return path


def test_no_file_and_no_section_give_the_defaults(tmp_path: Path) -> None:
    assert load_config(tmp_path / "pyproject.toml") == Config()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n', encoding="utf-8")
    assert load_config(tmp_path / "pyproject.toml") == Config()


def test_settings_are_read(tmp_path: Path) -> None:
    config = load_config(
        pyproject(
            tmp_path,
            'hot-tables = ["a", "b"]\nlock-helpers = ["pkg.lock"]\nselect = ["LCK00"]\nignore = ["LCK002"]\n'
            'exclude = ["gen/*"]\ndialects = ["postgresql", "mysql"]\nsession-names = ["s"]\n'
            '[tool.lockorder-lint.per-file-ignores]\n"tests/*" = ["LCK001"]\n'
            '[tool.lockorder-lint.tables]\nremote = ["id"]\nother = { primary-key = ["a", "b"], '
            'indexes = { other_c = ["c"] } }\n',
        )
    )
    assert config.hot_tables == ("a", "b")
    assert config.lock_helpers == ("pkg.lock",)
    assert (config.select, config.ignore) == (("LCK00",), ("LCK002",))
    assert config.code_enabled("LCK001") and not config.code_enabled("LCK002")
    assert config.exclude == ("gen/*",)
    assert config.mysql
    assert config.session_names == ("s",)
    assert config.per_file_ignores == (("tests/*", ("LCK001",)),)
    declared = config.declared_tables()
    assert declared["remote"].primary_key == ("id",)
    assert declared["other"].primary_key == ("a", "b")
    assert declared["other"].indexes == (("other_c", ("c",)),)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('hot_tables = ["a"]\n', "unknown key `hot_tables`"),
        ('hot-tables = "a"\n', "`hot-tables` must be a list of strings"),
        ("lock-helpers = [1]\n", "`lock-helpers` must be a list of strings"),
        ('select = ["E501"]\n', "`select` holds 'E501', which is not an LCK code or prefix"),
        ('dialects = ["oracle"]\n', "`dialects` holds 'oracle'"),
        ('per-file-ignores = ["x"]\n', "`per-file-ignores` must map glob patterns to lists of codes"),
        ("[tool.lockorder-lint.tables]\nt = { pk = [] }\n", "unknown key `tables.t.pk`"),
        ("[tool.lockorder-lint.tables]\nt = { indexes = {} }\n", "`tables.t` needs `primary-key`"),
        ("preset = 3\n", "`preset` must be a string"),
        ('preset = "django"\n', "unknown preset 'django'"),
        ('preset = "../../etc/passwd"\n', "unknown preset"),
    ],
)
def test_invalid_settings_name_the_file_and_the_key(tmp_path: Path, body: str, message: str) -> None:
    path = pyproject(tmp_path, body)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert message in str(raised.value)
    assert str(path) in str(raised.value)


def test_invalid_toml_is_an_error(tmp_path: Path) -> None:
    path = pyproject(tmp_path, "hot-tables = [\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(path)


def test_explicit_config_file_must_exist_and_may_be_bare(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.toml", explicit=True)
    bare = tmp_path / "lockorder.toml"
    bare.write_text('hot-tables = ["a"]\n', encoding="utf-8")
    assert load_config(bare, explicit=True).hot_tables == ("a",)


def test_airflow_preset(tmp_path: Path) -> None:
    config = load_config(pyproject(tmp_path, 'preset = "airflow"\n'))
    assert config.preset == "airflow"
    assert config.lock_helpers == ("airflow.utils.sqlalchemy.with_row_locks",)
    assert config.hot_tables is not None
    for table in ("task_instance", "dag_run", "trigger", "job", "dag", "slot_pool"):
        assert config.is_hot(table)
    assert not config.is_hot("xcom")
    assert config.session_names == ("session", "*_session")


def test_project_settings_override_the_preset_key_by_key(tmp_path: Path) -> None:
    config = load_config(pyproject(tmp_path, 'preset = "airflow"\nhot-tables = ["xcom"]\n'))
    assert config.hot_tables == ("xcom",)
    assert config.lock_helpers == ("airflow.utils.sqlalchemy.with_row_locks",)


def test_every_preset_is_valid_and_commented() -> None:
    presets = sorted((Path(__file__).resolve().parent.parent / "rules" / "presets").glob("*.toml"))
    assert [p.stem for p in presets] == ["airflow"]
    for path in presets:
        assert preset_path(path.stem) == path.resolve()
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        assert set(data["tool"]["lockorder-lint"]) <= {"hot-tables", "lock-helpers", "session-names"}
        text = path.read_text(encoding="utf-8")
        for table in data["tool"]["lockorder-lint"]["hot-tables"]:
            line = text.index(f'"{table}",')
            assert text[:line].rstrip().splitlines()[-1].lstrip().startswith("#"), f"{table} has no reason"


AIRFLOW_LIKE = """\
from sqlalchemy import Integer, String, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from airflow.utils.sqlalchemy import with_row_locks


class Base(DeclarativeBase):
    pass


class TaskInstance(Base):
    __tablename__ = "task_instance"

    id: Mapped[int] = mapped_column(primary_key=True)
    dag_id: Mapped[str] = mapped_column(String(250), index=True)
    state: Mapped[str] = mapped_column(String(20))


class XCom(Base):
    __tablename__ = "xcom"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dag_id: Mapped[str] = mapped_column(String(250), index=True)


def schedule(session, dag_id):
    session.scalars(with_row_locks(select(TaskInstance).where(TaskInstance.dag_id == dag_id), session))
    session.execute(update(XCom).where(XCom.dag_id == dag_id).values(dag_id="x"))
"""


def test_airflow_preset_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lockorder_lint.cli import main

    (tmp_path / "pyproject.toml").write_text('[tool.lockorder-lint]\npreset = "airflow"\n', encoding="utf-8")
    (tmp_path / "scheduler.py").write_text(AIRFLOW_LIKE, encoding="utf-8")
    assert main(["-j", "1", str(tmp_path / "scheduler.py")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1
    assert ":27:21: LCK002 FOR UPDATE (via with_row_locks) on task_instance" in out[0]
