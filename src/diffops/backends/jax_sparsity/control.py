"""Rules for calls and control flow, which propagate through the jaxprs they run.

Calls (``jit``, ``remat``, ``closed_call``) are followed into their jaxprs; ``cond``
takes the union of its branches (only the branch taken when the index is a
constant); ``scan`` is unrolled when short, otherwise iterated to a fixed point with
every iteration's slice merged; ``while`` is iterated to a fixed point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from diffops.backends.jax_sparsity import deps as D
from diffops.backends.jax_sparsity.propagate import (
    Getter,
    Imprecise,
    Rule,
    Scope,
    aval_shape,
    aval_size,
    getter,
    propagate,
)

Deps = D.Deps

UNROLL_WORK = 20_000
"""Scans whose length times body size is at most this are unrolled (precise)."""


def _closed(jaxpr: Any) -> tuple[Any, Sequence[Any]]:
    if hasattr(jaxpr, "jaxpr") and hasattr(jaxpr, "consts"):
        return jaxpr.jaxpr, jaxpr.consts
    return jaxpr, ()


def _values(eqn: Any, scope: Scope) -> list[Getter | None]:
    """Lazy values of an equation's operands, for the jaxprs it calls."""
    return [getter(scope, a) for a in eqn.invars]


def _sliced(getter: Getter | None, t: int) -> Getter | None:
    if getter is None:
        return None

    def value() -> np.ndarray | None:
        whole = getter()
        return None if whole is None else np.asarray(whole)[t]

    return value


def call(key: str) -> Rule:
    """A call (``jit``, ``remat``, ...): its jaxpr, parameter ``key``, is followed."""

    def rule(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
        jaxpr, consts = _closed(eqn.params[key])
        if len(jaxpr.invars) != len(operands):
            raise Imprecise
        outs, _ = propagate(jaxpr, operands, _values(eqn, scope), consts, scope.ctx)
        return outs

    return rule


def cond(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
    """The union of the branches (the one taken, when the index is a constant)."""
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
        D.union(list(parts), aval_size(var), n_in)
        for var, parts in zip(eqn.outvars, zip(*results, strict=True), strict=True)
    ]


def scan(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
    """Unrolled when short; else carries grown to a fixed point, slices merged."""
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
    slice_sizes = [math.prod(aval_shape(a)[1:]) for a in xs_atoms]
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
            D.stack(per_t, [math.prod(aval_shape(a)[1:])] * length, n_in)
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
            D.union([c, o], aval_size(var), n_in)
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


def while_loop(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
    """The carries grown to a fixed point (any number of iterations)."""
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
            D.union([c, o], aval_size(var), n_in)
            for c, o, var in zip(carry, outs, eqn.outvars, strict=True)
        ]
        if all(D.same(g, c) for g, c in zip(grown, carry, strict=True)):
            return carry
        carry = grown
