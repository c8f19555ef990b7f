"""The IPOPT problem builder, :func:`ipopt_problem`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from diffops.ipopt.problem import IpoptProblem

__all__ = ["ipopt_problem"]


def ipopt_problem(
    objective: Callable[..., Any],
    x0: Any,
    constraints: Callable[..., Any] | None = None,
    *,
    lb: Any = None,
    ub: Any = None,
    cl: Any = None,
    cu: Any = None,
    args: tuple[Any, ...] = (),
    constraint_args: tuple[Any, ...] = (),
    backend: str = "jax",
    sparsity: str | None = "detect",
    prefetch: bool = True,
    **options: Any,
) -> IpoptProblem:
    """Build an IPOPT problem ``min f(x)``, ``cl <= c(x) <= cu``, ``lb <= x <= ub``.

    The result has cyipopt's problem interface, every derivative from the traced
    functions: the gradient, the constraints' sparse Jacobian (structure and
    values), and the lower triangle of the Lagrangian's Hessian
    ``obj_factor ∇²f + Σ_i lagrange[i] ∇²c[i]`` (structure and values), computed as
    one sparse Hessian of ``x -> obj_factor f(x) + Σ lagrange * c(x)`` with
    ``obj_factor`` and ``lagrange`` extra arguments (so the structure is found once
    and new multipliers compile nothing new). The docs' Constrained optimisation page
    has examples.

    Args:
        objective: Scalar ``objective(x, *args)`` of ``x`` of shape ``(n,)``, written
            with the backend's framework.
        x0: Starting point of shape ``(n,)``: fixes ``n``, is where the structures
            are found (they hold at every point), and is where
            :meth:`~IpoptProblem.solve` starts unless given another.
        constraints: Array-valued ``constraints(x, *constraint_args)`` with values
            of any shape ``F`` (flattened to ``m = prod(F)`` constraints), or
            ``None``.
        lb: Lower bounds of ``x``: a scalar or shape ``(n,)``; ``None``: none.
        ub: Upper bounds of ``x``: a scalar or shape ``(n,)``; ``None``: none.
        cl: Lower bounds of the constraints: a scalar or shape ``(m,)``
            (``-np.inf``: none); required with ``constraints``.
        cu: Upper bounds of the constraints (``cl == cu``: an equality); required
            with ``constraints``.
        args: Extra arguments of the objective (data), undifferentiated.
        constraint_args: Extra arguments of the constraints.
        backend: Backend name (case-insensitive), default ``"jax"``.
        sparsity: ``"detect"`` (default; ``jax`` and ``jax_nojit``): the Jacobian's
            and the Hessian's structures are read from the functions, and their
            values computed with colored products. ``None``: dense derivatives and
            dense structures (every entry; any backend).
        prefetch: At a new point, evaluate the derivative with the value once
            IPOPT has asked for it (default); ``False``: the value alone until the
            derivative is asked for there (cheaper for rejected trial points).
        **options: Backend options passed to the derivative functions.

    Returns:
        An :class:`IpoptProblem`: pass it to ``cyipopt.Problem`` as the problem
        object, or call its ``solve(x0=None, **ipopt_options)``.

    Raises:
        ValueError: For bounds ``cl``/``cu`` missing with constraints, or given
            without, or an unsupported ``sparsity``.
        ShapeMismatchError: For ``x0`` that is not a vector, or bounds of the wrong
            shape; also the errors of building derivative functions (an unknown or
            missing backend, a function that is not callable).
    """
    settings = {
        "lb": lb,
        "ub": ub,
        "cl": cl,
        "cu": cu,
        "args": args,
        "constraint_args": constraint_args,
        "backend": backend,
        "sparsity": sparsity,
        "prefetch": prefetch,
    }
    return IpoptProblem(objective, x0, constraints, {**options, **settings})
