"""Hand-written NumPy closed forms: the reference every implementation is checked with.

Arrays come from the model's closed forms (``value``, ``first``, ``second``); product
closures compute their derivative when called, as a NumPy user would write them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from diffops.models import Model

from ..implementations import Impl, OpFn
from ..ops import outputs

NAME = "numpy closed form"


def _closures(model: Model) -> dict[str, Callable[[np.ndarray], Any]]:
    """Closure factories by name: ``factory(x)`` returns the product closure at x."""

    def mtp(x: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        if model.third is None:
            msg = f"{model.name} has no Tressian"
            raise ValueError(msg)
        tressian, n = model.third, x.size

        def product(m: np.ndarray) -> np.ndarray:
            t = tressian(x).reshape(n, n, n)
            return np.einsum("ijk,jk->i", t, m.reshape(n, n)).reshape(x.shape)

        return product

    def mhp(x: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        n = x.size

        def product(m: np.ndarray) -> np.ndarray:
            h = model.second(x).reshape(-1, n, n)
            return np.einsum("ijk,ij->k", h, m.reshape(-1, n)).reshape(x.shape)

        return product

    def vjp(x: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        n = x.size

        def product(v: np.ndarray) -> np.ndarray:
            return (v.reshape(-1) @ model.first(x).reshape(-1, n)).reshape(x.shape)

        return product

    return {"mtp": mtp, "mhp": mhp, "vjp": vjp}


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
