"""Measure what ``pytest --lockorder`` costs: run the project's own database tests with and without
the plugin, alternately, and print the median wall time of each and the overhead (target: at most
15 %). A benchmark, not a timed test: machines differ, so nothing asserts on the figure.

    .venv/bin/python benchmarks/lockorder_overhead.py                    # tests/integration, 3 runs each
    .venv/bin/python benchmarks/lockorder_overhead.py --repeat 5 tests/integration/test_fix_savepoint.py

Database URLs come from the same variables as the tests, defaulting to the ones ``.ci/run`` sets.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URLS = {
    "LOCKORDER_TEST_POSTGRES_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "LOCKORDER_TEST_MYSQL_URL": "mysql+pymysql://root@127.0.0.1:3306/test",
}


def run_once(paths: list[str], lockorder: bool) -> float:
    """Wall seconds of one quiet pytest run of ``paths``; a failed run stops the benchmark."""
    env = {**DEFAULT_URLS, **os.environ}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths]
    if lockorder:
        command.append("--lockorder")
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"pytest failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("paths", nargs="*", default=["tests/integration"], help="test paths to run")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs with and without the plugin (alternating)"
    )
    args = parser.parse_args(argv)
    plain: list[float] = []
    recorded: list[float] = []
    for _ in range(args.repeat):
        plain.append(run_once(args.paths, lockorder=False))
        recorded.append(run_once(args.paths, lockorder=True))
    base, with_plugin = statistics.median(plain), statistics.median(recorded)
    runs = ", ".join(f"{t:.2f}" for t in plain)
    print(f"without --lockorder: median {base:.2f} s over {len(plain)} runs ({runs})")
    print(f"with --lockorder:    median {with_plugin:.2f} s ({', '.join(f'{t:.2f}' for t in recorded)})")
    print(f"overhead: {100 * (with_plugin - base) / base:+.1f} % (target: at most +15 %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
