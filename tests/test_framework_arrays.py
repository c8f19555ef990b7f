"""as_numpy=False: framework arrays in and out, checked like NumPy inputs."""

from __future__ import annotations

import numpy as np
import pytest

import diffops
from _backends import require_backend
from diffops.errors import InputTypeError


def _cubic_sum(xp):
    return lambda x: xp.sum(x**3) / 3


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
