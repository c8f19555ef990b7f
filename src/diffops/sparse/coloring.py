"""Colorings of Jacobian and Hessian patterns: which products can be shared.

Three problems, each a small function over a 0/1 CSR pattern:

- :func:`column_coloring`: columns that never share a row can be seeded together in
  one Jacobian-vector product (forward mode); :func:`row_coloring` is the same for
  rows and vector-Jacobian products (reverse mode). Rows (or columns) computed by the
  other mode can be left out of the conflicts, which bidirectional plans use.
- :func:`star_coloring`: a symmetric coloring in which every entry of a Hessian can
  be read directly from one Hessian-vector product, using symmetry.
- :func:`acyclic_coloring`: a symmetric coloring in which the subgraph of any two
  colors is a forest; fewer colors (a band of half-width ``b``: ``b + 1`` against
  ``2b + 1``), the entries recovered by substitution along the trees
  (:mod:`diffops.sparse.substitution`).

Two kinds of candidates are compared and the one with fewer colors kept:

- **Banded with hubs**, in vectorised NumPy (linear in the non-zeros): the few
  vertices of much higher degree than the rest ("hubs": the shared variable of
  BDQRTIC, the corner of an arrow) get a color each, and the rest is colored by its
  position modulo the band width, which is valid for any pattern and optimal for a
  full band. When it meets a lower bound (the largest row, for column colorings) or
  the rest is a full band, nothing else is tried.
- **Greedy**, sequential loops (:mod:`diffops.sparse.greedy`) in natural and
  largest-first order, for patterns that are not banded; they run when their work
  (the sum of squared row sizes or degrees) is affordable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from diffops.sparse import greedy, kernels
from diffops.sparse.patterns import restricted, sparse

QUICK_WORK = 20_000
"""Greedy work (steps) cheap enough to try beside a banded coloring with hubs:
milliseconds as Python."""
ORDER_WORK = 5_000_000
"""Greedy colorings with at most this much work are tried in two orders; beyond it,
the natural order only."""


def count(colors: np.ndarray) -> int:
    """Number of colors used."""
    return int(colors.max()) + 1 if colors.size else 0


def _best(candidates: list[np.ndarray]) -> np.ndarray:
    return min(candidates, key=count)


def _hubs(degree: np.ndarray) -> np.ndarray:
    """Vertices whose degree is far above the typical one (at most 32 of them)."""
    if degree.size == 0:
        return np.zeros(0, dtype=bool)
    typical = float(np.median(degree))
    order = np.argsort(-degree, kind="stable")[:32]
    chosen = order[degree[order] > 4 * typical + 2]
    hubs = np.zeros(degree.size, dtype=bool)
    hubs[chosen] = True
    return hubs


def _band_colors(width: int, vertices: np.ndarray, n: int, offset: int) -> np.ndarray:
    colors = np.full(n, -1, dtype=np.int64)
    colors[vertices] = offset + vertices % max(width, 1)
    return colors


# ---------------------------------------------------------------------------------
# Jacobian columns (and rows)


def column_coloring(
    pattern: Any,
    row_skip: np.ndarray | None = None,
    enough: int | None = None,
    split: bool = True,
) -> np.ndarray:
    """Color the columns so that no two columns of one color share a row.

    Args:
        pattern: 0/1 CSR array ``(n_out, n_in)``.
        row_skip: Rows to leave out of the conflicts (their entries are computed by
            reverse mode); default none.
        enough: Give up improving on the banded candidate when even the lower bound
            (the largest row) reaches this many colors: the caller has something as
            good.
        split: Where greedy is unaffordable, also color the connected components
            apart (:func:`_columns_by_component`).

    Returns:
        Color per column (columns without a counted entry get a color too).
    """
    n_out, n_in = pattern.shape
    if row_skip is None:
        row_skip = np.zeros(n_out, dtype=bool)
    counted = restricted(pattern, rows=~row_skip)
    row_sizes = np.diff(counted.indptr)
    lower = int(row_sizes.max()) if row_sizes.size else 0
    banded = _banded_columns(counted)
    if count(banded) <= lower or (enough is not None and lower >= enough):
        return banded
    candidates = [banded]
    work = greedy.distance2_work(pattern.indptr, row_skip)
    if kernels.affordable(work):
        csc = sparse().csc_array(pattern)
        weights = np.where(row_skip, 0, np.diff(pattern.indptr))[csc.indices]
        columns = np.repeat(np.arange(n_in), np.diff(csc.indptr))
        degree = np.bincount(columns, weights=weights, minlength=n_in)
        orders = [np.arange(n_in)]
        if work <= ORDER_WORK:
            orders.append(np.argsort(-degree, kind="stable"))
        for order in orders:
            candidates.append(
                greedy.distance2_coloring(
                    order,
                    csc.indptr,
                    csc.indices,
                    pattern.indptr,
                    pattern.indices,
                    row_skip,
                )
            )
    elif split:
        candidates += _columns_by_component(counted)
    return _best(candidates)


def _columns_by_component(counted: Any) -> list[np.ndarray]:
    """A column coloring of each connected component apart, reusing colors.

    Columns conflict only through a row, so rows and columns split into
    components that never conflict with each other (a Jacobian of two interleaved
    dense blocks of 1,000: 1,000 colors, not 1,999 as one band). Components whose
    greedy work is affordable are colored together, each other one alone.
    Empty for a connected pattern.
    """
    n_out, n_in = counted.shape
    zero = sparse().csr_array((n_out, n_out), dtype=np.int8)
    zero_t = sparse().csr_array((n_in, n_in), dtype=np.int8)
    bipartite = sparse().bmat([[zero, counted], [counted.T, zero_t]], format="csr")
    return _color_components(
        bipartite,
        (slice(0, n_out), slice(n_out, None)),
        np.diff(counted.indptr),
        lambda rows, cols: column_coloring(
            counted[rows][:, cols], enough=None, split=False
        ),
    )


def _color_components(
    graph: Any,
    sides: tuple[slice, slice],
    row_sizes: np.ndarray,
    color: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> list[np.ndarray]:
    """Color the connected components of ``graph`` apart with ``color(rows, cols)``.

    Args:
        graph: Symmetric CSR adjacency.
        sides: Which of its vertices are rows and which are the columns colored
            (the same slice twice for a Hessian's graph).
        row_sizes: Entries per row; a greedy coloring's work is the sum of their
            squares. Components whose work is affordable are colored together,
            each other one alone; a column alone in its component takes color 0.
        color: Colors the columns ``cols`` given the rows ``rows`` (indices).

    Returns:
        ``[color per column]``, or ``[]`` if the graph is connected.
    """
    from scipy.sparse import csgraph

    n_parts, labels = csgraph.connected_components(graph, directed=False)
    if n_parts == 1:
        return []
    row_labels, col_labels = labels[sides[0]], labels[sides[1]]
    work = np.bincount(
        row_labels, weights=row_sizes.astype(np.float64) ** 2, minlength=n_parts
    )
    sizes = np.bincount(col_labels, minlength=n_parts)
    cheap = np.array([kernels.affordable(int(w)) for w in work], dtype=bool)
    colors = np.zeros(col_labels.size, dtype=np.int64)
    parts = [np.array([part]) for part in np.flatnonzero((sizes > 1) & ~cheap)]
    light = np.flatnonzero((sizes > 1) & cheap)
    parts += [light] if light.size else []
    for chosen in parts:
        rows = np.flatnonzero(np.isin(row_labels, chosen))
        cols = np.flatnonzero(np.isin(col_labels, chosen))
        colors[cols] = color(rows, cols)
    return [colors]


def _banded_columns(counted: Any) -> np.ndarray:
    """Hub columns a color each; the others by position modulo the rows' span."""
    n_out, n_in = counted.shape
    col_sizes = np.bincount(counted.indices, minlength=n_in)
    hubs = _hubs(col_sizes)
    rest = restricted(counted, cols=~hubs)
    rows = np.repeat(np.arange(n_out), np.diff(rest.indptr))
    width = 1
    if rest.nnz:
        low = np.full(n_out, n_in, dtype=np.int64)
        high = np.full(n_out, -1, dtype=np.int64)
        np.minimum.at(low, rows, rest.indices)
        np.maximum.at(high, rows, rest.indices)
        spans = high - low + 1
        width = int(spans[high >= 0].max())
    n_hubs = int(hubs.sum())
    colors = _band_colors(width, np.flatnonzero(~hubs), n_in, n_hubs)
    colors[hubs] = np.arange(n_hubs)
    # Columns without a counted entry conflict with nothing: any color will do.
    colors[col_sizes == 0] = 0
    return colors


def row_coloring(
    pattern: Any, col_skip: np.ndarray | None = None, enough: int | None = None
) -> np.ndarray:
    """Color the rows so that no two rows of one color share a column.

    Args:
        pattern: 0/1 CSR array ``(n_out, n_in)``.
        col_skip: Columns to leave out of the conflicts (computed by forward mode).
        enough: As for :func:`column_coloring`.

    Returns:
        Color per row.
    """
    return column_coloring(sparse().csr_array(pattern.T), col_skip, enough)


# ---------------------------------------------------------------------------------
# Hessians


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
    return _star(adjacency(pattern))


def _star(graph: Any, split: bool = True) -> np.ndarray:
    """:func:`star_coloring` of a graph (CSR without the diagonal).

    Where the greedy colorings are unaffordable, each connected component is also
    colored on its own (``split``), in its own vertex order: CHARDIS0's Hessian is
    two interleaved cliques of 1,000, 1,000 colors that way, 2,000 as one band.
    """
    banded, full = _banded_star(graph)
    if full:
        return banded
    orders = _greedy_orders(graph)
    candidates = [banded]
    candidates += [
        greedy.star_coloring(order, graph.indptr, graph.indices) for order in orders
    ]
    if split and not orders:
        candidates += _star_by_component(graph)
    return _best(candidates)


def _star_by_component(graph: Any) -> list[np.ndarray]:
    """A star coloring that colors the connected components apart, reusing colors.

    A path never leaves its component, so star colorings of the components
    together are one of the graph (see :func:`_color_components`). Empty for a
    connected graph.
    """
    everything = slice(None)
    return _color_components(
        graph,
        (everything, everything),
        np.diff(graph.indptr),
        lambda rows, cols: _star(graph[cols][:, cols], split=False),
    )


def _greedy_orders(graph: Any) -> list[np.ndarray]:
    """Vertex orders for the greedy kernels (none when their work is unaffordable).

    The natural order, and by decreasing degree when the work is small.
    """
    work = greedy.star_work(graph.indptr)
    if not kernels.affordable(work):
        return []
    orders = [np.arange(graph.shape[0])]
    if work <= ORDER_WORK:
        orders.append(np.argsort(-np.diff(graph.indptr), kind="stable"))
    return orders


def _banded_star(graph: Any) -> tuple[np.ndarray, bool]:
    """Hubs a color each, the rest by position modulo ``2b + 1``.

    Vertices at most ``2b`` apart in a band of half-width ``b`` get different
    colors, so the rest is distance-2 colored; a hub's color is its own, so no
    two-colored path passes through it. Hence a star coloring.

    Returns:
        ``(colors, full)``: ``full`` when the rest is a full band long enough (at
        least ``4b + 2`` vertices) that ``2b + 1`` colors are needed for direct
        recovery (a shorter one can need fewer: a path of 3 vertices, 2 colors),
        and either there are no hubs or the greedy colorings would cost more than
        :data:`QUICK_WORK` (a color per hub can be more than needed: a clique of 5
        among isolated vertices, 6 colors where greedy takes 5; BDQRTIC's hub
        makes greedy cost 25 million steps).
    """
    n = graph.shape[0]
    hubs = _hubs(np.diff(graph.indptr))
    rest = restricted(graph, rows=~hubs, cols=~hubs)
    rows = np.repeat(np.arange(n), np.diff(rest.indptr))
    b = int(np.max(np.abs(rest.indices - rows))) if rest.nnz else 0
    n_hubs = int(hubs.sum())
    vertices = np.flatnonzero(~hubs)
    colors = _band_colors(2 * b + 1, vertices, n, n_hubs)
    colors[hubs] = np.arange(n_hubs)
    # A full band of half-width b over consecutive vertices has this many entries.
    m = vertices.size
    consecutive = m == 0 or bool(vertices[-1] - vertices[0] == m - 1)
    expected = sum(2 * max(m - k, 0) for k in range(1, b + 1))
    full = consecutive and rest.nnz == expected and m >= 4 * b + 2
    if n_hubs and greedy.star_work(graph.indptr) <= QUICK_WORK:
        full = False
    return colors, full


def mirror(graph: Any) -> np.ndarray:
    """For each CSR position ``(i, j)`` of a symmetric pattern, that of ``(j, i)``."""
    rows = np.repeat(np.arange(graph.shape[0]), np.diff(graph.indptr))
    # Sorted by (column, row), the entries are the transposed CSR order.
    order = np.lexsort((rows, graph.indices))
    positions = np.empty(graph.nnz, dtype=np.int64)
    positions[order] = np.arange(graph.nnz)
    return positions


def acyclic_coloring(pattern: Any) -> np.ndarray:
    """An acyclic coloring of a symmetric pattern's graph.

    Distance-1 (neighbors differ), and every cycle uses at least three colors, so
    the subgraph of any two colors is a forest: the Hessian's entries are recovered
    from one Hessian-vector product per color by substitution along its trees.
    Every star coloring is acyclic, so this never needs more colors than
    :func:`star_coloring` on a band, and usually fewer.

    Args:
        pattern: Symmetric 0/1 CSR array ``(n, n)``.

    Returns:
        Color per vertex.
    """
    colors = acyclic_coloring_within(pattern, pattern.shape[0])
    assert colors is not None
    return colors


def acyclic_coloring_within(pattern: Any, most: int) -> np.ndarray | None:
    """:func:`acyclic_coloring` if it finds one with at most ``most`` colors.

    The greedy colorings stop as soon as they pass ``most``: a plan that needs the
    acyclic coloring to save products over a star coloring does not pay for the
    whole of one that cannot.

    Args:
        pattern: Symmetric 0/1 CSR array ``(n, n)``.
        most: The most colors of use.

    Returns:
        Color per vertex, or ``None``.
    """
    graph = adjacency(pattern)
    banded, full = _banded_acyclic(graph)
    if full:
        return banded if count(banded) <= most else None
    candidates = [banded]
    orders = _greedy_orders(graph)
    if orders:
        reverse = mirror(graph)
        candidates += [
            greedy.acyclic_coloring(
                order, graph.indptr, graph.indices, reverse, limit=most
            )
            for order in orders
        ]
    best = _best(candidates)
    return best if count(best) <= most else None


def _banded_acyclic(graph: Any) -> tuple[np.ndarray, bool]:
    """Hubs a color each, the rest by position modulo ``b + 1``.

    Two colors of the rest induce a subgraph of a path (in a full band of
    half-width ``b`` the vertices of colors ``a < a'`` alternate, each adjacent to
    the next), and a hub's own color with any other induces a star: a forest.

    Returns:
        ``(colors, full)``: ``full`` when the rest is a full band, whose ``b + 1``
        vertices in a row are all adjacent, so no coloring has fewer colors.
    """
    n = graph.shape[0]
    hubs = _hubs(np.diff(graph.indptr))
    rest = restricted(graph, rows=~hubs, cols=~hubs)
    rows = np.repeat(np.arange(n), np.diff(rest.indptr))
    b = int(np.max(np.abs(rest.indices - rows))) if rest.nnz else 0
    n_hubs = int(hubs.sum())
    vertices = np.flatnonzero(~hubs)
    colors = _band_colors(b + 1, vertices, n, n_hubs)
    colors[hubs] = np.arange(n_hubs)
    m = vertices.size
    consecutive = m == 0 or bool(vertices[-1] - vertices[0] == m - 1)
    expected = sum(2 * max(m - k, 0) for k in range(1, b + 1))
    full = consecutive and rest.nnz == expected and m >= 4 * b + 2
    if n_hubs and greedy.star_work(graph.indptr) <= QUICK_WORK:
        full = False
    return colors, full
