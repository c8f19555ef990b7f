"""PyTorch backend: the six operators for functions written with ``torch`` ops.

PyTorch is imported on first use, never at ``import diffops``. The operators take and
return ``torch.Tensor``s; :func:`return_numpy_arrays` puts them behind the NumPy
boundary (the ``torch`` backend's function wrapper), and :func:`make_caller` is the
lean per-call path that diffops' own derivative functions use. Every call
differentiates a fresh leaf tensor detached from the caller's data, so gradients never
leak into the user's tensors, and results are detached, so no autograd graph outlives
the call (a product closure keeps the graph it needs until the closure is dropped).

How the derivatives are computed, and why (timed with PyTorch 2.13 on CPU, side by
side with the ``torch.func`` transforms and plain ``torch.autograd.grad``):

- Each call records one forward pass of the user's function on the leaf and runs
  backward passes of that graph. Single backward passes call the engine through the
  entry point that ``torch.autograd.grad`` itself uses, skipping its per-call
  argument handling (about a tenth of a tiny backward pass); tensor subclasses, and
  PyTorch versions without that entry point, go through ``torch.autograd.grad``.
  Whole-operator ``torch.func`` transforms are not used: on inputs of a few elements
  ``torch.func.grad_and_value`` costs 2-2.5 times a recorded forward and backward
  pass, and ``torch.func.hessian`` 5-6 times the loop below.
- Hessians are reverse-over-reverse: the gradient is recorded with
  ``create_graph=True`` and its rows are VJPs of it. The MTP closure is one backward
  pass of those rows, so it reuses the Hessian pass.
- Jacobians use reverse mode (one VJP per output) unless outputs outnumber inputs.
  Then the columns ``J t`` come from the double-VJP ("transpose") trick:
  ``u -> uᵀ J`` is recorded once as a function of a dummy cotangent ``u`` and each
  column is a VJP of it, ``J t = ∂(uᵀ J t)/∂u``. This is forward mode built from
  reverse-mode rules; PyTorch's forward-mode AD (``torch.autograd.forward_ad``)
  gives the same columns but runs many of its rules as Python decompositions and is
  4-5 times slower per column. Functions whose backward cannot be differentiated
  fall back to reverse mode.
- Fewer than ``BATCH_MIN`` VJPs (rows or columns) run as a loop of backward passes.
  From ``BATCH_MIN`` on, ``torch.func.vmap`` vectorises ``torch.autograd.grad`` over
  the cotangents of the already recorded graph: at d = 100 that is 10-15 times
  faster than the loop, about 3 times faster than ``is_grads_batched=True`` (the
  older vmap) and 2.5 times faster than ``torch.func.jacrev(torch.func.jacrev(f))``.
  Backward formulas that vmap cannot batch fall back to the loop.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from diffops.errors import InputTypeError, TracingError, require_scalar, require_shape
from diffops.operators import (
    OPERATORS,
    check_jacobian_mode,
    mode_option_checker,
)

if TYPE_CHECKING:
    from types import ModuleType

TORCH_AVAILABLE: bool = importlib.util.find_spec("torch") is not None
"""Whether PyTorch is installed (found without importing it)."""

EXTRA = "torch"
FRAMEWORK_ARRAYS = True
"""With ``as_numpy=False`` derivative functions take and return tensors."""
BATCH_MIN = 4
"""From this many VJPs on (Hessian or Jacobian rows, forward-mode columns), they are
computed in vectorised backward passes; fewer take one backward pass each."""
BATCH_MAX = 256
"""At most this many VJPs per vectorised pass, bounding its memory to that many
times one backward pass."""

_TORCH: ModuleType | None = None
_TENSOR: Any = None  # torch.Tensor, once torch is imported
# ``torch.autograd.grad`` without its argument handling; ``None`` if unavailable.
_RUN_BACKWARD: Callable[..., Any] | None = None
# Number of active torch-function modes (``torch.set_default_device`` adds one).
_MODE_STACK_DEPTH: Callable[[], int] | None = None


def _torch() -> ModuleType:
    global _TORCH, _TENSOR, _RUN_BACKWARD, _MODE_STACK_DEPTH
    if _TORCH is None:
        import torch

        _TENSOR = torch.Tensor
        _RUN_BACKWARD = getattr(torch.autograd.graph, "_engine_run_backward", None)
        _MODE_STACK_DEPTH = getattr(torch._C, "_len_torch_function_stack", None)
        _TORCH = torch
    return _TORCH


# ---------------------------------------------------------------------------------
# The NumPy boundary for torch functions


def _to_tensor(value: Any) -> Any:
    """A tensor on the default device sharing ``value``'s memory where possible."""
    if not isinstance(value, np.ndarray | np.generic):
        return value
    torch = _torch()
    arr = value if type(value) is np.ndarray else np.asarray(value)
    if not (arr.flags.writeable and arr.flags.c_contiguous):
        # torch.from_numpy rejects negative strides and warns on read-only memory.
        arr = arr.copy()
    tensor = torch.from_numpy(arr)
    if _MODE_STACK_DEPTH is not None and _MODE_STACK_DEPTH() == 0:
        return tensor  # no torch.set_default_device in force: the device is the CPU
    device = torch.get_default_device()
    return tensor if device.type == "cpu" else tensor.to(device)


