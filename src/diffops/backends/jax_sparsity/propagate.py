"""Dependency propagation through a jaxpr: a rule per primitive, else conservative.

:func:`propagate` walks a jaxpr's equations in order, keeping for every variable its
dependency set (:mod:`.deps`) and, where it is a compile-time constant, its value
(evaluated lazily with :mod:`.emulate` when a rule needs it: gather indices, slice
starts, select predicates, constant matrices). Each primitive's rule is looked up in
the context's table (:data:`.table.RULES`); the rules are precise for what they
handle and raise :class:`Imprecise` otherwise. A primitive without a rule, and any
rule that raises, gets :func:`conservative`: every output element depends on
everything any operand depends on. That makes the result a superset of the true
structure by construction.

The rules are in :mod:`.rules` (one equation) and :mod:`.control` (calls and
control flow, which propagate through the jaxprs they run).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from diffops.backends.jax_sparsity import deps as D
from diffops.backends.jax_sparsity.emulate import NotEmulated, evaluate

Deps = D.Deps

FOLD_LIMIT = 1_000_000
"""Constants with more elements than this are not evaluated."""


class Imprecise(Exception):
    """A rule cannot be precise for this equation (e.g. indices that are not known)."""


Rule = Callable[[Any, list[Deps], "Scope"], list[Deps]]
"""``rule(eqn, operand_deps, scope) -> output_deps``; raises :class:`Imprecise`."""


class Context:
    """What the rules need besides an equation's operands.

    Attributes:
        n_in: Number of input elements tracked.
        rules: The rule per primitive name.
    """

    def __init__(self, n_in: int, rules: dict[str, Rule]):
        self.n_in = n_in
        self.rules = rules


def aval_shape(atom: Any) -> tuple[int, ...]:
    """The shape of a jaxpr variable or literal."""
    return tuple(getattr(atom.aval, "shape", ()))


def aval_size(atom: Any) -> int:
    """The number of elements of a jaxpr variable or literal."""
    return math.prod(aval_shape(atom))


def is_literal(atom: Any) -> bool:
    """Whether ``atom`` is a literal (a constant written in the jaxpr)."""
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
        if is_literal(atom):
            return None
        return self.deps.get(atom)

    def value(self, atom: Any) -> np.ndarray | None:
        """The value of ``atom`` if it is a constant (evaluated now), else ``None``."""
        if is_literal(atom):
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
        if any(aval_size(v) > FOLD_LIMIT for v in eqn.outvars):
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
    out_values = [getter(scope, v) for v in jaxpr.outvars]
    return out_deps, out_values


Getter = Callable[[], "np.ndarray | None"]


def getter(scope: Scope, atom: Any) -> Getter:
    """A function giving ``atom``'s constant value (``None`` if not constant)."""
    return lambda: scope.value(atom)


# Equations never evaluated as constants (random numbers, effects).
_OPAQUE_CONSTANTS = frozenset(
    ["rng_bit_generator", "rng_uniform", "random_bits", "random_seed", "random_wrap"]
)


def apply_rule(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
    """The dependency sets of an equation's outputs (its rule, else conservative)."""
    rule = scope.ctx.rules.get(eqn.primitive.name)
    if rule is not None:
        try:
            outs = rule(eqn, operands, scope)
        except Imprecise:
            outs = None
        except Exception:  # a rule meeting a case it does not know: stay safe
            outs = None
        if outs is not None:
            sizes = [aval_size(v) for v in eqn.outvars]
            if len(outs) == len(sizes) and all(
                d is None or d.shape == (s, scope.ctx.n_in)
                for d, s in zip(outs, sizes, strict=True)
            ):
                return outs
    return conservative(eqn, operands, scope)


def conservative(eqn: Any, operands: list[Deps], scope: Scope) -> list[Deps]:
    """Every output element depends on everything any operand depends on."""
    n_in = scope.ctx.n_in
    return [D.everything(operands, aval_size(v), n_in) for v in eqn.outvars]
