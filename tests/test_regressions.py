"""Regression tests for results that were once wrong without an error.

Each test pins one defect found by trying diffops as a user would (pytree
arguments, dtypes, batching of sparse results, option handling, SymNum shapes, the
closure-application cache); the bad-input catalogue holds the cases that must raise.
"""

from __future__ import annotations

import gc
from typing import Any

import numpy as np
import pytest

import diffops
from _backends import SELECTED_BACKENDS, require_backend
from diffops.batching import BatchShapeWarning

TRACING = [
    b
    for b in ("jax", "jax_nojit", "jax_codegen", "torch", "autograd")
    if b in SELECTED_BACKENDS
]


def _xp(backend: str) -> Any:
    if backend.startswith("jax"):
        import jax.numpy as jnp

        return jnp
    if backend == "torch":
        import torch

        return torch
    import autograd.numpy as anp

    return anp


def _matmul(xp: Any, a: Any, x: Any) -> Any:
    if xp.__name__ == "torch":
        return xp.as_tensor(a) @ x
    return xp.dot(a, x)


PYTREES = {
    "tuple": (
        lambda xp: lambda x, d: _matmul(xp, d[0], x),
        ((np.arange(4.0).reshape(2, 2),), (np.arange(6.0).reshape(3, 2),)),
    ),
    "list": (
        lambda xp: lambda x, d: _matmul(xp, d[1], x),
        ([np.ones(1), np.ones((2, 2))], [np.ones(5), np.arange(10.0).reshape(5, 2)]),
    ),
    "dict": (
        lambda xp: lambda x, d: _matmul(xp, d["a"], x),
        ({"a": np.ones((1, 2))}, {"a": np.arange(8.0).reshape(4, 2)}),
    ),
    "nested": (
        lambda xp: lambda x, d: _matmul(xp, d["m"][0][1], x),
        (
            {"m": [(np.ones(3), np.ones((2, 2)))]},
            {"m": [(np.ones(7), np.arange(14.0).reshape(7, 2))]},
        ),
    ),
}


@pytest.mark.parametrize("backend", TRACING)
@pytest.mark.parametrize("tree", sorted(PYTREES))
@pytest.mark.parametrize(
    "op", ["jacobian_and_value", "mhp_jacobian_and_value", "vjp_and_value"]
)
def test_pytree_arguments_whose_leaf_shapes_change(backend, tree, op):
    require_backend(backend)
    make, (first, second) = PYTREES[tree]
    derivative = getattr(diffops, op)(make(_xp(backend)), backend=backend)
    x = np.array([1.0, 2.0])
    for data in (first, second, first):
        out = derivative(x, data)
        matrix = np.asarray(
            {"tuple": lambda d: d[0], "list": lambda d: d[1]}.get(
                tree, (lambda d: d["a"]) if tree == "dict" else lambda d: d["m"][0][1]
            )(data)
        )
        np.testing.assert_allclose(out[-1], matrix @ x)
        if op == "jacobian_and_value":
            np.testing.assert_allclose(out[0], matrix)


@pytest.mark.parametrize("backend", [b for b in TRACING if b.startswith("jax")])
def test_scalar_and_array_arguments_of_one_position(backend):
    require_backend(backend)
    import jax.numpy as jnp

    derivative = diffops.grad_and_value(lambda x, a: jnp.sum(x * a), backend=backend)
    x = np.ones(3)
    np.testing.assert_allclose(derivative(x, 2.0)[0], [2.0, 2.0, 2.0])
    np.testing.assert_allclose(derivative(x, np.arange(3.0))[0], [0.0, 1.0, 2.0])
    np.testing.assert_allclose(derivative(x, 2.0)[1], 6.0)


@pytest.mark.parametrize("backend", TRACING)
@pytest.mark.parametrize(
    "op", ["grad_and_value", "hessian_grad_and_value", "hvp_grad_and_value"]
)
def test_sparsity_none_is_accepted_by_every_operator(backend, op):
    require_backend(backend)
    xp = _xp(backend)
    derivative = getattr(diffops, op)(
        lambda x: xp.sum(x**2), backend=backend, sparsity=None
    )
    out = derivative(np.ones(3))
    assert out[-1] == 3.0


@pytest.mark.parametrize("backend", [*TRACING, "symnum"])
def test_big_endian_float32_stays_float32(backend):
    require_backend(backend)
    opts: dict[str, Any] = {}
    if backend == "symnum":
        import symnum.numpy as snp

        xp: Any = snp
        opts = {"arg_shape": (2,)}
    else:
        xp = _xp(backend)
    x = np.array([1.0, 2.0], dtype=">f4")
    grad, value = diffops.grad_and_value(
        lambda y: xp.sum(y**2), backend=backend, **opts
    )(x)
    assert grad.dtype == np.float32
    assert type(value) is np.float32
    np.testing.assert_allclose(grad, [2.0, 4.0])


