"""SymPy behaviours worked around while SymNum generates code.

:func:`sympy_workarounds` replaces two methods of SymNum's ``SymbolicArray`` for the
duration of one code generation (under one lock for all threads): slices with a
step taken as NumPy takes them, and differentiation without SymPy first simplifying
every element.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np


@contextlib.contextmanager
def sympy_workarounds() -> Iterator[None]:
    """Both replacements in force (once, however nested)."""
    from symnum.array import SymbolicArray

    with (
        _replaced(SymbolicArray, "__getitem__", _strided_getitem),
        _replaced(SymbolicArray, "diff", _diff_by_symbols),
    ):
        yield


_PATCHING = threading.RLock()


@contextlib.contextmanager
def _replaced(
    cls: type, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]
) -> Iterator[None]:
    """``cls.name`` replaced by ``make(original)`` while code is made.

    Under one lock for all threads; a nested use finds it in force and leaves it.
    """
    with _PATCHING:
        original = getattr(cls, name)
        if getattr(original, "diffops_replaced", False):  # already in force
            yield
            return
        replacement = make(original)
        replacement.diffops_replaced = True  # type: ignore[attr-defined]
        setattr(cls, name, replacement)
        try:
            yield
        finally:
            setattr(cls, name, original)


def _strided_getitem(original: Callable[..., Any]) -> Callable[..., Any]:
    """Symbolic arrays sliced with a step as NumPy slices them.

    SymPy's N-d arrays slice wrongly with a step (``a[0:3:2]`` of a ``(3, 2)`` array
    keeps one row): such slices are taken from a NumPy object array instead.
    """

    def getitem(self: Any, index: Any) -> Any:
        parts = index if isinstance(index, tuple) else (index,)
        if not any(isinstance(p, slice) and p.step not in (None, 1) for p in parts):
            return original(self, index)
        import sympy

        elements = np.empty(self.shape, dtype=object)
        elements.ravel()[:] = list(self.flat)
        picked = elements[index]
        if not isinstance(picked, np.ndarray):
            return picked
        flat = sympy.ImmutableDenseNDimArray(picked.ravel().tolist(), picked.shape)
        return type(self)(flat, shape=picked.shape, dtype=self.dtype)

    return getitem


def _diff_by_symbols(original: Callable[..., Any]) -> Callable[..., Any]:
    """Symbolic arrays differentiated without SymPy simplifying each element first.

    SymNum's ``SymbolicArray.diff`` first asks whether every element is constant in
    the variables (``Expr.is_constant``), which simplifies each element: minutes for
    ``tanh`` of a squared cubic of six variables (found by the fuzz campaign). Here
    an array none of whose elements has the variables as free symbols still takes
    SymNum's path (that check is then immediate); any other is differentiated
    element by element directly. That differs only for an element that has the
    variables but does not depend on them, whose derivative is then an expression
    equal to zero instead of the number 0.
    """

    def diff(self: Any, *variables: Any) -> Any:
        wrt = set().union(*(v.free_symbols for v in variables))
        base = getattr(self, "_base_array", None)
        if base is None or not any(e.free_symbols & wrt for e in self.flat):
            return original(self, *variables)
        return type(self)(base.diff(*variables), dtype=self.dtype)

    return diff
