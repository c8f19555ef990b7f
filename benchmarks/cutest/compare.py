"""Sparse results against dense ones: missed non-zeros, wrong values, spurious entries.

NumPy only, shared by both harnesses. An entry of the dense derivative counts as
non-zero when it is finite and not 0 at one of the points; entries that are NaN or
infinite at a point are left out of every count at that point (a dense Jacobian
computes ``0 · inf = nan`` where the sparse one stores nothing) and counted in
``nonfinite``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

MISS_EXAMPLES = 5
"""How many missed entries are listed by position."""


def rel_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """``max |actual - expected| / max |expected|`` over the finite entries of expected.

    Returns ``inf`` when ``actual`` is not finite where ``expected`` is, or when the
    shapes differ; ``0`` when both are zero; the absolute error when ``expected`` is
    all zero.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        return float("inf")
    finite = np.isfinite(expected)
    if not finite.any():
        return 0.0
    difference = np.abs(actual[finite] - expected[finite])
    if not np.all(np.isfinite(difference)):
        return float("inf")
    scale = float(np.max(np.abs(expected[finite])))
    worst = float(difference.max()) if difference.size else 0.0
    return worst / scale if scale > 0 else worst


@dataclass
class Comparison:
    """Accumulates the comparison of one matrix over several points.

    Args:
        pattern: Boolean array ``(rows, cols)``: the entries the sparse result stores.
    """

    pattern: np.ndarray
    observed: np.ndarray = field(init=False)
    max_rel_error: float = field(default=0.0, init=False)
    nonfinite_mask: np.ndarray = field(init=False)
    points: int = field(default=0, init=False)
    pattern_changed: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.pattern = np.asarray(self.pattern, dtype=bool)
        self.observed = np.zeros(self.pattern.shape, dtype=bool)
        self.nonfinite_mask = np.zeros(self.pattern.shape, dtype=bool)

    def add(
        self, sparse: np.ndarray, dense: np.ndarray, pattern: np.ndarray | None = None
    ) -> None:
        """One point: the sparse result (as a dense array) and the dense derivative.

        Args:
            sparse: The sparse result converted to a dense array ``(rows, cols)``.
            dense: The dense derivative ``(rows, cols)``.
            pattern: The structure of the sparse result at this point, if it can
                differ from the first one (it must not).
        """
        dense = np.asarray(dense, dtype=np.float64).reshape(self.pattern.shape)
        sparse = np.asarray(sparse, dtype=np.float64).reshape(self.pattern.shape)
        if pattern is not None and not np.array_equal(
            np.asarray(pattern, dtype=bool), self.pattern
        ):
            self.pattern_changed = True
        finite = np.isfinite(dense)
        self.nonfinite_mask |= ~finite
        self.observed |= finite & (dense != 0)
        self.max_rel_error = max(self.max_rel_error, rel_error(sparse, dense))
        self.points += 1

    @property
    def misses(self) -> np.ndarray:
        """Entries non-zero in the dense derivative but not in the pattern."""
        return self.observed & ~self.pattern

    def summary(self) -> dict[str, object]:
        """Counts for the CSV row."""
        rows, cols = np.nonzero(self.misses)
        first_rows, first_cols = rows[:MISS_EXAMPLES], cols[:MISS_EXAMPLES]
        examples = zip(first_rows.tolist(), first_cols.tolist(), strict=True)
        return {
            "nnz": int(self.pattern.sum()),
            "observed_nnz": int(self.observed.sum()),
            "misses": int(rows.size),
            "miss_examples": " ".join(f"({i},{j})" for i, j in examples),
            "spurious": int((self.pattern & ~self.observed).sum()),
            "nonfinite": int(self.nonfinite_mask.sum()),
            "max_rel_error": self.max_rel_error,
            "pattern_changed": self.pattern_changed,
        }


def status(counts: dict[str, Any], rtol: float) -> str:
    """``ok``, ``miss``, ``wrong`` or ``miss+wrong`` from a row's counts.

    Args:
        counts: ``misses``, ``max_rel_error``, ``lower_rel_error`` and
            ``pattern_changed`` (from :meth:`Comparison.summary` and the value and
            gradient comparison).
        rtol: Largest relative error accepted.
    """
    failed = []
    if counts["misses"]:
        failed.append("miss")
    if (
        counts["max_rel_error"] > rtol
        or counts["lower_rel_error"] > rtol
        or counts.get("pattern_changed")
    ):
        failed.append("wrong")
    return "+".join(failed) or "ok"


def row_bound(pattern: np.ndarray) -> int:
    """Non-zeros in the fullest row: a lower bound on the colors of a column or star
    coloring (for a Jacobian the fewer of that and the fullest column bounds a
    one-sided coloring).
    """
    pattern = np.asarray(pattern, dtype=bool)
    if pattern.size == 0:
        return 0
    return int(pattern.sum(axis=1).max())


def column_bound(pattern: np.ndarray) -> int:
    """Non-zeros in the fullest column."""
    pattern = np.asarray(pattern, dtype=bool)
    if pattern.size == 0:
        return 0
    return int(pattern.sum(axis=0).max())
