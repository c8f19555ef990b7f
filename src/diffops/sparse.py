"""Sparse Jacobians and Hessians: structure, coloring, colored products, SciPy results.

``jacobian_and_value(f, sparsity=...)``, ``mhp_jacobian_and_value(f, sparsity=...)``,
``hessian_grad_and_value(f, sparsity=...)`` and
``mtp_hessian_grad_and_value(f, sparsity=...)`` return the Jacobian or Hessian as a
``scipy.sparse.csr_array`` of shape ``(prod(F), prod(S))`` (indices flatten in C order)
holding the exact dense values at the structurally non-zero positions.

How, once per input shape (on the first call):

1. **Structure.** ``sparsity="detect"`` reads it from the function's traced program
   (:meth:`~diffops.backends.protocol.Backend.sparsity`; JAX only); otherwise the
   pattern is given (a boolean array, dense or ``scipy.sparse``). On JAX a given
   pattern is checked against the detected one, so a pattern that misses entries is
   an error, not a silently wrong matrix.
2. **Coloring.** Jacobian columns that never share a row can share one forward-mode
   product (JVP), rows that never share a column one reverse-mode product (VJP):
   greedy coloring of the column (or row) intersection graph with NetworkX, and the
   mode with fewer colors is used (``mode=`` forces one). Hessians use a star
   coloring of their adjacency graph (no path on four vertices in two colors), which
   lets each entry be read directly from one Hessian-vector product using symmetry:
   an arrow Hessian needs two products, not ``n``.
3. **Products.** One product per color, with the backend's ``jvp_and_value``,
   ``vjp_and_value`` or ``hvp_grad_and_value`` (``vmap`` over the seeds on JAX, where
   products and decompression are compiled together in one program).
4. **Decompression.** Each structural non-zero is one entry of one product; their
   indices are computed once, so decompression is one gather.

SciPy (and NetworkX for the coloring) are imported only when sparsity is used:
``pip install diffops[sparse]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from diffops.errors import DiffopsError
from diffops.operators import Operator

if TYPE_CHECKING:
    from diffops.backends.protocol import Backend

SPARSE_OPS = {
    "jacobian_and_value": "jacobian",
    "mhp_jacobian_and_value": "jacobian",
    "hessian_grad_and_value": "hessian",
    "mtp_hessian_grad_and_value": "hessian",
}
"""The operators that take ``sparsity=``, and which of their outputs becomes sparse."""


class SparsityError(DiffopsError, ValueError):
    """A sparsity option or pattern that cannot be used."""


class Structure(NamedTuple):
    """A detected structure: the pattern and the products that can compute it.

    Attributes:
        pattern: 0/1 CSR array ``(n_out, n_in)`` holding every entry that can be
            non-zero.
        modes: The product modes the function supports: ``"forward"`` (JVPs) and
            ``"reverse"`` (VJPs) for Jacobians, ``"symmetric"`` (HVPs) for Hessians.
    """

    pattern: Any
    modes: tuple[str, ...]


def _sparse() -> Any:
    try:
        import scipy.sparse
    except ImportError as err:  # pragma: no cover - depends on environment
        msg = (
            "Sparse Jacobians and Hessians need SciPy: `pip install diffops[sparse]` "
            "(from the repository: `pip install -e .[sparse]`)."
        )
        raise SparsityError(msg) from err
    return scipy.sparse


def check_sparsity(op_name: str, sparsity: Any) -> None:
    """Check the ``sparsity`` option when a derivative function is built.

    Args:
        op_name: The operator.
        sparsity: ``None``, ``"detect"`` or a boolean pattern.

    Raises:
        SparsityError: For an operator without a Jacobian or Hessian, or a value that
            is none of these.
    """
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
                f"from the function, on jax) or a boolean pattern array."
            )
            raise SparsityError(msg)
        return
    if not (hasattr(sparsity, "shape") or isinstance(sparsity, list | tuple)):
        msg = (
            f"sparsity must be None, 'detect' or a boolean pattern (a NumPy array or "
            f"scipy.sparse matrix), not {type(sparsity).__name__}."
        )
        raise SparsityError(msg)


# ---------------------------------------------------------------------------------
# Patterns


def _as_pattern(given: Any, n_out: int, n_in: int, what: str) -> Any:
    """A user's pattern as a 0/1 CSR array of shape ``(n_out, n_in)``."""
    sparse = _sparse()
    if sparse.issparse(given):
        pattern = sparse.csr_array(given, dtype=np.int8)
    else:
        array = np.asarray(given)
        if array.size != n_out * n_in:
            msg = (
                f"The sparsity pattern has shape {array.shape}, but the {what} has "
                f"{n_out} x {n_in} entries: pass shape {(n_out, n_in)} (or the "
                f"{what}'s own shape)."
            )
            raise SparsityError(msg)
        pattern = sparse.csr_array(array.reshape(n_out, n_in) != 0, dtype=np.int8)
    if pattern.shape != (n_out, n_in):
        msg = (
            f"The sparsity pattern has shape {pattern.shape}, but the {what} has shape "
            f"{(n_out, n_in)} (flattened in C order)."
        )
        raise SparsityError(msg)
    return _canonical(pattern)


