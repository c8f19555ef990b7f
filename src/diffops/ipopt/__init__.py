"""Problems for IPOPT (through ``cyipopt``): :func:`ipopt_problem`.

IPOPT solves ``min f(x)`` subject to ``cl <= c(x) <= cu`` and ``lb <= x <= ub`` and
asks for sparse derivatives in coordinate form: the constraints' Jacobian as values in
the order of a structure ``(rows, cols)`` given once, and the Hessian of the Lagrangian
``σ ∇²f(x) + Σ_i λ[i] ∇²c[i](x)`` as the values of its lower triangle, in the order of
another fixed structure. :class:`IpoptProblem` builds all of it from the user's
traced functions:

- ``objective`` and ``gradient`` from one ``grad_and_value`` evaluation per point;
- ``constraints`` and ``jacobian`` from one sparse ``jacobian_and_value``
  evaluation per point, the structure read from the function (``sparsity="detect"``);
- ``hessian`` from one sparse ``hessian_grad_and_value`` of the Lagrangian
  ``x -> σ f(x) + Σ λ * c(x)`` (:class:`~diffops.lagrangian.Lagrangian`) with ``σ``
  and ``λ`` extra arguments, so its structure is found once for every ``σ`` and
  ``λ`` and each iteration reuses one compiled program.

The object has cyipopt's problem interface (``objective``, ``gradient``,
``constraints``, ``jacobian``, ``jacobianstructure``, ``hessian``,
``hessianstructure``), so it can be passed to ``cyipopt.Problem`` as it is;
:meth:`IpoptProblem.solve` does that. ``cyipopt`` is imported only there
(``pip install diffops[ipopt]``).
"""

from diffops.ipopt.builder import ipopt_problem
from diffops.ipopt.problem import IpoptProblem

__all__ = ["IpoptProblem", "ipopt_problem"]
