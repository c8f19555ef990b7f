"""First calls in fresh processes: what a user's script pays for its first sparse call.

The harness (:mod:`benchmarks.cutest`) builds every matrix in long-lived workers, so
a problem's first call there finds what earlier problems loaded (Numba's kernels,
JAX's caches). Here every measurement is a new process that imports only the
problem's own sif2jax module (:func:`.problems.load_alone`: seconds, where ``import
sif2jax`` takes a minute or two), warms up diffops on a 5-variable chain (imports,
JAX's first compilation; no Numba kernel is loaded by it), then times the first call
of the sparse derivative (detection, coloring, tracing, compiling, running) and the
second call. ``--tree`` repeats it with another source tree of diffops on
``PYTHONPATH`` (a ``git worktree`` of an earlier commit): the trees and problems take
turns, repeat by repeat, so a change of the machine's load falls on all of them.

From the repository root::

    python -m benchmarks.cutest.fresh --problems BDQRTIC,BROYDN7D --repeats 3 \\
        [--tree /tmp/diffops-before] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, sys, time, warnings
import jax
jax.config.update("jax_enable_x64", True)
warnings.filterwarnings("ignore")
import jax.numpy as jnp
import numpy as np
import diffops
from benchmarks.cutest import measure, problems

name, matrix = sys.argv[1], sys.argv[2]
problems.load_alone([name])
(spec,) = problems.discover([name])
built = problems.build(spec, matrix, n_points=1)
x, args = built.points[0]
chain = lambda z: jnp.sum(z[1:] ** 2 * z[:-1])
diffops.hessian_grad_and_value(chain, sparsity="detect")(np.linspace(0.1, 0.5, 5))
d = measure.operator(built)(built.func, "jax", sparsity="detect")
start = time.perf_counter()
d(x, *args)
first = time.perf_counter() - start
start = time.perf_counter()
d(x, *args)
second = time.perf_counter() - start
coloring = d.coloring
print(json.dumps({
    "first_s": first, "second_s": second, "mode": coloring["mode"],
    "colors": coloring["colors"], "n": int(np.size(x)),
    "detect_s": coloring["seconds"]["detect"], "plan_s": coloring["seconds"]["plan"],
    "diffops": diffops.__file__,
}))
"""


def _one(tree: Path, name: str, matrix: str) -> dict[str, Any]:
    """One fresh process: the first and second call of one matrix."""
    env = {**os.environ, "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{REPO}"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, name, matrix],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        tail = done.stderr.strip().splitlines()[-3:]
        msg = f"{name} {matrix} ({tree}) failed: " + " | ".join(tail)
        raise RuntimeError(msg)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if not Path(result["diffops"]).is_relative_to(tree):
        msg = f"{name}: imported diffops from {result['diffops']}, not {tree}"
        raise RuntimeError(msg)
    return result


def _cases(names: Sequence[str]) -> list[tuple[str, str]]:
    """(problem, matrix) pairs: ``NAME`` (every matrix) or ``NAME:matrix``."""
    cases = []
    for item in names:
        name, _, matrix = item.partition(":")
        if matrix:
            cases.append((name, matrix))
            continue
        found = _matrices(name)
        cases += [(name, m) for m in found]
    return cases


def _matrices(name: str) -> tuple[str, ...]:
    """The matrices the harness measures for ``name`` (in a short-lived process)."""
    code = (
        "import jax, sys\n"
        "jax.config.update('jax_enable_x64', True)\n"
        "from benchmarks.cutest import problems\n"
        "problems.load_alone([sys.argv[1]])\n"
        "print(' '.join(problems.discover([sys.argv[1]])[0]['matrices']))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code, name],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return tuple(done.stdout.split())


def main(argv: Sequence[str] | None = None) -> None:
    """Print (and write with ``--out``) first and second calls per tree and matrix."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", required=True, help="NAME or NAME:matrix, ...")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--tree",
        type=Path,
        action="append",
        default=[],
        help="another diffops source tree to time as well (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    trees = [REPO, *(t.resolve() for t in args.tree)]
    cases = _cases([p for p in args.problems.split(",") if p])
    runs: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for repeat in range(args.repeats):
        for name, matrix in cases:
            for tree in trees if repeat % 2 == 0 else trees[::-1]:
                result = _one(tree, name, matrix)
                runs.setdefault((str(tree), name, matrix), []).append(result)
                print(
                    f"[{repeat + 1}/{args.repeats}] {name} {matrix} {tree.name}: "
                    f"first {result['first_s']:.3f} s",
                    file=sys.stderr,
                    flush=True,
                )
    rows = []
    header = (
        f"{'tree':<20} {'problem':<12} {'matrix':<10} {'mode':<12} {'colors':>6} "
        f"{'first s (median, min-max)':>26} {'detect s':>8} {'plan s':>7} "
        f"{'second s':>8}"
    )
    print(header)
    for (tree, name, matrix), results in runs.items():
        firsts = [r["first_s"] for r in results]
        row = {
            "tree": tree,
            "problem": name,
            "matrix": matrix,
            "mode": results[0]["mode"],
            "colors": results[0]["colors"],
            "n": results[0]["n"],
            "first_s": firsts,
            "detect_s": [r["detect_s"] for r in results],
            "plan_s": [r["plan_s"] for r in results],
            "second_s": [r["second_s"] for r in results],
        }
        rows.append(row)
        print(
            f"{Path(tree).name:<20} {name:<12} {matrix:<10} {row['mode']:<12} "
            f"{row['colors']:>6} {statistics.median(firsts):>10.3f} "
            f"({min(firsts):.3f}-{max(firsts):.3f}) "
            f"{statistics.median(row['detect_s']):>8.3f} "
            f"{statistics.median(row['plan_s']):>7.3f} "
            f"{statistics.median(row['second_s']):>8.4f}"
        )
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "fresh.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
