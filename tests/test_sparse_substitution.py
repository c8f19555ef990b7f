"""Sparse Hessians by acyclic coloring and recovery by substitution."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import diffops
from _backends import require_backend
from diffops.sparse import (
    SparsityError,
    acyclic_coloring,
    hessian_plan,
    star_coloring,
)
from diffops.sparse.patterns import canonical
from diffops.sparse.substitution import recovery

scipy_sparse = pytest.importorskip("scipy.sparse")
csgraph = pytest.importorskip("scipy.sparse.csgraph")

RNG = np.random.default_rng(20261203)


def _pattern(mask):
    if scipy_sparse.issparse(mask):
        return scipy_sparse.csr_array(mask, dtype=np.int8)
    return scipy_sparse.csr_array(np.asarray(mask, dtype=np.int8))


def _random_pattern(n, density, seed, diagonal=0.7):
    rng = np.random.default_rng(seed)
    mask = rng.uniform(size=(n, n)) < density
    mask = mask | mask.T
    mask[np.arange(n), np.arange(n)] = rng.uniform(size=n) < diagonal
    return _pattern(mask)


def _band(n, b):
    offsets = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    return _pattern(offsets <= b)


def _arrow(n):
    mask = np.eye(n, dtype=bool)
    mask[0, :] = mask[:, 0] = True
    return _pattern(mask)


def _grid(k):
    line = scipy_sparse.diags_array(
        [np.ones(k - 1), np.ones(k), np.ones(k - 1)], offsets=[-1, 0, 1]
    )
    eye = scipy_sparse.identity(k)
    return _pattern((scipy_sparse.kron(eye, line) + scipy_sparse.kron(line, eye)) != 0)


def assert_acyclic(pattern, colors):
    """Checked without the coloring code: no edge inside a color, and the subgraph
    of every two colors is a forest (edges = vertices - components)."""
    rows, cols = pattern.nonzero()
    off = rows != cols
    rows, cols = rows[off], cols[off]
    assert np.all(colors[rows] != colors[cols])
    k = int(colors.max()) + 1 if colors.size else 0
    for a in range(k):
        for b in range(a + 1, k):
            keep = ((colors[rows] == a) & (colors[cols] == b)) | (
                (colors[rows] == b) & (colors[cols] == a)
            )
            upper = keep & (rows < cols)
            vertices = np.unique(np.concatenate([rows[keep], cols[keep]]))
            graph = scipy_sparse.csr_array(
                (np.ones(int(keep.sum())), (rows[keep], cols[keep])),
                shape=pattern.shape,
            )
            _, labels = csgraph.connected_components(graph, directed=False)
            components = np.unique(labels[vertices]).size
            assert int(upper.sum()) == vertices.size - components, (a, b)


def _symmetric_values(pattern, rng, dtype):
    h = rng.standard_normal(pattern.shape)
    return ((h + h.T) * pattern.toarray()).astype(dtype)


def _recovered(plan, h):
    """What a plan recovers from the exact Hessian-vector products of ``h``."""
    if plan.mode == "dense":
        return plan.matrix(h.ravel()[plan.index]).toarray()
    n = h.shape[0]
    seeds = plan.forward_seeds.reshape(plan.forward_seeds.shape[0], n)
    products = (seeds.astype(h.dtype) @ h.T).ravel()
    if plan.substitution is None:  # the program gathers
        return plan.matrix(products[plan.index]).toarray()
    return plan.matrix(plan.finish(products)).toarray()  # gathers and substitutes


# ---------------------------------------------------------------------------------
# The coloring


@pytest.mark.parametrize("seed", range(12))
def test_acyclic_coloring_of_random_patterns(seed):
    n = int(np.random.default_rng(seed).integers(2, 70))
    pattern = _random_pattern(n, 0.03 + 0.02 * (seed % 6), seed)
    colors = acyclic_coloring(pattern)
    assert_acyclic(pattern, colors)
    assert colors.max() <= star_coloring(pattern).max()


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 40),
    density=st.floats(0.0, 0.3),
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_property_acyclic_and_recovered(n, density, seed, dtype):
    # Any symmetric pattern and values: an acyclic coloring, never more colors than
    # the star coloring, and the substitution recovers the matrix.
    pattern = _random_pattern(n, density, seed, diagonal=0.5)
    colors = acyclic_coloring(pattern)
    assert_acyclic(pattern, colors)
    assert colors.max(initial=0) <= star_coloring(pattern).max(initial=0)
    plan = hessian_plan(pattern, (n,), dtype, coloring="acyclic")
    h = _symmetric_values(pattern, np.random.default_rng(seed), dtype)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(_recovered(plan, h), h, rtol=tol, atol=tol)


def test_a_star_coloring_passes_the_acyclic_check_and_a_cycle_fails():
    pattern = _random_pattern(40, 0.1, 3)
    assert_acyclic(pattern, star_coloring(pattern))  # every star coloring is acyclic
    square = _pattern([[1, 1, 0, 1], [1, 1, 1, 0], [0, 1, 1, 1], [1, 0, 1, 1]])
    with pytest.raises(AssertionError):
        assert_acyclic(square, np.array([0, 1, 0, 1]))
    with pytest.raises(SparsityError, match="cycle"):
        recovery(square, np.array([0, 1, 0, 1]))
    assert_acyclic(square, acyclic_coloring(square))


@pytest.mark.parametrize(
    ("name", "pattern", "acyclic", "star"),
    [
        ("tridiagonal", _band(200, 1), 2, 3),
        ("pentadiagonal", _band(200, 2), 3, 5),
        ("band 4", _band(120, 4), 5, 9),
        ("arrowhead", _arrow(300), 2, 2),
        ("grid", _grid(20), 4, 5),  # greedy: 4 (the optimum is 3)
    ],
)
def test_color_counts(name, pattern, acyclic, star):
    colors = acyclic_coloring(pattern)
    assert_acyclic(pattern, colors)
    assert int(colors.max()) + 1 <= acyclic, name
    assert int(star_coloring(pattern).max()) + 1 == star, name


# ---------------------------------------------------------------------------------
# Recovery from the products of a random symmetric matrix


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sequential", [True, False])
def test_substitution_recovers_random_symmetric_matrices(
    seed, dtype, sequential, monkeypatch
):
    # Both ways of substituting: the Numba kernel (from any size) and prefix sums.
    from diffops.sparse import substitution as module

    if sequential:
        pytest.importorskip("numba")
    monkeypatch.setattr(module, "SEQUENTIAL_SLOTS", 0 if sequential else 10**9)
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 90))
    pattern = _random_pattern(n, float(rng.uniform(0.01, 0.12)), seed)
    plan = hessian_plan(pattern, (n,), dtype, coloring="acyclic")
    if plan.mode == "dense":  # nearly dense: nothing to substitute
        return
    assert plan.mode == "substitution"
    h = _symmetric_values(pattern, rng, dtype)
    tol = 5e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(_recovered(plan, h), h, rtol=tol, atol=tol)
    products = (plan.forward_seeds.reshape(-1, n) @ h.T).ravel().astype(dtype)
    np.testing.assert_allclose(  # in a program: gathered there, then prefix sums
        plan.substitution.recover(products[plan.index], np),
        plan.substitution.finish(products),
        rtol=tol,
        atol=tol,
    )


@pytest.mark.parametrize(
    "pattern",
    [
        _band(3000, 1),  # one path of 3000 vertices: depth 3000, no loop over it
        _band(500, 3),
        _grid(25),
        _arrow(400),
    ],
    ids=["path", "band", "grid", "arrow"],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_substitution_on_structured_patterns(pattern, dtype):
    n = pattern.shape[0]
    plan = hessian_plan(pattern, (n,), dtype, coloring="acyclic")
    h = _symmetric_values(pattern, RNG, dtype)
    # Errors grow with the trees' depth (a path: n); float32 stays near 1e-5.
    tol = 1e-4 if dtype == np.float32 else 1e-11
    recovered = _recovered(plan, h)
    np.testing.assert_allclose(recovered, h, rtol=tol, atol=tol * np.abs(h).max())


@pytest.mark.parametrize(
    "mask",
    [
        np.zeros((5, 5), dtype=bool),  # empty
        np.eye(6, dtype=bool),  # diagonal only
        np.ones((1, 1), dtype=bool),  # n = 1
        np.zeros((1, 1), dtype=bool),
        np.pad(np.ones((2, 2), dtype=bool), 3),  # isolated vertices around a pair
    ],
    ids=["empty", "diagonal", "one", "one-empty", "isolated"],
)
def test_edge_cases(mask):
    pattern = _pattern(mask)
    n = mask.shape[0]
    colors = acyclic_coloring(pattern)
    assert colors.shape == (n,)
    assert_acyclic(pattern, colors)
    plan = hessian_plan(pattern, (n,), np.float64, coloring="acyclic")
    h = _symmetric_values(pattern, RNG, np.float64)
    np.testing.assert_allclose(_recovered(plan, h), h)


# ---------------------------------------------------------------------------------
# Through the operators


def _jnp():
    require_backend("jax")
    import jax.numpy as jnp

    return jnp


def _functions(jnp):
    mask = _random_pattern(30, 0.06, 1).toarray()
    weights = jnp.asarray(RNG.standard_normal((30, 30)) * mask)

    def chained(x):
        return jnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)

    def band(x):
        return jnp.sum(jnp.cos(x[3:] * x[:-3])) + jnp.sum(x[1:] * x[:-1] ** 3)

    def grid(x):
        y = x.reshape(5, 6)
        return jnp.sum(jnp.sin(y[1:] * y[:-1])) + jnp.sum((y[:, 1:] - y[:, :-1]) ** 4)

    def arrow(x):
        return x[0] * jnp.sum(x[1:] ** 2) + jnp.sum(x**4)

    def random(x):
        return jnp.sum(jnp.tanh(weights @ x) ** 2)

    return {
        "chained": chained,
        "band": band,
        "grid": grid,
        "arrow": arrow,
        "random": random,
    }


@pytest.mark.parametrize("structure", ["chained", "band", "grid", "arrow", "random"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", ["jax", "jax_nojit"])
def test_acyclic_hessians_match_dense(structure, dtype, backend):
    func = _functions(_jnp())[structure]
    x = RNG.standard_normal(30).astype(dtype)
    derivative = diffops.hessian_grad_and_value(
        func, backend=backend, sparsity="detect", coloring="acyclic"
    )
    hessian, grad, _value = derivative(x)
    dense = diffops.hessian_grad_and_value(func, backend=backend)(x)
    assert hessian.dtype == dtype
    tol = 2e-4 if dtype == np.float32 else 1e-11
    scale = np.abs(dense[0]).max()
    np.testing.assert_allclose(hessian.toarray(), dense[0], rtol=tol, atol=tol * scale)
    np.testing.assert_allclose(grad, dense[1], rtol=tol)
    coloring = derivative.coloring
    assert coloring["mode"] in ("substitution", "dense")
    if coloring["mode"] == "substitution":
        assert "acyclic" in coloring["reason"]
        # The result's structure (an entry whose value is exactly 0 at x included).
        star = hessian_plan(canonical(hessian), (30,), dtype, coloring="star")
        assert coloring["colors"] <= star.n_colors


@pytest.mark.parametrize("as_numpy", [True, False])
def test_mtp_and_framework_arrays_substitute_inside_the_program(as_numpy):
    func = _functions(_jnp())["band"]
    x = RNG.standard_normal(30)
    derivative = diffops.mtp_hessian_grad_and_value(
        func, sparsity="detect", coloring="acyclic", as_numpy=as_numpy
    )
    mtp, hessian, _grad, _value = derivative(x)
    dense_mtp, dense, _, _ = diffops.mtp_hessian_grad_and_value(func)(x)
    plan = derivative.sparse.last
    assert plan.mode == "substitution"
    assert not plan.gather_after
    data = hessian.data if as_numpy else plan.matrix(np.asarray(hessian)).data
    np.testing.assert_allclose(
        plan.matrix(data).toarray(), dense, rtol=1e-11, atol=1e-11
    )
    m = RNG.standard_normal((30, 30))
    np.testing.assert_allclose(np.asarray(mtp(m)), dense_mtp(m), rtol=1e-10, atol=1e-10)


def test_given_pattern_on_autograd():
    require_backend("autograd")
    import autograd.numpy as anp

    def func(x):
        return anp.sum((x[1:] - x[:-1]) ** 4) + anp.sum(anp.sin(x) * x)

    n = 40
    x = RNG.standard_normal(n)
    derivative = diffops.hessian_grad_and_value(
        func, backend="autograd", sparsity=_band(n, 1), coloring="acyclic"
    )
    hessian, _, _ = derivative(x)
    dense, _, _ = diffops.hessian_grad_and_value(func, backend="autograd")(x)
    np.testing.assert_allclose(hessian.toarray(), dense, rtol=1e-12, atol=1e-12)
    assert derivative.coloring["colors"] == 2


def test_auto_takes_substitution_where_it_saves_enough():
    pytest.importorskip("numba")
    band = hessian_plan(_band(400, 3), (400,), np.float64)
    assert band.mode == "substitution"  # 4 products instead of 7
    assert band.n_colors == 4
    assert "star coloring needs 7" in band.reason
    path = hessian_plan(_band(400, 1), (400,), np.float64)
    assert path.mode == "symmetric"  # 2 instead of 3: measured slower per call
    assert "acyclic coloring cannot save 3" in path.reason  # 3 star colors
    grid = hessian_plan(_grid(20), (400,), np.float64)
    assert grid.mode == "symmetric"
    inside = hessian_plan(_band(400, 3), (400,), np.float64, in_program=True)
    assert inside.mode == "symmetric"  # prefix sums in the program cost more
    acyclic = hessian_plan(_band(400, 1), (400,), np.float64, coloring="acyclic")
    assert acyclic.mode == "substitution"
    assert acyclic.n_colors == 2


def test_coloring_option_errors():
    jnp = _jnp()
    with pytest.raises(SparsityError, match="sparsity="):
        diffops.hessian_grad_and_value(jnp.sum, coloring="acyclic")
    with pytest.raises(SparsityError, match="not one of"):
        diffops.hessian_grad_and_value(jnp.sum, sparsity="detect", coloring="greedy")
    with pytest.raises(SparsityError, match="takes no coloring"):
        diffops.jacobian_and_value(jnp.sin, sparsity="detect", coloring="acyclic")
    with pytest.raises(SparsityError, match="not one of"):
        hessian_plan(_band(5, 1), (5,), np.float64, coloring="greedy")
    # The default is no option at all: the recipe is the same as without it.
    assert diffops.hessian_grad_and_value(jnp.sum, sparsity="detect").options == {
        "sparsity": "detect"
    }


def test_cold_kernels_run_as_python_then_load_in_a_thread(monkeypatch):
    """Until a kernel is loaded, mid-size work runs as Python and a thread loads it;
    the compiled kernel then gives the same numbers bit for bit."""
    from diffops.sparse import greedy, kernels
    from diffops.sparse.substitution import substitute_kernel

    pytest.importorskip("numba")
    monkeypatch.setattr(kernels, "_COMPILED", {})
    monkeypatch.setattr(kernels, "_LOADERS", {})
    monkeypatch.setattr(kernels, "_PENDING", {})
    pattern = _band(400, 2)
    index, steps = recovery(pattern, acyclic_coloring(pattern))
    assert steps.slots >= 256  # finish runs the substitution kernel
    rng = np.random.default_rng(0)
    products = rng.standard_normal(int(index.max()) + 1) * 10.0 ** rng.integers(
        -8, 8, int(index.max()) + 1
    )
    single = products.astype(np.float32)
    cold = steps.finish(products)  # as Python; queues the load
    cold_single = steps.finish(single)
    assert set(kernels._PENDING) == {"substitute_kernel"}
    assert not kernels._LOADERS
    _, queued = kernels._PENDING["substitute_kernel"]
    assert all(np.size(a) <= 8 for a in queued)  # no user data kept
    kernels.start_loading()
    assert not kernels._PENDING
    kernels.join_loaders()
    assert kernels.loaded(substitute_kernel)
    warm = steps.finish(products)  # compiled, the signature the thread loaded
    assert len(kernels.jit(substitute_kernel).signatures) == 1
    np.testing.assert_array_equal(warm, cold)
    assert warm.tobytes() == cold.tobytes()
    warm_single = steps.finish(single)  # float32: compiled for that type now
    assert warm_single.dtype == np.float32
    assert warm_single.tobytes() == cold_single.tobytes()
    expected = steps.recover(np.take(products, steps.index), np)
    np.testing.assert_allclose(warm, expected, rtol=1e-9, atol=1e-9 * abs(cold).max())
    # A coloring kernel: Python below the cold limit, same colors once loaded.
    order, ptr, adj = _star_inputs(pattern)
    work = greedy.star_work(ptr)
    assert kernels.PYTHON_WORK < work <= kernels.COLD_PYTHON_WORK
    python_colors = greedy.star_coloring(order, ptr, adj)
    kernels.start_loading()
    kernels.join_loaders()
    assert kernels.loaded(greedy.star_coloring_kernel)
    np.testing.assert_array_equal(greedy.star_coloring(order, ptr, adj), python_colors)


def _star_inputs(pattern):
    """The star kernel's arguments for ``pattern``, repeated to pass PYTHON_WORK."""
    from diffops.sparse.coloring import adjacency

    graph = adjacency(scipy_sparse.block_diag([pattern] * 30, format="csr"))
    order = np.arange(graph.shape[0], dtype=np.int64)
    return order, graph.indptr.astype(np.int64), graph.indices.astype(np.int64)


