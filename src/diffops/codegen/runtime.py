"""NumPy implementations of the primitives that are more than one NumPy call.

Every function here is copied, by its source text, into the generated modules that
call it, so each must be self-contained: it may use ``np``, ``math`` and the other
functions of this module, nothing else (no module constants, no decorators). They
also run on NumPy *object* arrays whose elements are symbolic scalars (the scalar
emitter in :mod:`diffops.codegen.scalar` executes them to find out which element goes
where), so data elements are only moved, added or multiplied here; indices are always
plain integer arrays.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

Array = Any


def _place(values: Array, dims: Any, rank: int) -> Array:
    """``values`` (one axis per entry of ``dims``) reshaped to broadcast at ``dims``."""
    shape = [1] * rank
    for axis, dim in enumerate(dims):
        shape[dim] = values.shape[axis]
    return np.reshape(values, shape)


def _window_index(
    operand_shape: Any,
    starts: Any,
    start_map: Any,
    operand_batching: Any,
    indices_batching: Any,
    window_dims: Any,
    window_positions: Any,
    window_sizes: Any,
    batch_positions: Any,
    out_shape: Any,
) -> Any:
    """Operand index arrays (one per operand axis) for a gather or scatter window.

    ``starts`` has the batch shape plus one trailing axis (the index vector);
    ``window_positions[j]`` is the result axis of window axis ``window_dims[j]``, and
    ``batch_positions[j]`` the result axis of batch axis ``j``.
    """
    rank = len(out_shape)
    index = []
    for dim in range(len(operand_shape)):
        comp = np.zeros((1,) * rank, dtype=np.int64)
        if dim in start_map:
            column = starts[..., list(start_map).index(dim)]
            comp = comp + _place(column, batch_positions, rank)
        if dim in operand_batching:
            batch_axis = indices_batching[list(operand_batching).index(dim)]
            arange = np.arange(starts.shape[batch_axis])
            comp = comp + _place(arange, [batch_positions[batch_axis]], rank)
        if dim in window_dims:
            j = list(window_dims).index(dim)
            arange = np.arange(window_sizes[j])
            comp = comp + _place(arange, [window_positions[j]], rank)
        index.append(np.broadcast_to(comp, out_shape))
    return tuple(index)


def _gather(
    operand: Array,
    indices: Array,
    dnums: Any,
    slice_sizes: Any,
    fill: Any,
    out_shape: Any,
) -> Array:
    """``lax.gather``; ``fill``: None (clamp the starts) or the out-of-bounds value."""
    offset_dims, collapsed, start_map, operand_batching, indices_batching = dnums
    operand = np.asarray(operand)
    starts = np.asarray(indices).astype(np.int64)
    rank = len(out_shape)
    batch_positions = [d for d in range(rank) if d not in offset_dims]
    window_dims = [
        d
        for d in range(operand.ndim)
        if d not in collapsed and d not in operand_batching
    ]
    window_sizes = [slice_sizes[d] for d in window_dims]
    bounds = np.array(
        [operand.shape[d] - slice_sizes[d] for d in start_map], dtype=np.int64
    )
    clamped = np.clip(starts, 0, bounds) if len(start_map) else starts
    index = _window_index(
        operand.shape,
        clamped,
        start_map,
        operand_batching,
        indices_batching,
        window_dims,
        offset_dims,
        window_sizes,
        batch_positions,
        out_shape,
    )
    out = operand[index]
    if fill is not None and len(start_map):
        outside = np.any((starts < 0) | (starts > bounds), axis=-1)
        outside = _place(outside, batch_positions, rank)
        out = np.where(outside, np.asarray(fill, dtype=operand.dtype), out)
    return out


def _scatter(
    operand: Array,
    indices: Array,
    updates: Array,
    dnums: Any,
    clip: bool,
    combine: str,
) -> Array:
    """``lax.scatter`` and its ``-add``, ``-mul``, ``-min`` and ``-max`` variants.

    ``combine`` is ``"set"``, ``"add"``, ``"mul"``, ``"min"`` or ``"max"``;
    out-of-bounds windows are dropped unless ``clip``.
    """
    window_dims, inserted, to_operand, operand_batching, indices_batching = dnums
    out = np.array(operand, copy=True)
    updates = np.asarray(updates)
    starts = np.asarray(indices).astype(np.int64)
    rank = updates.ndim
    batch_positions = [d for d in range(rank) if d not in window_dims]
    operand_window = [
        d for d in range(out.ndim) if d not in inserted and d not in operand_batching
    ]
    window_sizes = [updates.shape[p] for p in window_dims]
    sizes = dict(zip(operand_window, window_sizes, strict=True))
    bounds = np.array(
        [out.shape[d] - sizes.get(d, 1) for d in to_operand], dtype=np.int64
    )
    keep = None
    if len(to_operand):
        if clip:
            starts = np.clip(starts, 0, bounds)
        else:
            inside = np.all((starts >= 0) & (starts <= bounds), axis=-1)
            keep = np.broadcast_to(_place(inside, batch_positions, rank), updates.shape)
    index = _window_index(
        out.shape,
        starts,
        to_operand,
        operand_batching,
        indices_batching,
        operand_window,
        window_dims,
        window_sizes,
        batch_positions,
        updates.shape,
    )
    if keep is not None:
        index = tuple(i[keep] for i in index)
        updates = updates[keep]
    _combine_at(out, index, updates, combine)
    return out


def _combine_at(out: Array, index: Any, updates: Array, combine: str) -> None:
    """Scatter ``updates`` into ``out[index]`` in place, combined as XLA does.

    Args:
        out: The array written, any shape.
        index: A NumPy index of ``out`` (integer arrays, one entry per update).
        updates: Values, one per indexed element.
        combine: ``"set"`` (indices must not repeat), ``"add"``, ``"mul"``,
            ``"min"`` or ``"max"`` (repeated indices combine, in any order).
    """
    if combine == "set":
        out[index] = updates
    else:
        ufunc = {"add": np.add, "mul": np.multiply, "min": np.minimum}
        ufunc.get(combine, np.maximum).at(out, index, updates)


def _dynamic_slice(operand: Array, starts: Any, sizes: Any) -> Array:
    """``lax.dynamic_slice``: starts clamped so that the slice fits."""
    operand = np.asarray(operand)
    index = []
    for start, size, dim in zip(starts, sizes, operand.shape, strict=True):
        first = min(max(int(start), 0), dim - size)
        index.append(slice(first, first + size))
    return operand[tuple(index)]


def _dynamic_update_slice(operand: Array, update: Array, starts: Any) -> Array:
    """``lax.dynamic_update_slice``: starts clamped so that the update fits."""
    out = np.array(operand, copy=True)
    update = np.asarray(update)
    index = []
    for start, size, dim in zip(starts, update.shape, out.shape, strict=True):
        first = min(max(int(start), 0), dim - size)
        index.append(slice(first, first + size))
    out[tuple(index)] = update
    return out


def _pad(operand: Array, value: Any, config: Any) -> Array:
    """``lax.pad``: low, high (either may be negative) and interior padding."""
    operand = np.asarray(operand)
    shape = []
    inner = []
    for (low, high, interior), n in zip(config, operand.shape, strict=True):
        lo, hi = max(low, 0), max(high, 0)
        body = n + max(n - 1, 0) * interior
        shape.append(lo + body + hi)
        inner.append(slice(lo, lo + body, interior + 1))
    out = np.full(shape, value, dtype=operand.dtype)
    out[tuple(inner)] = operand
    trim = []
    for (low, high, _), size in zip(config, shape, strict=True):
        trim.append(slice(-min(low, 0), size + min(high, 0)))
    return out[tuple(trim)]


def _iota(dtype: Any, shape: Any, dimension: int) -> Array:
    """``lax.iota``: ``arange`` along ``dimension``, broadcast to ``shape``."""
    line = np.arange(shape[dimension], dtype=dtype)
    return np.broadcast_to(_place(line, [dimension], len(shape)), shape)


def _dot_general(lhs: Array, rhs: Array, dnums: Any) -> Array:
    """``lax.dot_general``: transpose to (batch, free, contracted), ``matmul``."""
    (lc, rc), (lb, rb) = dnums
    lhs = np.asarray(lhs)
    rhs = np.asarray(rhs)
    lf = [d for d in range(lhs.ndim) if d not in lc and d not in lb]
    rf = [d for d in range(rhs.ndim) if d not in rc and d not in rb]
    batch = [lhs.shape[d] for d in lb]
    m = [lhs.shape[d] for d in lf]
    n = [rhs.shape[d] for d in rf]
    k = math.prod(lhs.shape[d] for d in lc)
    a = np.transpose(lhs, (*lb, *lf, *lc)).reshape((math.prod(batch), math.prod(m), k))
    b = np.transpose(rhs, (*rb, *rc, *rf)).reshape((math.prod(batch), k, math.prod(n)))
    return np.matmul(a, b).reshape((*batch, *m, *n))


def _cumulative(operand: Array, axis: int, reverse: bool, kind: str) -> Array:
    """``cumsum`` / ``cumprod`` / ``cummax`` / ``cummin`` / ``cumlogsumexp``."""
    operand = np.asarray(operand)
    if reverse:
        operand = np.flip(operand, axis)
    if kind == "sum":
        out = np.cumsum(operand, axis=axis, dtype=operand.dtype)
    elif kind == "prod":
        out = np.cumprod(operand, axis=axis, dtype=operand.dtype)
    elif kind == "max":
        out = np.maximum.accumulate(operand, axis=axis)
    elif kind == "min":
        out = np.minimum.accumulate(operand, axis=axis)
    else:
        out = np.logaddexp.accumulate(operand, axis=axis)
    return np.flip(out, axis) if reverse else out


def _sort(operands: Any, dimension: int, num_keys: int) -> Any:
    """``lax.sort``: stable sort of all operands by the first ``num_keys``."""
    keys = [np.asarray(k) for k in operands[:num_keys]]
    if num_keys == 1:
        order = np.argsort(keys[0], axis=dimension, kind="stable")
    else:
        moved = [np.moveaxis(k, dimension, -1) for k in keys]
        flat = [k.reshape(-1, k.shape[-1]) for k in moved]
        rows = [np.lexsort([f[r] for f in reversed(flat)]) for r in range(len(flat[0]))]
        order = np.moveaxis(np.reshape(rows, moved[0].shape), -1, dimension)
    return tuple(
        np.take_along_axis(np.asarray(op), order, axis=dimension) for op in operands
    )


def _top_k(operand: Array, k: int, axis: int) -> Any:
    """``lax.top_k``: the ``k`` largest along ``axis`` and their indices (stable)."""
    operand = np.asarray(operand)
    order = np.flip(np.argsort(np.flip(operand, axis), axis=axis, kind="stable"), axis)
    order = operand.shape[axis] - 1 - order
    order = np.take(order, np.arange(k), axis=axis)
    return np.take_along_axis(operand, order, axis=axis), order.astype(np.int32)


def _int_div(a: Array, b: Array) -> Array:
    """Integer division rounding toward zero (C, XLA), not toward -inf (NumPy)."""
    a = np.asarray(a)
    b = np.asarray(b)
    q = np.abs(a) // np.where(b == 0, 1, np.abs(b))
    return np.where((a < 0) != (b < 0), -q, q).astype(np.result_type(a, b))


def _int_rem(a: Array, b: Array) -> Array:
    """Integer remainder with the sign of the dividend (C, XLA)."""
    return np.asarray(a) - _int_div(a, b) * np.asarray(b)


def _sdiv(a: int, b: int) -> int:
    """Scalar integer division rounding toward zero."""
    q = abs(a) // abs(b)
    return -q if (a < 0) != (b < 0) else q


def _srem(a: int, b: int) -> int:
    """Scalar integer remainder with the sign of the dividend."""
    return a - _sdiv(a, b) * b


def _round_away(a: Array) -> Array:
    """Round half away from zero (``lax.round`` with ``AWAY_FROM_ZERO``)."""
    t = np.trunc(a)
    return np.where(np.abs(a - t) >= 0.5, t + np.sign(a), t)


def _sround_away(a: float) -> float:
    """Scalar round half away from zero."""
    t = float(math.trunc(a))
    return t + math.copysign(1.0, a) if abs(a - t) >= 0.5 else t


def _float_to_int(a: Array, dtype: Any) -> Array:
    """Float to integer as XLA converts: truncate, saturate, NaN to 0."""
    info = np.iinfo(dtype)
    a = np.asarray(a)
    t = np.clip(np.trunc(np.where(np.isnan(a), 0, a)), info.min, info.max)
    return t.astype(dtype)


def _map_float(function: Any, a: Array) -> Array:
    """A ``math`` function of one float, element by element, keeping the dtype."""
    a = np.asarray(a)
    out = np.empty(a.shape, dtype=a.dtype)
    flat = out.reshape(-1)
    for i, v in enumerate(a.reshape(-1).tolist()):
        try:
            flat[i] = function(v)
        except (ValueError, OverflowError):
            flat[i] = _math_edge(function, v)
    return out


def _math_edge(function: Any, v: float) -> float:
    """IEEE value of a ``math`` function where ``math`` raises (poles, overflow)."""
    if function is math.lgamma:
        return math.inf
    if function is math.erf:
        return math.copysign(1.0, v)
    if function is _erf_inv:
        return math.copysign(math.inf, v) if abs(v) == 1 else math.nan
    if function is _digamma:
        return math.nan
    return math.nan


def _erf_inv(y: float) -> float:
    """Inverse error function (Newton on ``math.erf``, from a closed-form start)."""
    if y != y or abs(y) > 1:
        return math.nan
    if abs(y) == 1:
        return math.copysign(math.inf, y)
    a = 0.147
    ln = math.log1p(-y * y)
    t = 2 / (math.pi * a) + ln / 2
    x = math.copysign(math.sqrt(math.sqrt(t * t - ln / a) - t), y)
    for _ in range(4):
        err = math.erf(x) - y
        x -= err / (2 / math.sqrt(math.pi) * math.exp(-x * x))
    return x


def _digamma(x: float) -> float:
    """Digamma function: reflection, recurrence up to 6, asymptotic series."""
    if x != x or x == -math.inf:
        return math.nan
    if x <= 0 and x == math.floor(x):
        return math.nan
    result = 0.0
    if x < 0.5:
        result -= math.pi / math.tan(math.pi * x)
        x = 1 - x
    while x < 10:
        result -= 1 / x
        x += 1
    inv = 1 / (x * x)
    series = inv * (
        1 / 12
        - inv
        * (
            1 / 120
            - inv * (1 / 252 - inv * (1 / 240 - inv * (1 / 132 - inv * 691 / 32760)))
        )
    )
    return result + math.log(x) - 0.5 / x - series


def _scan(
    body: Any,
    num_consts: int,
    num_carry: int,
    length: int,
    reverse: bool,
    y_avals: Any,
    args: Any,
) -> Any:
    """``lax.scan`` as a Python loop over the body function."""
    consts = args[:num_consts]
    carry = tuple(args[num_consts : num_consts + num_carry])
    xs = args[num_consts + num_carry :]
    ys = [np.empty((length, *shape), dtype=dtype) for shape, dtype in y_avals]
    steps = range(length - 1, -1, -1) if reverse else range(length)
    for i in steps:
        out = body(*consts, *carry, *[x[i] for x in xs])
        carry = tuple(out[:num_carry])
        for y, value in zip(ys, out[num_carry:], strict=True):
            y[i] = value
    return (*carry, *ys)


def _while(
    cond: Any, body: Any, cond_nconsts: int, body_nconsts: int, args: Any
) -> Any:
    """``lax.while_loop`` as a Python loop."""
    cond_consts = args[:cond_nconsts]
    body_consts = args[cond_nconsts : cond_nconsts + body_nconsts]
    carry = tuple(args[cond_nconsts + body_nconsts :])
    while cond(*cond_consts, *carry)[0]:
        carry = tuple(body(*body_consts, *carry))
    return carry


def _cond(branches: Any, index: Any, args: Any) -> Any:
    """``lax.cond`` / ``switch``: the index is clamped into range, as in XLA."""
    chosen = min(max(int(index), 0), len(branches) - 1)
    return branches[chosen](*args)


HELPERS = {
    name: value
    for name, value in dict(globals()).items()
    if name.startswith("_") and callable(value) and not name.startswith("__")
}
"""Every helper by name (the emitter copies the ones a module calls)."""

combine_at = _combine_at
"""The scatter step, for other NumPy emulations of XLA (sparsity detection)."""
