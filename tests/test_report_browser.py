"""The report as a person sees it: the HTML report of the fixtures opened in a real headless
Chromium (Debian's, driven by Playwright), and the Markdown report's Mermaid graph rendered by
Mermaid itself (vendored under ``tests/data/mermaid``) in the same browser.

Without a browser these tests skip and say why; in CI (``CI=true``, as ``.ci/run`` runs) or with
``LOCKORDER_REQUIRE_BROWSER=1`` they fail instead, so CI cannot pass without having run them."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lockorder_lint.baseline import write_baseline
from lockorder_lint.cli import main
from lockorder_lint.findings import Finding
from tests.test_report import MODELS, SERVICE

FIXTURES = Path(__file__).parent / "fixtures"
MERMAID = Path(__file__).parent / "data" / "mermaid" / "mermaid-12.3.0.min.js.gz"
REQUIRE_VARIABLE = "LOCKORDER_REQUIRE_BROWSER"
CHECK_ARGS = ["--no-cache", "--all-tables", "--project-root", str(FIXTURES), str(FIXTURES)]


def browser_required() -> bool:
    return os.environ.get("CI", "").lower() == "true" or os.environ.get(REQUIRE_VARIABLE) == "1"


def unavailable(reason: str) -> None:
    if browser_required():
        pytest.fail(f"CI=true or {REQUIRE_VARIABLE}=1, but the browser test cannot run: {reason}")
    pytest.skip(reason)


def chromium_path() -> str | None:
    for candidate in (os.environ.get("LOCKORDER_CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[test]')")
    executable = chromium_path()
    if executable is None:
        unavailable("no Chromium found (apt-get install chromium, or set LOCKORDER_CHROMIUM)")
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        except Error as exc:
            unavailable(f"Chromium at {executable} did not start: {str(exc).splitlines()[0]}")
        yield launched
        launched.close()


class Page:
    """A page with every console error, page error and outside request recorded."""

    def __init__(self, browser: Any) -> None:
        self.problems: list[str] = []
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.page.on(
            "console",
            lambda m: self.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
        )
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on(
            "request",
            lambda r: None if r.url.startswith(("file:", "data:", "about:")) else self.problems.append(r.url),
        )

    def open(self, path: Path) -> Any:
        self.page.goto(path.as_uri())
        self.page.wait_for_selector("body[data-ready=true]")
        return self.page


def check_json(capsys: pytest.CaptureFixture[str], *extra: str) -> list[dict[str, Any]]:
    main([*CHECK_ARGS, "--format", "json", *extra])
    findings: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return findings


def shown_where(entry: dict[str, Any]) -> str:
    relative = Path(os.path.realpath(entry["path"])).relative_to(FIXTURES.resolve()).as_posix()
    return f"{relative}:{entry['line']}:{entry['column']}"


@pytest.fixture(scope="module")
def fixtures_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "fixtures.html"
    assert main(["report", *CHECK_ARGS, "-o", str(out)]) == 0
    return out


def test_the_fixture_report_shows_every_finding_the_graph_and_the_summary(
    browser: Any, fixtures_report: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    findings = check_json(capsys)
    assert len(findings) > 100
    view = Page(browser)
    page = view.open(fixtures_report)
    # summary
    assert page.locator("#summary").is_visible()
    assert page.locator("#summary .card").first.inner_text().split() == [str(len(findings)), "findings"]
    rows = page.locator("#per-rule tr").all_inner_texts()[1:]
    per_rule = Counter(f["code"] for f in findings)
    assert [r.split("\t")[0].strip() + " " + r.split("\t")[-1].strip() for r in rows] == [
        f"{code} {count}" for code, count in sorted(per_rule.items())
    ]
    # every finding: once, visible, with its message and code
    articles = page.locator("article.finding")
    assert articles.count() == len(findings)
    shown = Counter(page.locator("article.finding .where .mono").all_inner_texts())
    assert shown == Counter(shown_where(f) for f in findings)
    for index in range(articles.count()):
        assert articles.nth(index).is_visible(), articles.nth(index).inner_text()
    texts = "\n".join(articles.all_inner_texts())
    for finding in findings:
        what = finding["message"][:60].replace("`", "")
        assert what in texts.replace("`", ""), finding["message"]
    # the graph: drawn, a node for every table a finding names, the candidate cycles in red
    assert page.locator("#lock-graph").is_visible()
    box = page.locator("#lock-graph").bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100
    for table in {f["table"] for f in findings if f["table"]}:
        assert page.locator(f'#lock-graph .node[data-table="{table}"]').is_visible(), table
    assert page.locator("#lock-graph .edge.cycle").count() >= 2
    assert page.locator("#cycles li").first.is_visible()
    # what was not checked: a header, then every statement the check lists with --show-unknown
    main([*CHECK_ARGS, "--show-unknown"])
    unknown = [line for line in capsys.readouterr().err.splitlines() if ": not checked: " in line]
    assert len(unknown) >= 4
    assert page.locator("#unknown tr").count() == 1 + len(unknown)
    # clicking a table in the graph goes to its findings
    page.locator('#lock-graph .node[data-table="job"]').click()
    assert page.locator("#table-job").is_visible()
    assert view.problems == []


def test_triage_marks_export_a_baseline_and_noqa_lines(
    browser: Any, fixtures_report: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    findings = check_json(capsys)
    view = Page(browser)
    page = view.open(fixtures_report)
    articles = page.locator("article.finding")
    marked = [articles.nth(0), articles.nth(5), articles.nth(6)]
    for article in marked[:2]:
        article.locator('input[value="fp"]').check()
    marked[2].locator('input[value="real"]').check()
    assert page.locator("#count-fp").inner_text() == "2" and page.locator("#count-real").inner_text() == "1"
    assert "mark-fp" in (marked[0].get_attribute("class") or "")
    page.select_option("#filter", "fp")
    assert [a.is_visible() for a in marked] == [True, True, False]
    assert articles.nth(1).is_hidden()
    page.select_option("#filter", "all")
    # the baseline of the findings marked "not a problem" is byte for byte what --write-baseline
    # writes for them, and a check with it reports every finding but those
    page.select_option("#export-scope", "fp")
    page.click("#export-baseline")
    exported = page.locator("#export-output").input_value()
    ids = [a.get_attribute("id") for a in marked[:2]]
    where = {marked[i].locator(".where .mono").inner_text() for i in range(2)}
    chosen = [f for f in findings if shown_where(f) in where]
    assert len(chosen) == 2
    expected = tmp_path / "expected.json"
    write_baseline(
        expected, [Finding(**{k: v for k, v in f.items() if k != "type"}) for f in chosen], FIXTURES
    )
    assert exported == expected.read_text(encoding="utf-8")
    assert page.locator("#export-download").get_attribute("download") == "lockorder-baseline.json"
    saved = tmp_path / "triaged.json"
    saved.write_text(exported, encoding="utf-8")
    rest = check_json(capsys, "--baseline", str(saved))
    assert len(rest) == len(findings) - 2
    assert not {shown_where(f) for f in rest} & where
    # noqa suggestions name the line and the code
    page.click("#export-noqa")
    noqa = page.locator("#export-output").input_value()
    for finding in chosen:
        path, line = shown_where(finding).rsplit(":", 2)[:2]
        assert f"{path}:{line}: append  # noqa: {finding['code']}" in noqa
    # the marks survive a reload
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert [page.locator(f"#{i}").get_attribute("data-mark") for i in ids] == ["fp", "fp"]
    assert view.problems == []


def mermaid_block(markdown: str) -> str:
    match = re.search(r"```mermaid\n(.*?)```", markdown, re.S)
    assert match is not None
    return match.group(1)


RENDER = """async (text) => {
    mermaid.initialize({startOnLoad: false, securityLevel: "strict"});
    await mermaid.parse(text);
    const drawn = await mermaid.render("graph-under-test", text);
    document.getElementById("out").innerHTML = drawn.svg;
    return document.querySelectorAll("#out .node").length;
}"""
PARSE = """async (text) => {
    try { await mermaid.parse(text); return "accepted"; } catch (error) { return "rejected"; }
}"""


def test_the_markdown_graph_is_valid_mermaid_and_renders(browser: Any, tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "models.py").write_text(MODELS)
    (app / "service.py").write_text(SERVICE)
    (tmp_path / "pyproject.toml").write_text('[tool.lockorder-lint]\nhot-tables = ["account", "job"]\n')
    small = tmp_path / "small.md"
    assert (
        main(
            [
                "report",
                "--no-cache",
                "--project-root",
                str(tmp_path),
                str(app),
                "--format",
                "markdown",
                "-o",
                str(small),
            ]
        )
        == 0
    )
    whole = tmp_path / "fixtures.md"
    assert main(["report", *CHECK_ARGS, "--format", "markdown", "-o", str(whole)]) == 0
    view = Page(browser)
    page = view.page
    page.set_content("<!DOCTYPE html><html><body><div id='out'></div></body></html>")
    page.add_script_tag(content=gzip.decompress(MERMAID.read_bytes()).decode("utf-8"))
    assert page.evaluate(PARSE, 'flowchart LR\n    t0["a" -->') == "rejected"  # the parser is strict
    small_graph = mermaid_block(small.read_text(encoding="utf-8"))
    assert page.evaluate(RENDER, small_graph) == 2
    labels = page.locator("#out .node").all_text_contents()
    assert sorted(label.strip() for label in labels) == ["account", "job (1)"]
    assert page.locator("#out").is_visible()
    fixtures_graph = mermaid_block(whole.read_text(encoding="utf-8"))
    nodes = len(re.findall(r"^    t\d+\[", fixtures_graph, re.M))
    assert nodes > 10
    assert page.evaluate(RENDER, fixtures_graph) == nodes
    assert view.problems == []
