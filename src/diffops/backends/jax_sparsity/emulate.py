"""JAX primitives evaluated with NumPy, for two uses in structure detection.

1. **Constant values.** Index arithmetic (``iota``, ``add``, comparisons,
   ``select_n``, broadcasts, ...) whose operands are compile-time constants is
   evaluated, so that gathers, scatters and dynamic slices with constant indices get
   a precise rule.
2. **Index maps.** The primitives that only move elements (slices, reshapes,
   transposes, broadcasts, pads, concatenations, gathers and scatters with constant
   indices, ...) are applied to arrays of element numbers: for each output element
   that gives the operand element it was copied from. Element numbers start at 1 and
   0 marks "copied from nowhere" (padding, a gather's fill value).

Only what JAX's semantics pin down is emulated; a primitive or parameter not handled
here raises :class:`NotEmulated`, and the caller takes the conservative rule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from diffops.backends.jax_sparsity.indexing import (
    Emulation,
    NotEmulated,
    gather,
    scatter,
    scatter_targets,
)

__all__ = ["MOVERS", "VALUES", "NotEmulated", "evaluate", "scatter_targets"]


# ---------------------------------------------------------------------------------
# Element movers (also used on index maps)


def _slice(a: Sequence[np.ndarray], p: dict[str, Any]) -> list[np.ndarray]:
    x = a[0]
    strides = p.get("strides") or (1,) * x.ndim
    index = tuple(
        slice(lo, hi, st)
        for lo, hi, st in zip(
            p["start_indices"], p["limit_indices"], strides, strict=True
        )
    )
    return [x[index]]


def _reshape(a: Sequence[np.ndarray], p: dict[str, Any]) -> list[np.ndarray]:
    x = a[0]
    if p.get("dimensions") is not None:  # lax.reshape: transposed, then reshaped
        x = np.transpose(x, p["dimensions"])
    return [x.reshape(p["new_sizes"])]


def _broadcast_in_dim(a: Sequence[np.ndarray], p: dict[str, Any]) -> list[np.ndarray]:
    x, shape = a[0], tuple(p["shape"])
    placed = [1] * len(shape)
    for axis, size in zip(p["broadcast_dimensions"], x.shape, strict=True):
        placed[axis] = size
    return [np.broadcast_to(x.reshape(placed), shape)]


def _pad(a: Sequence[np.ndarray], p: dict[str, Any]) -> list[np.ndarray]:
    x, value = a[0], a[1]
    config = p["padding_config"]
    out_shape = []
    for n, (lo, hi, interior) in zip(x.shape, config, strict=True):
        dilated = n + max(n - 1, 0) * interior
        out_shape.append(lo + hi + dilated)
    out = np.full(out_shape, np.asarray(value).reshape(()), dtype=x.dtype)
    # Where each operand element lands, per dimension; outside the result: cropped.
    keep = []
    positions = []
    for n, (lo, _, interior), size in zip(x.shape, config, out_shape, strict=True):
        pos = lo + np.arange(n) * (interior + 1)
        inside = (pos >= 0) & (pos < size)
        keep.append(np.flatnonzero(inside))
        positions.append(pos[inside])
    out[np.ix_(*positions)] = x[np.ix_(*keep)]
    return [out]


def _concatenate(a: Sequence[np.ndarray], p: dict[str, Any]) -> list[np.ndarray]:
    return [np.concatenate(list(a), axis=p["dimension"])]


def _transpose(a: Sequence[np.ndarray], p: dict[str, Any]) -> list[np.ndarray]:
    return [np.transpose(a[0], p["permutation"])]


def _rev(a: Sequence[np.ndarray], p: dict[str, Any]) -> list[np.ndarray]:
    return [np.flip(a[0], axis=tuple(p["dimensions"]))]


def _squeeze(a: Sequence[np.ndarray], p: dict[str, Any]) -> list[np.ndarray]:
    return [np.squeeze(a[0], axis=tuple(p["dimensions"]))]


def _expand_dims(a: Sequence[np.ndarray], p: dict[str, Any]) -> list[np.ndarray]:
    return [np.expand_dims(a[0], tuple(p["dimensions"]))]


def _split(a: Sequence[np.ndarray], p: dict[str, Any]) -> list[np.ndarray]:
    bounds = np.cumsum(p["sizes"])[:-1]
    return list(np.split(a[0], bounds, axis=p["axis"]))


def _tile(a: Sequence[np.ndarray], p: dict[str, Any]) -> list[np.ndarray]:
    return [np.tile(a[0], tuple(p["reps"]))]


def _stack(a: Sequence[np.ndarray], p: dict[str, Any]) -> list[np.ndarray]:
    return [np.stack(list(a), axis=p["axis"])]


def _unstack(a: Sequence[np.ndarray], p: dict[str, Any]) -> list[np.ndarray]:
    return [
        np.squeeze(piece, p["axis"])
        for piece in np.split(a[0], a[0].shape[p["axis"]], axis=p["axis"])
    ]


def _select_n(a: Sequence[np.ndarray], p: dict[str, Any]) -> list[np.ndarray]:
    which, cases = a[0], a[1:]
    shape = np.broadcast_shapes(*[c.shape for c in cases], which.shape)
    which = np.broadcast_to(which.astype(np.int64), shape)
    stacked = np.stack([np.broadcast_to(c, shape) for c in cases])
    return [np.take_along_axis(stacked, which[None], axis=0)[0]]


def _clamped_starts(
    starts: Sequence[np.ndarray], shape: Sequence[int], sizes: Sequence[int]
) -> list[int]:
    return [
        int(np.clip(int(np.asarray(s).reshape(())), 0, n - k))
        for s, n, k in zip(starts, shape, sizes, strict=True)
    ]


def _dynamic_slice(a: Sequence[np.ndarray], p: dict[str, Any]) -> list[np.ndarray]:
    x, starts = a[0], a[1:]
    sizes = tuple(p["slice_sizes"])
    if len(starts) != x.ndim:
        raise NotEmulated
    begin = _clamped_starts(starts, x.shape, sizes)
    index = tuple(slice(b, b + k) for b, k in zip(begin, sizes, strict=True))
    return [x[index]]


def _dynamic_update_slice(
    a: Sequence[np.ndarray], p: dict[str, Any]
) -> list[np.ndarray]:
    x, update, starts = a[0], a[1], a[2:]
    if len(starts) != x.ndim:
        raise NotEmulated
    begin = _clamped_starts(starts, x.shape, update.shape)
    out = np.array(x, copy=True)
    index = tuple(slice(b, b + k) for b, k in zip(begin, update.shape, strict=True))
    out[index] = update
    return [out]


def _iota(a: Sequence[np.ndarray], p: dict[str, Any]) -> list[np.ndarray]:
    shape = tuple(p["shape"])
    axis = p["dimension"]
    line = np.arange(shape[axis], dtype=np.dtype(p["dtype"]))
    placed = [1] * len(shape)
    placed[axis] = shape[axis]
    return [np.broadcast_to(line.reshape(placed), shape).copy()]


def _identity(a: Sequence[np.ndarray], p: dict[str, Any]) -> list[np.ndarray]:
    return [a[0]]


# ---------------------------------------------------------------------------------
# Values of constant computations


def _elementwise(function: Callable[..., Any]) -> Emulation:
    def emulate(a: Sequence[np.ndarray], p: dict[str, Any]) -> list[np.ndarray]:
        return [np.asarray(function(*a))]

    return emulate


def _div(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if np.asarray(x).dtype.kind in "iu":
        return np.asarray(np.trunc(np.true_divide(x, y))).astype(np.asarray(x).dtype)
    return np.asarray(np.true_divide(x, y))


def _convert(a: Sequence[np.ndarray], p: dict[str, Any]) -> list[np.ndarray]:
    return [np.asarray(a[0]).astype(np.dtype(p["new_dtype"]))]


def _integer_pow(a: Sequence[np.ndarray], p: dict[str, Any]) -> list[np.ndarray]:
    return [np.asarray(np.power(a[0], p["y"]))]


def _reduce(function: Callable[..., Any]) -> Emulation:
    def emulate(a: Sequence[np.ndarray], p: dict[str, Any]) -> list[np.ndarray]:
        return [np.asarray(function(a[0], axis=tuple(p["axes"])))]

    return emulate


def _argminmax(function: Callable[..., Any]) -> Emulation:
    def emulate(a: Sequence[np.ndarray], p: dict[str, Any]) -> list[np.ndarray]:
        (axis,) = p["axes"]
        result = function(a[0], axis=axis)
        return [np.asarray(result).astype(np.dtype(p["index_dtype"]))]

    return emulate


def _cumulative(function: Callable[..., Any]) -> Emulation:
    def emulate(a: Sequence[np.ndarray], p: dict[str, Any]) -> list[np.ndarray]:
        x = a[0]
        axis = p["axis"]
        if p.get("reverse"):
            x = np.flip(x, axis)
        result = function(x, axis=axis)
        if p.get("reverse"):
            result = np.flip(result, axis)
        return [np.asarray(result)]

    return emulate


def _clamp(a: Sequence[np.ndarray], p: dict[str, Any]) -> list[np.ndarray]:
    low, x, high = a
    return [np.asarray(np.minimum(np.maximum(x, low), high))]


MOVERS: dict[str, Emulation] = {
    "slice": _slice,
    "reshape": _reshape,
    "broadcast_in_dim": _broadcast_in_dim,
    "pad": _pad,
    "concatenate": _concatenate,
    "transpose": _transpose,
    "rev": _rev,
    "squeeze": _squeeze,
    "expand_dims": _expand_dims,
    "split": _split,
    "tile": _tile,
    "stack": _stack,
    "unstack": _unstack,
    "select_n": _select_n,
    "dynamic_slice": _dynamic_slice,
    "dynamic_update_slice": _dynamic_update_slice,
    "gather": gather,
    "copy": _identity,
    "copy_p": _identity,
}
"""Primitives that only move (or pick) elements; each also evaluates constants."""

VALUES: dict[str, Emulation] = {
    **MOVERS,
    "iota": _iota,
    "convert_element_type": _convert,
    "add": _elementwise(np.add),
    "add_any": _elementwise(np.add),
    "sub": _elementwise(np.subtract),
    "mul": _elementwise(np.multiply),
    "div": _elementwise(_div),
    "rem": _elementwise(np.fmod),
    "neg": _elementwise(np.negative),
    "abs": _elementwise(np.abs),
    "sign": _elementwise(np.sign),
    "max": _elementwise(np.maximum),
    "min": _elementwise(np.minimum),
    "floor": _elementwise(np.floor),
    "ceil": _elementwise(np.ceil),
    "round": _elementwise(np.round),
    "sqrt": _elementwise(np.sqrt),
    "exp": _elementwise(np.exp),
    "log": _elementwise(np.log),
    "sin": _elementwise(np.sin),
    "cos": _elementwise(np.cos),
    "square": _elementwise(np.square),
    "integer_pow": _integer_pow,
    "lt": _elementwise(np.less),
    "le": _elementwise(np.less_equal),
    "gt": _elementwise(np.greater),
    "ge": _elementwise(np.greater_equal),
    "eq": _elementwise(np.equal),
    "ne": _elementwise(np.not_equal),
    "and": _elementwise(np.bitwise_and),
    "or": _elementwise(np.bitwise_or),
    "not": _elementwise(np.invert),
    "xor": _elementwise(np.bitwise_xor),
    "clamp": _clamp,
    "reduce_sum": _reduce(np.sum),
    "reduce_max": _reduce(np.max),
    "reduce_min": _reduce(np.min),
    "reduce_prod": _reduce(np.prod),
    "reduce_and": _reduce(np.all),
    "reduce_or": _reduce(np.any),
    "argmax": _argminmax(np.argmax),
    "argmin": _argminmax(np.argmin),
    "cumsum": _cumulative(np.cumsum),
    "cumprod": _cumulative(np.cumprod),
    "cummax": _cumulative(np.maximum.accumulate),
    "cummin": _cumulative(np.minimum.accumulate),
    "scatter": scatter("set"),
    "scatter-add": scatter("add"),
    "scatter_add": scatter("add"),
    "scatter-mul": scatter("mul"),
    "scatter_mul": scatter("mul"),
    "scatter-min": scatter("min"),
    "scatter_min": scatter("min"),
    "scatter-max": scatter("max"),
    "scatter_max": scatter("max"),
}
"""Primitives whose values NumPy computes as JAX does (constant folding)."""


def evaluate(
    name: str, arrays: Sequence[np.ndarray], params: dict[str, Any]
) -> list[np.ndarray]:
    """The outputs of primitive ``name`` on constant operands.

    Raises:
        NotEmulated: If NumPy has no emulation for it.
    """
    emulation = VALUES.get(name)
    if emulation is None:
        raise NotEmulated
    with np.errstate(all="ignore"):
        results = emulation(arrays, params)
        if name in _ROUNDING and len(results) == 1:
            results = [_rounding_zeros_kept(name, arrays, params, results[0])]
        return results


_ROUNDING = {"add", "add_any", "sub", "mul", "div", "square", "integer_pow"}
_ROUNDING |= {"reduce_sum", "cumsum"}


def _rounding_zeros_kept(
    name: str, arrays: Sequence[np.ndarray], params: dict[str, Any], result: np.ndarray
) -> np.ndarray:
    """``result`` with zeros that rounding made (not exact ones) made non-zero.

    NumPy and XLA may round floating-point arithmetic differently (XLA turns a
    division by a constant into a multiplication, say), so a zero that NumPy gets by
    cancellation (``4.9 - 4.9``) or underflow may be ``-8.3e-17`` in the compiled
    program. Such a constant must not make a derivative entry structurally zero:
    its entries become the smallest subnormal, which no rule takes for zero (found
    by the CUTEst harness on DIAGIQB, whose Hessian has the diagonal entry
    ``7**2 / 10 - 4.9``). Exact zeros (a zero operand of a product, a sum of zeros)
    stay zero.
    """
    if result.dtype.kind not in "fc" or not np.any(result == 0):
        return result
    nonzero = [np.asarray(a) != 0 for a in arrays]
    if name in ("reduce_sum", "cumsum"):
        axes = tuple(params["axes"]) if name == "reduce_sum" else None
        made = (
            np.any(nonzero[0], axis=axes)
            if axes is not None
            else _cumulative(np.logical_or.accumulate)([nonzero[0]], params)[0]
        )
    elif name == "mul":
        made = np.logical_and(nonzero[0], nonzero[1])
    elif name == "div":
        made = nonzero[0]
    else:  # sums and differences, powers: zero from non-zero operands
        made = np.logical_or.reduce(np.broadcast_arrays(*nonzero))
    uncertain = (result == 0) & made
    if not np.any(uncertain):
        return result
    kept = np.array(result, copy=True)
    kept[uncertain] = np.finfo(result.dtype).smallest_subnormal
    return kept
