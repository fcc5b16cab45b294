"""``lockorder-lint report``: what the HTML and Markdown reports hold, the lock-order graph's data
and layout, and the command's edges. The page itself is driven in a browser by
``test_report_browser.py``."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from lockorder_lint.cli import main
from lockorder_lint.findings import Finding, TableStep
from lockorder_lint.report import build_report, mermaid, render_html, render_markdown
from lockorder_lint.report.layout import layout
from lockorder_lint.report.lockgraph import CANDIDATE, CONFIRMED, LockGraph, graph_from_steps
from lockorder_lint.report.model import split_message

FIXTURES = Path(__file__).parent / "fixtures"

MODELS = """\
from sqlalchemy import Column, Integer, String
from sqlalchemy.orm import declarative_base

Base = declarative_base()


class Account(Base):
    __tablename__ = "account"
    id = Column(Integer, primary_key=True)
    status = Column(String)


class Job(Base):
    __tablename__ = "job"
    id = Column(Integer, primary_key=True)
    state = Column(String)
"""

SERVICE = """\
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.models import Account, Job


def pay(session: Session, account_id: int, job_id: int) -> None:
    session.execute(select(Account).where(Account.id == account_id).with_for_update())
    session.execute(update(Job).where(Job.id == job_id).values(state="paid"))


def close(session: Session, account_id: int, job_id: int) -> None:
    session.execute(select(Job).where(Job.id == job_id).with_for_update())
    session.execute(update(Account).where(Account.id == account_id).values(status="closed"))


def sweep(session: Session) -> None:
    session.execute(update(Job).where(Job.state == "stale").values(state="failed"))
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Two functions taking account and job in opposite orders, and one bulk write (LCK001)."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "models.py").write_text(MODELS)
    (app / "service.py").write_text(SERVICE)
    (tmp_path / "pyproject.toml").write_text('[tool.lockorder-lint]\nhot-tables = ["account", "job"]\n')
    return tmp_path


def report_of(project: Path, *extra: str, fmt: str = "html") -> tuple[int, str]:
    out = project / f"report.{fmt}"
    code = main(
        ["report", "--no-cache", "--project-root", str(project), str(project / "app"), "-o", str(out)]
        + ["--format", fmt, *extra]
    )
    return code, out.read_text(encoding="utf-8") if out.exists() else ""


def test_the_html_report_holds_the_summary_findings_graph_and_cycle(project: Path) -> None:
    code, page = report_of(project)
    assert code == 0
    assert page.startswith("<!DOCTYPE html>")
    # one finding: the bulk UPDATE of job by state, with its code excerpt and the fix it names
    assert page.count('<article class="finding"') == 1
    assert "LCK001" in page and "service.py:18:" in page
    assert '<span class="ln flagged"><span class="num">18</span>' in page
    assert "<strong>Fix:</strong> select the id values first" in page
    # the graph: both tables, the two opposite edges drawn red, the cycle named with both traces
    assert page.count('<g class="node hot') == 2
    assert '<g class="edge cycle" data-from="account" data-to="job">' in page
    assert '<g class="edge cycle" data-from="job" data-to="account">' in page
    assert "account → job → account" in page
    assert "app/service.py:8 pay: account then job" in page
    assert "app/service.py:13 close: job then account" in page
    # the summary: hot tables with their setting; statements judged; nothing left unchecked
    assert 'id="per-rule"' in page and "listed in hot-tables" in page
    assert re.search(r'<span class="number">5</span><span class="label">statements judged', page)
    # self-contained: no address the page could load from
    assert not re.search(r"""(?:src|href)=["'](?:https?:)?//""", page)
    assert "default-src 'none'" in page


def test_the_markdown_report_draws_the_graph_as_mermaid(project: Path) -> None:
    code, text = report_of(project, fmt="markdown")
    assert code == 0
    block = re.search(r"```mermaid\n(.*?)```", text, re.S)
    assert block is not None
    assert block.group(1).splitlines() == [
        "flowchart LR",
        '    t0["account"]',
        '    t1["job (1)"]',
        '    t0 ==>|"1 function"| t1',
        '    t1 ==>|"1 function"| t0',
        "    classDef hot fill:#fff1e5,stroke:#bc4c00,color:#1f2328",
        "    class t0,t1 hot",
        "    linkStyle 0,1 stroke:#cf222e,stroke-width:3px",
    ]
    assert "### job (hot) — 1 finding" in text
    assert "#### LCK001 unordered-bulk-write (1)" in text
    assert "**Fix:** select the id values first" in text


