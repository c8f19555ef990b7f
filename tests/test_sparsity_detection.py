"""Structure detection never misses a non-zero: cases, every primitive, random programs.

The oracle is the dense derivative: at several random points, every entry where the
dense Jacobian (or Hessian) is non-zero must be in the detected pattern, and the
sparse result's values must equal the dense ones.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import diffops
from _backends import require_backend

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(autouse=True)
def _jax() -> None:
    require_backend("jax")


def _dense_jacobian(f: Callable[..., Any], x: np.ndarray, args: tuple[Any, ...]) -> Any:
    import jax

    with jax.enable_x64(True):
        try:
            out = jax.jacfwd(lambda y: f(y, *args))(x)
        except TypeError:  # custom_vjp: reverse mode only
            out = jax.jacrev(lambda y: f(y, *args))(x)
        return np.asarray(out).reshape(-1, x.size)


def _dense_hessian(f: Callable[..., Any], x: np.ndarray, args: tuple[Any, ...]) -> Any:
    import jax

    with jax.enable_x64(True):
        out = jax.hessian(lambda y: f(y, *args))(x)
        return np.asarray(out).reshape(x.size, x.size)


def _pattern(kind: str, f: Callable[..., Any], x: np.ndarray, args: Any) -> Any:
    import jax

    from diffops.backends import jax_sparsity

    detect = (
        jax_sparsity.hessian_pattern
        if kind == "hessian"
        else (jax_sparsity.jacobian_pattern)
    )
    with jax.enable_x64(True):
        return detect(f, x, args).toarray() != 0


def assert_covers(
    kind: str,
    f: Callable[..., Any],
    points: list[np.ndarray],
    args: tuple[Any, ...] = (),
) -> np.ndarray:
    """The detected pattern holds every non-zero of the dense derivative."""
    pattern = _pattern(kind, f, points[0], args)
    dense_of = _dense_hessian if kind == "hessian" else _dense_jacobian
    for x in points:
        dense = dense_of(f, x, args)
        assert pattern.shape == dense.shape
        missed = (dense != 0) & ~pattern
        assert not missed.any(), f"missed non-zeros at {np.argwhere(missed)[:5]}"
    return pattern


def _points(shape: tuple[int, ...], n: int = 3, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for _ in range(n)]


# ---------------------------------------------------------------------------------
# The constructs once detected wrongly, each against the dense result


def _cases() -> dict[str, tuple[str, Callable[..., Any], tuple[int, ...], Any]]:
    import jax
    import jax.numpy as jnp
    from jax import lax

    def running_product(y: Any) -> Any:
        def body(c: Any, xi: Any) -> Any:
            c = c * xi + xi
            return c, c

        return lax.scan(body, 0.0, y)[1]

    @jax.custom_vjp
    def square(y: Any) -> Any:
        return y**2

    square.defvjp(lambda y: (y**2, y), lambda r, g: (2 * r * g,))
    reversed_keys = jnp.arange(6.0)[::-1]
    return {
        "scan-ys": ("jacobian", running_product, (6,), ()),
        "scan-carry": (
            "jacobian",
            lambda y: jnp.atleast_1d(
                lax.scan(lambda c, v: (c * v + v, None), 0.0, y)[0]
            ),
            (6,),
            (),
        ),
        "fori-loop": (
            "jacobian",
            lambda y: jnp.atleast_1d(
                lax.fori_loop(0, 6, lambda i, c: c * y[i] + y[i], 0.0)
            ),
            (6,),
            (),
        ),
        "fori-loop-long": (
            "jacobian",
            lambda y: lax.fori_loop(
                0, 300, lambda i, c: c.at[i % 6].add(c[(i + 1) % 6] * 0.5), y
            ),
            (6,),
            (),
        ),
        "sort-key-val": (
            "jacobian",
            lambda y: lax.sort_key_val(reversed_keys, y)[1],
            (6,),
            (),
        ),
        "index-argument": ("jacobian", lambda y, i: y[i] ** 2, (6,), (np.arange(3),)),
        "scan-hessian": (
            "hessian",
            lambda y: jnp.sum(running_product(y) ** 2),
            (6,),
            (),
        ),
        "at-set-nonlinear": (
            "hessian",
            lambda y: jnp.sum(jnp.zeros(3).at[0].set(y[0] * y[1]) ** 2),
            (6,),
            (),
        ),
        "get-fill": (
            "jacobian",
            lambda y: (
                y.at[jnp.array([0, 7, 2])].get(mode="fill", fill_value=0.0) * y[1]
            ),
            (6,),
            (),
        ),
        "lax-map": ("jacobian", lambda y: lax.map(lambda v: v**2 + v, y), (6,), ()),
        "associative-scan": (
            "jacobian",
            lambda y: lax.associative_scan(jnp.multiply, y),
            (6,),
            (),
        ),
        "cumsum-reverse": (
            "jacobian",
            lambda y: lax.cumsum(y**2, reverse=True),
            (6,),
            (),
        ),
        "convolve": (
            "jacobian",
            lambda y: jnp.convolve(y, jnp.array([1.0, 2.0, 0.0]), mode="same"),
            (6,),
            (),
        ),
        "convolve-variable": (
            "jacobian",
            lambda y: jnp.convolve(y, y[:3], mode="full"),
            (6,),
            (),
        ),
        "custom-vjp": ("jacobian", lambda y: square(y)[::-1], (6,), ()),
        "cond": (
            "jacobian",
            lambda y: lax.cond(
                y[0] > 0, lambda v: v * 2, lambda v: jnp.sin(v[::-1]), y
            ),
            (6,),
            (),
        ),
        "while": (
            "jacobian",
            lambda y: lax.while_loop(
                lambda c: c[0] < 3,
                lambda c: (c[0] + 1, c[1] * jnp.roll(c[1], 1)),
                (0, y),
            )[1],
            (6,),
            (),
        ),
        "sort": ("jacobian", lambda y: jnp.sort(y * jnp.arange(6.0)), (6,), ()),
        "top-k": ("jacobian", lambda y: lax.top_k(y, 3)[0], (6,), ()),
        "matrix-2d": ("jacobian", lambda y: (y @ y.T).ravel(), (2, 3), ()),
        "zero-d": ("hessian", lambda y: jnp.sin(y) * y, (), ()),
        "dot-general-batched": (
            "jacobian",
            lambda y: jnp.einsum("bij,bjk->bik", y, y).ravel(),
            (2, 2, 2),
            (),
        ),
    }


@pytest.mark.parametrize("name", sorted(_cases()))
def test_detected_pattern_covers_the_dense_derivative(name):
    kind, f, shape, args = _cases()[name]
    assert_covers(kind, f, _points(shape), args)


@pytest.mark.parametrize("name", ["scan-ys", "custom-vjp", "at-set-nonlinear", "while"])
def test_sparse_values_equal_dense(name):
    kind, f, shape, args = _cases()[name]
    op = "hessian_grad_and_value" if kind == "hessian" else "jacobian_and_value"
    # reverse mode of lax.while_loop is not defined: forward mode for the dense one
    options = {"mode": "forward"} if name == "while" else {}
    sparse = getattr(diffops, op)(f, sparsity="detect", **options)
    dense = getattr(diffops, op)(f, **options)
    for x in _points(shape):
        np.testing.assert_allclose(
            sparse(x, *args)[0].toarray(),
            np.asarray(dense(x, *args)[0]).reshape(-1, x.size),
            rtol=1e-12,
            atol=1e-12,
        )


def test_index_argument_is_never_assumed_fixed():
    import jax.numpy as jnp

    derivative = diffops.jacobian_and_value(
        lambda y, i: jnp.sin(y[i]), sparsity="detect"
    )
    x = np.linspace(0.1, 0.6, 6)
    derivative(x, np.array([0, 1, 2]))
    jacobian, _ = derivative(x, np.array([3, 4, 5]))
    np.testing.assert_allclose(jacobian.toarray()[:, 3:], np.diag(np.cos(x[3:])))


@pytest.mark.parametrize("kind", ["jacobian", "hessian"])
def test_empty_input(kind):
    import jax.numpy as jnp

    x = np.zeros(0)
    if kind == "jacobian":
        matrix, value = diffops.jacobian_and_value(lambda y: y * 2, sparsity="detect")(
            x
        )
        assert matrix.shape == (0, 0)
        assert value.shape == (0,)
    else:
        mtp, matrix, grad, _ = diffops.mtp_hessian_grad_and_value(
            lambda y: jnp.sum(y**2), sparsity="detect"
        )(x)
        assert matrix.shape == (0, 0)
        assert grad.shape == (0,)
        assert mtp(np.zeros((0, 0))).shape == (0,)


def test_exact_on_shared_terms_and_constant_gathers():
    """BDQRTIC's structure (a band plus one variable shared by every term)."""
    import jax.numpy as jnp

    n = 30

    def bdqrtic(y: Any) -> Any:
        shared = 5 * y[-1] ** 2
        band = y[:-4] ** 2 + 2 * y[1:-3] ** 2 + 3 * y[2:-2] ** 2 + 4 * y[3:-1] ** 2
        return jnp.sum((-4 * y[:-4] + 3) ** 2 + (band + shared) ** 2)

    pattern = assert_covers("hessian", bdqrtic, _points((n,)))
    dense = _dense_hessian(bdqrtic, _points((n,))[0], ()) != 0
    np.testing.assert_array_equal(pattern, dense)


