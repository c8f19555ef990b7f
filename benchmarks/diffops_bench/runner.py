"""Running the benchmarks: build and check every implementation, then time them.

The batches of all implementations of one problem, or of one group of problems (the
gradient, HVP and Hessian of the ``hvp`` case; the Jacobians and JVP of ``tall``), are
interleaved: round k times one batch of each implementation (and closure), in an order
rotated by k, so that a change in machine load affects every implementation alike and
the ratios stay meaningful.
Calibration and batches use ``diffops.timing``, the primitive the demo uses too.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from diffops.models import MODELS, Model
from diffops.timing import calibrate, time_batch

from .batched import batched_problems
from .cases import Problem, logistic_model, problems
from .check import Applied, compare
from .config import Config
from .extra_args import args_problem, compile_counts
from .first_call import FIRST_CALL, first_call
from .implementations import Impl
from .import_time import import_times
from .ops import closure_name, short_name
from .records import Record, summarize
from .sparse import sparse_first_call, sparse_problems

SLOW_CALL_S = 5.0
"""Implementations whose steady-state call takes longer than this are not timed."""

FEW_BATCHES_ABOVE_S = 0.2
"""Calls slower than this (seconds) are timed in at most 5 batches."""


@dataclass
class _Timed:
    """A callable being timed, with the record its statistics go to."""

    record: Record
    fn: Callable[[], Any]
    context: Callable[[], contextlib.AbstractContextManager[Any]]
    loops: int = 1
    max_samples: int = 1
    scale: float = 1.0
    samples: list[float] = field(default_factory=list)


def _title(problems: Sequence[Problem]) -> str:
    ops = " + ".join(short_name(p.op) for p in problems)
    first = problems[0]
    batch = f" B={first.batch}" if first.batch else ""
    return f"{first.section} d={first.dim}{batch} {ops}"


def _reference(problem: Problem) -> tuple[Any, ...]:
    """The NumPy closed forms' outputs (the last implementation), closures applied."""
    if problem.reference is None:
        numpy_impl = next(i for i in problem.impls if i.kind == "numpy")
        reference = numpy_impl.build()(problem.x)
        problem.reference = tuple(
            Applied(r(problem.closure_arg)) if callable(r) else r for r in reference
        )
    return problem.reference


def _prepare(
    problem: Problem, impl: Impl, cfg: Config
) -> tuple[list[Record], list[_Timed]]:
    """Build ``impl``, call it once, check its outputs; return what is to be timed.

    An implementation with ``points`` set runs on the first ``points`` points of a
    batched problem only: it is checked against those rows of the reference, and its
    times are scaled by ``batch / points`` (noted in its record).
    """
    dim = problem.dim
    base = Record(
        problem.section,
        problem.op,
        dim,
        impl.name,
        impl.kind,
        impl.framework,
        backend=impl.backend,
        family=impl.family,
        batch=problem.batch,
    )
    reference = _reference(problem)
    x, scale = problem.x, 1.0
    if impl.points is not None and problem.batch and impl.points < problem.batch:
        x, scale = x[: impl.points], problem.batch / impl.points
        reference = tuple(r[: impl.points] for r in reference)
        base.note = (
            f"timed on the first {impl.points} of the {problem.batch} points; "
            f"times scaled × {scale:g} to the whole stack"
        )
    with impl.context():
        try:
            start = time.perf_counter()
            fn = impl.build()
            out = fn(x)
            base.first_call_us = (time.perf_counter() - start) * 1e6
            problem_msg = compare(
                out,
                reference,
                problem.op,
                problem.closure_arg,
                dtype=impl.kind == "diffops",
            )
        except Exception as err:
            base.error = f"{type(err).__name__}: {err}".splitlines()[0][:300]
            base.correct = False
            return [base], []
        base.correct = problem_msg is None
        base.error = problem_msg
        if base.first_call_us > SLOW_CALL_S * 1e6:
            start = time.perf_counter()
            fn(x)
            second = time.perf_counter() - start
            if second > SLOW_CALL_S:
                base.note = f"not timed: one call takes {second:.1f} s"
                cfg.notes.append(
                    f"{problem.section} d={dim} {short_name(problem.op)} "
                    f"{impl.name}: not timed, one call takes {second:.1f} s "
                    f"(> {SLOW_CALL_S} s)"
                )
                return [base], []
    records = [base]
    timed = [_Timed(base, lambda: fn(x), impl.context, scale=scale)]
    closure = closure_name(problem.op)
    if closure is not None:
        product, arg = out[0], problem.closure_arg
        rec = Record(
            problem.section,
            f"{closure} closure",
            dim,
            impl.name,
            impl.kind,
            impl.framework,
            backend=impl.backend,
            family=impl.family,
            correct=base.correct,
            note=f"one {closure}(m) call on the closure from {problem.op}",
        )
        records.append(rec)
        timed.append(_Timed(rec, lambda: product(arg), impl.context))
    return records, timed