def test_symnum_zero_d_input_with_array_value():
    require_backend("symnum")
    import symnum.numpy as snp

    def f(x: Any) -> Any:
        return snp.array([x, x**2])

    x = np.float64(2.0)
    jac, value = diffops.jacobian_and_value(f, backend="symnum", arg_shape=())(x)
    np.testing.assert_allclose(jac, [1.0, 4.0])
    np.testing.assert_allclose(value, [2.0, 4.0])
    mhp, jac, value = diffops.mhp_jacobian_and_value(f, backend="symnum", arg_shape=())(
        x
    )
    np.testing.assert_allclose(mhp(np.array([1.0, 1.0])), 2.0)
    vjp, _ = diffops.vjp_and_value(f, backend="symnum", arg_shape=())(x)
    np.testing.assert_allclose(vjp(np.ones(2)), 5.0)


def test_symnum_maximum_gradient():
    require_backend("symnum")
    import symnum.numpy as snp

    grad, value = diffops.grad_and_value(
        lambda x: snp.sum(snp.maximum(x, 0.5)), backend="symnum", arg_shape=(3,)
    )(np.array([0.0, 1.0, 2.0]))
    np.testing.assert_allclose(grad, [0.0, 1.0, 1.0])
    np.testing.assert_allclose(value, 3.5)


@pytest.mark.parametrize("x_dtype", [np.float32, np.float64])
def test_torch_float_arguments_of_another_dtype(x_dtype):
    require_backend("torch")
    import torch

    derivative = diffops.grad_and_value(
        lambda x, a, i: torch.sum((a @ x)[i] ** 2), backend="torch"
    )
    other = np.float64 if x_dtype == np.float32 else np.float32
    a = np.arange(6.0).reshape(2, 3).astype(other)
    grad, value = derivative(np.ones(3, dtype=x_dtype), a, np.array([1]))
    assert grad.dtype == x_dtype
    np.testing.assert_allclose(grad, 2 * 12.0 * a[1], rtol=1e-6)
    np.testing.assert_allclose(value, 144.0, rtol=1e-6)


@pytest.mark.parametrize("backend", [b for b in TRACING if b == "jax"])
def test_closure_application_is_freed_with_its_derivative_function(backend):
    require_backend(backend)
    import weakref

    import jax.numpy as jnp

    derivative = diffops.vjp_and_value(lambda x: jnp.sin(x), backend=backend)
    vjp, _ = derivative(np.ones(3))
    vjp(np.ones(3))
    applier = weakref.ref(vjp._apply)
    del vjp, derivative
    diffops.derivative._BUILT.clear()
    gc.collect()
    assert applier() is None


@pytest.mark.parametrize("backend", ["jax", "torch"])
@pytest.mark.parametrize("op", ["jacobian_and_value", "hessian_grad_and_value"])
def test_batched_sparse_results_are_lists_of_csr_arrays(backend, op):
    require_backend(backend)
    import scipy.sparse

    xp = _xp(backend)

    def flip(x: Any) -> Any:
        return xp.flip(x, (0,)) if backend == "torch" else x[::-1]

    if op == "jacobian_and_value":
        func = lambda x: xp.sin(x) * flip(x)  # noqa: E731
    else:
        func = lambda x: xp.sum(xp.sin(x) * flip(x))  # noqa: E731
    sparsity = "detect" if backend == "jax" else np.ones((3, 3))
    derivative = getattr(diffops, op)(func, backend=backend, sparsity=sparsity)
    xs = np.random.default_rng(0).standard_normal((4, 3))
    out = diffops.batched(derivative)(xs)
    matrices = out[0]
    assert isinstance(matrices, list)
    assert len(matrices) == 4
    for x, matrix, value in zip(xs, matrices, out[-1], strict=True):
        assert scipy.sparse.issparse(matrix)
        single = derivative(x)
        np.testing.assert_allclose(matrix.toarray(), single[0].toarray())
        np.testing.assert_allclose(value, single[-1])


def test_batched_single_point_is_refused_or_flagged():
    require_backend("jax")
    import jax.numpy as jnp

    derivative = diffops.grad_and_value(lambda x: jnp.sum(x**2))
    derivative(np.ones(4))
    with pytest.warns(BatchShapeWarning, match="X\\[None\\]"):
        diffops.batched(derivative)(np.ones(4))
    grads, _ = diffops.batched(derivative)(np.ones((2, 4)))  # a real stack: no word
    assert grads.shape == (2, 4)


