"""What the SciPy callbacks share: operator levels, cache size, repr and pickling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

OPERATORS = ("grad_and_value", "hvp_grad_and_value", "hessian_grad_and_value")
"""Operators in increasing order of what they return (each gives the lower too)."""
GRADIENT, HVP, HESSIAN = 0, 1, 2
"""Their levels."""
CACHED_POINTS = 2
"""Points kept: trust-region methods evaluate a trial point and, when they reject
it, return to the current one for more Hessian-vector products."""
HESSIAN_KINDS = ("matrix", "hvp")
"""What a constraint's ``hess`` returns: a matrix, or a ``LinearOperator``."""


def describe_sparsity(sparsity: Any) -> Any:
    """``sparsity`` for a repr: a name as it is, a pattern by its type and shape."""
    if isinstance(sparsity, str):
        return sparsity
    shape = getattr(sparsity, "shape", None)
    return f"<{type(sparsity).__name__} {shape}>"


def rebuild(
    cls: Callable[..., Any],
    func: Callable[..., Any],
    backend: str,
    args: tuple[Any, ...],
    own: dict[str, Any],
    options: dict[str, Any],
) -> Any:
    """A pickled callbacks object, built again from its recipe."""
    return cls(func, backend, args, **own, **options)
