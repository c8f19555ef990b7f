"""Hand-written Autograd: its public differential operators."""

from __future__ import annotations

from typing import Any

import numpy as np

from diffops.models import Model

from ..implementations import OpFn

VARIANTS: dict[str, tuple[str, ...]] = {
    "grad_and_value": ("autograd.value_and_grad",),
    "hessian_grad_and_value": ("autograd.hessian + value_and_grad",),
    "mtp_hessian_grad_and_value": ("autograd.make_vjp(hessian) + value_and_grad",),
    "jacobian_and_value": ("autograd.jacobian + f",),
    "mhp_jacobian_and_value": ("autograd.make_vjp(jacobian) + f",),
    "vjp_and_value": ("autograd.make_vjp",),
    "jvp_and_value": ("autograd.make_jvp + f",),
    "hvp_grad_and_value": ("autograd.make_hvp + f",),
    "value": ("f (autograd.numpy)",),
}
"""Autograd's public operators per operator."""


def build(model: Model, op: str, variant: str) -> OpFn:
    """Build the hand-written Autograd ``variant`` of ``op`` for ``model``.

    Args:
        model: The function.
        op: Operator name or ``"value"``.
        variant: One of ``VARIANTS[op]``.

    Returns:
        NumPy in, NumPy out, with Autograd's public differential operators.
    """
    import autograd

    f, _ = model.function("autograd")
    value_and_grad = autograd.value_and_grad(f)
    if op == "value":
        return lambda x: (f(x),)
    if op == "grad_and_value":

        def grad_call(x: np.ndarray) -> tuple[Any, ...]:
            v, g = value_and_grad(x)
            return g, v

        return grad_call
    if op == "hessian_grad_and_value":
        hess = autograd.hessian(f)

        def hess_call(x: np.ndarray) -> tuple[Any, ...]:
            v, g = value_and_grad(x)
            return hess(x), g, v

        return hess_call
    if op == "mtp_hessian_grad_and_value":
        mtp_and_hess = autograd.make_vjp(autograd.hessian(f))

        def mtp_call(x: np.ndarray) -> tuple[Any, ...]:
            mtp, h = mtp_and_hess(x)
            v, g = value_and_grad(x)
            return mtp, h, g, v

        return mtp_call
    if op == "jacobian_and_value":
        jac = autograd.jacobian(f)
        return lambda x: (jac(x), f(x))
    if op == "mhp_jacobian_and_value":
        mhp_and_jac = autograd.make_vjp(autograd.jacobian(f))

        def mhp_call(x: np.ndarray) -> tuple[Any, ...]:
            mhp, j = mhp_and_jac(x)
            return mhp, j, f(x)

        return mhp_call
    if op == "vjp_and_value":
        make_vjp = autograd.make_vjp(f)
        return lambda x: tuple(make_vjp(x))
    if op == "jvp_and_value":
        make_jvp = autograd.make_jvp(f)

        def jvp_call(x: np.ndarray) -> tuple[Any, ...]:
            jvp = make_jvp(x)
            return (lambda u: jvp(u)[1]), f(x)

        return jvp_call
    if op == "hvp_grad_and_value":
        make_hvp = autograd.make_hvp(f)

        def hvp_call(x: np.ndarray) -> tuple[Any, ...]:
            hvp, g = make_hvp(x)  # (hvp, grad): the value is not returned
            return hvp, g, f(x)

        return hvp_call
    msg = f"unknown autograd variant {variant!r}"
    raise ValueError(msg)
