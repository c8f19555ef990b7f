"""One evaluation per point for optimisers' callbacks: :class:`PointCache`.

Optimisers ask for a function's value, its derivatives and its products through
separate callbacks, usually at the same point one after the other (SciPy's ``fun``
then ``jac``; IPOPT's ``objective`` then ``gradient``). A :class:`PointCache` holds a
*ladder* of evaluators, each returning everything the one below returns and more
(``f``, then ``grad_and_value``, then ``hessian_grad_and_value``), and remembers the
last few points with what was computed there, so a callback at a recent point costs
no new evaluation.

Points are compared by value (shape and every element), never by identity, since
optimisers reuse and overwrite their arrays; the cache keeps its own copies. A point
may carry a *key* of extra arrays compared the same way (the multipliers of a
Lagrangian's Hessian), so a new key at the same ``x`` is a new evaluation.

Used by :mod:`diffops.scipy` and :mod:`diffops.ipopt`; not thread-safe by itself
(its owners call it under their own lock).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["CachedPoint", "PointCache"]


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)


class CachedPoint:
    """What one evaluation returned at one point.

    Attributes:
        x: Private copy of the point.
        key: Private copies of the key arrays.
        level: Index of the evaluator in the ladder that produced ``out``.
        out: The evaluator's result: a tuple whose last element is the value (the
            diffops return order: highest derivative first, value last).
    """

    __slots__ = ("key", "level", "out", "x")

    def __init__(
        self,
        x: np.ndarray,
        key: tuple[np.ndarray, ...],
        level: int,
        out: tuple[Any, ...],
    ):
        self.x = x
        self.key = key
        self.level = level
        self.out = out

    @property
    def value(self) -> Any:
        """The function's value at ``x`` (the last element of ``out``)."""
        return self.out[-1]

    def matches(self, x: np.ndarray, key: tuple[np.ndarray, ...]) -> bool:
        """Whether this is the point ``x`` with key ``key`` (compared by value)."""
        return (
            _same(x, self.x)
            and len(key) == len(self.key)
            and all(_same(a, b) for a, b in zip(key, self.key, strict=True))
        )


class PointCache:
    """The most recent evaluations of a ladder of evaluators, by point.

    Args:
        ladder: ``(name, evaluator)`` pairs in increasing order of what they return;
            ``evaluator(x, *key)`` returns a tuple whose last element is the value,
            and each evaluator's result answers every request of the ones before it.
        size: Points kept (the least recently used is dropped first).
        prefetch: At a new point, evaluate the highest level asked for so far
            (``True``) or only the level asked for (``False``).

    Attributes:
        names: The evaluators' names, in ladder order.
        prefetch: As given.
        evaluations: Evaluations so far, by evaluator name.
    """

    def __init__(
        self,
        ladder: Sequence[tuple[str, Callable[..., tuple[Any, ...]]]],
        *,
        size: int = 2,
        prefetch: bool = True,
    ):
        self.names = tuple(name for name, _ in ladder)
        self._evaluators = tuple(evaluator for _, evaluator in ladder)
        self._size = int(size)
        self.prefetch = bool(prefetch)
        self._points: list[CachedPoint] = []  # most recent first
        self._asked = 0  # highest level asked for so far
        self.evaluations = dict.fromkeys(self.names, 0)

    def at(
        self, level: int, x: np.ndarray, key: tuple[np.ndarray, ...] = ()
    ) -> CachedPoint:
        """The point ``x`` (with ``key``) evaluated at ``level`` or higher.

        Args:
            level: Index of the lowest evaluator whose result answers the request.
            x: The point (an array the cache copies if it evaluates).
            key: Further arrays that identify the point (copied likewise).

        Returns:
            A :class:`CachedPoint` whose ``level`` is at least ``level``: a stored
            one when ``x`` and ``key`` equal a recent point's, else a new evaluation.
        """
        self._asked = max(self._asked, level)
        found = None
        for i, point in enumerate(self._points):
            if point.matches(x, key):
                found = self._points.pop(i)
                break
        if found is None:
            level = max(level, self._asked) if self.prefetch else level
        elif found.level >= level:
            self._points.insert(0, found)
            return found
        x = np.array(x, copy=True)  # owned: the optimiser may overwrite its array
        key = tuple(np.array(k, copy=True) for k in key)
        out = self._evaluators[level](x, *key)
        self.evaluations[self.names[level]] += 1
        point = CachedPoint(x, key, level, out)
        self._points.insert(0, point)
        del self._points[self._size :]
        return point

    def clear(self) -> None:
        """Forget every stored point (the counts stay)."""
        self._points.clear()
