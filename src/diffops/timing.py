"""Timing helpers shared by the demo and the repository's benchmark harness.

One primitive times calls: :func:`calibrate` warms a call up and chooses how many calls
make a batch, and :func:`time_batch` times one batch with the garbage collector off
(as ``timeit`` does). :func:`interleaved_call_times` (``diffops demo`` and
``diffops check``) times several calls the way the benchmark harness
(``benchmarks/diffops_bench``) does: round k times one batch of each call, in an
order rotated by k, so that a change in machine load affects them alike, and the
median round is reported; :func:`one_thread` keeps PyTorch on one thread meanwhile.
:func:`median_call_time` times one call on its own.
"""

from __future__ import annotations

import contextlib
import gc
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

SLOW_CALL_S = 0.05
"""Calls slower than this (seconds) are timed one at a time, in at most 3 rounds."""


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


def interleaved_call_times(
    calls: Sequence[Callable[[], Any]],
    *,
    batch_seconds: float = 0.01,
    rounds: int = 7,
) -> list[float]:
    """Median seconds per call of each call, timed in interleaved rounds.

    Each call is warmed up and calibrated (:func:`calibrate`; a call slower than
    :data:`SLOW_CALL_S` is timed one call at a time, in at most 3 rounds), then
    round k times one batch of each call in an order rotated by k, as the benchmark
    harness does, so that a change in machine load affects every call alike.

    Args:
        calls: Functions of no arguments.
        batch_seconds: Target duration of one batch.
        rounds: Number of rounds (batches per call).

    Returns:
        The median seconds per call of each, in the order given.
    """
    loops: list[int] = []
    samples: list[list[float]] = []
    for call in calls:
        start = time.perf_counter()
        call()
        once = time.perf_counter() - start
        if once > SLOW_CALL_S:
            loops.append(1)
            samples.append([once])
            continue
        n, first = calibrate(call, batch_seconds)
        loops.append(n)
        samples.append([first])
    wanted = [min(rounds, 3) if n == 1 else rounds for n in loops]
    for k in range(1, max(1, rounds)):
        shift = k % max(1, len(calls))
        for j in [*range(shift, len(calls)), *range(shift)]:
            if len(samples[j]) < wanted[j]:
                samples[j].append(time_batch(calls[j], loops[j]) / loops[j])
    return [statistics.median(s) for s in samples]


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """PyTorch computes on one thread inside (restored after), if it is imported.

    PyTorch's intra-op thread pool competes with the timing loop on a small machine;
    the benchmarks time with one thread too (``--threads 1``). JAX's thread pool is
    fixed when JAX starts (``XLA_FLAGS``) and is left as it is.

    Yields:
        Nothing.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


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
