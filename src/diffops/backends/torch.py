"""PyTorch backend: the operators for functions written with ``torch`` operations.

PyTorch is imported on first use, never at ``import diffops``. The operators take and
return ``torch.Tensor``s. Every call differentiates a fresh leaf tensor detached from
the caller's data, so gradients never leak into the user's tensors, and results are
detached, so no autograd graph outlives the call (a product closure keeps the graph it
needs until the closure is dropped).

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
import math
from collections.abc import Callable
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np

from diffops.backends import protocol
from diffops.backends.protocol import (
    Backend,
    InAxes,
    Options,
    check_jacobian_mode,
    jacobian_mode,
)
from diffops.boundary import NumpyFunction, call_signature, check_value, require_fits
from diffops.errors import TracingError, tracing_error
from diffops.operators import OPERATORS

Function = Callable[..., Any]

TORCH_AVAILABLE: bool = importlib.util.find_spec("torch") is not None
"""Whether torch is installed (found without importing it), as Mici names it."""

BATCH_MIN = 4
"""From this many VJPs on (Hessian or Jacobian rows, forward-mode columns), they are
computed in vectorised backward passes; fewer take one backward pass each."""
BATCH_MAX = 256
"""At most this many VJPs per vectorised pass, bounding its memory to that many
times one backward pass."""

_TORCH: ModuleType | None = None
_TENSOR: Any = None  # torch.Tensor, once torch is imported
# ``torch.autograd.grad`` without its argument handling; ``None`` if unavailable.
_RUN_BACKWARD: Function | None = None
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
# Building blocks


def _leaf(x: Any) -> Any:
    """A fresh leaf tensor sharing ``x``'s data, recording operations on it.

    The boundary hands the operators a copy of the caller's array
    (``TorchBackend.protect_input``), so in-place changes the user's function makes
    to the tensor it receives cannot reach the caller.
    """
    return x.detach().requires_grad_(True)


def _evaluate(func: Function, leaf: Any, args: tuple[Any, ...], op_name: str) -> Any:
    """``func(leaf, *args)``, which must be a tensor: anything else lost the graph."""
    value = func(leaf, *args)
    if isinstance(value, _TENSOR):
        check_value(
            value,
            OPERATORS[op_name],
            func,
            tuple(value.shape),
            complex_=value.is_complex(),
        )
        return value
    if not isinstance(value, np.ndarray | np.generic):
        check_value(value, OPERATORS[op_name], func, None)
    name = getattr(func, "__name__", "the function")
    msg = (
        f"{name!r} returned {type(value).__name__}, not a torch.Tensor, so PyTorch "
        f"cannot differentiate it (NumPy arrays carry no autograd graph).\nHint: "
        f"write {name!r} with torch operations (torch.sin, torch.sum, `@`, ...) on "
        f"the tensor it receives and return the resulting tensor."
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


def _rows(
    out: Any, leaf: Any, *, create: bool, what: str = "jacobian", op_name: str = ""
) -> Any:
    """Reverse-mode Jacobian of ``out`` wrt ``leaf``: one VJP per element of ``out``.

    Returns:
        Tensor of shape ``out.shape + leaf.shape``.
    """
    torch = _torch()
    shape = out.shape + leaf.shape
    require_fits(what, tuple(shape), np.float64, op_name)
    n_out = out.numel()
    if n_out == 0 or not out.requires_grad:
        return torch.zeros(shape, dtype=leaf.dtype, device=leaf.device)
    if n_out == 1:
        row = _backward(out, leaf, torch.ones_like(out), retain=True, create=create)
        return row.reshape(shape)
    basis = _basis(n_out, out.shape, out)
    return _products(out, leaf, basis, create=create).reshape(shape)


def _columns(out: Any, leaf: Any, *, create: bool, op_name: str = "") -> Any:
    """Forward-mode Jacobian of ``out`` wrt ``leaf``: one JVP per element of ``leaf``.

    Column ``J t`` is the derivative of ``uᵀ J t`` wrt a dummy cotangent ``u``: the
    map ``u -> uᵀ J`` is recorded once (a backward pass with ``create_graph=True``)
    and the columns are its VJPs.

    Returns:
        Tensor of shape ``out.shape + leaf.shape``.
    """
    torch = _torch()
    shape = out.shape + leaf.shape
    require_fits("jacobian", tuple(shape), np.float64, op_name)
    n_in = leaf.numel()
    if n_in == 0 or not out.requires_grad:
        return torch.zeros(shape, dtype=leaf.dtype, device=leaf.device)
    u = torch.zeros_like(out, requires_grad=True)
    pulled = _backward(out, leaf, u, retain=True, create=True)
    columns = _products(pulled, u, _basis(n_in, leaf.shape, leaf), create=create)
    return columns.reshape(n_in, out.numel()).T.reshape(shape)


def _jacobian(out: Any, leaf: Any, mode: str, *, create: bool, op_name: str) -> Any:
    """Jacobian of ``out`` wrt ``leaf`` in ``mode``; ``auto`` picks the fewer passes."""
    if jacobian_mode(mode, leaf.numel(), out.numel()) == "forward":
        try:
            return _columns(out, leaf, create=create, op_name=op_name)
        except RuntimeError:
            # A backward formula that cannot be differentiated (e.g. a custom
            # autograd.Function marked once_differentiable): reverse mode needs
            # first derivatives only.
            pass
    return _rows(out, leaf, create=create, op_name=op_name)


def _value_and_grad(
    func: Function, leaf: Any, args: tuple[Any, ...], op_name: str, *, create: bool
) -> tuple[Any, Any]:
    value = _evaluate(func, leaf, args, op_name)
    ones = _torch().ones_like(value)
    grad = _backward(value, leaf, ones, retain=create, create=create)
    return value, grad


def _hessian(
    func: Function, leaf: Any, args: tuple[Any, ...], op_name: str, *, create: bool
) -> tuple[Any, Any, Any]:
    value, grad = _value_and_grad(func, leaf, args, op_name, create=True)
    rows = _rows(grad, leaf, create=create, what="hessian", op_name=op_name)
    return rows, grad, value


# ---------------------------------------------------------------------------------
# Operators


def grad_and_value(func: Function) -> Function:
    """Make ``(x, *args) -> (grad, value)``.

    Computed by one forward and one backward pass.

    Args:
        func: Scalar-valued ``func(x, *args)`` written with torch operations.

    Returns:
        The derivative function, tensors in and out (outputs and shapes:
        ``diffops.operators.OPERATORS['grad_and_value']``).
    """
    torch = _torch()

    def grad_and_value_func(x: Any, *args: Any) -> tuple[Any, Any]:
        with torch.enable_grad():
            leaf = _leaf(x)
            value, grad = _value_and_grad(
                func, leaf, args, "grad_and_value", create=False
            )
        return _owned(grad, None), _owned(value, leaf)

    return grad_and_value_func


def vjp_and_value(func: Function) -> Function:
    """Make ``(x, *args) -> (vjp, value)``.

    Computed by a backward pass of the recorded graph, which the closure keeps.

    Args:
        func: ``func(x, *args)`` written with torch operations.

    Returns:
        The derivative function, tensors in and out (outputs and shapes:
        ``diffops.operators.OPERATORS['vjp_and_value']``).
    """
    torch = _torch()

    def vjp_and_value_func(x: Any, *args: Any) -> tuple[Any, Any]:
        with torch.enable_grad():
            leaf = _leaf(x)
            value = _evaluate(func, leaf, args, "vjp_and_value")

        def vjp(v: Any) -> Any:
            v = v.reshape(value.shape).to(value.device, value.dtype)
            return _owned(_backward(value, leaf, v, retain=True, create=False), v)

        return vjp, _owned(value, leaf)

    return vjp_and_value_func


def hessian_grad_and_value(func: Function) -> Function:
    """Make ``(x, *args) -> (hessian, grad, value)``.

    Computed by backward passes of the gradient (reverse-over-reverse).

    Args:
        func: Scalar-valued ``func(x, *args)`` written with torch operations.

    Returns:
        The derivative function, tensors in and out (outputs and shapes:
        ``diffops.operators.OPERATORS['hessian_grad_and_value']``).
    """
    torch = _torch()

    def hessian_grad_and_value_func(x: Any, *args: Any) -> tuple[Any, Any, Any]:
        with torch.enable_grad():
            leaf = _leaf(x)
            hessian, grad, value = _hessian(
                func, leaf, args, "hessian_grad_and_value", create=False
            )
        return _owned(hessian, None), _owned(grad, None), _owned(value, leaf)

    return hessian_grad_and_value_func


def mtp_hessian_grad_and_value(func: Function) -> Function:
    """Make ``(x, *args) -> (mtp, hessian, grad, value)``.

    Computed by a backward pass of the Hessian rows, whose graph the closure keeps.

    Args:
        func: Scalar-valued ``func(x, *args)`` written with torch operations.

    Returns:
        The derivative function, tensors in and out (outputs and shapes:
        ``diffops.operators.OPERATORS['mtp_hessian_grad_and_value']``).
    """
    torch = _torch()

    def mtp_hessian_grad_and_value_func(
        x: Any, *args: Any
    ) -> tuple[Any, Any, Any, Any]:
        with torch.enable_grad():
            leaf = _leaf(x)
            hessian, grad, value = _hessian(
                func, leaf, args, "mtp_hessian_grad_and_value", create=True
            )

        def mtp(m: Any) -> Any:
            m = m.reshape(hessian.shape).to(hessian.device, hessian.dtype)
            return _owned(_backward(hessian, leaf, m, retain=True, create=False), m)

        return mtp, _owned(hessian, None), _owned(grad, None), _owned(value, leaf)

    return mtp_hessian_grad_and_value_func


def jacobian_and_value(func: Function, mode: str = "auto") -> Function:
    """Make ``(x, *args) -> (jacobian, value)``.

    Computed by backward passes (reverse) or double-VJP columns (forward).

    Args:
        func: ``func(x, *args)`` written with torch operations.
        mode: ``"auto"`` (default; forward when outputs outnumber inputs),
            ``"forward"`` or ``"reverse"``.

    Returns:
        The derivative function, tensors in and out (outputs and shapes:
        ``diffops.operators.OPERATORS['jacobian_and_value']``).
    """
    check_jacobian_mode(mode)
    torch = _torch()

    def jacobian_and_value_func(x: Any, *args: Any) -> tuple[Any, Any]:
        with torch.enable_grad():
            leaf = _leaf(x)
            value = _evaluate(func, leaf, args, "jacobian_and_value")
            jacobian = _jacobian(
                value, leaf, mode, create=False, op_name="jacobian_and_value"
            )
        return _owned(jacobian, None), _owned(value, leaf)

    return jacobian_and_value_func


def mhp_jacobian_and_value(func: Function, mode: str = "auto") -> Function:
    """Make ``(x, *args) -> (mhp, jacobian, value)``.

    Computed by a backward pass of the Jacobian pass, whose graph the closure keeps.

    Args:
        func: ``func(x, *args)`` written with torch operations.
        mode: ``"auto"`` (default; forward when outputs outnumber inputs),
            ``"forward"`` or ``"reverse"``.

    Returns:
        The derivative function, tensors in and out (outputs and shapes:
        ``diffops.operators.OPERATORS['mhp_jacobian_and_value']``).
    """
    check_jacobian_mode(mode)
    torch = _torch()

    def mhp_jacobian_and_value_func(x: Any, *args: Any) -> tuple[Any, Any, Any]:
        with torch.enable_grad():
            leaf = _leaf(x)
            value = _evaluate(func, leaf, args, "mhp_jacobian_and_value")
            jacobian = _jacobian(
                value, leaf, mode, create=True, op_name="mhp_jacobian_and_value"
            )

        def mhp(m: Any) -> Any:
            m = m.reshape(jacobian.shape).to(jacobian.device, jacobian.dtype)
            return _owned(_backward(jacobian, leaf, m, retain=True, create=False), m)

        return mhp, _owned(jacobian, None), _owned(value, leaf)

    return mhp_jacobian_and_value_func


def jvp_and_value(func: Function) -> Function:
    """Make ``(x, *args) -> (jvp, value)``.

    Computed by the double-VJP construction: ``u -> uᵀ J`` is recorded once, and
    each ``jvp(v) = J v`` is one backward pass of it (forward mode built from
    reverse-mode rules; see :func:`_columns`).

    Args:
        func: ``func(x, *args)`` written with torch operations.

    Returns:
        The derivative function, tensors in and out (outputs and shapes:
        ``diffops.operators.OPERATORS['jvp_and_value']``).
    """
    torch = _torch()

    def jvp_and_value_func(x: Any, *args: Any) -> tuple[Any, Any]:
        with torch.enable_grad():
            leaf = _leaf(x)
            value = _evaluate(func, leaf, args, "jvp_and_value")
            u = torch.zeros_like(value, requires_grad=True)
            pulled = _backward(value, leaf, u, retain=True, create=True)

        def jvp(v: Any) -> Any:
            v = v.reshape(leaf.shape).to(leaf.device, leaf.dtype)
            product = _backward(pulled, u, v, retain=True, create=False)
            return _owned(product, v)

        return jvp, _owned(value, leaf)

    return jvp_and_value_func


def hvp_grad_and_value(func: Function) -> Function:
    """Make ``(x, *args) -> (hvp, grad, value)``.

    Computed reverse-over-reverse: the gradient is recorded with its graph, and each
    ``hvp(v) = H v`` is one backward pass of it (``vᵀ H = (H v)ᵀ``); the Hessian is
    never formed.

    Args:
        func: Scalar-valued ``func(x, *args)`` written with torch operations.

    Returns:
        The derivative function, tensors in and out (outputs and shapes:
        ``diffops.operators.OPERATORS['hvp_grad_and_value']``).
    """
    torch = _torch()

    def hvp_grad_and_value_func(x: Any, *args: Any) -> tuple[Any, Any, Any]:
        with torch.enable_grad():
            leaf = _leaf(x)
            value, grad = _value_and_grad(
                func, leaf, args, "hvp_grad_and_value", create=True
            )

        def hvp(v: Any) -> Any:
            v = v.reshape(leaf.shape).to(leaf.device, leaf.dtype)
            return _owned(_backward(grad, leaf, v, retain=True, create=False), v)

        return hvp, _owned(grad, None), _owned(value, leaf)

    return hvp_grad_and_value_func


# ---------------------------------------------------------------------------------
# Batched evaluation with torch.func (the operators above set requires_grad, which
# torch.func.vmap does not allow, so batches use the functional transforms)


def _point_functions(
    op_name: str, func: Function, mode: str
) -> tuple[Function, Function | None]:
    """``(arrays, product)`` of one operator at one point, with ``torch.func``.

    ``arrays(x, *args)`` returns the operator's arrays; ``product(x, m, *args)`` its
    closure applied to ``m`` (``None`` without a closure). Both can be vmapped.
    """
    tf = _torch().func

    def value(x: Any, *args: Any) -> Any:
        return func(x, *args)

    def grad_with_value(x: Any, *args: Any) -> tuple[Any, Any]:
        grad, val = tf.grad_and_value(func)(x, *args)
        return grad, val

    def hessian_grad_value(x: Any, *args: Any) -> tuple[Any, Any, Any]:
        def grad_aux(y: Any) -> tuple[Any, tuple[Any, Any]]:
            grad, val = tf.grad_and_value(func)(y, *args)
            return grad, (grad, val)

        hessian, (grad, val) = tf.jacfwd(grad_aux, has_aux=True)(x)
        return hessian, grad, val

    def jacobian_value(x: Any, *args: Any) -> tuple[Any, Any]:
        def with_aux(y: Any) -> tuple[Any, Any]:
            val = func(y, *args)
            return val, val

        n_out = math.prod(_eval_shape(func, x, args))
        forward = jacobian_mode(mode, x.numel(), n_out) == "forward"
        jac = tf.jacfwd if forward else tf.jacrev
        jacobian, val = jac(with_aux, has_aux=True)(x)
        return jacobian, val

    def vjp_of(first: Function) -> Function:
        def product(x: Any, m: Any, *args: Any) -> Any:
            _, pullback = tf.vjp(lambda y: first(y, *args)[0], x)
            return pullback(m)[0]

        return product

    def jvp_of(inner: Function) -> Function:
        def product(x: Any, v: Any, *args: Any) -> Any:
            return tf.jvp(lambda y: inner(y, *args), (x,), (v,))[1]

        return product

    table: dict[str, tuple[Function, Function | None]] = {
        "vjp_and_value": (
            lambda x, *a: (value(x, *a),),
            vjp_of(lambda y, *a: (value(y, *a),)),
        ),
        "grad_and_value": (grad_with_value, None),
        "hessian_grad_and_value": (hessian_grad_value, None),
        "mtp_hessian_grad_and_value": (
            hessian_grad_value,
            vjp_of(hessian_grad_value),
        ),
        "jacobian_and_value": (jacobian_value, None),
        "mhp_jacobian_and_value": (jacobian_value, vjp_of(jacobian_value)),
        "jvp_and_value": (lambda x, *a: (value(x, *a),), jvp_of(value)),
        "hvp_grad_and_value": (
            grad_with_value,
            jvp_of(lambda y, *a: tf.grad(func)(y, *a)),
        ),
    }
    return table[op_name]


def _eval_shape(func: Function, x: Any, args: tuple[Any, ...]) -> tuple[int, ...]:
    """Shape of ``func(x, *args)``, without computing it (meta tensors)."""
    torch = _torch()
    try:
        meta = func(torch.empty_like(x, device="meta"), *args)
        return tuple(meta.shape)
    except Exception:  # functions that cannot run on meta tensors
        return tuple(func(x, *args).shape)


def _vectorized(
    op_name: str, func: Function, mode: str, in_axes: tuple[int | None, ...]
) -> Function:
    torch = _torch()
    arrays, product = _point_functions(op_name, func, mode)
    batched_arrays = torch.func.vmap(arrays, in_dims=in_axes)

    def program(xs: Any, *args: Any) -> tuple[Any, ...]:
        out = tuple(batched_arrays(xs, *args))
        if product is None:
            return out
        batched_product = torch.func.vmap(product, in_dims=(0, 0, *in_axes[1:]))

        def closure(m: Any) -> Any:
            return batched_product(xs, m.to(xs.device, xs.dtype), *args)

        return (closure, *out)

    return program


# ---------------------------------------------------------------------------------
# The first-call probe and error explanations


def _probed(raw: Callable[[Any], Any], func: Function) -> Callable[[Any], Any]:
    """``raw``, preceded at the first call per call signature by :func:`_probe`."""
    seen: set[tuple[Any, ...]] = set()

    def probed(x: Any, *args: Any) -> Any:
        key = call_signature(x, args)
        if key not in seen:
            _probe(func, x, args)
            seen.add(key)
        return raw(x, *args)

    return probed


def _probe(func: Function, x: Any, args: tuple[Any, ...]) -> None:
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
        func(_leaf(x), *args)


def _raised_inside_numpy(err: BaseException) -> bool:
    """Whether ``err`` was raised in NumPy's code (a NumPy function met a tensor)."""
    tb = err.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if module == "numpy" or module.startswith("numpy."):
            return True
        tb = tb.tb_next
    return False