def test_exact_on_constant_sparse_matrices_and_scatters():
    import jax.numpy as jnp

    rng = np.random.default_rng(3)
    matrix = rng.standard_normal((8, 8)) * (rng.random((8, 8)) < 0.2)
    index = np.array([0, 3, 3, 7])

    def f(y: Any) -> Any:
        z = jnp.asarray(matrix) @ y
        return z.at[index].add(y[:4] ** 2)

    pattern = assert_covers("jacobian", f, _points((8,)))
    dense = _dense_jacobian(f, _points((8,))[1], ()) != 0
    np.testing.assert_array_equal(pattern, dense)


def test_exact_on_size_one_broadcasts_and_transposing_reshapes():
    """JAX's elementwise primitives broadcast size-1 axes (``(1, 1, s)`` times
    ``(3, 4, s)``, LUKSAN15: 19,600 entries instead of 784 before the rules did), and
    ``lax.reshape`` can transpose first (HADAMARD: 328,800 instead of 9,600)."""
    import jax.numpy as jnp
    from jax import lax

    weights = jnp.arange(1.0, 13.0).reshape(3, 4, 1)

    def blocks(y: Any) -> Any:
        signom = y[:-1] * y[1:] ** 2
        return jnp.sum(weights * signom[None, None, :] ** 2, axis=0).T.ravel()

    def outer(y: Any) -> Any:
        return jnp.sin(y[:4, None] + y[None, 4:]) * y[None, :4]

    def transposed(y: Any) -> Any:
        return lax.reshape(y.reshape(2, 4) ** 2, (8,), dimensions=(1, 0)) * y[::-1]

    for kind, f in [
        ("jacobian", blocks),
        ("jacobian", outer),
        ("jacobian", transposed),
        ("hessian", lambda y: jnp.sum(outer(y) ** 2)),
    ]:
        points = _points((8,))
        pattern = assert_covers(kind, f, points)
        dense = _dense_hessian if kind == "hessian" else _dense_jacobian
        np.testing.assert_array_equal(pattern, dense(f, points[1], ()) != 0)