def test_batched_single_point_with_generated_shape_is_an_error():
    require_backend("symnum")
    import symnum.numpy as snp

    derivative = diffops.grad_and_value(
        lambda x: snp.sum(x**2), backend="symnum", arg_shape=(3,)
    )
    with pytest.raises(diffops.errors.ShapeMismatchError, match="probably one point"):
        diffops.batched(derivative)(np.ones(3))


@pytest.mark.parametrize("op", ["grad_and_value", "mtp_hessian_grad_and_value"])
def test_packed_layout_learned_when_the_call_traced_nothing(op):
    """A call whose program JAX had already traced (another thread, a cleared
    cache) learns its packed layout by an abstract trace, never a wrong slice."""
    require_backend("jax")
    import jax.numpy as jnp

    derivative = getattr(diffops, op)(lambda x: jnp.sum(jnp.sin(x) * x))
    x = np.linspace(0.1, 0.5, 3)
    expected = derivative(x)
    from diffops.boundary import PackedLayouts

    def layouts(function: Any, seen: set[int]) -> list[PackedLayouts]:
        found = []
        for cell in getattr(function, "__closure__", None) or ():
            value = cell.cell_contents
            value = getattr(value, "__self__", value)  # a bound method's object
            value = getattr(value, "packing", value)  # the per-call path's
            if isinstance(value, PackedLayouts):
                found.append(value)
            elif callable(value) and id(value) not in seen:
                seen.add(id(value))
                found += layouts(value, seen)
        return found

    (packing,) = set(layouts(derivative._impl, set()))
    packing.unpackers.clear()  # forget the layouts; JAX keeps its compiled program
    backend = derivative._backend
    traced = []
    original = backend.trace

    def counting(*a: Any) -> Any:
        traced.append(1)
        return original(*a)

    backend.trace = counting  # type: ignore[method-assign]
    try:
        again = derivative(x)
    finally:
        del backend.trace
    assert traced  # the layout came from the abstract trace
    for a, b in zip(expected[-3:], again[-3:], strict=True):
        np.testing.assert_allclose(a, b)


def test_symnum_strided_slices_of_matrices():
    """SymPy's N-d arrays slice with a step wrongly; SymNum code must not inherit it."""
    require_backend("symnum")
    require_backend("autograd")
    import autograd.numpy as anp
    import symnum.numpy as snp

    def make(xp: Any) -> Any:
        def f(x: Any) -> Any:
            t = x * xp.array([[0.5, 0.5], [0.5, 0.5], [0.5, -1.0]])
            return t[0:3:2] + x * xp.array([[0.5, 0.5], [0.5, 0.5]])

        return f

    x = np.array(-0.66)
    m = np.array([[0.18, 0.12], [1.91, 0.90]])
    vjp, value = diffops.vjp_and_value(make(snp), backend="symnum", arg_shape=())(x)
    expected_vjp, expected = diffops.vjp_and_value(make(anp), backend="autograd")(x)
    np.testing.assert_allclose(value, expected)
    np.testing.assert_allclose(vjp(m), expected_vjp(m))


def test_symnum_zero_d_input_put_into_arrays_and_times_numpy_arrays():
    """A 0-d input that the function puts into an array (``snp.array([x, x])``) is
    passed as its symbol; that symbol times a NumPy array is a NumPy array of
    expressions, once refused as "not an array" (fuzz campaign)."""
    require_backend("symnum")
    require_backend("autograd")
    import autograd.numpy as anp
    import symnum.numpy as snp

    def make(xp: Any) -> Any:
        def f(x: Any) -> Any:
            scale = xp.sum(xp.array([x, x]))
            return x * np.array([[0.5, 0.5], [0.5, 0.25]]) / (1 + scale**2)

        return f

    x = np.array(-0.66)
    m = np.array([[0.18, 0.12], [1.91, 0.90]])
    vjp, value = diffops.vjp_and_value(make(snp), backend="symnum", arg_shape=())(x)
    expected_vjp, expected = diffops.vjp_and_value(make(anp), backend="autograd")(x)
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    np.testing.assert_allclose(vjp(m), expected_vjp(m), rtol=1e-12)


_TANH_OF_SQUARED_CUBIC = """
import json
import numpy as np
import symnum.numpy as snp
import diffops

def f(x):
    t0 = x.reshape((6,))
    t1 = -snp.array([[t0[0], t0[1]], [t0[0], t0[0]]])
    t2 = (t1 @ x) @ snp.array([t0[0], t0[0], t0[1]])
    return snp.tanh(t2**2)[1::-1] / np.array([1.25, 1.5625])

x = np.array([[0.29, 0.65, -0.30], [0.82, -0.06, -1.12]])
vjp, value = diffops.vjp_and_value(f, backend="symnum", arg_shape=(2, 3))(x)
print(json.dumps([value.tolist(), vjp(np.array([0.3, -0.7])).tolist()]))
"""


