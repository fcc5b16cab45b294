"""Time lockorder-lint on real SQLAlchemy codebases beside flake8, and print the ratios.

Downloads pinned wheels from the package index into a cache directory (never committed), unpacks
them, and for each corpus measures: a cold audit (``--no-cache``), a warm re-run (cache filled),
a serial run (``--jobs 1``), ``flake8 --select=E9,F63`` on the same tree, a pre-commit-style
run on one changed file, and a cold ``report`` (the audit report, HTML). Each figure is the
median of ``--repeat`` runs; wall and CPU seconds and peak memory come from ``wait4`` on the
child process tree.

    python benchmarks/bench.py                      # airflow-core 3.3.2 only
    python benchmarks/bench.py --corpus all         # every pinned corpus
    python benchmarks/bench.py --scale              # one run over all of them together
    python benchmarks/bench.py --functions 5000,20000,50000   # one file, N flagged functions each
    python benchmarks/bench.py --select default --select LCK,LCK005   # a row per rule selection

``--select`` passes ``--select CODES`` to every checker run of a row (cold, warm, serial, one
changed file, report), one row per ``--select`` given; ``default`` is the run without it. Preview
rules run only when selected, so this is how LCK005's whole-program pass is timed.

``--functions`` shows that the time grows linearly with the flagged functions of one file: it
generates, in a temporary directory, one module per size whose every function runs a bulk UPDATE
of a hot table by a non-key column (one LCK001 each), checks it once, and prints wall and CPU
seconds per size and per thousand functions, from the run of least CPU time among ``--repeat``
(on a shared machine the other runs measure the neighbours). Linear means the last column stays
flat.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_CACHE = HERE / ".corpus"
BIN = Path(sys.executable).parent

# name -> (requirement, package directory inside the wheel, file for the pre-commit run)
CORPORA: dict[str, tuple[str, str, str]] = {
    "airflow-core-3.3.2": ("apache-airflow-core==3.3.2", "airflow", "models/taskinstance.py"),
    "airflow-2.10.5": ("apache-airflow==2.10.5", "airflow", "models/taskinstance.py"),
    "superset-6.1.0": ("apache-superset==6.1.0", "superset", "models/core.py"),
    "prefect-3.9.1": ("prefect==3.9.1", "prefect", "server/models/flow_runs.py"),
    "mlflow-3.18.0": ("mlflow==3.18.0", "mlflow", "store/tracking/sqlalchemy_store.py"),
    "neutron-29.0.0": ("neutron==29.0.0", "neutron", "db/models_v2.py"),
    "sqlalchemy-2.1.9": ("sqlalchemy==2.1.9", "sqlalchemy", "orm/session.py"),
    "flask-appbuilder-5.3.0": ("flask-appbuilder==5.3.0", "flask_appbuilder", "security/sqla/manager.py"),
}


DEFAULT_SELECTION = "default"  # the rules a run selects when not told (preview rules left out)


@dataclass
class Measure:
    wall: float
    cpu: float
    peak_mb: float
    stdout: str
    code: int


def fetch(name: str, cache: Path) -> Path:
    """Download and unpack one pinned wheel; return the package directory."""
    requirement, package, _ = CORPORA[name]
    target = cache / name
    if not (target / package).is_dir():
        wheels = cache / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             requirement, "-d", str(wheels)],
            check=True,
        )  # fmt: skip
        dist = requirement.split("==")[0].replace("-", "_").lower()
        version = requirement.split("==")[1]
        wheel = next(w for w in wheels.glob("*.whl") if w.name.lower().startswith(f"{dist}-{version}-"))
        shutil.rmtree(target, ignore_errors=True)
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(target)
    return target / package


def compile_checker() -> None:
    """Give the checker its bytecode before timing it, as pip gives every installed package
    (flake8's included). An editable install under PYTHONDONTWRITEBYTECODE has none, and would
    compile its own modules from source on every run (0.1 s), which no user's install does."""
    import lockorder_lint

    compileall.compile_dir(Path(lockorder_lint.__file__).parent, quiet=1)


def measure(argv: list[str], cwd: Path) -> Measure:
    """Run a command; wall time, CPU time and peak RSS of its whole process tree."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("CI", None)
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    out = proc.stdout.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Measure(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out, proc.returncode)


def median(runs: list[Measure]) -> Measure:
    ordered = sorted(runs, key=lambda m: m.wall)
    middle = ordered[len(ordered) // 2]
    return Measure(
        statistics.median(m.wall for m in runs),
        statistics.median(m.cpu for m in runs),
        max(m.peak_mb for m in runs),
        middle.stdout,
        middle.code,
    )


def count_files_lines(root: Path) -> tuple[int, int]:
    files = lines = 0
    for path in root.rglob("*.py"):
        files += 1
        with path.open("rb") as handle:
            lines += sum(1 for _ in handle)
    return files, lines


def lint_command(package: Path, *extra: str) -> list[str]:
    return [
        str(BIN / "lockorder-lint"),
        "--format",
        "json",
        "--project-root",
        str(package),
        *extra,
        str(package),
    ]


@dataclass
class Row:
    corpus: str
    select: str
    files: int
    lines: int
    findings: int
    identical: bool
    cold: Measure
    warm: Measure
    serial: Measure
    flake8: Measure
    one_file: Measure
    report: Measure


def bench_corpus(name: str, cache: Path, repeat: int, select: str = DEFAULT_SELECTION) -> Row:
    package = fetch(name, cache)
    chosen = [] if select == DEFAULT_SELECTION else ["--select", select]
    cache_dir = cache / "lint-cache" / (name if not chosen else f"{name}-{select.replace(',', '-')}")
    files, lines = count_files_lines(package)

    def runs(argv: list[str], before: Callable[[], None] | None = None) -> Measure:
        results = []
        for _ in range(repeat):
            if before is not None:
                before()
            results.append(measure(argv, package.parent))
        return median(results)

    cold = runs(lint_command(package, "--no-cache", *chosen))
    serial = runs(lint_command(package, "--no-cache", "--jobs", "1", *chosen))
    shutil.rmtree(cache_dir, ignore_errors=True)
    measure(lint_command(package, "--cache-dir", str(cache_dir), *chosen), package.parent)  # fill the cache
    warm = runs(lint_command(package, "--cache-dir", str(cache_dir), *chosen))
    flake8 = runs([str(BIN / "flake8"), "--select=E9,F63", str(package)])

    changed = package / CORPORA[name][2]
    original = changed.read_bytes()
    counter = iter(range(10**6))

    def touch() -> None:  # a new edit each time, as a pre-commit run would see
        changed.write_bytes(original + f"\n# edit {next(counter)}\n".encode())

    try:
        one_file = runs(
            [str(BIN / "lockorder-lint"), "--project-root", str(package), "--cache-dir", str(cache_dir),
             *chosen, str(changed)],
            before=touch,
        )  # fmt: skip
    finally:
        changed.write_bytes(original)

    with tempfile.TemporaryDirectory() as out:  # the audit report: the cold check plus writing it
        report = runs(
            [str(BIN / "lockorder-lint"), "report", "--no-cache", "--project-root", str(package),
             *chosen, "-o", str(Path(out) / "report.html"), str(package)]
        )  # fmt: skip

    findings = json.loads(cold.stdout or "[]")
    same = json.loads(warm.stdout or "[]") == findings == json.loads(serial.stdout or "[]")
    return Row(name, select, files, lines, len(findings), same, cold, warm, serial, flake8, one_file, report)


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'corpus':<20}{'select':<12}{'files':>6}{'lines':>9}{'finds':>6} {'cold s':>7}{'cpu s':>7}"
        f"{'MB':>6} {'warm s':>7} {'jobs1 s':>8} {'flake8 s':>9} {'f8 cpu':>7} {'cold/f8':>8}"
        f" {'cpu/f8':>7} {'1 file s':>9} {'1f cpu':>7} {'report s':>9} same"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.corpus:<20}{r.select:<12}{r.files:>6}{r.lines:>9}{r.findings:>6} "
            f"{r.cold.wall:>7.2f}{r.cold.cpu:>7.2f}{r.cold.peak_mb:>6.0f} {r.warm.wall:>7.2f} "
            f"{r.serial.wall:>8.2f} {r.flake8.wall:>9.2f} {r.flake8.cpu:>7.2f} "
            f"{r.cold.wall / r.flake8.wall:>8.2f} {r.cold.cpu / r.flake8.cpu:>7.2f} {r.one_file.wall:>9.2f}"
            f" {r.one_file.cpu:>7.2f} {r.report.wall:>9.2f} {r.identical}"
        )


def scale(cache: Path) -> int:
    """One run over every corpus together: no crash, and every unchecked file named with a reason."""
    packages = [fetch(name, cache) for name in CORPORA]
    total_files = sum(count_files_lines(p)[0] for p in packages)
    total_lines = sum(count_files_lines(p)[1] for p in packages)
    argv = [str(BIN / "lockorder-lint"), "--no-cache", "--format", "json", "--project-root", str(cache)]
    start = time.perf_counter()
    proc = subprocess.run([*argv, *map(str, packages)], capture_output=True, text=True)
    wall = time.perf_counter() - start
    findings = json.loads(proc.stdout or "[]")
    errors = [line for line in proc.stderr.splitlines() if ": error: " in line]
    internal = [line for line in errors if "internal error" in line]
    print(f"scale: {len(packages)} corpora, {total_files} files, {total_lines} lines, {wall:.1f} s wall")
    print(
        f"scale: {len(findings)} findings, {len(errors)} files not checked, {len(internal)} internal errors"
    )
    for line in errors:
        print(f"  {line}")
    return 1 if internal or proc.returncode not in (0, 1, 2) else 0


FLAGGED_MODULE_HEAD = """from sqlalchemy import Column, Integer, String, update
from sqlalchemy.orm import DeclarativeBase, Session


class Base(DeclarativeBase):
    pass


class Job(Base):
    __tablename__ = "job"
    id = Column(Integer, primary_key=True)
    owner = Column(String)
    state = Column(String)
"""

FLAGGED_FUNCTION = """

def finish_{index}(session: Session, owner: str) -> None:
    session.execute(update(Job).where(Job.owner == owner).values(state="done"))
"""


def write_flagged_module(root: Path, functions: int) -> Path:
    """A project whose one module holds ``functions`` functions, each with one LCK001."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text('[tool.lockorder-lint]\nhot-tables = ["job"]\n')
    module = root / "jobs.py"
    with module.open("w") as out:
        out.write(FLAGGED_MODULE_HEAD)
        for index in range(functions):
            out.write(FLAGGED_FUNCTION.format(index=index))
    return module


def functions_scale(sizes: list[int], repeat: int) -> int:
    """Check one generated file per size; print seconds and seconds per thousand functions."""
    print(f"{'functions':>10}{'findings':>10}{'wall s':>9}{'cpu s':>8}{'MB':>7}{'wall/1k':>9}{'cpu/1k':>8}")
    failed = 0
    with tempfile.TemporaryDirectory(prefix="lockorder-bench-") as tmp:
        for size in sizes:
            root = Path(tmp) / f"functions-{size}"
            module = write_flagged_module(root, size)
            argv = [str(BIN / "lockorder-lint"), "--no-cache", "--jobs", "1", "--format", "json",
                    "--project-root", str(root), str(module)]  # fmt: skip
            result = min((measure(argv, root) for _ in range(repeat)), key=lambda m: m.cpu)
            findings = len(json.loads(result.stdout or "[]"))
            failed |= findings != size
            print(
                f"{size:>10}{findings:>10}{result.wall:>9.2f}{result.cpu:>8.2f}{result.peak_mb:>7.0f}"
                f"{result.wall / size * 1000:>9.3f}{result.cpu / size * 1000:>8.3f}"
            )
            shutil.rmtree(root)
    return 1 if failed else 0


def sizes_list(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive: {text!r}")
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--corpus", action="append", help="corpus name, or 'all' (default: airflow-core-3.3.2)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is printed")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where wheels are downloaded")
    parser.add_argument(
        "--select", action="append", metavar="CODES",
        help="run the checker with --select CODES (e.g. LCK,LCK005 for the preview rule); one row per "
        f"--select, {DEFAULT_SELECTION!r} for the run without it (the default)",
    )  # fmt: skip
    parser.add_argument("--scale", action="store_true", help="one run over all corpora together")
    parser.add_argument(
        "--functions", type=sizes_list, metavar="N,N,...",
        help="time one generated file per size, each with N flagged functions (linearity)",
    )  # fmt: skip
    args = parser.parse_args()
    compile_checker()
    if args.functions:
        return functions_scale(args.functions, args.repeat)
    if args.scale:
        return scale(args.cache)
    names = args.corpus or ["airflow-core-3.3.2"]
    if "all" in names:
        names = list(CORPORA)
    unknown = [n for n in names if n not in CORPORA]
    if unknown:
        parser.error(f"unknown corpus {unknown[0]!r}; known: {', '.join(CORPORA)}")
    selections = args.select or [DEFAULT_SELECTION]
    rows = [bench_corpus(name, args.cache, args.repeat, select) for name in names for select in selections]
    print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
