"""Gathers and scatters with constant indices, as XLA defines them, in NumPy.

:func:`gather_sources` gives, for each element a gather reads, the operand element
it comes from; a scatter moves update elements to where its transposed gather
reads from (:func:`scatter_targets`). Both also evaluate the primitives on
constants (:func:`gather`, :func:`scatter`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from diffops.codegen.runtime import combine_at

Emulation = Callable[[Sequence[np.ndarray], dict[str, Any]], list[np.ndarray]]


class NotEmulated(Exception):
    """The primitive (or this use of it) has no NumPy emulation."""


def gather_sources(
    operand_shape: tuple[int, ...],
    indices: np.ndarray,
    dnums: Any,
    slice_sizes: Sequence[int],
    mode: Any,
) -> np.ndarray:
    """For each element of a gather's result, the flat operand element it reads.

    Follows XLA's gather semantics (the index vector is the last axis of
    ``indices``, as JAX always lays it out). Out-of-bounds windows are clamped
    (``clip``, ``promise_in_bounds``) or marked ``-1`` (``fill``).

    Args:
        operand_shape: Shape of the gathered array.
        indices: The start indices (a constant).
        dnums: ``GatherDimensionNumbers``.
        slice_sizes: Window size per operand dimension.
        mode: ``GatherScatterMode``.

    Returns:
        Integer array of the result's shape: flat operand index, or -1.
    """
    indices = np.asarray(indices, dtype=np.int64)
    offset_dims = tuple(dnums.offset_dims)
    collapsed = tuple(dnums.collapsed_slice_dims)
    start_map = tuple(dnums.start_index_map)
    operand_batching = tuple(getattr(dnums, "operand_batching_dims", ()))
    indices_batching = tuple(getattr(dnums, "start_indices_batching_dims", ()))
    rank = len(operand_shape)
    batch_shape = indices.shape[:-1]
    window_dims = [d for d in range(rank) if d not in collapsed + operand_batching]
    out_rank = len(batch_shape) + len(offset_dims)
    out_shape = [0] * out_rank
    batch_positions = [d for d in range(out_rank) if d not in offset_dims]
    for position, size in zip(batch_positions, batch_shape, strict=True):
        out_shape[position] = size
    for position, d in zip(offset_dims, window_dims, strict=True):
        out_shape[position] = slice_sizes[d]
    grid = np.indices(out_shape, dtype=np.int64) if out_rank else np.zeros((0,))
    batch = tuple(grid[q] for q in batch_positions)
    vectors = indices[(*batch, slice(None))] if batch else indices
    vectors = np.broadcast_to(vectors, (*out_shape, indices.shape[-1]))
    starts = [np.zeros(out_shape, dtype=np.int64) for _ in range(rank)]
    for k, d in enumerate(start_map):
        starts[d] = vectors[..., k].astype(np.int64)
    for d, q in zip(operand_batching, indices_batching, strict=True):
        starts[d] = np.broadcast_to(batch[q], out_shape).astype(np.int64)
    name = str(getattr(mode, "name", mode)).lower()
    valid = np.ones(out_shape, dtype=bool)
    for d in range(rank):
        limit = operand_shape[d] - slice_sizes[d]
        if "fill" in name:
            valid &= (starts[d] >= 0) & (starts[d] <= limit)
        else:
            starts[d] = np.clip(starts[d], 0, max(limit, 0))
    coords = list(starts)
    for position, d in zip(offset_dims, window_dims, strict=True):
        coords[d] = coords[d] + grid[position]
    if not out_rank:
        coords = [np.asarray(c).reshape(()) for c in coords]
    if math.prod(operand_shape) == 0:
        return np.full(out_shape, -1, dtype=np.int64)
    flat = np.ravel_multi_index(
        tuple(np.where(valid, c, 0) for c in coords), operand_shape
    )
    return np.where(valid, flat, -1).astype(np.int64)


def scatter_targets(
    operand_shape: tuple[int, ...],
    indices: np.ndarray,
    update_shape: tuple[int, ...],
    dnums: Any,
    mode: Any,
) -> np.ndarray:
    """For each element of a scatter's updates, the flat operand element it lands in.

    A scatter moves update elements to the positions from which the gather with the
    corresponding dimension numbers (the scatter's transpose) reads, so this is that
    gather's map. Updates whose window is out of bounds are dropped (``-1``) unless
    the mode clamps them.

    Raises:
        NotEmulated: For out-of-bounds updates under ``promise_in_bounds``, whose
            fate XLA leaves open.
    """
    window = tuple(dnums.update_window_dims)
    inserted = tuple(dnums.inserted_window_dims)
    operand_batching = tuple(getattr(dnums, "operand_batching_dims", ()))
    indices_batching = tuple(getattr(dnums, "scatter_indices_batching_dims", ()))
    rank = len(operand_shape)
    window_operand_dims = [
        d for d in range(rank) if d not in inserted + operand_batching
    ]
    sizes = [1] * rank
    for d, u in zip(window_operand_dims, window, strict=True):
        sizes[d] = update_shape[u]

    class _Numbers:
        offset_dims = window
        collapsed_slice_dims = inserted
        start_index_map = tuple(dnums.scatter_dims_to_operand_dims)
        start_indices_batching_dims = indices_batching

    _Numbers.operand_batching_dims = operand_batching  # type: ignore[attr-defined]
    name = str(getattr(mode, "name", mode)).lower()
    clamp = "clip" in name
    targets = gather_sources(
        operand_shape, indices, _Numbers, sizes, "clip" if clamp else "fill"
    )
    if "promise" in name and (targets < 0).any():
        raise NotEmulated
    if targets.shape != tuple(update_shape):
        raise NotEmulated
    return targets


def gather(a: Sequence[np.ndarray], p: dict[str, Any]) -> list[np.ndarray]:
    """A gather on constant operands (or on element numbers, with ``fill_value``)."""
    operand, indices = a[0], a[1]
    sources = gather_sources(
        operand.shape,
        indices,
        p["dimension_numbers"],
        p["slice_sizes"],
        p["mode"],
    )
    fill = p.get("fill_value")
    if fill is None:
        fill = _default_fill(operand.dtype)
    flat = operand.reshape(-1)
    taken = flat[np.where(sources >= 0, sources, 0)] if flat.size else flat
    if flat.size == 0:
        return [np.full(sources.shape, fill, dtype=operand.dtype)]
    return [np.where(sources >= 0, taken, np.asarray(fill, dtype=operand.dtype))]


def _default_fill(dtype: np.dtype) -> Any:
    if dtype.kind == "f" or dtype.kind == "c":
        return np.nan
    if dtype.kind == "b":
        return True
    if dtype.kind == "u":
        return np.iinfo(dtype).max
    return np.iinfo(dtype).min


def scatter(kind: str) -> Emulation:
    """A scatter on constants (``kind``: set, add, mul, min or max)."""

    def emulate(a: Sequence[np.ndarray], p: dict[str, Any]) -> list[np.ndarray]:
        operand, indices, updates = a[0], a[1], a[2]
        if p.get("update_jaxpr") is not None and kind == "set":
            raise NotEmulated
        targets = scatter_targets(
            operand.shape, indices, updates.shape, p["dimension_numbers"], p["mode"]
        )
        out = np.array(operand, copy=True).reshape(-1)
        keep = targets.reshape(-1) >= 0
        where = targets.reshape(-1)[keep]
        values = updates.reshape(-1)[keep]
        if kind == "set" and len(np.unique(where)) != where.size:
            raise NotEmulated  # which duplicate wins is unspecified
        combine_at(out, where, values, kind)
        return [out.reshape(operand.shape)]

    return emulate
