"""Batched evaluation: ``diffops.batched(d)(X)`` at a stack of points."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import diffops
from _backends import SELECTED_BACKENDS, require_backend
from _cases import rng_for
from diffops.models import MODELS, applicable_ops, reference

B = 5


def _params():
    return [
        pytest.param(backend, name, op, id=f"{backend}-{name}-{op}")
        for backend in SELECTED_BACKENDS
        for name in ("banana", "torus")
        for op in applicable_ops(MODELS[name])
    ]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(("backend", "name", "op"), _params())
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batched_matches_closed_forms_point_by_point(backend, name, op, dtype):
    require_backend(backend)
    model = MODELS[name]
    func, options = model.function(backend)
    rng = rng_for("batched", backend, name, op)
    xs = np.stack([model.sample(rng, model.shape) for _ in range(B)]).astype(dtype)
    derivative = getattr(diffops, op)(func, backend=backend, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no fallback to a loop
        out = diffops.batched(derivative)(xs)
    single = [derivative(x) for x in xs]
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for k, got in enumerate(out):
        if callable(got):
            m = rng.standard_normal(got.arg_shape).astype(dtype)
            products = got(m)
            assert products.shape == got.out_shape
            assert products.dtype == dtype
            for n in range(B):
                np.testing.assert_allclose(
                    products[n], single[n][k](m[n]), rtol=tol, atol=tol
                )
                expected = reference(model, op, xs[n].astype(np.float64))[k](m[n])
                np.testing.assert_allclose(products[n], expected, rtol=tol, atol=tol)
            continue
        assert isinstance(got, np.ndarray)
        assert got.dtype == dtype
        assert got.shape == (B, *np.shape(single[0][k]))
        for n in range(B):
            expected = reference(model, op, xs[n].astype(np.float64))[k]
            np.testing.assert_allclose(got[n], expected, rtol=tol, atol=tol)


def _linear_model(backend):
    if backend.startswith("jax"):
        import jax.numpy as jnp

        return lambda x, a, c: jnp.sum((a @ x) ** 2) * c
    if backend == "torch":
        import torch

        return lambda x, a, c: torch.sum((a @ x) ** 2) * c
    import autograd.numpy as anp

    return lambda x, a, c: anp.sum((a @ x) ** 2) * c


@pytest.mark.parametrize(
    "backend",
    [
        b
        for b in ("jax", "jax_nojit", "jax_codegen", "torch", "autograd")
        if b in SELECTED_BACKENDS
    ],
)
def test_shared_and_batched_extra_arguments(backend):
    require_backend(backend)
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((B, 3))
    shared = rng.standard_normal((4, 3))
    per_point = rng.standard_normal((B, 4, 3))
    derivative = diffops.grad_and_value(_linear_model(backend), backend=backend)
    grads, values = diffops.batched(derivative)(xs, shared, 2.0)
    for n in range(B):
        np.testing.assert_allclose(grads[n], 4 * shared.T @ shared @ xs[n], rtol=1e-12)
    grads, values = diffops.batched(derivative, batched_args=[0])(xs, per_point, 2.0)
    for n in range(B):
        a = per_point[n]
        np.testing.assert_allclose(grads[n], 4 * a.T @ a @ xs[n], rtol=1e-12)
        np.testing.assert_allclose(values[n], 2 * np.sum((a @ xs[n]) ** 2), rtol=1e-12)


def test_wrong_shapes_are_clear_errors():
    require_backend("jax")
    import jax.numpy as jnp

    derivative = diffops.vjp_and_value(lambda x, a: jnp.matmul(a, x))
    batched = diffops.batched(derivative, batched_args=[0])
    with pytest.raises(diffops.errors.ShapeMismatchError, match=r"\(B,\) \+ S"):
        batched(np.float64(1.0), np.ones((2, 2)))
    with pytest.raises(diffops.errors.ShapeMismatchError, match="one entry per point"):
        batched(np.ones((3, 2)), np.ones((2, 2, 2)))
    vjp, values = batched(np.ones((3, 2)), np.ones((3, 4, 2)))
    np.testing.assert_array_equal(values, np.full((3, 4), 2.0))
    np.testing.assert_array_equal(vjp(np.ones((3, 4))), np.full((3, 2), 4.0))
    with pytest.raises(diffops.errors.ShapeMismatchError, match=r"\(3, 4\)"):
        vjp(np.ones(4))
    with pytest.raises(TypeError, match="built by diffops"):
        diffops.batched(lambda x: (x, x))


def test_torch_function_that_cannot_be_vmapped_falls_back_with_one_warning():
    require_backend("torch")
    import torch

    def branchy(x):
        if x[0] > 0:  # data-dependent Python control flow: not vmappable
            return torch.sum(x**2)
        return torch.sum(x**3)

    derivative = diffops.grad_and_value(branchy, backend="torch")
    batched = diffops.batched(derivative)
    xs = np.array([[1.0, 2.0], [-1.0, 2.0]])
    with pytest.warns(RuntimeWarning, match="evaluated one by one"):
        grads, _values = batched(xs)
    np.testing.assert_allclose(grads, [[2.0, 4.0], [3.0, 12.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batched(xs)  # warned once only


def test_jax_batched_gradient_is_one_compiled_call(jax_compiles):
    func, _ = MODELS["banana"].function("jax")
    batched = diffops.batched(diffops.grad_and_value(func))
    xs = np.random.default_rng(0).uniform(-1, 1, (1000, 2))
    batched(xs)
    before = jax_compiles.count
    grads, values = batched(xs + 1)
    assert jax_compiles.count == before
    assert grads.shape == (1000, 2)
    assert values.shape == (1000,)


def test_repr_names_the_derivative():
    require_backend("jax")
    func, _ = MODELS["banana"].function("jax")
    batched = diffops.batched(diffops.grad_and_value(func), batched_args=(1,))
    assert (
        repr(batched)
        == "batched(grad_and_value(banana, backend='jax'), batched_args=(1,))"
    )


def test_batched_functions_pickle_as_their_recipe():
    import pickle

    require_backend("jax")
    func, _ = MODELS["banana"].function("jax")
    batched = diffops.batched(diffops.grad_and_value(func))
    xs = np.random.default_rng(0).uniform(-1, 1, (4, 2))
    expected = batched(xs)
    restored = pickle.loads(pickle.dumps(batched))
    assert repr(restored) == repr(batched)
    for got, want in zip(restored(xs), expected, strict=True):
        np.testing.assert_array_equal(got, want)