def _to_numpy(value: Any) -> Any:
    if isinstance(value, _TENSOR):
        return value.numpy(force=True)
    if isinstance(value, tuple):
        return tuple(_to_numpy(v) for v in value)
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
        _torch()
        args = tuple([_to_tensor(a) for a in args])
        if kwargs:
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


def _evaluate(func: Callable[..., Any], leaf: Any) -> Any:
    """``func(leaf)``, which must be a tensor: anything else has lost the graph."""
    value = func(leaf)
    if isinstance(value, _TENSOR):
        return value
    name = getattr(func, "__name__", "the function")
    msg = (
        f"{name!r} returned {type(value).__name__}, not a torch.Tensor, so PyTorch "
        f"cannot differentiate it (NumPy arrays and Python numbers carry no autograd "
        f"graph).\nHint: write {name!r} with torch operations (torch.sin, torch.sum, "
        f"`@`, ...) on the tensor it receives and return the resulting tensor."
    )
    raise TracingError(msg)


def _backward(
    out: Any, leaf: Any, cotangent: Any, *, retain: bool, create: bool
) -> Any:
    """``cotangent · ∂out/∂leaf`` (zeros where ``out`` does not depend on ``leaf``).

    Args:
        out: Tensor computed from ``leaf``.
        leaf: Tensor that requires grad.
        cotangent: Tensor of ``out``'s shape.
        retain: Keep the graph of ``out`` for further backward passes.
        create: Record the backward pass, so the result can be differentiated.

    Returns:
        Tensor of ``leaf``'s shape.
    """
    if not out.requires_grad:
        return _torch().zeros_like(leaf)
    if (
        _RUN_BACKWARD is not None
        and type(out) is _TENSOR
        and type(leaf) is _TENSOR
        and type(cotangent) is _TENSOR
    ):
        # What torch.autograd.grad(out, leaf, cotangent, retain, create,
        # allow_unused=True) runs once it has normalised its arguments.
        (result,) = _RUN_BACKWARD(
            (out,), (cotangent,), retain, create, (leaf,), True, accumulate_grad=False
        )
    else:
        (result,) = _torch().autograd.grad(
            out,
            leaf,
            cotangent,
            retain_graph=retain,
            create_graph=create,
            allow_unused=True,
        )
    return _torch().zeros_like(leaf) if result is None else result


def _owned(result: Any, source: Any) -> Any:
    """``result`` without autograd history, copied if it is a view.

    Views are copied so that no result shares memory with the caller's arrays or
    with itself: the value of ``f(x) = x[:2]`` is a view of the input, the VJP of a
    reshape is a view of its cotangent (both would change when the caller later
    updates its array in place), and the gradient of ``sum(x)`` is an expanded
    tensor whose elements are one number in memory.

    Args:
        result: Tensor to return.
        source: The tensor it must not share memory with (the leaf or cotangent).

    Returns:
        A tensor without autograd history.
    """
    if result is source or result._is_view():
        return result.detach().clone()
    return result.detach()