# ---------------------------------------------------------------------------------
# Every primitive has a rule or the conservative one


def _lax_primitives() -> set[str]:
    from jax import lax
    from jax.extend import core

    return {obj.name for obj in vars(lax).values() if isinstance(obj, core.Primitive)}


def test_every_lax_primitive_is_classified():
    from diffops.backends.jax_sparsity import CONSERVATIVE, RULES

    names = _lax_primitives()
    assert len(names) > 100
    unclassified = sorted(names - set(RULES) - CONSERVATIVE)
    assert not unclassified, f"primitives with neither rule nor listing: {unclassified}"


def test_every_loaded_jax_primitive_gets_a_rule_or_the_conservative_one():
    import jax.numpy  # noqa: F401 - loads the primitives
    from jax.extend import core

    from diffops.backends.jax_sparsity import RULES
    from diffops.backends.jax_sparsity.propagate import conservative

    names = {
        obj.name
        for name, module in list(sys.modules.items())
        if name.startswith("jax") and module is not None
        for obj in list(vars(module).values())
        if isinstance(obj, core.Primitive)
    }
    assert len(names) > 150
    # Every primitive is propagated by a rule of the one signature the engine calls
    # (a rule registered wrongly, e.g. a rule factory left uncalled, fails here).
    signature = ["eqn", "operands", "scope"]
    assert list(inspect.signature(conservative).parameters) == signature
    for name in names:
        rule = RULES.get(name, conservative)
        assert list(inspect.signature(rule).parameters) == signature, name


