"""Dependency propagation through a jaxpr: a rule per primitive, else conservative.

:func:`propagate` walks a jaxpr's equations in order, keeping for every variable its
dependency set (:mod:`.deps`) and, where it is a compile-time constant, its value
(evaluated lazily with :mod:`.emulate` when a rule needs it: gather indices, slice
starts, select predicates, constant matrices). Each primitive's rule is looked up in
:data:`RULES`; the rules are precise for what they handle and raise
:class:`Imprecise` otherwise. A primitive without a rule, and any rule that raises,
gets :func:`conservative`: every output element depends on everything any operand
depends on. That makes the result a superset of the true structure by construction.

Control flow: calls (``jit``, ``remat``, ``closed_call``) are followed into their
jaxprs; ``cond`` takes the union of its branches (only the branch taken when the index
is a constant); ``scan`` is unrolled when short, otherwise iterated to a fixed point
with every iteration's slice merged; ``while`` is iterated to a fixed point. Custom
derivative rules and anything else opaque are conservative.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from diffops.backends.jax_sparsity import deps as D
from diffops.backends.jax_sparsity.emulate import (
    MOVERS,
    NotEmulated,
    evaluate,
    scatter_targets,
)

Deps = D.Deps

UNROLL_WORK = 20_000
"""Scans whose length times body size is at most this are unrolled (precise)."""
FOLD_LIMIT = 1_000_000
"""Constants with more elements than this are not evaluated."""


class Imprecise(Exception):
    """A rule cannot be precise for this equation (e.g. indices that are not known)."""


class Context:
    """What the rules need besides an equation's operands."""

    def __init__(self, n_in: int):
        self.n_in = n_in


def _shape(atom: Any) -> tuple[int, ...]:
    return tuple(getattr(atom.aval, "shape", ()))


def _size(atom: Any) -> int:
    return math.prod(_shape(atom))


def _is_literal(atom: Any) -> bool:
    return hasattr(atom, "val") and not hasattr(atom, "count")


