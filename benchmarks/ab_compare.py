"""Per-call A/B of two source trees of diffops, side by side in one sitting.

Usage (from the repository root)::

    git worktree add /tmp/diffops-before <commit>
    python -m benchmarks.ab_compare /tmp/diffops-before . --rounds 8

Worker processes (three per tree; the rounds take turns among them) build every
operator (and every product closure) of the example models banana, torus and logistic
and of the benchmark's tall 3 -> 300 and wide 300 -> 3 functions on the chosen
backends. The trees are timed in turn, case by case (the idle worker waits on its
pipe, so a change of load hits both alike); per case the result is the fastest batch
over rounds and processes: on this shared machine a jitted JAX program's batches vary
up to fivefold from one to the next, and its best from one process to the next by up
to 1.8x (an A/A run, one tree against itself, with one process per tree). Prints the
after/before ratios (median, deciles, per backend, and every case outside
``--show``), and writes them to ``--out`` as JSON.

``--calls`` counts the Python function calls of one evaluation per case instead
(with :mod:`cProfile`): deterministic where timings are not.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

WORKER = r"""
import json, sys, time
import numpy as np
import diffops
from diffops import models
from benchmarks.diffops_bench.cases import tall_model, wide_model

BACKENDS = sys.argv[1].split(",")
MODELS = {"banana": models.MODELS["banana"], "torus": models.MODELS["torus"],
          "logistic": models.MODELS["logistic"], "tall": tall_model(),
          "wide": wide_model()}
cases = {}
rng = np.random.default_rng(0)
for mname, model in MODELS.items():
    x = model.sample(rng, model.shape)
    for backend in BACKENDS:
        if backend in model.skip or (
            backend == "symnum" and mname in ("tall", "wide", "logistic")
        ):
            continue
        func, options = model.function(backend)
        for op in models.applicable_ops(model):
            try:
                d = getattr(diffops, op)(func, backend=backend, **options)
                out = d(x)
            except Exception:
                continue
            cases[f"{mname}/{backend}/{op}"] = (d, x)
            if callable(out[0]):
                closure = out[0]
                arg = np.ones(getattr(closure, "arg_shape", None) or np.shape(x))
                try:
                    closure(arg)
                except Exception:
                    continue
                cases[f"{mname}/{backend}/{op} closure"] = (closure, arg)
print(json.dumps(sorted(cases)), flush=True)
for line in sys.stdin:
    name, target = line.split("\t")
    f, a = cases[name]
    if target.strip() == "calls":  # Python function calls in one evaluation
        import cProfile, pstats
        f(a)
        profile = cProfile.Profile()
        profile.runcall(f, a)
        calls = sum(v[1] for v in pstats.Stats(profile).stats.values())
        print(json.dumps(calls), flush=True)
        continue
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            f(a)
        if time.perf_counter() - start > float(target) / 5:
            break
        n *= 2
    batches = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            f(a)
        batches.append((time.perf_counter() - start) / n)
    print(json.dumps(min(batches) * 1e6), flush=True)