def _canonical(pattern: Any) -> Any:
    """A 0/1 CSR array with sorted, unique indices and no stored zeros."""
    canonical = _sparse().csr_array(pattern, dtype=np.int8, copy=True)
    canonical.sum_duplicates()
    canonical.data[:] = 1
    canonical.eliminate_zeros()
    canonical.sort_indices()
    canonical.prune()
    return canonical


def _symmetric(pattern: Any) -> Any:
    return _canonical(pattern + pattern.T)


def _check_covers(given: Any, detected: Any, what: str) -> None:
    missing = _sparse().csr_array(detected - detected.multiply(given))
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


# ---------------------------------------------------------------------------------
# Colorings


def greedy_coloring(adjacency: Any) -> np.ndarray:
    """A distance-1 coloring of a graph, greedy in largest-first order (NetworkX).

    Args:
        adjacency: Symmetric sparse matrix; off-diagonal entries are edges.

    Returns:
        Color per vertex, ``0 .. n_colors - 1``.
    """
    import networkx as nx

    n = adjacency.shape[0]
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    rows, cols = _sparse().triu(adjacency, k=1).nonzero()
    graph.add_edges_from(zip(rows.tolist(), cols.tolist(), strict=True))
    coloring = nx.greedy_color(graph, strategy="largest_first")
    return np.array([coloring[v] for v in range(n)], dtype=np.int64)


def star_coloring(adjacency: Any) -> np.ndarray:
    """A star coloring: distance-1, and no path on four vertices in two colors.

    Greedy, vertices in order of decreasing degree: a vertex avoids its neighbours'
    colors, the colors of vertices two steps away through an uncolored neighbour,
    and the color of ``x`` on any path ``v - w - x - y`` whose ``w`` and ``y`` share
    a color (Gebremedhin, Manne and Pothen's first star-coloring algorithm).

    Args:
        adjacency: Symmetric sparse matrix; off-diagonal entries are edges.

    Returns:
        Color per vertex.
    """
    graph = _sparse().csr_array(adjacency, copy=True)
    graph.setdiag(0)
    graph.eliminate_zeros()
    n = graph.shape[0]
    neighbours = [
        graph.indices[graph.indptr[v] : graph.indptr[v + 1]] for v in range(n)
    ]
    color = np.full(n, -1, dtype=np.int64)
    order = np.argsort(-np.diff(graph.indptr), kind="stable")
    for v in order:
        forbidden = set()
        for w in neighbours[v]:
            cw = color[w]
            if cw >= 0:
                forbidden.add(cw)
            for x in neighbours[w]:
                if x == v or color[x] < 0:
                    continue
                if cw < 0 or any(color[y] == cw for y in neighbours[x] if y != w):
                    forbidden.add(color[x])
        c = 0
        while c in forbidden:
            c += 1
        color[v] = c
    return color


# ---------------------------------------------------------------------------------
# Plans: seeds and decompression indices for one input shape


