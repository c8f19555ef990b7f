"""A plain program representation of a closed jaxpr, independent of JAX's classes.

:func:`from_jaxpr` is the only place that reads JAX objects: it inlines nested calls
(``jit``/``pjit``, ``closed_call``, ``custom_jvp_call``, ``custom_vjp_call``,
``remat``/``checkpoint``), turns the closed-over constants and literals into
:class:`Lit` values, and turns parameters into plain Python values (tuples of ints,
NumPy dtypes, enum names, sub-programs). Everything after it (simplification and
emission) works on :class:`Program` alone.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from diffops.codegen.errors import UnsupportedProgramError

Shape = tuple[int, ...]


class Aval(NamedTuple):
    """Shape and dtype of a value."""

    shape: Shape
    dtype: np.dtype[Any]

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)


_IDS = itertools.count()


@dataclass(eq=False)
class Var:
    """A value computed by the program (compared by identity)."""

    aval: Aval
    id: int = field(default_factory=lambda: next(_IDS))

    def __repr__(self) -> str:
        return f"Var({self.id}, {self.aval.shape}, {self.aval.dtype})"


@dataclass(eq=False)
class Lit:
    """A constant value (a literal or a closed-over constant)."""

    value: np.ndarray[Any, Any]

    @property
    def aval(self) -> Aval:
        """Shape and dtype of the constant."""
        return Aval(tuple(self.value.shape), self.value.dtype)

    def __repr__(self) -> str:
        return f"Lit({self.value!r})"


Atom = Var | Lit


@dataclass(eq=False)
class Eqn:
    """One primitive application: ``outputs = prim[params](*inputs)``."""

    prim: str
    inputs: list[Atom]
    outputs: list[Var]
    params: dict[str, Any]


@dataclass(eq=False)
class Program:
    """A straight-line program over :class:`Var` and :class:`Lit` values."""

    inputs: list[Var]
    outputs: list[Atom]
    eqns: list[Eqn]

    def walk(self) -> Iterator[Eqn]:
        """Every equation, including those of sub-programs (loop and branch bodies)."""
        for eqn in self.eqns:
            yield eqn
            for sub in sub_programs(eqn):
                yield from sub.walk()


def sub_programs(eqn: Eqn) -> list[Program]:
    """The sub-programs held in an equation's parameters."""
    found: list[Program] = []
    for value in eqn.params.values():
        if isinstance(value, Program):
            found.append(value)
        elif isinstance(value, tuple):
            found.extend(v for v in value if isinstance(v, Program))
    return found


INLINED = {
    "pjit": "jaxpr",
    "jit": "jaxpr",
    "closed_call": "call_jaxpr",
    "core_call": "call_jaxpr",
    "custom_jvp_call": "call_jaxpr",
    "custom_vjp_call": "call_jaxpr",
    "custom_vjp_call_jaxpr": "fun_jaxpr",
    "remat": "jaxpr",
    "remat2": "jaxpr",
    "checkpoint": "jaxpr",
    "custom_lin": None,
}
"""Call-like primitives whose body is inlined, with the parameter holding it."""

_FIELD_ORDER = {
    "GatherDimensionNumbers": (
        "offset_dims",
        "collapsed_slice_dims",
        "start_index_map",
        "operand_batching_dims",
        "start_indices_batching_dims",
    ),
    "ScatterDimensionNumbers": (
        "update_window_dims",
        "inserted_window_dims",
        "scatter_dims_to_operand_dims",
        "operand_batching_dims",
        "scatter_indices_batching_dims",
    ),
}


