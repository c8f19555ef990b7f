"""Options, the worker pool and the rows as they arrive: shared by both harnesses.

Standard library only (``rich`` draws the progress bar when installed and stderr is a
terminal; otherwise one plain line per finished task goes to stderr). Every finished
row is appended to the CSV and to ``run.log`` at once, so a long run can be watched
(``tail -f``) and resumed (``--resume``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from . import problems, rows
from .pool import Outcome, Pool, Task

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "bench-results" / "cutest"
DEFAULT_TIMEOUT = 240.0
DISCOVERY_TIMEOUT = 900.0
SAFE_STAGES = frozenset(
    ["sparse: detect", "sparse: color", "per call", "detect", "color", "points"]
)
"""Stages (of both harnesses) that compile nothing: a worker whose task timed out
there is kept; after a timeout anywhere else it is replaced (see ``pool.py``)."""


def _recycle(outcome: Outcome) -> bool:
    stage = (outcome.partial or {}).get("stage")
    return stage not in SAFE_STAGES


def add_options(parser: argparse.ArgumentParser) -> None:
    """The options both harnesses take (selection, points, timeouts, output)."""
    parser.add_argument(
        "--problems",
        default=None,
        help="comma-separated CUTEst names, a size in brackets: "
        "ARWHEAD,ARGLINA[n=50,m=100] (default: every sif2jax problem)",
    )
    parser.add_argument(
        "--max-n",
        type=int,
        default=problems.DEFAULT_MAX_N,
        help="keep problems with at most this many variables at their default size "
        "(default %(default)s; 0: no cap; not applied to --problems or --quick)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"the CI subset: {', '.join(problems.QUICK)} (some at smaller sizes)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="worker processes (default 1; more than 1 makes timings compete for "
        "the cores: use with --no-timing)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="seconds per problem and matrix (default %(default)g)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=30.0,
        help="seconds after --timeout before a worker stuck outside Python is "
        "killed and replaced (default %(default)g)",
    )
    parser.add_argument(
        "--points",
        type=int,
        default=3,
        help="random points per matrix (default %(default)s)",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=0.1,
        help="points are x0 + SCALE * N(0, 1) (default %(default)g)",
    )
    parser.add_argument("--seed", type=int, default=0, help="default %(default)s")
    parser.add_argument(
        "--rtol",
        type=float,
        default=1e-10,
        help="largest accepted max|sparse - dense| / max|dense| (default %(default)g)",
    )
    parser.add_argument(
        "--no-timing",
        action="store_true",
        help="skip the per-call timings (correctness and first calls only)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="output directory (default bench-results/cutest/, git-ignored)",
    )
    parser.add_argument(
        "--lock",
        default=None,
        metavar="FILE",
        help="hold this file's flock while measuring each matrix (the lock "
        "`flock FILE cmd` takes), so other timing jobs can run between matrices",
    )
    parser.add_argument(
        "--memory-gb",
        type=float,
        default=8.0,
        help="memory limit per worker (RLIMIT_DATA; default %(default)g GB; 0: none): "
        "a matrix that needs more fails instead of exhausting the machine",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the rows already in the output CSV and measure only the others",
    )


def _selection(args: argparse.Namespace) -> dict[str, Any]:
    names = [n.strip() for n in _split(args.problems)] if args.problems else None
    return {
        "names": names,
        "max_n": args.max_n or None,
        "quick": args.quick,
    }


def _split(text: str) -> list[str]:
    """Split on commas outside brackets: ``A,B[n=5,m=2]`` → ``[A, B[n=5,m=2]]``."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in parts if p.strip()]


