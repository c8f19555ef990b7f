"""The ``sparse`` cases: sparse Jacobians and Hessians against dense ones, on JAX.

Two banded problems with d = 2000 (500 with ``--quick``):

- ``sparse_jacobian``: the tridiagonal map ``f(x)_i = x_i² − x_{i−1} x_{i+1} +
  sin(x_i)`` (``x_{−1} = x_d = 0``), R^d → R^d; each row has 3 non-zeros, so a
  column coloring needs at least 3 colors;
- ``sparse_hessian``: the banded energy ``Σ cos(x_{i+1} − x_i) + Σ (x_i x_{i+2})² +
  Σ (x_i x_{i+3})² + Σ x_i⁴``, whose Hessian is a full band of bandwidth b = 3 (each
  row has up to 2b + 1 = 7 non-zeros, the lower bound for a column coloring with
  direct recovery).

Each case times ``diffops.<op>(f, sparsity="detect")`` against the dense
``diffops.<op>(f)`` and the hand-written dense ``jax.jit`` compositions, in one
interleaved set of rounds (outputs checked against dense NumPy closed forms, sparse
results through ``toarray()``). Then the first call (build, structure detection,
coloring, trace, compile, run) of sparse and dense, each on a fresh function object
(diffops shares built programs between derivative functions of the same function
object), alternating the order, one discarded warm-up round; every repetition checks
the sparse result against the dense one and records the number of colors.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

import diffops
from diffops.models import Model

from .baselines import framework_impls
from .baselines.closed_forms import closed_form_impl
from .cases import Problem, sample
from .config import Config
from .implementations import Impl, diffops_impl
from .records import Record, quartiles

DETECT = {"sparsity": "detect"}
"""The option that makes a Jacobian or Hessian sparse (structure from the jaxpr)."""

SPARSE_ROW = "diffops[jax, sparsity=detect]"
DENSE_ROW = "diffops[jax]"
"""Row labels of the sparse and dense diffops calls."""

FIRST_CALL_OP = "first call"
COLORS_OP = "colors"
COLOR_BOUND_OP = "colors lower bound"
"""``Record.op`` of the first-call times, the colors found, and their lower bound."""

BANDWIDTH = 3
"""Bandwidth b of the banded energy's Hessian."""


def _not_needed(x: np.ndarray) -> np.ndarray:
    msg = "this closed form is not used by the sparse cases"
    raise NotImplementedError(msg)


def tridiagonal_model(dim: int) -> Model:
    """R^d → R^d, ``x_i² − x_{i−1} x_{i+1} + sin(x_i)`` with zero ends; JAX only."""

    def formula(ns: SimpleNamespace) -> Callable[[Any], Any]:
        import jax.numpy as jnp

        def tridiagonal(x: Any) -> Any:
            left = jnp.pad(x[:-1], (1, 0))  # x_{i-1}, 0 at i = 0
            right = jnp.pad(x[1:], (0, 1))  # x_{i+1}, 0 at i = d - 1
            return x**2 - left * right + jnp.sin(x)

        return tridiagonal

    def value(x: np.ndarray) -> np.ndarray:
        left, right = np.r_[0.0, x[:-1]], np.r_[x[1:], 0.0]
        return x**2 - left * right + np.sin(x)

    def jacobian(x: np.ndarray) -> np.ndarray:
        i = np.arange(dim - 1)
        jac = np.diag(2 * x + np.cos(x))
        jac[i + 1, i] = -np.r_[x[2:], 0.0]  # ∂f_{i+1}/∂x_i = -x_{i+2}
        jac[i, i + 1] = -np.r_[0.0, x[:-2]]  # ∂f_i/∂x_{i+1} = -x_{i-1}
        return jac

    return Model(
        "tridiagonal",
        f"x_i² − x_(i−1) x_(i+1) + sin(x_i), R^{dim} → R^{dim}",
        (dim,),
        False,
        formula,
        value,
        jacobian,
        _not_needed,
    )


