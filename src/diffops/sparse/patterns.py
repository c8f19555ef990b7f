"""Sparsity patterns: the option, given patterns, detected structures, checks.

A pattern is a 0/1 ``scipy.sparse.csr_array`` of shape ``(n_out, n_in)`` (a Hessian:
``(n, n)``) with sorted, unique indices: every entry that can be non-zero. The
``sparsity=`` option is ``"detect"`` (read from the function, on backends that can)
or a given pattern, which is checked against the detected one where there is one,
so that a pattern that misses entries is an error, not a silently wrong matrix.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from diffops.backends.capabilities import Structure
from diffops.errors import SparsityError
from diffops.operators import HESSIAN_COLORINGS, SPARSE_OPTIONS, SPARSE_OUTPUTS

__all__ = ["SPARSE_OPS", "SparsityError", "Structure"]


SPARSE_OPS = SPARSE_OUTPUTS
"""The operators that take ``sparsity=``, and which of their outputs becomes sparse."""


def sparse() -> Any:
    """``scipy.sparse``, imported on first use, with the install hint if missing."""
    try:
        import scipy.sparse
    except ImportError as err:  # pragma: no cover - depends on environment
        msg = (
            "Sparse Jacobians and Hessians need SciPy: `pip install diffops[sparse]` "
            "(from the repository: `pip install -e .[sparse]`)."
        )
        raise SparsityError(msg) from err
    return scipy.sparse


def check_sparsity(op_name: str, sparsity: Any, coloring: Any = None) -> None:
    """Check the ``sparsity`` and ``coloring`` options when a function is built.

    Args:
        op_name: The operator.
        sparsity: ``None``, ``"detect"`` or a boolean pattern.
        coloring: ``None`` or one of :data:`~diffops.operators.HESSIAN_COLORINGS`
            (sparse Hessians only).

    Raises:
        SparsityError: For an operator without a Jacobian or Hessian, or a value that
            is none of these; for a ``coloring`` without a sparse Hessian, or not
            one of the colorings.
    """
    if coloring is not None:
        _check_coloring(op_name, sparsity, coloring)
    if sparsity is None:
        return
    if op_name not in SPARSE_OPS:
        msg = (
            f"{op_name} has no Jacobian or Hessian to make sparse; sparsity= is taken "
            f"by {tuple(SPARSE_OPS)}."
        )
        raise SparsityError(msg)
    if isinstance(sparsity, str):
        if sparsity != "detect":
            msg = (
                f"sparsity={sparsity!r} is not understood: pass 'detect' (structure "
                f"from the function, on jax and jax_nojit) or a boolean pattern array."
            )
            raise SparsityError(msg)
        return
    if not (hasattr(sparsity, "shape") or isinstance(sparsity, list | tuple)):
        msg = (
            f"sparsity must be None, 'detect' or a boolean pattern (a NumPy array or "
            f"scipy.sparse matrix), not {type(sparsity).__name__}."
        )
        raise SparsityError(msg)


def _check_coloring(op_name: str, sparsity: Any, coloring: Any) -> None:
    if "coloring" not in SPARSE_OPTIONS.get(op_name, ()):
        hessians = tuple(k for k, v in SPARSE_OPTIONS.items() if "coloring" in v)
        msg = f"{op_name} takes no coloring=: it is an option of {hessians}."
        raise SparsityError(msg)
    if sparsity is None:
        msg = (
            f"coloring={coloring!r} chooses how a sparse Hessian is computed: pass "
            f"sparsity='detect' (or a pattern) too."
        )
        raise SparsityError(msg)
    if not (isinstance(coloring, str) and coloring.lower() in HESSIAN_COLORINGS):
        msg = (
            f"coloring={coloring!r} is not one of {HESSIAN_COLORINGS}: 'star' reads "
            f"each entry from one Hessian-vector product, 'acyclic' needs fewer "
            f"products and recovers entries by substitution, 'auto' chooses."
        )
        raise SparsityError(msg)


def given_pattern(given: Any, n_out: int, n_in: int, what: str) -> Any:
    """A user's pattern as a 0/1 CSR array of shape ``(n_out, n_in)``.

    A NumPy array's non-zero elements are the structure, a SciPy sparse matrix's
    stored entries (an explicitly stored zero included, as SciPy counts ``nnz``).

    Raises:
        SparsityError: If it has another number of entries or shape.
    """
    if sparse().issparse(given):
        pattern = sparse().csr_array(given, dtype=np.int8)
    else:
        array = np.asarray(given)
        if array.size != n_out * n_in:
            msg = (
                f"The sparsity pattern has shape {array.shape}, but the {what} has "
                f"{n_out} x {n_in} entries: pass shape {(n_out, n_in)} (or the "
                f"{what}'s own shape)."
            )
            raise SparsityError(msg)
        pattern = sparse().csr_array(array.reshape(n_out, n_in) != 0, dtype=np.int8)
    if pattern.shape != (n_out, n_in):
        msg = (
            f"The sparsity pattern has shape {pattern.shape}, but the {what} has shape "
            f"{(n_out, n_in)} (flattened in C order)."
        )
        raise SparsityError(msg)
    return canonical(pattern)


def canonical(pattern: Any) -> Any:
    """A 0/1 CSR array with sorted, unique indices.

    Every stored entry of ``pattern`` (a stored zero too) becomes a stored one.
    """
    result = sparse().csr_array(pattern, dtype=np.int8, copy=True)
    result.sum_duplicates()
    result.data[:] = 1
    result.eliminate_zeros()
    result.sort_indices()
    result.prune()
    return result


def symmetric(pattern: Any) -> Any:
    """The pattern and its transpose together (Hessians are symmetric)."""
    return canonical(pattern + pattern.T)


def check_covers(given: Any, detected: Any, what: str) -> None:
    """Raise if a given pattern lacks entries of the detected structure.

    Raises:
        SparsityError: Naming how many entries are missing, with examples.
    """
    missing = sparse().csr_array(detected - detected.multiply(given))
    missing.eliminate_zeros()
    if missing.nnz:
        rows, cols = missing.nonzero()
        examples = ", ".join(
            f"({i}, {j})" for i, j in zip(rows[:5], cols[:5], strict=True)
        )
        msg = (
            f"The given sparsity pattern lacks {missing.nnz} entries that the "
            f"function's {what} can have (e.g. {examples}); with it, those entries "
            f"would silently be zero. Add them, or pass sparsity='detect'."
        )
        raise SparsityError(msg)


def restricted(
    pattern: Any, rows: np.ndarray | None = None, cols: np.ndarray | None = None
) -> Any:
    """The entries of ``pattern`` in the masked rows and columns (others dropped).

    Args:
        pattern: 0/1 CSR array.
        rows: Boolean mask of the rows kept (default all).
        cols: Boolean mask of the columns kept (default all).

    Returns:
        A 0/1 CSR array of the same shape without stored zeros.
    """
    row_of = np.repeat(np.arange(pattern.shape[0]), np.diff(pattern.indptr))
    keep = np.ones(pattern.nnz, dtype=bool)
    if rows is not None:
        keep &= rows[row_of]
    if cols is not None:
        keep &= cols[pattern.indices]
    return sparse().csr_array(
        (
            np.ones(int(keep.sum()), dtype=np.int8),
            (row_of[keep], pattern.indices[keep]),
        ),
        shape=pattern.shape,
    )


def rows_cols(pattern: Any) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of each stored entry, in CSR order."""
    rows = np.repeat(np.arange(pattern.shape[0]), np.diff(pattern.indptr))
    return rows, pattern.indices.astype(np.int64)