def _basis(n: int, shape: tuple[int, ...], like: Any) -> Any:
    """The ``n`` unit tensors of shape ``shape``, stacked: shape ``(n, *shape)``."""
    torch = _torch()
    return torch.eye(n, dtype=like.dtype, device=like.device).reshape((n, *shape))


def _products(out: Any, leaf: Any, cotangents: Any, *, create: bool) -> Any:
    """``cotangents[i] · ∂out/∂leaf`` for every ``i``: shape ``(n, *leaf.shape)``.

    From ``BATCH_MIN`` products on, the backward pass is vectorised over the
    cotangents with ``torch.func.vmap`` (in chunks of ``BATCH_MAX``); fewer products,
    or a backward formula that cannot be vectorised, take one backward pass each.
    """
    torch = _torch()
    n = cotangents.shape[0]
    if n >= BATCH_MIN:

        def vjp(cotangent: Any) -> Any:
            (result,) = torch.autograd.grad(
                out,
                leaf,
                cotangent,
                retain_graph=True,
                create_graph=create,
                allow_unused=True,
                materialize_grads=True,
            )
            return result

        chunk = BATCH_MAX if n > BATCH_MAX else None
        try:
            return torch.func.vmap(vjp, chunk_size=chunk)(cotangents)
        except RuntimeError:
            pass  # e.g. a custom autograd.Function whose backward vmap cannot batch
    return torch.stack(
        [_backward(out, leaf, c, retain=True, create=create) for c in cotangents]
    )


def _rows(out: Any, leaf: Any, *, create: bool) -> Any:
    """Reverse-mode Jacobian of ``out`` wrt ``leaf``: one VJP per element of ``out``.

    Returns:
        Tensor of shape ``out.shape + leaf.shape``.
    """
    torch = _torch()
    shape = out.shape + leaf.shape
    n_out = out.numel()
    if n_out == 0 or not out.requires_grad:
        return torch.zeros(shape, dtype=leaf.dtype, device=leaf.device)
    if n_out == 1:
        row = _backward(out, leaf, torch.ones_like(out), retain=True, create=create)
        return row.reshape(shape)
    basis = _basis(n_out, out.shape, out)
    return _products(out, leaf, basis, create=create).reshape(shape)


def _columns(out: Any, leaf: Any, *, create: bool) -> Any:
    """Forward-mode Jacobian of ``out`` wrt ``leaf``: one JVP per element of ``leaf``.

    Column ``J t`` is the derivative of ``uᵀ J t`` wrt a dummy cotangent ``u``: the
    map ``u -> uᵀ J`` is recorded once (a backward pass with ``create_graph=True``)
    and the columns are its VJPs.

    Returns:
        Tensor of shape ``out.shape + leaf.shape``.
    """
    torch = _torch()
    shape = out.shape + leaf.shape
    n_in = leaf.numel()
    if n_in == 0 or not out.requires_grad:
        return torch.zeros(shape, dtype=leaf.dtype, device=leaf.device)
    u = torch.zeros_like(out, requires_grad=True)
    pulled = _backward(out, leaf, u, retain=True, create=True)
    columns = _products(pulled, u, _basis(n_in, leaf.shape, leaf), create=create)
    return columns.reshape(n_in, out.numel()).T.reshape(shape)


def _jacobian(out: Any, leaf: Any, mode: str, *, create: bool) -> Any:
    """Jacobian of ``out`` wrt ``leaf`` in ``mode``; ``auto`` picks the fewer passes."""
    if mode == "forward" or (mode == "auto" and out.numel() > leaf.numel()):
        try:
            return _columns(out, leaf, create=create)
        except RuntimeError:
            # A backward formula that cannot be differentiated (e.g. a custom
            # autograd.Function marked once_differentiable): reverse mode needs
            # first derivatives only.
            pass
    return _rows(out, leaf, create=create)


def _value_and_grad(
    func: Callable[..., Any], leaf: Any, op_name: str, *, create: bool
) -> tuple[Any, Any]:
    value = _evaluate(func, leaf)
    if value.dim() != 0:
        require_scalar(tuple(value.shape), op_name)
    ones = _torch().ones_like(value)
    grad = _backward(value, leaf, ones, retain=create, create=create)
    return value, grad


