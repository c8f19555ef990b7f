"""Regression tests for problems found in code review, one test per problem."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import diffops
from _backends import require_backend
from diffops.errors import InputTypeError


def _cubic_sum(xp):
    return lambda x: xp.sum(x**3) / 3


@pytest.mark.parametrize("backend", ["jax", "jax_nojit", "autograd", "torch"])
def test_unpickled_float64_input_keeps_float64_and_structure(backend):
    require_backend(backend)
    from diffops.models import namespace

    x = pickle.loads(pickle.dumps(np.array([1.0, 2.0])))
    assert x.dtype == np.float64
    f = _cubic_sum(namespace(backend))
    hessian, grad, value = diffops.hessian_grad_and_value(f, backend=backend)(x)
    assert hessian.dtype == grad.dtype == np.float64
    assert type(value) is np.float64
    np.testing.assert_allclose(grad, x**2, rtol=1e-14)
    np.testing.assert_allclose(hessian, np.diag(2 * x), rtol=1e-14)


@pytest.mark.parametrize("backend", ["autograd", "torch"])
def test_closure_unaffected_by_mutating_a_view_input(backend):
    require_backend(backend)
    from diffops.models import namespace

    ns = namespace(backend)

    def cube(x):
        return x**3 + 0 * ns.sum(x)

    base = np.array([1.0, 2.0])
    x = base.view(np.ma.MaskedArray)  # np.asarray(x) is a view sharing memory
    vjp, _ = diffops.vjp_and_value(cube, backend=backend)(x)
    before = vjp(np.ones(2))
    base[0] = 100.0
    np.testing.assert_array_equal(vjp(np.ones(2)), before)


def test_as_numpy_false_checks_jax_inputs():
    require_backend("jax")
    import jax.numpy as jnp

    gv = diffops.grad_and_value(lambda x: jnp.sum(x**2) / 2, as_numpy=False)
    grad, _ = gv(np.array([1, 2]))  # integers become float64
    assert grad.dtype == np.float64
    np.testing.assert_array_equal(np.asarray(grad), [1.0, 2.0])
    with pytest.raises(InputTypeError):
        gv(jnp.array([1j]))


def test_as_numpy_false_is_numpy_on_autograd():
    require_backend("autograd")
    vjp, _ = diffops.vjp_and_value(lambda x: x**2, backend="autograd", as_numpy=False)(
        np.array([1, 2])
    )
    with pytest.raises(ValueError, match="shape"):
        vjp(np.ones(3))


def test_check_derivatives_accepts_correct_float32():
    require_backend("jax")

    def banana(x):
        return -(x[0] ** 2) / 2 - (x[1] - x[0] ** 2) ** 2

    x = np.array([0.3, 0.5], np.float32)
    for op in (
        "grad_and_value",
        "hessian_grad_and_value",
        "mtp_hessian_grad_and_value",
    ):
        diffops.check_derivatives(getattr(diffops, op)(banana), x)


@pytest.mark.parametrize("op", ["jacobian_and_value", "vjp_and_value"])
def test_symnum_zero_d_elementwise_function(op):
    require_backend("symnum")
    import symnum.numpy as snp

    d = getattr(diffops, op)(
        lambda x: snp.sin(x) * x**2, backend="symnum", arg_shape=()
    )
    out = d(np.array(0.5))
    assert np.isclose(out[-1], np.sin(0.5) * 0.25)


@pytest.mark.parametrize("backend", ["autograd", "jax_nojit"])
def test_closure_output_does_not_alias_its_argument(backend):
    require_backend(backend)
    vjp, _ = diffops.vjp_and_value(lambda x: x, backend=backend)(np.ones(4))
    m = np.ones(4)
    assert not np.may_share_memory(vjp(m), m)


@pytest.mark.parametrize(
    ("backend", "options"),
    [("autograd", {"mode": "forward"}), ("symnum", {"mode": "forward"})],
)
def test_unknown_options_rejected_when_built(backend, options):
    require_backend(backend)

    def f(x):
        return x[0] ** 2 + x[1]

    if backend == "symnum":
        import symnum

        f = symnum.numpify((2,))(f)
    with pytest.raises(TypeError, match="mode"):
        diffops.jacobian_and_value(f, backend=backend, **options)
