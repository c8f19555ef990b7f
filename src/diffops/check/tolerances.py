"""Limits and default tolerances of the derivative checker.

:data:`FULL_LIMIT` chooses between differencing every coordinate direction and random
projections; :data:`FLOOR` and :data:`SAFETY` shape each entry's tolerance (the
formula is in the :mod:`diffops.check` docstring); :func:`default_tolerances` gives
the default ``rtol`` and ``atol`` of a dtype.
"""

from __future__ import annotations

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
