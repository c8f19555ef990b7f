"""Colorings of Jacobian and Hessian patterns: which products can be shared.

Three problems, each a small function over a 0/1 CSR pattern:

- :func:`column_coloring`: columns that never share a row can be seeded together in
  one Jacobian-vector product (forward mode); :func:`row_coloring` is the same for
  rows and vector-Jacobian products (reverse mode). Rows (or columns) computed by the
  other mode can be left out of the conflicts, which is what bidirectional coloring
  uses.
- :func:`star_coloring`: a symmetric coloring in which every entry of a Hessian can
  be read directly from one Hessian-vector product, using symmetry.

Each is greedy over a vertex order; both the largest-first order and the natural
order are tried and the one with fewer colors is kept (natural order is optimal on
banded patterns, largest-first on patterns with hubs). The loops are in
:mod:`diffops.sparse.kernels`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from diffops.sparse import kernels
from diffops.sparse.patterns import sparse


def count(colors: np.ndarray) -> int:
    """Number of colors used."""
    return int(colors.max()) + 1 if colors.size else 0


def _best(candidates: list[np.ndarray]) -> np.ndarray:
    return min(candidates, key=count)


def column_coloring(pattern: Any, row_skip: np.ndarray | None = None) -> np.ndarray:
    """Color the columns so that no two columns of one color share a row.

    Args:
        pattern: 0/1 CSR array ``(n_out, n_in)``.
        row_skip: Rows to leave out of the conflicts (their entries are computed by
            reverse mode); default none.

    Returns:
        Color per column (columns without a counted entry get color 0).
    """
    n_out, n_in = pattern.shape
    if row_skip is None:
        row_skip = np.zeros(n_out, dtype=bool)
    csc = sparse().csc_array(pattern)
    row_sizes = np.diff(pattern.indptr)
    # Largest first by the sizes of the rows each column meets (a bound on its
    # number of conflicts).
    weights = np.where(row_skip, 0, row_sizes)[csc.indices]
    columns = np.repeat(np.arange(n_in), np.diff(csc.indptr))
    degree = np.bincount(columns, weights=weights, minlength=n_in)
    orders = [np.argsort(-degree, kind="stable"), np.arange(n_in)]
    return _best(
        [
            kernels.distance2_coloring(
                order,
                csc.indptr,
                csc.indices,
                pattern.indptr,
                pattern.indices,
                row_skip,
            )
            for order in orders
        ]
    )


def row_coloring(pattern: Any, col_skip: np.ndarray | None = None) -> np.ndarray:
    """Color the rows so that no two rows of one color share a column.

    Args:
        pattern: 0/1 CSR array ``(n_out, n_in)``.
        col_skip: Columns to leave out of the conflicts (computed by forward mode).

    Returns:
        Color per row.
    """
    return column_coloring(sparse().csr_array(pattern.T), col_skip)


def adjacency(pattern: Any) -> Any:
    """The graph of a symmetric pattern: CSR without the diagonal."""
    graph = sparse().csr_array(pattern, dtype=np.int8, copy=True)
    graph.setdiag(0)
    graph.eliminate_zeros()
    graph.sort_indices()
    return graph


def star_coloring(pattern: Any) -> np.ndarray:
    """A star coloring of a symmetric pattern's graph.

    Distance-1 (neighbors differ), and no path on four vertices uses only two
    colors; then every off-diagonal entry ``(i, j)`` is alone in its row among the
    columns of ``j``'s color, or alone in its column among the rows of ``i``'s color,
    so one Hessian-vector product per color gives every entry directly.

    Args:
        pattern: Symmetric 0/1 CSR array ``(n, n)``.

    Returns:
        Color per vertex.
    """
    graph = adjacency(pattern)
    n = graph.shape[0]
    degree = np.diff(graph.indptr)
    orders = [np.argsort(-degree, kind="stable"), np.arange(n)]
    return _best(
        [kernels.star_coloring(order, graph.indptr, graph.indices) for order in orders]
    )


def star_work(pattern: Any) -> int:
    """The kernel work of :func:`star_coloring` (sum of squared degrees)."""
    return kernels.star_work(adjacency(pattern).indptr)


def distance2_work(pattern: Any) -> int:
    """The kernel work of :func:`column_coloring` (sum of squared row sizes)."""
    return kernels.distance2_work(
        pattern.indptr, np.zeros(pattern.shape[0], dtype=bool)
    )