def _hessian(
    func: Callable[..., Any], leaf: Any, op_name: str, *, create: bool
) -> tuple[Any, Any, Any]:
    value, grad = _value_and_grad(func, leaf, op_name, create=True)
    return _rows(grad, leaf, create=create), grad, value


# ---------------------------------------------------------------------------------
# Operators


def grad_and_value(func: Callable[..., Any]) -> Callable[..., Any]:
    """Make a function returning the gradient and value of a scalar function.

    ``grad[k] = ∂f/∂x[k]``: one forward and one backward pass.

    Args:
        func: Scalar-valued function of one tensor of shape ``S``.

    Returns:
        Function ``x -> (grad, value)``; ``grad`` has shape ``S``.
    """
    torch = _torch()

    def grad_and_value_func(x: Any) -> tuple[Any, Any]:
        with torch.enable_grad():
            leaf = _leaf(x)
            value, grad = _value_and_grad(func, leaf, "grad_and_value", create=False)
        return _owned(grad, None), _owned(value, leaf)

    return grad_and_value_func


def vjp_and_value(func: Callable[..., Any]) -> Callable[..., Any]:
    """Make a function returning the vector-Jacobian product and value.

    ``vjp(v) = v @ j``, i.e. ``vjp(v)[k] = Σ_i v[i] ∂f[i]/∂x[k]``: the closure runs
    one backward pass of the recorded forward pass, which it keeps.

    Args:
        func: Function of one tensor of shape ``S`` returning shape ``F``.

    Returns:
        Function ``x -> (vjp, value)``; ``vjp`` maps shape ``F`` to shape ``S``.
    """
    torch = _torch()

    def vjp_and_value_func(x: Any) -> tuple[Any, Any]:
        with torch.enable_grad():
            leaf = _leaf(x)
            value = _evaluate(func, leaf)

        def vjp(v: Any) -> Any:
            v = v.reshape(value.shape).to(value.device, value.dtype)
            return _owned(_backward(value, leaf, v, retain=True, create=False), v)

        return vjp, _owned(value, leaf)

    return vjp_and_value_func


def hessian_grad_and_value(func: Callable[..., Any]) -> Callable[..., Any]:
    """Make a function returning the Hessian, gradient and value of a scalar function.

    ``hessian[j, k] = ∂²f/(∂x[j] ∂x[k])``: one backward pass of the gradient per row.

    Args:
        func: Scalar-valued function of one tensor of shape ``S``.

    Returns:
        Function ``x -> (hessian, grad, value)``; ``hessian`` has shape ``S + S``.
    """
    torch = _torch()

    def hessian_grad_and_value_func(x: Any) -> tuple[Any, Any, Any]:
        with torch.enable_grad():
            leaf = _leaf(x)
            hessian, grad, value = _hessian(
                func, leaf, "hessian_grad_and_value", create=False
            )
        return _owned(hessian, None), _owned(grad, None), _owned(value, leaf)

    return hessian_grad_and_value_func


def mtp_hessian_grad_and_value(func: Callable[..., Any]) -> Callable[..., Any]:
    """Make a function returning the MTP, Hessian, gradient and value.

    ``mtp(m) = sum(m[None, :, :] * t, axis=(-1, -2))``, i.e.
    ``mtp(m)[i] = Σ_jk m[j, k] ∂³f/(∂x[i] ∂x[j] ∂x[k])``: a backward pass of the
    Hessian rows, whose graph the closure keeps.

    Args:
        func: Scalar-valued function of one tensor of shape ``S``.

    Returns:
        Function ``x -> (mtp, hessian, grad, value)``; ``mtp`` maps shape ``S + S``
        to shape ``S``.
    """
    torch = _torch()

    def mtp_hessian_grad_and_value_func(x: Any) -> tuple[Any, Any, Any, Any]:
        with torch.enable_grad():
            leaf = _leaf(x)
            hessian, grad, value = _hessian(
                func, leaf, "mtp_hessian_grad_and_value", create=True
            )

        def mtp(m: Any) -> Any:
            m = m.reshape(hessian.shape).to(hessian.device, hessian.dtype)
            return _owned(_backward(hessian, leaf, m, retain=True, create=False), m)

        return mtp, _owned(hessian, None), _owned(grad, None), _owned(value, leaf)

    return mtp_hessian_grad_and_value_func


