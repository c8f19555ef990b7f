"""Lagrangians of constrained problems, as functions diffops can differentiate.

Constrained optimisers ask for the Hessian of a weighted sum of functions whose weights
change at every iteration: SciPy's ``trust-constr`` for ``Σ_i v[i] ∇²c[i](x)``, IPOPT
for ``σ ∇²f(x) + Σ_i λ[i] ∇²c[i](x)``. Written as one scalar function with the weights
as *extra arguments* (never closed over), the weighted sum is one Hessian, whose
structure is found once for all weights (sparsity detection never assumes an extra
argument's value) and whose compiled program serves every iteration.

The classes are small callables rather than closures so that they pickle and show
what they are in a ``repr``. ``x`` and the weights arrive as the backend's arrays;
only ``*`` and ``.sum()`` are used, which every backend's arrays have.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Lagrangian", "WeightedConstraints"]


def _name(func: Callable[..., Any]) -> str:
    return str(getattr(func, "__name__", type(func).__name__))


class WeightedConstraints:
    """``x, v, *args -> Σ_i v[i] c(x, *args)[i]``: constraints weighted by ``v``.

    Its Hessian with respect to ``x`` is ``Σ_i v[i] ∂²c[i]/(∂x[j] ∂x[k])``, the
    constraints' term of a Lagrangian's Hessian (SciPy's ``NonlinearConstraint.hess``).

    Args:
        constraints: Array-valued ``c(x, *args)`` with values of shape ``F``.

    Attributes:
        constraints: As given.
    """

    def __init__(self, constraints: Callable[..., Any]):
        self.constraints = constraints
        self.__name__ = f"weighted_{_name(constraints)}"

    def __call__(self, x: Any, v: Any, *args: Any) -> Any:
        """``Σ v * c(x, *args)``.

        Args:
            x: Point of shape ``S``.
            v: Weights of shape ``F`` (the constraints' values' shape).
            *args: Extra arguments of the constraints.

        Returns:
            The scalar weighted sum.
        """
        return (v * self.constraints(x, *args)).sum()

    def __repr__(self) -> str:
        return f"WeightedConstraints({_name(self.constraints)})"


class Lagrangian:
    """``x, σ, λ, *args -> σ f(x, *args_f) + Σ_i λ[i] c(x, *args_c)[i]``.

    IPOPT's Lagrangian with the objective factor ``σ`` (``obj_factor``) and the
    multipliers ``λ`` (``lagrange``) as arguments; ``args`` holds the objective's
    extra arguments followed by the constraints'.

    Args:
        objective: Scalar ``f(x, *args_f)``.
        constraints: Array-valued ``c(x, *args_c)`` with values of shape ``F``, or
            ``None`` for no constraints (then ``λ`` is ignored).
        n_objective_args: How many of the extra arguments are the objective's.

    Attributes:
        objective: As given.
        constraints: As given.
        n_objective_args: As given.
    """

    def __init__(
        self,
        objective: Callable[..., Any],
        constraints: Callable[..., Any] | None,
        n_objective_args: int,
    ):
        self.objective = objective
        self.constraints = constraints
        self.n_objective_args = int(n_objective_args)
        self.__name__ = f"lagrangian_of_{_name(objective)}"

    def __call__(self, x: Any, obj_factor: Any, lagrange: Any, *args: Any) -> Any:
        """``σ f(x) + Σ λ * c(x)``.

        Args:
            x: Point of shape ``S``.
            obj_factor: The objective's factor ``σ`` (a scalar).
            lagrange: Multipliers ``λ`` of shape ``F``.
            *args: The objective's extra arguments, then the constraints'.

        Returns:
            The scalar Lagrangian.
        """
        k = self.n_objective_args
        value = obj_factor * self.objective(x, *args[:k])
        if self.constraints is None:
            return value
        return value + (lagrange * self.constraints(x, *args[k:])).sum()

    def __repr__(self) -> str:
        constraints = None if self.constraints is None else _name(self.constraints)
        return f"Lagrangian({_name(self.objective)}, {constraints})"
