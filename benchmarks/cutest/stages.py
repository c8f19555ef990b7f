"""Detection and coloring, diffops against asdex, in one process with one JAX.

The harness times diffops' detection and coloring in its own run and asdex's in
another (``asdex_side.py --pattern-only``), hours apart and, on the full set, with two
workers sharing the two cores: a matrix that detects in 0.06 s alone was logged at
0.8 s there. Here one process (the asdex environment's interpreter, Python 3.12 and
JAX 0.11, with diffops imported from ``src``) builds each selected matrix once and
times both libraries' detection + coloring of it in turn, ``--rounds`` times,
alternating which goes first; per side it keeps the fastest round. Building the
matrix evaluates the function, and the rounds find JAX's caches of its inner
``jit`` functions warm: what is timed is the libraries' own tracing and analysis.
asdex traces the function itself, diffops its JVP (or, for a Hessian, the JVP of its
gradient), which JAX's caches serve less: on small problems with hundreds of
``jax.numpy`` calls that tracing is most of diffops' time.

Before timing, both sides are warmed up once (``measure.warm_up``,
``asdex_side.warm_up``): asdex's Numba coloring kernels are compiled, diffops' are
loaded from Numba's cache (and waited for). A process's first sparse derivative
runs diffops' kernels as Python instead, while a thread loads them
(``diffops.sparse.kernels``); without the warm-up every round here did, as no round
ends a first call (until 2026-12-05 this run measured that cold path: OPTCTRL3's
Jacobian 26 ms, 17 ms of it the greedy coloring as Python).

What is timed: diffops' ``SparseCaller.structure`` (detection, as in the first call
of ``hessian_grad_and_value`` / ``jacobian_and_value`` with ``sparsity="detect"``)
and ``SparseCaller.plan`` (coloring, seeds and decompression indices); asdex's
``hessian_sparsity`` / ``jacobian_sparsity`` and ``hessian_coloring_from_sparsity`` /
``jacobian_coloring_from_sparsity`` (its defaults).

From the repository root::

    PYTHONPATH=src /work/venv-asdex/bin/python -m benchmarks.cutest.stages \\
        [--problems SPIN,INTEQNELS] [--rounds 3] [--timeout 300] [--out DIR]

A matrix whose rounds take longer than ``--timeout`` seconds is interrupted and
written as an error row (asdex ran out of memory on NONCVXU2 and NONCVXUN for many
minutes); the interruption reaches Python code only, at its next instruction.

It writes ``stages.csv`` in ``--out`` and prints the medians of the ratios
diffops / asdex (all matrices, and those with n >= 1000) and the matrices where
diffops is slower by more than 10 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import signal
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import adapter, asdex_side, problems
from . import measure as harness

COLUMNS = [
    "problem",
    "matrix",
    "n",
    "nnz",
    "asdex_nnz",
    "colors",
    "asdex_colors",
    "diffops_s",
    "asdex_s",
    "ratio",
]


def _diffops(built: problems.Matrix) -> Callable[[], tuple[int, int]]:
    """diffops' detection + coloring of ``built``: returns ``(nnz, colors)``."""
    import diffops

    hessian = built.derivative == "hessian"
    make = diffops.hessian_grad_and_value if hessian else diffops.jacobian_and_value
    x, args = built.points[0]

    def run() -> tuple[int, int]:
        d = make(built.func, backend="jax", sparsity="detect")
        return adapter.detect_and_color(d, x, args)

    return run


def _asdex(built: problems.Matrix) -> Callable[[], tuple[int, int]]:
    """asdex's detection + coloring of ``built``: returns ``(nnz, colors)``."""
    import asdex

    hessian = built.derivative == "hessian"
    detect = asdex.hessian_sparsity if hessian else asdex.jacobian_sparsity
    color = (
        asdex.hessian_coloring_from_sparsity
        if hessian
        else asdex.jacobian_coloring_from_sparsity
    )
    x, args = built.points[0]

    def run() -> tuple[int, int]:
        pattern = detect(built.func, x, *args)
        return int(pattern.nnz), int(color(pattern).num_colors)

    return run


class Timeout(BaseException):
    """A matrix took longer than ``--timeout``.

    A ``BaseException``, like ``KeyboardInterrupt``: diffops' detection takes the
    conservative rule where a rule raises an ``Exception``, which would swallow it.
    """