def jacobian_and_value(
    func: Callable[..., Any], mode: str = "auto"
) -> Callable[..., Any]:
    """Make a function returning the Jacobian and value of a function.

    ``jacobian[i, k] = ∂f[i]/∂x[k]`` (for N-d shapes, indices flatten in C order).

    Args:
        func: Function of one tensor of shape ``S`` returning shape ``F``.
        mode: ``"forward"`` (one pass per input), ``"reverse"`` (one backward pass
            per output) or ``"auto"`` (default): forward when outputs outnumber
            inputs.

    Returns:
        Function ``x -> (jacobian, value)``; ``jacobian`` has shape ``F + S``.
    """
    check_jacobian_mode(mode)
    torch = _torch()

    def jacobian_and_value_func(x: Any) -> tuple[Any, Any]:
        with torch.enable_grad():
            leaf = _leaf(x)
            value = _evaluate(func, leaf)
            jacobian = _jacobian(value, leaf, mode, create=False)
        return _owned(jacobian, None), _owned(value, leaf)

    return jacobian_and_value_func


def mhp_jacobian_and_value(
    func: Callable[..., Any], mode: str = "auto"
) -> Callable[..., Any]:
    """Make a function returning the MHP, Jacobian and value of a function.

    ``mhp(m) = sum(m[:, :, None] * h, axis=(0, 1))``, i.e.
    ``mhp(m)[k] = Σ_ij m[i, j] ∂²f[i]/(∂x[j] ∂x[k])``: a backward pass of the
    Jacobian pass, whose graph the closure keeps.

    Args:
        func: Function of one tensor of shape ``S`` returning shape ``F``.
        mode: Jacobian mode, as for :func:`jacobian_and_value` (default ``"auto"``).

    Returns:
        Function ``x -> (mhp, jacobian, value)``; ``mhp`` maps shape ``F + S`` to
        shape ``S``.
    """
    check_jacobian_mode(mode)
    torch = _torch()

    def mhp_jacobian_and_value_func(x: Any) -> tuple[Any, Any, Any]:
        with torch.enable_grad():
            leaf = _leaf(x)
            value = _evaluate(func, leaf)
            jacobian = _jacobian(value, leaf, mode, create=True)

        def mhp(m: Any) -> Any:
            m = m.reshape(jacobian.shape).to(jacobian.device, jacobian.dtype)
            return _owned(_backward(jacobian, leaf, m, retain=True, create=False), m)

        return mhp, _owned(jacobian, None), _owned(value, leaf)

    return mhp_jacobian_and_value_func


# ---------------------------------------------------------------------------------
# Build-time checks and the lean per-call path used by diffops' derivative functions

check_function = mode_option_checker("torch")
"""Build-time check of the options: ``mode`` for Jacobians, nothing else."""


