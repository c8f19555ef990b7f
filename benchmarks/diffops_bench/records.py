"""What a measurement produces: per-call statistics and one JSON row per timing."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """Per-call times of one callable, from batches of repeated calls.

    Attributes:
        median_us: Median over batches of the time per call, in microseconds.
        q1_us: First quartile of the per-call times, in microseconds.
        q3_us: Third quartile of the per-call times, in microseconds.
        min_us: Fastest batch's time per call, in microseconds.
        loops: Calls per batch.
        repeats: Number of batches.
    """

    median_us: float
    q1_us: float
    q3_us: float
    min_us: float
    loops: int
    repeats: int


def quartiles(samples: Sequence[float]) -> tuple[float, float, float]:
    """First quartile, median and third quartile of ``samples``."""
    if len(samples) < 2:
        return samples[0], samples[0], samples[0]
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return q1, statistics.median(samples), q3


def summarize(samples: Sequence[float], loops: int) -> Timing:
    """Statistics of per-call times in seconds (one per batch of ``loops`` calls)."""
    q1, median, q3 = quartiles(samples)
    return Timing(
        median * 1e6, q1 * 1e6, q3 * 1e6, min(samples) * 1e6, loops, len(samples)
    )


@dataclass
class Record:
    """One timed implementation of one operation (a row of ``results.json``).

    Attributes:
        section: Case name, e.g. ``"banana"``.
        op: Operator name, ``"value"``, ``"<closure> closure"`` or ``"import"``.
        dim: Input size (of one point, for batched evaluation).
        impl: Implementation, e.g. ``"diffops[jax]"`` or ``"jax.jit(value_and_grad)"``.
        kind: ``"diffops"``, ``"framework"``, ``"numpy"`` or ``"diagnostic"``.
        framework: Framework of the implementation (``"numpy"`` for closed forms).
        backend: diffops backend, for diffops rows.
        family: Group of hand-written calls (``"jax.jit"``, ``"jax eager"``,
            ``"torch.func"``), if any.
        median_us: Median time per call, µs.
        q1_us: First quartile, µs.
        q3_us: Third quartile, µs.
        min_us: Fastest batch, µs per call.
        loops: Calls per batch.
        repeats: Batches.
        first_call_us: Build plus first call, µs.
        count: What was counted instead of timed (XLA compilations), if anything.
        correct: Whether the outputs matched the reference (``None``: not checked).
        error: What was wrong, or the exception raised.
        note: Why it was not timed, or what exactly was timed.
        batch: Points per call, for batched evaluation (``None``: one point).
    """

    section: str
    op: str
    dim: int
    impl: str
    kind: str
    framework: str
    backend: str | None = None
    family: str | None = None
    median_us: float | None = None
    q1_us: float | None = None
    q3_us: float | None = None
    min_us: float | None = None
    loops: int | None = None
    repeats: int | None = None
    first_call_us: float | None = None
    count: int | None = None
    correct: bool | None = None
    error: str | None = None
    note: str | None = None
    batch: int | None = None

    def set_timing(self, timing: Timing) -> Record:
        """Store ``timing``'s statistics in this record; return the record."""
        self.median_us, self.q1_us, self.q3_us = (
            timing.median_us,
            timing.q1_us,
            timing.q3_us,
        )
        self.min_us, self.loops, self.repeats = (
            timing.min_us,
            timing.loops,
            timing.repeats,
        )
        return self


def fmt_us(us: float | None) -> str:
    """Microseconds for tables: three significant figures or thousands separators."""
    if us is None:
        return "—"
    if us < 10:
        return f"{us:.2f}"
    if us < 1000:
        return f"{us:.1f}"
    return f"{us:,.0f}"


def fmt_ratio(r: float | None) -> str:
    """A ratio for tables, e.g. ``"1.05×"``."""
    return "—" if r is None else f"{r:.2f}×"