@contextlib.contextmanager
def _limit(seconds: float) -> Any:
    """Raise :class:`Timeout` in this (main) thread after ``seconds`` (0: never)."""

    def expire(signum: int, frame: Any) -> None:
        raise Timeout(f"more than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def measure(spec: dict[str, Any], matrix: str, rounds: int) -> dict[str, Any]:
    """Both sides' detection + coloring of one matrix, ``rounds`` times in turn."""
    built = problems.build(spec, matrix, 1)
    sides = {"diffops": _diffops(built), "asdex": _asdex(built)}
    times: dict[str, list[float]] = {"diffops": [], "asdex": []}
    found: dict[str, tuple[int, int]] = {}
    for r in range(rounds):
        order = ["diffops", "asdex"] if r % 2 == 0 else ["asdex", "diffops"]
        for side in order:
            start = time.perf_counter()
            found[side] = sides[side]()
            times[side].append(time.perf_counter() - start)
    best = {side: min(t) for side, t in times.items()}
    return {
        "problem": spec["name"],
        "matrix": matrix,
        "n": spec["n"],
        "nnz": found["diffops"][0],
        "asdex_nnz": found["asdex"][0],
        "colors": found["diffops"][1],
        "asdex_colors": found["asdex"][1],
        "diffops_s": best["diffops"],
        "asdex_s": best["asdex"],
        "ratio": best["diffops"] / best["asdex"],
    }


def summarise(rows: Sequence[dict[str, Any]]) -> str:
    """Medians of the ratios and the matrices where diffops is clearly slower."""
    done = [r for r in rows if "ratio" in r]
    missing = len(rows) - len(done)
    lines = [f"{len(done)} matrices ({missing} failed on either side or timed out)"]
    large = [r for r in done if r["n"] >= 1000]
    for title, keep in (("all", done), ("n >= 1000", large)):
        if keep:
            ratios = [r["ratio"] for r in keep]
            slower = sum(x > 1 for x in ratios)
            lines.append(
                f"{title}: {len(keep)} matrices, detect + color diffops / asdex: "
                f"median {statistics.median(ratios):.2f}x, {slower} above 1x"
            )
    behind = [r for r in done if r["diffops_s"] - r["asdex_s"] > 0.01]
    behind.sort(key=lambda r: r["asdex_s"] - r["diffops_s"])
    for r in behind:
        lines.append(
            f"  {r['problem']} {r['matrix']} (n={r['n']}): {r['diffops_s']:.3f} s "
            f"against {r['asdex_s']:.3f} s ({r['ratio']:.2f}x)"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, write ``stages.csv``, print the summary. Exit status 0."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cutest.stages",
        description="diffops and asdex detection + coloring in one process, in turn",
    )
    parser.add_argument("--problems", help="comma-separated names (default: all)")
    parser.add_argument("--max-n", type=int, default=problems.DEFAULT_MAX_N)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds per matrix (0: none)"
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results/cutest"))
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    problems.setup()
    names = args.problems.split(",") if args.problems else None
    if names:
        problems.load_alone(names)
    specs = problems.discover(names, max_n=args.max_n or None)
    specs = [s for s in specs if s["category"] != "unknown"]
    specs.sort(key=lambda s: (s["n"], s["name"]))
    tasks = [(s, m) for s in specs for m in s["matrices"]]
    harness.warm_up()
    adapter.kernels_loaded()
    asdex_side.warm_up()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    with open(args.out / "stages.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, [*COLUMNS, "error"])
        writer.writeheader()
        for k, (spec, matrix) in enumerate(tasks, 1):
            try:
                with _limit(args.timeout):
                    row = measure(spec, matrix, args.rounds)
            except (Exception, Timeout) as err:  # a row, not the end
                row = {"problem": spec["name"], "matrix": matrix, "n": spec["n"]}
                row["error"] = f"{type(err).__name__}: {err}"[:300]
            rows.append(row)
            writer.writerow(row)
            file.flush()
            if k % 50 == 0 or k == len(tasks):
                print(f"{k}/{len(tasks)} matrices", file=sys.stderr, flush=True)
    print(summarise(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
