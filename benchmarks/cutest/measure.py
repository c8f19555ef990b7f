"""One matrix of one problem on diffops (runs in a worker process).

Order: the points; the sparse derivative's first call (detection and coloring timed
by :mod:`.adapter`); the dense derivative's first call; both at every point,
compared (:mod:`.compare`); then interleaved per-call timing of both. The sparse
function is called first, so it, not the dense one, pays for anything JAX compiles
once per function.

The dense derivative is the oracle (``oracle="dense"``, or ``"dense-nojit"`` run op
by op). Where it is out of reach (minutes of XLA compiling, gigabytes), ``"products"``
checks the sparse matrix times random vectors against JAX's own JVPs or
Hessian-vector products of the function, compiled with XLA's older emitters.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from . import adapter, clock, compare, problems, rows

ORACLES = ("dense", "dense-nojit", "products")
"""What checks the sparse result (see :func:`measure`)."""

PRODUCTS = 4
"""Random vectors per point of the ``products`` oracle."""


def describe(err: BaseException) -> str:
    """``Type: message`` on one line, with the innermost diffops frame if any."""
    text = " | ".join(str(err).strip().splitlines()[:6])
    where = ""
    for frame in traceback.extract_tb(err.__traceback__)[::-1]:
        if "/diffops/" in frame.filename or "/asdex/" in frame.filename:
            package = "diffops" if "/diffops/" in frame.filename else "asdex"
            path = frame.filename.split(f"/{package}/", 1)[1]
            where = f" [at {package}/{path}:{frame.lineno} in {frame.name}]"
            break
    return f"{type(err).__name__}: {text[:600]}{where}"


def as_pattern_and_values(matrix: Any, shape: tuple[int, int]) -> tuple[Any, Any]:
    """The structure (boolean, dense) and values (dense) of a sparse or dense result."""
    import scipy.sparse

    if scipy.sparse.issparse(matrix):
        if tuple(matrix.shape) != shape:
            msg = f"sparse result has shape {matrix.shape}, expected {shape}"
            raise ValueError(msg)
        coo = scipy.sparse.coo_array(matrix)
        pattern = np.zeros(shape, dtype=bool)
        pattern[coo.row, coo.col] = True
        return pattern, matrix.toarray()
    values = np.asarray(matrix, dtype=np.float64).reshape(shape)
    return np.ones(shape, dtype=bool), values


def operator(built: problems.Matrix) -> Any:
    """The diffops operator that returns this matrix (with value, and gradient)."""
    import diffops

    if built.derivative == "hessian":
        return diffops.hessian_grad_and_value
    return diffops.jacobian_and_value


_WARM = False


def warm_up() -> None:
    """Once per worker, untimed: one-time costs off the first problem measured.

    diffops' sparse path on a 5-variable chain (imports, JAX's first compilation),
    and plans for a random pattern large enough for the Numba coloring kernels
    (loading them from Numba's disk cache took 0.38 s): ``asdex_side.warm_up`` runs
    asdex's Numba kernels likewise.
    """
    global _WARM
    if _WARM:
        return
    import jax.numpy as jnp
    import scipy.sparse

    import diffops
    from diffops.sparse import hessian_plan, jacobian_plan

    n = 3000
    rng = np.random.default_rng(0)
    rows = np.repeat(np.arange(n), 4)
    cols = rng.integers(0, n, rows.size)
    pattern = scipy.sparse.csr_array(
        (np.ones(rows.size), (rows, cols)), shape=(n, n), dtype=np.int8
    )
    hessian_plan(((pattern + pattern.T) > 0).astype(np.int8), (n,), np.float64)
    jacobian_plan(pattern, (n,), (n,), np.float64)

    def chain(x: Any) -> Any:
        return jnp.sum(x[1:] ** 2 * x[:-1])

    def pairs(x: Any) -> Any:
        return x[1:] * x[:-1]

    x = np.linspace(1.0, 2.0, 5)
    diffops.hessian_grad_and_value(chain, sparsity="detect")(x)
    diffops.jacobian_and_value(pairs, sparsity="detect")(x)
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
    backend: str = "jax",
    oracle: str = "dense",
) -> dict[str, Any]:
    """Measure one matrix; returns its CSV row (see :data:`.rows.COLUMNS`).

    Args:
        spec: The problem (:class:`.problems.Spec` fields).
        matrix: ``hessian``, ``jacobian`` or ``lagrangian``.
        n_points: Points compared.
        scale: Perturbation of ``x0``.
        seed: The run's seed.
        rtol: Largest relative error of the sparse values accepted.
        timing: Whether to time warm calls.
        report: Receives the row measured so far at each stage.
        backend: diffops backend of both derivatives (``jax`` or ``jax_nojit``).
        oracle: What checks the sparse result (:data:`ORACLES`): the dense
            derivative on ``backend``, the dense derivative op by op
            (``jax_nojit``), or :data:`PRODUCTS` random products per point.

    Returns:
        The row.
    """
    row = rows.new_row(spec, matrix)
    row["backend"] = backend
    row["oracle"] = oracle

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

    warm_up()
    op = operator(built)
    x, args = built.points[0]
    shape = (built.rows, spec["n"])

    def on_stage(name: str, seconds: float) -> None:
        row[f"{name}_s"] = seconds
        stage("sparse: color" if name == "detect" else "sparse: compile and run")

    errors: list[str] = []
    failed_at = ""
    stage("sparse: detect")
    sparse_d = op(built.func, backend, sparsity="detect")
    first = None
    try:
        first = adapter.first_call(sparse_d, x, args, on_stage)
        coloring = first.coloring or {}
        row.update(
            first_s=first.seconds,
            detect_s=first.detect_s,
            color_s=first.color_s,
            colors=coloring.get("colors"),
            mode=coloring.get("mode"),
        )
    except Exception as err:
        failed_at = failed_at or str(row["stage"])
        errors.append(f"sparse ({row['stage']}): {describe(err)}")

    dense_d, dense_out = None, None
    if oracle == "products":
        if first is not None:
            stage("products")
            try:
                check_products(row, built, sparse_d, first.outputs, seed)
            except Exception as err:
                failed_at = failed_at or str(row["stage"])
                errors.append(f"products: {describe(err)}")
    else:
        stage("dense: first call")
        dense_d = op(built.func, "jax_nojit" if oracle == "dense-nojit" else backend)
        try:
            dense_out, row["dense_first_s"] = clock.timed(lambda: dense_d(x, *args))
        except Exception as err:
            failed_at = failed_at or str(row["stage"])
            errors.append(f"dense: {describe(err)}")

    if first is not None and dense_out is not None:
        stage("compare")
        try:
            _compare(row, built, sparse_d, dense_d, first.outputs, dense_out, shape)
        except Exception as err:
            failed_at = failed_at or str(row["stage"])
            errors.append(f"compare: {describe(err)}")

    if timing:
        stage("per call")
        calls = {}
        if first is not None and not errors:
            calls["call_s"] = lambda: sparse_d(x, *args)
        if dense_out is not None:
            calls["dense_call_s"] = lambda: dense_d(x, *args)  # type: ignore[misc]
        if calls:
            row.update(clock.per_call(calls))

    if errors:
        row.update(status="error", error=" || ".join(errors))
    else:
        row["status"] = compare.status(row, rtol)
    row.pop("pattern_changed", None)
    row["stage"] = failed_at or "done"
    return row


def _compare(
    row: dict[str, Any],
    built: problems.Matrix,
    sparse_d: Any,
    dense_d: Any,
    sparse_first: tuple[Any, ...],
    dense_first: tuple[Any, ...],
    shape: tuple[int, int],
) -> None:
    """Compare both derivatives at every point; fill the counts into ``row``."""
    comparison = None
    lower = 0.0
    for i, (x, args) in enumerate(built.points):
        sparse_out = sparse_first if i == 0 else sparse_d(x, *args)
        dense_out = dense_first if i == 0 else dense_d(x, *args)
        pattern, values = as_pattern_and_values(sparse_out[0], shape)
        if comparison is None:
            comparison = compare.Comparison(pattern)
        comparison.add(values, np.asarray(dense_out[0]).reshape(shape), pattern)
        for s, d in zip(sparse_out[1:], dense_out[1:], strict=True):
            lower = max(lower, compare.rel_error(np.asarray(s), np.asarray(d)))
    assert comparison is not None
    row.update(comparison.summary())
    row["lower_rel_error"] = lower
    bound = compare.row_bound(comparison.pattern)
    if built.derivative == "jacobian":
        bound = min(bound, compare.column_bound(comparison.pattern))
    row["color_bound"] = bound


def check_products(
    row: dict[str, Any],
    built: problems.Matrix,
    sparse_d: Any,
    sparse_first: tuple[Any, ...],
    seed: int,
) -> None:
    """Check the sparse result at every point by :data:`PRODUCTS` random products.

    The sparse matrix times random Gaussian vectors against JAX's own
    Jacobian-vector products (``jax.jvp`` of the function) or Hessian-vector
    products (``jax.jvp`` of ``jax.grad``, whose primal is the gradient), and the
    value and gradient against the same program's. A missed non-zero or a wrong
    value changes a product unless its contribution is below the tolerance:
    reported as ``wrong`` (``misses`` stays empty).
    """
    import jax
    import jax.numpy as jnp

    from diffops.backends.jax_compile import LARGE_PROGRAM_OPTIONS

    func, hessian = built.func, built.derivative == "hessian"

    def product(x: Any, vector: Any, *args: Any) -> Any:
        """One product, then the value and (Hessians) the gradient, packed into one
        flat array: one vector per program call (a batch of them made XLA compile
        EXTROSNBNE's Lagrangian for more than 20 minutes) and one output (the same
        program returning its three outputs separately did not compile in 40
        minutes; packed, in 46 s)."""

        def f(z: Any) -> Any:
            return func(z, *args)

        if hessian:
            value = f(x)
            gradient, out = jax.jvp(jax.grad(f), (x,), (vector,))
            parts = (out, gradient, value)  # hessian_grad_and_value's order
        else:
            value, out = jax.jvp(f, (x,), (vector,))
            parts = (out, value)
        return jnp.concatenate([jnp.ravel(part) for part in parts])

    program = jax.jit(product, compiler_options=LARGE_PROGRAM_OPTIONS)
    rng = np.random.default_rng([seed, len(built.points)])
    worst = lower = 0.0
    nnz = None
    for i, (x, args) in enumerate(built.points):
        sparse_out = sparse_first if i == 0 else sparse_d(x, *args)
        matrix = sparse_out[0]
        nnz = int(matrix.nnz)
        lower_parts = [np.asarray(part) for part in sparse_out[1:]]
        ends = np.cumsum([matrix.shape[0], *(part.size for part in lower_parts)])
        for vector in rng.standard_normal((PRODUCTS, x.size)):
            packed = np.asarray(program(x, vector, *args))  # x64: setup()
            if packed.size != ends[-1]:
                lower = float("inf")  # the sparse outputs' sizes are wrong
            expected, *lower_expected = np.split(packed, ends[:-1])
            worst = max(worst, compare.rel_error(matrix @ vector, expected))
            for s, e in zip(lower_parts, lower_expected, strict=True):
                lower = max(lower, compare.rel_error(s.reshape(-1), e))
    row.update(
        nnz=nnz, max_rel_error=worst, lower_rel_error=lower, pattern_changed=False
    )
    row["misses"] = None
