"""Whole runs: the cache, the process pool, and file errors never change what is reported."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lockorder_lint import project, runner
from lockorder_lint.cache import Cache
from lockorder_lint.config import Config
from lockorder_lint.runner import make_project, run
from tests.test_project import project as project_tree

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the fixtures as its own project."""
    root = tmp_path / "project"
    shutil.copytree(FIXTURES, root / "fixtures", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    return root


def _run(root: Path, jobs: int = 1, cache: Cache | None = None) -> runner.RunResult:
    project = make_project(root, Config(), cache)
    return run([root], project, jobs=jobs, cache=cache)


def test_parallel_run_reports_exactly_what_a_serial_run_does(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(project, "_PARALLEL_FROM", 2)  # the project's phases in a pool too
    serial = _run(tree, jobs=1)
    parallel = _run(tree, jobs=2)
    assert serial.findings, "the fixtures hold findings"
    assert parallel.findings == serial.findings
    assert parallel.unknown == serial.unknown


def test_warm_run_parses_nothing_and_reports_the_same(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = Cache(tree / ".lockorder_cache")
    cold = _run(tree, cache=cache)
    assert cold.cached == 0

    def no_parsing(*args: object, **kwargs: object) -> None:
        raise AssertionError("a warm run must not analyse any file")

    monkeypatch.setattr(runner, "check_source", no_parsing)
    monkeypatch.setattr(project, "file_facts", no_parsing)
    warm = _run(tree, cache=Cache(tree / ".lockorder_cache"))
    assert warm.cached == warm.files == cold.files
    assert warm.findings == cold.findings
    assert warm.unknown == cold.unknown
    assert (tree / ".lockorder_cache" / ".gitignore").read_text().strip().endswith("*")


def test_cache_follows_changes_to_the_file_and_to_the_models(tree: Path) -> None:
    cache_dir = tree / ".lockorder_cache"
    target = tree / "fixtures" / "airflow" / "scheduler_3_2_1.py"
    before = _run(tree, cache=Cache(cache_dir))
    assert any(f.path.endswith("scheduler_3_2_1.py") for f in before.findings)

    target.write_text(
        target.read_text().replace("update(TI)  # expect: LCK001", "update(TI)  # noqa: LCK001")
    )
    after_edit = _run(tree, cache=Cache(cache_dir))
    assert not any(f.path.endswith("scheduler_3_2_1.py") for f in after_edit.findings)
    assert after_edit.cached == after_edit.files - 1

    models = tree / "fixtures" / "rules" / "models.py"
    models.write_text(models.read_text().replace('__tablename__ = "job"', '__tablename__ = "job_renamed"'))
    after_models = _run(tree, cache=Cache(cache_dir))
    assert after_models.cached == 0, "a catalog change invalidates every result"
    assert any(f.table == "job_renamed" for f in after_models.findings)


def test_unreadable_cache_is_ignored(tree: Path) -> None:
    cache_dir = tree / ".lockorder_cache"
    expected = _run(tree, cache=Cache(cache_dir)).findings
    for pickled in cache_dir.glob("*.pickle"):
        pickled.write_bytes(b"not a pickle")
    assert _run(tree, cache=Cache(cache_dir)).findings == expected


def test_a_broken_file_is_reported_and_the_others_still_checked(tree: Path) -> None:
    (tree / "fixtures" / "broken.py").write_text("def f(:\n    update(x)\n")
    result = _run(tree, jobs=2)
    assert [(e.path.endswith("broken.py"), e.line) for e in result.errors] == [(True, 1)]
    assert "cannot parse" in result.errors[0].reason
    assert any(f.path.endswith("scheduler_3_2_1.py") for f in result.findings)


def test_per_file_ignores_match_paths_relative_to_the_project_root(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lockorder_lint.config import apply_settings

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # shown paths are then absolute, not root-relative
    config = apply_settings(Config(), {"per-file-ignores": {"fixtures/rules/*": ["LCK001"]}}, "test")
    result = run([tree], make_project(tree, config), jobs=1)
    codes_in_rules = {f.code for f in result.findings if "/fixtures/rules/" in f.path}
    assert "LCK001" not in codes_in_rules and "LCK002" in codes_in_rules
    assert any(f.code == "LCK001" and "/fixtures/airflow/" in f.path for f in result.findings)


def test_hidden_directories_are_not_walked(tree: Path) -> None:
    hidden = tree / ".corpus" / "pkg"
    hidden.mkdir(parents=True)
    (hidden / "bad.py").write_text((tree / "fixtures" / "airflow" / "scheduler_3_2_1.py").read_text())
    result = _run(tree)
    assert not any(".corpus" in f.path for f in result.findings)


def test_one_scan_finds_every_rule_s_trigger_lines_as_a_scan_per_rule_does() -> None:
    """Overlapping triggers (``with_for_update`` holds ``update``), a trigger running on past its
    line (``update\\n(``), the last line without a line break: the same lines as one scan a rule."""
    import re

    from lockorder_lint.engine import hit_lines, rule_hit_lines
    from lockorder_lint.parsing import LINE_BREAK_BYTES

    data = (
        b"x = 1\nq = select(A).with_for_update()\nsession.execute(update\n(A))\n"
        b"d = {}\nd.update({})\n\n\ndelete(B).where(B.id == 1)\nwith_for_update"
    )
    triggers = {
        "LCK001": re.compile(rb"\b(?:update|delete)\s*\("),
        "LCK002": re.compile(rb"with_for_update"),
        "LCK006": re.compile(rb"\.update\(|delete\("),
    }
    combined = re.compile(b"|".join(p.pattern for p in triggers.values()))
    breaks = [m.start() for m in LINE_BREAK_BYTES.finditer(data)]
    one_scan = rule_hit_lines(data, breaks, triggers, combined)
    assert one_scan == {code: hit_lines(data, pattern, breaks) for code, pattern in triggers.items()}
    assert one_scan["LCK001"] == [3, 6, 9] and one_scan["LCK002"] == [2, 10]


HELPERS = """\
from app.models import Job


def in_states(states):
    return Job.state.in_(states)


def other(session):
    return session.query(Job).count()
"""

CALLER = """\
from sqlalchemy import update

from app.helpers import in_states
from app.models import Job


def finish(session):
    session.execute(update(Job).where(in_states(["running"])).values(state="done"))
"""

CLAIMS = """\
from app.models import Job


def claim(session, job_id):
    return session.get(Job, job_id, with_for_update=True)
"""


def test_a_cached_result_depends_on_the_helper_it_inlined_not_on_the_rest_of_its_file(
    tmp_path: Path,
) -> None:
    """The caller's finding comes from a helper in another file. Editing another function of
    that file keeps the caller's cached result; editing the helper, or moving it, does not."""
    root = project_tree(tmp_path / "p", helpers=HELPERS, caller=CALLER, claims=CLAIMS)
    cache_dir = root / ".lockorder_cache"

    def caller_findings(result: runner.RunResult) -> list[tuple[int, str]]:
        return [(f.line, f.code) for f in result.findings if f.path.endswith("caller.py")]

    first = _run(root, cache=Cache(cache_dir))
    assert caller_findings(first) == [(8, "LCK001")]
    helpers = root / "app" / "helpers.py"
    helpers.write_text(HELPERS.replace("query(Job).count()", "query(Job).filter(Job.id > 0).count()"))
    other_edited = _run(root, cache=Cache(cache_dir))
    assert caller_findings(other_edited) == [(8, "LCK001")]
    assert other_edited.cached == other_edited.files - 1, "only the edited file is checked again"

    helpers.write_text("# moved down a line\n" + helpers.read_text())
    moved = _run(root, cache=Cache(cache_dir))
    assert caller_findings(moved) == [(8, "LCK001")]
    assert moved.cached == moved.files - 2, "the caller is checked again: its helper moved"

    helpers.write_text(helpers.read_text().replace("Job.state.in_", "Job.id.in_"))
    helper_edited = _run(root, cache=Cache(cache_dir))
    assert caller_findings(helper_edited) == []
    assert helper_edited.cached == helper_edited.files - 2


def test_a_parallel_run_on_a_warm_cache_after_edits_reports_what_a_serial_run_does(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Edited files are worked out again in a pool while the rest comes from the cache, with
    the whole-program answers of the last run in hand: the pool that gathered the evidence does
    not have them, so the checks get a pool of their own."""
    monkeypatch.setattr(project, "_PARALLEL_FROM", 2)
    cache_dir = tree / ".lockorder_cache"
    _run(tree, jobs=2, cache=Cache(cache_dir))
    for path in sorted((tree / "fixtures").rglob("*.py")):
        text = path.read_text()
        if "with_for_update" in text:
            path.write_text(text + "\n# edited\n")
    warm = _run(tree, jobs=2, cache=Cache(cache_dir))
    assert 0 < warm.cached < warm.files
    assert warm.findings == _run(tree, jobs=1).findings


def test_an_upgraded_sql_parser_invalidates_cached_results(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Results hold what sqlglot read from SQL text: another sqlglot (its package file changed)
    must read it again."""
    from lockorder_lint import cache as cache_module

    cache_dir = tree / ".lockorder_cache"
    _run(tree, cache=Cache(cache_dir))
    assert _run(tree, cache=Cache(cache_dir)).cached > 0
    versions = cache_module._parser_versions()
    assert "sqlglot=" in versions and "absent" not in versions
    monkeypatch.setattr(cache_module, "_parser_versions", lambda: versions.replace("sqlglot=", "sqlglot=new"))
    assert _run(tree, cache=Cache(cache_dir)).cached == 0


def test_lck005_in_a_parallel_run_reports_what_a_serial_run_does(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock summaries LCK005 joins are worked out in the project phase's pool, and its cycles
    are handed to the workers that check the files."""
    monkeypatch.setattr(project, "_PARALLEL_FROM", 2)
    config = Config(select=("LCK", "LCK005"))

    def lck005(jobs: int) -> list[object]:
        built = make_project(tree, config, jobs=jobs)
        return [f for f in run([tree], built, jobs=jobs).findings if f.code == "LCK005"]

    serial = lck005(1)
    assert serial, "the fixtures hold lock-order cycles"
    assert lck005(2) == serial


def test_a_file_read_twice_in_one_check_is_parsed_once() -> None:
    """The contention evidence and the check of one changed file share its syntax tree; other
    content, or the same text shown under another name, is parsed anew."""
    from lockorder_lint.parsing import parse_source

    first = parse_source(b"x = 1\n", "a.py")
    assert parse_source(b"x = 1\n", "a.py") is first
    assert parse_source(b"x = 2\n", "a.py") is not first
    assert parse_source(b"x = 1\n", "b.py") is not first


PUBLISH = """from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.models import Record, Zone


def publish(zone_id: int, session: Session) -> None:
    session.execute(select(Zone).where(Zone.id == zone_id).with_for_update()).scalar_one()
    session.execute(select(Record).where(Record.zone_id == zone_id).with_for_update()).all()
"""

EDIT = """from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.models import Record, Zone


def edit(zone_id: int, record_id: int, session: Session) -> None:
    session.execute(select(Record).where(Record.id == record_id).with_for_update()).scalar_one()
    session.execute(update(Zone).where(Zone.id == zone_id).values(serial=2))
"""


def test_lck005_reads_each_file_once_in_its_check_and_reports_as_when_its_cycles_come_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lockorder_lint import transactions
    from lockorder_lint.config import apply_settings
    from tests.test_lock_order import MODELS

    root = tmp_path / "p"
    (root / "app").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'example'\n", encoding="utf-8")
    (root / "app" / "__init__.py").write_text("", encoding="utf-8")
    (root / "app" / "models.py").write_text(MODELS, encoding="utf-8")
    (root / "app" / "publish.py").write_text(PUBLISH, encoding="utf-8")
    (root / "app" / "edit.py").write_text(EDIT, encoding="utf-8")
    config = apply_settings(Config(), {"select": ["LCK", "LCK005"]}, "test")
    first = run([root], make_project(root, config))  # the cycles found before any check
    assert [f.code for f in first.findings].count("LCK005") == 1

    calls: list[tuple[str, bool]] = []  # file, and whether its check's parse and units were at hand
    original = transactions.file_locks

    def counting(data: bytes, path: Path, display: str, project: object, *more: object) -> object:
        calls.append((path.name, bool(more) and more[0] is not None))
        return original(data, path, display, project, *more)  # type: ignore[arg-type]

    monkeypatch.setattr(transactions, "file_locks", counting)
    cache = Cache(tmp_path / "cache")
    cold = run([root], make_project(root, config, cache, cycles_first=False), cache=cache)
    assert cold.findings == first.findings
    assert sorted(calls) == [("edit.py", True), ("models.py", True), ("publish.py", True)]

    calls.clear()
    cache = Cache(tmp_path / "cache")
    warm = run([root], make_project(root, config, cache, cycles_first=False), cache=cache)
    assert (warm.findings, warm.cached, calls) == (first.findings, warm.files, [])

    edit = root / "app" / "edit.py"
    edit.write_text(EDIT + "\n\n# an edit\n", encoding="utf-8")
    cache = Cache(tmp_path / "cache")
    one = run([edit], make_project(root, config, cache, cycles_first=False), cache=cache)
    assert calls == [("edit.py", True)]  # the others' summaries come from the cache
    assert one.findings == [f for f in first.findings if f.path.endswith("edit.py")]

    (anchor,) = [f for f in first.findings if f.code == "LCK005"]
    anchored = Path(anchor.path).resolve()  # as shown: relative to the working directory, or absolute
    lines = anchored.read_text(encoding="utf-8").splitlines()
    lines[anchor.line - 1] += "  # noqa: LCK005"
    anchored.write_text("\n".join(lines) + "\n", encoding="utf-8")
    quiet = run([root], make_project(root, config, cycles_first=False), jobs=2)
    assert [f.code for f in quiet.findings].count("LCK005") == 0
    assert quiet.findings == [f for f in first.findings if f.code != "LCK005"]