def banded_energy_model(dim: int) -> Model:
    """``Σ cos(x_{i+1} − x_i) + Σ_k∈{2,3} Σ (x_i x_{i+k})² + Σ x⁴``: bandwidth 3."""

    def formula(ns: SimpleNamespace) -> Callable[[Any], Any]:
        def banded_energy(x: Any) -> Any:
            e = ns.sum(ns.cos(x[1:] - x[:-1])) + ns.sum(x**4)
            for k in (2, BANDWIDTH):
                e = e + ns.sum((x[k:] * x[:-k]) ** 2)
            return e

        return banded_energy

    def value(x: np.ndarray) -> np.ndarray:
        e = np.sum(np.cos(np.diff(x))) + np.sum(x**4)
        for k in (2, BANDWIDTH):
            e = e + np.sum((x[k:] * x[:-k]) ** 2)
        return np.asarray(e)

    def grad(x: np.ndarray) -> np.ndarray:
        g = 4 * x**3
        s = np.sin(np.diff(x))
        g[:-1] += s
        g[1:] -= s
        for k in (2, BANDWIDTH):
            a, b = x[:-k], x[k:]
            g[:-k] += 2 * a * b**2
            g[k:] += 2 * b * a**2
        return g

    def hessian(x: np.ndarray) -> np.ndarray:
        h = np.diag(12 * x**2)
        c = np.cos(np.diff(x))
        i = np.arange(dim - 1)
        h[i, i] -= c
        h[i + 1, i + 1] -= c
        h[i, i + 1] += c
        h[i + 1, i] += c
        for k in (2, BANDWIDTH):
            a, b = x[:-k], x[k:]
            i = np.arange(dim - k)
            h[i, i] += 2 * b**2
            h[i + k, i + k] += 2 * a**2
            h[i, i + k] += 4 * a * b
            h[i + k, i] += 4 * a * b
        return h

    return Model(
        "banded_energy",
        f"Σ cos(x_(i+1) − x_i) + Σ (x_i x_(i+2))² + Σ (x_i x_(i+3))² + Σ x⁴, d = {dim}",
        (dim,),
        True,
        formula,
        value,
        grad,
        hessian,
    )


@dataclass(frozen=True)
class SparseCase:
    """One sparse case: its function, operator and the optimum number of colors.

    Attributes:
        model: ``model(d)`` builds the function.
        op: The operator timed (its Jacobian or Hessian is made sparse).
        kind: ``"jacobian"`` or ``"hessian"``.
        optimum: Lower bound on the colors of a column coloring with direct
            recovery: non-zeros in a row (3 for the tridiagonal Jacobian, 2b + 1 = 7
            for the bandwidth-3 Hessian). The target compares the colors found
            with it; the bound measured on the result is reported too.
        why: Where the optimum comes from, for the report.
    """

    model: Callable[[int], Model]
    op: str
    kind: str
    optimum: int
    why: str


SPARSE_CASES = {
    "sparse_jacobian": SparseCase(
        tridiagonal_model,
        "jacobian_and_value",
        "jacobian",
        3,
        "3 non-zeros per row and per column, reached by a 3-coloring",
    ),
    "sparse_hessian": SparseCase(
        banded_energy_model,
        "hessian_grad_and_value",
        "hessian",
        2 * BANDWIDTH + 1,
        f"2b + 1 with b = {BANDWIDTH}, the direct-recovery bound of a column "
        f"(Jacobian-style) coloring; a distance-1 coloring needs b + 1",
    ),
}
"""Case name → what it runs."""


