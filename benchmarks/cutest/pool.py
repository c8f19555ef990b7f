"""Worker processes that run tasks with a timeout each (standard library only).

Importing sif2jax takes about 45 s (it builds every problem at import), so a process
per problem is too slow: each worker imports it once and then runs tasks one after
another. A task is a function named ``"module:function"`` called with keyword
arguments and ``report``, a callback that sends a partial result to the parent (the
row measured so far); ``report(partial, restart_clock=True)`` also restarts the
task's clock (after a preparation that should not count). Two timeouts:

- **soft**: ``SIGALRM`` after ``timeout`` seconds raises :class:`SoftTimeout` inside
  the task (Python code such as a coloring loop stops at once); the worker survives,
  unless ``recycle(outcome)`` says otherwise: an XLA compilation interrupted this way
  can go on in the background and break the worker's next task (seen: a 3-variable
  problem aborting out of memory right after a timed-out compilation), so the
  harness replaces the worker after a timeout anywhere but in pure-Python stages;
- **hard**: a task still running ``grace`` seconds later (stuck in compiled code:
  an XLA compilation, a long kernel) has its worker killed and replaced.

The clock of a task starts when its worker starts it (import time and waiting for
the lock are not counted); until the task restarts it, it runs ``PREPARATION``
seconds longer. A worker that dies (a crash, its memory limit, the kernel's OOM
killer) fails its task with its exit code and is replaced.

**Shared machines.** With ``lock``, a worker holds that file's ``flock`` while it runs
a task (the lock ``flock(1)`` takes), so other timing jobs can run between tasks
instead of waiting for the whole run. ``memory_gb`` limits each worker's data
segment (``RLIMIT_DATA``), so one runaway compilation cannot exhaust the machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import multiprocessing
import resource
import signal
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

PREPARATION = 600.0
"""Extra seconds allowed before a task restarts its clock (e.g. building the
problem and choosing points: not what is being timed)."""


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
        seconds: Wall time from the start of the task (or of its restarted clock)
            to its outcome.
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


def _worker(
    conn: Connection, setup: str | None, lock: str | None, memory_gb: float | None
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    if memory_gb:
        limit = int(memory_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
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

        with open(lock, "a") if lock else contextlib.nullcontext() as held:
            if held is not None:  # released when the file closes
                fcntl.flock(held.fileno(), fcntl.LOCK_EX)
            conn.send(("running", key, None))
            _run(conn, key, target, kwargs, timeout, report)


def _run(
    conn: Connection,
    key: Any,
    target: str,
    kwargs: dict[str, Any],
    timeout: float,
    report: Callable[..., None],
) -> None:
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
    started: float | None = None  # None: sent, not started (waiting for the lock)
    allowance: float = 0.0
    partial: Any = None


@dataclass
class Pool:
    """``jobs`` worker processes, each running ``setup`` once.

    Use as a context manager; :meth:`run` may be called several times.
    """

    jobs: int = 1
    setup: str | None = None
    grace: float = 30.0
    lock: str | None = None
    memory_gb: float | None = None
    recycle: Callable[[Outcome], bool] | None = None
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
            target=_worker,
            args=(child, self.setup, self.lock, self.memory_gb),
            daemon=True,
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

    def _replace(self, slot: _Slot) -> None:
        self._stop(slot, kill=True)
        self.slots[self.slots.index(slot)] = self._spawn()

    def _deadline(self, slot: _Slot) -> float | None:
        if slot.task is None or slot.started is None:
            return None
        return slot.started + slot.allowance + self.grace

    def run(self, tasks: Iterable[Task]) -> Iterator[Outcome]:
        """Run the tasks, yielding each outcome as it arrives (not in order)."""
        pending = list(tasks)[::-1]
        running = 0
        while pending or running:
            for slot in self.slots:
                if slot.ready and slot.task is None and pending:
                    task = pending.pop()
                    slot.task, slot.started, slot.partial = task, None, None
                    slot.conn.send((task.key, task.target, task.kwargs, task.timeout))
                    running += 1
            deadlines = [d for s in self.slots if (d := self._deadline(s)) is not None]
            wait_for = None
            if deadlines:
                wait_for = max(0.0, min(deadlines) - time.monotonic())
            ready = wait([s.conn for s in self.slots], timeout=wait_for)
            for slot in list(self.slots):
                if slot.conn in ready:
                    outcome = self._receive(slot)
                elif (deadline := self._deadline(slot)) is not None and (
                    time.monotonic() > deadline
                ):
                    outcome = self._kill(slot)
                else:
                    continue
                if outcome is not None:
                    running -= 1
                    yield outcome

    def _receive(self, slot: _Slot) -> Outcome | None:
        try:
            kind, key, payload = slot.conn.recv()
        except (EOFError, OSError):
            return self._crashed(slot)
        if kind == "ready":
            slot.ready = True
            return None
        task = slot.task
        assert task is not None
        assert key == task.key
        now = time.monotonic()
        if kind == "running":
            slot.started, slot.allowance = now, task.timeout + PREPARATION
            return None
        if kind in ("partial", "restart"):
            slot.partial = payload
            if kind == "restart":
                slot.started, slot.allowance = now, task.timeout
            return None
        outcome = Outcome(
            task,
            kind,
            result=payload if kind == "done" else None,
            partial=slot.partial,
            error="" if kind == "done" else str(payload),
            seconds=now - (slot.started or now),
        )
        slot.task = None
        if kind == "timeout" and self.recycle is not None and self.recycle(outcome):
            outcome.error += " (worker replaced)"
            self._replace(slot)
        return outcome

    def _kill(self, slot: _Slot) -> Outcome:
        task, partial, started = slot.task, slot.partial, slot.started
        assert task is not None
        assert started is not None
        overdue = time.monotonic() - started
        self._replace(slot)
        return Outcome(
            task,
            "killed",
            partial=partial,
            error=(
                f"no result after {overdue:.0f} s: worker killed (stuck outside "
                f"Python, e.g. compiling)"
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
            error=(
                f"worker died (exit code {code}; -9: killed, e.g. by the OOM killer; "
                f"-6: aborted, e.g. out of memory under the worker's limit)"
            ),
            seconds=time.monotonic() - (started or time.monotonic()),
        )
