"""Sparse Jacobians and Hessians: detected or given structure, colored products."""

from __future__ import annotations

import numpy as np
import pytest

import diffops
from _backends import SELECTED_BACKENDS, require_backend
from diffops.operators import SPARSE_OUTPUTS
from diffops.sparse import SparsityError, hessian_plan, jacobian_plan, star_coloring

scipy_sparse = pytest.importorskip("scipy.sparse")  # a core dev dependency in CI

N = 7
RNG = np.random.default_rng(20261122)
MASK = RNG.uniform(size=(N, N)) < 0.25  # a random sparse structure
np.fill_diagonal(MASK, True)


def _jnp():
    require_backend("jax")
    import jax.numpy as jnp

    return jnp


# Array functions (Jacobians) and scalar functions (Hessians), by structure.
def jacobian_functions(jnp):
    weights = jnp.asarray(RNG.standard_normal((N, N)) * MASK)
    return {
        "banded": lambda x: jnp.concatenate(
            [x[:1] ** 2, x[1:-1] ** 2 - x[:-2] * x[2:], jnp.sin(x[-1:])]
        ),
        "block-diagonal": lambda x: jnp.concatenate(
            [x[:3] * jnp.sum(x[:3]), jnp.cos(x[3:]) * jnp.prod(x[3:])]
        ),
        "arrow": lambda x: jnp.concatenate([jnp.sum(x**2)[None], x[1:] * x[0]]),
        "random": lambda x: jnp.tanh(weights @ (x**2)),
        "tall": lambda x: jnp.concatenate([x, x**2, jnp.sin(x[:3])]),
        "wide": lambda x: jnp.stack([jnp.sum(x**3), x[0] * x[1]]),
    }


def hessian_functions(jnp):
    weights = jnp.asarray(RNG.standard_normal((N, N)) * MASK)
    return {
        "banded": lambda x: (
            jnp.sum(jnp.cos(x[1:] - x[:-1])) + jnp.sum(x[2:] ** 2 * x[:-2])
        ),
        "block-diagonal": lambda x: jnp.sum(x[:3]) ** 3 + jnp.prod(jnp.sin(x[3:])),
        "arrow": lambda x: x[0] * jnp.sum(x[1:] ** 2) + jnp.sum(x**4),
        "random": lambda x: jnp.sum(jnp.tanh(weights @ x) ** 2),
    }


def _dense_matrix(out):
    return next(o for o in out if isinstance(o, np.ndarray) and o.ndim >= 2)


