"""Dependency sets: which input elements each element of an array can depend on.

A dependency set of an array with ``size`` elements is a 0/1 ``scipy.sparse``
CSR array of shape ``(size, n_in)``: row ``e`` (element ``e`` in C order) holds the
input elements it can depend on. ``None`` stands for "depends on nothing", which most
arrays of a tangent program's primal half are; every operation below treats it so
without allocating.

Sums of 0/1 matrices are computed in ``int32`` and turned back into 0/1, so that no
count can wrap around to zero (a lost dependency).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

Deps = Any  # scipy.sparse.csr_array of 0/1 (int8), shape (elements, inputs), or None


def sparse() -> Any:
    """``scipy.sparse``, imported on first use."""
    import scipy.sparse

    return scipy.sparse


def empty(size: int, n_in: int) -> Deps:
    """No dependencies for any of ``size`` elements."""
    return sparse().csr_array((size, n_in), dtype=np.int8)


def identity(n_in: int) -> Deps:
    """Element ``i`` depends on input ``i``: the seed of the analysis."""
    index = np.arange(n_in)
    return sparse().csr_array(
        (np.ones(n_in, dtype=np.int8), index, np.arange(n_in + 1)), shape=(n_in, n_in)
    )


def binary(matrix: Any) -> Deps:
    """``matrix`` with every stored non-zero set to one and zeros dropped."""
    result = sparse().csr_array(matrix, dtype=np.int8)
    result.data[:] = 1
    result.eliminate_zeros()
    return result


def union(parts: Sequence[Deps], size: int, n_in: int) -> Deps:
    """Elementwise union of dependency sets of ``size`` elements (or of one).

    A part with one row (a scalar operand) is broadcast to every element.
    """
    present = [p for p in parts if p is not None]
    if not present:
        return None
    total = None
    for p in present:
        if p.shape[0] != size:
            p = broadcast_row(p, size)
        term = sparse().csr_array(p, dtype=np.int32)
        total = term if total is None else total + term
    return binary(total)


def broadcast_row(deps: Deps, size: int) -> Deps:
    """Every one of ``size`` elements depends on what the one row of ``deps`` does."""
    if deps.shape[0] == size:
        return deps
    if deps.shape[0] != 1:
        msg = f"cannot broadcast dependencies of {deps.shape[0]} elements to {size}"
        raise ValueError(msg)
    row = deps.indices[deps.indptr[0] : deps.indptr[1]]
    indices = np.tile(row, size)
    indptr = np.arange(size + 1, dtype=np.int64) * row.size
    data = np.ones(indices.size, dtype=np.int8)
    return sparse().csr_array((data, indices, indptr), shape=(size, deps.shape[1]))


def stack(parts: Sequence[Deps], sizes: Sequence[int], n_in: int) -> Deps:
    """The dependency sets of several arrays, one after another (rows concatenated)."""
    if all(p is None for p in parts):
        return None
    given = [k for k, p in enumerate(parts) if p is not None]
    if len(given) == 1:
        return _padded(parts[given[0]], sum(sizes[: given[0]]), sum(sizes), n_in)
    blocks = [
        empty(s, n_in) if p is None else p for p, s in zip(parts, sizes, strict=True)
    ]
    return sparse().vstack(blocks, format="csr", dtype=np.int8)


def _padded(deps: Any, before: int, total: int, n_in: int) -> Deps:
    """``deps`` with empty rows around it (``before`` of them first), ``total`` rows.

    Only the row pointers are new: the indices are shared, not copied (a select
    between a constant and 126 million dependencies took 2.4 s to stack).
    """
    deps = sparse().csr_array(deps, dtype=np.int8)
    after = total - before - deps.shape[0]
    indptr = np.concatenate(
        [
            np.zeros(before, dtype=deps.indptr.dtype),
            deps.indptr,
            np.full(after, deps.indptr[-1], dtype=deps.indptr.dtype),
        ]
    )
    return sparse().csr_array((deps.data, deps.indices, indptr), shape=(total, n_in))


def take(deps: Deps, source: np.ndarray, n_in: int) -> Deps:
    """Rows ``source`` of ``deps``; a negative source gives an empty row.

    Args:
        deps: Dependency set of the stacked source elements, or ``None``.
        source: For each output element, its source element (``-1``: none).
        n_in: Number of inputs.

    Returns:
        The dependency set of the output elements.
    """
    source = np.asarray(source, dtype=np.int64).reshape(-1)
    if deps is None:
        return None
    missing = source < 0
    if missing.any():
        sizes = np.diff(deps.indptr)
        counts = np.where(missing, 0, sizes[np.where(missing, 0, source)])
        indptr = np.zeros(source.size + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        starts = deps.indptr[np.where(missing, 0, source)]
        # Positions of every gathered entry in ``deps.indices``.
        offsets = np.arange(indptr[-1]) - np.repeat(indptr[:-1], counts)
        positions = np.repeat(starts, counts) + offsets
        indices = deps.indices[positions]
        data = np.ones(indices.size, dtype=np.int8)
        return sparse().csr_array((data, indices, indptr), shape=(source.size, n_in))
    return sparse().csr_array(deps[source], dtype=np.int8)


def group(deps: Deps, groups: np.ndarray, n_groups: int, n_in: int) -> Deps:
    """Row ``g`` is the union of the rows ``e`` with ``groups[e] == g`` (``-1``: none).

    Args:
        deps: Dependency set of the source elements, or ``None``.
        groups: For each source element, its group (``-1``: in none).
        n_groups: Number of groups (output elements).
        n_in: Number of inputs.

    Returns:
        The dependency set of the groups.
    """
    if deps is None:
        return None
    groups = np.asarray(groups, dtype=np.int64).reshape(-1)
    keep = groups >= 0
    columns = np.flatnonzero(keep)
    gather = sparse().csr_array(
        (np.ones(columns.size, dtype=np.int32), (groups[keep], columns)),
        shape=(n_groups, groups.size),
    )
    return binary(gather @ sparse().csr_array(deps, dtype=np.int32))


def spread(deps: Deps, targets: np.ndarray, n_targets: int, n_in: int) -> Deps:
    """Like :func:`group`: target ``t`` gets the union of the sources sent to it."""
    return group(deps, targets, n_targets, n_in)


def everything(parts: Sequence[Deps], size: int, n_in: int) -> Deps:
    """Every one of ``size`` elements depends on everything any part depends on."""
    present = [p for p in parts if p is not None and p.nnz]
    if not present:
        return None
    seen = np.zeros(n_in, dtype=bool)
    for p in present:
        seen[p.indices] = True
    columns = np.flatnonzero(seen)
    indices = np.tile(columns, size)
    indptr = np.arange(size + 1, dtype=np.int64) * columns.size
    data = np.ones(indices.size, dtype=np.int8)
    return sparse().csr_array((data, indices, indptr), shape=(size, n_in))


def product(mask: Any, deps: Deps, n_in: int) -> Deps:
    """Row ``i`` is the union of the rows ``k`` of ``deps`` with ``mask[i, k] != 0``.

    Args:
        mask: Sparse or dense ``(n_out, n_src)`` structure.
        deps: Dependency set of the ``n_src`` source elements, or ``None``.
        n_in: Number of inputs.
    """
    if deps is None:
        return None
    mask = sparse().csr_array(mask, dtype=np.int32)
    return binary(mask @ sparse().csr_array(deps, dtype=np.int32))


def same(a: Deps, b: Deps) -> bool:
    """Whether two dependency sets are equal (``None`` equals an empty set)."""
    a_empty = a is None or not a.nnz
    b_empty = b is None or not b.nnz
    if a_empty or b_empty:
        return a_empty and b_empty
    if a.shape != b.shape or a.nnz != b.nnz:
        return False
    return not (binary(a) != binary(b)).nnz