def _explain_error(err: Exception, func: Function) -> Exception | None:
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
    return tracing_error(
        "PyTorch",
        func,
        err,
        "with torch operations (torch.sin, torch.sum, `@`, ...) on the tensor it "
        "receives, instead of numpy functions.",
    )


# ---------------------------------------------------------------------------------
# mici's function wrapper


def return_numpy_arrays(function: Function) -> Function:
    """Wrap a torch function so that it takes and returns NumPy arrays.

    NumPy arguments become tensors sharing their memory (on the default device);
    tensor results become NumPy arrays, and returned callables are wrapped the same way.

    Args:
        function: Function of tensors returning tensors, callables or tuples of these.

    Returns:
        Function taking NumPy arrays and returning NumPy arrays.
    """
    return NumpyFunction(TORCH, function)


# ---------------------------------------------------------------------------------
# The backend


class TorchBackend(Backend):
    """``torch``: ``torch.autograd`` on a fresh leaf tensor, NumPy in and out."""

    name = "torch"
    framework = "torch"
    extra = "torch"
    options = protocol.JACOBIAN_OPTIONS
    framework_arrays = True
    # The operators detach every result and copy views (see ``_owned``).
    fresh_outputs = True
    # The user's function gets the input's memory as a tensor and could change it
    # in place (``t.detach().mul_(2)``): the boundary passes it a copy.
    protect_input = True

    def operator(self, op_name: str, func: Function, **options: Any) -> Function:
        """The operator, preceded on the first call per shape by the graph-cut probe."""
        return _probed(super().operator(op_name, func, **options), func)

    def vectorize(
        self, op_name: str, func: Function, options: Options, in_axes: InAxes
    ) -> Function | None:
        """The operator through ``torch.func`` transforms, under ``torch.func.vmap``."""
        return _vectorized(op_name, func, str(options.get("mode", "auto")), in_axes)

    def to_framework(self, arr: np.ndarray) -> Any:
        """A tensor on the default device sharing ``arr``'s memory where possible."""
        torch = _torch()
        if not (arr.flags.writeable and arr.flags.c_contiguous):
            # torch.from_numpy rejects negative strides and warns on read-only memory.
            arr = arr.copy()
        tensor = torch.from_numpy(arr)
        if _MODE_STACK_DEPTH is not None and _MODE_STACK_DEPTH() == 0:
            return tensor  # no torch.set_default_device in force: the device is the CPU
        device = torch.get_default_device()
        return tensor if device.type == "cpu" else tensor.to(device)

    def to_framework_argument(self, arg: np.ndarray, dtype: np.dtype) -> Any:
        """An extra argument as a tensor; floating-point data in the input's dtype.

        PyTorch does not promote mixed float32/float64 operands in matrix products
        (``addmv input tensors must have the same dtype``); JAX computes such data in
        the input's precision too. Integer and boolean arrays (indices, masks) keep
        their dtype.
        """
        if arg.dtype.kind == "f" and arg.dtype != dtype:
            arg = arg.astype(dtype)
        return self.to_framework(arg)

    def to_numpy(self, value: Any) -> np.ndarray:
        """A tensor as a NumPy array (copied to the host if needed)."""
        if isinstance(value, _TENSOR):
            return value.numpy(force=True)  # type: ignore[no-any-return]
        return np.asarray(value)

    def is_framework_array(self, value: Any) -> bool:
        """Whether ``value`` is a ``torch.Tensor``."""
        return _TENSOR is not None and isinstance(value, _TENSOR)

    def framework_dtype(self, value: Any) -> np.dtype:
        """The NumPy dtype of a tensor's dtype (float32 for bfloat16)."""
        name = str(value.dtype).removeprefix("torch.")
        try:
            return np.dtype(name)
        except TypeError:  # bfloat16 and other types NumPy lacks
            return np.dtype(np.float32 if value.is_floating_point() else np.complex64)

    def framework_copy(self, value: Any) -> Any:
        """A tensor's copy, detached from any graph."""
        return value.detach().clone()

    def framework_astype(self, value: Any, dtype: np.dtype) -> Any:
        """A tensor converted to ``dtype`` (a NumPy dtype)."""
        return value.to(getattr(_torch(), dtype.name))

    def explain_error(self, err: Exception, func: Function) -> Exception | None:
        """A :class:`~diffops.errors.TracingError` with a hint (NumPy on a tensor)."""
        return _explain_error(err, func)

    def namespace(self) -> SimpleNamespace:
        """The example models' operations in this framework."""
        torch = _torch()
        return protocol.example_namespace(
            torch,
            stack=torch.stack,
            const=lambda a, like: torch.as_tensor(a, dtype=like.dtype),
        )


TORCH = TorchBackend()
"""The ``torch`` backend."""