class Scope:
    """Dependency sets and constant values of one jaxpr's variables."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.deps: dict[Any, Deps] = {}
        self.values: dict[Any, np.ndarray] = {}
        self.producers: dict[Any, Any] = {}
        self.external: dict[Any, Getter] = {}

    def read(self, atom: Any) -> Deps:
        """The dependency set of ``atom`` (``None``: none)."""
        if _is_literal(atom):
            return None
        return self.deps.get(atom)

    def value(self, atom: Any) -> np.ndarray | None:
        """The value of ``atom`` if it is a constant (evaluated now), else ``None``."""
        if _is_literal(atom):
            return np.asarray(atom.val)
        if atom in self.values:
            return self.values[atom]
        getter = self.external.pop(atom, None)
        if getter is not None:
            found = getter()
            if found is not None:
                self.values[atom] = np.asarray(found)
            return found
        eqn = self.producers.pop(atom, None)
        if eqn is None:
            return None
        operands = [self.value(a) for a in eqn.invars]
        if any(v is None for v in operands):
            return None
        if any(_size(v) > FOLD_LIMIT for v in eqn.outvars):
            return None
        results = _evaluate(eqn, operands)  # type: ignore[arg-type]
        if results is None:
            return None
        for var, result in zip(eqn.outvars, results, strict=True):
            self.values[var] = result
        return self.values.get(atom)


def _evaluate(eqn: Any, operands: list[np.ndarray]) -> list[np.ndarray] | None:
    name = eqn.primitive.name
    try:
        return evaluate(name, operands, dict(eqn.params))
    except NotEmulated:
        pass
    except Exception:  # an emulation that does not apply: unknown
        return None
    try:
        result = eqn.primitive.bind(*operands, **eqn.params)
    except Exception:  # not evaluable outside a trace: unknown
        return None
    results = result if eqn.primitive.multiple_results else [result]
    return [np.asarray(r) for r in results]


def propagate(
    jaxpr: Any,
    in_deps: Sequence[Deps],
    in_values: Sequence[Getter | None],
    consts: Sequence[Any],
    ctx: Context,
) -> tuple[list[Deps], list[Getter]]:
    """Dependency sets (and constant values) of a jaxpr's outputs.

    Args:
        jaxpr: A ``Jaxpr``.
        in_deps: Dependency set of each input (``None``: none).
        in_values: For each input, a function giving its value if it is a constant
            (``None`` when it is not), or ``None``.
        consts: Values of the jaxpr's constants.
        ctx: The analysis context.

    Returns:
        ``(deps, values)`` of the outputs, values again as such functions.
    """
    scope = Scope(ctx)
    for var, d, v in zip(jaxpr.invars, in_deps, in_values, strict=True):
        if d is not None:
            scope.deps[var] = d
        if v is not None:
            scope.external[var] = v
    for var, value in zip(jaxpr.constvars, consts, strict=True):
        scope.values[var] = np.asarray(value)
    for eqn in jaxpr.eqns:
        operands = [scope.read(a) for a in eqn.invars]
        if all(d is None for d in operands):
            if eqn.primitive.name not in _OPAQUE_CONSTANTS:
                scope.producers.update(dict.fromkeys(eqn.outvars, eqn))
            continue
        outs = apply_rule(eqn, operands, scope)
        for var, d in zip(eqn.outvars, outs, strict=True):
            if d is not None and d.nnz:
                scope.deps[var] = d
    out_deps = [scope.read(v) for v in jaxpr.outvars]
    out_values = [_getter(scope, v) for v in jaxpr.outvars]
    return out_deps, out_values


Getter = Callable[[], "np.ndarray | None"]


def _getter(scope: Scope, atom: Any) -> Getter:
    return lambda: scope.value(atom)


# Equations never evaluated as constants (random numbers, effects).
_OPAQUE_CONSTANTS = frozenset(
    ["rng_bit_generator", "rng_uniform", "random_bits", "random_seed", "random_wrap"]
)


def apply_rule(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
    """The dependency sets of an equation's outputs (its rule, else conservative)."""
    rule = RULES.get(eqn.primitive.name)
    if rule is not None:
        try:
            outs = rule(eqn, operands, scope)
        except Imprecise:
            outs = None
        except Exception:  # a rule meeting a case it does not know: stay safe
            outs = None
        if outs is not None:
            sizes = [_size(v) for v in eqn.outvars]
            if len(outs) == len(sizes) and all(
                d is None or d.shape == (s, scope.ctx.n_in)
                for d, s in zip(outs, sizes, strict=True)
            ):
                return outs
    return conservative(eqn, operands, scope)