def make_caller(
    func: Callable[..., Any],
    op_name: str,
    function_wrapper: Callable[..., Any] | None,
    as_numpy: bool = True,
    **options: Any,
) -> Callable[[Any], tuple[Any, ...]]:
    """Build the per-call function of a diffops derivative function on PyTorch.

    With the backend's own wrapper (:func:`return_numpy_arrays`) each call makes one
    tensor sharing the input's memory, runs the operator and converts its results
    straight to NumPy arrays of the input's dtype (NumPy scalars when 0-d): the
    results of that wrapper followed by :func:`diffops.boundary.finalize`, without
    their generic conversions. Any other wrapper is applied as it is, followed by
    ``finalize``.

    Args:
        func: The user's function, written with torch operations.
        op_name: Operator name, one of ``DIFF_OPS``.
        function_wrapper: The backend's wrapper.
        as_numpy: Whether to return NumPy arrays (default) or tensors, left on their
            device (the input may then be a tensor too).
        **options: Options for the operator (``mode`` for Jacobians).

    Returns:
        Function of a float32/float64 NumPy array (or, with ``as_numpy=False``, a
        tensor) returning the operator's tuple.
    """
    from diffops.boundary import ProductClosure, finalize

    op = OPERATORS[op_name]
    raw = _probed(globals()[op_name](func, **options), func)
    if not as_numpy:
        return _tensor_caller(raw, op)
    if function_wrapper is not return_numpy_arrays:
        wrapped = raw if function_wrapper is None else function_wrapper(raw)

        def generic_call(x: np.ndarray) -> tuple[Any, ...]:
            return finalize(wrapped(x), op, x)

        return generic_call

    if op.closure is None:

        def call(x: np.ndarray) -> tuple[Any, ...]:
            dtype = x.dtype
            return tuple([_result(r, dtype) for r in raw(_to_tensor(x))])

        return call

    name = op.closure

    def call_with_closure(x: np.ndarray) -> tuple[Any, ...]:
        dtype = x.dtype
        closure, *tensors = raw(_to_tensor(x))
        arg_shape = op.closure_arg_shape(x.shape, tuple(tensors[-1].shape))
        product = ProductClosure(
            _NumpyClosure(closure), name, arg_shape, x.shape, dtype
        )
        return (product, *[_result(r, dtype) for r in tensors])

    return call_with_closure


def _result(tensor: Any, dtype: np.dtype) -> Any:
    """A result at the NumPy boundary: array of ``dtype``, NumPy scalar if 0-d."""
    if tensor.dim() == 0:
        return dtype.type(tensor.item())
    arr = tensor.numpy(force=True)
    return arr if arr.dtype == dtype else arr.astype(dtype)


class _NumpyClosure:
    """A product closure of tensors, called with and returning a NumPy array."""

    __slots__ = ("_closure",)

    def __init__(self, closure: Callable[[Any], Any]):
        self._closure = closure

    def __call__(self, arr: np.ndarray) -> np.ndarray:
        return self._closure(_to_tensor(arr)).numpy(force=True)


def _as_float_tensor(x: Any) -> Any:
    """``x`` as a floating-point tensor (integer and boolean tensors become float64)."""
    torch = _torch()
    if not isinstance(x, _TENSOR):
        return _to_tensor(x)
    if x.is_floating_point():
        return x
    if x.is_complex():
        msg = (
            f"The input is a complex tensor ({x.dtype}); diffops differentiates real "
            f"functions only. Split it into real and imaginary parts, e.g. "
            f"`torch.cat([z.real, z.imag])`."
        )
        raise InputTypeError(msg)
    return x.to(torch.float64)


def _tensor_caller(
    raw: Callable[[Any], Any], op: Any
) -> Callable[[Any], tuple[Any, ...]]:
    """Per-call function that takes and returns tensors (``as_numpy=False``)."""
    if op.closure is None:

        def call(x: Any) -> tuple[Any, ...]:
            return tuple(raw(_as_float_tensor(x)))

        return call

    def call_with_closure(x: Any) -> tuple[Any, ...]:
        if isinstance(x, _TENSOR):
            # The closure's graph keeps the input: a copy, so that later in-place
            # changes to the caller's tensor cannot reach it.
            x = _as_float_tensor(x.detach().clone())
        else:
            x = _as_float_tensor(x)
        closure, *tensors = raw(x)
        arg_shape = op.closure_arg_shape(tuple(x.shape), tuple(tensors[-1].shape))
        return (_TorchClosure(closure, op.closure, arg_shape), *tensors)

    return call_with_closure


class _TorchClosure:
    """A product closure that takes and returns tensors (``as_numpy=False``)."""

    __slots__ = ("__name__", "_closure", "arg_shape")

    def __init__(self, closure: Callable[[Any], Any], name: str, arg_shape: Any):
        self._closure = closure
        self.__name__ = name
        self.arg_shape = arg_shape

    def __call__(self, m: Any) -> Any:
        """Apply the product to ``m`` (a tensor or array of shape :attr:`arg_shape`)."""
        shape = tuple(m.shape) if hasattr(m, "shape") else np.shape(m)
        if shape != self.arg_shape:
            require_shape(
                shape,
                self.arg_shape,
                f"argument of {self.__name__}",
                f"{self.__name__} takes an array of shape {self.arg_shape}.",
            )
        return self._closure(_as_float_tensor(m))

    def __repr__(self) -> str:
        return f"<{self.__name__} closure of tensors: takes shape {self.arg_shape}>"


