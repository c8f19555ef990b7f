"""Finite differences for the checker: central differences, Richardson extrapolation.

:class:`Differences` differentiates one NumPy function at one point, along a direction
or along every coordinate: central differences at the steps ``h``, ``h/2`` and
``h/4`` (``h = 2 eps^(1/5)`` times ``max(1, |x[k]|)`` per coordinate, divided by 8
where the function leaves its domain) are combined by Richardson extrapolation, which
also estimates their error; one-sided differences tell a kink or jump within the
step from a wrong derivative.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


class Differences:
    """Derivatives of one function by central differences with Richardson steps.

    ``g`` maps a float64 point of shape ``S`` to an array of shape ``G``. Along a
    direction ``w`` the central differences ``D(t) = (g(x + t w) - g(x - t w)) / 2t``
    at ``t = h, h/2, h/4`` give two Richardson extrapolations ``R1 = (4 D(h/2) -
    D(h)) / 3`` and ``R2 = (4 D(h/4) - D(h/2)) / 3``; ``R2`` is the estimate and
    ``|R2 - R1|`` plus the rounding error ``~ eps |g| / (h/4)`` its error. If ``g``
    is not finite at a step where it is finite at ``x`` (the step left its domain),
    the step is divided by 8, up to three times.

    Args:
        g: The function (NumPy in, NumPy out).
        x: The point, float64, shape ``S``.
        center: ``g(x)``.
        eps: Machine epsilon of the precision ``g`` computes in.
        step: Largest relative step ``h`` (default ``2 eps^(1/5)``).
    """

    def __init__(
        self,
        g: Callable[[np.ndarray], np.ndarray],
        x: np.ndarray,
        center: np.ndarray,
        eps: float,
        step: float | None = None,
    ):
        self.g = g
        self.x = x
        self.center = np.asarray(center, dtype=np.float64)
        self.eps = eps
        self.step = 2 * eps ** (1 / 5) if step is None else float(step)
        # Per-coordinate scale of the steps.
        self.scale = np.maximum(1.0, np.abs(x))
        self._full: tuple[np.ndarray, np.ndarray] | None = None
        self._used_step: dict[bytes, float] = {}

    def _values(self, w: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        # np.asarray: 0-d arithmetic gives NumPy scalars, which frameworks reject.
        plus = np.asarray(self.g(np.asarray(self.x + t * w)), dtype=np.float64)
        minus = np.asarray(self.g(np.asarray(self.x - t * w)), dtype=np.float64)
        return plus, minus

    def along(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The derivative of ``g`` along ``w`` and its estimated error.

        Args:
            w: Direction, shape ``S`` (already scaled per coordinate).

        Returns:
            ``(d, e)``, both of shape ``G``: ``d ≈ Σ_k ∂g/∂x[k] w[k]``; ``nan``
            where ``g`` is not finite near ``x``.
        """
        finite_center = np.isfinite(self.center)
        h = self.step
        for _ in range(4):
            values = [self._values(w, t) for t in (h, h / 2, h / 4)]
            finite = np.logical_and.reduce(
                [np.isfinite(v) for pair in values for v in pair]
            )
            if np.all(finite | ~finite_center):
                break
            h /= 8
        self._used_step[w.tobytes()] = h
        d = [
            (p - m) / (2 * t)
            for (p, m), t in zip(values, (h, h / 2, h / 4), strict=True)
        ]
        r1 = (4 * d[1] - d[0]) / 3
        r2 = (4 * d[2] - d[1]) / 3
        magnitude = np.maximum.reduce(
            [np.abs(self.center), *(np.abs(v) for pair in values for v in pair)]
        )
        big = float(np.max(magnitude, initial=0.0)) if magnitude.size else 0.0
        with np.errstate(invalid="ignore"):
            noise = 3 * self.eps * (magnitude + 1e-3 * big) / (h / 4)
            error = np.abs(r2 - r1) + noise
        bad = ~(finite & finite_center)
        r2 = np.where(bad, np.nan, r2)
        error = np.where(bad, np.nan, error)
        return r2, error

    def full(self) -> tuple[np.ndarray, np.ndarray]:
        """The full derivative ``∂g/∂x`` (shape ``G + S``) and its estimated error."""
        if self._full is None:
            shape = self.x.shape
            size = self.x.size
            g_shape = self.center.shape
            ds = np.empty((*g_shape, size))
            es = np.empty((*g_shape, size))
            for k in range(size):
                w = np.zeros(size)
                w[k] = self.scale.reshape(-1)[k]
                d, e = self.along(w.reshape(shape))
                ds[..., k] = d / w[k]
                es[..., k] = e / w[k]
            self._full = (ds.reshape(g_shape + shape), es.reshape(g_shape + shape))
        return self._full

    def unit(self, k: int) -> np.ndarray:
        """The scaled direction of coordinate ``k`` (flat index)."""
        w = np.zeros(self.x.size)
        w[k] = self.scale.reshape(-1)[k]
        return w.reshape(self.x.shape)

    def random(self, rng: np.random.Generator) -> np.ndarray:
        """A random direction, scaled per coordinate, largest entry ``max(1, |x|)``."""
        z = rng.standard_normal(self.x.shape)
        top = float(np.max(np.abs(z), initial=0.0))
        direction: np.ndarray = (z / top if top else z) * self.scale
        return direction

    def kink(self, w: np.ndarray, weight: np.ndarray, tol: float) -> str | None:
        """Why ``weight · g`` is not differentiable at ``x`` along ``w``, or ``None``.

        One-sided differences ``(φ(t) - φ(0)) / t`` and ``(φ(0) - φ(-t)) / t`` of
        ``φ(t) = Σ weight * g(x + t w)`` differ by ``O(t)`` for a smooth function;
        a gap that does not shrink from ``t = h`` to ``h/4`` is a kink (or a jump)
        within the step.

        Args:
            w: Direction, shape ``S``.
            weight: Weights of ``g``'s entries, shape ``G``.
            tol: Tolerance of the comparison that failed (gaps below it are noise).

        Returns:
            An explanation, or ``None`` if ``g`` looks differentiable.
        """
        h = self._used_step.get(w.tobytes(), self.step)
        center = float(np.sum(weight * self.center))

        def phi(t: float) -> float:
            return float(np.sum(weight * self.g(np.asarray(self.x + t * w))))

        gaps = []
        for t in (h, h / 4):
            plus, minus = phi(t), phi(-t)
            if not (math.isfinite(plus) and math.isfinite(minus)):
                return (
                    f"the function is not finite within {t:.2g} of x along the "
                    f"direction of the worst entry, so it cannot be differenced there"
                )
            gaps.append(abs((plus - center) / t - (center - minus) / t))
        if gaps[1] > 0.5 * gaps[0] and gaps[1] > tol:
            return (
                f"one-sided differences differ by {gaps[1]:.3g} at step "
                f"{h / 4:.2g} and by {gaps[0]:.3g} at step {h:.2g}: the function "
                f"has a kink or jump at or within {h / 4:.2g} of x, where "
                f"derivatives are not defined; check "
                f"at another point"
            )
        return None
