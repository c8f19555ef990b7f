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


def callbacks_repr(
    kind: str,
    func: Callable[..., Any],
    backend: str,
    recipe: tuple[int, bool, Any],
    options: dict[str, Any],
) -> str:
    """``kind(func, backend=..., args=<n>, prefetch=..., options...)``.

    Args:
        kind: The builder's name.
        func: The user's function.
        backend: The backend's name.
        recipe: The number of extra arguments, ``prefetch`` and ``sparsity``.
        options: The other options.
    """
    from diffops.errors import function_name

    n_args, prefetch, sparsity = recipe
    if sparsity is not None:
        options = {"sparsity": describe_sparsity(sparsity), **options}
    opts = "".join(f", {k}={v!r}" for k, v in options.items())
    return (
        f"{kind}({function_name(func)}, backend={backend!r}, args=<{n_args}>, "
        f"prefetch={prefetch}{opts})"
    )
