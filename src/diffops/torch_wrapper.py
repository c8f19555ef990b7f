"""PyTorch backend: the six operators for functions written with ``torch`` ops.

PyTorch is imported on first use. The operators take and return ``torch.Tensor``s;
:func:`return_numpy_arrays` puts them behind the NumPy boundary (the ``torch`` backend's
function wrapper). Every call differentiates a fresh leaf tensor detached from the
caller's data, so gradients never leak into the user's tensors, and results are
detached, so no autograd graph outlives the call (a product closure keeps the graph it
needs until the closure itself is dropped).

Derivatives use ``torch.autograd.grad`` directly (it costs a fraction of the
``torch.func`` transforms per call on small inputs); higher orders build the graph of
the lower order with ``create_graph=True``. Jacobians use forward-mode AD when outputs
outnumber inputs and reverse mode otherwise.
"""

from __future__ import annotations

import importlib.util

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from diffops.errors import TracingError, require_scalar

if TYPE_CHECKING:
    from types import ModuleType

TORCH_AVAILABLE: bool = importlib.util.find_spec("torch") is not None
"""Whether PyTorch is installed (found without importing it)."""

EXTRA = "torch"
JACOBIAN_MODES = ("auto", "forward", "reverse")


def _torch() -> ModuleType:
    import torch

    return torch


# ---------------------------------------------------------------------------------
# The NumPy boundary for torch functions


def _to_tensor(value: Any) -> Any:
    torch = _torch()
    if isinstance(value, np.ndarray | np.generic):
        arr = np.asarray(value)
        if not arr.flags.writeable:
            arr = arr.copy()
        tensor = torch.from_numpy(arr)
        device = torch.get_default_device()
        return tensor if device.type == "cpu" else tensor.to(device)
    return value


def _to_numpy(value: Any) -> Any:
    torch = _torch()
    if isinstance(value, tuple):
        return tuple(_to_numpy(v) for v in value)
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if callable(value):
        return _NumpyFunction(value)
    return value


class _NumpyFunction:
    """Calls a torch function with tensors made from NumPy arrays, returns NumPy."""

    __slots__ = ("__name__", "__wrapped__", "_function")

    def __init__(self, function: Callable[..., Any]):
        self._function = function
        self.__wrapped__ = function
        self.__name__ = getattr(function, "__name__", type(function).__name__)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        args = tuple(_to_tensor(a) for a in args)
        kwargs = {k: _to_tensor(v) for k, v in kwargs.items()}
        return _to_numpy(self._function(*args, **kwargs))

    def __repr__(self) -> str:
        return f"<torch function {self.__name__} returning NumPy arrays>"


