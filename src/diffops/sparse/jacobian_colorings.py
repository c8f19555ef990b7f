"""Jacobian colorings: which entries come from JVPs and which from VJPs.

A :class:`Split` colors the columns (one JVP per color), the rows (one VJP per
color), or both: :func:`forward_split` and :func:`reverse_split` use one mode;
:func:`bidirectional_splits` moves the densest rows to VJPs (or the densest columns
to JVPs) and colors the rest with the other mode, so that arrow-shaped Jacobians need
a few products instead of ``n``. :func:`diffops.sparse.plans.jacobian_plan` keeps the
candidate with the fewest products.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from diffops.sparse import coloring
from diffops.sparse.patterns import restricted, sparse

HEAVY_CANDIDATES = (1, 2, 4, 8, 16, 32)
"""How many of the densest rows (or columns) bidirectional coloring tries to move to
the other mode."""


@dataclass(frozen=True)
class Split:
    """A coloring candidate: some entries by VJPs of row colors, the rest by JVPs.

    Entry ``(i, j)`` comes from the VJPs when ``vjp_rows[i]`` and not
    ``jvp_cols[j]``, from the JVPs otherwise.
    """

    row_colors: np.ndarray  # per row, -1 for rows in no VJP
    col_colors: np.ndarray  # per column, -1 for columns in no JVP
    vjp_rows: np.ndarray
    jvp_cols: np.ndarray

    @property
    def products(self) -> int:
        """JVPs and VJPs needed."""
        return coloring.count(self.row_colors) + coloring.count(self.col_colors)

    def by_vjp(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Per entry ``(rows[k], cols[k])``: whether it is read from the VJPs."""
        chosen: np.ndarray = self.vjp_rows[rows] & ~self.jvp_cols[cols]
        return chosen


def forward_split(pattern: Any) -> Split:
    """Every entry from JVPs of a column coloring."""
    n_out, n_in = pattern.shape
    return Split(
        np.full(n_out, -1),
        coloring.column_coloring(pattern, enough=min(n_out, n_in))
        if pattern.nnz
        else np.full(n_in, -1),
        np.zeros(n_out, bool),
        np.zeros(n_in, bool),
    )


def reverse_split(pattern: Any) -> Split:
    """Every entry from VJPs of a row coloring."""
    n_out, n_in = pattern.shape
    return Split(
        coloring.row_coloring(pattern, enough=min(n_out, n_in))
        if pattern.nnz
        else np.full(n_out, -1),
        np.full(n_in, -1),
        np.ones(n_out, bool),
        np.zeros(n_in, bool),
    )


def bidirectional_splits(pattern: Any, best: int | None = None) -> list[Split]:
    """Candidates moving the densest rows to VJPs, or the densest columns to JVPs.

    Args:
        pattern: 0/1 CSR array ``(rows, columns)``.
        best: The fewest products of a candidate found already (``None``: none).
            A candidate that cannot need fewer is not colored: it needs a product
            for its heavy lines and, on the other side, at least as many colors as
            the largest line left (its entries all differ in color).

    Returns:
        The candidates colored (each could have needed fewer products).
    """
    n_out, n_in = pattern.shape
    transposed = sparse().csr_array(pattern.T)
    by_rows = _by_size(np.diff(pattern.indptr))
    by_cols = _by_size(np.diff(transposed.indptr))
    bound = math.inf if best is None else best
    candidates = []

    def keep(split: Split) -> None:
        nonlocal bound
        candidates.append(split)
        bound = min(bound, split.products)

    for k in HEAVY_CANDIDATES:
        heavy_rows = _heaviest(*by_rows, k)
        if heavy_rows is not None and 1 + _left(by_rows, k) < bound:
            # VJPs for the heavy rows, JVPs for the entries outside them.
            row_colors, col_colors = _move_heavy(
                pattern,
                heavy_rows,
                lambda rows: coloring.column_coloring(pattern, row_skip=rows),
            )
            keep(Split(row_colors, col_colors, heavy_rows, np.zeros(n_in, bool)))
        heavy_cols = _heaviest(*by_cols, k)
        if heavy_cols is not None and 1 + _left(by_cols, k) < bound:
            # The mirror image: JVPs for the heavy columns, VJPs for the rest.
            col_colors, row_colors = _move_heavy(
                transposed,
                heavy_cols,
                lambda cols: coloring.row_coloring(pattern, col_skip=cols),
            )
            keep(Split(row_colors, col_colors, np.ones(n_out, bool), heavy_cols))
    return candidates


def _left(by_size: tuple[np.ndarray, np.ndarray, float], k: int) -> int:
    """The size of the largest line after the ``k`` largest."""
    sizes, order, _ = by_size
    return int(sizes[order[k]]) if k < sizes.size else 0


def _by_size(sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Line sizes, the lines from the largest, and the typical size (at least 1)."""
    typical = max(float(np.median(sizes)) if sizes.size else 0.0, 1.0)
    return sizes, np.argsort(-sizes, kind="stable"), typical


def _heaviest(
    sizes: np.ndarray, order: np.ndarray, typical: float, k: int
) -> np.ndarray | None:
    """The ``k`` largest lines as a mask, if each is over 4 times the typical size."""
    if k >= sizes.size or sizes[order[k - 1]] <= 4 * typical:
        return None
    heavy = np.zeros(sizes.size, dtype=bool)
    heavy[order[:k]] = True
    return heavy


def _move_heavy(
    lines: Any,
    heavy: np.ndarray,
    color_the_rest: Callable[[np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Colors for ``heavy`` lines of ``lines`` (CSR, a line per row) and the others.

    The heavy lines are colored among themselves (products along them); the other
    side's colors (``color_the_rest(heavy)``) cover the entries outside them, and a
    line of the other side with no such entry needs no product (``-1``).

    Returns:
        ``(colors of the heavy lines' side, colors of the other side)``.
    """
    own = np.where(heavy, coloring.row_coloring(restricted(lines, rows=heavy)), -1)
    light = restricted(lines, rows=~heavy)
    used = np.bincount(light.indices, minlength=lines.shape[1]) > 0
    other = np.where(used, color_the_rest(heavy), -1)
    return compact(own), compact(other)


def compact(colors: np.ndarray) -> np.ndarray:
    """Colors renumbered 0.. over the colored entries (``-1`` kept)."""
    used = np.unique(colors[colors >= 0])
    # At least one slot: with every entry uncolored (-1) the lookup below still reads
    # slot 0 (VANDANIUMS in the CUTEst harness raised IndexError here).
    renumber = np.full(max(int(colors.max()) + 1 if colors.size else 0, 1), -1)
    renumber[used] = np.arange(used.size)
    return np.where(colors >= 0, renumber[np.maximum(colors, 0)], -1)
