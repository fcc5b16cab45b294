"""Generated programs never make the checker raise or report an internal error."""

from __future__ import annotations

import re
from pathlib import Path

import hypothesmith
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lockorder_lint.config import Config
from lockorder_lint.engine import Project, check_source
from lockorder_lint.runner import make_project

# hypothesmith compiles what it generates; the odd programs make compile() warn under "<string>".
pytestmark = pytest.mark.filterwarnings("ignore::SyntaxWarning")

FIXTURES = Path(__file__).parent / "fixtures"
_PROJECT = make_project(FIXTURES, Config())

# Statement builders the analysis follows, spliced into generated code so that it is exercised.
_SNIPPETS = [
    "from sqlalchemy import update, delete, select\nfrom tests.fixtures.rules.models import Account\n",
    "def f(session):\n    session.execute(update(Account).where(Account.owner == x))\n",
    "def g(session):\n    q = select(Account).where(*c)\n    q = q.with_for_update(of=Account)\n"
    "    try:\n        session.execute(q)\n    except Exception:\n        session.commit()\n",
]


def _analyse_everything(project: Project) -> Project:
    """A project whose trigger matches every function, so every function is analysed."""
    clone = Project(root=project.root, config=project.config, catalog=project.catalog)
    clone.rule_triggers = {rule.code: re.compile(rb"(?s).") for rule in clone.rules}
    clone.trigger = re.compile(rb"(?s).")
    return clone


_EVERYTHING = _analyse_everything(_PROJECT)


def _check(source: str) -> None:
    result = check_source(source.encode("utf-8"), FIXTURES / "generated.py", "generated.py", _EVERYTHING)
    internal = [e for e in result.errors if "internal error" in e.reason]
    assert internal == [], internal


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(hypothesmith.from_grammar(), st.sampled_from(_SNIPPETS))
def test_generated_programs_never_break_the_checker(source: str, snippet: str) -> None:
    _check(source)
    _check(snippet + "\n" + source)


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(hypothesmith.from_node())
def test_generated_syntax_trees_never_break_the_checker(source: str) -> None:
    _check(source)
