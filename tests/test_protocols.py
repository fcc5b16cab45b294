"""Lock protocols: a parent row lock every transaction takes before it touches the parent's
children serializes them. ``tables`` names it; with LCK005's whole-program pass selected, LCK001
and LCK002 stay quiet on the children it covers (also in worker processes and through the result
cache, which must forget the silence once another file breaks the protocol)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lockorder_lint.cli import main
from tests.test_cli import run_cli

BILLING = """\
from sqlalchemy import Column, ForeignKey, Integer, String, select, update
from sqlalchemy.orm import DeclarativeBase, Session


class Base(DeclarativeBase):
    pass


class Invoice(Base):
    __tablename__ = "invoice"
    id = Column(Integer, primary_key=True)
    total = Column(Integer)


class InvoiceLine(Base):
    __tablename__ = "invoice_line"
    id = Column(Integer, primary_key=True)
    invoice_id = Column(Integer, ForeignKey("invoice.id"))
    state = Column(String(20))


def reprice(invoice_id: int, session: Session) -> None:
    session.execute(select(Invoice).where(Invoice.id == invoice_id).with_for_update()).scalar_one()
    session.execute(update(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id).values(state="x"))


def void_lines(invoice_id: int, session: Session) -> None:
    session.execute(update(Invoice).where(Invoice.id == invoice_id).values(total=0))
    lines = select(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id).with_for_update()
    session.execute(lines).scalars().all()
"""

ARCHIVE = """\
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.billing import Invoice, InvoiceLine


def archive_lines(invoice_id: int, session: Session) -> None:
    session.execute(update(Invoice).where(Invoice.id == invoice_id).values(total=0))
    session.execute(update(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id).values(state="old"))
"""


def _project(root: Path) -> Path:
    (root / "app").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'app'\n")
    (root / "app" / "__init__.py").write_text("")
    (root / "app" / "billing.py").write_text(BILLING)
    return root


def _codes(out: str) -> list[tuple[str, int, str]]:
    return sorted((f["code"], f["line"], f["table"]) for f in json.loads(out) if f["type"] == "finding")


def test_tables_names_the_parent_lock_that_serializes_a_child(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(tmp_path / "p")
    code, out, _err = run_cli(capsys, "tables", "--no-cache", "app", cwd=root)
    assert code == 0
    lock = "serialized by the invoice row lock (FOR UPDATE or FOR NO KEY UPDATE)"
    assert f"    {lock}: reprice, void_lines lock it first" in out
    code, out, _err = run_cli(capsys, "tables", "--no-cache", "--format", "json", "app", cwd=root)
    tables = {t["table"]: t for t in json.loads(out)}
    assert tables["invoice_line"]["serialized_by"] == [
        {
            "parent": "invoice",
            "modes": ["FOR UPDATE", "FOR NO KEY UPDATE"],
            "followers": ["reprice", "void_lines"],
        }
    ]
    assert tables["invoice"]["serialized_by"] == []


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_children_under_the_protocol_are_quiet_only_when_the_whole_program_pass_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, jobs: str
) -> None:
    from lockorder_lint import project

    # the project's phases in a pool too: its workers are forked before the protocols are known
    monkeypatch.setattr(project, "_PARALLEL_FROM", 2)
    root = _project(tmp_path / "p")
    # two files with sessions: a pool is used with -j 2
    (root / "app" / "other.py").write_text("def ping(session):\n    return session.scalar(1)\n")
    args = ["--no-cache", "--format", "json", "-j", jobs, "--project-root", str(root), str(root / "app")]
    assert main([*args, "--select", "LCK,LCK005"]) == 0
    assert _codes(capsys.readouterr().out) == []
    # LCK005 not selected: its pass (and the protocols read from it) does not run
    assert main(args) == 1
    assert _codes(capsys.readouterr().out) == [("LCK001", 24, "invoice_line"), ("LCK002", 29, "invoice_line")]


def test_a_cached_quiet_result_is_not_reused_once_another_file_breaks_the_protocol(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(tmp_path / "p")
    (root / "app" / "archive.py").write_text(ARCHIVE)  # a third path that keeps the protocol
    args = ["--format", "json", "-j", "1", "--select", "LCK,LCK005", "--project-root", str(root)]
    args.append(str(root / "app"))
    assert main(args) == 0
    assert _codes(capsys.readouterr().out) == []
    # the same statements, but the invoice row is no longer named by its key: no parent lock
    broken = ARCHIVE.replace("Invoice.id == invoice_id", "Invoice.total == invoice_id")
    (root / "app" / "archive.py").write_text(broken)
    assert main(args) == 1
    assert _codes(capsys.readouterr().out) == [
        ("LCK001", 8, "invoice"),
        ("LCK001", 9, "invoice_line"),  # the UPDATE that no longer runs under the protocol,
        ("LCK001", 24, "invoice_line"),  # and billing.py's: its cached quiet result is not reused
        ("LCK002", 29, "invoice_line"),
    ]
