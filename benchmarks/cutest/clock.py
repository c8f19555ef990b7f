"""Timing: a first call, then interleaved batches of warm calls (standard library).

Shared by both harnesses so that diffops and asdex are timed the same way. Per-call
times are the median over rounds of (batch time / calls in the batch); in round ``k``
each implementation times one batch, in an order rotated by ``k``, so that a change
in machine load affects them alike. A batch lasts at least ``min_batch`` seconds
(calls are repeated), except for calls slower than that; the garbage collector is off
during a batch.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

from diffops.timing import time_batch

ROUNDS = 7
MIN_BATCH = 0.02
SLOW_CALL = 0.5
"""A call longer than this (seconds) is timed in at most 3 rounds, one call each."""


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    """The result of ``call()`` and the seconds it took."""
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


def per_call(
    calls: Mapping[str, Callable[[], Any]],
    rounds: int = ROUNDS,
    min_batch: float = MIN_BATCH,
) -> dict[str, float]:
    """Median seconds per call of each warm call, batches interleaved.

    Args:
        calls: Name → function of no arguments (already called at least once).
        rounds: Batches per call.
        min_batch: Shortest batch, in seconds.

    Returns:
        Name → median seconds per call.
    """
    loops: dict[str, int] = {}
    first: dict[str, float] = {}
    for name, call in calls.items():
        _, seconds = timed(call)
        first[name] = seconds
        loops[name] = max(1, math.ceil(min_batch / max(seconds, 1e-7)))
    slow = max(first.values(), default=0.0) > SLOW_CALL
    n_rounds = min(rounds, 3) if slow else rounds
    samples: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for k in range(n_rounds):
        for name in names[k % len(names) :] + names[: k % len(names)]:
            samples[name].append(time_batch(calls[name], loops[name]) / loops[name])
    return {name: statistics.median(values) for name, values in samples.items()}
