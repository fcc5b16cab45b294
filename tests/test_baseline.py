"""Baselines: recorded findings stay hidden when code moves, new ones show, duplicates count,
and entries that match nothing any more are reported as stale."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from lockorder_lint.baseline import BaselineKey, compare, read_baseline
from lockorder_lint.config import ConfigError
from tests.test_cli import JOBS, LCK001_AT, make_sample, run_cli

EXTRA = """

def close_status(session: Session, status: str) -> None:
    session.execute(update(Account).where(Account.status == status).values(status="closed"))
"""


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return make_sample(tmp_path / "sample")


def write(sample: Path, text: str) -> None:
    (sample / "app" / "jobs.py").write_text(text, encoding="utf-8")


def test_write_baseline_records_content_keys_not_lines(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "--write-baseline", "baseline.json", "app", cwd=sample)
    assert (code, out) == (0, "")
    assert "wrote 2 findings to baseline baseline.json" in err
    data = json.loads((sample / "baseline.json").read_text(encoding="utf-8"))
    entries = data["entries"]
    assert [(e["path"], e["code"], e["function"], e["count"]) for e in entries] == [
        ("app/jobs.py", "LCK001", "close_owner", 1),
        ("app/jobs.py", "LCK002", "lock_owner", 1),
    ]
    # The statement as code, formatted canonically: a formatter run cannot change the key.
    assert entries[0]["statement"] == (
        "session.execute(update(Account).where(Account.owner == owner).values(status='closed'))"
    )
    assert all("line" not in e for e in entries)


def test_baselined_findings_stay_hidden_when_code_moves(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_cli(capsys, "--write-baseline", "baseline.json", "app", cwd=sample)
    moved = JOBS.replace(
        "from app.models import Account\n", "from app.models import Account\n\n# moved\n\n\n"
    )
    write(
        sample,
        moved.replace("(session: Session, owner: str)", "(\n    session: Session,\n    owner: str,\n)"),
    )
    code, out, err = run_cli(capsys, "--baseline", "baseline.json", "app", cwd=sample)
    assert (code, out) == (0, ""), err
    assert "stale" not in err


def test_new_findings_are_reported_and_gone_ones_are_stale(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_cli(capsys, "--write-baseline", "baseline.json", "app", cwd=sample)
    without_lock = JOBS.split("\n\ndef lock_owner")[0] + "\n"
    write(sample, without_lock + EXTRA)
    # Without lock_owner nothing locks account rows any more: only --all-tables keeps it hot.
    code, out, err = run_cli(capsys, "--all-tables", "--baseline", "baseline.json", "app", cwd=sample)
    assert code == 1
    assert out.splitlines()[0].startswith("app/jobs.py:13:21: LCK001 bulk UPDATE of account")
    assert len(out.splitlines()) == 1
    stale = [line for line in err.splitlines() if "stale" in line]
    assert stale == [
        "baseline.json: stale baseline entry: app/jobs.py: lock_owner: LCK002 "
        "return list(session.scalars(select(Account).where(Account.owner == owner).with_for_update()))"
    ]


def test_duplicates_are_counted(sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = '    session.execute(update(Account).where(Account.owner == owner).values(status="closed"))\n'
    lines = JOBS.splitlines(keepends=True)
    write(sample, "".join([*lines[: LCK001_AT[0]], line, *lines[LCK001_AT[0] :]]))
    run_cli(capsys, "--write-baseline", "baseline.json", "app", cwd=sample)
    entries = json.loads((sample / "baseline.json").read_text(encoding="utf-8"))["entries"]
    assert [(e["code"], e["count"]) for e in entries] == [("LCK001", 2), ("LCK002", 1)]
    write(sample, "".join([*lines[: LCK001_AT[0]], line, line, *lines[LCK001_AT[0] :]]))
    code, out, _err = run_cli(capsys, "--baseline", "baseline.json", "app", cwd=sample)
    assert code == 1
    assert [x.split(": ")[1].split()[0] for x in out.splitlines()] == ["LCK001"]


def test_baseline_works_from_another_directory(sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_cli(capsys, "--write-baseline", "baseline.json", "app", cwd=sample)
    code, out, err = run_cli(
        capsys, "--baseline", sample / "baseline.json", sample / "app", cwd=sample.parent
    )
    assert (code, out) == (0, ""), err


def test_checking_some_files_does_not_call_the_rest_stale(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_cli(capsys, "--write-baseline", "baseline.json", "app", cwd=sample)
    code, out, err = run_cli(capsys, "--baseline", "baseline.json", "app/models.py", cwd=sample)
    assert (code, out) == (0, "")
    assert "stale" not in err


def test_malformed_baseline_is_an_error(sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (sample / "baseline.json").write_text("[]", encoding="utf-8")
    code, _out, err = run_cli(capsys, "--baseline", "baseline.json", "app", cwd=sample)
    assert code == 2
    assert "not a lockorder-lint baseline" in err
    with pytest.raises(ConfigError, match="cannot read baseline"):
        read_baseline(sample / "missing.json")


def test_compare_is_a_multiset_difference() -> None:
    a = BaselineKey("p.py", "LCK001", "f", "update(T)")
    b = BaselineKey("p.py", "LCK002", "g", "select(T)")
    c = BaselineKey("q.py", "LCK002", "g", "select(T)")
    outcome = compare([a, a, b], Counter({a: 1, b: 2, c: 1}), checked={"p.py"})
    assert outcome.new == [1]
    assert outcome.stale == [b]


def test_baseline_keys_survive_a_formatter_run(sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Quotes, comments and line breaks inside the flagged statement are not part of its key."""
    run_cli(capsys, "--write-baseline", "baseline.json", "app", cwd=sample)
    jobs = sample / "app" / "jobs.py"
    jobs.write_text(
        jobs.read_text(encoding="utf-8").replace(
            'session.execute(update(Account).where(Account.owner == owner).values(status="closed"))',
            "session.execute(\n        update(Account)  # a comment\n"
            "        .where(Account.owner == owner)\n        .values(status='closed')\n    )",
        ),
        encoding="utf-8",
    )
    code, out, err = run_cli(capsys, "--baseline", "baseline.json", "app", cwd=sample)
    assert (code, out) == (0, "")
    assert "stale" not in err