def return_numpy_arrays(function: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a torch function so that it takes and returns NumPy arrays.

    NumPy arguments become tensors sharing their memory (on the default device);
    tensor results become NumPy arrays, and returned callables are wrapped the same way.

    Args:
        function: Function of tensors returning tensors, callables or tuples of these.

    Returns:
        Function taking NumPy arrays and returning NumPy arrays.
    """
    return _NumpyFunction(function)


# ---------------------------------------------------------------------------------
# Building blocks


def _leaf(x: Any) -> Any:
    """A fresh leaf tensor that shares ``x``'s data and records operations on it."""
    return x.detach().requires_grad_(True)


def _backward(
    out: Any, leaf: Any, cotangent: Any, *, create_graph: bool = False
) -> Any:
    """``cotangent · ∂out/∂leaf``, zero when ``out`` does not depend on ``leaf``."""
    torch = _torch()
    if not out.requires_grad:
        return torch.zeros_like(leaf)
    (result,) = torch.autograd.grad(
        out,
        leaf,
        cotangent,
        retain_graph=True,
        create_graph=create_graph,
        allow_unused=True,
        materialize_grads=True,
    )
    return result


def _rows(out: Any, leaf: Any, *, create_graph: bool) -> Any:
    """Reverse-mode Jacobian of ``out`` wrt ``leaf``: shape ``out.shape + leaf.shape``."""
    torch = _torch()
    n_out = out.numel()
    basis = torch.eye(n_out, dtype=out.dtype, device=out.device)
    rows = [
        _backward(out, leaf, e.reshape(out.shape), create_graph=create_graph)
        for e in basis
    ]
    if not rows:
        return torch.zeros(out.shape + leaf.shape, dtype=leaf.dtype)
    return torch.stack(rows).reshape(out.shape + leaf.shape)


def _columns(func: Callable[..., Any], x: Any) -> tuple[Any, Any]:
    """Forward-mode Jacobian (one JVP per input element) and the value."""
    torch = _torch()
    import torch.autograd.forward_ad as fwad

    n_in = x.numel()
    basis = torch.eye(n_in, dtype=x.dtype, device=x.device)
    columns = []
    value = None
    with fwad.dual_level():
        for e in basis:
            primal, tangent = fwad.unpack_dual(
                func(fwad.make_dual(x, e.reshape(x.shape)))
            )
            value = primal
            columns.append(torch.zeros_like(primal) if tangent is None else tangent)
    if value is None:
        value = func(x)
        return torch.zeros(value.shape + x.shape, dtype=x.dtype), value
    jac = torch.stack(columns, dim=-1).reshape(value.shape + x.shape)
    return jac, value


def _value_and_grad(
    func: Callable[..., Any], leaf: Any, op_name: str, *, create_graph: bool
) -> tuple[Any, Any]:
    value = func(leaf)
    require_scalar(tuple(value.shape), op_name)
    grad = _backward(value, leaf, None, create_graph=create_graph)
    return value, grad


# ---------------------------------------------------------------------------------
# Operators


def grad_and_value(func: Callable[..., Any]) -> Callable[..., Any]:
    """Make a function returning the gradient and value of a scalar function.

    Args:
        func: Scalar-valued function of one tensor of shape ``S``.

    Returns:
        Function ``x -> (grad, value)`` with ``grad[k] = ∂f/∂x[k]`` of shape ``S``.
    """

    def grad_and_value_func(x: Any) -> tuple[Any, Any]:
        with _torch().enable_grad():
            value, grad = _value_and_grad(
                func, _leaf(x), "grad_and_value", create_graph=False
            )
        return grad, value.detach()

    return grad_and_value_func


def vjp_and_value(func: Callable[..., Any]) -> Callable[..., Any]:
    """Make a function returning the vector-Jacobian product and value.

    ``vjp(v) = v @ j``, i.e. ``vjp(v)[k] = Σ_i v[i] ∂f[i]/∂x[k]``.

    Args:
        func: Function of one tensor of shape ``S`` returning shape ``F``.

    Returns:
        Function ``x -> (vjp, value)``; ``vjp`` maps shape ``F`` to shape ``S``.
    """

    def vjp_and_value_func(x: Any) -> tuple[Any, Any]:
        torch = _torch()
        with torch.enable_grad():
            leaf = _leaf(x)
            value = func(leaf)

        def vjp(v: Any) -> Any:
            return _backward(value, leaf, v.to(value.dtype))

        return vjp, value.detach()

    return vjp_and_value_func


def _hessian(
    func: Callable[..., Any], leaf: Any, op_name: str, *, create_graph: bool
) -> tuple[Any, Any, Any]:
    value, grad = _value_and_grad(func, leaf, op_name, create_graph=True)
    hessian = _rows(grad, leaf, create_graph=create_graph)
    return hessian, grad, value


def hessian_grad_and_value(func: Callable[..., Any]) -> Callable[..., Any]:
    """Make a function returning the Hessian, gradient and value of a scalar function.

    ``hessian[j, k] = ∂²f/(∂x[j] ∂x[k])``: one backward pass of the gradient per row.

    Args:
        func: Scalar-valued function of one tensor of shape ``S``.

    Returns:
        Function ``x -> (hessian, grad, value)``; ``hessian`` has shape ``S + S``.
    """

    def hessian_grad_and_value_func(x: Any) -> tuple[Any, Any, Any]:
        with _torch().enable_grad():
            hessian, grad, value = _hessian(
                func, _leaf(x), "hessian_grad_and_value", create_graph=False
            )
        return hessian, grad.detach(), value.detach()

    return hessian_grad_and_value_func


def mtp_hessian_grad_and_value(func: Callable[..., Any]) -> Callable[..., Any]:
    """Make a function returning the MTP, Hessian, gradient and value.

    ``mtp(m)[i] = Σ_jk m[j, k] ∂³f/(∂x[i] ∂x[j] ∂x[k])``: a backward pass of the
    Hessian graph, which the closure keeps.

    Args:
        func: Scalar-valued function of one tensor of shape ``S``.

    Returns:
        Function ``x -> (mtp, hessian, grad, value)``; ``mtp`` maps shape ``S + S``
        to shape ``S``.
    """

    def mtp_hessian_grad_and_value_func(x: Any) -> tuple[Any, Any, Any, Any]:
        torch = _torch()
        with torch.enable_grad():
            leaf = _leaf(x)
            hessian, grad, value = _hessian(
                func, leaf, "mtp_hessian_grad_and_value", create_graph=True
            )

        def mtp(m: Any) -> Any:
            return _backward(hessian, leaf, m.to(hessian.dtype))

        return mtp, hessian.detach(), grad.detach(), value.detach()

    return mtp_hessian_grad_and_value_func


def _check_mode(mode: str) -> None:
    if mode not in JACOBIAN_MODES:
        msg = f"Jacobian mode {mode!r} is not one of {JACOBIAN_MODES}."
        raise ValueError(msg)


def jacobian_and_value(
    func: Callable[..., Any], mode: str = "auto"
) -> Callable[..., Any]:
    """Make a function returning the Jacobian and value of a function.

    ``jacobian[i, k] = ∂f[i]/∂x[k]`` (for N-d shapes, indices flatten in C order).

    Args:
        func: Function of one tensor of shape ``S`` returning shape ``F``.
        mode: ``"forward"`` (one forward-mode pass per input), ``"reverse"`` (one
            backward pass per output) or ``"auto"`` (default): forward when outputs
            outnumber inputs, which is known after the first evaluation.

    Returns:
        Function ``x -> (jacobian, value)``; ``jacobian`` has shape ``F + S``.
    """
    _check_mode(mode)
    use_forward: dict[tuple[int, ...], bool] = {}

    def jacobian_and_value_func(x: Any) -> tuple[Any, Any]:
        torch = _torch()
        forward = use_forward.get(tuple(x.shape))
        if forward is None and mode != "auto":
            forward = mode == "forward"
        if forward:
            with torch.no_grad():
                jacobian, value = _columns(func, x)
            return jacobian, value
        with torch.enable_grad():
            leaf = _leaf(x)
            value = func(leaf)
            if forward is None:
                use_forward[tuple(x.shape)] = value.numel() > x.numel()
            jacobian = _rows(value, leaf, create_graph=False)
        return jacobian, value.detach()

    return jacobian_and_value_func


def mhp_jacobian_and_value(
    func: Callable[..., Any], mode: str = "reverse"
) -> Callable[..., Any]:
    """Make a function returning the MHP, Jacobian and value of a function.

    ``mhp(m)[k] = Σ_ij m[i, j] ∂²f[i]/(∂x[j] ∂x[k])``: a backward pass of the
    reverse-mode Jacobian graph, which the closure keeps.

    Args:
        func: Function of one tensor of shape ``S`` returning shape ``F``.
        mode: Only ``"reverse"`` (the default) is differentiable twice here;
            ``"auto"`` is accepted and means reverse.

    Returns:
        Function ``x -> (mhp, jacobian, value)``; ``mhp`` maps shape ``F + S`` to
        shape ``S``.
    """
    if mode not in ("auto", "reverse"):
        msg = (
            f"mhp_jacobian_and_value on the torch backend supports mode 'reverse' "
            f"(or 'auto'), not {mode!r}."
        )
        raise ValueError(msg)

    def mhp_jacobian_and_value_func(x: Any) -> tuple[Any, Any, Any]:
        torch = _torch()
        with torch.enable_grad():
            leaf = _leaf(x)
            value = func(leaf)
            jacobian = _rows(value, leaf, create_graph=True)

        def mhp(m: Any) -> Any:
            return _backward(jacobian, leaf, m.to(jacobian.dtype))

        return mhp, jacobian.detach(), value.detach()

    return mhp_jacobian_and_value_func


def explain_error(err: Exception, func: Callable[..., Any]) -> Exception | None:
    """Add a hint to errors raised when plain NumPy meets PyTorch tensors.

    Args:
        err: Exception raised while calling a derivative function.
        func: The user's function.

    Returns:
        The exception to raise instead, or ``None`` to re-raise ``err`` unchanged.
    """
    text = str(err)
    if not (
        isinstance(err, RuntimeError | TypeError)
        and ("numpy()" in text or "Tensor" in text and "ufunc" in text)
    ):
        return None
    name = getattr(func, "__name__", "the function")
    msg = (
        f"PyTorch could not differentiate {name!r}: {err}\n"
        f"Hint: write {name!r} with torch operations (torch.sin, torch.sum, `@`, ...) "
        f"on the tensor it receives, instead of numpy functions."
    )
    return TracingError(msg)


__all__ = [
    "grad_and_value",
    "hessian_grad_and_value",
    "jacobian_and_value",
    "mhp_jacobian_and_value",
    "mtp_hessian_grad_and_value",
    "return_numpy_arrays",
    "vjp_and_value",
]