def test_a_fork_waits_for_the_kernel_loading_thread(tmp_path):
    """No loading thread is running when the process forks (its locks stay free)."""
    pytest.importorskip("numba")
    script = """
import os, numpy as np
from diffops.sparse import greedy, kernels
kernels.PYTHON_WORK = 0  # any work is mid-size
order, ptr, adj = np.arange(3), np.array([0, 1, 2, 2]), np.array([1, 0])
greedy.star_coloring(order, ptr, adj)
kernels.start_loading()
thread = kernels._LOADERS["star_coloring_kernel"]
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
state = "alive" if thread.is_alive() else "joined"
print(state, kernels.loaded(greedy.star_coloring_kernel))
"""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["joined", "True"]


def test_a_queued_load_keeps_the_numba_type_of_each_argument():
    numba = pytest.importorskip("numba")
    from diffops.sparse import kernels

    read_only = np.zeros(6)
    read_only.flags.writeable = False
    arrays = [
        np.zeros(5),
        np.zeros((2, 3)),
        np.zeros((3, 4))[:, ::2],
        np.asfortranarray(np.zeros((3, 4))),
        np.zeros(4, np.float32),
        np.arange(3),
        np.zeros(3, bool),
        read_only,
        7,
    ]
    for a in arrays:
        assert numba.typeof(kernels._example(a)) == numba.typeof(a)
