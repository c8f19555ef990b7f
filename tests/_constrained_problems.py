"""Constrained test problems with known solutions, for SciPy and IPOPT.

A hand-written problem (:func:`circles`) and HS071 (cyipopt's example), written with
operations every backend's arrays have, and constrained CUTEst problems from
``sif2jax``.

``sif2jax`` (a test and benchmark dependency) writes each CUTEst problem as JAX
functions: ``objective(y, args)`` and ``constraint(y) -> (equalities, inequalities)``
with ``equalities == 0`` and ``inequalities >= 0``, optional variable bounds, a start
and, for many, the known optimal objective value. :func:`load` turns one into the
``f(x)``, ``c(x)``, ``cl <= c(x) <= cu`` and ``lb <= x <= ub`` that SciPy and IPOPT
take.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _backends import in_ci

# Small constrained problems with a known optimum; together they have equalities,
# inequalities, bounds, dense and sparse Jacobians and Hessians.
PROBLEMS = ("HS71", "HS35", "HS100", "HS117", "HS119")


@dataclass
class Problem:
    name: str
    objective: Any
    constraints: Any
    x0: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    cl: np.ndarray
    cu: np.ndarray
    expected: float


def require_sif2jax() -> None:
    """Skip when ``sif2jax`` is missing; fail in CI (a dev dependency)."""
    if importlib.util.find_spec("sif2jax") is not None:
        return
    msg = "sif2jax is not installed (pip install -e .[dev])"
    if in_ci() or os.environ.get("DIFFOPS_REQUIRE_SIF2JAX") == "1":
        pytest.fail(f"{msg}; CI requires it")
    pytest.skip(msg)


def problem_class(name: str) -> Any:
    """The class of the sif2jax constrained problem ``name``, imported alone.

    ``import sif2jax`` imports every problem, and one of them (CLEUVEN7, sif2jax
    0.0.8) builds a matrix with a Python loop of JAX scatters when imported: 60 s of
    CPU. Unless sif2jax is imported already, only the problem's own module is
    loaded, under placeholder parent packages that are removed again afterwards (so
    a later ``import sif2jax`` is the full, ordinary one).
    """
    require_sif2jax()
    package = "sif2jax.cutest._constrained_minimisation"
    if "sif2jax" in sys.modules:
        return getattr(importlib.import_module(package), name)
    spec = importlib.util.find_spec("sif2jax")
    assert spec is not None
    assert spec.origin is not None
    root = Path(spec.origin).parent
    parents = {
        "sif2jax": root,
        "sif2jax.cutest": root / "cutest",
        package: root / "cutest" / "_constrained_minimisation",
    }
    try:
        for parent, path in parents.items():
            module = types.ModuleType(parent)
            module.__path__ = [str(path)]
            sys.modules[parent] = module
        return getattr(importlib.import_module(f"{package}.{name.lower()}"), name)
    finally:
        for loaded in [m for m in sys.modules if m.split(".")[0] == "sif2jax"]:
            del sys.modules[loaded]


@functools.cache  # the same functions each time, so compiled programs are shared
def load(name: str) -> Problem:
    import jax
    import jax.numpy as jnp

    enable_x64 = getattr(jax, "enable_x64", None)
    if enable_x64 is None:  # older JAX
        from jax.experimental import enable_x64
    # The problem's constants (start, bounds, optimum) in float64, whatever the
    # global jax_enable_x64 says.
    with enable_x64(True):
        problem = problem_class(name)()
        n_eq, n_ineq, _ = (int(k) for k in problem.num_constraints())
        n = problem.num_variables()
        if problem.bounds is None:
            lb, ub = np.full(n, -np.inf), np.full(n, np.inf)
        else:
            lb, ub = (np.asarray(b, dtype=np.float64) for b in problem.bounds)
        x0 = np.asarray(problem.y0, dtype=np.float64)
        expected = float(problem.expected_objective_value)

    def objective(x: Any) -> Any:
        return problem.objective(x, problem.args)

    def constraints(x: Any) -> Any:
        equalities, inequalities = problem.constraint(x)
        parts = [jnp.ravel(p) for p in (equalities, inequalities) if p is not None]
        return jnp.concatenate(parts)

    objective.__name__ = f"{name}_objective"
    constraints.__name__ = f"{name}_constraints"
    return Problem(
        name=name,
        objective=objective,
        constraints=constraints,
        x0=x0,
        lb=lb,
        ub=ub,
        cl=np.zeros(n_eq + n_ineq),
        cu=np.r_[np.zeros(n_eq), np.full(n_ineq, np.inf)],
        expected=expected,
    )


def circles_objective(x: Any) -> Any:
    """``Σ (x[i+1] - x[i])² - Σ x[i]``: a tridiagonal Hessian."""
    return ((x[1:] - x[:-1]) ** 2).sum() - x.sum()


def circles_constraints(x: Any) -> Any:
    """``x[i]² + x[i+1]² <= 1``: a bidiagonal Jacobian, diagonal Hessians."""
    return x[:-1] ** 2 + x[1:] ** 2


def circles(n: int = 40) -> Problem:
    """``min Σ (x[i+1] - x[i])² - Σ x[i]`` s.t. ``x[i]² + x[i+1]² <= 1``, ``n`` even.

    Solution ``x[i] = 1/√2`` for all ``i``, value ``-n/√2``: the first sum is at
    least 0, and ``Σ x[i]`` over the ``n/2`` disjoint pairs ``(x[2k], x[2k+1])`` is
    at most ``n/2 · √2``, reached only when every pair is ``(1/√2, 1/√2)``.
    """
    assert n % 2 == 0
    return Problem(
        name=f"circles{n}",
        objective=circles_objective,
        constraints=circles_constraints,
        x0=np.linspace(-0.5, 0.5, n),
        lb=np.full(n, -np.inf),
        ub=np.full(n, np.inf),
        cl=np.full(n - 1, -np.inf),
        cu=np.ones(n - 1),
        expected=-n / np.sqrt(2.0),
    )


def circles_solution(n: int) -> np.ndarray:
    return np.full(n, 1 / np.sqrt(2.0))


def hs071_objective(x: Any) -> Any:
    return x[0] * x[3] * (x[0] + x[1] + x[2]) + x[2]


def hs071_constraints(x: Any) -> Any:
    import jax.numpy as jnp

    return jnp.stack([x[0] * x[1] * x[2] * x[3], (x**2).sum()])


def hs071() -> Problem:
    """Hock-Schittkowski problem 71, cyipopt's introductory example (JAX)."""
    return Problem(
        name="hs071",
        objective=hs071_objective,
        constraints=hs071_constraints,
        x0=np.array([1.0, 5.0, 5.0, 1.0]),
        lb=np.ones(4),
        ub=np.full(4, 5.0),
        cl=np.array([25.0, 40.0]),
        cu=np.array([np.inf, 40.0]),
        # Ipopt's reference solution (its documentation's hs071 example).
        expected=17.014017145179164,
    )
