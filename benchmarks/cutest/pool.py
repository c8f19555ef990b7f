"""Worker processes that run tasks with a timeout each (standard library only).

Importing sif2jax takes about 45 s (it builds every problem at import), so a process
per problem is too slow: each worker imports it once and then runs tasks one after
another. A task is a function named ``"module:function"`` called with keyword
arguments and ``report``, a callback that sends a partial result to the parent (the
row measured so far); ``report(partial, restart_clock=True)`` also restarts the
task's clock (after a preparation that should not count). Two timeouts:

- **soft**: ``SIGALRM`` after ``timeout`` seconds raises :class:`SoftTimeout` inside
  the task (Python code such as a coloring loop stops at once); the worker survives;
- **hard**: a task still running ``grace`` seconds later (stuck in compiled code:
  an XLA compilation, a long kernel) has its worker killed and replaced.

The clock of a task starts when a ready worker receives it (import time is not
counted); until the task restarts it, it runs ``PREPARATION`` seconds longer. A
worker that dies (a crash, the kernel's OOM killer) fails its task with its exit
code and is replaced.
"""

from __future__ import annotations

import importlib
import multiprocessing
import signal
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

PREPARATION = 600.0
"""Extra seconds allowed before a task restarts its clock (e.g. building the
problem and compiling it to choose points: not what is being timed)."""


class SoftTimeout(BaseException):
    """Raised inside a task when its time is up (a BaseException: code that catches
    ``Exception`` does not swallow it)."""


@dataclass
class Task:
    """One call of ``target(**kwargs, report=...)`` in a worker."""

    key: Any
    target: str
    kwargs: dict[str, Any]
    timeout: float


@dataclass
class Outcome:
    """What became of a task.

    Attributes:
        task: The task.
        status: ``"done"``, ``"error"`` (the task raised), ``"timeout"`` (soft),
            ``"killed"`` (hard timeout) or ``"crashed"`` (the worker died).
        result: The task's return value (``"done"``), else ``None``.
        partial: The last partial result it reported (or ``None``).
        error: Traceback or reason for any other status.
        seconds: Wall time from sending the task to its outcome.
    """

    task: Task
    status: str
    result: Any = None
    partial: Any = None
    error: str = ""
    seconds: float = 0.0