def test_baseline_state_is_shown_with_baseline(project: Path) -> None:
    base = project / "baseline.json"
    assert (
        main(
            [
                "--no-cache",
                "--project-root",
                str(project),
                str(project / "app"),
                "--write-baseline",
                str(base),
            ]
        )
        == 0
    )
    data = json.loads(base.read_text())
    data["entries"].append(
        {"path": "app/gone.py", "code": "LCK001", "function": "f", "statement": "x", "count": 1}
    )
    base.write_text(json.dumps(data))
    code, page = report_of(project, "--baseline", str(base))
    assert code == 0
    assert '<section id="baseline">' in page
    assert "records 2 finding(s): 1 of today's findings are in it" in page
    assert "1 are new" not in page and "0 are new" in page
    assert "app/gone.py: f: LCK001 x" in page
    assert page.count('<span class="pill baselined">in baseline</span>') == 1


def test_report_refuses_a_missing_directory_and_check_only_options(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(project / "app"), "-o", str(project / "nowhere" / "r.html")]) == 2
    assert "nowhere does not exist" in capsys.readouterr().err
    assert main(["report", str(project / "app"), "-o", str(project / "r.html"), "--fix"]) == 2
    assert main(["report", str(project / "app")]) == 2  # -o is required
    assert main(["report", str(project / "app"), "-o", str(project / "r"), "--format", "json"]) == 2


def test_a_file_that_cannot_be_checked_is_listed_and_exits_2(project: Path) -> None:
    (project / "app" / "broken.py").write_text("def f(:\n")
    code, page = report_of(project)
    assert code == 2
    assert 'id="file-errors"' in page and "broken.py" in page


def test_hostile_text_is_escaped_everywhere(tmp_path: Path) -> None:
    evil = "</script><img src=x onerror=alert(1)>"
    finding = Finding("x.py", 1, 1, 1, 2, "LCK001", f"bulk {evil}; fix {evil}", evil, evil, evil)
    step = TableStep("x.py", evil, 1, evil, "lock")
    report = build_report(
        title=evil,
        root=tmp_path,
        paths=[evil],
        dialects=["postgresql"],
        findings=[finding],
        baselined=None,
        steps=[step],
        files_checked=1,
        files_analysed=1,
        migrations=0,
        hot_mode=evil,
        hot={evil: [evil]},
        unknown=[],
        errors=[],
        notes=[],
    )
    page = render_html(report)
    assert "<img" not in page
    assert page.count("</script>") == 2  # the data block's and the script's own
    assert '"' + evil.replace("<", "\\u003c") in page or "\\u003c/script>" in page
    assert "<img" not in mermaid(report.graph)
    assert "<img" not in render_markdown(report).replace("`" + evil, "")  # only inside code spans


def test_steps_make_edges_and_opposite_orders_a_candidate_cycle() -> None:
    steps = [
        TableStep("a.py", "one", 10, "a", "lock"),
        TableStep("a.py", "one", 11, "b", "write"),
        TableStep("a.py", "one", 12, "c", "insert"),
        TableStep("a.py", "one", 13, "a", "write"),  # already held: no new edge
        TableStep("b.py", "two", 5, "c", "lock"),
        TableStep("b.py", "two", 6, "a", "write"),
    ]
    graph = graph_from_steps(steps, [], {"a": ["row-locked at a.py:10 one"]})
    assert sorted(graph.edges) == [("a", "b"), ("a", "c"), ("b", "c"), ("c", "a")]
    assert graph.edges[("a", "b")].traces == ["a.py:10 one"]
    assert not graph.edges[("a", "b")].in_cycle
    assert sorted(graph.drawn_edges()) == [("a", "b"), ("a", "c"), ("b", "c"), ("c", "a")]
    assert graph.edges[("a", "c")].in_cycle and graph.edges[("c", "a")].in_cycle
    assert not graph.edges[("a", "c")].adjacent  # implied by a, b, c; drawn because it is on a cycle
    assert graph.nodes["a"].hot and not graph.nodes["b"].hot
    (cycle,) = graph.cycles
    assert cycle.source == CANDIDATE and cycle.tables == ("a", "c")
    assert cycle.traces == ("a.py:10 one: a then c", "b.py:5 two: c then a")


def test_an_lck005_cycle_plugs_in_and_replaces_the_candidate() -> None:
    graph = LockGraph()
    graph.add_trace("a.py:1 one", ["a", "b"])
    graph.add_trace("b.py:1 two", ["b", "a"])
    graph.add_cycle(["a", "b"], ["a.py:1 one: a then b", "b.py:1 two: b then a"])
    graph.finish()
    assert [c.source for c in graph.cycles] == [CONFIRMED]
    assert graph.cycle_edges() == {("a", "b"), ("b", "a")}
    finding = Finding(
        "c.py", 3, 1, 3, 9, "LCK005", "`dag_run` then `task_instance` here, the other order in x", "dag_run"
    )
    from_finding = graph_from_steps([], [finding], None)
    assert [(c.tables, c.source) for c in from_finding.cycles] == [(("dag_run", "task_instance"), CONFIRMED)]