def sparse_problem(section: str, cfg: Config) -> Problem:
    """Sparse and dense diffops, the dense ``jax.jit`` compositions, NumPy last.

    Args:
        section: A :data:`SPARSE_CASES` name.
        cfg: The run's settings (``sparse_dim``).

    Returns:
        The problem, timed in one interleaved set of rounds.
    """
    case = SPARSE_CASES[section]
    model = case.model(cfg.sparse_dim)
    impls: list[Impl] = [
        diffops_impl(model, case.op, "jax", **DETECT),
        diffops_impl(model, case.op, "jax"),
        *framework_impls(model, case.op, "jax"),
        closed_form_impl(model, case.op),
    ]
    x = sample(model, seed=len(section) + cfg.sparse_dim)
    return Problem(section, case.op, model, x, None, impls)


def sparse_problems(cfg: Config) -> list[Problem]:
    """The selected ``sparse`` cases (notes instead when jax is not selected)."""
    selected = [s for s in SPARSE_CASES if s in cfg.cases]
    if selected and "jax" not in cfg.backends:
        cfg.notes.append("sparse cases: need the jax backend, which is not selected")
        return []
    return [sparse_problem(section, cfg) for section in selected]


# ---------------------------------------------------------------------------------
# First call, checks of sparse against dense, colors