@pytest.mark.parametrize(
    "structure", ["banded", "block-diagonal", "arrow", "random", "tall", "wide"]
)
@pytest.mark.parametrize("mode", ["auto", "forward", "reverse"])
@pytest.mark.parametrize("op", ["jacobian_and_value", "mhp_jacobian_and_value"])
def test_detected_jacobian_matches_dense(structure, mode, op):
    jnp = _jnp()
    func = jacobian_functions(jnp)[structure]
    x = RNG.standard_normal(N)
    sparse = getattr(diffops, op)(func, sparsity="detect", mode=mode)(x)
    dense = getattr(diffops, op)(func, mode=mode)(x)
    k = 1 if callable(sparse[0]) else 0
    matrix = sparse[k]
    assert isinstance(matrix, scipy_sparse.csr_array)
    np.testing.assert_allclose(
        matrix.toarray(), dense[k].reshape(matrix.shape), rtol=1e-12, atol=1e-14
    )
    np.testing.assert_array_equal(sparse[-1], dense[-1])
    if k:
        m = RNG.standard_normal(dense[0].arg_shape)
        np.testing.assert_allclose(sparse[0](m), dense[0](m), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("structure", ["banded", "block-diagonal", "arrow", "random"])
@pytest.mark.parametrize("op", ["hessian_grad_and_value", "mtp_hessian_grad_and_value"])
@pytest.mark.parametrize("backend", ["jax", "jax_nojit"])
def test_detected_hessian_matches_dense(structure, op, backend):
    jnp = _jnp()
    func = hessian_functions(jnp)[structure]
    x = RNG.standard_normal(N)
    derivative = getattr(diffops, op)(func, backend=backend, sparsity="detect")
    sparse = derivative(x)
    dense = getattr(diffops, op)(func, backend=backend)(x)
    k = 1 if callable(sparse[0]) else 0
    np.testing.assert_allclose(sparse[k].toarray(), dense[k], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(sparse[k + 1], dense[k + 1], rtol=1e-14)
    if k:
        m = RNG.standard_normal((N, N))
        np.testing.assert_allclose(sparse[0](m), dense[0](m), rtol=1e-10, atol=1e-12)
    coloring = derivative.coloring
    # At n = 7 most of these patterns are dense enough for the dense path.
    assert coloring["mode"] in ("symmetric", "dense")
    if coloring["mode"] == "dense":
        assert "non-zero" in coloring["reason"] or "products" in coloring["reason"]
        assert coloring["colors"] == N


@pytest.mark.parametrize("structure", ["banded", "arrow"])
def test_sparse_hessians_at_larger_n_use_a_star_coloring(structure):
    jnp = _jnp()
    derivative = diffops.mtp_hessian_grad_and_value(
        hessian_functions(jnp)[structure], sparsity="detect"
    )
    x = RNG.standard_normal(40)
    mtp, hessian, grad, value = derivative(x)
    dense = diffops.mtp_hessian_grad_and_value(hessian_functions(jnp)[structure])(x)
    np.testing.assert_allclose(hessian.toarray(), dense[1], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(grad, dense[2], rtol=1e-13)
    np.testing.assert_allclose(value, dense[3], rtol=1e-13)
    m = RNG.standard_normal((40, 40))
    np.testing.assert_allclose(mtp(m), dense[0](m), rtol=1e-10, atol=1e-12)
    assert derivative.coloring["mode"] == "symmetric"
    assert derivative.coloring["colors"] < 10


def test_arrow_hessian_needs_two_products_and_banded_few():
    jnp = _jnp()
    arrow = diffops.hessian_grad_and_value(
        hessian_functions(jnp)["arrow"], sparsity="detect"
    )
    arrow(RNG.standard_normal(50))
    assert arrow.coloring["colors"] == 2
    tridiagonal = diffops.jacobian_and_value(
        jacobian_functions(jnp)["banded"], sparsity="detect"
    )
    tridiagonal(RNG.standard_normal(50))
    assert tridiagonal.coloring["colors"] == 3  # the optimum: three columns per row


def test_entries_zero_at_the_first_point_are_in_the_pattern():
    jnp = _jnp()
    derivative = diffops.jacobian_and_value(
        lambda x: jnp.multiply(x[1:], x[:-1]), sparsity="detect"
    )
    zero, _value = derivative(np.zeros(5))
    assert zero.nnz == 8  # structural, although every value is 0 at x = 0
    x = RNG.standard_normal(5)
    jacobian, _ = derivative(x)
    expected = np.zeros((4, 5))
    expected[np.arange(4), np.arange(4)] = x[1:]
    expected[np.arange(4), np.arange(1, 5)] = x[:-1]
    np.testing.assert_allclose(jacobian.toarray(), expected, rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nd_input_and_float32(dtype):
    jnp = _jnp()

    def grid(x):  # a 2-d input: neighbours along both axes
        return jnp.sum((x[1:, :] - x[:-1, :]) ** 2) + jnp.sum(
            jnp.sin(x[:, 1:] * x[:, :-1])
        )

    x = RNG.standard_normal((3, 4)).astype(dtype)
    hessian, _grad, _value = diffops.hessian_grad_and_value(grid, sparsity="detect")(x)
    dense, _, _ = diffops.hessian_grad_and_value(grid)(x)
    assert hessian.shape == (12, 12)
    assert hessian.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(
        hessian.toarray(), dense.reshape(12, 12), rtol=tol, atol=tol
    )


def test_extra_arguments():
    jnp = _jnp()

    def chain(x, weights, scale):
        return scale * jnp.sum(weights * (x[1:] - x[:-1] ** 2) ** 2)

    derivative = diffops.hessian_grad_and_value(chain, sparsity="detect")
    x, weights = RNG.standard_normal(N), RNG.uniform(1, 2, N - 1)
    sparse, _grad, _value = derivative(x, weights, 3.0)
    dense, _, _ = diffops.hessian_grad_and_value(chain)(x, weights, 3.0)
    np.testing.assert_allclose(sparse.toarray(), dense, rtol=1e-12, atol=1e-14)


def test_given_pattern_too_small_is_caught_on_jax():
    jnp = _jnp()
    func = jacobian_functions(jnp)["banded"]
    with pytest.raises(SparsityError, match="lacks"):
        diffops.jacobian_and_value(func, sparsity=np.eye(N, dtype=bool))(np.ones(N))


def _framework_functions(backend):
    if backend == "torch":
        import torch as xp

        def concat(parts):
            return xp.cat(parts)
    elif backend == "autograd":
        import autograd.numpy as xp

        concat = xp.concatenate
    else:
        import jax.numpy as xp

        concat = xp.concatenate

    def bidiagonal(x):
        return concat([x[:1] ** 2, x[1:] * x[:-1]])

    def tridiagonal_energy(x):
        return xp.sum((x[1:] - x[:-1]) ** 4) + xp.sum(xp.sin(x) * x)

    return bidiagonal, tridiagonal_energy


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
@pytest.mark.parametrize("op", list(SPARSE_OUTPUTS))
def test_given_patterns_on_every_backend(backend, op):
    require_backend(backend)
    band = np.abs(np.subtract.outer(np.arange(N), np.arange(N)))
    if backend == "symnum":
        import symnum.numpy as snp

        options = {"arg_shape": (N,)}

        def jacobian_func(x):
            return snp.array([x[0] ** 2] + [x[i] * x[i - 1] for i in range(1, N)])

        def hessian_func(x):
            return snp.sum((x[1:] - x[:-1]) ** 4) + snp.sum(snp.sin(x) * x)

    else:
        options = {}
        jacobian_func, hessian_func = _framework_functions(backend)
    is_hessian = op.startswith(("hessian", "mtp"))
    func = hessian_func if is_hessian else jacobian_func
    pattern = band <= 1 if is_hessian else (band <= 1) & np.tril(np.ones((N, N), bool))
    x = RNG.standard_normal(N)
    sparse = getattr(diffops, op)(func, backend=backend, sparsity=pattern, **options)(x)
    dense = getattr(diffops, op)(func, backend=backend, **options)(x)
    k = 1 if callable(sparse[0]) else 0
    np.testing.assert_allclose(sparse[k].toarray(), dense[k], rtol=1e-12, atol=1e-14)
    if k:
        m = RNG.standard_normal(dense[0].arg_shape)
        np.testing.assert_allclose(sparse[0](m), dense[0](m), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "backend", [b for b in ("jax", "autograd") if b in SELECTED_BACKENDS]
)
def test_results_carry_scipys_canonical_flags_checked_once(backend):
    """Every result says it has sorted indices and no duplicates without SciPy
    checking its arrays again (``spsolve`` checked each one: 14 µs at 15,000
    entries); the flag is true of the arrays even when the given pattern had
    duplicates and unsorted entries."""
    require_backend(backend)
    _, hessian_func = _framework_functions(backend)
    band = np.abs(np.subtract.outer(np.arange(N), np.arange(N))) <= 1
    rows, cols = np.nonzero(band)
    order = np.r_[RNG.permutation(rows.size), 0, 3]  # shuffled, two duplicates
    rows, cols = rows[order], cols[order]
    given = scipy_sparse.coo_array((np.ones(rows.size), (rows, cols)), shape=(N, N))
    d = diffops.hessian_grad_and_value(hessian_func, backend=backend, sparsity=given)
    x = RNG.standard_normal(N)
    for _ in range(2):
        matrix = d(x)[0]
        assert "_has_canonical_format" in vars(matrix)  # SciPy's cached flag
        rebuilt = scipy_sparse.csr_array(
            (matrix.data, matrix.indices, matrix.indptr), shape=matrix.shape
        )
        assert matrix.has_canonical_format
        assert rebuilt.has_canonical_format
        dense = diffops.hessian_grad_and_value(hessian_func, backend=backend)(x)[0]
        b = np.arange(1.0, N + 1)
        solved = scipy_sparse.linalg.spsolve(matrix.tocsc(), b)
        np.testing.assert_allclose(solved, np.linalg.solve(dense, b), rtol=1e-9)


@pytest.mark.parametrize(
    "backend", [b for b in ("autograd", "torch", "symnum") if b in SELECTED_BACKENDS]
)
def test_detect_without_a_traced_program_is_a_clear_error(backend):
    require_backend(backend)
    options = {"arg_shape": (N,)} if backend == "symnum" else {}
    func = (lambda x: x * 2) if backend != "symnum" else (lambda x: 2 * x)
    with pytest.raises(SparsityError, match="Pass the pattern"):
        diffops.jacobian_and_value(func, backend=backend, sparsity="detect", **options)(
            np.ones(N)
        )


def test_bad_options_are_build_time_errors():
    require_backend("jax")
    with pytest.raises(SparsityError, match="no Jacobian or Hessian"):
        diffops.grad_and_value(np.sum, sparsity="detect")
    with pytest.raises(SparsityError, match="not understood"):
        diffops.jacobian_and_value(np.sum, sparsity="auto")
    with pytest.raises(SparsityError, match="boolean pattern"):
        diffops.jacobian_and_value(np.sum, sparsity=3)


# ---------------------------------------------------------------------------------
# The colorings themselves


def _random_symmetric(n, density, seed):
    rng = np.random.default_rng(seed)
    mask = rng.uniform(size=(n, n)) < density
    mask = mask | mask.T | np.eye(n, dtype=bool)
    return scipy_sparse.csr_array(mask.astype(np.int8))


def _decompressed(plan, matrix):
    """What a plan reads from the products of ``matrix`` (the oracle's own)."""
    if plan.mode == "dense":
        return plan.matrix(matrix.ravel()[plan.index]).toarray()
    n_out, n_in = matrix.shape
    forward = plan.forward_seeds.reshape(plan.forward_seeds.shape[0], n_in)
    reverse = plan.reverse_seeds.reshape(plan.reverse_seeds.shape[0], n_out)
    products = np.concatenate(
        [(forward @ matrix.T).ravel(), (reverse @ matrix).ravel()]
    )
    if plan.substitution is not None:
        return plan.matrix(plan.finish(products)).toarray()
    return plan.matrix(products[plan.index]).toarray()


@pytest.mark.parametrize("seed", range(10))
def test_star_coloring_allows_direct_recovery_of_every_entry(seed):
    pattern = _random_symmetric(30, 0.15, seed)
    colors = star_coloring(pattern)
    rows, cols = pattern.nonzero()
    off = rows != cols
    assert np.all(colors[rows[off]] != colors[cols[off]])  # a proper coloring
    # Raises if not a star coloring.
    plan = hessian_plan(pattern, (30,), np.float64, coloring="star")
    assert plan.mode == "symmetric"
    h = RNG.standard_normal((30, 30))
    h = (h + h.T) * pattern.toarray()
    np.testing.assert_allclose(_decompressed(plan, h), h)


def test_star_coloring_colors_components_apart_when_greedy_is_unaffordable():
    # CHARDIS0's Hessian: two interleaved cliques (x and y coordinates), here
    # with a path of three and isolated vertices beside them. Greedy work is
    # 2,000 * 999**2 steps (too much), one band over all needs 2,000 colors; each
    # clique alone needs its 1,000, and the components can share colors.
    m, extra = 1000, 6
    n = 2 * m + extra
    mask = np.zeros((n, n), dtype=bool)
    mask[0 : 2 * m : 2, 0 : 2 * m : 2] = True
    mask[1 : 2 * m : 2, 1 : 2 * m : 2] = True
    path = np.arange(2 * m, 2 * m + 3)
    mask[path[:-1], path[1:]] = mask[path[1:], path[:-1]] = True
    mask[np.arange(n), np.arange(n)] = True
    pattern = scipy_sparse.csr_array(mask.astype(np.int8))
    plan = hessian_plan(pattern, (n,), np.float64, coloring="star")
    assert (plan.mode, plan.n_colors) == ("symmetric", m)
    h = RNG.standard_normal((n, n))
    h = (h + h.T) * mask
    np.testing.assert_allclose(_decompressed(plan, h), h)


def test_jacobian_coloring_colors_components_apart_when_greedy_is_unaffordable():
    # Two interleaved dense blocks: rows and columns of even index, and of odd.
    # One band over all needs 1,999 colors; each block alone its 1,000.
    m = 1000
    n = 2 * m
    mask = np.zeros((n, n), dtype=bool)
    mask[0::2, 0::2] = mask[1::2, 1::2] = True
    pattern = scipy_sparse.csr_array(mask.astype(np.int8))
    for mode in ("forward", "reverse", "auto"):
        plan = jacobian_plan(pattern, (n,), (n,), np.float64, mode)
        assert plan.n_colors == m, mode
    j = RNG.standard_normal((n, n)) * mask
    np.testing.assert_allclose(_decompressed(plan, j), j)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("mode", ["forward", "reverse", "auto"])
def test_jacobian_colorings_recover_every_entry(seed, mode):
    rng = np.random.default_rng(seed)
    mask = rng.uniform(size=(12, 9)) < 0.2
    pattern = scipy_sparse.csr_array(mask.astype(np.int8))
    j = rng.standard_normal((12, 9)) * mask
    plan = jacobian_plan(pattern, (9,), (12,), np.float64, mode)
    np.testing.assert_allclose(_decompressed(plan, j), j)


@pytest.mark.parametrize("n", [50, 400])
def test_arrow_jacobian_is_bidirectional_with_few_products(n):
    mask = np.eye(n, dtype=bool)
    mask[0, :] = True  # a dense row
    mask[:, -1] = True  # and a dense column
    pattern = scipy_sparse.csr_array(mask.astype(np.int8))
    plan = jacobian_plan(pattern, (n,), (n,), np.float64)
    assert plan.mode == "bidirectional"
    assert plan.n_colors <= 3  # forward or reverse alone need n
    j = RNG.standard_normal((n, n)) * mask
    np.testing.assert_allclose(_decompressed(plan, j), j)


@pytest.mark.parametrize("seed", range(12))
def test_bidirectional_candidates_skipped_by_their_bound_could_not_win(seed):
    from diffops.sparse.jacobian_colorings import (
        bidirectional_splits,
        forward_split,
        reverse_split,
    )

    rng = np.random.default_rng(seed)
    n_out, n_in = rng.integers(20, 120, size=2)
    mask = rng.uniform(size=(n_out, n_in)) < rng.uniform(0.01, 0.08)
    mask[rng.choice(n_out, rng.integers(1, 6), replace=False), :] = True
    mask[:, rng.choice(n_in, rng.integers(0, 6), replace=False)] = True
    pattern = scipy_sparse.csr_array(mask.astype(np.int8))
    one_mode = min(forward_split(pattern).products, reverse_split(pattern).products)
    every = bidirectional_splits(pattern)
    bounded = bidirectional_splits(pattern, best=one_mode)
    assert len(bounded) <= len(every)
    fewest = min([one_mode] + [s.products for s in every])
    assert min([one_mode] + [s.products for s in bounded]) == fewest
    plan = jacobian_plan(pattern, (n_in,), (n_out,), np.float64)
    assert plan.n_colors == min(fewest, n_in, n_out)
    j = rng.standard_normal((n_out, n_in)) * mask
    np.testing.assert_allclose(_decompressed(plan, j), j)


def test_dense_patterns_take_the_dense_path_and_say_why():
    # Large and dense: no coloring at all; small: colored, dense when no product
    # is saved.
    pattern = scipy_sparse.csr_array(np.ones((400, 300), dtype=np.int8))
    plan = jacobian_plan(pattern, (300,), (400,), np.float64)
    assert plan.mode == "dense"
    assert "100%" in plan.reason
    pattern = scipy_sparse.csr_array(np.ones((40, 30), dtype=np.int8))
    plan = jacobian_plan(pattern, (30,), (40,), np.float64)
    assert plan.mode == "dense"
    assert "needs 30 products" in plan.reason
    hessian = hessian_plan(_random_symmetric(200, 0.9, 0), (200,), np.float64)
    assert hessian.mode == "dense"
    h = RNG.standard_normal((200, 200))
    h = (h + h.T) * hessian.pattern.toarray()
    np.testing.assert_allclose(_decompressed(hessian, h), h)


def _assert_star_plan(mask: np.ndarray, n_colors: int) -> None:
    """The Hessian plan of ``mask``: a star coloring of ``n_colors``, exact values."""
    n = mask.shape[0]
    plan = hessian_plan(scipy_sparse.csr_array(mask.astype(np.int8)), (n,), np.float64)
    assert (plan.mode, plan.n_colors) == ("symmetric", n_colors)
    h = RNG.standard_normal((n, n))
    h = (h + h.T) * mask
    np.testing.assert_allclose(_decompressed(plan, h), h)


def test_small_half_full_patterns_are_still_colored():
    # An arrowhead of 4 variables: 10 of 16 entries, 2 star colors instead of 4
    # products (CUTEst's BT11 Lagrangian: 3 colors where the dense path took 5).
    mask = np.eye(4, dtype=bool)
    mask[0, :] = mask[:, 0] = True
    _assert_star_plan(mask, 2)


def test_a_short_band_takes_the_greedy_colors_when_fewer():
    # A tridiagonal Hessian of 3 variables needs 2 star colors (the band's own
    # coloring, i mod 3, took 3 and so the dense path; CUTEst's HS26 Lagrangian).
    mask = (
        np.eye(3, dtype=bool) | np.eye(3, k=1, dtype=bool) | np.eye(3, k=-1, dtype=bool)
    )
    _assert_star_plan(mask, 2)


def test_hubs_among_isolated_vertices_take_the_greedy_colors_when_fewer():
    # A clique of 5 beside 10 unconnected variables (CUTEst's HS117 Lagrangian):
    # the hubs' coloring (a color per hub, one more for the rest) took 6, greedy 5.
    mask = np.zeros((15, 15), dtype=bool)
    mask[10:, 10:] = True
    _assert_star_plan(mask, 5)


def test_an_empty_pattern_needs_no_products():
    for plan in (
        hessian_plan(scipy_sparse.csr_array((5, 5), dtype=np.int8), (5,), np.float64),
        jacobian_plan(
            scipy_sparse.csr_array((3, 5), dtype=np.int8), (5,), (3,), np.float64
        ),
        jacobian_plan(
            scipy_sparse.csr_array((3, 5), dtype=np.int8),
            (5,),
            (3,),
            np.float64,
            mode="reverse",
        ),
    ):
        assert plan.n_colors == 0
        assert plan.matrix(np.zeros(0)).nnz == 0


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_full_pattern_is_the_dense_matrix_unchanged(backend, dtype):
    # Every entry structural: the dense plan returns the raveled matrix, no gather;
    # the CSR result is a valid SciPy array of the data's dtype, its index arrays
    # its own.
    require_backend(backend)
    from diffops.models import namespace

    xp = namespace(backend)
    x = np.linspace(0.5, 1.5, 6).astype(dtype)

    def coupled(y):
        return xp.sum(y) ** 3 + xp.sum(xp.sin(y))

    options = {"arg_shape": (6,)} if backend == "symnum" else {}
    pattern = np.ones((6, 6), dtype=bool)
    sparse_h = diffops.hessian_grad_and_value(
        coupled, backend, sparsity=pattern, **options
    )
    dense_h = diffops.hessian_grad_and_value(coupled, backend, **options)
    for _ in range(2):
        hessian, grad, value = sparse_h(x)
        expected, grad_d, value_d = dense_h(x)
        hessian.check_format(full_check=True)
        assert hessian.dtype == dtype
        assert hessian.nnz == 36
        tol = 1e-4 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(hessian.toarray(), expected, rtol=tol)
        np.testing.assert_allclose(grad, grad_d, rtol=tol)
        np.testing.assert_allclose(value, value_d, rtol=tol)
        hessian.indices[:] = 0  # the next call must not see this
    assert sparse_h.coloring["mode"] == "dense"


@pytest.mark.parametrize("seed", range(6))
def test_random_patterns_with_dense_rows_and_columns_recover_every_entry(seed):
    rng = np.random.default_rng(seed)
    n_out, n_in = rng.integers(20, 80, 2)
    mask = rng.uniform(size=(n_out, n_in)) < 0.03
    mask[rng.integers(0, n_out, 2), :] = True
    mask[:, rng.integers(0, n_in, 2)] = True
    pattern = scipy_sparse.csr_array(mask.astype(np.int8))
    j = rng.standard_normal((n_out, n_in)) * mask
    for mode in ("auto", "forward", "reverse"):
        plan = jacobian_plan(pattern, (n_in,), (n_out,), np.float64, mode)
        np.testing.assert_allclose(_decompressed(plan, j), j)
        if mode == "auto":
            assert plan.n_colors <= min(n_in, n_out)


# ---------------------------------------------------------------------------------
# The checker compares sparse results with finite differences and with dense ones


@pytest.mark.parametrize("op", ["jacobian_and_value", "mhp_jacobian_and_value"])
def test_checker_passes_sparse_jacobians_and_catches_a_wrong_pattern(op):
    jnp = _jnp()
    func = jacobian_functions(jnp)["banded"]
    x = RNG.standard_normal(N)
    sparse = getattr(diffops, op)(func, sparsity="detect")
    report = diffops.check_derivatives(func, x, reference="jax", **{op: sparse})
    assert report.passed, str(report)
    # A pattern too small for the function: on backends that cannot detect the
    # structure it is not caught when built, but the checker sees the missing entries.
    require_backend("autograd")
    import autograd.numpy as anp

    def banded(y):
        return anp.concatenate(
            [y[:1] ** 2, y[1:-1] ** 2 - y[:-2] * y[2:], anp.sin(y[-1:])]
        )

    too_small = getattr(diffops, op)(banded, backend="autograd", sparsity=np.eye(N))
    report = diffops.check_derivatives(banded, x, **{op: too_small})
    assert not report.passed


@pytest.mark.parametrize("op", ["hessian_grad_and_value", "mtp_hessian_grad_and_value"])
def test_checker_passes_sparse_hessians(op):
    jnp = _jnp()
    func = hessian_functions(jnp)["arrow"]
    x = RNG.standard_normal(N)
    sparse = getattr(diffops, op)(func, sparsity="detect")
    report = diffops.check_derivatives(func, x, reference="jax", **{op: sparse})
    assert report.passed, str(report)


def test_coloring_of_a_second_derivative_function_with_the_same_recipe():
    jnp = _jnp()
    func = jacobian_functions(jnp)["banded"]
    first = diffops.jacobian_and_value(func, sparsity="detect")
    first(np.ones(N))
    second = diffops.jacobian_and_value(func, sparsity="detect")  # shares the build
    assert second.coloring is None  # not called yet
    second(np.ones(N))
    assert second.coloring == first.coloring


def test_a_stored_zero_of_a_scipy_pattern_is_structural():
    # SciPy's meaning of structure (nnz counts a stored zero); a NumPy pattern's
    # zeros are not structural. Both results hold the exact values.
    x = np.array([0.5, 1.0, 2.0])
    stored = scipy_sparse.csr_array(
        (np.array([1.0, 0.0, 1.0]), np.array([0, 1, 2]), np.array([0, 1, 2, 3])),
        shape=(3, 3),
    )
    assert stored.nnz == 3
    dense = np.eye(3, dtype=bool)
    dense[1, 1] = False
    for pattern, nnz in [(stored, 3), (dense, 2)]:
        jacobian, _ = diffops.jacobian_and_value(
            lambda y: y * np.array([1.0, 0.0, 1.0]), "autograd", sparsity=pattern
        )(x)
        assert jacobian.nnz == nnz
        np.testing.assert_allclose(jacobian.toarray(), np.diag([1.0, 0.0, 1.0]))