"""

SINGLE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}


def _start(root: Path, backends: str) -> tuple[subprocess.Popen[str], set[str]]:
    """A worker importing diffops from ``root/src``; its case names."""
    env = {**os.environ, **SINGLE_THREAD, "PYTHONPATH": f"{root}/src{os.pathsep}{root}"}
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, backends],
        cwd=root,
        env=env,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert worker.stdout is not None
    return worker, set(json.loads(worker.stdout.readline()))


def _time(worker: subprocess.Popen[str], name: str, batch_s: float | str) -> float:
    assert worker.stdin is not None
    assert worker.stdout is not None
    worker.stdin.write(f"{name}\t{batch_s}\n")
    worker.stdin.flush()
    return float(json.loads(worker.stdout.readline()))


def count_calls(
    before: Path, after: Path, backends: str, only: tuple[str, ...] = ()
) -> dict[str, dict[str, float]]:
    """Python function calls of one evaluation per case, for each tree.

    Deterministic where timings are not: a case that makes no more calls and runs
    the same compiled program (or none) is not slower, whatever one run's timings.
    """
    workers = {"before": _start(before, backends), "after": _start(after, backends)}
    names = sorted(workers["before"][1] & workers["after"][1])
    names = [n for n in names if not only or any(part in n for part in only)]
    counts = {
        tree: {name: _time(worker, name, "calls") for name in names}
        for tree, (worker, _) in workers.items()
    }
    for worker, _ in workers.values():
        worker.kill()
    return counts


def compare(
    before: Path,
    after: Path,
    backends: str,
    rounds: int,
    batch_s: float,
    processes: int = 3,
    only: tuple[str, ...] = (),
) -> dict[str, dict[str, float]]:
    """Best time per case (µs) for each tree, interleaved case by case.

    Args:
        before: Root of the first tree (with ``src/diffops`` and ``benchmarks``).
        after: Root of the second tree.
        backends: Comma-separated backend names.
        rounds: Rounds over every case.
        batch_s: Seconds of one timed batch times five.
        processes: Worker processes per tree; the rounds take turns among them.
        only: Time only the cases whose names contain one of these (all if empty).

    Returns:
        ``{"before": {case: µs}, "after": {case: µs}}``.
    """
    roots = {"before": before, "after": after}
    workers = {tree: [_start(root, backends)] for tree, root in roots.items()}
    names = sorted(workers["before"][0][1] & workers["after"][0][1])
    names = [n for n in names if not only or any(part in n for part in only)]
    best = {tree: dict.fromkeys(names, float("inf")) for tree in workers}
    for r in range(rounds):
        # Round r runs in process r % processes of each tree (started when first
        # needed): how fast a compiled program runs differs from process to process
        # (an A/A run of one tree against itself gave jax ratios up to 1.8 with one
        # process per tree), so every case's best is taken over several processes.
        p = r % processes
        for tree, root in roots.items():
            if p == len(workers[tree]):
                workers[tree].append(_start(root, backends))
        for i, name in enumerate(names):
            order = ["before", "after"] if (r + i) % 2 == 0 else ["after", "before"]
            for tree in order:
                seconds = _time(workers[tree][p][0], name, batch_s)
                best[tree][name] = min(best[tree][name], seconds)
        load = os.getloadavg()[0]
        print(f"round {r + 1}/{rounds} {time.strftime('%T')} load {load:.2f}")
    for started in workers.values():
        for worker, _ in started:
            worker.kill()
    return best


def report(best: dict[str, dict[str, float]], show: float) -> None:
    """Print the after/before ratios: overall, per backend, and the outliers."""
    ratios = {n: best["after"][n] / best["before"][n] for n in best["before"]}

    def line(label: str, values: list[float]) -> str:
        v = sorted(values)
        return (
            f"{label:10s} n={len(v):3d} median {statistics.median(v):.3f} "
            f"p10 {v[len(v) // 10]:.3f} p90 {v[9 * len(v) // 10]:.3f}"
        )

    print(line("all", list(ratios.values())))
    for backend in sorted({n.split("/")[1] for n in ratios}):
        print(
            line(backend, [r for n, r in ratios.items() if n.split("/")[1] == backend])
        )
    for name in sorted(ratios, key=ratios.__getitem__):
        if not 1 / show <= ratios[name] <= show:
            before, after = best["before"][name], best["after"][name]
            print(f"  {ratios[name]:6.3f} {before:10.1f} {after:10.1f}  {name}")


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m benchmarks.ab_compare BEFORE AFTER``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", type=Path, help="root of the first tree")
    parser.add_argument("after", type=Path, help="root of the second tree")
    parser.add_argument("--backends", default="jax,jax_nojit,autograd,symnum,torch")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument(
        "--calls",
        action="store_true",
        help="count Python function calls per evaluation instead of timing",
    )
    parser.add_argument(
        "--only", default="", help="comma-separated parts of case names to time"
    )
    parser.add_argument("--batch-ms", type=float, default=30.0)
    parser.add_argument("--show", type=float, default=1.15, help="list ratios beyond")
    parser.add_argument("--out", type=Path, default=Path("bench-results/ab.json"))
    args = parser.parse_args(argv)
    only = tuple(p for p in args.only.split(",") if p)
    before, after = args.before.resolve(), args.after.resolve()
    if args.calls:
        best = count_calls(before, after, args.backends, only)
    else:
        best = compare(
            before,
            after,
            args.backends,
            args.rounds,
            args.batch_ms / 1e3,
            args.processes,
            only,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(best, indent=1))
    report(best, args.show)


if __name__ == "__main__":
    main()
