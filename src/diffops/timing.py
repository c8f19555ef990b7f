"""Timing helpers shared by the demo and the repository's benchmark harness.

One primitive times calls: :func:`calibrate` warms a call up and chooses how many calls
make a batch, and :func:`time_batch` times one batch with the garbage collector off
(as ``timeit`` does). :func:`median_call_time` (the demo) runs them back to back; the
benchmark harness (``benchmarks/diffops_bench``) interleaves the batches of several
implementations so that a change in machine load affects them alike.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable
from typing import Any


def time_batch(call: Callable[[], Any], loops: int) -> float:
    """Wall-clock seconds of ``loops`` back-to-back calls of ``call()``.

    The garbage collector is off during the batch (and restored afterwards), so a
    collection triggered by other code does not land in one batch only.

    Args:
        call: Function of no arguments to time; its result is discarded.
        loops: Number of calls in the batch.

    Returns:
        Total seconds for the batch (divide by ``loops`` for the time per call).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(loops):
            call()
        return time.perf_counter() - start
    finally:
        if enabled:
            gc.enable()


def calibrate(call: Callable[[], Any], batch_seconds: float) -> tuple[int, float]:
    """Warm ``call`` up and choose the number of calls per batch.

    Warm-up makes at least two calls and lasts about a quarter of a batch; then batches
    are timed, growing the number of calls, until one lasts at least ``0.8 *
    batch_seconds``.

    Args:
        call: Function of no arguments to time.
        batch_seconds: Shortest duration wanted for a batch, in seconds.

    Returns:
        ``(loops, per_call)``: calls per batch, and the seconds per call of the batch
        that reached the duration (usable as the first sample).
    """
    start = time.perf_counter()
    calls = 0
    while calls < 2 or time.perf_counter() - start < batch_seconds / 4:
        call()
        calls += 1
    per_call = (time.perf_counter() - start) / calls
    loops = max(1, math.ceil(batch_seconds / max(per_call, 1e-9)))
    while True:
        elapsed = time_batch(call, loops)
        if elapsed >= 0.8 * batch_seconds:
            return loops, elapsed / loops
        loops = max(
            loops + 1, math.ceil(loops * 1.2 * batch_seconds / max(elapsed, 1e-9))
        )


def median_call_time(
    call: Callable[[], Any], *, batch_seconds: float = 0.005, repeats: int = 7
) -> float:
    """Median wall-clock seconds per call of ``call()``.

    The call is warmed up and calibrated (:func:`calibrate`), then timed in
    ``repeats`` batches (:func:`time_batch`), each long enough (about
    ``batch_seconds``) that timer resolution does not matter.

    Args:
        call: Function of no arguments to time.
        batch_seconds: Target duration of one batch.
        repeats: Number of batches; the median batch is reported.

    Returns:
        Median seconds per call.
    """
    loops, _ = calibrate(call, batch_seconds)
    samples = [time_batch(call, loops) / loops for _ in range(max(1, repeats))]
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
