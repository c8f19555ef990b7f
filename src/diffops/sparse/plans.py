"""Plans: how a sparse Jacobian or Hessian is computed at one input shape.

A plan says which products to compute (seeds for Jacobian-vector products, for
vector-Jacobian products, or for Hessian-vector products) and where each structural
non-zero is read from them (one gather). It is chosen once per input shape:

- **forward**: one JVP per color of a column coloring;
- **reverse**: one VJP per color of a row coloring;
- **bidirectional**: the densest rows by VJPs and every other entry by JVPs of a
  column coloring that ignores those rows (or the mirror image, densest columns by
  JVPs); arrow-shaped Jacobians need a few products instead of ``n``;
- **symmetric**: one HVP per color of a star coloring (Hessians), each entry read
  directly;
- **substitution**: one HVP per color of an acyclic coloring (Hessians; fewer
  colors), the entries recovered by substitution along two-colored trees
  (:mod:`diffops.sparse.substitution`);
- **dense**: the dense derivative, read at the pattern's positions, when the
  pattern is dense or nearly so, or when the coloring would need as many products as
  the dense derivative: a sparse call is then never
  slower than a dense one by more than the gather.

``Plan.reason`` says why the mode was chosen; ``DerivativeFunction.coloring`` shows it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from diffops.operators import HESSIAN_COLORINGS
from diffops.sparse import coloring, kernels
from diffops.sparse.jacobian_colorings import (
    Split,
    bidirectional_splits,
    forward_split,
    reverse_split,
)
from diffops.sparse.patterns import SparsityError, rows_cols, sparse
from diffops.sparse.substitution import Substitution, recovery

DENSE_FRACTION = 0.5
"""Patterns with more than this fraction of entries structurally non-zero, and too
large to color cheaply (:data:`DENSE_COLORING_WORK`), take the dense path without
coloring."""
DENSE_COLORING_WORK = 1_000_000
"""A pattern denser than :data:`DENSE_FRACTION` is still colored when the sums of its
squared row and column counts (the greedy colorings' steps, roughly) are at most
this: a small pattern that is half full can still save products (CUTEst's BT11
Lagrangian, 13 of 25 entries: 3 colors, not 5), and coloring it costs a few
milliseconds at most (as Python, the kernels' cold path, up to a million steps)."""
SUBSTITUTION_SAVES = 3
"""``coloring="auto"`` takes the acyclic coloring (recovery by substitution) when it
saves at least this many of the star coloring's products. Measured per call with
jitted JAX (``benchmarks/substitution.py``, table in docs/operators.md): saving 3 or
more was faster in every run (a band of half-width 3, 7 -> 4 colors: 0.78x at
n = 2000, 0.47x at 20000; a random graph 16 -> 7: 0.62x to 0.70x; BDQRTIC 8 -> 5:
0.82x to 0.98x); saving 1 or 2 was slower in 13 of 16 measurements (tridiagonal
3 -> 2: 1.04x to 1.14x; 2-D grids 5 -> 4: 1.00x to 1.24x), since the products are
vectorised over the seeds (two cost more than two thirds of three) and the
substitution adds a few ns per entry."""


@dataclass(frozen=True)
class Plan:
    """How one sparse Jacobian or Hessian is computed at one input shape.

    Attributes:
        kind: ``"jacobian"`` or ``"hessian"``.
        mode: ``"forward"``, ``"reverse"``, ``"bidirectional"``, ``"symmetric"``,
            ``"substitution"`` or ``"dense"``.
        pattern: The structure, a 0/1 CSR array of shape ``(n_out, n_in)``.
        forward_seeds: Seeds of the JVPs (HVPs for ``symmetric``), stacked:
            shape ``(k_forward,) + S``.
        reverse_seeds: Seeds of the VJPs, stacked: shape ``(k_reverse,) + F``.
        index: For each structural non-zero in CSR order, its flat position in the
            forward products (shape ``(k_forward, n_out)``) followed by the reverse
            products (``(k_reverse, n_in)``); for ``dense``, in the dense matrix;
            for ``substitution``, :attr:`Substitution.index` (longer).
        reason: Why this mode.
        substitution: For ``substitution``, the recovery after the gather.
        gather_after: Whether the program returns the raveled products (for
            ``dense``, the dense matrix) and :meth:`finish` runs after it, in NumPy;
            otherwise the program returns the values. Set by the caller for results
            that leave as NumPy arrays from a substitution plan (substitution with
            Numba is cheaper than prefix sums in the program), or from a backend
            that does not gather inside its programs
            (:attr:`~diffops.backends.capabilities.SparseDerivatives.gathers_in_program`).
    """

    kind: str
    mode: str
    pattern: Any
    forward_seeds: np.ndarray
    reverse_seeds: np.ndarray
    index: np.ndarray
    reason: str
    substitution: Substitution | None = None
    gather_after: bool = False

    @property
    def n_colors(self) -> int:
        """Products per call (for ``dense``, those of the dense derivative)."""
        if self.mode == "dense":
            n_out, n_in = self.pattern.shape
            return int(n_in if self.kind == "hessian" else min(n_in, n_out))
        return int(self.forward_seeds.shape[0] + self.reverse_seeds.shape[0])

    def finish(self, products: np.ndarray) -> np.ndarray:
        """The non-zero values (CSR order) from the raveled products.

        For ``dense``, from the raveled matrix; for ``substitution``, gathered and
        substituted.
        """
        if self.substitution is not None:
            return self.substitution.finish(products)
        if self.full:
            return products.reshape(-1)
        return np.take(products, self.index)

    @functools.cached_property
    def full(self) -> bool:
        """Whether this is a dense plan with every entry structural.

        Its matrix raveled is already the values in CSR order (no gather).
        """
        n_out, n_in = self.pattern.shape
        return self.mode == "dense" and self.pattern.nnz == n_out * n_in

    def matrix(self, data: Any) -> Any:
        """The CSR result from the non-zero values (in CSR order).

        With index arrays of its own: SciPy's in-place methods (``eliminate_zeros``,
        ``sort_indices``, ...) change them, and the plan's pattern must stay as it
        is for the next call. Read-only values (a compiled program's buffer) are
        copied, so that those methods work on the result.
        """
        if not data.flags.writeable:
            data = data.copy()
        template = self._template
        if template is None:
            pattern = self.pattern
            return sparse().csr_array(
                (data, pattern.indices.copy(), pattern.indptr.copy()),
                shape=pattern.shape,
            )
        return csr_like(template, data)

    @functools.cached_property
    def _template(self) -> Any:
        """A CSR array of the pattern, checked once by SciPy's constructor.

        A shallow copy given its own data and index arrays is a result (4 µs, where
        the constructor checks the arrays again: 21 µs for 10,000 entries, n = 5000).
        It carries SciPy's flags, found once here (sorted, no duplicates), so that
        ``spsolve`` and the like do not check every result again (14 µs per call).

        ``None`` if SciPy keeps the arrays other than as instance attributes.
        """
        pattern = self.pattern
        template = sparse().csr_array(
            (pattern.data, pattern.indices, pattern.indptr), shape=pattern.shape
        )
        template.has_canonical_format  # noqa: B018 (checked once, kept as a flag)
        if not {"data", "indices", "indptr"} <= vars(template).keys():
            return None
        return template

    def dense_positions(self) -> np.ndarray:
        """Flat positions of the structural non-zeros in the dense matrix (CSR)."""
        rows, cols = rows_cols(self.pattern)
        positions: np.ndarray = rows * self.pattern.shape[1] + cols
        return positions

    def describe(self) -> dict[str, Any]:
        """``{"mode", "colors", "nnz", "shape", "reason"}`` for reports."""
        return {
            "mode": self.mode,
            "colors": self.n_colors,
            "nnz": int(self.pattern.nnz),
            "shape": tuple(self.pattern.shape),
            "reason": self.reason,
        }


def csr_like(template: Any, data: np.ndarray) -> Any:
    """A CSR array of ``template``'s structure holding ``data``, own index arrays.

    A shallow copy of the template (checked once by SciPy's constructor), without
    ``copy.copy``'s reduce protocol (0.4 µs, not 1.8), given ``data`` and copies of
    the index arrays.

    Args:
        template: A ``csr_array`` whose arrays are instance attributes.
        data: The non-zero values in CSR order, shape ``(template.nnz,)``.

    Returns:
        The new CSR array.
    """
    result = object.__new__(type(template))
    result.__dict__.update(vars(template))
    result.data = data
    result.indices = template.indices.copy()
    result.indptr = template.indptr.copy()
    return result


def _seeds(colors: np.ndarray, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """One seed per color: the sum of its unit vectors (``-1``: in no seed)."""
    n_colors = coloring.count(colors)
    seeds = np.zeros((n_colors, colors.size), dtype=dtype)
    colored = np.flatnonzero(colors >= 0)
    seeds[colors[colored], colored] = 1
    return seeds.reshape((n_colors, *shape))


def _no_seeds(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    return np.zeros((0, *shape), dtype=dtype)


def dense_plan(
    kind: str,
    pattern: Any,
    x_shape: tuple[int, ...],
    f_shape: tuple[int, ...],
    dtype: Any,
    reason: str,
) -> Plan:
    """The dense derivative, read at the pattern's positions."""
    rows, cols = rows_cols(pattern)
    index = rows * pattern.shape[1] + cols
    return Plan(
        kind,
        "dense",
        pattern,
        _no_seeds(x_shape, dtype),
        _no_seeds(f_shape, dtype),
        index.astype(np.int64),
        reason,
    )


def _density(pattern: Any) -> float:
    size = pattern.shape[0] * pattern.shape[1]
    return pattern.nnz / size if size else 0.0


def _too_dense_to_color(pattern: Any) -> str | None:
    """Why ``pattern`` takes the dense path without coloring, or ``None``."""
    if not pattern.nnz or _density(pattern) <= DENSE_FRACTION:
        return None
    row_counts = np.diff(pattern.indptr).astype(np.int64)
    col_counts = np.bincount(pattern.indices, minlength=pattern.shape[1])
    work = int(row_counts @ row_counts) + int(col_counts @ col_counts)
    if work <= DENSE_COLORING_WORK:
        return None
    return f"{_density(pattern):.0%} of the entries can be non-zero"


def jacobian_plan(
    pattern: Any,
    x_shape: tuple[int, ...],
    f_shape: tuple[int, ...],
    dtype: Any,
    mode: str = "auto",
) -> Plan:
    """Coloring, seeds and decompression for a sparse Jacobian.

    Args:
        pattern: 0/1 CSR array ``(prod(F), prod(S))``.
        x_shape: ``S``.
        f_shape: ``F``.
        dtype: Dtype of the seeds.
        mode: ``"forward"``, ``"reverse"`` or ``"auto"`` (fewest products among
            forward, reverse, bidirectional and dense).

    Returns:
        The plan.
    """
    n_out, n_in = pattern.shape
    mode = mode.lower()
    limit = min(n_in, n_out)
    reason = _too_dense_to_color(pattern) if mode == "auto" else None
    if reason is not None:
        return dense_plan("jacobian", pattern, x_shape, f_shape, dtype, reason)
    candidates: list[tuple[str, Split]] = []
    if mode in ("forward", "auto"):
        candidates.append(("forward", forward_split(pattern)))
    if mode in ("reverse", "auto"):
        candidates.append(("reverse", reverse_split(pattern)))
    if mode == "auto":
        fewest = min(split.products for _, split in candidates)
        bidirectional = bidirectional_splits(pattern, best=fewest)
        candidates += [("bidirectional", split) for split in bidirectional]
    if not candidates:
        msg = f"Jacobian mode {mode!r} is not 'auto', 'forward' or 'reverse'."
        raise SparsityError(msg)
    name, best = min(candidates, key=lambda c: c[1].products)
    if mode == "auto" and pattern.nnz and best.products >= limit:
        reason = (
            f"the best coloring needs {best.products} products, the dense Jacobian "
            f"{limit}"
        )
        return dense_plan("jacobian", pattern, x_shape, f_shape, dtype, reason)
    rows, cols = rows_cols(pattern)
    k_forward = coloring.count(best.col_colors)
    index = np.where(
        best.by_vjp(rows, cols),
        k_forward * n_out + best.row_colors[rows] * n_in + cols,
        best.col_colors[cols] * n_out + rows,
    ).astype(np.int64)
    forward_seeds = _seeds(best.col_colors, x_shape, dtype)
    reverse_seeds = _seeds(best.row_colors, f_shape, dtype)
    reason = (
        f"{best.products} products ({k_forward} JVPs, "
        f"{coloring.count(best.row_colors)} VJPs) instead of {limit}"
    )
    return Plan("jacobian", name, pattern, forward_seeds, reverse_seeds, index, reason)


def hessian_plan(
    pattern: Any,
    x_shape: tuple[int, ...],
    dtype: Any,
    coloring: str = "auto",
    in_program: bool = False,
) -> Plan:
    """Coloring, seeds and decompression for a sparse (symmetric) Hessian.

    ``coloring="star"``: a star coloring, each entry read directly from one product
    (mode ``"symmetric"``). ``"acyclic"``: an acyclic coloring, fewer colors (a band
    of half-width ``b``: ``b + 1`` instead of ``2b + 1``), the entries recovered by
    substitution (mode ``"substitution"``, :mod:`diffops.sparse.substitution`).
    ``"auto"``: acyclic when it saves at least :data:`SUBSTITUTION_SAVES` products
    and the substitution runs after the program, in NumPy with Numba (where that
    was measured faster per call); star otherwise. Either way the dense Hessian
    when the pattern is nearly dense and large (:func:`_too_dense_to_color`) or
    the coloring needs ``n`` products.

    Args:
        pattern: Symmetric 0/1 CSR array ``(n, n)``.
        x_shape: ``S``.
        dtype: Dtype of the seeds.
        coloring: ``"auto"``, ``"star"`` or ``"acyclic"``.
        in_program: Whether the framework's program must return the finished
            entries (operators returning a closure, framework arrays out).

    Returns:
        The plan.

    Raises:
        SparsityError: For another ``coloring``, or if a coloring does not allow
            its recovery (a bug).
    """
    if coloring not in HESSIAN_COLORINGS:
        msg = f"Hessian coloring {coloring!r} is not one of {HESSIAN_COLORINGS}."
        raise SparsityError(msg)
    n = pattern.shape[0]
    reason = _too_dense_to_color(pattern)
    if reason is not None:
        return dense_plan("hessian", pattern, x_shape, x_shape, dtype, reason)
    star = acyclic = None
    if coloring != "acyclic":
        star = _star_plan(pattern, x_shape, dtype)
    if coloring == "acyclic":
        acyclic = _substitution_plan(pattern, x_shape, dtype)
    elif coloring == "auto" and _substitution_pays(in_program):
        assert star is not None
        acyclic, star = _saving_substitution_plan(pattern, x_shape, dtype, star)
    chosen = star if acyclic is None else acyclic
    assert chosen is not None
    if pattern.nnz and chosen.n_colors >= n:
        reason = (
            f"the {'star' if chosen is star else 'acyclic'} coloring needs "
            f"{chosen.n_colors} products, the dense Hessian {n}"
        )
        return dense_plan("hessian", pattern, x_shape, x_shape, dtype, reason)
    return chosen


def _substitution_pays(in_program: bool) -> bool:
    """Whether substitution can be cheap enough for ``"auto"`` to consider it."""
    return not in_program and kernels.has_numba()


def _saving_substitution_plan(
    pattern: Any, x_shape: tuple[int, ...], dtype: Any, star: Plan
) -> tuple[Plan | None, Plan]:
    """The acyclic plan if it saves :data:`SUBSTITUTION_SAVES` of ``star``'s products.

    The acyclic colorings stop once they need too many colors to save that many
    (BROYDN7D, n = 5000: 7 star colors, the greedy acyclic ones 5, no use).

    Returns:
        ``(acyclic plan or None, star plan)``, each one's reason naming the other.
    """
    most = star.n_colors - SUBSTITUTION_SAVES
    acyclic = _substitution_plan(pattern, x_shape, dtype, most) if most > 0 else None
    if acyclic is None:
        note = (
            f"no acyclic coloring of at most {most} colors found"
            if most > 0
            else f"an acyclic coloring cannot save {SUBSTITUTION_SAVES} products"
        )
        return None, replace(star, reason=f"{star.reason}; {note}")
    reason = f"{acyclic.reason}; the star coloring needs {star.n_colors}"
    return replace(acyclic, reason=reason), star


def _star_plan(pattern: Any, x_shape: tuple[int, ...], dtype: Any) -> Plan:
    """Star coloring and direct recovery.

    Entry ``(i, j)`` is read from the product with the seed of ``j``'s color at row
    ``i`` when no other column of that color has a non-zero in row ``i``; otherwise,
    by symmetry, from the product with ``i``'s color at row ``j`` (a star coloring
    guarantees one of the two).
    """
    n = pattern.shape[0]
    colors = coloring.star_coloring(pattern) if pattern.nnz else np.full(n, -1)
    n_colors = coloring.count(colors)
    rows, cols = rows_cols(pattern)
    # How many columns of each color have a non-zero in each row.
    keys = rows * max(n_colors, 1) + colors[cols]
    swapped_keys = cols * max(n_colors, 1) + colors[rows]
    count = _counts(keys, n * max(n_colors, 1))
    direct = count(keys) == 1
    swapped = count(swapped_keys) == 1
    if not np.all(direct | swapped):
        msg = (
            "The Hessian coloring does not allow direct recovery (not a star coloring)."
        )
        raise SparsityError(msg)
    index = np.where(direct, colors[cols] * n + rows, colors[rows] * n + cols).astype(
        np.int64
    )
    reason = f"{n_colors} Hessian-vector products (star coloring) instead of {n}"
    return Plan(
        "hessian",
        "symmetric",
        pattern,
        _seeds(colors, x_shape, dtype),
        _no_seeds(x_shape, dtype),
        index,
        reason,
    )


def _counts(keys: np.ndarray, size: int) -> Callable[[np.ndarray], np.ndarray]:
    """How often each key asked occurs in ``keys`` (all in ``[0, size)``).

    A bincount where its table is not much larger than ``keys`` (a tenth of the
    time of sorting them, 12.5 million entries), else a sort.
    """
    if size <= 4 * keys.size + 1024 or not keys.size:
        table = np.bincount(keys, minlength=size)
        return lambda asked: table[asked]
    unique, counts = np.unique(keys, return_counts=True)

    def lookup(asked: np.ndarray) -> np.ndarray:
        where = np.minimum(np.searchsorted(unique, asked), unique.size - 1)
        return np.where(unique[where] == asked, counts[where], 0)

    return lookup


def _substitution_plan(
    pattern: Any, x_shape: tuple[int, ...], dtype: Any, most: int | None = None
) -> Plan | None:
    """Acyclic coloring and recovery by substitution (``None``: > ``most`` colors)."""
    n = pattern.shape[0]
    colors = coloring.acyclic_coloring_within(pattern, n if most is None else most)
    if colors is None:
        return None
    n_colors = coloring.count(colors)
    index, steps = recovery(pattern, colors)
    reason = (
        f"{n_colors} Hessian-vector products (acyclic coloring, "
        f"{int(np.sum(steps.positions[0] >= 0))} entries by substitution) "
        f"instead of {n}"
    )
    return Plan(
        "hessian",
        "substitution",
        pattern,
        _seeds(colors, x_shape, dtype),
        _no_seeds(x_shape, dtype),
        index,
        reason,
        steps,
    )
