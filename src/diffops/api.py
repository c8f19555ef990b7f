"""The ``mici.autodiff``-compatible functions and the per-operator shortcuts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from diffops.derivative import DerivativeFunction, check_operator
from diffops.errors import MissingDerivativeError
from diffops.registry import require_available


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
    record = require_available(backend)
    if record.function_wrapper is None:
        return function
    return record.function_wrapper(function)


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


def _shortcut(op_name: str, summary: str, returns: str) -> Callable[..., Any]:
    def shortcut(
        func: Callable[..., Any], backend: str = "jax", **options: Any
    ) -> DerivativeFunction:
        return DerivativeFunction(func, op_name, backend, **options)

    shortcut.__name__ = shortcut.__qualname__ = op_name
    shortcut.__doc__ = f"""{summary}

    Args:
        func: Function of one array of shape ``S``, written with the backend's
            framework.
        backend: Backend name (case-insensitive), default ``"jax"``.
        **options: Backend-specific options, e.g. ``mode="forward"`` for Jacobians
            on ``jax`` and ``torch``, ``arg_shape`` on ``symnum``.

    Returns:
        Derivative function taking a NumPy array ``x`` and returning {returns}.

    Raises:
        NotCallableError: If ``func`` is not callable.
        UnknownBackendError: If the backend name is unknown.
        BackendUnavailableError: If the backend is not installed.
    """
    return shortcut


grad_and_value = _shortcut(
    "grad_and_value",
    "Build ``x -> (grad, value)`` for a scalar function: ``grad[k] = ∂f/∂x[k]``.",
    "``(grad, value)`` with ``grad`` of shape ``S``",
)
vjp_and_value = _shortcut(
    "vjp_and_value",
    "Build ``x -> (vjp, value)``: ``vjp(v) = v @ j``, i.e. "
    "``vjp(v)[k] = Σ_i v[i] ∂f[i]/∂x[k]``.",
    "``(vjp, value)``; ``vjp`` maps shape ``F`` to ``S``",
)
hessian_grad_and_value = _shortcut(
    "hessian_grad_and_value",
    "Build ``x -> (hessian, grad, value)``: ``hessian[j, k] = ∂²f/(∂x[j] ∂x[k])``.",
    "``(hessian, grad, value)`` with ``hessian`` of shape ``S + S``",
)
mtp_hessian_grad_and_value = _shortcut(
    "mtp_hessian_grad_and_value",
    "Build ``x -> (mtp, hessian, grad, value)``: "
    "``mtp(m) = sum(m[None, :, :] * t, axis=(-1, -2))``, i.e. "
    "``mtp(m)[i] = Σ_jk m[j, k] ∂³f/(∂x[i] ∂x[j] ∂x[k])``.",
    "``(mtp, hessian, grad, value)``; ``mtp`` maps shape ``S + S`` to ``S``",
)
jacobian_and_value = _shortcut(
    "jacobian_and_value",
    "Build ``x -> (jacobian, value)``: ``jacobian[i, k] = ∂f[i]/∂x[k]``.",
    "``(jacobian, value)`` with ``jacobian`` of shape ``F + S``",
)
mhp_jacobian_and_value = _shortcut(
    "mhp_jacobian_and_value",
    "Build ``x -> (mhp, jacobian, value)``: "
    "``mhp(m) = sum(m[:, :, None] * h, axis=(0, 1))``, i.e. "
    "``mhp(m)[k] = Σ_ij m[i, j] ∂²f[i]/(∂x[j] ∂x[k])``.",
    "``(mhp, jacobian, value)``; ``mhp`` maps shape ``F + S`` to ``S``",
)
