"""Autograd backend: the six operators for functions written with ``autograd.numpy``.

Autograd is imported on first use. Autograd works on NumPy arrays directly, so no
function wrapper is needed. Higher orders are reverse-over-reverse: the Hessian is one
VJP of the gradient per input direction, the MTP the VJP of the Hessian pass and the
MHP the VJP of the Jacobian pass, each carrying the lower-order results along.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from diffops.errors import TracingError, causes, require_scalar

AUTOGRAD_AVAILABLE: bool = importlib.util.find_spec("autograd") is not None
"""Whether Autograd is installed (found without importing it)."""

EXTRA = "autograd"


def _unbox(value: Any) -> Any:
    from autograd.tracer import getval

    if isinstance(value, tuple):
        return tuple(_unbox(v) for v in value)
    return getval(value)


def _vjp_with_aux(
    func: Callable[[Any], tuple[Any, Any]], x: Any
) -> tuple[Callable[[Any], Any], Any, Any]:
    """VJP of ``x -> func(x)[0]``, also returning ``func(x)[1]`` undifferentiated."""
    from autograd import make_vjp

    aux: list[Any] = []

    def main(x: Any) -> Any:
        out, extra = func(x)
        aux.append(extra)
        return out

    vjp, out = make_vjp(main)(x)
    return vjp, out, _unbox(aux[0])


def _basis(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    size = math.prod(shape)
    return np.eye(size, dtype=dtype).reshape((size, *shape))


def _stack_rows(
    vjp: Callable[[Any], Any],
    out_shape: tuple[int, ...],
    dtype: Any,
    in_shape: tuple[int, ...],
) -> Any:
    import autograd.numpy as anp

    rows = [vjp(e) for e in _basis(out_shape, dtype)]
    return anp.reshape(anp.stack(rows), out_shape + in_shape)


def _dtype(value: Any) -> Any:
    from autograd.tracer import getval

    return getattr(getval(value), "dtype", np.float64)


def _grad_and_value(func: Callable[..., Any], op_name: str) -> Callable[..., Any]:
    from autograd import make_vjp

    def grad_and_value_func(x: Any) -> tuple[Any, Any]:
        vjp, value = make_vjp(func)(x)
        require_scalar(np.shape(value), op_name)
        return vjp(np.ones((), dtype=_dtype(value))), value

    return grad_and_value_func


def _hessian_grad_and_value(
    func: Callable[..., Any], op_name: str
) -> Callable[..., Any]:
    grad_and_value_func = _grad_and_value(func, op_name)

    def hessian_grad_and_value_func(x: Any) -> tuple[Any, Any, Any]:
        vjp, grad, value = _vjp_with_aux(grad_and_value_func, x)
        shape = np.shape(x)
        hessian = _stack_rows(vjp, shape, _dtype(x), shape)
        return hessian, grad, value

    return hessian_grad_and_value_func


def grad_and_value(func: Callable[..., Any]) -> Callable[..., Any]:
    """Make a function returning the gradient and value of a scalar function.

    Args:
        func: Scalar-valued function of one array of shape ``S``.

    Returns:
        Function ``x -> (grad, value)`` with ``grad[k] = ∂f/∂x[k]`` of shape ``S``.
    """
    return _grad_and_value(func, "grad_and_value")


def vjp_and_value(func: Callable[..., Any]) -> Callable[..., Any]:
    """Make a function returning the vector-Jacobian product and value.

    ``vjp(v) = v @ j``, i.e. ``vjp(v)[k] = Σ_i v[i] ∂f[i]/∂x[k]``.

    Args:
        func: Function of one array of shape ``S`` returning shape ``F``.

    Returns:
        Function ``x -> (vjp, value)``; ``vjp`` maps shape ``F`` to shape ``S``.
    """
    from autograd import make_vjp

    def vjp_and_value_func(x: Any) -> tuple[Any, Any]:
        return make_vjp(func)(x)

    return vjp_and_value_func


def hessian_grad_and_value(func: Callable[..., Any]) -> Callable[..., Any]:
    """Make a function returning the Hessian, gradient and value of a scalar function.

    ``hessian[j, k] = ∂²f/(∂x[j] ∂x[k])``, computed reverse-over-reverse.

    Args:
        func: Scalar-valued function of one array of shape ``S``.

    Returns:
        Function ``x -> (hessian, grad, value)``; ``hessian`` has shape ``S + S``.
    """
    return _hessian_grad_and_value(func, "hessian_grad_and_value")


def mtp_hessian_grad_and_value(func: Callable[..., Any]) -> Callable[..., Any]:
    """Make a function returning the MTP, Hessian, gradient and value.

    ``mtp(m)[i] = Σ_jk m[j, k] ∂³f/(∂x[i] ∂x[j] ∂x[k])``, the VJP of the Hessian pass.

    Args:
        func: Scalar-valued function of one array of shape ``S``.

    Returns:
        Function ``x -> (mtp, hessian, grad, value)``; ``mtp`` maps shape ``S + S``
        to shape ``S``.
    """
    hessian_func = _hessian_grad_and_value(func, "mtp_hessian_grad_and_value")

    def hessian_with_aux(x: Any) -> tuple[Any, tuple[Any, Any]]:
        hessian, grad, value = hessian_func(x)
        return hessian, (grad, value)

    def mtp_hessian_grad_and_value_func(x: Any) -> tuple[Any, Any, Any, Any]:
        mtp, hessian, (grad, value) = _vjp_with_aux(hessian_with_aux, x)
        return mtp, hessian, grad, value

    return mtp_hessian_grad_and_value_func


def jacobian_and_value(func: Callable[..., Any]) -> Callable[..., Any]:
    """Make a function returning the Jacobian and value of a function.

    ``jacobian[i, k] = ∂f[i]/∂x[k]``, one reverse pass per output element.

    Args:
        func: Function of one array of shape ``S`` returning shape ``F``.

    Returns:
        Function ``x -> (jacobian, value)``; ``jacobian`` has shape ``F + S``.
    """
    from autograd import make_vjp

    def jacobian_and_value_func(x: Any) -> tuple[Any, Any]:
        vjp, value = make_vjp(func)(x)
        jacobian = _stack_rows(vjp, np.shape(value), _dtype(value), np.shape(x))
        return jacobian, value

    return jacobian_and_value_func


def mhp_jacobian_and_value(func: Callable[..., Any]) -> Callable[..., Any]:
    """Make a function returning the MHP, Jacobian and value of a function.

    ``mhp(m)[k] = Σ_ij m[i, j] ∂²f[i]/(∂x[j] ∂x[k])``, the VJP of the Jacobian pass.

    Args:
        func: Function of one array of shape ``S`` returning shape ``F``.

    Returns:
        Function ``x -> (mhp, jacobian, value)``; ``mhp`` maps shape ``F + S`` to
        shape ``S``.
    """
    jacobian_func = jacobian_and_value(func)

    def mhp_jacobian_and_value_func(x: Any) -> tuple[Any, Any, Any]:
        return _vjp_with_aux(jacobian_func, x)

    return mhp_jacobian_and_value_func


def check_function(func: Callable[..., Any], op_name: str, **options: Any) -> None:
    """Check, when the derivative is built, that no options were given.

    Args:
        func: The user's function (not called).
        op_name: Operator being built.
        **options: Options given for it; Autograd's operators take none.

    Raises:
        TypeError: For any option.
    """
    del func
    if options:
        msg = (
            f"{op_name} on the autograd backend takes no options, not "
            f"{sorted(options)}."
        )
        raise TypeError(msg)


def explain_error(err: Exception, func: Callable[..., Any]) -> Exception | None:
    """Add a hint to errors raised when plain NumPy meets Autograd's traced arrays.

    Args:
        err: Exception raised while calling a derivative function.
        func: The user's function.

    Returns:
        The exception to raise instead, or ``None`` to re-raise ``err`` unchanged.
    """
    traced = [
        e for e in causes(err) if isinstance(e, TypeError) and "ArrayBox" in str(e)
    ]
    if not traced:
        return None
    cause = traced[0]
    name = getattr(func, "__name__", "the function")
    msg = (
        f"Autograd could not trace {name!r}: {cause}\n"
        f"Hint: write {name!r} with autograd.numpy (`import autograd.numpy as np`) "
        f"and autograd.scipy instead of numpy and scipy."
    )
    return TracingError(msg)
