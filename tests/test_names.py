"""Informative ``__name__``, ``__qualname__``, ``repr`` and docstrings."""

from __future__ import annotations

import numpy as np
import pytest

import diffops
from _backends import SELECTED_BACKENDS, require_backend
from diffops.models import MODELS


def banana(x):
    return -(x[0] ** 2) / 2 - (x[1] - x[0] ** 2) ** 2


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
@pytest.mark.parametrize("op", diffops.DIFF_OPS)
def test_name_qualname_repr(backend, op):
    options = {"arg_shape": (2,)} if backend == "symnum" else {}
    derivative = getattr(diffops, op)(banana, backend=backend, **options)
    assert derivative.__name__ == f"{op}_of_banana"
    assert derivative.__qualname__ == f"{op}_of_banana"
    opts = ", arg_shape=(2,)" if backend == "symnum" else ""
    assert repr(derivative) == f"{op}(banana, backend={backend!r}{opts})"
    assert derivative.op_name == op
    assert derivative.backend == backend
    assert derivative.func is banana
    assert op in derivative.__doc__
    assert "banana" in derivative.__doc__


def test_repr_examples():
    assert repr(diffops.grad_and_value(banana, backend="jax")) == (
        "grad_and_value(banana, backend='jax')"
    )
    assert (
        repr(diffops.grad_and_value(banana)) == "grad_and_value(banana, backend='jax')"
    )


def test_repr_lowercases_backend_and_shows_options():
    derivative = diffops.jacobian_and_value(banana, backend="JAX", mode="forward")
    assert (
        repr(derivative) == "jacobian_and_value(banana, backend='jax', mode='forward')"
    )


def test_qualname_of_a_nested_function():
    def inner(x):
        return x

    derivative = diffops.vjp_and_value(inner, backend="autograd")
    assert derivative.__name__ == "vjp_and_value_of_inner"
    assert derivative.__qualname__ == (
        "vjp_and_value_of_test_qualname_of_a_nested_function.<locals>.inner"
    )


def test_name_of_a_lambda_and_a_callable_object():
    assert diffops.grad_and_value(lambda x: x, backend="autograd").__name__ == (
        "grad_and_value_of_<lambda>"
    )

    class Potential:
        def __call__(self, x):
            return x

    derivative = diffops.grad_and_value(Potential(), backend="autograd")
    assert derivative.__name__ == "grad_and_value_of_Potential"
    assert "Potential" in repr(derivative)


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
def test_names_survive_the_first_call(backend):
    require_backend(backend)
    func, options = MODELS["banana"].function(backend)
    derivative = diffops.hessian_grad_and_value(func, backend=backend, **options)
    derivative(np.array([0.1, 0.2]))
    assert derivative.__name__ == "hessian_grad_and_value_of_banana"
    assert repr(derivative).startswith("hessian_grad_and_value(banana, backend=")


@pytest.mark.parametrize("op", diffops.DIFF_OPS)
def test_shortcuts_are_named_and_documented(op):
    shortcut = getattr(diffops, op)
    assert shortcut.__name__ == op
    assert shortcut.__qualname__ == op
    assert "Args:" in shortcut.__doc__
    assert "Returns:" in shortcut.__doc__


def test_str_is_the_informative_repr():
    derivative = diffops.grad_and_value(banana, backend="autograd")
    assert str(derivative) == "grad_and_value(banana, backend='autograd')"
