"""asdex on the same problems and points, for the side-by-side table.

Runs in its own virtual environment (asdex 0.5.2 needs Python >= 3.12; asdex is never
a dependency of diffops), from the repository root::

    PYTHONPATH=src /work/venv-asdex/bin/python -m benchmarks.cutest.asdex_side --out DIR

(``PYTHONPATH=src``: the harness times warm calls with ``diffops.timing``, which needs
only NumPy.)

It writes ``DIR/asdex.csv`` with the columns of the diffops harness (see
``rows.COLUMNS``); ``python -m benchmarks.cutest --asdex DIR/asdex.csv`` merges it.
Per matrix: ``asdex.hessian_sparsity`` / ``jacobian_sparsity`` (detection),
``hessian_coloring_from_sparsity`` / ``jacobian_coloring_from_sparsity`` (coloring,
asdex's defaults: star coloring for Hessians, the fewer of row and column colorings
for Jacobians), then ``jax.jit`` of ``value_and_hessian_from_coloring`` /
``value_and_jacobian_from_coloring`` (BCOO output): its first call and its warm
calls (outputs blocked until ready). ``first_s`` is detection + coloring + the
first call, like diffops' first call, which does all three. The result is compared
with ``jax.hessian`` / ``jax.jacfwd`` (jitted) at the same points as diffops'.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

import numpy as np

from . import clock, compare, problems, rows, runner
from .measure import describe


def _block(tree: Any) -> Any:
    import jax

    return jax.block_until_ready(tree)


def _dense_matrix(matrix: Any, shape: tuple[int, int]) -> tuple[Any, Any]:
    """Structure and values of an asdex result (BCOO, or dense)."""
    from jax.experimental import sparse

    if isinstance(matrix, sparse.BCOO):
        indices = np.asarray(matrix.indices)
        pattern = np.zeros(shape, dtype=bool)
        pattern[indices[:, 0], indices[:, 1]] = True
        return pattern, np.asarray(matrix.todense()).reshape(shape)
    return np.ones(shape, dtype=bool), np.asarray(matrix).reshape(shape)


_WARM = False


def warm_up() -> None:
    """Once per worker, untimed: asdex's whole path on a 5-variable chain, so one-time
    costs (imports, Numba compiling the coloring kernels, JAX's first compilation) do
    not land on the first problem measured."""
    global _WARM
    if _WARM:
        return
    import asdex
    import jax
    import jax.numpy as jnp

    def chain(x: Any) -> Any:
        return jnp.sum(x[1:] ** 2 * x[:-1])

    def pairs(x: Any) -> Any:
        return x[1:] * x[:-1]

    x = np.linspace(1.0, 2.0, 5)
    hessian = asdex.hessian_coloring_from_sparsity(asdex.hessian_sparsity(chain, x))
    _block(jax.jit(asdex.value_and_hessian_from_coloring(chain, hessian))(x))
    pattern = asdex.jacobian_sparsity(pairs, x)
    for mode in ("fwd", "rev"):
        asdex.jacobian_coloring_from_sparsity(pattern, mode=mode)
    jacobian = asdex.jacobian_coloring_from_sparsity(pattern)
    _block(jax.jit(asdex.value_and_jacobian_from_coloring(pairs, jacobian))(x))
    _WARM = True


def measure(
    spec: dict[str, Any],
    matrix: str,
    n_points: int,
    scale: float,
    seed: int,
    rtol: float,
    timing: bool,
    report: Callable[..., None],
    pattern_only: bool = False,
) -> dict[str, Any]:
    """Measure one matrix with asdex; returns its row (same arguments as diffops').

    With ``pattern_only`` only detection and coloring run (``nnz``, ``colors``,
    ``mode``, their times; status ``pattern``): no compiling, no comparison, so the
    whole CUTEst set takes minutes. Compared with diffops' validated rows, it shows
    where asdex finds fewer entries or colors (a diffops row with no spurious
    entries has no more entries than any correct pattern).
    """
    row = rows.new_row(spec, matrix)

    def stage(name: str) -> None:
        row["stage"] = name
        report(dict(row))

    stage("points")
    try:
        built = problems.build(spec, matrix, n_points, scale, seed)
    except Exception as err:
        row.update(status="problem_error", error=describe(err))
        return row
    row.update(
        points=len(built.points),
        scales=" ".join(f"{s:g}" for s in built.scales),
        points_digest=built.points_digest(),
    )
    report(dict(row), restart_clock=True)  # the timeout counts from here

    import asdex
    import jax

    warm_up()
    hessian = built.derivative == "hessian"
    x, args = built.points[0]
    shape = (built.rows, spec["n"])
    try:
        stage("detect")
        detect = asdex.hessian_sparsity if hessian else asdex.jacobian_sparsity
        pattern, row["detect_s"] = clock.timed(lambda: detect(built.func, x, *args))
        stage("color")
        color = (
            asdex.hessian_coloring_from_sparsity
            if hessian
            else asdex.jacobian_coloring_from_sparsity
        )
        coloring, row["color_s"] = clock.timed(lambda: color(pattern))
        row.update(colors=int(coloring.num_colors), mode=str(coloring.mode))
        if pattern_only:
            row.update(nnz=int(pattern.nnz), status="pattern", stage="done")
            return row
        stage("first call")
        make = (
            asdex.value_and_hessian_from_coloring
            if hessian
            else asdex.value_and_jacobian_from_coloring
        )
        sparse_fn = jax.jit(make(built.func, coloring))
        first, seconds = clock.timed(lambda: _block(sparse_fn(x, *args)))
        row["first_s"] = row["detect_s"] + row["color_s"] + seconds
        stage("compare")
        dense_fn = jax.jit(
            jax.hessian(built.func) if hessian else jax.jacfwd(built.func)
        )
        value_fn = jax.jit(built.func)
        comparison = None
        lower = 0.0
        for i, (xi, argsi) in enumerate(built.points):
            value, matrix_out = first if i == 0 else _block(sparse_fn(xi, *argsi))
            mask, values = _dense_matrix(matrix_out, shape)
            if comparison is None:
                comparison = compare.Comparison(mask)
            comparison.add(values, np.asarray(dense_fn(xi, *argsi)), mask)
            expected = np.asarray(value_fn(xi, *argsi))
            lower = max(lower, compare.rel_error(np.asarray(value), expected))
        assert comparison is not None
        row.update(comparison.summary())
        row["lower_rel_error"] = lower
        bound = compare.row_bound(comparison.pattern)
        if not hessian:
            bound = min(bound, compare.column_bound(comparison.pattern))
        row["color_bound"] = bound
        if timing:
            stage("per call")
            row.update(clock.per_call({"call_s": lambda: _block(sparse_fn(x, *args))}))
    except Exception as err:
        row.update(status="error", error=f"asdex ({row['stage']}): {describe(err)}")
        return row
    row.update(status=compare.status(row, rtol), stage="done")
    row.pop("pattern_changed", None)
    return row


def main(argv: Sequence[str] | None = None) -> int:
    """Measure asdex; writes ``asdex.csv`` in ``--out``. Exit status 0."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cutest.asdex_side",
        description="asdex on the CUTEst problems, for "
        "`python -m benchmarks.cutest --asdex OUT/asdex.csv`.",
    )
    runner.add_options(parser)
    parser.add_argument(
        "--pattern-only",
        action="store_true",
        help="detect and color only (no compiling, no comparison with the dense "
        "derivative): asdex's entries and colors on the whole set in minutes",
    )
    args = parser.parse_args(argv)
    versions = ", ".join(
        f"{package} {metadata.version(package)}"
        for package in ("asdex", "jax", "sif2jax")
    )
    print(f"asdex side: {versions}, Python {sys.version.split()[0]}", file=sys.stderr)
    all_rows = runner.run(
        args,
        "benchmarks.cutest.asdex_side:measure",
        args.out / "asdex.csv",
        "asdex",
        extra={"pattern_only": args.pattern_only},
    )
    _, counts = runner.exit_status(all_rows, allow_timeouts=True)
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    print(f"asdex: {len(all_rows)} matrices: {summary}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