@dataclass(frozen=True)
class Plan:
    """How one sparse Jacobian or Hessian is computed at one input shape.

    Attributes:
        kind: ``"jacobian"`` or ``"hessian"``.
        mode: ``"forward"`` (JVPs of colored columns), ``"reverse"`` (VJPs of
            colored rows) or ``"symmetric"`` (HVPs, star coloring).
        pattern: The structure, a 0/1 CSR array of shape ``(n_out, n_in)``.
        colors: Color per column (forward, symmetric) or row (reverse).
        seeds: One seed per color, stacked: shape ``(n_colors,) + S`` (or ``+ F``).
        index: For each structural non-zero in CSR order, its flat position in the
            stacked products.
    """

    kind: str
    mode: str
    pattern: Any
    colors: np.ndarray
    seeds: np.ndarray
    index: np.ndarray

    @property
    def n_colors(self) -> int:
        """Number of products per call."""
        return int(self.seeds.shape[0])

    def matrix(self, data: Any) -> Any:
        """The CSR result from the decompressed values."""
        return _sparse().csr_array(
            (data, self.pattern.indices, self.pattern.indptr), shape=self.pattern.shape
        )


def _seeds(colors: np.ndarray, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    n_colors = int(colors.max()) + 1 if colors.size else 0
    seeds = np.zeros((n_colors, colors.size), dtype=dtype)
    seeds[colors, np.arange(colors.size)] = 1
    return seeds.reshape((n_colors, *shape))


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
        mode: ``"forward"``, ``"reverse"`` or ``"auto"`` (fewer colors).

    Returns:
        The plan.
    """
    n_out, n_in = pattern.shape
    rows, cols = _rows_cols(pattern)
    mode = mode.lower()
    column_colors = row_colors = None
    if mode in ("forward", "auto"):
        column_colors = greedy_coloring(_sparse().csr_array(pattern.T @ pattern))
    if mode in ("reverse", "auto"):
        row_colors = greedy_coloring(_sparse().csr_array(pattern @ pattern.T))
    if row_colors is None or (
        column_colors is not None and _count(column_colors) <= _count(row_colors)
    ):
        assert column_colors is not None
        index = column_colors[cols] * n_out + rows
        seeds = _seeds(column_colors, x_shape, dtype)
        return Plan("jacobian", "forward", pattern, column_colors, seeds, index)
    index = row_colors[rows] * n_in + cols
    seeds = _seeds(row_colors, f_shape, dtype)
    return Plan("jacobian", "reverse", pattern, row_colors, seeds, index)


def hessian_plan(pattern: Any, x_shape: tuple[int, ...], dtype: Any) -> Plan:
    """Star coloring, seeds and decompression for a sparse (symmetric) Hessian.

    Entry ``(i, j)`` is read from the product with the seed of ``j``'s color at row
    ``i`` when no other column of that color has a non-zero in row ``i``; otherwise,
    by symmetry, from the product with ``i``'s color at row ``j`` (a star coloring
    guarantees one of the two).

    Args:
        pattern: Symmetric 0/1 CSR array ``(n, n)``.
        x_shape: ``S``.
        dtype: Dtype of the seeds.

    Returns:
        The plan.

    Raises:
        SparsityError: If no direct recovery exists for some entry (a coloring that
            is not a star coloring; a bug).
    """
    n = pattern.shape[0]
    colors = star_coloring(pattern)
    rows, cols = _rows_cols(pattern)
    n_colors = _count(colors)
    # How many columns of each color have a non-zero in each row.
    per_row = np.zeros((n, max(n_colors, 1)), dtype=np.int64)
    np.add.at(per_row, (rows, colors[cols]), 1)
    direct = per_row[rows, colors[cols]] == 1
    swapped = per_row[cols, colors[rows]] == 1
    if not np.all(direct | swapped):
        msg = (
            "The Hessian coloring does not allow direct recovery (not a star coloring)."
        )
        raise SparsityError(msg)
    index = np.where(direct, colors[cols] * n + rows, colors[rows] * n + cols).astype(
        np.int64
    )
    return Plan(
        "hessian", "symmetric", pattern, colors, _seeds(colors, x_shape, dtype), index
    )


def _rows_cols(pattern: Any) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of each stored entry, in CSR order."""
    rows = np.repeat(np.arange(pattern.shape[0]), np.diff(pattern.indptr))
    return rows, pattern.indices.astype(np.int64)


