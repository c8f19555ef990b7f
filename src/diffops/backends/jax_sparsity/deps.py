"""Dependency sets: which input elements each element of an array can depend on.

A dependency set of an array with ``size`` elements is a 0/1 ``scipy.sparse``
CSR array of shape ``(size, n_in)``: row ``e`` (element ``e`` in C order) holds the
input elements it can depend on. ``None`` stands for "depends on nothing", which most
arrays of a tangent program's primal half are; every operation below treats it so
without allocating.

Sums of 0/1 matrices are computed in ``int32`` and turned back into 0/1, so that no
count can wrap around to zero (a lost dependency).

Moving elements (:func:`take`, :func:`broadcast_row`, :func:`stack`) copies no
dependencies: it gives :class:`Rows`, the rows of a set chosen by an index array,
which the next union copies out (:func:`csr`) and reductions and products read
through (:func:`group`, :func:`product`). A row of 500 dependencies broadcast to
502 x 502 elements, masked and summed (INTEQNELS' Hessian) never makes the 126
million entries that copying each step made.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

Deps = Any  # csr_array of 0/1 (int8), shape (elements, inputs), a Rows, or None


class Rows:
    """Rows ``rows`` of the dependency set ``base``, not copied (``-1``: an empty row).

    Has the ``shape`` and ``nnz`` of the set it stands for; :func:`csr` makes it.
    """

    __slots__ = ("_nnz", "base", "rows")

    def __init__(self, base: Any, rows: np.ndarray) -> None:
        self.base = base
        self.rows = rows
        self._nnz: int | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """``(elements, inputs)``."""
        return (self.rows.size, self.base.shape[1])

    @property
    def nnz(self) -> int:
        """Number of dependencies over all rows."""
        if self._nnz is None:
            sizes = np.append(np.diff(self.base.indptr), 0)
            self._nnz = int(sizes[self.rows].sum())
        return self._nnz


def _parts(deps: Deps) -> tuple[Any, np.ndarray]:
    """``(base, rows)`` of ``deps`` (a CSR set is its own base, rows in order)."""
    if isinstance(deps, Rows):
        return deps.base, deps.rows
    return deps, np.arange(deps.shape[0], dtype=np.int64)


def _lean(deps: Deps) -> Deps:
    """``deps``, copied out if it is a :class:`Rows` of fewer entries than its base.

    Stacking or multiplying a few rows of a large set through the set would copy or
    convert all of it; copying the rows out costs less.
    """
    if isinstance(deps, Rows) and deps.base.nnz > deps.nnz:
        return csr(deps)
    return deps


def _row(deps: Deps) -> np.ndarray:
    """The inputs the one element of a one-element set depends on."""
    base, rows = _parts(deps)
    indices: np.ndarray = base.indices
    if rows[0] < 0:
        return indices[:0]
    return indices[base.indptr[rows[0]] : base.indptr[rows[0] + 1]]


def csr(deps: Deps) -> Any:
    """``deps`` as a CSR array (a :class:`Rows` copied out)."""
    if not isinstance(deps, Rows):
        return deps
    base, rows = deps.base, deps.rows
    if (rows < 0).any():
        # Row -1 reads an empty row appended to the base (only row pointers new).
        indptr = np.append(base.indptr, base.indptr[-1])
        shape = (base.shape[0] + 1, base.shape[1])
        base = sparse().csr_array((base.data, base.indices, indptr), shape=shape)
    return sparse().csr_array(base[rows], dtype=np.int8)


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
    result = sparse().csr_array(csr(matrix), dtype=np.int8)
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
    if len(present) == 1 and present[0].shape[0] == size:
        return present[0]  # sets are never written: shared, not copied
    if size == 1 and all(p.shape[0] == 1 for p in present):
        # Scalars (unrolled programs: HS105 has 52,000 unions): 48 -> 16 µs each.
        columns = np.unique(np.concatenate([_row(p) for p in present]))
        indptr = np.array([0, columns.size], dtype=np.int64)
        data = np.ones(columns.size, dtype=np.int8)
        return sparse().csr_array((data, columns, indptr), shape=(1, n_in))
    total = None
    for p in present:
        if p.shape[0] != size:
            p = broadcast_row(p, size)
        term = sparse().csr_array(csr(p), dtype=np.int32)
        total = term if total is None else total + term
    return binary(total)


def broadcast_row(deps: Deps, size: int) -> Deps:
    """Every one of ``size`` elements depends on what the one row of ``deps`` does."""
    if deps.shape[0] == size:
        return deps
    if deps.shape[0] != 1:
        msg = f"cannot broadcast dependencies of {deps.shape[0]} elements to {size}"
        raise ValueError(msg)
    return take(deps, np.zeros(size, dtype=np.int64), deps.shape[1])


def stack(parts: Sequence[Deps], sizes: Sequence[int], n_in: int) -> Deps:
    """The dependency sets of several arrays, one after another (rows concatenated).

    Nothing is copied: the result is :class:`Rows` of the parts' bases (stacked
    when there are several), a ``None`` part's rows empty.
    """
    if all(p is None for p in parts):
        return None
    bases: dict[int, tuple[int, Any]] = {}  # id -> (first row in the stack, base)
    offset = 0
    maps = []
    for p, size in zip(parts, sizes, strict=True):
        if p is None:
            maps.append(np.full(size, -1, dtype=np.int64))
            continue
        base, rows = _parts(_lean(p))
        if id(base) not in bases:
            bases[id(base)] = (offset, base)
            offset += base.shape[0]
        maps.append(np.where(rows < 0, -1, rows + bases[id(base)][0]))
    blocks = [base for _, base in bases.values()]
    if len(blocks) == 1:
        (base,) = blocks
    else:
        base = sparse().vstack(blocks, format="csr", dtype=np.int8)
    return Rows(base, np.concatenate(maps))


def take(deps: Deps, source: np.ndarray, n_in: int) -> Deps:
    """Rows ``source`` of ``deps``; a negative source gives an empty row.

    Args:
        deps: Dependency set of the stacked source elements, or ``None``.
        source: For each output element, its source element (``-1``: none).
        n_in: Number of inputs.

    Returns:
        The dependency set of the output elements (:class:`Rows`: not copied).
    """
    source = np.asarray(source, dtype=np.int64).reshape(-1)
    if deps is None:
        return None
    base, rows = _parts(deps)
    return Rows(base, np.where(source < 0, -1, rows[source]))


def _through(mask: Any, deps: Deps) -> tuple[Any, Any]:
    """``(mask', base)`` with ``mask @ deps == mask' @ base`` (``mask`` int32 CSR)."""
    deps = _lean(deps)
    if not isinstance(deps, Rows):
        return mask, sparse().csr_array(deps, dtype=np.int32)
    coo = mask.tocoo()
    target = deps.rows[coo.col]
    keep = target >= 0
    moved = sparse().csr_array(
        (coo.data[keep], (coo.row[keep], target[keep])),
        shape=(mask.shape[0], deps.base.shape[0]),
    )
    return moved, sparse().csr_array(deps.base, dtype=np.int32)


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
    return product(gather, deps, n_in)


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
        if isinstance(p, Rows):
            p = csr(Rows(p.base, np.unique(p.rows[p.rows >= 0])))
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
    moved, base = _through(sparse().csr_array(mask, dtype=np.int32), deps)
    return binary(moved @ base)


def same(a: Deps, b: Deps) -> bool:
    """Whether two dependency sets are equal (``None`` equals an empty set)."""
    a_empty = a is None or not a.nnz
    b_empty = b is None or not b.nnz
    if a_empty or b_empty:
        return a_empty and b_empty
    if a.shape != b.shape or a.nnz != b.nnz:
        return False
    return not (binary(a) != binary(b)).nnz