def test_an_unknown_primitive_takes_the_conservative_rule():
    import jax.numpy as jnp
    from jax.extend import core
    from jax.interpreters import ad, batching

    mystery = core.Primitive("diffops_test_mystery")
    mystery.def_impl(lambda y: y[::-1])
    mystery.def_abstract_eval(lambda y: y)
    ad.deflinear(mystery, lambda ct: [mystery.bind(ct)])
    batching.primitive_batchers[mystery] = lambda args, dims: (
        jnp.flip(args[0], 1 - dims[0]),
        dims[0],
    )

    def f(y: Any) -> Any:
        return mystery.bind(jnp.sin(y))

    pattern = assert_covers("jacobian", f, _points((5,)))
    assert pattern.all()  # every output depends on every input it could read


# ---------------------------------------------------------------------------------
# Random programs


def _menu() -> dict[str, Callable[[Any, np.random.Generator], Callable[..., Any]]]:
    import jax.numpy as jnp
    from jax import lax

    def const_index(rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.integers(0, n, n)

    return {
        "sin": lambda rng: jnp.sin,
        "product-with-shift": lambda rng: lambda y: y * jnp.roll(y, 1),
        "reverse": lambda rng: lambda y: y[::-1],
        "gather": lambda rng: (lambda i: lambda y: y[i])(const_index(rng, 6)),
        "gather-argument": lambda rng: lambda y, i=None: y,  # replaced below
        "scatter-set": lambda rng: (
            lambda i, j: lambda y: y.at[i[:3]].set(y[j[:3]] ** 2)
        )(const_index(rng, 6), const_index(rng, 6)),
        "scatter-add": lambda rng: (
            lambda i: lambda y: jnp.zeros_like(y).at[i].add(y * y)
        )(const_index(rng, 6)),
        "cumsum": lambda rng: jnp.cumsum,
        "sort": lambda rng: lambda y: jnp.sort(y * jnp.arange(1.0, 7.0)),
        "concatenate-scalar": lambda rng: (
            lambda y: jnp.concatenate([jnp.array([y[0] * y[-1]]), y[1:]])
        ),
        "pad": lambda rng: lambda y: jnp.pad(y, (1, 0))[:-1],
        "constant-matrix": lambda rng: (lambda a: lambda y: jnp.asarray(a) @ y)(
            rng.standard_normal((6, 6)) * (rng.random((6, 6)) < 0.3)
        ),
        "convolve": lambda rng: (
            lambda y: jnp.convolve(y, jnp.array([1.0, 0.0, -1.0]), mode="same")
        ),
        "scan": lambda rng: lambda y: lax.scan(lambda c, v: (c * v + v, c), 0.0, y)[1],
        "fori": lambda rng: (
            lambda y: lax.fori_loop(
                0, 6, lambda k, c: c.at[k].set(c[k] * c[(k + 2) % 6]), y
            )
        ),
        "cond": lambda rng: (
            lambda y: lax.cond(y[0] > 0, lambda v: v**2, lambda v: v[::-1], y)
        ),
        "where": lambda rng: lambda y: jnp.where(y > 0, y**2, jnp.roll(y, 2)),
        "reshape-transpose": lambda rng: lambda y: y.reshape(2, 3).T.ravel(),
        "lax-reshape-transpose": lambda rng: (
            lambda y: lax.reshape(y.reshape(3, 2), (6,), dimensions=(1, 0))
        ),
        "outer-broadcast": lambda rng: (
            lambda y: (y[:2, None] * jnp.cos(y[None, 3:])).ravel()
        ),
        "shared-sum": lambda rng: lambda y: y + jnp.sum(y[:2]) ** 2,
        "dynamic-slice": lambda rng: (
            lambda y: lax.dynamic_slice(jnp.concatenate([y, y]), (2,), (6,))
        ),
        "logaddexp": lambda rng: lambda y: jnp.logaddexp(y, jnp.roll(y, 3)),
        "maximum": lambda rng: lambda y: jnp.maximum(y, y[::-1] + 0.1),
    }


@given(
    steps=st.lists(st.sampled_from(sorted(_menu())), min_size=1, max_size=4),
    seed=st.integers(0, 2**16),
    kind=st.sampled_from(["jacobian", "hessian"]),
)
def test_random_programs(steps, seed, kind):
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)
    menu = _menu()
    index = rng.integers(0, 6, 6)
    stages = [menu[s](rng) for s in steps]

    def f(y: Any, i: Any) -> Any:
        for step, stage in zip(steps, stages, strict=True):
            y = y[i] * y if step == "gather-argument" else stage(y)
        return jnp.sum(y * jnp.arange(1.0, 7.0)) if kind == "hessian" else y

    points = _points((6,), seed=seed)
    assert_covers(kind, f, points, (index,))


