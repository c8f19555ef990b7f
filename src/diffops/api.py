"""The typed shortcuts: one function per operator, building a derivative function.

Every keyword a backend's operator takes is a parameter here, documented where it
applies (``mode`` on Jacobian operators, ``sparsity`` on the operators with a Jacobian
or Hessian, ``coloring`` on those with a Hessian, ``arg_shape``/``extra_shapes`` for
SymNum); a test checks each signature and docstring against the operator table and
the backends' options, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from diffops.derivative import DerivativeFunction

Function = Callable[..., Any]
Shape = int | Sequence[int]


def _build(
    func: Function,
    op_name: str,
    backend: str,
    as_numpy: bool,
    options: dict[str, Any],
    **given: Any,
) -> DerivativeFunction:
    """The derivative function, with only the options that were given."""
    kept = {k: v for k, v in given.items() if not _unset(k, v)}
    return DerivativeFunction(
        func, op_name, backend, as_numpy=as_numpy, **kept, **options
    )


def _unset(name: str, value: Any) -> bool:
    """Whether an option has its default (and so is not passed to the backend)."""
    if value is None:
        return True
    if name in ("mode", "coloring"):
        return isinstance(value, str) and value.lower() == "auto"
    if name == "extra_shapes":
        return isinstance(value, tuple | list) and len(value) == 0
    return False


def vjp_and_value(
    func: Function,
    backend: str = "jax",
    *,
    as_numpy: bool = True,
    arg_shape: Shape | None = None,
    extra_shapes: Sequence[Shape] = (),
    **options: Any,
) -> DerivativeFunction:
    """Build ``x -> (vjp, value)``: the vector-Jacobian product closure and value.

    ``vjp(v) = v @ j`` contracting all of ``F``, i.e.
    ``vjp(v)[k] = Σ_i v[i] ∂f[i]/∂x[k]``. Used for the derivative of a
    position-dependent metric in Riemannian HMC.

    Args:
        func: Function ``func(x, *args)`` of an array ``x`` of shape ``S`` returning
            an array of shape ``F``, written with the backend's framework. Extra
            arguments are passed through undifferentiated.
        backend: Backend name (case-insensitive), default ``"jax"``.
        as_numpy: Return NumPy arrays (default); ``False`` keeps JAX and PyTorch
            arrays on their device.
        arg_shape: ``symnum`` only: the shape ``S``, for a function not decorated
            with ``symnum.numpify``.
        extra_shapes: ``symnum`` only: the shapes of the extra arguments.
        **options: Options of a third-party backend.

    Returns:
        Function ``x -> (vjp, value)``: ``vjp`` maps an array of shape ``F`` to
        shape ``S``; ``value`` of shape ``F``.
    """
    return _build(
        func,
        "vjp_and_value",
        backend,
        as_numpy,
        options,
        arg_shape=arg_shape,
        extra_shapes=extra_shapes,
    )


def grad_and_value(
    func: Function,
    backend: str = "jax",
    *,
    as_numpy: bool = True,
    arg_shape: Shape | None = None,
    extra_shapes: Sequence[Shape] = (),
    **options: Any,
) -> DerivativeFunction:
    """Build ``x -> (grad, value)`` for a scalar function.

    ``grad[k] = ∂f/∂x[k]``, one reverse pass. Used for the potential energy in HMC.

    Args:
        func: Scalar-valued function ``func(x, *args)`` of an array ``x`` of shape
            ``S``, written with the backend's framework. Extra arguments are passed
            through undifferentiated.
        backend: Backend name (case-insensitive), default ``"jax"``.
        as_numpy: Return NumPy arrays (default); ``False`` keeps JAX and PyTorch
            arrays on their device.
        arg_shape: ``symnum`` only: the shape ``S``, for a function not decorated
            with ``symnum.numpify``.
        extra_shapes: ``symnum`` only: the shapes of the extra arguments.
        **options: Options of a third-party backend.

    Returns:
        Function ``x -> (grad, value)``: ``grad`` of shape ``S``, ``value`` 0-d.
    """
    return _build(
        func,
        "grad_and_value",
        backend,
        as_numpy,
        options,
        arg_shape=arg_shape,
        extra_shapes=extra_shapes,
    )


def hessian_grad_and_value(
    func: Function,
    backend: str = "jax",
    *,
    as_numpy: bool = True,
    sparsity: Any = None,
    coloring: str = "auto",
    arg_shape: Shape | None = None,
    extra_shapes: Sequence[Shape] = (),
    **options: Any,
) -> DerivativeFunction:
    """Build ``x -> (hessian, grad, value)`` for a scalar function.

    ``hessian[j, k] = ∂²f/(∂x[j] ∂x[k])``, computed forward-over-reverse where the
    framework allows (reverse-over-reverse on PyTorch and Autograd).

    Args:
        func: Scalar-valued function ``func(x, *args)`` of an array ``x`` of shape
            ``S``, written with the backend's framework. Extra arguments are passed
            through undifferentiated.
        backend: Backend name (case-insensitive), default ``"jax"``.
        as_numpy: Return NumPy arrays (default); ``False`` keeps JAX and PyTorch
            arrays on their device.
        sparsity: ``None`` (dense), ``"detect"`` (structure read from the function,
            on ``jax``, ``jax_nojit``, ``jax_codegen``) or a boolean pattern of shape
            ``(prod(S), prod(S))``: the Hessian is then a ``scipy.sparse.csr_array``
            of that shape.
        coloring: With ``sparsity``: ``"auto"`` (default), ``"star"`` (each entry
            read directly from one Hessian-vector product) or ``"acyclic"`` (fewer
            products, the entries recovered by substitution; ``auto`` takes it when
            it saves at least 3 products and Numba is installed).
        arg_shape: ``symnum`` only: the shape ``S``, for a function not decorated
            with ``symnum.numpify``.
        extra_shapes: ``symnum`` only: the shapes of the extra arguments.
        **options: Options of a third-party backend.

    Returns:
        Function ``x -> (hessian, grad, value)``: ``hessian`` of shape ``S + S``
        (sparse: ``(prod(S), prod(S))``), ``grad`` of shape ``S``, ``value`` 0-d.
    """
    return _build(
        func,
        "hessian_grad_and_value",
        backend,
        as_numpy,
        options,
        sparsity=sparsity,
        coloring=coloring,
        arg_shape=arg_shape,
        extra_shapes=extra_shapes,
    )


def mtp_hessian_grad_and_value(
    func: Function,
    backend: str = "jax",
    *,
    as_numpy: bool = True,
    sparsity: Any = None,
    coloring: str = "auto",
    arg_shape: Shape | None = None,
    extra_shapes: Sequence[Shape] = (),
    **options: Any,
) -> DerivativeFunction:
    """Build ``x -> (mtp, hessian, grad, value)`` for a scalar function.

    With the Tressian ``t[i, j, k] = ∂³f/(∂x[i] ∂x[j] ∂x[k])``, the matrix-Tressian
    product is ``mtp(m) = sum(m[None, :, :] * t, axis=(-1, -2))``, i.e.
    ``mtp(m)[i] = Σ_jk m[j, k] ∂³f/(∂x[i] ∂x[j] ∂x[k])``. It reuses the Hessian pass.
    Used by Riemannian HMC with the SoftAbs metric.

    Args:
        func: Scalar-valued function ``func(x, *args)`` of an array ``x`` of shape
            ``S``, written with the backend's framework. Extra arguments are passed
            through undifferentiated.
        backend: Backend name (case-insensitive), default ``"jax"``.
        as_numpy: Return NumPy arrays (default); ``False`` keeps JAX and PyTorch
            arrays on their device.
        sparsity: ``None`` (dense), ``"detect"`` or a boolean pattern of shape
            ``(prod(S), prod(S))``: the Hessian is then a ``scipy.sparse.csr_array``;
            ``mtp`` still takes a dense ``S + S`` array.
        coloring: With ``sparsity``: ``"auto"`` (default), ``"star"`` (each entry
            read directly from one Hessian-vector product) or ``"acyclic"`` (fewer
            products, the entries recovered by substitution; ``auto`` takes it when
            it saves at least 3 products and Numba is installed).
        arg_shape: ``symnum`` only: the shape ``S``, for a function not decorated
            with ``symnum.numpify``.
        extra_shapes: ``symnum`` only: the shapes of the extra arguments.
        **options: Options of a third-party backend.

    Returns:
        Function ``x -> (mtp, hessian, grad, value)``: ``mtp`` maps an array of
        shape ``S + S`` to shape ``S``; ``hessian`` of shape ``S + S`` (sparse:
        ``(prod(S), prod(S))``), ``grad`` of shape ``S``, ``value`` 0-d.
    """
    return _build(
        func,
        "mtp_hessian_grad_and_value",
        backend,
        as_numpy,
        options,
        sparsity=sparsity,
        coloring=coloring,
        arg_shape=arg_shape,
        extra_shapes=extra_shapes,
    )


def jacobian_and_value(
    func: Function,
    backend: str = "jax",
    *,
    as_numpy: bool = True,
    mode: str = "auto",
    sparsity: Any = None,
    arg_shape: Shape | None = None,
    extra_shapes: Sequence[Shape] = (),
    **options: Any,
) -> DerivativeFunction:
    """Build ``x -> (jacobian, value)`` for an array function.

    ``jacobian[i, k] = ∂f[i]/∂x[k]`` (N-d shapes flatten in C order). Used for the
    constraint function of constrained HMC.

    Args:
        func: Function ``func(x, *args)`` of an array ``x`` of shape ``S`` returning
            an array of shape ``F``, written with the backend's framework. Extra
            arguments are passed through undifferentiated.
        backend: Backend name (case-insensitive), default ``"jax"``.
        as_numpy: Return NumPy arrays (default); ``False`` keeps JAX and PyTorch
            arrays on their device.
        mode: ``"auto"`` (forward when outputs outnumber inputs), ``"forward"`` (one
            JVP per input) or ``"reverse"`` (one VJP per output); on ``jax``,
            ``jax_nojit``, ``jax_codegen`` and ``torch``.
        sparsity: ``None`` (dense), ``"detect"`` (structure read from the function,
            on ``jax``, ``jax_nojit``, ``jax_codegen``) or a boolean pattern of shape
            ``(prod(F), prod(S))``: the Jacobian is then a ``scipy.sparse.csr_array``
            of that shape.
        arg_shape: ``symnum`` only: the shape ``S``, for a function not decorated
            with ``symnum.numpify``.
        extra_shapes: ``symnum`` only: the shapes of the extra arguments.
        **options: Options of a third-party backend.

    Returns:
        Function ``x -> (jacobian, value)``: ``jacobian`` of shape ``F + S``
        (sparse: ``(prod(F), prod(S))``), ``value`` of shape ``F``.
    """
    return _build(
        func,
        "jacobian_and_value",
        backend,
        as_numpy,
        options,
        mode=mode,
        sparsity=sparsity,
        arg_shape=arg_shape,
        extra_shapes=extra_shapes,
    )


def mhp_jacobian_and_value(
    func: Function,
    backend: str = "jax",
    *,
    as_numpy: bool = True,
    mode: str = "auto",
    sparsity: Any = None,
    arg_shape: Shape | None = None,
    extra_shapes: Sequence[Shape] = (),
    **options: Any,
) -> DerivativeFunction:
    """Build ``x -> (mhp, jacobian, value)`` for an array function.

    With ``h[i, j, k] = ∂²f[i]/(∂x[j] ∂x[k])``, the matrix-Hessian product is
    ``mhp(m) = sum(m[:, :, None] * h, axis=(0, 1))``, i.e.
    ``mhp(m)[k] = Σ_ij m[i, j] ∂²f[i]/(∂x[j] ∂x[k])``. It reuses the Jacobian pass.
    Used for the derivative of the Gram matrix's log-determinant in constrained HMC.

    Args:
        func: Function ``func(x, *args)`` of an array ``x`` of shape ``S`` returning
            an array of shape ``F``, written with the backend's framework. Extra
            arguments are passed through undifferentiated.
        backend: Backend name (case-insensitive), default ``"jax"``.
        as_numpy: Return NumPy arrays (default); ``False`` keeps JAX and PyTorch
            arrays on their device.
        mode: ``"auto"``, ``"forward"`` or ``"reverse"``, for the Jacobian pass (on
            ``jax``, ``jax_nojit``, ``jax_codegen`` and ``torch``).
        sparsity: ``None`` (dense), ``"detect"`` or a boolean pattern of shape
            ``(prod(F), prod(S))``: the Jacobian is then a ``scipy.sparse.csr_array``;
            ``mhp`` still takes a dense ``F + S`` array.
        arg_shape: ``symnum`` only: the shape ``S``, for a function not decorated
            with ``symnum.numpify``.
        extra_shapes: ``symnum`` only: the shapes of the extra arguments.
        **options: Options of a third-party backend.

    Returns:
        Function ``x -> (mhp, jacobian, value)``: ``mhp`` maps an array of shape
        ``F + S`` to shape ``S``; ``jacobian`` of shape ``F + S`` (sparse:
        ``(prod(F), prod(S))``), ``value`` of shape ``F``.
    """
    return _build(
        func,
        "mhp_jacobian_and_value",
        backend,
        as_numpy,
        options,
        mode=mode,
        sparsity=sparsity,
        arg_shape=arg_shape,
        extra_shapes=extra_shapes,
    )


def jvp_and_value(
    func: Function,
    backend: str = "jax",
    *,
    as_numpy: bool = True,
    arg_shape: Shape | None = None,
    extra_shapes: Sequence[Shape] = (),
    **options: Any,
) -> DerivativeFunction:
    """Build ``x -> (jvp, value)``: the Jacobian-vector product closure and value.

    ``jvp(v) = j @ v`` contracting all of ``S``, i.e.
    ``jvp(v)[i] = Σ_k ∂f[i]/∂x[k] v[k]``: forward mode where the framework has it
    (JAX), the double-VJP construction elsewhere. One ``jvp`` call costs a small
    multiple of one evaluation of ``func``, whatever the output size.

    Args:
        func: Function ``func(x, *args)`` of an array ``x`` of shape ``S`` returning
            an array of shape ``F``, written with the backend's framework. Extra
            arguments are passed through undifferentiated.
        backend: Backend name (case-insensitive), default ``"jax"``.
        as_numpy: Return NumPy arrays (default); ``False`` keeps JAX and PyTorch
            arrays on their device.
        arg_shape: ``symnum`` only: the shape ``S``, for a function not decorated
            with ``symnum.numpify``.
        extra_shapes: ``symnum`` only: the shapes of the extra arguments.
        **options: Options of a third-party backend.

    Returns:
        Function ``x -> (jvp, value)``: ``jvp`` maps an array of shape ``S`` to
        shape ``F``; ``value`` of shape ``F``.
    """
    return _build(
        func,
        "jvp_and_value",
        backend,
        as_numpy,
        options,
        arg_shape=arg_shape,
        extra_shapes=extra_shapes,
    )


def hvp_grad_and_value(
    func: Function,
    backend: str = "jax",
    *,
    as_numpy: bool = True,
    arg_shape: Shape | None = None,
    extra_shapes: Sequence[Shape] = (),
    **options: Any,
) -> DerivativeFunction:
    """Build ``x -> (hvp, grad, value)`` for a scalar function, never forming H.

    ``hvp(v) = h @ v``, i.e. ``hvp(v)[j] = Σ_k ∂²f/(∂x[j] ∂x[k]) v[k]``, computed
    forward-over-reverse on JAX and reverse-over-reverse elsewhere, so one ``hvp``
    call costs a small multiple of one gradient whatever the dimension: the
    ``hessp`` of Newton-CG and trust-region optimisers.

    Args:
        func: Scalar-valued function ``func(x, *args)`` of an array ``x`` of shape
            ``S``, written with the backend's framework. Extra arguments are passed
            through undifferentiated.
        backend: Backend name (case-insensitive), default ``"jax"``.
        as_numpy: Return NumPy arrays (default); ``False`` keeps JAX and PyTorch
            arrays on their device.
        arg_shape: ``symnum`` only: the shape ``S``, for a function not decorated
            with ``symnum.numpify``.
        extra_shapes: ``symnum`` only: the shapes of the extra arguments.
        **options: Options of a third-party backend.

    Returns:
        Function ``x -> (hvp, grad, value)``: ``hvp`` maps an array of shape ``S``
        to shape ``S``; ``grad`` of shape ``S``, ``value`` 0-d.
    """
    return _build(
        func,
        "hvp_grad_and_value",
        backend,
        as_numpy,
        options,
        arg_shape=arg_shape,
        extra_shapes=extra_shapes,
    )
