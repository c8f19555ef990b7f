"""Autograd backend: the operators for functions written with ``autograd.numpy``.

Autograd is imported on first use. It works on NumPy arrays directly, so every hook of
the backend protocol keeps its default. Autograd has no forward mode for every
primitive, so higher orders are reverse-over-reverse: the Hessian is one VJP of the
gradient per input direction, the MTP the VJP of the Hessian pass and the MHP the VJP
of the Jacobian pass, each carrying the lower-order results along.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np

from diffops.backends.protocol import Backend, example_namespace, split_highest
from diffops.boundary import check_value, require_fits
from diffops.errors import causes, tracing_error
from diffops.operators import OPERATORS

Function = Callable[..., Any]

AUTOGRAD_AVAILABLE: bool = importlib.util.find_spec("autograd") is not None
"""Whether autograd is installed (found without importing it), as Mici names it."""


def _unbox(value: Any) -> Any:
    from autograd.tracer import getval

    if isinstance(value, tuple):
        return tuple(_unbox(v) for v in value)
    return getval(value)


def _evaluated(func: Function, op_name: str, args: tuple[Any, ...]) -> Function:
    """``y -> func(y, *args)``, checked to return an array (0-d for scalar ops)."""
    from autograd.tracer import Box

    op = OPERATORS[op_name]

    def f(y: Any) -> Any:
        value = func(y, *args)
        array = isinstance(value, np.ndarray | np.generic | Box)
        raw: Any = _unbox(value) if array else None
        check_value(
            value,
            op,
            func,
            np.shape(raw) if array else None,
            complex_=array and np.iscomplexobj(raw),
        )
        return value

    return f


def _vjp_with_aux(
    func: Callable[[Any], tuple[Any, Any]], x: Any
) -> tuple[Function, Any, Any]:
    """VJP of ``x -> func(x)[0]``, also returning ``func(x)[1]`` undifferentiated."""
    from autograd import make_vjp

    aux: list[Any] = []

    def main(x: Any) -> Any:
        out, extra = func(x)
        aux.append(extra)
        return out

    vjp, out = make_vjp(main)(x)
    return vjp, out, _unbox(aux[0])


def _stack_rows(
    vjp: Function,
    out_shape: tuple[int, ...],
    dtype: Any,
    in_shape: tuple[int, ...],
    what: str,
    op_name: str,
) -> Any:
    """The Jacobian, one VJP per output element: shape ``out_shape + in_shape``."""
    import autograd.numpy as anp

    require_fits(what, out_shape + in_shape, dtype, op_name)
    size = math.prod(out_shape)
    if size == 0 or math.prod(in_shape) == 0:
        return np.zeros(out_shape + in_shape, dtype=dtype)
    basis = np.eye(size, dtype=dtype).reshape((size, *out_shape))
    rows = [vjp(e) for e in basis]
    return anp.reshape(anp.stack(rows), out_shape + in_shape)


def _dtype(value: Any) -> Any:
    return getattr(_unbox(value), "dtype", np.float64)


def _grad_and_value(func: Function, op_name: str) -> Function:
    from autograd import make_vjp

    def grad_and_value_func(x: Any, *args: Any) -> tuple[Any, Any]:
        vjp, value = make_vjp(_evaluated(func, op_name, args))(x)
        return vjp(np.ones((), dtype=_dtype(value))), value

    return grad_and_value_func


def _hessian_grad_and_value(func: Function, op_name: str) -> Function:
    grad_and_value_func = _grad_and_value(func, op_name)

    def hessian_grad_and_value_func(x: Any, *args: Any) -> tuple[Any, Any, Any]:
        vjp, grad, value = _vjp_with_aux(lambda y: grad_and_value_func(y, *args), x)
        shape = np.shape(x)
        hessian = _stack_rows(vjp, shape, _dtype(x), shape, "hessian", op_name)
        return hessian, grad, value

    return hessian_grad_and_value_func


def _jacobian_and_value(func: Function, op_name: str) -> Function:
    from autograd import make_vjp

    def jacobian_and_value_func(x: Any, *args: Any) -> tuple[Any, Any]:
        vjp, value = make_vjp(_evaluated(func, op_name, args))(x)
        jacobian = _stack_rows(
            vjp, np.shape(value), _dtype(value), np.shape(x), "jacobian", op_name
        )
        return jacobian, value

    return jacobian_and_value_func


def grad_and_value(func: Function) -> Function:
    """Make ``(x, *args) -> (grad, value)``.

    Computed by one reverse pass.

    Args:
        func: Scalar-valued ``func(x, *args)`` written with ``autograd.numpy``.

    Returns:
        A function of NumPy arrays (Autograd traces it); its outputs and shapes
        are ``diffops.operators.OPERATORS['grad_and_value']``).
    """
    return _grad_and_value(func, "grad_and_value")


def vjp_and_value(func: Function) -> Function:
    """Make ``(x, *args) -> (vjp, value)``.

    Computed by Autograds own VJP closure.

    Args:
        func: ``func(x, *args)`` written with ``autograd.numpy``.

    Returns:
        A function of NumPy arrays (Autograd traces it); its outputs and shapes
        are ``diffops.operators.OPERATORS['vjp_and_value']``).
    """
    from autograd import make_vjp

    def vjp_and_value_func(x: Any, *args: Any) -> tuple[Any, Any]:
        vjp, value = make_vjp(_evaluated(func, "vjp_and_value", args))(x)
        return vjp, value

    return vjp_and_value_func


def hessian_grad_and_value(func: Function) -> Function:
    """Make ``(x, *args) -> (hessian, grad, value)``.

    Computed by one VJP of the gradient per row (reverse-over-reverse).

    Args:
        func: Scalar-valued ``func(x, *args)`` written with ``autograd.numpy``.

    Returns:
        A function of NumPy arrays (Autograd traces it); its outputs and shapes
        are ``diffops.operators.OPERATORS['hessian_grad_and_value']``).
    """
    return _hessian_grad_and_value(func, "hessian_grad_and_value")


def mtp_hessian_grad_and_value(func: Function) -> Function:
    """Make ``(x, *args) -> (mtp, hessian, grad, value)``.

    Computed by one more reverse pass over the Hessian computation, whose
    results it carries along.

    Args:
        func: Scalar-valued ``func(x, *args)`` written with ``autograd.numpy``.

    Returns:
        A function of NumPy arrays (Autograd traces it); its outputs and shapes
        are ``diffops.operators.OPERATORS['mtp_hessian_grad_and_value']``).
    """
    hessian_func = _hessian_grad_and_value(func, "mtp_hessian_grad_and_value")

    def mtp_hessian_grad_and_value_func(
        x: Any, *args: Any
    ) -> tuple[Any, Any, Any, Any]:
        mtp, hessian, (grad, value) = _vjp_with_aux(
            split_highest(hessian_func, args), x
        )
        return mtp, hessian, grad, value

    return mtp_hessian_grad_and_value_func


def jacobian_and_value(func: Function) -> Function:
    """Make ``(x, *args) -> (jacobian, value)``.

    Computed by one VJP per output element.

    Args:
        func: ``func(x, *args)`` written with ``autograd.numpy``.

    Returns:
        A function of NumPy arrays (Autograd traces it); its outputs and shapes
        are ``diffops.operators.OPERATORS['jacobian_and_value']``).
    """
    return _jacobian_and_value(func, "jacobian_and_value")


def mhp_jacobian_and_value(func: Function) -> Function:
    """Make ``(x, *args) -> (mhp, jacobian, value)``.

    Computed by one more reverse pass over the Jacobian computation, whose
    results it carries along.

    Args:
        func: ``func(x, *args)`` written with ``autograd.numpy``.

    Returns:
        A function of NumPy arrays (Autograd traces it); its outputs and shapes
        are ``diffops.operators.OPERATORS['mhp_jacobian_and_value']``).
    """
    jacobian_func = _jacobian_and_value(func, "mhp_jacobian_and_value")

    def mhp_jacobian_and_value_func(x: Any, *args: Any) -> tuple[Any, Any, Any]:
        return _vjp_with_aux(lambda y: jacobian_func(y, *args), x)

    return mhp_jacobian_and_value_func


def jvp_and_value(func: Function) -> Function:
    """Make ``(x, *args) -> (jvp, value)``.

    Autograd's forward mode does not cover every primitive, so the product is built
    from reverse mode: ``J v`` is the VJP of the linear map ``u -> uᵀ J`` (itself a
    VJP, traced once per call of the operator), applied to ``v``.

    Args:
        func: ``func(x, *args)`` written with ``autograd.numpy``.

    Returns:
        A function of NumPy arrays (Autograd traces it); its outputs and shapes
        are ``diffops.operators.OPERATORS['jvp_and_value']``.
    """
    from autograd import make_vjp

    def jvp_and_value_func(x: Any, *args: Any) -> tuple[Any, Any]:
        vjp, value = make_vjp(_evaluated(func, "jvp_and_value", args))(x)
        zero = np.zeros(np.shape(value), dtype=_dtype(value))
        jvp, _ = make_vjp(vjp)(zero)
        return jvp, value

    return jvp_and_value_func


def hvp_grad_and_value(func: Function) -> Function:
    """Make ``(x, *args) -> (hvp, grad, value)``.

    Reverse-over-reverse: each ``hvp(v)`` is one more reverse pass over the gradient
    computation (``vᵀ H = (H v)ᵀ``); the Hessian is never formed.

    Args:
        func: Scalar-valued ``func(x, *args)`` written with ``autograd.numpy``.

    Returns:
        A function of NumPy arrays (Autograd traces it); its outputs and shapes
        are ``diffops.operators.OPERATORS['hvp_grad_and_value']``.
    """
    grad_and_value_func = _grad_and_value(func, "hvp_grad_and_value")

    def hvp_grad_and_value_func(x: Any, *args: Any) -> tuple[Any, Any, Any]:
        hvp, grad, value = _vjp_with_aux(split_highest(grad_and_value_func, args), x)
        return hvp, grad, value[0]

    return hvp_grad_and_value_func


class AutogradBackend(Backend):
    """``autograd``: reverse mode on NumPy arrays; no conversions needed."""

    name = "autograd"
    framework = "autograd"
    extra = "autograd"

    def explain_error(self, err: Exception, func: Function) -> Exception | None:
        """A :class:`~diffops.errors.TracingError` with a hint (NumPy on a box)."""
        traced = [
            e for e in causes(err) if isinstance(e, TypeError) and "ArrayBox" in str(e)
        ]
        if not traced:
            return None
        return tracing_error(
            "Autograd",
            func,
            traced[0],
            "with autograd.numpy (`import autograd.numpy as np`) and autograd.scipy "
            "instead of numpy and scipy.",
        )

    def namespace(self) -> SimpleNamespace:
        """The example models' operations in this framework."""
        import autograd.numpy as anp

        return example_namespace(
            anp, stack=anp.stack, const=lambda a, like: np.asarray(a, like.dtype)
        )


AUTOGRAD = AutogradBackend()
"""The ``autograd`` backend."""