class _Progress:
    """A rich progress bar on a terminal, plain lines otherwise."""

    def __init__(self, total: int, title: str, stream: TextIO):
        self.total, self.done, self.stream = total, 0, stream
        self.bar: Any = None
        if stream.isatty():
            try:
                from rich.console import Console
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TextColumn,
                    TimeElapsedColumn,
                )
            except ImportError:
                pass
            else:
                self.bar = Progress(
                    TextColumn(title),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    TextColumn("{task.description}"),
                    console=Console(file=stream),
                )
                self.bar.start()
                self.task = self.bar.add_task("", total=total)

    def advance(self, line: str) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=line[:60])
            if not line.endswith(" ok"):
                self.bar.console.print(line, markup=False, highlight=False)
        else:
            print(f"[{self.done}/{self.total}] {line}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def outcome_row(outcome: Outcome) -> dict[str, Any]:
    """The CSV row of a finished task, whatever became of it."""
    spec, matrix = outcome.task.kwargs["spec"], outcome.task.kwargs["matrix"]
    row = dict(outcome.result or outcome.partial or rows.new_row(spec, matrix))
    if outcome.status != "done" and row.get("stage") in ("start", "points"):
        # Choosing the points (the problem's own function) failed, not the tool.
        row.update(status="problem_error", error=outcome.error.strip().splitlines()[-1])
    elif outcome.status in ("timeout", "killed"):
        row.update(status="timeout", error=outcome.error)
    elif outcome.status in ("error", "crashed"):
        row.update(status="error", error=outcome.error.strip().splitlines()[-1])
    row["seconds"] = outcome.seconds
    return row


def commit() -> str:
    """The repository's commit (short hash), marked if ``src`` has changes."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", "-C", str(REPO_ROOT), *args],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "?"

    dirty = " (uncommitted changes)" if git("status", "--porcelain", "src") else ""
    return git("rev-parse", "--short", "HEAD") + dirty


def run(
    args: argparse.Namespace,
    target: str,
    csv_path: Path,
    title: str,
    extra: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Discover the problems, measure every matrix in the pool, write rows as they come.

    Args:
        args: Parsed options (:func:`add_options`).
        target: ``"module:function"`` measuring one matrix.
        csv_path: The CSV to write (appended to with ``--resume``).
        title: Name shown in the progress and log.
        extra: More keyword arguments for ``target``.

    Returns:
        Every row of the CSV (earlier rows too with ``--resume``).
    """
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    log_path = csv_path.with_suffix(".log")
    stream = sys.stderr
    print(
        f"{title}: rows in {csv_path}, log in {log_path} (tail -f it)",
        file=stream,
        flush=True,
    )
    done: dict[tuple[str, str, str], dict[str, Any]] = {}
    if args.resume and csv_path.exists():
        done = {rows.key(r): r for r in rows.read(csv_path)}
    columns = list(rows.COLUMNS)
    writer = rows.Writer(csv_path, columns, append=args.resume)
    pool = Pool(
        jobs=args.jobs,
        setup="benchmarks.cutest.problems:setup",
        grace=args.grace,
        lock=args.lock,
        memory_gb=args.memory_gb or None,
        recycle=_recycle,
    )
    with log_path.open("a") as log, pool:
        _log(
            log,
            f"=== {title} {time.strftime('%Y-%m-%d %H:%M:%S')} commit {commit()} "
            f"{vars(args)}",
        )
        start = time.monotonic()
        (found,) = pool.run(
            [
                Task(
                    "discover",
                    "benchmarks.cutest.problems:discover_task",
                    _selection(args),
                    DISCOVERY_TIMEOUT,
                )
            ]
        )
        if found.status != "done":
            msg = f"problem discovery failed: {found.error}"
            raise RuntimeError(msg)
        specs = found.result
        took = time.monotonic() - start
        _log(log, f"discovered {len(specs)} problems in {took:.0f} s")
        tasks, rows_out = [], list(done.values())
        for spec in sorted(specs, key=lambda s: (s["n"], s["name"], s["params"])):
            if spec["category"] == "unknown":
                row = rows.new_row(spec, "-")
                row.update(status="problem_error", error="no such sif2jax problem")
                rows_out.append(row)
                writer.write(row)
                continue
            for matrix in spec["matrices"]:
                if (spec["name"], spec["params"], matrix) in done:
                    continue
                kwargs = {
                    "spec": spec,
                    "matrix": matrix,
                    "n_points": args.points,
                    "scale": args.scale,
                    "seed": args.seed,
                    "rtol": args.rtol,
                    "timing": not args.no_timing,
                    **(extra or {}),
                }
                tasks.append(Task((spec["name"], matrix), target, kwargs, args.timeout))
        print(
            f"{title}: {len(specs)} problems, {len(tasks)} matrices to measure "
            f"({len(done)} already done)",
            file=stream,
            flush=True,
        )
        progress = _Progress(len(tasks), title, stream)
        try:
            for outcome in pool.run(tasks):
                row = outcome_row(outcome)
                writer.write(row)
                rows_out.append(row)
                line = _line(row)
                _log(log, line)
                progress.advance(line)
        finally:
            progress.close()
            writer.close()
    return rows_out


def _line(row: dict[str, Any]) -> str:
    what = f"{rows.label(row)} {row['matrix']} n={row['n']}"
    detail = ""
    if row["status"] not in ("ok",):
        detail = f" [{row.get('stage')}] {row.get('error') or ''}"
        if row.get("misses"):
            detail += f" misses={row['misses']} e.g. {row.get('miss_examples')}"
        if row.get("max_rel_error"):
            detail += f" rel.err={row['max_rel_error']:.2g}"
    colors = f" colors={row['colors']}" if row.get("colors") is not None else ""
    return f"{what}{colors} {row.get('seconds', 0):.1f}s {row['status']}{detail}"


def _log(log: TextIO, line: str) -> None:
    log.write(line + "\n")
    log.flush()


def exit_status(
    all_rows: list[dict[str, Any]], allow_timeouts: bool
) -> tuple[int, dict[str, int]]:
    """1 if any row missed a non-zero, was wrong or raised (or timed out, unless
    allowed); also the count per status."""
    counts: dict[str, int] = {}
    for row in all_rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    failing = sum(counts.get(s, 0) for s in rows.FAILING)
    if not allow_timeouts:
        failing += counts.get("timeout", 0)
    return (1 if failing else 0), counts


def selection_label(args: argparse.Namespace) -> str:
    """How the problems were chosen, for the report."""
    if args.quick:
        return "--quick"
    if args.problems:
        return f"--problems {args.problems}"
    return f"every sif2jax problem with n <= {args.max_n or 'any'}"