def conservative(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
    """Every output element depends on everything any operand depends on."""
    n_in = scope.ctx.n_in
    return [D.everything(operands, _size(v), n_in) for v in eqn.outvars]


# ---------------------------------------------------------------------------------
# Rules

Rule = Callable[[Any, list[Deps], Scope], list[Deps]]


def _elementwise(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
    size = _size(eqn.outvars[0])
    for atom, d in zip(eqn.invars, operands, strict=True):
        if d is not None and d.shape[0] not in (size, 1):
            raise Imprecise
        if _size(atom) not in (size, 1):
            raise Imprecise
    return [D.union(operands, size, scope.ctx.n_in)] * len(eqn.outvars)


def _mul(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
    """Elementwise, except that a constant factor's zeros cut the dependency."""
    size = _size(eqn.outvars[0])
    parts = []
    for k, d in enumerate(operands):
        if d is None:
            continue
        other = scope.value(eqn.invars[1 - k])
        if d.shape[0] != size:
            d = D.broadcast_row(d, size)
        if other is not None:
            zero = np.broadcast_to(np.asarray(other) == 0, _shape(eqn.outvars[0]))
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


def _mover(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
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
        shape = _shape(atom)
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
    size = _size(eqn.outvars[0])
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


def _scatter(kind: str) -> Rule:
    def rule(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
        n_in = scope.ctx.n_in
        operand, indices, updates = eqn.invars[:3]
        if len(eqn.invars) != 3:
            raise Imprecise
        own, index_deps, update_deps = operands
        size = _size(operand)
        value = scope.value(indices)
        if value is None:
            spread_all = D.everything([update_deps, index_deps], size, n_in)
            return [D.union([own, spread_all], size, n_in)]
        targets = scatter_targets(
            _shape(operand),
            value,
            _shape(updates),
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


def _reduction(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
    """Each output element depends on the elements it reduces (any reducer)."""
    n_in = scope.ctx.n_in
    axes = tuple(eqn.params.get("axes", eqn.params.get("dimensions", ())))
    in_shape = _shape(eqn.invars[0])
    if any(_shape(a) != in_shape for a in eqn.invars[: len(eqn.outvars)]):
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


def _cumulative(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
    """Element ``k`` along the axis depends on elements ``0..k`` (or ``k..``)."""
    n_in = scope.ctx.n_in
    shape = _shape(eqn.invars[0])
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
    shape = _shape(eqn.invars[0])
    if any(_shape(a) != shape for a in eqn.invars):
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
        out_shape = _shape(var)
        out_fibers = _fibers(out_shape, axis if len(out_shape) == len(shape) else -1)
        out_groups = np.empty(math.prod(out_shape), dtype=np.int64)
        out_groups[out_fibers.reshape(-1)] = np.repeat(
            np.arange(out_fibers.shape[0]), out_fibers.shape[1]
        )
        outs.append(D.take(union, out_groups, n_in))
    return outs


def _sort(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
    return _along_fibers(eqn, operands, scope, eqn.params["dimension"])


def _top_k(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
    axis = eqn.params.get("axis", len(_shape(eqn.invars[0])) - 1)
    return _along_fibers(eqn, operands, scope, axis)


def _dot_general(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
    """``out[b, i, j] = Σ_k lhs[b, i, k] rhs[b, k, j]``.

    A constant operand's zeros cut the terms they multiply.
    """
    n_in = scope.ctx.n_in
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    lhs, rhs = eqn.invars
    lhs_index = _arranged(_shape(lhs), tuple(lb), tuple(lc))  # (B, I, K)
    rhs_index = _arranged(_shape(rhs), tuple(rb), tuple(rc))  # (B, J, K)
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


def _conv(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
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
    lhs_shape, rhs_shape, out_shape = _shape(lhs), _shape(rhs), _shape(eqn.outvars[0])
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
    strides = p["window_strides"]
    padding = p["padding"]
    lhs_dil = p["lhs_dilation"] or (1,) * len(spatial_in)
    rhs_dil = p["rhs_dilation"] or (1,) * len(spatial_in)
    # For every (output position, tap): the input position, or -1.
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
    kernel = scope.value(rhs)
    parts = []
    if operands[0] is not None:
        # taps used: (O, C, T) true where the kernel may be non-zero.
        used = np.ones((o, c, tap_pos.shape[0]), dtype=bool)
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


def _names(text: str) -> frozenset[str]:
    """Primitive names listed in ``text``, separated by white space."""
    return frozenset(text.split())


def _identity(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
    """Each output is its operand (sharding and naming annotations, barriers)."""
    if len(eqn.outvars) != len(operands):
        raise Imprecise
    return list(operands)


IDENTITIES = _names(
    "name device_put sharding_constraint reshard layout_constraint pvary "
    "optimization_barrier"
)


# ---------------------------------------------------------------------------------
# Calls and control flow


def _closed(jaxpr: Any) -> tuple[Any, Sequence[Any]]:
    if hasattr(jaxpr, "jaxpr") and hasattr(jaxpr, "consts"):
        return jaxpr.jaxpr, jaxpr.consts
    return jaxpr, ()


def _values(eqn: Any, scope: Scope) -> list[Getter | None]:
    """Lazy values of an equation's operands, for the jaxprs it calls."""
    return [_getter(scope, a) for a in eqn.invars]


def _sliced(getter: Getter | None, t: int) -> Getter | None:
    if getter is None:
        return None

    def value() -> np.ndarray | None:
        whole = getter()
        return None if whole is None else np.asarray(whole)[t]

    return value


def _call(key: str) -> Rule:
    def rule(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
        jaxpr, consts = _closed(eqn.params[key])
        if len(jaxpr.invars) != len(operands):
            raise Imprecise
        outs, _ = propagate(jaxpr, operands, _values(eqn, scope), consts, scope.ctx)
        return outs

    return rule


def _cond(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
    branches = eqn.params["branches"]
    n_in = scope.ctx.n_in
    index = scope.value(eqn.invars[0])
    values = _values(eqn, scope)[1:]
    if index is not None:
        chosen = int(np.clip(int(np.asarray(index).reshape(())), 0, len(branches) - 1))
        branches = [branches[chosen]]
    results = []
    for branch in branches:
        jaxpr, consts = _closed(branch)
        outs, _ = propagate(jaxpr, operands[1:], values, consts, scope.ctx)
        results.append(outs)
    return [
        D.union(list(parts), _size(var), n_in)
        for var, parts in zip(eqn.outvars, zip(*results, strict=True), strict=True)
    ]


def _scan(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
    p = eqn.params
    n_in = scope.ctx.n_in
    jaxpr, consts = _closed(p["jaxpr"])
    n_consts, n_carry, length = p["num_consts"], p["num_carry"], p["length"]
    const_deps = operands[:n_consts]
    carry = list(operands[n_consts : n_consts + n_carry])
    xs = operands[n_consts + n_carry :]
    xs_atoms = eqn.invars[n_consts + n_carry :]
    values = _values(eqn, scope)
    const_values = values[:n_consts]
    carry_values = values[n_consts : n_consts + n_carry]
    xs_values = values[n_consts + n_carry :]
    ys_atoms = eqn.outvars[n_carry:]
    slice_sizes = [math.prod(_shape(a)[1:]) for a in xs_atoms]
    if length * max(len(jaxpr.eqns), 1) <= UNROLL_WORK:
        ys: list[list[Deps]] = [[None] * length for _ in ys_atoms]
        order = range(length - 1, -1, -1) if p["reverse"] else range(length)
        for t in order:
            slices = [
                None if d is None else D.take(d, np.arange(t * s, (t + 1) * s), n_in)
                for d, s in zip(xs, slice_sizes, strict=True)
            ]
            outs, out_values = propagate(
                jaxpr,
                [*const_deps, *carry, *slices],
                [*const_values, *carry_values, *[_sliced(g, t) for g in xs_values]],
                consts,
                scope.ctx,
            )
            carry = outs[:n_carry]
            carry_values = list(out_values[:n_carry])
            for k, d in enumerate(outs[n_carry:]):
                ys[k][t] = d
        stacked = [
            D.stack(per_t, [math.prod(_shape(a)[1:])] * length, n_in)
            for per_t, a in zip(ys, ys_atoms, strict=True)
        ]
        return [*carry, *stacked]
    # Fixed point: every slice merged over the iterations, carries grown until stable.
    merged = []
    for d, s in zip(xs, slice_sizes, strict=True):
        groups = np.tile(np.arange(s), length)
        merged.append(D.group(d, groups, s, n_in))
    while True:
        outs, _ = propagate(
            jaxpr,
            [*const_deps, *carry, *merged],
            [*const_values, *[None] * (n_carry + len(merged))],
            consts,
            scope.ctx,
        )
        grown = [
            D.union([c, o], _size(var), n_in)
            for c, o, var in zip(
                carry, outs[:n_carry], eqn.outvars[:n_carry], strict=True
            )
        ]
        if all(D.same(g, c) for g, c in zip(grown, carry, strict=True)):
            break
        carry = grown
    ys_out = []
    for d, a in zip(outs[n_carry:], ys_atoms, strict=True):
        ys_out.append(
            None
            if d is None
            else D.take(d, np.tile(np.arange(d.shape[0]), length), n_in)
        )
        del a
    return [*carry, *ys_out]


def _while(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
    p = eqn.params
    n_in = scope.ctx.n_in
    jaxpr, consts = _closed(p["body_jaxpr"])
    n_cond, n_body = p["cond_nconsts"], p["body_nconsts"]
    body_const_deps = operands[n_cond : n_cond + n_body]
    values = _values(eqn, scope)
    body_const_values = values[n_cond : n_cond + n_body]
    carry = list(operands[n_cond + n_body :])
    while True:
        outs, _ = propagate(
            jaxpr,
            [*body_const_deps, *carry],
            [*body_const_values, *[None] * len(carry)],
            consts,
            scope.ctx,
        )
        grown = [
            D.union([c, o], _size(var), n_in)
            for c, o, var in zip(carry, outs, eqn.outvars, strict=True)
        ]
        if all(D.same(g, c) for g, c in zip(grown, carry, strict=True)):
            return carry
        carry = grown


# ---------------------------------------------------------------------------------
# The table

ELEMENTWISE = _names(
    """abs acos acosh add add_any and asin asinh atan atan2 atanh bessel_i0e
    bessel_i1e cbrt ceil clamp complex conj convert_element_type cos cosh digamma
    div eq erf erf_inv erfc exp exp2 expm1 floor ge gt igamma igamma_grad_a igammac
    imag integer_pow is_finite le lgamma log log1p logistic lt max min ne neg
    nextafter not or polygamma pow random_gamma_grad real reduce_precision
    regularized_incomplete_beta rem round rsqrt sign sin sinh sqrt square
    stop_gradient sub tan tanh xor zeta clz population_count shift_left
    shift_right_arithmetic shift_right_logical mulhi eq_to le_to lt_to"""
)
"""Output element ``i`` depends on element ``i`` of each operand (scalars broadcast)."""

REDUCTIONS = _names(
    "reduce_sum reduce_max reduce_min reduce_prod reduce_and reduce_or reduce_xor "
    "argmax argmin reduce"
)
CUMULATIVE = _names("cumsum cumprod cummax cummin cumlogsumexp")
CALLS = {
    "pjit": "jaxpr",
    "jit": "jaxpr",
    "closed_call": "call_jaxpr",
    "core_call": "call_jaxpr",
    "remat": "jaxpr",
    "remat2": "jaxpr",
    "checkpoint": "jaxpr",
}

RULES: dict[str, Rule] = {
    **dict.fromkeys(ELEMENTWISE, _elementwise),
    "mul": _mul,
    **dict.fromkeys(MOVERS, _mover),
    **dict.fromkeys(REDUCTIONS, _reduction),
    **dict.fromkeys(CUMULATIVE, _cumulative),
    "scatter": _scatter("set"),
    **dict.fromkeys(
        [
            "scatter-add",
            "scatter_add",
            "scatter-sub",
            "scatter_sub",
            "scatter-mul",
            "scatter_mul",
            "scatter-min",
            "scatter_min",
            "scatter-max",
            "scatter_max",
        ],
        _scatter("combine"),
    ),
    **dict.fromkeys(IDENTITIES, _identity),
    "sort": _sort,
    "top_k": _top_k,
    "dot_general": _dot_general,
    "conv_general_dilated": _conv,
    **{name: _call(key) for name, key in CALLS.items()},
    "cond": _cond,
    "scan": _scan,
    "while": _while,
}
"""The precise rules, by primitive name; anything else is :func:`conservative`."""

CONSERVATIVE = _names(
    """custom_jvp_call custom_vjp_call custom_vjp_call_jaxpr custom_lin linear_call
    linear_solve custom_linear_solve fft reduce_window reduce_window_sum
    reduce_window_max reduce_window_min select_and_gather_add select_and_scatter_add
    select_and_scatter approx_top_k bitcast_convert_type rng_bit_generator
    rng_uniform iota after_all create_token all_gather all_to_all axis_index pmax
    pmin ppermute psum ragged_all_to_all sharding_constraint device_put dce_sink
    stage shard_map xla_pmap pure_callback io_callback
    cholesky eigh lu qr svd triangular_solve tridiagonal_solve schur hessenberg
    householder_product tridiagonal"""
)
"""Primitives known to take the conservative rule on purpose (opaque derivative
rules, collectives, linear algebra, windows, effects)."""