def run_problems(
    problems: Sequence[Problem], cfg: Config, say: Callable[[str], None]
) -> list[Record]:
    """Build and check every implementation, then time them in interleaved rounds.

    Round k times one batch of each implementation (and closure) of every problem
    given, in an order rotated by k, so that a change in machine load affects every
    implementation alike. The first sample of each is its calibration batch.

    Args:
        problems: One problem, or the problems of one group (timed together).
        cfg: The run's settings (``repeats``, ``min_batch_s``).
        say: Progress callback.

    Returns:
        One record per implementation and per product closure.
    """
    title = _title(problems)
    records: list[Record] = []
    timed: list[_Timed] = []
    for problem in problems:
        for impl in problem.impls:
            say(f"{title}: build + check {short_name(problem.op)} {impl.name}")
            new_records, new_timed = _prepare(problem, impl, cfg)
            records += new_records
            timed += new_timed
    for entry in timed:
        say(f"{title}: warm up {entry.record.impl}")
        with entry.context():
            entry.loops, first = calibrate(entry.fn, cfg.min_batch_s)
        entry.samples.append(first * entry.scale)
        slow = first > FEW_BATCHES_ABOVE_S
        entry.max_samples = min(cfg.repeats, 5) if slow else cfg.repeats
    for k in range(1, cfg.repeats):
        say(f"{title}: round {k + 1}/{cfg.repeats}")
        shift = k % max(1, len(timed))
        for entry in timed[shift:] + timed[:shift]:
            if len(entry.samples) < entry.max_samples:
                with entry.context():
                    per_call = time_batch(entry.fn, entry.loops) / entry.loops
                    entry.samples.append(per_call * entry.scale)
    for entry in timed:
        entry.record.set_timing(summarize(entry.samples, entry.loops))
    return records


# ---------------------------------------------------------------------------------
# Plan and run


@dataclass
class _Job:
    label: str
    run: Callable[[Callable[[str], None]], list[Record]]
    weight: int = 1


def _grouped(problems: Sequence[Problem]) -> list[list[Problem]]:
    """Adjacent problems of one group together; the others one by one."""
    groups: list[list[Problem]] = []
    for problem in problems:
        if (
            groups
            and problem.group is not None
            and groups[-1][0].group == problem.group
        ):
            groups[-1].append(problem)
        else:
            groups.append([problem])
    return groups


def _plan(cfg: Config) -> list[_Job]:
    jobs: list[_Job] = []
    selected = problems(cfg)
    if "args" in cfg.cases:
        args = args_problem(cfg)
        selected += [args] if args else []
    selected += batched_problems(cfg)
    sparse = sparse_problems(cfg)
    selected += sparse
    for group in _grouped(selected):

        def run(
            say: Callable[[str], None], group: list[Problem] = group
        ) -> list[Record]:
            return run_problems(group, cfg, say)

        weight = sum(len(p.impls) for p in group)
        jobs.append(_Job(_title(group), run, weight=weight))
    if "args" in cfg.cases and "jax" in cfg.backends:
        label = "args: compilations on a second data set (jax)"
        jobs.append(_Job(label, lambda say: compile_counts(cfg)))
    for problem in sparse:

        def sparse_first(
            say: Callable[[str], None], section: str = problem.section
        ) -> list[Record]:
            return sparse_first_call(section, cfg)

        label = f"{problem.section}: first call, sparse and dense (jax)"
        jobs.append(_Job(label, sparse_first))
    if "first_call" in cfg.cases:
        if "jax" in cfg.backends:
            models = {"banana": MODELS["banana"], "torus": MODELS["torus"]}
            if not cfg.quick:
                models["logistic"], _ = logistic_model()
            for name, op, variant in FIRST_CALL:
                if name not in models:
                    continue

                def first(
                    say: Callable[[str], None],
                    model: Model = models[name],
                    op: str = op,
                    variant: str = variant,
                ) -> list[Record]:
                    return first_call(model, op, variant, cfg)

                label = f"first call {name} {short_name(op)} (jax)"
                jobs.append(_Job(label, first))
            if cfg.quick:
                cfg.notes.append("first_call: logistic d = 100 skipped in --quick")
        else:
            cfg.notes.append("first_call: needs the jax backend, which is not selected")
    if "import" in cfg.cases:
        jobs.append(_Job("import time (subprocesses)", lambda say: import_times(cfg)))
    return jobs


class _PlainProgress:
    def __init__(self, total: int):
        self.total = total
        self.done = 0

    def start(self, label: str) -> None:
        print(f"[{self.done}/{self.total}] {label}", flush=True)

    def step(self, label: str) -> None:
        pass

    def advance(self, amount: int) -> None:
        self.done += amount


@contextlib.contextmanager
def _progress(total: int) -> Iterator[Any]:
    try:
        from rich.markup import escape
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )
    except ImportError:
        print("rich is not installed: plain progress output (pip install rich)")
        yield _PlainProgress(total)
        return
    columns = (
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("benchmarks", total=total)

        class _Rich:
            def start(self, label: str) -> None:
                self.step(label)

            def step(self, label: str) -> None:
                progress.update(task, description=escape(label[:100]))

            def advance(self, amount: int) -> None:
                progress.advance(task, amount)

        yield _Rich()


def run(cfg: Config) -> list[Record]:
    """Run every selected case, with a progress bar; return all records."""
    jobs = _plan(cfg)
    records: list[Record] = []
    with _progress(sum(job.weight for job in jobs)) as progress:
        for job in jobs:
            progress.start(job.label)
            records.extend(job.run(progress.step))
            progress.advance(job.weight)
    return records
