"""Where IPOPT's sparse structures read their values from a derivative's matrix."""

from __future__ import annotations

from typing import Any

import numpy as np


class Layout:
    """Row and column indices of the entries IPOPT takes from a matrix.

    For a CSR result: the structure as found at the first evaluation (checked at
    every later one, since IPOPT's values must stay in its order) and the indices
    into ``data`` of the entries IPOPT takes (all of them for a Jacobian, the lower
    triangle of a Hessian). For a dense result: every entry, or every entry of the
    lower triangle.
    """

    def __init__(self, matrix: Any, shape: tuple[int, int], lower: bool):
        self.dense = isinstance(matrix, np.ndarray)
        if self.dense:
            # Positions in the flattened matrix, in row-major order.
            if lower:
                rows, cols = np.tril_indices(shape[0])
            else:
                rows, cols = np.indices(shape).reshape(2, -1)
            self.take = np.ravel_multi_index((rows, cols), shape)
            self.indptr = self.indices = np.zeros(0, dtype=np.int64)
        else:
            # Positions in the CSR ``data``, which is in row-major order already.
            self.indptr = np.array(matrix.indptr, copy=True)
            self.indices = np.array(matrix.indices, copy=True)
            rows = np.repeat(np.arange(shape[0]), np.diff(self.indptr))
            cols = self.indices
            self.take = np.flatnonzero(rows >= cols) if lower else np.arange(cols.size)
            rows, cols = rows[self.take], cols[self.take]
        self.rows = np.asarray(rows, dtype=np.int64)
        self.cols = np.asarray(cols, dtype=np.int64)

    def values(self, matrix: Any, what: str) -> np.ndarray:
        """The entries IPOPT takes from ``matrix``, in the order of ``rows, cols``."""
        if self.dense:
            return np.array(np.reshape(matrix, -1)[self.take], dtype=np.float64)
        if not (
            np.array_equal(matrix.indptr, self.indptr)
            and np.array_equal(matrix.indices, self.indices)
        ):  # pragma: no cover - a sparse result's structure is fixed per signature
            msg = (
                f"The {what}'s sparse structure changed between evaluations, so its "
                f"values no longer match IPOPT's structure. Please report this as a "
                f"diffops bug."
            )
            raise RuntimeError(msg)
        return np.array(matrix.data[self.take], dtype=np.float64)
