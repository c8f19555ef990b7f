"""The rules for single equations: which input elements each output element reads.

Elementwise primitives, element movers (applied to arrays of element numbers),
scatters through their transposed gathers, reductions, cumulative operations, sorts,
``dot_general`` and convolutions (a constant operand's zeros cut terms), and the
identity-like annotations. Each raises :class:`~.propagate.Imprecise` where it
cannot be precise, so that the conservative rule applies.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from diffops.backends.jax_sparsity import deps as D
from diffops.backends.jax_sparsity.emulate import MOVERS, scatter_targets
from diffops.backends.jax_sparsity.propagate import (
    Imprecise,
    Rule,
    Scope,
    aval_shape,
    aval_size,
)

Deps = D.Deps


def _aligned(d: Deps, atom: Any, out_shape: tuple[int, ...], n_in: int) -> Deps:
    """``d`` (of operand ``atom``) broadcast to the output's elements.

    A scalar's one row goes to every element; an operand of the output's rank with
    size-1 axes (which JAX's elementwise primitives broadcast, ``(1, 1, s)`` times
    ``(3, 4, s)``) has each of its rows repeated along those axes.
    """
    size = math.prod(out_shape)
    if d is None or d.shape[0] == size:
        return d
    if d.shape[0] == 1:
        return D.broadcast_row(d, size)
    shape = aval_shape(atom)
    if len(shape) != len(out_shape) or any(
        a not in (1, b) for a, b in zip(shape, out_shape, strict=True)
    ):
        raise Imprecise
    source = np.broadcast_to(np.arange(d.shape[0]).reshape(shape), out_shape)
    return D.take(d, source, n_in)


def elementwise(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
    """Element ``i`` of the output depends on element ``i`` of each operand."""
    out_shape = aval_shape(eqn.outvars[0])
    n_in = scope.ctx.n_in
    parts = [
        _aligned(d, atom, out_shape, n_in)
        for atom, d in zip(eqn.invars, operands, strict=True)
    ]
    return [D.union(parts, math.prod(out_shape), n_in)] * len(eqn.outvars)


def multiply(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
    """Elementwise, except that a constant factor's zeros cut the dependency."""
    out_shape = aval_shape(eqn.outvars[0])
    size = math.prod(out_shape)
    parts = []
    for k, d in enumerate(operands):
        if d is None:
            continue
        other = scope.value(eqn.invars[1 - k])
        d = _aligned(d, eqn.invars[k], out_shape, scope.ctx.n_in)
        if other is not None:
            zero = np.broadcast_to(np.asarray(other) == 0, out_shape)
            if zero.any():
                d = D.take(
                    d, np.where(zero.reshape(-1), -1, np.arange(size)), scope.ctx.n_in
                )
        parts.append(d)
    return [D.union(parts, size, scope.ctx.n_in)]


# Which operands of a mover are data (moved) and which are control (constants).
_CONTROL_OPERANDS: dict[str, Callable[[int], list[int]]] = {
    "gather": lambda n: [1],
    "dynamic_slice": lambda n: list(range(1, n)),
    "dynamic_update_slice": lambda n: list(range(2, n)),
    "select_n": lambda n: [0],
}


