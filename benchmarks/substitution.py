"""Sparse Hessians: star coloring (direct) against acyclic coloring (substitution).

For each case: colors of both, the per-call time of the sparse
``hessian_grad_and_value`` with ``coloring="star"`` and ``coloring="acyclic"``
(medians of interleaved batches, :func:`benchmarks.cutest.clock.per_call`), the time
of the substitution step alone (``Plan.finish`` in NumPy), and what ``"auto"``
chooses. Run it under the timing lock::

    flock /tmp/diffops-timing.lock .venv/bin/python -m benchmarks.substitution

``--cutest`` adds sif2jax problems (importing sif2jax takes about a minute).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import diffops
from benchmarks.cutest.clock import per_call

CUTEST = (
    "BROYDN3DLS[n=5000]",
    "BDQRTIC[n=5000]",
    "NONDQUAR[n=5000]",
    "CRAGGLVY",
    "FREUROTH",
)


def _jax_cases() -> dict[str, tuple[Callable[..., Any], np.ndarray]]:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    def chained(x: Any) -> Any:  # tridiagonal Hessian
        return jnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)

    def grid(x: Any) -> Any:  # 5-point Laplacian-like, k x k
        k = round(x.size**0.5)
        y = x.reshape(k, k)
        smooth = jnp.sum((y[1:] - y[:-1]) ** 2) + jnp.sum((y[:, 1:] - y[:, :-1]) ** 2)
        return smooth + jnp.sum(jnp.exp(0.1 * y) + y**4)

    def band3(x: Any) -> Any:  # a full band of half-width 3
        pairs = jnp.sum((x[:-2] * x[2:]) ** 2) + jnp.sum((x[:-3] * x[3:]) ** 2)
        return jnp.sum(jnp.cos(x[1:] - x[:-1])) + pairs + jnp.sum(x**4)

    rng = np.random.default_rng(0)
    pairs = rng.integers(0, 20000, size=(2, 60000))

    def random_pairs(x: Any) -> Any:  # a random graph, average degree 6
        return jnp.sum(jnp.sin(x[pairs[0]] * x[pairs[1]])) + jnp.sum(x**4)

    return {
        "tridiagonal n=2000": (chained, rng.standard_normal(2000)),
        "tridiagonal n=20000": (chained, rng.standard_normal(20000)),
        "band b=3 n=2000": (band3, rng.standard_normal(2000)),
        "band b=3 n=20000": (band3, rng.standard_normal(20000)),
        "grid 100x100": (grid, rng.standard_normal(10000)),
        "grid 300x300": (grid, rng.standard_normal(90000)),
        "random pairs n=20000": (random_pairs, rng.standard_normal(20000)),
    }


def _cutest_cases(names: Sequence[str]) -> dict[str, tuple[Callable[..., Any], Any]]:
    from benchmarks.cutest import problems

    problems.setup()
    cases = {}
    for name in names:
        try:
            (spec,) = problems.discover([name])
        except Exception as err:  # a size the problem does not take
            print(f"({name}: {err})")
            continue
        if spec["category"] == "unknown":
            print(f"(no sif2jax problem {spec['name']})")
            continue
        matrix = problems.build(spec, "hessian", n_points=1)
        x, _args = matrix.points[0]
        label = f"{spec['name']} n={spec['n']}"
        cases[label] = (matrix.func, x)
    return cases


def measure(label: str, func: Callable[..., Any], x: np.ndarray) -> dict[str, Any]:
    """Colors and per-call seconds of the star and acyclic plans of one case."""
    built = {
        coloring: diffops.hessian_grad_and_value(
            func, sparsity="detect", coloring=coloring
        )
        for coloring in ("star", "acyclic", "auto")
    }
    first = {}
    results = {}
    for coloring, derivative in built.items():
        start = time.perf_counter()
        results[coloring] = derivative(x)
        first[coloring] = time.perf_counter() - start
    star, acyclic = results["star"][0], results["acyclic"][0]
    scale = float(np.abs(star.data).max()) if star.nnz else 1.0
    error = float(np.abs(star.data - acyclic.data).max() / scale)  # same pattern
    times = per_call(
        {c: (lambda d=built[c]: d(x)) for c in ("star", "acyclic")}, rounds=9
    )
    plan = built["acyclic"].sparse.last
    gathered = np.zeros(plan.index.size)
    finish = per_call({"finish": lambda: plan.finish(gathered)}, rounds=9)["finish"]
    return {
        "case": label,
        "nnz": star.nnz,
        "star": built["star"].coloring["colors"],
        "acyclic": built["acyclic"].coloring["colors"],
        "star_ms": 1e3 * times["star"],
        "acyclic_ms": 1e3 * times["acyclic"],
        "finish_ms": 1e3 * finish,
        "auto": built["auto"].coloring["mode"],
        "max_rel_diff": error,
        "first_s": first["acyclic"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cutest", action="store_true", help="add sif2jax problems")
    parser.add_argument("--only", default="", help="comma-separated case labels")
    args = parser.parse_args(argv)
    cases = _jax_cases()
    if args.cutest:
        cases.update(_cutest_cases(CUTEST))
    only = [s for s in args.only.split(",") if s]
    header = (
        "| case | nnz | colors star / acyclic | per call star (ms) | per call "
        "acyclic (ms) | substitution alone (ms) | ratio | auto | max rel diff |"
    )
    print(header)
    print("|" + "---|" * 9)
    for label, (func, x) in cases.items():
        if only and label not in only:
            continue
        r = measure(label, func, x)
        print(
            f"| {r['case']} | {r['nnz']} | {r['star']} / {r['acyclic']} | "
            f"{r['star_ms']:.3f} | {r['acyclic_ms']:.3f} | {r['finish_ms']:.3f} | "
            f"{r['acyclic_ms'] / r['star_ms']:.2f} | {r['auto']} | "
            f"{r['max_rel_diff']:.1e} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
