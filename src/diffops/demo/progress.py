"""Progress of a long run: steps done out of a total, and an estimate of the time left.

The work is planned as units (one backend of one model, one supplied function), each
a known number of steps. :class:`Progress` shows ``[step/total]``, what runs now, the
time elapsed and an estimate of the time left on one status line of the terminal
(standard error), rewritten in place and cleared before anything else is printed.
The estimate charges every remaining step of a source (a backend) its average step
time so far, so a slow backend (``jax_nojit``) does not make the estimate swing.
When standard error is not a terminal, nothing is drawn; :meth:`Progress.milestone`
lines are still written there.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO

from diffops.check.table import terminal_width


class Progress:
    """Steps done out of a planned total, on one status line.

    Args:
        units: ``(source, steps)`` for every unit of work, in the order they run.
        stream: Where to draw (default: standard error); drawn only on a terminal.
    """

    def __init__(
        self, units: Sequence[tuple[str, int]], stream: TextIO | None = None
    ) -> None:
        self.units = list(units)
        self.total = sum(steps for _, steps in self.units)
        self.stream = sys.stderr if stream is None else stream
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self.done = 0
        self._unit = 0
        self._in_unit = 0
        self._last: float | None = None
        self._seconds: dict[str, list[float]] = {}
        self._shown = False

    @property
    def source(self) -> str:
        """Source of the unit now running."""
        if self._unit < len(self.units):
            return self.units[self._unit][0]
        return ""

    def step(self, text: str) -> None:
        """Start the next step of the current unit.

        Args:
            text: What the step does, e.g. ``"jax · grad_and_value: first call"``.
        """
        self._close_step()
        if self._unit < len(self.units) and self._in_unit < self.units[self._unit][1]:
            self._in_unit += 1
            self.done += 1
        self._last = time.perf_counter()
        self._draw(text)

    def next_unit(self) -> None:
        """Finish the current unit; its steps not taken count as done."""
        self._close_step()
        if self._unit < len(self.units):
            self.done += self.units[self._unit][1] - self._in_unit
            self._unit += 1
            self._in_unit = 0

    def seconds_left(self) -> float | None:
        """Estimated seconds until every planned step is done (``None``: unknown).

        Returns:
            The estimate, from the average step time of each source so far.
        """
        measured = [t for times in self._seconds.values() for t in times]
        if not measured:
            return None
        overall = sum(measured) / len(measured)
        left = 0.0
        for k in range(self._unit, len(self.units)):
            source, steps = self.units[k]
            remaining = steps - (self._in_unit if k == self._unit else 0)
            times = self._seconds.get(source)
            left += remaining * (sum(times) / len(times) if times else overall)
        return left

    def milestone(self, text: str) -> None:
        """Write a line with the time left, when there is no status line.

        Args:
            text: E.g. ``"banana done (model 1 of 4)"``.
        """
        if self.live:
            return
        left = self.seconds_left()
        estimate = f"; about {format_duration(left)} left" if left else ""
        elapsed = format_duration(time.perf_counter() - self.start)
        print(f"{text}: {elapsed} so far{estimate}", file=self.stream, flush=True)

    def clear(self) -> None:
        """Remove the status line (call before printing anything else)."""
        if self.live and self._shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._shown = False

    def close(self) -> None:
        """Finish: clear the status line."""
        self._close_step()
        self.clear()

    def _close_step(self) -> None:
        if self._last is not None:
            elapsed = time.perf_counter() - self._last
            self._seconds.setdefault(self.source, []).append(elapsed)
            self._last = None

    def _draw(self, text: str) -> None:
        if not self.live:
            return
        elapsed = format_duration(time.perf_counter() - self.start)
        left = self.seconds_left()
        estimate = f", about {format_duration(left)} left" if left is not None else ""
        line = f"[{self.done}/{self.total}] {elapsed}{estimate} · {text}"
        width = terminal_width() - 1
        if len(line) > width:  # a status line must not wrap: shorten what runs
            line = line[: max(0, width - 1)] + "…"
        self.stream.write("\r\x1b[2K" + line)
        self.stream.flush()
        self._shown = True


def format_duration(seconds: float) -> str:
    """``"42 s"`` or ``"2 min 05 s"``.

    Args:
        seconds: A duration.

    Returns:
        The duration in words.
    """
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    return f"{whole // 60} min {whole % 60:02d} s"