def mover(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
    """Apply the primitive to element numbers: each output element's source."""
    name = eqn.primitive.name
    n_in = scope.ctx.n_in
    controls = _CONTROL_OPERANDS.get(name)
    control = set(controls(len(eqn.invars))) if controls is not None else set()
    arrays: list[np.ndarray] = []
    data: list[Deps] = []
    sizes: list[int] = []
    offset = 0
    for k, (atom, d) in enumerate(zip(eqn.invars, operands, strict=True)):
        shape = aval_shape(atom)
        if k in control:
            value = scope.value(atom)
            if value is None:
                return _unknown_control(eqn, operands, control, scope)
            arrays.append(value)
            continue
        size = math.prod(shape)
        arrays.append(
            np.arange(offset + 1, offset + size + 1, dtype=np.int64).reshape(shape)
        )
        data.append(d)
        sizes.append(size)
        offset += size
    params = dict(eqn.params)
    if name == "gather":
        params["fill_value"] = 0
    if name == "pad":
        arrays[1] = arrays[1].reshape(())
    results = MOVERS[name](arrays, params)
    stacked = D.stack(data, sizes, n_in)
    return [
        D.take(stacked, np.asarray(r, dtype=np.int64).reshape(-1) - 1, n_in)
        for r in results
    ]


def _unknown_control(
    eqn: Any, operands: list[Deps], control: set[int], scope: Scope
) -> list[Deps]:
    """A mover whose indices, starts or predicate are not known."""
    name = eqn.primitive.name
    n_in = scope.ctx.n_in
    size = aval_size(eqn.outvars[0])
    if name == "select_n":
        # Elementwise: the output element is one of the cases' elements.
        return [D.union(operands, size, n_in)]
    if name == "dynamic_update_slice":
        # Each element keeps its own or takes any element of the update.
        own = operands[0]
        if own is not None and own.shape[0] != size:
            raise Imprecise
        return [D.union([own, D.everything([operands[1]], size, n_in)], size, n_in)]
    data = [d for k, d in enumerate(operands) if k not in control]
    return [D.everything(data, size, n_in)] * len(eqn.outvars)


def scatter(kind: str) -> Rule:
    """A scatter (``kind``: ``"set"`` overwrites, ``"combine"`` adds and the like).

    With constant indices each update lands where the transposed gather says; with
    others every element may receive every update.
    """

    def rule(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
        n_in = scope.ctx.n_in
        operand, indices, updates = eqn.invars[:3]
        if len(eqn.invars) != 3:
            raise Imprecise
        own, index_deps, update_deps = operands
        size = aval_size(operand)
        value = scope.value(indices)
        if value is None:
            spread_all = D.everything([update_deps, index_deps], size, n_in)
            return [D.union([own, spread_all], size, n_in)]
        targets = scatter_targets(
            aval_shape(operand),
            value,
            aval_shape(updates),
            eqn.params["dimension_numbers"],
            eqn.params["mode"],
        ).reshape(-1)
        moved = D.spread(update_deps, targets, size, n_in)
        if kind == "set" and own is not None:
            overwritten = np.zeros(size, dtype=bool)
            overwritten[targets[targets >= 0]] = True
            own = D.take(own, np.where(overwritten, -1, np.arange(size)), n_in)
        return [D.union([own, moved], size, n_in)]

    return rule


def reduction(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
    """Each output element depends on the elements it reduces (any reducer)."""
    n_in = scope.ctx.n_in
    axes = tuple(eqn.params.get("axes", eqn.params.get("dimensions", ())))
    in_shape = aval_shape(eqn.invars[0])
    if any(aval_shape(a) != in_shape for a in eqn.invars[: len(eqn.outvars)]):
        raise Imprecise
    out_shape = tuple(d for k, d in enumerate(in_shape) if k not in axes)
    out_size = math.prod(out_shape)
    groups = np.arange(out_size).reshape(out_shape)
    groups = np.broadcast_to(np.expand_dims(groups, axes), in_shape)
    n_out = len(eqn.outvars)
    grouped = [D.group(d, groups, out_size, n_in) for d in operands[:n_out]]
    # A generic reduce's initial values (scalars) reach every output element.
    total = D.union([*grouped, *operands[n_out:]], out_size, n_in)
    return [total for _ in eqn.outvars]


def _fibers(shape: tuple[int, ...], axis: int) -> np.ndarray:
    """Element numbers arranged as ``(fiber, position along axis)``."""
    index = np.arange(math.prod(shape)).reshape(shape)
    return np.moveaxis(index, axis, -1).reshape(-1, shape[axis])


def cumulative(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
    """Element ``k`` along the axis depends on elements ``0..k`` (or ``k..``)."""
    n_in = scope.ctx.n_in
    shape = aval_shape(eqn.invars[0])
    axis = eqn.params["axis"]
    fibers = _fibers(shape, axis)
    length = shape[axis]
    rows, cols = np.tril_indices(length)
    if eqn.params.get("reverse"):
        rows, cols = length - 1 - rows, length - 1 - cols
    out_index = fibers[:, rows].reshape(-1)
    in_index = fibers[:, cols].reshape(-1)
    size = math.prod(shape)
    mask = D.sparse().csr_array(
        (np.ones(out_index.size, dtype=np.int32), (out_index, in_index)),
        shape=(size, size),
    )
    return [D.product(mask, operands[0], n_in)]


def _along_fibers(
    eqn: Any, operands: list[Deps], scope: Scope, axis: int
) -> list[Deps]:
    """Every output element depends on its whole fiber along ``axis``, all operands."""
    n_in = scope.ctx.n_in
    shape = aval_shape(eqn.invars[0])
    if any(aval_shape(a) != shape for a in eqn.invars):
        raise Imprecise
    fibers = _fibers(shape, axis)
    groups = np.empty(math.prod(shape), dtype=np.int64)
    groups[fibers.reshape(-1)] = np.repeat(np.arange(fibers.shape[0]), shape[axis])
    union = D.union(
        [D.group(d, groups, fibers.shape[0], n_in) for d in operands],
        fibers.shape[0],
        n_in,
    )
    if union is None:
        return [None] * len(eqn.outvars)
    outs = []
    for var in eqn.outvars:
        out_shape = aval_shape(var)
        out_fibers = _fibers(out_shape, axis if len(out_shape) == len(shape) else -1)
        out_groups = np.empty(math.prod(out_shape), dtype=np.int64)
        out_groups[out_fibers.reshape(-1)] = np.repeat(
            np.arange(out_fibers.shape[0]), out_fibers.shape[1]
        )
        outs.append(D.take(union, out_groups, n_in))
    return outs


def sort(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
    """Every output element depends on its whole fiber, of every operand."""
    return _along_fibers(eqn, operands, scope, eqn.params["dimension"])


def top_k(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
    """Every output element depends on its whole fiber along the last axis."""
    axis = eqn.params.get("axis", len(aval_shape(eqn.invars[0])) - 1)
    return _along_fibers(eqn, operands, scope, axis)


def dot_general(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
    """``out[b, i, j] = Σ_k lhs[b, i, k] rhs[b, k, j]``.

    A constant operand's zeros cut the terms they multiply.
    """
    n_in = scope.ctx.n_in
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    lhs, rhs = eqn.invars
    lhs_index = _arranged(aval_shape(lhs), tuple(lb), tuple(lc))  # (B, I, K)
    rhs_index = _arranged(aval_shape(rhs), tuple(rb), tuple(rc))  # (B, J, K)
    n_b, n_i, n_k = lhs_index.shape
    n_j = rhs_index.shape[1]
    size = n_b * n_i * n_j
    out = np.arange(size).reshape(n_b, n_i, n_j)
    parts = []
    for own, own_index, other_atom, other_index, own_is_lhs in (
        (operands[0], lhs_index, rhs, rhs_index, True),
        (operands[1], rhs_index, lhs, lhs_index, False),
    ):
        if own is None:
            continue
        other = scope.value(other_atom)
        if other is None:
            # The union over k, for every element on the other side.
            k_groups = np.empty(own_index.size, dtype=np.int64)
            k_groups[own_index.reshape(-1)] = np.repeat(
                np.arange(own_index.shape[0] * own_index.shape[1]), n_k
            )
            grouped = D.group(own, k_groups, n_b * own_index.shape[1], n_in)
            if own_is_lhs:
                rows = (
                    np.arange(n_b)[:, None, None] * n_i + np.arange(n_i)[None, :, None]
                )
                rows = np.broadcast_to(rows, (n_b, n_i, n_j))
            else:
                rows = (
                    np.arange(n_b)[:, None, None] * n_j + np.arange(n_j)[None, None, :]
                )
                rows = np.broadcast_to(rows, (n_b, n_i, n_j))
            parts.append(D.take(grouped, rows.reshape(-1), n_in))
            continue
        # A constant on the other side: only its non-zeros carry a dependency.
        values = np.asarray(other).reshape(-1)[other_index]  # (B, M, K)
        b, m, k = np.nonzero(values)
        n_own = own_index.shape[1]
        # Pair every non-zero (b, m, k) with every free index of this side.
        q = np.arange(n_own)
        b_all = np.repeat(b, n_own)
        m_all = np.repeat(m, n_own)
        k_all = np.repeat(k, n_own)
        q_all = np.tile(q, b.size)
        # With the constant on the right, m is j and q is i; on the left, the reverse.
        out_rows = out[b_all, q_all, m_all] if own_is_lhs else out[b_all, m_all, q_all]
        sources = own_index[b_all, q_all, k_all]
        mask = D.sparse().csr_array(
            (np.ones(out_rows.size, dtype=np.int32), (out_rows, sources)),
            shape=(size, own_index.size),
        )
        parts.append(D.product(mask, own, n_in))
    return [D.union(parts, size, n_in)]


def _arranged(
    shape: tuple[int, ...], batch: tuple[int, ...], contract: tuple[int, ...]
) -> np.ndarray:
    """Element numbers of an operand arranged as ``(batch, free, contracted)``."""
    free = [d for d in range(len(shape)) if d not in batch and d not in contract]
    index = (
        np.arange(math.prod(shape)).reshape(shape).transpose([*batch, *free, *contract])
    )
    n_b = math.prod(shape[d] for d in batch)
    n_f = math.prod(shape[d] for d in free)
    n_k = math.prod(shape[d] for d in contract)
    return index.reshape(n_b, n_f, n_k)


def _window_sources(
    p: dict[str, Any],
    spatial_in: tuple[int, ...],
    taps: tuple[int, ...],
    spatial_out: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """For each (output position, tap): the flat input position, and whether any."""
    strides, padding = p["window_strides"], p["padding"]
    lhs_dil = p["lhs_dilation"] or (1,) * len(spatial_in)
    rhs_dil = p["rhs_dilation"] or (1,) * len(spatial_in)
    out_pos = np.indices(spatial_out).reshape(len(spatial_out), -1).T  # (P, d)
    tap_pos = np.indices(taps).reshape(len(taps), -1).T  # (T, d)
    source = np.zeros((out_pos.shape[0], tap_pos.shape[0]), dtype=np.int64)
    valid = np.ones(source.shape, dtype=bool)
    for d in range(len(spatial_in)):
        dilated = (spatial_in[d] - 1) * lhs_dil[d] + 1
        pos = (
            out_pos[:, d][:, None] * strides[d]
            - padding[d][0]
            + tap_pos[:, d][None, :] * rhs_dil[d]
        )
        valid &= (pos >= 0) & (pos < dilated) & (pos % lhs_dil[d] == 0)
        source = source * spatial_in[d] + np.where(valid, pos // lhs_dil[d], 0)
    return source, valid


def convolution(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
    """A convolution: each output element depends on its window of the input.

    Taps where the kernel is a constant zero are left out; every output element
    also depends on its output feature's kernel.
    """
    p = eqn.params
    if p["feature_group_count"] != 1 or p["batch_group_count"] != 1:
        raise Imprecise
    n_in = scope.ctx.n_in
    lhs, rhs = eqn.invars
    dn = p["dimension_numbers"]
    lhs_shape, rhs_shape, out_shape = (
        aval_shape(lhs),
        aval_shape(rhs),
        aval_shape(eqn.outvars[0]),
    )
    lhs_spec, rhs_spec, out_spec = dn.lhs_spec, dn.rhs_spec, dn.out_spec
    lhs_index = np.arange(math.prod(lhs_shape)).reshape(lhs_shape).transpose(lhs_spec)
    rhs_index = np.arange(math.prod(rhs_shape)).reshape(rhs_shape).transpose(rhs_spec)
    out_index = np.arange(math.prod(out_shape)).reshape(out_shape).transpose(out_spec)
    # Now lhs (N, C, *S_in), rhs (O, C, *taps), out (N, O, *S_out).
    n, c = lhs_index.shape[:2]
    o = rhs_index.shape[0]
    spatial_in = lhs_index.shape[2:]
    taps = rhs_index.shape[2:]
    spatial_out = out_index.shape[2:]
    source, valid = _window_sources(p, spatial_in, taps, spatial_out)
    kernel = scope.value(rhs)
    parts = []
    if operands[0] is not None:
        # taps used: (O, C, T) true where the kernel may be non-zero.
        used = np.ones((o, c, valid.shape[1]), dtype=bool)
        if kernel is not None:
            k = np.asarray(kernel).reshape(-1)[rhs_index.reshape(o, c, -1)]
            used = k != 0
        lhs_flat = lhs_index.reshape(n, c, -1)
        out_flat = out_index.reshape(n, o, -1)
        oo, cc, tt = np.nonzero(used)
        rows_list, cols_list = [], []
        for batch in range(n):
            # every (o, c, t) used × every output position p with a valid tap t
            pp, tt2 = np.nonzero(valid)
            for oi, ci, ti in zip(oo, cc, tt, strict=True):
                sel = pp[tt2 == ti]
                rows_list.append(out_flat[batch, oi, sel])
                cols_list.append(lhs_flat[batch, ci, source[sel, ti]])
        rows = np.concatenate(rows_list) if rows_list else np.zeros(0, np.int64)
        cols = np.concatenate(cols_list) if cols_list else np.zeros(0, np.int64)
        mask = D.sparse().csr_array(
            (np.ones(rows.size, dtype=np.int32), (rows, cols)),
            shape=(math.prod(out_shape), math.prod(lhs_shape)),
        )
        parts.append(D.product(mask, operands[0], n_in))
    if operands[1] is not None:
        groups = np.empty(math.prod(rhs_shape), dtype=np.int64)
        groups[rhs_index.reshape(-1)] = np.repeat(
            np.arange(o), rhs_index.size // max(o, 1)
        )
        per_feature = D.group(operands[1], groups, o, n_in)
        feature_of_out = np.empty(math.prod(out_shape), dtype=np.int64)
        feature_of_out[out_index.reshape(-1)] = np.tile(
            np.repeat(np.arange(o), math.prod(spatial_out)), n
        )
        parts.append(D.take(per_feature, feature_of_out, n_in))
    return [D.union(parts, math.prod(out_shape), n_in)]


def names(text: str) -> frozenset[str]:
    """Primitive names listed in ``text``, separated by white space."""
    return frozenset(text.split())


def identity(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
    """Each output is its operand (sharding and naming annotations, barriers)."""
    if len(eqn.outvars) != len(operands):
        raise Imprecise
    return list(operands)