def test_layout_is_deterministic_and_points_edges_forward() -> None:
    nodes = ["t", "a", "b", "c", "d", "lonely"]
    edges = [("a", "b"), ("b", "c"), ("c", "a"), ("a", "d"), ("t", "d")]
    first, second = layout(nodes, edges), layout(list(reversed(nodes)), list(reversed(edges)))
    assert first == second
    assert set(first.boxes) == set(nodes)
    forward = sum(first.layers[b] > first.layers[a] for a, b in edges)
    assert forward == len(edges) - 1  # one edge of the a -> b -> c -> a cycle must point back
    boxes = list(first.boxes.values())
    for i, one in enumerate(boxes):
        for other in boxes[i + 1 :]:
            apart = (
                one.x + one.width <= other.x
                or other.x + other.width <= one.x
                or one.y + one.height <= other.y
                or other.y + other.height <= one.y
            )
            assert apart, (one, other)
        assert one.x + one.width <= first.width and one.y + one.height <= first.height


@pytest.mark.parametrize(
    ("message", "what", "fix"),
    [
        (
            "FOR UPDATE on t locks rows in plan order; add skip_locked=True, or pin the rows by id",
            "FOR UPDATE on t locks rows in plan order",
            "add skip_locked=True, or pin the rows by id",
        ),
        (
            "bulk DELETE of trigger reaches rows through id (not pinned), not its key id, so it locks rows "
            "in another order: select the id values first (SKIP LOCKED ... FOR UPDATE), then DELETE by id",
            "bulk DELETE of trigger reaches rows through id (not pinned), not its key id, so it locks rows "
            "in another order",
            "select the id values first (SKIP LOCKED ... FOR UPDATE), then DELETE by id",
        ),
        (
            "`except Exception` catches an error from `s.execute(...)`, then runs `s.commit()`: it fails; "
            "run the `try` body under `with s.begin_nested():` (a rollback would discard; the work)",
            "`except Exception` catches an error from `s.execute(...)`, then runs `s.commit()`: it fails",
            "run the `try` body under `with s.begin_nested():` (a rollback would discard; the work)",
        ),
        ("no fix named here", "no fix named here", ""),
    ],
)
def test_messages_split_into_what_happens_and_the_fix(message: str, what: str, fix: str) -> None:
    assert split_message(message) == (what, fix)


def test_the_fixture_report_lists_every_finding_of_a_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--no-cache", "--all-tables", "--project-root", str(FIXTURES), str(FIXTURES)]
    main([*args, "--format", "json"])
    findings = json.loads(capsys.readouterr().out)
    out = tmp_path / "fixtures.md"
    assert main(["report", *args, "--format", "markdown", "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    for finding in findings:
        relative = Path(finding["path"]).resolve().relative_to(FIXTURES.resolve()).as_posix()
        assert f"**{relative}:{finding['line']}:{finding['column']}**" in text
    assert text.count("- [ ] **") == len(findings)


def test_the_exported_baseline_key_is_the_one_write_baseline_records(project: Path) -> None:
    _code, page = report_of(project)
    data = json.loads(
        re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S).group(1)
    )
    out = project / "b.json"
    main(["--no-cache", "--project-root", str(project), str(project / "app"), "--write-baseline", str(out)])
    (entry,) = json.loads(out.read_text())["entries"]
    (finding,) = data["findings"]
    assert {**finding["key"], "count": 1} == entry
    assert textwrap.dedent(finding["source"]).strip().startswith("session.execute(update(Job)")


def test_an_lck005_finding_shows_one_trace_per_transaction(tmp_path: Path) -> None:
    fixtures = Path(__file__).parent / "fixtures"
    out = tmp_path / "cycle.html"
    path = fixtures / "airflow" / "dag_run_lock_order_3_2_1.py"
    config = tmp_path / "pyproject.toml"  # PostgreSQL only: other fixtures ship MySQL code
    config.write_text('[tool.lockorder-lint]\ndialects = ["postgresql"]\n', encoding="utf-8")
    argv = [
        "report",
        "--no-cache",
        "--select",
        "LCK005",
        "--config",
        str(config),
        "--project-root",
        str(fixtures),
    ]
    assert main([*argv, str(path), "-o", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert page.count('<article class="finding"') == 1
    assert '<ul class="traces"><li>transaction 1<ol>' in page and "<li>transaction 2<ol>" in page
    assert "locks dag_run" in page and "locks task_instance" in page