def test_constant_zero_made_by_rounding_is_not_a_structural_zero():
    # CUTEst DIAGIQB: the Hessian's diagonal is (i*i)/10 - 4.9; at i = 7 NumPy's
    # constant folding gives exactly 0 where XLA gives -8.3e-17, so the entry is
    # non-zero in the dense Hessian and must be in the detected structure.
    jnp = pytest.importorskip("jax.numpy")

    def f(y):
        i = jnp.arange(1, y.shape[0] + 1, dtype=y.dtype)
        h = i * i / 10.0 - 4.9
        return 0.5 * jnp.sum(h * y * y) + jnp.sum(y)

    x = np.linspace(0.1, 1.0, 10)
    sparse = diffops.hessian_grad_and_value(f, sparsity="detect")(x)[0]
    dense = diffops.hessian_grad_and_value(f)(x)[0]
    assert sparse.nnz == 10
    np.testing.assert_allclose(sparse.toarray(), dense, rtol=1e-14, atol=1e-15)


def test_exact_constant_zeros_stay_structural():
    # A product with an exact zero constant is still left out of the structure.
    jnp = pytest.importorskip("jax.numpy")

    def f(y):
        mask = (jnp.arange(y.shape[0]) % 2).astype(y.dtype)
        return jnp.sum(mask * y**2)

    sparse = diffops.hessian_grad_and_value(f, sparsity="detect")(np.ones(6))[0]
    assert sparse.nnz == 3


def test_plan_with_every_entry_uncolored():
    from diffops.sparse.jacobian_colorings import compact

    np.testing.assert_array_equal(compact(np.array([-1, -1])), [-1, -1])
    np.testing.assert_array_equal(compact(np.array([4, -1, 2])), [1, -1, 0])


