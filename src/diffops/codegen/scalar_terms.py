"""Scalar mode's building blocks: symbolic scalars, statements, element helpers.

See :mod:`diffops.codegen.scalar` for how the scalar code is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from diffops.codegen.ir import Aval
from diffops.codegen.primitives import namespace

if TYPE_CHECKING:
    from diffops.codegen.scalar import ScalarEmitter

Objects = np.ndarray[Any, Any]


class TooLarge(Exception):
    """The scalar code would exceed its statement budget."""


COMMUTATIVE = frozenset({"add", "add_any", "mul", "eq", "ne", "and", "or", "xor"})
BRIDGE_COST = 40
"""Statements a bridge counts as in the budget (packing and a NumPy call)."""


def kind_of(dtype: np.dtype[Any]) -> str:
    """``"f"``, ``"i"`` or ``"b"``: how scalar code holds elements of ``dtype``."""
    return "f" if dtype.kind == "f" else ("b" if dtype.kind == "b" else "i")


def cast(value: Any, kind: str) -> Any:
    """A constant as the Python number of ``kind``."""
    if kind == "f":
        return float(value)
    if kind == "b":
        return bool(value)
    return int(value)


def scalar_aval(kind: str) -> Aval:
    """The 0-d aval of an element of ``kind``."""
    dtype = {"f": np.float64, "i": np.int64, "b": np.bool_}[kind]
    return Aval((), np.dtype(dtype))


class Term:
    """A symbolic scalar: a local variable of the generated function.

    Its arithmetic operators emit statements, so that NumPy's own sums and products
    on object arrays (``np.sum``, ``@``, ``np.add.at``) write scalar code.
    """

    __slots__ = ("emitter", "kind", "name")

    def __init__(self, name: str, kind: str, emitter: ScalarEmitter):
        self.name = name
        self.kind = kind
        self.emitter = emitter

    def __repr__(self) -> str:
        return self.name

    def _op(self, prim: str, a: Any, b: Any) -> Any:
        return self.emitter.apply(
            prim, {}, [a, b], [scalar_aval(self.kind)] * 2, self.kind
        )

    def __add__(self, other: Any) -> Any:
        return self._op("add", self, other)

    def __radd__(self, other: Any) -> Any:
        return self._op("add", other, self)

    def __sub__(self, other: Any) -> Any:
        return self._op("sub", self, other)

    def __rsub__(self, other: Any) -> Any:
        return self._op("sub", other, self)

    def __mul__(self, other: Any) -> Any:
        return self._op("mul", self, other)

    def __rmul__(self, other: Any) -> Any:
        return self._op("mul", other, self)

    def __neg__(self) -> Any:
        return self.emitter.apply(
            "neg", {}, [self], [scalar_aval(self.kind)], self.kind
        )


class Stmt:
    """``targets = expr``, reading the locals in ``deps``."""

    __slots__ = ("deps", "expr", "targets")

    def __init__(self, targets: tuple[str, ...], expr: str, deps: tuple[str, ...]):
        self.targets = targets
        self.expr = expr
        self.deps = deps


NOT_SIMPLIFIED = object()
"""Returned by the algebraic shortcuts when none applies."""
_NAMESPACE: dict[str, Any] = {}


def scalar_namespace() -> dict[str, Any]:
    """The names generated code refers to (for folding constants)."""
    if not _NAMESPACE:
        _NAMESPACE.update(namespace())
    return _NAMESPACE


def concrete(v: Objects, aval: Aval) -> np.ndarray[Any, Any] | None:
    """The values of ``v`` as a typed array if none is symbolic, else None."""
    flat = v.reshape(-1).tolist()
    if any(isinstance(e, Term) for e in flat):
        return None
    return np.array(flat, dtype=aval.dtype).reshape(aval.shape)


def stack_items(items: list[Objects], aval: Aval) -> Objects:
    """Object arrays stacked along a new first axis."""
    out = np.empty(aval.shape, dtype=object)
    for i, item in enumerate(items):
        out[i, ...] = item
    return out


def from_list(items: list[Any]) -> Objects:
    """A 1-d object array of ``items`` (nothing converted)."""
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out