def _count(colors: np.ndarray) -> int:
    return int(colors.max()) + 1 if colors.size else 0


# ---------------------------------------------------------------------------------
# The per-call path


class SparseCaller:
    """The per-call function of a sparse operator: plans per input shape."""

    def __init__(
        self,
        backend: Backend,
        op: Operator,
        func: Callable[..., Any],
        options: dict[str, Any],
        sparsity: Any,
        as_numpy: bool,
    ):
        self.backend = backend
        self.op = op
        self.func = func
        self.options = options
        self.sparsity = sparsity
        self.as_numpy = as_numpy
        self.kind = SPARSE_OPS[op.name]
        self.position = op.outputs.index(self.kind)
        self.plans: dict[tuple[Any, ...], tuple[Plan, Callable[..., Any]]] = {}
        self.last: Plan | None = None

    def __call__(self, x: Any, *args: Any) -> tuple[Any, ...]:
        """Evaluate at ``x``: the operator's tuple with the sparse matrix in place."""
        from diffops.boundary import call_signature

        key = call_signature(x, args, self.backend.argument_signature)
        found = self.plans.get(key)
        if found is None:
            found = self.plans[key] = self._build(x, args)
        plan, call = found
        self.last = plan
        out: tuple[Any, ...] = call(x, *args)
        data = out[self.position]
        if not self.as_numpy:
            return out
        matrix = plan.matrix(np.asarray(data))
        return (*out[: self.position], matrix, *out[self.position + 1 :])

    def _build(self, x: Any, args: tuple[Any, ...]) -> tuple[Plan, Callable[..., Any]]:
        from diffops.boundary import make_caller

        backend = self.backend
        n_in = math.prod(np.shape(x))
        dtype = np.dtype(x.dtype)
        # The function's value first: its checks give the clearest errors.
        f_shape = backend.value_shape(self.op.name, self.func, x, args, self.options)
        n_out = math.prod(f_shape) if self.kind == "jacobian" else n_in
        detected = None
        modes: tuple[str, ...] = ("forward", "reverse")
        if isinstance(self.sparsity, str) or backend.can_detect_sparsity:
            found = backend.sparsity(self.kind, self.func, x, args, self.options)
            if isinstance(found, Structure):
                found, modes = found.pattern, found.modes
            detected = _canonical(found)
        if isinstance(self.sparsity, str):
            assert detected is not None
            pattern = detected
        else:
            pattern = _as_pattern(self.sparsity, n_out, n_in, self.kind)
            if detected is not None:
                _check_covers(pattern, detected, self.kind)
        if self.kind == "hessian":
            pattern = _symmetric(pattern)
            plan = hessian_plan(pattern, tuple(np.shape(x)), dtype)
        else:
            mode = str(self.options.get("mode", "auto")).lower()
            if mode == "auto" and "forward" not in modes:
                mode = "reverse"
            plan = jacobian_plan(pattern, tuple(np.shape(x)), f_shape, dtype, mode)
        program = backend.sparse_operator(self.op.name, self.func, self.options, plan)
        call = make_caller(
            backend,
            self.op,
            self.func,
            self.options,
            as_numpy=self.as_numpy,
            program=program,
        )
        return plan, call


def dense_positions(plan: Plan) -> np.ndarray:
    """Flat positions of the structural non-zeros in the dense matrix (CSR order)."""
    rows, cols = _rows_cols(plan.pattern)
    positions: np.ndarray = rows * plan.pattern.shape[1] + cols
    return positions


PRODUCT_OPS = {
    "forward": "jvp_and_value",
    "reverse": "vjp_and_value",
    "symmetric": "hvp_grad_and_value",
}
"""The operator whose closure gives a plan's products."""
