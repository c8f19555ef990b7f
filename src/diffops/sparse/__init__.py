"""Sparse Jacobians and Hessians: structure, coloring, colored products, SciPy results.

``jacobian_and_value(f, sparsity=...)``, ``mhp_jacobian_and_value(f, sparsity=...)``,
``hessian_grad_and_value(f, sparsity=...)`` and
``mtp_hessian_grad_and_value(f, sparsity=...)`` return the Jacobian or Hessian as a
``scipy.sparse.csr_array`` of shape ``(prod(F), prod(S))`` (indices flatten in C order)
holding the exact dense values at the structurally non-zero positions.

How, once per call signature (on the first call):

1. **Structure** (:mod:`diffops.sparse.patterns`). ``sparsity="detect"`` reads it
   from the function's traced program (:mod:`diffops.backends.jax_sparsity` on
   ``jax`` and ``jax_nojit``); otherwise the pattern is given (a boolean array, dense
   or ``scipy.sparse``). Where detection is possible a given pattern is checked
   against it, so a pattern that misses entries is an error, not a silently wrong
   matrix.
2. **Coloring** (:mod:`diffops.sparse.coloring`, loops in
   :mod:`diffops.sparse.greedy`, run by :mod:`diffops.sparse.kernels`). Columns
   that never share a row share one Jacobian-vector product, rows that never share a
   column one vector-Jacobian product, and the densest rows or columns can go to the
   other mode (bidirectional); Hessians use a star coloring, so each entry is read
   from one Hessian-vector product, or an acyclic coloring (fewer colors), the
   entries recovered by substitution along two-colored trees (``coloring=``).
3. **Plan** (:mod:`diffops.sparse.plans`): the mode with the fewest products, or the
   dense derivative when the pattern is (nearly) dense or coloring cannot beat it;
   ``DerivativeFunction.coloring`` says which and why.
4. **Products and decompression**, by the backend
   (:meth:`~diffops.backends.capabilities.SparseDerivatives.sparse_operator`): one
   product per color, and one gather that reads each structural non-zero from them
   (on JAX, compiled together in one program).

SciPy (and Numba for the coloring of large patterns and for substitution) are
imported only when sparsity is used: ``pip install diffops[sparse]``.
"""

from diffops.sparse.caller import SparseCaller
from diffops.sparse.coloring import (
    acyclic_coloring,
    column_coloring,
    row_coloring,
    star_coloring,
)
from diffops.sparse.patterns import (
    SPARSE_OPS,
    SparsityError,
    Structure,
    check_sparsity,
)
from diffops.sparse.plans import Plan, hessian_plan, jacobian_plan
from diffops.sparse.substitution import Substitution

__all__ = [
    "SPARSE_OPS",
    "Plan",
    "SparseCaller",
    "SparsityError",
    "Structure",
    "Substitution",
    "acyclic_coloring",
    "check_sparsity",
    "column_coloring",
    "hessian_plan",
    "jacobian_plan",
    "row_coloring",
    "star_coloring",
]