def plain(value: Any) -> Any:
    """A parameter value as plain Python (tuples, ints, floats, dtypes, names)."""
    if isinstance(value, bool | str | type(None)):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value)
    if isinstance(value, np.dtype):
        return value
    if isinstance(value, enum.Enum):
        return value.name
    fields = _FIELD_ORDER.get(type(value).__name__)
    if fields is not None:
        return tuple(plain(getattr(value, f)) for f in fields)
    if isinstance(value, list | tuple):
        return tuple(plain(v) for v in value)
    if type(value).__name__ in ("ClosedJaxpr", "Jaxpr"):
        return from_jaxpr(value)
    if isinstance(value, type) and issubclass(value, np.generic):
        return np.dtype(value)
    return value


def _aval(jax_aval: Any) -> Aval:
    shape = tuple(jax_aval.shape)
    if not all(isinstance(d, int | np.integer) for d in shape):
        msg = (
            f"diffops.codegen needs static shapes, got {shape} (symbolic dimensions); "
            'use backend="jax" for this function.'
        )
        raise UnsupportedProgramError(msg)
    dtype = np.dtype(jax_aval.dtype)
    if dtype.kind not in "biuf":
        msg = (
            f"diffops.codegen translates real, integer and boolean arrays, not "
            f'{dtype}; use backend="jax" for this function.'
        )
        raise UnsupportedProgramError(msg)
    return Aval(tuple(int(d) for d in shape), dtype)


def from_jaxpr(closed: Any) -> Program:
    """Convert a ``ClosedJaxpr`` (or an open ``Jaxpr`` without constants).

    Args:
        closed: What ``jax.make_jaxpr`` returns, or a sub-jaxpr from its parameters.

    Returns:
        The program, with nested calls inlined.
    """
    jaxpr = getattr(closed, "jaxpr", closed)
    consts = list(getattr(closed, "consts", ()))
    env: dict[Any, Atom] = {}
    for var, const in zip(jaxpr.constvars, consts, strict=True):
        env[var] = Lit(np.asarray(const))
    inputs = [Var(_aval(v.aval)) for v in jaxpr.invars]
    env.update(zip(jaxpr.invars, inputs, strict=True))
    eqns: list[Eqn] = []
    _convert(jaxpr.eqns, env, eqns)
    outputs = [_read(env, v) for v in jaxpr.outvars]
    return Program(inputs, outputs, eqns)


def _read(env: dict[Any, Atom], atom: Any) -> Atom:
    from jax.extend.core import Literal

    if isinstance(atom, Literal):
        return Lit(np.asarray(atom.val, dtype=_aval(atom.aval).dtype))
    return env[atom]


def _convert(jax_eqns: Any, env: dict[Any, Atom], out: list[Eqn]) -> None:
    for jeqn in jax_eqns:
        name = jeqn.primitive.name
        inputs = [_read(env, v) for v in jeqn.invars]
        if name in INLINED:
            key = INLINED[name]
            sub = jeqn.params.get(key) if key else None
            if sub is None:
                sub = next(
                    (
                        v
                        for v in jeqn.params.values()
                        if type(v).__name__ in ("ClosedJaxpr", "Jaxpr")
                    ),
                    None,
                )
            if sub is not None:
                _inline(sub, inputs, jeqn.outvars, env, out)
                continue
        outputs = [Var(_aval(v.aval)) for v in jeqn.outvars]
        params = {k: plain(v) for k, v in jeqn.params.items()}
        out.append(Eqn(name, inputs, outputs, params))
        for v, new in zip(jeqn.outvars, outputs, strict=True):
            env[v] = new


def _inline(
    sub: Any, inputs: list[Atom], outvars: Any, env: dict[Any, Atom], out: list[Eqn]
) -> None:
    jaxpr = getattr(sub, "jaxpr", sub)
    consts = list(getattr(sub, "consts", ()))
    inner: dict[Any, Atom] = {}
    for var, const in zip(jaxpr.constvars, consts, strict=True):
        inner[var] = Lit(np.asarray(const))
    inner.update(zip(jaxpr.invars, inputs, strict=True))
    _convert(jaxpr.eqns, inner, out)
    for v, result in zip(outvars, jaxpr.outvars, strict=True):
        env[v] = _read(inner, result)