def explain_error(err: Exception, func: Callable[..., Any]) -> Exception | None:
    """Add a hint to errors raised when plain NumPy meets PyTorch tensors.

    Args:
        err: Exception raised while calling a derivative function.
        func: The user's function.

    Returns:
        The exception to raise instead, or ``None`` to re-raise ``err`` unchanged.
    """
    if isinstance(err, TracingError) or not isinstance(err, RuntimeError | TypeError):
        return None
    text = str(err)
    if not (
        "numpy()" in text
        or ("Tensor" in text and "ufunc" in text)
        or _raised_inside_numpy(err)
    ):
        return None
    name = getattr(func, "__name__", "the function")
    msg = (
        f"PyTorch could not differentiate {name!r}: {err}\n"
        f"Hint: write {name!r} with torch operations (torch.sin, torch.sum, `@`, ...) "
        f"on the tensor it receives, instead of numpy functions."
    )
    return TracingError(msg)


def _probed(
    raw: Callable[[Any], Any], func: Callable[..., Any]
) -> Callable[[Any], Any]:
    """``raw``, preceded at the first call per shape and dtype by :func:`_probe`."""
    seen: set[tuple[Any, ...]] = set()

    def probed(x: Any) -> Any:
        key = (tuple(x.shape), x.dtype)
        if key not in seen:
            _probe(func, x)
            seen.add(key)
        return raw(x)

    return probed


def _probe(func: Callable[..., Any], x: Any) -> None:
    """Run ``func`` once, failing if it turns a differentiated tensor into numbers.

    ``float(t)``, ``t.item()``, ``np.asarray(t)`` and the like on a tensor that
    requires grad cut it out of the graph; PyTorch only warns, once per process, and
    the derivative comes out silently wrong (e.g. ``z = np.zeros(3); z[0] = x[0]``).
    Intercepting every operation costs tens of µs, so it is done on the first call
    for each input shape and dtype only.

    Raises:
        TracingError: If ``func`` converts a tensor that requires grad to a Python
            number or a NumPy array.
    """
    torch = _torch()
    from torch.overrides import TorchFunctionMode

    tensor = torch.Tensor
    escapes = {
        tensor.__float__,
        tensor.__int__,
        tensor.__index__,
        tensor.__array__,
        tensor.item,
        tensor.tolist,
        tensor.numpy,
    }
    name = getattr(func, "__name__", "the function")

    class EscapeCheck(TorchFunctionMode):
        def __torch_function__(
            self, f: Any, types: Any, args: Any = (), kwargs: Any = None
        ) -> Any:
            if f in escapes and args and getattr(args[0], "requires_grad", False):
                msg = (
                    f"{name!r} converts a tensor that is being differentiated to a "
                    f"Python number or NumPy array ({getattr(f, '__name__', f)}), "
                    f"which cuts it out of the derivative.\nHint: write {name!r} "
                    f"with torch operations (torch.stack, torch.sum, `@`, ...) on "
                    f"the tensor it receives instead of numpy functions or float()."
                )
                raise TracingError(msg)
            return f(*args, **(kwargs or {}))

    with torch.enable_grad(), EscapeCheck():
        func(_leaf(x))


def _raised_inside_numpy(err: BaseException) -> bool:
    """Whether ``err`` was raised in NumPy's code (a NumPy function met a tensor)."""
    tb = err.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if module == "numpy" or module.startswith("numpy."):
            return True
        tb = tb.tb_next
    return False


__all__ = [
    "grad_and_value",
    "hessian_grad_and_value",
    "jacobian_and_value",
    "mhp_jacobian_and_value",
    "mtp_hessian_grad_and_value",
    "return_numpy_arrays",
    "vjp_and_value",
]
