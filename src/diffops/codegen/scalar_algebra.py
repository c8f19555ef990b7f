"""Scalar mode's algebraic shortcuts, applied to one element before it is emitted.

Each is exact in IEEE arithmetic for finite values (non-finite inputs run the array
code): ``x + 0``, ``x * 1``, ``x * 0`` (the zeros of one-hot bases and paddings),
``x / 1``; negations moved outwards (``a + (-b) = a - b``, ``c * (-y) = -(c * y)``),
where they cancel and meet equal products; selections by a constant predicate;
integer powers as products.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from diffops.codegen.ir import Aval
from diffops.codegen.scalar_terms import NOT_SIMPLIFIED, Term, cast

if TYPE_CHECKING:
    from diffops.codegen.scalar import ScalarEmitter

Elems = list[Any]
Shortcut = Callable[["ScalarEmitter", Elems, list[bool], list[Aval], str, Any], Any]


def simplified(
    em: ScalarEmitter, prim: str, params: Any, elems: Elems, ins: list[Aval], kind: str
) -> Any:
    """The element ``prim(*elems)`` without a new statement, or ``NOT_SIMPLIFIED``.

    Args:
        em: The emitter (new statements, if a shortcut needs some, go there).
        prim: Element-wise primitive.
        params: Its parameters.
        elems: The elements (constants or :class:`Term`).
        ins: Their avals (0-d).
        kind: The result's kind (``"f"``, ``"i"``, ``"b"``).
    """
    shortcut = _SHORTCUTS.get(prim)
    if shortcut is None:
        return NOT_SIMPLIFIED
    const = [not isinstance(e, Term) for e in elems]
    return shortcut(em, elems, const, ins, kind, params)


def unnegated(em: ScalarEmitter, e: Any) -> Any:
    """``y`` if ``e`` is ``-y`` (a negated local or a negative constant)."""
    if isinstance(e, Term):
        return em.negation_of.get(e.name)
    if isinstance(e, float) and e < 0:
        return -e
    return None


def _add(
    em: ScalarEmitter, elems: Elems, const: list[bool], ins: Any, kind: str, _: Any
) -> Any:
    a, b = elems
    if const[0] and a == 0 and not const[1]:
        return b
    if const[1] and b == 0 and not const[0]:
        return a
    if kind == "f" and not all(const):
        # a + (-b) = a - b, exactly.
        nb, na = unnegated(em, b), unnegated(em, a)
        if nb is not None:
            return em.apply("sub", {}, [a, nb], ins, kind)
        if na is not None:
            return em.apply("sub", {}, [b, na], ins, kind)
    return NOT_SIMPLIFIED


def _sub(
    em: ScalarEmitter, elems: Elems, const: list[bool], ins: Any, kind: str, _: Any
) -> Any:
    a, b = elems
    if const[1] and b == 0 and not const[0]:
        return a
    if const[0] and a == 0 and not const[1] and kind == "f":
        return em.apply("neg", {}, [b], ins[1:], kind)
    if a is b and kind == "i":
        return 0
    if kind == "f" and not all(const):
        # a - (-b) = a + b and (-a) - b = -(a + b), exactly.
        nb, na = unnegated(em, b), unnegated(em, a)
        if nb is not None:
            return em.apply("add", {}, [a, nb], ins, kind)
        if na is not None and isinstance(a, Term):
            inner = em.apply("add", {}, [na, b], ins, kind)
            return em.apply("neg", {}, [inner], ins[:1], kind)
    return NOT_SIMPLIFIED


def _negation_outwards(
    em: ScalarEmitter, prim: str, elems: Elems, ins: Any, kind: str
) -> Any:
    """``(-a) op b = a op (-b) = -(a op b)`` for ``mul`` and ``div``, exactly."""
    flipped = [unnegated(em, e) for e in elems]
    if sum(f is not None for f in flipped) != 1:
        return NOT_SIMPLIFIED
    plain = [f if f is not None else e for f, e in zip(flipped, elems, strict=True)]
    inner = em.apply(prim, {}, plain, ins, kind)
    return em.apply("neg", {}, [inner], ins[:1], kind)


def _mul(
    em: ScalarEmitter, elems: Elems, const: list[bool], ins: Any, kind: str, _: Any
) -> Any:
    a, b = elems
    for x, y, cx in ((a, b, const[0]), (b, a, const[1])):
        if cx and x == 1 and isinstance(y, Term):
            return y
        if cx and x == 0:
            return cast(0, kind)
        if cx and x == -1 and isinstance(y, Term):
            return em.apply("neg", {}, [y], ins[:1], kind)
    if kind == "f":
        return _negation_outwards(em, "mul", elems, ins, kind)
    return NOT_SIMPLIFIED


def _div(
    em: ScalarEmitter, elems: Elems, const: list[bool], ins: Any, kind: str, _: Any
) -> Any:
    a, b = elems
    if const[1] and b == 1 and isinstance(a, Term):
        return a
    if kind == "f" and not all(const):
        return _negation_outwards(em, "div", elems, ins, kind)
    return NOT_SIMPLIFIED


def _neg(
    em: ScalarEmitter, elems: Elems, const: list[bool], ins: Any, kind: str, _: Any
) -> Any:
    (a,) = elems
    if isinstance(a, Term) and a.name in em.negation_of:
        return em.negation_of[a.name]
    return NOT_SIMPLIFIED


def _select_n(
    em: ScalarEmitter, elems: Elems, const: list[bool], ins: Any, kind: str, _: Any
) -> Any:
    pred, *cases = elems
    if const[0]:
        return cases[int(pred)]
    if all(c is cases[0] for c in cases):
        return cases[0]
    return NOT_SIMPLIFIED


def _integer_pow(
    em: ScalarEmitter, elems: Elems, const: list[bool], ins: Any, kind: str, params: Any
) -> Any:
    """``x ** y`` as products (square and multiply)."""
    y, x, aval = int(params["y"]), elems[0], ins[0]
    if y == 0:
        return cast(1, kind)
    acc: Any = None
    base = x
    n = abs(y)
    while n:
        if n & 1:
            acc = (
                base
                if acc is None
                else em.apply("mul", {}, [acc, base], [aval] * 2, kind)
            )
        n >>= 1
        if n:
            base = em.apply("mul", {}, [base, base], [aval] * 2, kind)
    if y < 0:
        return em.apply("div", {}, [1.0, acc], [aval] * 2, kind)
    return acc


def _square(
    em: ScalarEmitter, elems: Elems, const: list[bool], ins: Any, kind: str, _: Any
) -> Any:
    return em.apply("mul", {}, [elems[0], elems[0]], ins * 2, kind)


def _clamp(
    em: ScalarEmitter, elems: Elems, const: list[bool], ins: Any, kind: str, _: Any
) -> Any:
    lo, x, hi = elems
    low = em.apply("max", {}, [x, lo], [ins[1], ins[0]], kind)
    return em.apply("min", {}, [low, hi], [ins[1], ins[2]], kind)


def _same_twice(
    em: ScalarEmitter, elems: Elems, const: list[bool], ins: Any, kind: str, _: Any
) -> Any:
    return elems[0] if elems[0] is elems[1] else NOT_SIMPLIFIED


def _logical(prim: str) -> Shortcut:
    def shortcut(
        em: ScalarEmitter, elems: Elems, const: list[bool], ins: Any, kind: str, _: Any
    ) -> Any:
        if kind != "b":
            return NOT_SIMPLIFIED
        pairs = ((elems[0], elems[1], const[0]), (elems[1], elems[0], const[1]))
        for x, y, cx in pairs:
            if cx:
                return y if bool(x) == (prim == "and") else bool(x)
        return NOT_SIMPLIFIED

    return shortcut


_SHORTCUTS: dict[str, Shortcut] = {
    "add": _add,
    "add_any": _add,
    "sub": _sub,
    "mul": _mul,
    "div": _div,
    "neg": _neg,
    "select_n": _select_n,
    "integer_pow": _integer_pow,
    "square": _square,
    "clamp": _clamp,
    "max": _same_twice,
    "min": _same_twice,
    "and": _logical("and"),
    "or": _logical("or"),
}
