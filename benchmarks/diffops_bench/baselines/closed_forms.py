"""Hand-written NumPy closed forms: the reference every implementation is checked with.

Arrays come from the model's closed forms (``value``, ``first``, ``second``); product
closures compute their derivative when called, as a NumPy user would write them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from diffops.models import Model
from diffops.operators import CLOSURES

from ..implementations import Impl, OpFn
from ..ops import outputs

NAME = "numpy closed form"


def _closures(model: Model) -> dict[str, Callable[[np.ndarray], Any]]:
    """Closure factories by name: ``factory(x)`` returns the product closure at x.

    Read from ``diffops.operators.CLOSURES``: a closure contracts the derivative of
    the output it names (value → first → second → third closed form) with its
    argument, over the derivative's leading axes (``side="left"``, VJP-like) or its
    trailing ``S`` axes (``side="right"``, JVP-like). The derivative is computed when
    the closure is called.
    """
    derivatives = {
        "value": model.first,
        "grad": model.second,
        "jacobian": model.second,
        "hessian": model.third,
    }

    def factory(name: str) -> Callable[[np.ndarray], Any]:
        closure = CLOSURES[name]
        derivative = derivatives[closure.of]

        def at(x: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
            if derivative is None:
                msg = f"{model.name} has no closed form of d({closure.of})/dx"
                raise ValueError(msg)

            def product(u: np.ndarray) -> np.ndarray:
                d = derivative(x)
                if closure.side == "left":
                    return np.tensordot(u, d, axes=np.ndim(d) - x.ndim)
                return np.tensordot(d, u, axes=x.ndim)

            return product

        return at

    return {name: factory(name) for name in CLOSURES}


def closed_form_impl(model: Model, op: str) -> Impl:
    """``op`` assembled from the model's closed forms, outputs in the operator's order.

    Args:
        model: Model with closed-form derivatives.
        op: Operator name or ``"value"``.

    Returns:
        The implementation (building it fails for an output without a closed form).
    """
    arrays = {
        "value": model.value,
        "grad": model.first,
        "jacobian": model.first,
        "hessian": model.second,
    }
    closures = _closures(model)

    def build() -> OpFn:
        parts = []
        for name in outputs(op):
            if name not in arrays and name not in closures:
                msg = f"no NumPy closed form for {name!r} (operator {op})"
                raise ValueError(msg)
            parts.append(arrays.get(name) or closures[name])
        return lambda x: tuple(part(x) for part in parts)

    return Impl(NAME, "numpy", "numpy", build)


def logistic_mtp_impl(model: Model, design: np.ndarray) -> Impl:
    """Hand-written NumPy MTP for the logistic model, O(n d²) per product.

    ``mtp(m)[i] = -Σ_n w_n a_ni (a_n · m · a_n)`` with ``w = σ(1 − σ)(1 − 2σ)``; the
    generic route through the full Tressian (``model.third``) is O(n d³).

    Args:
        model: The logistic model (value, gradient and Hessian closed forms).
        design: Its design matrix ``A`` (n × d).

    Returns:
        The ``mtp_hessian_grad_and_value`` implementation.
    """

    def build() -> OpFn:
        def mtp_op(x: np.ndarray) -> tuple[Any, ...]:
            s = 1 / (1 + np.exp(-(design @ x)))
            w = s * (1 - s) * (1 - 2 * s)

            def mtp(m: np.ndarray) -> np.ndarray:
                quad = np.einsum("nj,jk,nk->n", design, m, design, optimize=True)
                return -(design.T @ (w * quad))

            return mtp, model.second(x), model.first(x), model.value(x)

        return mtp_op

    return Impl(NAME, "numpy", "numpy", build)


def logistic_hvp_impl(model: Model, design: np.ndarray) -> Impl:
    """Hand-written NumPy HVP for the logistic model, O(n d) per product.

    ``hvp(v) = -Aᵀ(w ⊙ (A v)) - v`` with ``w = σ(1 − σ)``; the generic route through
    the full Hessian (``model.second``) is O(n d²).

    Args:
        model: The logistic model (value and gradient closed forms).
        design: Its design matrix ``A`` (n × d).

    Returns:
        The ``hvp_grad_and_value`` implementation.
    """

    def build() -> OpFn:
        def hvp_op(x: np.ndarray) -> tuple[Any, ...]:
            s = 1 / (1 + np.exp(-(design @ x)))
            w = s * (1 - s)

            def hvp(v: np.ndarray) -> np.ndarray:
                return -(design.T @ (w * (design @ v))) - v

            return hvp, model.first(x), model.value(x)

        return hvp_op

    return Impl(NAME, "numpy", "numpy", build)
