"""Jacobian colorings: which entries come from JVPs and which from VJPs.

A :class:`Split` colors the columns (one JVP per color), the rows (one VJP per
color), or both: :func:`forward_split` and :func:`reverse_split` use one mode;
:func:`bidirectional_splits` moves the densest rows to VJPs (or the densest columns
to JVPs) and colors the rest with the other mode, so that arrow-shaped Jacobians need
a few products instead of ``n``. :func:`diffops.sparse.plans.jacobian_plan` keeps the
candidate with the fewest products.
"""

from __future__ import annotations

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
        coloring.column_coloring(pattern, enough=min(n_out, n_in)),
        np.zeros(n_out, bool),
        np.zeros(n_in, bool),
    )


def reverse_split(pattern: Any) -> Split:
    """Every entry from VJPs of a row coloring."""
    n_out, n_in = pattern.shape
    return Split(
        coloring.row_coloring(pattern, enough=min(n_out, n_in)),
        np.full(n_in, -1),
        np.ones(n_out, bool),
        np.zeros(n_in, bool),
    )


def bidirectional_splits(pattern: Any) -> list[Split]:
    """Candidates moving the densest rows to VJPs, or the densest columns to JVPs."""
    n_out, n_in = pattern.shape
    row_sizes = np.diff(pattern.indptr)
    col_sizes = np.bincount(pattern.indices, minlength=n_in)
    transposed = sparse().csr_array(pattern.T)
    typical_row = max(float(np.median(row_sizes)) if n_out else 0.0, 1.0)
    typical_col = max(float(np.median(col_sizes)) if n_in else 0.0, 1.0)
    dense_rows = np.argsort(-row_sizes, kind="stable")
    dense_cols = np.argsort(-col_sizes, kind="stable")
    candidates = []
    for k in HEAVY_CANDIDATES:
        if k < n_out and row_sizes[dense_rows[k - 1]] > 4 * typical_row:
            heavy_rows = np.zeros(n_out, dtype=bool)
            heavy_rows[dense_rows[:k]] = True
            heavy = restricted(pattern, rows=heavy_rows)
            row_colors = np.where(heavy_rows, coloring.row_coloring(heavy), -1)
            col_colors = coloring.column_coloring(pattern, row_skip=heavy_rows)
            # Columns with no entry outside the heavy rows need no JVP.
            light = restricted(pattern, rows=~heavy_rows)
            used = np.bincount(light.indices, minlength=n_in) > 0
            col_colors = compact(np.where(used, col_colors, -1))
            candidates.append(
                Split(compact(row_colors), col_colors, heavy_rows, np.zeros(n_in, bool))
            )
        if k < n_in and col_sizes[dense_cols[k - 1]] > 4 * typical_col:
            heavy_cols = np.zeros(n_in, dtype=bool)
            heavy_cols[dense_cols[:k]] = True
            heavy = restricted(transposed, rows=heavy_cols)
            col_colors = np.where(heavy_cols, coloring.row_coloring(heavy), -1)
            row_colors = coloring.row_coloring(pattern, col_skip=heavy_cols)
            light = restricted(transposed, rows=~heavy_cols)
            used = np.bincount(light.indices, minlength=n_out) > 0
            row_colors = compact(np.where(used, row_colors, -1))
            candidates.append(
                Split(row_colors, compact(col_colors), np.ones(n_out, bool), heavy_cols)
            )
    return candidates


def compact(colors: np.ndarray) -> np.ndarray:
    """Colors renumbered 0.. over the colored entries (``-1`` kept)."""
    used = np.unique(colors[colors >= 0])
    # At least one slot: with every entry uncolored (-1) the lookup below still reads
    # slot 0 (VANDANIUMS in the CUTEst harness raised IndexError here).
    renumber = np.full(max(int(colors.max()) + 1 if colors.size else 0, 1), -1)
    renumber[used] = np.arange(used.size)
    return np.where(colors >= 0, renumber[np.maximum(colors, 0)], -1)
