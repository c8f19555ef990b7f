"""Extra arguments: ``op(func)(x, *args)`` differentiates with respect to ``x`` only."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import diffops
from _backends import SELECTED_BACKENDS, require_backend

TRACING = [
    b
    for b in ("jax", "jax_nojit", "jax_codegen", "autograd", "torch")
    if b in SELECTED_BACKENDS
]
RNG = np.random.default_rng(20261122)
DESIGN = RNG.standard_normal((20, 3))
LABELS = (RNG.uniform(size=20) < 0.5).astype(np.float64)
BETA = np.array([0.2, -0.4, 0.1])


def _xp(backend):
    if backend.startswith("jax"):
        import jax.numpy as jnp

        return jnp
    if backend == "autograd":
        import autograd.numpy as anp

        return anp
    import torch

    return torch


def log_posterior(backend):
    """``Σ y z - log(1 + e^z) - scale |β|²`` with ``z = A β``, data as arguments."""
    xp = _xp(backend)

    def f(beta, design, labels, scale):
        z = design @ beta
        return xp.sum(labels * z - xp.log1p(xp.exp(z))) - scale * xp.sum(beta**2)

    return f


def closed_form(beta, design, labels, scale):
    z = design @ beta
    s = 1 / (1 + np.exp(-z))
    value = np.sum(labels * z - np.log1p(np.exp(z))) - scale * beta @ beta
    grad = design.T @ (labels - s) - 2 * scale * beta
    hessian = -(design.T * (s * (1 - s))) @ design - 2 * scale * np.eye(beta.size)
    return value, grad, hessian


def _framework(backend, array):
    if backend.startswith("jax"):
        import jax
        import jax.numpy as jnp

        with jax.enable_x64(True):  # float64 JAX arrays
            return jnp.asarray(array, dtype=jnp.float64)
    if backend == "torch":
        import torch

        return torch.tensor(array)
    return array


@pytest.mark.parametrize("backend", TRACING)
@pytest.mark.parametrize("kind", ["numpy", "framework"])
def test_gradient_hessian_and_products_with_data_arguments(backend, kind):
    require_backend(backend)
    func = log_posterior(backend)
    design, labels = DESIGN, LABELS
    if kind == "framework":
        design, labels = _framework(backend, design), _framework(backend, labels)
    value, grad, hessian = closed_form(BETA, DESIGN, LABELS, 0.5)
    args = (design, labels, 0.5)
    g, v = diffops.grad_and_value(func, backend=backend)(BETA, *args)
    np.testing.assert_allclose(g, grad, rtol=1e-10)
    np.testing.assert_allclose(v, value, rtol=1e-10)
    h, g, v = diffops.hessian_grad_and_value(func, backend=backend)(BETA, *args)
    np.testing.assert_allclose(h, hessian, rtol=1e-10)
    hvp, g, v = diffops.hvp_grad_and_value(func, backend=backend)(BETA, *args)
    u = np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(hvp(u), hessian @ u, rtol=1e-10)
    vjp, v = diffops.vjp_and_value(func, backend=backend)(BETA, *args)
    np.testing.assert_allclose(vjp(np.float64(2.0)), 2 * grad, rtol=1e-10)


@pytest.mark.parametrize("backend", TRACING)
def test_arguments_are_never_changed_and_closures_keep_them(backend):
    require_backend(backend)
    func = log_posterior(backend)
    design, labels = DESIGN.copy(), LABELS.copy()
    _, _grad, hessian = closed_form(BETA, DESIGN, LABELS, 0.5)
    hvp, _, _ = diffops.hvp_grad_and_value(func, backend=backend)(
        BETA, design, labels, 0.5
    )
    np.testing.assert_array_equal(design, DESIGN)
    np.testing.assert_array_equal(labels, LABELS)
    design[:] = 0.0  # the closure was built with the old data
    labels[:] = 1.0
    u = np.array([1.0, 0.0, 0.0])
    np.testing.assert_allclose(hvp(u), hessian @ u, rtol=1e-10)


def test_new_argument_values_compile_nothing_new(jax_compiles):
    func = log_posterior("jax")
    derivative = diffops.hessian_grad_and_value(func)
    derivative(BETA, DESIGN, LABELS, 0.5)
    before = jax_compiles.count
    other = RNG.standard_normal(DESIGN.shape)
    h, _g, v = derivative(BETA, other, 1 - LABELS, 0.25)
    assert jax_compiles.count == before
    value, _grad, hessian = closed_form(BETA, other, 1 - LABELS, 0.25)
    np.testing.assert_allclose(h, hessian, rtol=1e-10)
    np.testing.assert_allclose(v, value, rtol=1e-10)


def test_one_argument_call_is_unchanged():
    require_backend("jax")
    import jax.numpy as jnp

    g, v = diffops.grad_and_value(lambda x: jnp.sum(x**2))(np.array([1.0, 2.0]))
    np.testing.assert_allclose(g, [2.0, 4.0])
    assert v == 5.0


def test_symnum_extra_arguments_from_decorator_and_option():
    require_backend("symnum")
    import symnum
    import symnum.numpy as snp

    design, targets = DESIGN[:6], LABELS[:6]

    def f(beta, design, targets, scale):
        return scale * snp.sum((design @ beta - targets) ** 2)

    value = 0.5 * np.sum((design @ BETA - targets) ** 2)
    grad = design.T @ (design @ BETA - targets)
    hessian = design.T @ design
    # SymNum's own decorator cannot print code for a ()-shaped argument, so the
    # decorated form takes arrays only; the option form also takes the scalar.
    decorated = symnum.numpify((3,), design.shape, targets.shape)(
        lambda beta, design, targets: f(beta, design, targets, 0.5)
    )
    options = {"arg_shape": (3,), "extra_shapes": [design.shape, targets.shape, ()]}
    forms = ((decorated, {}, ()), (f, options, (0.5,)))
    for func, opts, scale in forms:
        h, g, v = diffops.hessian_grad_and_value(func, backend="symnum", **opts)(
            BETA, design, targets, *scale
        )
        np.testing.assert_allclose(h, hessian, rtol=1e-10)
        np.testing.assert_allclose(g, grad, rtol=1e-10)
        np.testing.assert_allclose(v, value, rtol=1e-10)
    derivative = diffops.grad_and_value(decorated, backend="symnum")
    with pytest.raises(diffops.errors.ShapeMismatchError, match="extra argument 1"):
        derivative(BETA, design[:5], targets)
    with pytest.raises(diffops.errors.ShapeMismatchError, match="called with 1"):
        derivative(BETA, design)


def module_level_potential(beta, design, labels, scale):
    import jax.numpy as jnp

    z = design @ beta
    return jnp.sum(labels * z - jnp.log1p(jnp.exp(z))) - scale * jnp.sum(beta**2)


def test_pickled_derivative_of_module_level_function_with_arguments():
    require_backend("jax")
    derivative = diffops.hvp_grad_and_value(module_level_potential)
    expected = derivative(BETA, DESIGN, LABELS, 0.5)
    restored = pickle.loads(pickle.dumps(derivative))
    got = restored(BETA, DESIGN, LABELS, 0.5)
    u = np.ones(3)
    np.testing.assert_allclose(got[0](u), expected[0](u), rtol=1e-12)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-12)


def test_mici_operator_list_is_unchanged_and_all_ops_extend_it():
    assert diffops.DIFF_OPS == (
        "vjp_and_value",
        "grad_and_value",
        "hessian_grad_and_value",
        "mtp_hessian_grad_and_value",
        "jacobian_and_value",
        "mhp_jacobian_and_value",
    )
    assert (
        *diffops.DIFF_OPS,
        "jvp_and_value",
        "hvp_grad_and_value",
    ) == diffops.ALL_DIFF_OPS


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
@pytest.mark.parametrize("op", ["jvp_and_value", "hvp_grad_and_value"])
def test_autodiff_fallback_builds_the_new_operators(backend, op):
    require_backend(backend)
    from diffops.models import MODELS

    model = MODELS["banana"]
    func, options = model.function(backend)
    built = diffops.autodiff_fallback(None, func, op, "f", backend)
    if options:  # SymNum's 0-d shapes need the option; banana needs none
        return
    closure, *_rest = built(np.array([0.3, 0.5]))
    assert closure.arg_shape == (2,)
