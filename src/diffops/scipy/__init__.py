"""SciPy's optimisers fed from diffops' derivative functions.

- :func:`scipy_objective`: value, gradient, Hessian and Hessian-vector products of an
  objective, one evaluation per point (:mod:`diffops.scipy.objective`);
- :func:`scipy_constraint`: a ``NonlinearConstraint`` with sparse Jacobian and
  Hessian term (:mod:`diffops.scipy.constraint`).

SciPy is imported only where a SciPy object is made.
"""

from diffops.scipy.constraint import ScipyConstraint, scipy_constraint
from diffops.scipy.objective import ScipyObjective, scipy_objective

__all__ = ["ScipyConstraint", "ScipyObjective", "scipy_constraint", "scipy_objective"]
