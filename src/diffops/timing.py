"""Small timing helpers shared by the demo and the benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def median_call_time(
    call: Callable[[], Any], *, batch_seconds: float = 0.005, repeats: int = 7
) -> float:
    """Median wall-clock seconds per call of ``call()``.

    The call is made once to warm up, then in ``repeats`` batches, each long enough
    (about ``batch_seconds``) that timer resolution does not matter.

    Args:
        call: Function of no arguments to time.
        batch_seconds: Target duration of one batch.
        repeats: Number of batches; the median batch is reported.

    Returns:
        Median seconds per call.
    """
    call()
    start = time.perf_counter()
    call()
    single = max(time.perf_counter() - start, 1e-7)
    number = max(1, int(batch_seconds / single))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            call()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def format_seconds(seconds: float) -> str:
    """Format a duration with a unit that keeps three significant figures.

    Args:
        seconds: Duration in seconds.

    Returns:
        E.g. ``"12.3 µs"``, ``"4.56 ms"`` or ``"1.20 s"``.
    """
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"
