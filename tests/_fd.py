"""Finite differences: the second oracle, independent of the closed forms.

Each derivative output is checked against fourth-order central differences of the
next lower-order output *of the same derivative function*, taken along directions
``u`` (every basis vector for small inputs, random unit vectors otherwise):

- gradient / Jacobian ``· u``     vs  d/dt value(x + t u)
- Hessian ``· u``                 vs  d/dt grad(x + t u)
- ``mtp(m) · u``                  vs  d/dt Σ m * hessian(x + t u)
- ``mhp(m) · u``                  vs  d/dt Σ m * jacobian(x + t u)
- ``vjp(v) · u``                  vs  d/dt Σ v * value(x + t u)
- ``jvp(u)``                      vs  d/dt value(x + t u)
- ``hvp(u)``                      vs  d/dt grad(x + t u)

where ``A · u`` contracts the trailing ``S`` axes of ``A`` with ``u``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

STEP = 1e-3
# Fourth-order central-difference stencil: offsets and weights (divide by 12 h).
_OFFSETS = (-2.0, -1.0, 1.0, 2.0)
_WEIGHTS = (1.0, -8.0, 8.0, -1.0)

# For each operator: (label, index of the checked output, index of the lower-order
# output it is the derivative of, kind); kind "array" compares A · u directly,
# "closure" applies the closure at index 0 to a random argument m shaped like the
# lower-order output (or the value, for vjp) and differentiates Σ m * lower; "right"
# applies the closure to the direction u itself (jvp, hvp).
CHECKS: dict[str, tuple[tuple[str, int, int, str], ...]] = {
    "vjp_and_value": (("vjp", 0, 1, "closure"),),
    "grad_and_value": (("grad", 0, 1, "array"),),
    "hessian_grad_and_value": (
        ("hessian", 0, 1, "array"),
        ("grad", 1, 2, "array"),
    ),
    "mtp_hessian_grad_and_value": (
        ("mtp", 0, 1, "closure"),
        ("hessian", 1, 2, "array"),
        ("grad", 2, 3, "array"),
    ),
    "jacobian_and_value": (("jacobian", 0, 1, "array"),),
    "mhp_jacobian_and_value": (
        ("mhp", 0, 1, "closure"),
        ("jacobian", 1, 2, "array"),
    ),
    "jvp_and_value": (("jvp", 0, 1, "right"),),
    "hvp_grad_and_value": (
        ("hvp", 0, 1, "right"),
        ("grad", 1, 2, "array"),
    ),
}


def directions(
    shape: tuple[int, ...],
    rng: np.random.Generator,
    max_basis: int = 6,
    n_random: int = 3,
) -> list[np.ndarray]:
    """Basis vectors of ``shape`` if it has at most ``max_basis`` elements, else
    ``n_random`` random unit vectors."""
    size = int(np.prod(shape, dtype=int))
    if size <= max_basis:
        return [np.eye(size)[k].reshape(shape) for k in range(size)]
    out = []
    for _ in range(n_random):
        u = rng.standard_normal(shape)
        out.append(u / np.linalg.norm(u))
    return out


def contract(a: Any, u: np.ndarray) -> np.ndarray:
    """``a · u``: contract the trailing ``u.ndim`` axes of ``a`` with ``u``."""
    return np.tensordot(np.asarray(a, dtype=np.float64), u, axes=u.ndim)


def _stencil(values: list[Any], step: float) -> np.ndarray:
    """Fourth-order central difference from the values at the ``_OFFSETS``."""
    total = sum(
        w * np.asarray(v, dtype=np.float64)
        for w, v in zip(_WEIGHTS, values, strict=True)
    )
    return np.asarray(total / (12 * step))


def fd_comparisons(
    derivative: Callable[[np.ndarray], tuple[Any, ...]],
    op_name: str,
    x: np.ndarray,
    rng: np.random.Generator,
    step: float = STEP,
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Pairs ``(label, computed, finite-difference estimate)`` for one point.

    Args:
        derivative: Derivative function for ``op_name`` (NumPy in, NumPy out).
        op_name: Operator name.
        x: float64 point of shape ``S``.
        rng: Generator for the directions and the closures' arguments.
        step: Finite-difference step along unit directions.

    Returns:
        One entry per checked output and direction.
    """
    x = np.array(x, dtype=np.float64)
    out = derivative(x)
    checks = CHECKS[op_name]
    # Arguments of the closure: shaped like the lower-order output it contracts.
    closure_args = {}
    for label, _, lower, kind in checks:
        if kind == "closure":
            closure_args[label] = rng.standard_normal(np.shape(out[lower]))
    results = []
    for u in directions(x.shape, rng):
        shifted = [derivative(x + offset * step * u) for offset in _OFFSETS]
        for label, index, lower, kind in checks:
            if kind == "array":
                computed = contract(out[index], u)
                estimate = _stencil([o[lower] for o in shifted], step)
            elif kind == "right":
                computed = np.asarray(out[index](u), dtype=np.float64)
                estimate = _stencil([o[lower] for o in shifted], step)
            else:
                m = closure_args[label]
                computed = contract(out[index](m), u)
                estimate = _stencil(
                    [np.sum(m * np.asarray(o[lower])) for o in shifted], step
                )
            results.append((label, computed, estimate))
    return results


def assert_fd_close(
    comparisons: list[tuple[str, np.ndarray, np.ndarray]],
    rtol: float = 1e-6,
    atol: float = 1e-7,
    context: str = "",
) -> None:
    """Assert every computed output matches its finite-difference estimate."""
    assert comparisons, "no finite-difference comparison was made"
    for label, computed, estimate in comparisons:
        assert np.shape(computed) == np.shape(estimate), (label, context)
        scale = max(1.0, float(np.max(np.abs(estimate), initial=0.0)))
        np.testing.assert_allclose(
            computed,
            estimate,
            rtol=rtol,
            atol=atol * scale,
            err_msg=f"{label} disagrees with finite differences {context}",
        )