def test_symnum_differentiates_without_simplifying_every_element():
    """SymNum's array ``diff`` simplified every element first (SymPy's
    ``is_constant``): minutes for this function from the fuzz campaign, which then
    stalled. In a child process, so that a return of the stall fails in minutes."""
    require_backend("symnum")
    require_backend("autograd")
    import json

    import autograd.numpy as anp

    import _child as child

    done = child.run_python(_TANH_OF_SQUARED_CUBIC, timeout=300)
    value, product = json.loads(done.stdout)

    def f(x: Any) -> Any:
        t0 = x.reshape((6,))
        t1 = -anp.array([[t0[0], t0[1]], [t0[0], t0[0]]])
        t2 = (t1 @ x) @ anp.array([t0[0], t0[0], t0[1]])
        return anp.tanh(t2**2)[1::-1] / np.array([1.25, 1.5625])

    x = np.array([[0.29, 0.65, -0.30], [0.82, -0.06, -1.12]])
    expected_vjp, expected = diffops.vjp_and_value(f, backend="autograd")(x)
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    np.testing.assert_allclose(
        product, expected_vjp(np.array([0.3, -0.7])), rtol=1e-10, atol=1e-14
    )


def test_torch_given_patterns_for_scalar_values_and_zero_d_inputs():
    require_backend("torch")
    jacobian, _ = diffops.jacobian_and_value(
        lambda x: x[0] ** 2, backend="torch", sparsity=np.ones((1, 1), bool)
    )(np.array([0.3]))
    np.testing.assert_allclose(jacobian.toarray(), [[0.6]])
    hessian, _, _ = diffops.hessian_grad_and_value(
        lambda x: x**3, backend="torch", sparsity=np.ones((1, 1), bool)
    )(np.array(0.3))
    np.testing.assert_allclose(hessian.toarray(), [[1.8]])


def test_torch_numpy_leaves_of_pytree_arguments_become_tensors():
    require_backend("torch")
    import torch

    def f(x: Any, data: Any) -> Any:
        return torch.sum(data[0] @ x) + torch.sum(data[1]["w"] * x**2)

    data = (np.ones((2, 2)), {"w": np.arange(2.0)})
    grad, value = diffops.grad_and_value(f, backend="torch")(np.ones(2), data)
    np.testing.assert_allclose(grad, [2.0, 4.0])
    np.testing.assert_allclose(value, 5.0)
    hessian, _, _ = diffops.hessian_grad_and_value(
        f, backend="torch", sparsity=np.eye(2, dtype=bool)
    )(np.ones(2), data)
    np.testing.assert_allclose(hessian.toarray(), np.diag([0.0, 2.0]))


@pytest.mark.parametrize("backend", ["jax", "jax_nojit"])
@pytest.mark.parametrize("n", [256, 257, 600])
def test_more_products_than_one_pass(backend, n):
    # Above 256 products JAX computes them in passes (jax.lax.map over vmapped
    # chunks, bounding memory; CHARDIS0, n = 2000, asked XLA for 16 GB in one
    # pass). Checked against autograd, which has no passes.
    require_backend(backend)
    require_backend("autograd")
    import autograd.numpy as anp
    import jax.numpy as jnp

    def energy(np_):
        return lambda x: np_.sum(np_.sin(x) * np_.cumsum(x) ** 2) + np_.sum(x) ** 3

    def field(np_):
        return lambda x: np_.sin(x) * np_.cumsum(x)

    x = np.random.default_rng(n).standard_normal(n)
    hessian = diffops.hessian_grad_and_value(energy(jnp), backend=backend)(x)
    expected = diffops.hessian_grad_and_value(energy(anp), backend="autograd")(x)
    for got, want in zip(hessian, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    sparse = diffops.hessian_grad_and_value(
        energy(jnp), backend=backend, sparsity="detect"
    )(x)[0]
    np.testing.assert_allclose(sparse.toarray(), expected[0], rtol=1e-12, atol=1e-12)
    want_jacobian = diffops.jacobian_and_value(field(anp), backend="autograd")(x)[0]
    for mode in ("forward", "reverse"):
        jacobian = diffops.jacobian_and_value(field(jnp), backend=backend, mode=mode)
        np.testing.assert_allclose(
            jacobian(x)[0], want_jacobian, rtol=1e-12, atol=1e-12
        )
