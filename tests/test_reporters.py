"""Machine-readable outputs: SARIF validated against the official 2.1.0 schema, GitHub workflow
commands escaped by GitHub's rules, and every format carrying the same findings."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from lockorder_lint import __version__
from lockorder_lint.findings import Finding
from lockorder_lint.reporters import page_section, render_github, render_sarif
from lockorder_lint.rules import ALL_RULES
from tests.test_cli import LCK001_AT, LCK002_AT, make_sample, run_cli

SCHEMA = Path(__file__).parent / "data" / "sarif-2.1.0-rtm.5.json"


@pytest.fixture(scope="module")
def sarif_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def test_sarif_output_validates_and_describes_tool_rules_and_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sarif_validator: jsonschema.protocols.Validator
) -> None:
    sample = make_sample(tmp_path / "sample")
    code, out, err = run_cli(capsys, "--format", "sarif", "app", cwd=sample)
    assert code == 1
    assert err == ""
    log = json.loads(out)
    sarif_validator.validate(log)
    assert log["version"] == "2.1.0"
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "lockorder-lint"
    assert driver["version"] == __version__
    assert driver["informationUri"].startswith("https://")
    assert [r["id"] for r in driver["rules"]] == [r.code for r in ALL_RULES]
    for described, rule in zip(driver["rules"], ALL_RULES, strict=True):
        assert described["name"] == rule.name
        assert described["shortDescription"]["text"] == rule.summary
        assert described["fullDescription"]["text"] == (
            page_section(rule.code, "What it finds") or rule.summary
        )
        assert described["helpUri"].endswith(f"/rules/{rule.code}.md")
    assert run["originalUriBaseIds"]["SRCROOT"]["uri"] == sample.resolve().as_uri() + "/"
    results = run["results"]
    assert [(r["ruleId"], r["level"]) for r in results] == [("LCK001", "error"), ("LCK002", "error")]
    for result, (line, column) in zip(results, (LCK001_AT, LCK002_AT), strict=True):
        (location,) = result["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"] == {"uri": "app/jobs.py", "uriBaseId": "SRCROOT"}
        region = physical["region"]
        assert (region["startLine"], region["startColumn"], region["endLine"]) == (line, column, line)
        assert region["endColumn"] > column
        assert result["message"]["text"]
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]


def test_sarif_uri_is_relative_to_the_project_root_from_any_working_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sarif_validator: jsonschema.protocols.Validator
) -> None:
    sample = make_sample(tmp_path / "sample")
    code, out, _err = run_cli(capsys, "--format", "sarif", sample / "app" / "jobs.py", cwd=tmp_path)
    assert code == 1
    log = json.loads(out)
    sarif_validator.validate(log)
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in log["runs"][0]["results"]
    }
    assert uris == {"app/jobs.py"}


def test_full_description_comes_from_the_rule_page() -> None:
    text = page_section("LCK001", "What it finds")
    assert text.startswith("A bulk `UPDATE` or `DELETE` on a hot table whose `WHERE` clause does not pin")
    assert "\n" not in text
    assert page_section("LCK999", "What it finds") == ""


def test_sarif_with_no_findings_validates(
    tmp_path: Path, sarif_validator: jsonschema.protocols.Validator
) -> None:
    log = json.loads(render_sarif([], tmp_path))
    sarif_validator.validate(log)
    assert log["runs"][0]["results"] == []


def test_sarif_fingerprint_ignores_line_moves(tmp_path: Path) -> None:
    base = Finding("app/x.py", 10, 5, 10, 20, "LCK001", "m", "t", "f", "update(T).where(T.a == 1)")
    moved = Finding("app/x.py", 40, 9, 40, 24, "LCK001", "m", "t", "f", "update(T).where(T.a  ==  1)")
    changed = Finding("app/x.py", 10, 5, 10, 20, "LCK001", "m", "t", "f", "update(T).where(T.b == 1)")

    def fingerprint(finding: Finding) -> str:
        result = json.loads(render_sarif([finding], tmp_path))["runs"][0]["results"][0]
        return str(result["partialFingerprints"]["lockorderContent/v1"])

    assert fingerprint(base) == fingerprint(moved)
    assert fingerprint(base) != fingerprint(changed)


def test_github_format_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = make_sample(tmp_path / "sample")
    code, out, err = run_cli(capsys, "--format", "github", "app/jobs.py", cwd=sample)
    assert code == 1
    assert err == ""
    lines = out.splitlines()
    assert len(lines) == 2
    line, column = LCK001_AT
    assert lines[0].startswith(
        f"::error file=app/jobs.py,line={line},col={column},endLine={line},endColumn=36,title=LCK001::"
        "bulk UPDATE of account locks rows through owner"
    )
    assert lines[1].startswith(f"::error file=app/jobs.py,line={LCK002_AT[0]},col={LCK002_AT[1]},")


def test_github_escaping() -> None:
    finding = Finding("dir,with:odd%/x.py", 3, 1, 4, 2, "LCK002", "50% of rows\r\nlocked: a, b", "t")
    assert render_github([finding]) == (
        "::error file=dir%2Cwith%3Aodd%25/x.py,line=3,col=1,endLine=4,endColumn=2,title=LCK002::"
        "50%25 of rows%0D%0Alocked: a, b\n"
    )


def test_sarif_reports_unparseable_files_as_tool_notifications(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sarif_validator: jsonschema.protocols.Validator
) -> None:
    sample = make_sample(tmp_path / "sample")
    (sample / "app" / "broken.py").write_text("def f(session):\n    session.delete(\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "--format", "sarif", "app", cwd=sample)
    assert code == 2
    assert "app/broken.py:2: error: cannot parse" in err
    log = json.loads(out)
    sarif_validator.validate(log)
    (invocation,) = log["runs"][0]["invocations"]
    assert invocation["executionSuccessful"] is False
    (notification,) = invocation["toolExecutionNotifications"]
    assert notification["message"]["text"].startswith("cannot parse")
    physical = notification["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"] == {"uri": "app/broken.py", "uriBaseId": "SRCROOT"}
    assert physical["region"] == {"startLine": 2}
    assert len(log["runs"][0]["results"]) == 2
