"""Limits and default tolerances of the derivative checker.

:data:`FULL_LIMIT` chooses between differencing every coordinate direction and random
projections; :data:`FLOOR` and :data:`SAFETY` shape each entry's tolerance (the
formula is in the :mod:`diffops.check` docstring); :func:`default_tolerances` gives
the default ``rtol`` and ``atol`` of a dtype, and :class:`CheckSettings` holds the
options of one check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FULL_LIMIT = 32
"""Largest ``x.size`` for which every coordinate direction is differenced."""

FLOOR = 1e-2
"""Entries are compared relative to at least this fraction of the part's scale."""

SAFETY = 3.0
"""Multiple of the estimated finite-difference error added to the tolerance."""


def default_tolerances(dtype: np.dtype) -> tuple[float, float]:
    """Default ``(rtol, atol)`` for outputs of ``dtype``.

    Args:
        dtype: float32 or float64.

    Returns:
        ``(1e-6, 16 eps)`` for float64 and ``(1e-4, 16 eps)`` for float32, whose
        derivatives carry rounding errors of about ``1e-6`` relative to their terms
        (finite differences are taken in float64 where the functions allow it).
    """
    eps = float(np.finfo(dtype).eps)
    return (1e-4 if np.dtype(dtype) == np.float32 else 1e-6), 16 * eps


@dataclass(frozen=True)
class CheckSettings:
    """How a check compares: the options of :func:`~diffops.check_derivatives`.

    Attributes:
        rtol: Relative tolerance, or ``None`` for the dtype's default.
        atol: Absolute tolerance, or ``None`` for the dtype's default.
        step: Largest finite-difference step, or ``None`` for the default.
        directions: Random directions / closure arguments per check.
        full_limit: Largest ``x.size`` differenced along every coordinate.
        seed: Seed of the random directions and closure arguments.
    """

    rtol: float | None = None
    atol: float | None = None
    step: float | None = None
    directions: int = 3
    full_limit: int = FULL_LIMIT
    seed: int = 0

    def tolerances(self, dtype: np.dtype) -> tuple[float, float]:
        """``(rtol, atol)`` for a point of ``dtype``, defaults filled in.

        Args:
            dtype: The point's dtype.

        Returns:
            The tolerances.
        """
        default_rtol, default_atol = default_tolerances(dtype)
        rtol = default_rtol if self.rtol is None else float(self.rtol)
        atol = default_atol if self.atol is None else float(self.atol)
        return rtol, atol