@pytest.mark.parametrize("where", [0, 1, 2])
def test_stacking_one_dependency_set_among_constants_copies_nothing(where):
    # A select between constants and one traced array stacks a single set: its
    # rows are not copied (a Rows); copied out, the result is vstack's.
    import scipy.sparse as scipy_sparse

    from diffops.backends.jax_sparsity import deps as D

    rng = np.random.default_rng(where)
    n_in, sizes = 7, [3, 4, 2]
    part = scipy_sparse.csr_array((rng.uniform(size=(sizes[where], n_in)) < 0.4) * 1)
    part = D.binary(part)
    parts = [part if k == where else None for k in range(3)]
    stacked = D.stack(parts, sizes, n_in)
    blocks = [
        p if p is not None else D.empty(s, n_in)
        for p, s in zip(parts, sizes, strict=True)
    ]
    expected = scipy_sparse.vstack(blocks, format="csr")
    assert stacked.shape == (sum(sizes), n_in)
    assert stacked.nnz == expected.nnz
    np.testing.assert_array_equal(D.csr(stacked).toarray(), expected.toarray())
    np.testing.assert_array_equal(part.toarray(), blocks[where].toarray())


@pytest.mark.parametrize("seed", range(6))
def test_dependency_sets_read_through_uncopied_rows_as_copied(seed):
    # Moving elements gives Rows (rows of a set, not copied): every operation on
    # them must give what it gives on the copied-out CSR set.
    import scipy.sparse as scipy_sparse

    from diffops.backends.jax_sparsity import deps as D

    rng = np.random.default_rng(seed)
    n_in, n_base, size = 6, 5, 9
    filled = rng.uniform(size=(n_base, n_in)) < 0.4
    base = D.binary(scipy_sparse.csr_array(filled * 1))
    lazy = D.take(base, rng.integers(-1, n_base, size=size), n_in)
    copied = D.csr(lazy)
    assert isinstance(lazy, D.Rows)
    assert lazy.shape == copied.shape == (size, n_in)
    assert lazy.nnz == copied.nnz

    def dense(d):
        return None if d is None else D.csr(d).toarray()

    source = rng.integers(-1, size, size=7)
    np.testing.assert_array_equal(
        dense(D.take(lazy, source, n_in)), dense(D.take(copied, source, n_in))
    )
    groups = rng.integers(-1, 3, size=size)
    np.testing.assert_array_equal(
        dense(D.group(lazy, groups, 3, n_in)), dense(D.group(copied, groups, 3, n_in))
    )
    mask = (rng.uniform(size=(4, size)) < 0.3) * 1
    np.testing.assert_array_equal(
        dense(D.product(mask, lazy, n_in)), dense(D.product(mask, copied, n_in))
    )
    parts, sizes = [lazy, None, base, lazy], [size, 2, n_base, size]
    gap = np.zeros((2, n_in))
    expected = np.vstack([dense(copied), gap, dense(base), dense(copied)])
    np.testing.assert_array_equal(dense(D.stack(parts, sizes, n_in)), expected)
    np.testing.assert_array_equal(
        dense(D.everything([lazy], 3, n_in)), dense(D.everything([copied], 3, n_in))
    )
    np.testing.assert_array_equal(
        dense(D.union([lazy, D.take(base, [0], n_in)], size, n_in)),
        dense(D.union([copied, base[[0]]], size, n_in)),
    )
    assert D.same(lazy, copied)
    assert D.same(D.binary(lazy), copied)
    # A few rows of a larger set are copied out before stacking or multiplying.
    few = D.take(base, [int(np.argmax(np.diff(base.indptr)))], n_in)
    assert few.nnz < base.nnz
    np.testing.assert_array_equal(
        dense(D.stack([few, lazy], [1, size], n_in)),
        np.vstack([dense(few), dense(copied)]),
    )
    np.testing.assert_array_equal(
        dense(D.product(np.ones((2, 1)), few, n_in)), np.vstack([dense(few)] * 2)
    )
    # The base the rows read is never written.
    assert base.data.min() == 1
