"""``lockorder-lint graph``: the table-level lock-order graph as DOT, Mermaid or JSON, with how
each second table is taken, how many functions take the pair in that order and one of them, hot
tables, and cycles (two functions taking two tables in opposite orders) marked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_cli import run_cli
from tests.test_project import project

ORDERS = """\
from sqlalchemy import select, update

from app.models import Job, Note


def job_then_note(session, i):
    session.get(Job, i, with_for_update=True)
    session.get(Note, i, with_for_update=True)


def note_then_job(session, i):
    session.execute(select(Note).where(Note.id == i).with_for_update())
    session.execute(update(Job).where(Job.id == i).values(state="done"))
"""


def test_json_has_the_edges_both_ways_and_the_cycle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(tmp_path / "p", orders=ORDERS)
    code, out, err = run_cli(capsys, "graph", "--no-cache", "--format", "json", "app", cwd=root)
    assert code == 0
    graph = json.loads(out)
    assert [(t["name"], t["hot"]) for t in graph["tables"]] == [("job", True), ("note", True)]
    edges = {(e["first"], e["then"]): e for e in graph["edges"]}
    assert edges[("job", "note")]["modes"] == ["lock"]
    assert edges[("job", "note")]["examples"] == ["app/orders.py:7 job_then_note"]
    assert edges[("note", "job")]["modes"] == ["write"]
    assert edges[("note", "job")]["examples"] == ["app/orders.py:12 note_then_job"]
    assert all(e["in_cycle"] and e["drawn"] and e["functions"] == 1 for e in edges.values())
    assert [(c["tables"], c["source"]) for c in graph["cycles"]] == [(["job", "note"], "opposite orders")]
    assert err.splitlines()[-1].startswith(
        "lockorder-lint: 2 tables, 2 edges, 1 cycle (0 reported by LCK005)"
    )


def test_dot_and_mermaid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = project(tmp_path / "p", orders=ORDERS)
    code, out, _err = run_cli(capsys, "graph", "--no-cache", "app", cwd=root)
    assert code == 0
    assert out.startswith("digraph lock_order {\n")
    assert (
        '    "job" -> "note" [label="lock; 1 function, e.g. app/orders.py:7 job_then_note", '
        'color="#cf222e", penwidth=3];'
    ) in out.splitlines()
    target = root / "graph.mmd"
    code, out, _err = run_cli(
        capsys, "graph", "--no-cache", "--format", "mermaid", "-o", str(target), "app", cwd=root
    )
    assert (code, out) == (0, "")
    text = target.read_text(encoding="utf-8")
    assert text.startswith("flowchart LR\n") and "==>" in text


def test_one_order_has_no_cycle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    same = ORDERS.replace(
        "    session.execute(select(Note).where(Note.id == i).with_for_update())\n"
        '    session.execute(update(Job).where(Job.id == i).values(state="done"))',
        '    session.execute(update(Job).where(Job.id == i).values(state="done"))\n'
        "    session.execute(select(Note).where(Note.id == i).with_for_update())",
    )
    root = project(tmp_path / "p", orders=same)
    code, out, _err = run_cli(capsys, "graph", "--no-cache", "--format", "json", "app", cwd=root)
    graph = json.loads(out)
    assert graph["cycles"] == []
    assert [(e["first"], e["then"], e["functions"]) for e in graph["edges"]] == [("job", "note", 2)]


def test_graph_refuses_fix_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = project(tmp_path / "p", orders=ORDERS)
    code, _out, err = run_cli(capsys, "graph", "--fix", "app", cwd=root)
    assert code == 2
    assert "graph writes a graph only" in err


def test_graph_names_a_file_it_could_not_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Like check and report: a file it could not read is named, and the exit status says so."""
    root = project(tmp_path / "p", orders=ORDERS)
    (root / "app" / "broken.py").write_text("def broken(:\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "graph", "--no-cache", "--format", "json", "app", cwd=root)
    assert code == 2
    assert json.loads(out)["cycles"]
    assert "app/broken.py:1" in err and "cannot parse" in err