def _resolve(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    function: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return function


def _alarm(signum: int, frame: Any) -> None:
    raise SoftTimeout


def _worker(conn: Connection, setup: str | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    if setup:
        _resolve(setup)()
    signal.signal(signal.SIGALRM, _alarm)
    conn.send(("ready", None, None))
    while True:
        message = conn.recv()
        if message is None:
            return
        key, target, kwargs, timeout = message

        def report(
            partial: Any,
            restart_clock: bool = False,
            key: Any = key,
            t: float = timeout,
        ) -> None:
            if restart_clock:
                signal.setitimer(signal.ITIMER_REAL, t)
            conn.send(("restart" if restart_clock else "partial", key, partial))

        try:
            signal.setitimer(signal.ITIMER_REAL, timeout + PREPARATION)
            result = _resolve(target)(report=report, **kwargs)
            signal.setitimer(signal.ITIMER_REAL, 0)
            conn.send(("done", key, result))
        except SoftTimeout:
            message = f"no result after {timeout:g} s (soft timeout)"
            conn.send(("timeout", key, message))
        except Exception:
            signal.setitimer(signal.ITIMER_REAL, 0)
            conn.send(("error", key, traceback.format_exc()))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)


@dataclass
class _Slot:
    process: Any
    conn: Connection
    ready: bool = False
    task: Task | None = None
    started: float = 0.0
    partial: Any = None
    allowance: float = 0.0


@dataclass
class Pool:
    """``jobs`` worker processes, each running ``setup`` once.

    Use as a context manager; :meth:`run` may be called several times.
    """

    jobs: int = 1
    setup: str | None = None
    grace: float = 30.0
    slots: list[_Slot] = field(default_factory=list)

    def __enter__(self) -> Pool:
        self._context = multiprocessing.get_context("spawn")
        self.slots = [self._spawn() for _ in range(max(1, self.jobs))]
        return self

    def __exit__(self, *exc: object) -> None:
        for slot in self.slots:
            self._stop(slot, kill=exc[0] is not None)

    def _spawn(self) -> _Slot:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_worker, args=(child, self.setup), daemon=True
        )
        process.start()
        child.close()
        return _Slot(process, parent)

    def _stop(self, slot: _Slot, kill: bool) -> None:
        if not kill and slot.process.is_alive():
            try:
                slot.conn.send(None)
                slot.process.join(timeout=10)
            except (BrokenPipeError, OSError):
                pass
        if slot.process.is_alive():
            slot.process.kill()
            slot.process.join(timeout=10)
        slot.conn.close()

    def _replace(self, slot: _Slot) -> _Slot:
        self._stop(slot, kill=True)
        index = self.slots.index(slot)
        self.slots[index] = self._spawn()
        return self.slots[index]

    def run(self, tasks: Iterable[Task]) -> Iterator[Outcome]:
        """Run the tasks, yielding each outcome as it arrives (not in order)."""
        pending = list(tasks)[::-1]
        running = 0
        while pending or running:
            for slot in self.slots:
                if slot.ready and slot.task is None and pending:
                    task = pending.pop()
                    slot.task, slot.started, slot.partial = task, time.monotonic(), None
                    slot.allowance = task.timeout + PREPARATION
                    slot.conn.send((task.key, task.target, task.kwargs, task.timeout))
                    running += 1
            deadlines = [
                s.started + s.allowance + self.grace
                for s in self.slots
                if s.task is not None
            ]
            wait_for = None
            if deadlines:
                wait_for = max(0.0, min(deadlines) - time.monotonic())
            ready = wait([s.conn for s in self.slots], timeout=wait_for)
            for slot in list(self.slots):
                if slot.conn in ready:
                    try:
                        kind, key, payload = slot.conn.recv()
                    except (EOFError, OSError):
                        outcome = self._crashed(slot)
                        if outcome is not None:
                            running -= 1
                            yield outcome
                        continue
                    if kind == "ready":
                        slot.ready = True
                        continue
                    if kind in ("partial", "restart"):
                        slot.partial = payload
                        if kind == "restart":
                            slot.started = time.monotonic()
                            slot.allowance = slot.task.timeout
                        continue
                    task = slot.task
                    assert task is not None
                    assert key == task.key
                    outcome = Outcome(
                        task,
                        kind,
                        result=payload if kind == "done" else None,
                        partial=slot.partial,
                        error="" if kind == "done" else str(payload),
                        seconds=time.monotonic() - slot.started,
                    )
                    slot.task = None
                    running -= 1
                    yield outcome
                elif slot.task is not None:
                    overdue = time.monotonic() - slot.started
                    if overdue > slot.allowance + self.grace:
                        task, partial = slot.task, slot.partial
                        self._replace(slot)
                        running -= 1
                        yield Outcome(
                            task,
                            "killed",
                            partial=partial,
                            error=(
                                f"no result after {overdue:.0f} s: worker killed "
                                f"(stuck outside Python, e.g. compiling)"
                            ),
                            seconds=overdue,
                        )

    def _crashed(self, slot: _Slot) -> Outcome | None:
        task, partial, started = slot.task, slot.partial, slot.started
        slot.process.join(timeout=10)
        code = slot.process.exitcode
        self._replace(slot)
        if task is None:
            if not any(s.ready for s in self.slots):
                msg = f"a worker died while starting (exit code {code})"
                raise RuntimeError(msg)
            return None
        return Outcome(
            task,
            "crashed",
            partial=partial,
            error=f"worker died (exit code {code}; -9 is often the OOM killer)",
            seconds=time.monotonic() - started,
        )