def sparse_against_dense(
    sparse_out: tuple[Any, ...], dense_out: tuple[Any, ...], n_in: int
) -> str | None:
    """What is wrong with a sparse result, given the dense one at the same point.

    The first output must be a ``scipy.sparse`` array of shape ``(prod(F), prod(S))``
    whose ``toarray()`` equals the dense matrix (``rtol=1e-10``); the other outputs
    must equal the dense call's.

    Args:
        sparse_out: The sparse operator's outputs.
        dense_out: The dense operator's outputs at the same point.
        n_in: ``prod(S)``, the input size.

    Returns:
        A message, or ``None`` if they agree.
    """
    import scipy.sparse

    matrix, dense = sparse_out[0], np.asarray(dense_out[0])
    if not scipy.sparse.issparse(matrix):
        return f"the matrix is a {type(matrix).__name__}, not a scipy.sparse array"
    expected = (dense.size // n_in, n_in)
    if matrix.shape != expected:
        return f"sparse shape {matrix.shape}, expected {expected}"
    problems = []
    pairs = [("matrix", matrix.toarray(), dense.reshape(expected))]
    pairs += [
        (f"output {k}", np.asarray(s), np.asarray(d))
        for k, (s, d) in enumerate(zip(sparse_out[1:], dense_out[1:], strict=True), 1)
    ]
    for name, got, want in pairs:
        scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
        if got.shape != want.shape or not np.allclose(
            got, want, rtol=1e-10, atol=1e-12 * scale
        ):
            err = (
                float(np.max(np.abs(got - want))) if got.shape == want.shape else np.nan
            )
            problems.append(f"{name}: max abs error {err:.3g} against the dense call")
    return "; ".join(problems) or None


def color_bound(matrix: Any, kind: str) -> int:
    """Lower bound on the colors of a direct-recovery coloring of ``matrix``'s pattern.

    Non-zeros in the fullest row (for a Jacobian, the fewer of that and the fullest
    column: forward or reverse mode): columns sharing a row need distinct colors.
    """
    pattern = matrix.tocsr()
    per_row = int(np.diff(pattern.indptr).max(initial=0))
    if kind == "hessian":
        return per_row
    per_column = int(np.diff(pattern.tocsc().indptr).max(initial=0))
    return min(per_row, per_column)


def _bandwidth(matrix: Any) -> int:
    rows, cols = matrix.nonzero()
    return int(np.max(np.abs(rows - cols), initial=0))


def sparse_first_call(section: str, cfg: Config) -> list[Record]:
    """First call of sparse and dense, fresh function objects; checks and colors.

    Round 0 is a warm-up (one-time imports of SciPy and NetworkX, JAX's
    initialisation) and is discarded; then ``cfg.first_call_reps`` rounds,
    alternating which goes first. Each round builds both derivative functions from
    new function objects (so no shared program can help) and times build + first
    call; their results are compared (:func:`sparse_against_dense`).

    Args:
        section: A :data:`SPARSE_CASES` name.
        cfg: The run's settings (``sparse_dim``, ``first_call_reps``).

    Returns:
        First-call records for dense and sparse (median over rounds), the colors
        found (a count) and their lower bound from the pattern (a count).
    """
    case = SPARSE_CASES[section]
    model = case.model(cfg.sparse_dim)
    x = sample(model, seed=len(section) + cfg.sparse_dim)
    times: dict[str, list[float]] = {"dense": [], "sparse": []}
    colorings: list[dict[str, Any] | None] = []
    errors: list[str] = []
    bounds: list[tuple[int, int]] = []

    def first(sparse: bool) -> tuple[float, Any, tuple[Any, ...]]:
        func, _ = model.function("jax")  # a new function object each time
        options = DETECT if sparse else {}
        start = time.perf_counter()
        d = getattr(diffops, case.op)(func, backend="jax", **options)
        out = d(x)
        return time.perf_counter() - start, d, out

    for rep in range(cfg.first_call_reps + 1):
        order = ("dense", "sparse") if rep % 2 else ("sparse", "dense")
        results: dict[str, tuple[Any, tuple[Any, ...]]] = {}
        for who in order:
            try:
                elapsed, d, out = first(who == "sparse")
            except Exception as err:
                msg = f"{who}: {type(err).__name__}: {err}".splitlines()[0][:300]
                errors.append(msg)
                continue
            if rep:
                times[who].append(elapsed * 1e6)
            results[who] = (d, out)
        if len(results) < 2:
            continue
        problem = sparse_against_dense(
            results["sparse"][1], results["dense"][1], x.size
        )
        if problem:
            errors.append(f"round {rep}: {problem}")
        colorings.append(results["sparse"][0].coloring)
        matrix = results["sparse"][1][0]
        if hasattr(matrix, "nonzero"):
            bounds.append((color_bound(matrix, case.kind), _bandwidth(matrix)))
    # Everything but the seconds taken must be the same in every round.
    chosen = {
        repr({k: v for k, v in (c or {}).items() if k != "seconds"}) for c in colorings
    }
    if len(chosen) > 1:
        errors.append(f"the coloring changed between rounds: {colorings}")
    error = "; ".join(dict.fromkeys(errors)) or None
    records = []
    for who, impl in (("dense", DENSE_ROW), ("sparse", SPARSE_ROW)):
        what = (
            "structure detection + coloring + trace + compile + run"
            if who == "sparse"
            else "trace + compile + run"
        )
        record = Record(
            section,
            FIRST_CALL_OP,
            cfg.sparse_dim,
            impl,
            "diffops",
            "jax",
            backend="jax",
            correct=error is None,
            error=error,
            note=f"build + first call ({what}), fresh function each time",
        )
        if times[who]:
            q1, median, q3 = quartiles(times[who])
            record.median_us, record.q1_us, record.q3_us = median, q1, q3
            record.min_us, record.loops = min(times[who]), 1
            record.repeats = len(times[who])
        records.append(record)
    coloring = colorings[-1] if colorings else None
    bound, bandwidth = bounds[-1] if bounds else (None, None)
    if coloring is not None:
        records.append(
            Record(
                section,
                COLORS_OP,
                cfg.sparse_dim,
                SPARSE_ROW,
                "diffops",
                "jax",
                backend="jax",
                count=coloring["colors"],
                correct=error is None,
                error=error,
                note=f"mode {coloring['mode']}, {coloring['nnz']} structural "
                f"non-zeros, shape {coloring['shape']}, bandwidth {bandwidth}",
            )
        )
    if bound is not None:
        records.append(
            Record(
                section,
                COLOR_BOUND_OP,
                cfg.sparse_dim,
                "pattern of the result",
                "numpy",
                "numpy",
                count=bound,
                note="non-zeros in the fullest row"
                + (" (or column, the fewer)" if case.kind == "jacobian" else ""),
            )
        )
    return records
