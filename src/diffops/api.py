"""The ``mici.autodiff``-compatible functions and the per-operator shortcuts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from diffops.derivative import DerivativeFunction, check_operator
from diffops.errors import MissingDerivativeError
from diffops.registry import get_backend, require_available

Function = Callable[..., Any]


def wrap_function(
    function: Callable[..., Any], backend: str | None
) -> Callable[..., Any]:
    """Apply a backend's function wrapper (e.g. JIT compilation, NumPy outputs).

    Args:
        function: Function written for the backend's framework.
        backend: Backend name, or ``None`` to return ``function`` unchanged.

    Returns:
        ``function`` itself for ``None`` or backends without a wrapper; for ``"jax"``
        a JIT-compiled version returning NumPy arrays; for ``"jax_nojit"`` and
        ``"torch"`` a version returning NumPy arrays.

    Raises:
        UnknownBackendError: For an unknown backend name.
        BackendUnavailableError: If the backend's framework is not installed.
    """
    if backend is None:
        return function
    require_available(backend)
    wrapper = get_backend(backend).function_wrapper
    return function if wrapper is None else wrapper(function)


def autodiff_fallback(
    diff_func: Callable[..., Any] | None,
    func: Callable[..., Any],
    diff_op_name: str,
    name: str,
    backend: str | None,
) -> Callable[..., Any]:
    """Return ``diff_func`` if given, otherwise build it with automatic differentiation.

    Args:
        diff_func: A derivative function written by hand, or ``None``.
        func: Function to differentiate.
        diff_op_name: Operator to apply, one of ``DIFF_OPS``.
        name: Name of the derivative function, used in error messages.
        backend: Backend to differentiate with; may be ``None`` only when
            ``diff_func`` is given.

    Returns:
        ``diff_func`` unchanged when it is not ``None``; otherwise a
        :class:`~diffops.derivative.DerivativeFunction` for ``diff_op_name`` of
        ``func`` on ``backend`` (NumPy in and out).

    Raises:
        MissingDerivativeError: If both ``diff_func`` and ``backend`` are ``None``.
        UnknownOperatorError: If ``diff_op_name`` is not defined.
        UnknownBackendError: If the backend name is unknown.
        BackendUnavailableError: If the backend is not installed.
    """
    if diff_func is not None:
        return diff_func
    if backend is None:
        msg = (
            f"The autodiff backend is None, so {name} must be provided directly: "
            f"pass {name}, or choose a backend such as 'jax' to build it "
            f"automatically."
        )
        raise MissingDerivativeError(msg)
    check_operator(diff_op_name)
    require_available(backend)
    return DerivativeFunction(func, diff_op_name, backend)


def vjp_and_value(
    func: Function, backend: str = "jax", *, as_numpy: bool = True, **options: Any
) -> DerivativeFunction:
    """Build ``x -> (vjp, value)``: the vector-Jacobian product closure and value.

    ``vjp(v) = v @ j`` contracting all of ``F``, i.e.
    ``vjp(v)[k] = Σ_i v[i] ∂f[i]/∂x[k]``.
    Used for the derivative of a position-dependent metric in Riemannian HMC.

    Args:
        func: Function ``func(x, *args)`` of an array ``x`` of shape ``S``
            returning an array of shape ``F``, written with the backend's
            framework. Extra arguments are passed through undifferentiated.
        backend: Backend name (case-insensitive), default ``"jax"``.
        as_numpy: Return NumPy arrays (default); ``False`` keeps JAX and PyTorch
            arrays on their device.
        **options: Backend options: ``mode="auto" | "forward" | "reverse"`` for
            Jacobians on ``jax`` and ``torch``, ``arg_shape`` on ``symnum``.

    Returns:
        Function ``x -> (vjp, value)``: ``value`` of shape ``F``; ``vjp`` maps an
        array of shape ``F`` to shape ``S``.

    Raises:
        NotCallableError: If ``func`` is not callable.
        UnknownBackendError: If the backend name is unknown.
        BackendUnavailableError: If the backend is not installed.
    """
    return DerivativeFunction(
        func, "vjp_and_value", backend, as_numpy=as_numpy, **options
    )


def grad_and_value(
    func: Function, backend: str = "jax", *, as_numpy: bool = True, **options: Any
) -> DerivativeFunction:
    """Build ``x -> (grad, value)`` for a scalar function.

    ``grad[k] = ∂f/∂x[k]``. Used for the potential energy in HMC.

    Args:
        func: Scalar-valued function ``func(x, *args)`` of an array ``x`` of
            shape ``S``, written with the backend's framework. Extra
            arguments are passed through undifferentiated.
        backend: Backend name (case-insensitive), default ``"jax"``.
        as_numpy: Return NumPy arrays (default); ``False`` keeps JAX and PyTorch
            arrays on their device.
        **options: Backend options: ``mode="auto" | "forward" | "reverse"`` for
            Jacobians on ``jax`` and ``torch``, ``arg_shape`` on ``symnum``.

    Returns:
        Function ``x -> (grad, value)``: ``grad`` of shape ``S``, ``value`` 0-d.

    Raises:
        NotCallableError: If ``func`` is not callable.
        UnknownBackendError: If the backend name is unknown.
        BackendUnavailableError: If the backend is not installed.
    """
    return DerivativeFunction(
        func, "grad_and_value", backend, as_numpy=as_numpy, **options
    )


def hessian_grad_and_value(
    func: Function, backend: str = "jax", *, as_numpy: bool = True, **options: Any
) -> DerivativeFunction:
    """Build ``x -> (hessian, grad, value)`` for a scalar function.

    ``hessian[j, k] = ∂²f/(∂x[j] ∂x[k])``, computed forward-over-reverse where the
    framework allows.

    Args:
        func: Scalar-valued function ``func(x, *args)`` of an array ``x`` of
            shape ``S``, written with the backend's framework. Extra
            arguments are passed through undifferentiated.
        backend: Backend name (case-insensitive), default ``"jax"``.
        as_numpy: Return NumPy arrays (default); ``False`` keeps JAX and PyTorch
            arrays on their device.
        **options: Backend options: ``mode="auto" | "forward" | "reverse"`` for
            Jacobians on ``jax`` and ``torch``, ``arg_shape`` on ``symnum``.

    Returns:
        Function ``x -> (hessian, grad, value)``: ``hessian`` of shape ``S + S``,
        ``grad`` of shape ``S``, ``value`` 0-d.

    Raises:
        NotCallableError: If ``func`` is not callable.
        UnknownBackendError: If the backend name is unknown.
        BackendUnavailableError: If the backend is not installed.
    """
    return DerivativeFunction(
        func, "hessian_grad_and_value", backend, as_numpy=as_numpy, **options
    )


def mtp_hessian_grad_and_value(
    func: Function, backend: str = "jax", *, as_numpy: bool = True, **options: Any
) -> DerivativeFunction:
    """Build ``x -> (mtp, hessian, grad, value)`` for a scalar function.

    With the Tressian ``t[i, j, k] = ∂³f/(∂x[i] ∂x[j] ∂x[k])``, the matrix-Tressian
    product is ``mtp(m) = sum(m[None, :, :] * t, axis=(-1, -2))``, i.e.
    ``mtp(m)[i] = Σ_jk m[j, k] ∂³f/(∂x[i] ∂x[j] ∂x[k])``. It reuses the Hessian pass.
    Used by Riemannian HMC with the SoftAbs metric.

    Args:
        func: Scalar-valued function ``func(x, *args)`` of an array ``x`` of
            shape ``S``, written with the backend's framework. Extra
            arguments are passed through undifferentiated.
        backend: Backend name (case-insensitive), default ``"jax"``.
        as_numpy: Return NumPy arrays (default); ``False`` keeps JAX and PyTorch
            arrays on their device.
        **options: Backend options: ``mode="auto" | "forward" | "reverse"`` for
            Jacobians on ``jax`` and ``torch``, ``arg_shape`` on ``symnum``.

    Returns:
        Function ``x -> (mtp, hessian, grad, value)``: ``mtp`` maps an array of
        shape ``S + S`` to shape ``S``; ``hessian`` of shape ``S + S``, ``grad`` of
        shape ``S``, ``value`` 0-d.

    Raises:
        NotCallableError: If ``func`` is not callable.
        UnknownBackendError: If the backend name is unknown.
        BackendUnavailableError: If the backend is not installed.
    """
    return DerivativeFunction(
        func, "mtp_hessian_grad_and_value", backend, as_numpy=as_numpy, **options
    )


def jacobian_and_value(
    func: Function, backend: str = "jax", *, as_numpy: bool = True, **options: Any
) -> DerivativeFunction:
    """Build ``x -> (jacobian, value)`` for an array function.

    ``jacobian[i, k] = ∂f[i]/∂x[k]`` (N-d shapes flatten in C order). Used for the
    constraint function of constrained HMC.

    Args:
        func: Function ``func(x, *args)`` of an array ``x`` of shape ``S``
            returning an array of shape ``F``, written with the backend's
            framework. Extra arguments are passed through undifferentiated.
        backend: Backend name (case-insensitive), default ``"jax"``.
        as_numpy: Return NumPy arrays (default); ``False`` keeps JAX and PyTorch
            arrays on their device.
        **options: Backend options: ``mode="auto" | "forward" | "reverse"`` for
            Jacobians on ``jax`` and ``torch``, ``arg_shape`` on ``symnum``.

    Returns:
        Function ``x -> (jacobian, value)``: ``jacobian`` of shape ``F + S``,
        ``value`` of shape ``F``.

    Raises:
        NotCallableError: If ``func`` is not callable.
        UnknownBackendError: If the backend name is unknown.
        BackendUnavailableError: If the backend is not installed.
    """
    return DerivativeFunction(
        func, "jacobian_and_value", backend, as_numpy=as_numpy, **options
    )


def mhp_jacobian_and_value(
    func: Function, backend: str = "jax", *, as_numpy: bool = True, **options: Any
) -> DerivativeFunction:
    """Build ``x -> (mhp, jacobian, value)`` for an array function.

    With ``h[i, j, k] = ∂²f[i]/(∂x[j] ∂x[k])``, the matrix-Hessian product is
    ``mhp(m) = sum(m[:, :, None] * h, axis=(0, 1))``, i.e.
    ``mhp(m)[k] = Σ_ij m[i, j] ∂²f[i]/(∂x[j] ∂x[k])``. It reuses the Jacobian pass.
    Used for the derivative of the Gram matrix's log-determinant in constrained HMC.

    Args:
        func: Function ``func(x, *args)`` of an array ``x`` of shape ``S``
            returning an array of shape ``F``, written with the backend's
            framework. Extra arguments are passed through undifferentiated.
        backend: Backend name (case-insensitive), default ``"jax"``.
        as_numpy: Return NumPy arrays (default); ``False`` keeps JAX and PyTorch
            arrays on their device.
        **options: Backend options: ``mode="auto" | "forward" | "reverse"`` for
            Jacobians on ``jax`` and ``torch``, ``arg_shape`` on ``symnum``.

    Returns:
        Function ``x -> (mhp, jacobian, value)``: ``mhp`` maps an array of shape
        ``F + S`` to shape ``S``; ``jacobian`` of shape ``F + S``, ``value`` of
        shape ``F``.

    Raises:
        NotCallableError: If ``func`` is not callable.
        UnknownBackendError: If the backend name is unknown.
        BackendUnavailableError: If the backend is not installed.
    """
    return DerivativeFunction(
        func, "mhp_jacobian_and_value", backend, as_numpy=as_numpy, **options
    )


def jvp_and_value(
    func: Function, backend: str = "jax", *, as_numpy: bool = True, **options: Any
) -> DerivativeFunction:
    """Build ``x -> (jvp, value)``: the Jacobian-vector product closure and value.

    ``jvp(v) = j @ v`` contracting all of ``S``, i.e.
    ``jvp(v)[i] = Σ_k ∂f[i]/∂x[k] v[k]``: forward mode where the framework has it
    (JAX), and the double-VJP construction elsewhere. One ``jvp`` call costs a small
    multiple of one evaluation of ``func``, whatever the output size: use it for
    sensitivities of many outputs to one input direction, or a tall Jacobian's
    columns.

    Args:
        func: Function ``func(x, *args)`` of an array ``x`` of shape ``S``
            returning an array of shape ``F``, written with the backend's
            framework. Extra arguments are passed through undifferentiated.
        backend: Backend name (case-insensitive), default ``"jax"``.
        as_numpy: Return NumPy arrays (default); ``False`` keeps JAX and PyTorch
            arrays on their device.
        **options: Backend options: ``arg_shape`` (and ``extra_shapes``) on
            ``symnum``.

    Returns:
        Function ``x -> (jvp, value)``: ``value`` of shape ``F``; ``jvp`` maps an
        array of shape ``S`` to shape ``F``.

    Raises:
        NotCallableError: If ``func`` is not callable.
        UnknownBackendError: If the backend name is unknown.
        BackendUnavailableError: If the backend is not installed.
    """
    return DerivativeFunction(
        func, "jvp_and_value", backend, as_numpy=as_numpy, **options
    )


def hvp_grad_and_value(
    func: Function, backend: str = "jax", *, as_numpy: bool = True, **options: Any
) -> DerivativeFunction:
    """Build ``x -> (hvp, grad, value)`` for a scalar function, never forming H.

    ``hvp(v) = h @ v``, i.e. ``hvp(v)[j] = Σ_k ∂²f/(∂x[j] ∂x[k]) v[k]``, computed
    forward-over-reverse on JAX and reverse-over-reverse elsewhere, so one ``hvp``
    call costs a small multiple of one gradient whatever the dimension. Use it for
    Newton-CG and trust-region optimisers (``hessp``) and for Riemannian samplers on
    large models.

    Args:
        func: Scalar-valued function ``func(x, *args)`` of an array ``x`` of
            shape ``S``, written with the backend's framework. Extra
            arguments are passed through undifferentiated.
        backend: Backend name (case-insensitive), default ``"jax"``.
        as_numpy: Return NumPy arrays (default); ``False`` keeps JAX and PyTorch
            arrays on their device.
        **options: Backend options: ``arg_shape`` (and ``extra_shapes``) on
            ``symnum``.

    Returns:
        Function ``x -> (hvp, grad, value)``: ``hvp`` maps an array of shape ``S``
        to shape ``S``; ``grad`` of shape ``S``, ``value`` 0-d.

    Raises:
        NotCallableError: If ``func`` is not callable.
        UnknownBackendError: If the backend name is unknown.
        BackendUnavailableError: If the backend is not installed.
    """
    return DerivativeFunction(
        func, "hvp_grad_and_value", backend, as_numpy=as_numpy, **options
    )
