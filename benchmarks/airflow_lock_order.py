"""LCK005 on the Airflow releases issue 11 names: is each known task_instance/dag_run deadlock
reported, and is it gone in the release that fixed it?

Downloads the pinned wheels (``pip download --no-deps``) into a cache directory under
``benchmarks/.corpus`` (never committed), unpacks each, runs ``lockorder-lint --select LCK005
--format json`` on its ``airflow`` package with the unpacked directory as project root, and
prints per release its findings and PASS/FAIL for the bar:

- apache-airflow-core 3.2.1: the execution API's ti PATCH (``session.get(TI, ...,
  with_for_update=True)``, whose eager ``dag_run`` join locks the run after the task instance)
  against the scheduler's dag_run-then-task_instance order; 3.2.2 (the fix) must not report it.
- apache-airflow 2.3.3: ``refresh_from_db(lock_for_update=True)`` (the same eager join);
  2.4.0 (the fix) must not report it.
- apache-airflow 2.2.3: the reschedule INSERT into task_reschedule, whose foreign key check locks
  the dag_run row after the task instance.

A pair counts as reported when one finding's trace has a transaction that locks task_instance and
then dag_run through the named path, and another that locks dag_run and then task_instance.

    python benchmarks/airflow_lock_order.py
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_CACHE = HERE / ".corpus" / "airflow-history"
BIN = Path(sys.executable).parent

Step = dict[str, object]


def _ti_patch(step: Step) -> bool:
    return "execution_api/routes/task_instances.py" in str(
        step["path"]
    ) and "joined rows of session.get" in str(step["step"])


def _refresh_for_update(step: Step) -> bool:
    text = str(step["step"])
    return "joined rows of" in text and (
        "refresh_from_db" in text or str(step["function"]).endswith("refresh_from_db")
    )


def _reschedule_insert(step: Step) -> bool:
    return "foreign key check of INSERT INTO task_reschedule" in str(step["step"])


@dataclass(frozen=True)
class Release:
    requirement: str
    path: str  # the deadlock path the bar is about, as printed
    matches: Callable[[Step], bool]  # a trace step taking that path's dag_run lock
    reported: bool  # whether the bar wants it reported (False: the fixed release)


RELEASES = (
    Release("apache-airflow==2.2.3", "reschedule INSERT (FK check of dag_run)", _reschedule_insert, True),
    Release("apache-airflow==2.3.3", "refresh_from_db(lock_for_update=True)", _refresh_for_update, True),
    Release("apache-airflow==2.4.0", "refresh_from_db(lock_for_update=True)", _refresh_for_update, False),
    Release("apache-airflow-core==3.2.1", "ti PATCH session.get(..., with_for_update)", _ti_patch, True),
    Release("apache-airflow-core==3.2.2", "ti PATCH session.get(..., with_for_update)", _ti_patch, False),
)


def fetch(requirement: str, cache: Path) -> Path:
    """Download and unpack one wheel (once); return the unpacked directory."""
    dist, version = requirement.split("==")
    target = cache / f"{dist}-{version}"
    if (target / "airflow").is_dir():
        return target
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         requirement, "-d", str(wheels)],
        check=True,
    )  # fmt: skip
    prefix = f"{dist.replace('-', '_')}-{version}-"
    wheel = next(w for w in wheels.glob("*.whl") if w.name.lower().startswith(prefix))
    shutil.rmtree(target, ignore_errors=True)
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    return target


def findings(root: Path) -> list[dict[str, object]]:
    completed = subprocess.run(
        [str(BIN / "lockorder-lint"), "--no-cache", "--select", "LCK005", "--format", "json",
         "--project-root", str(root), str(root / "airflow")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if completed.returncode not in (0, 1):
        raise SystemExit(f"lockorder-lint failed on {root}:\n{completed.stderr}")
    found: list[dict[str, object]] = json.loads(completed.stdout)
    return found


def _order(transaction: list[Step], first: str, then: Callable[[Step], bool]) -> bool:
    """The transaction locks ``first`` and, at a later step, takes a lock ``then`` matches."""
    seen = False
    for step in transaction:
        if seen and then(step):
            return True
        seen = seen or f"locks {first} " in str(step["step"])
    return False


def _locks_dag_run(step: Step) -> bool:
    return "locks dag_run " in str(step["step"])


def has_pair(found: list[dict[str, object]], matches: Callable[[Step], bool]) -> bool:
    """One finding pairs the named path (task_instance, then dag_run through it) with a
    transaction that locks dag_run and then task_instance."""

    def dag_run_then_ti(step: Step) -> bool:
        return "locks task_instance " in str(step["step"])

    for finding in found:
        trace = finding.get("trace") or []
        assert isinstance(trace, list)
        named = [
            t
            for t in trace
            if _order(t, "task_instance", lambda s: matches(s) and "locks dag_run " in str(s["step"]))
        ]
        other = [t for t in trace if t not in named and _order(t, "dag_run", dag_run_then_ti)]
        if named and other:
            return True
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where wheels are kept")
    args = parser.parse_args(argv)
    failed = 0
    for release in RELEASES:
        found = findings(fetch(release.requirement, args.cache))
        print(f"{release.requirement}: {len(found)} LCK005 finding(s)")
        for finding in found:
            path = str(finding["path"]).split("/airflow/", 1)[-1]
            print(f"    airflow/{path}:{finding['line']}: {finding['message']}")
        reported = has_pair(found, release.matches)
        ok = reported == release.reported
        failed += not ok
        want = "reported" if release.reported else "not reported"
        got = "reported" if reported else "not reported"
        print(f"  {'PASS' if ok else 'FAIL'}: {release.path} vs the scheduler: {got} (wanted {want})\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
