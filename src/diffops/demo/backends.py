"""One function's derivatives on every backend, checked and timed: check_backends.

For each backend in turn: build each requested operator and call it once (timed:
the first call), time the calls in interleaved rounds (the per-call time), check
them all with :func:`diffops.check_derivatives`' checks against finite differences,
and compare each with the first backend that passed the same operator. Hand-written
derivative functions go through the same steps after the backends. Each (source,
operator) gives one :class:`~diffops.demo.rows.Row`.

A backend on which the function cannot run at all (its simplest operator fails:
written for another framework, or not traceable) is "not applicable", not a failure;
a function that runs but gives wrong derivatives fails.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from diffops.check import CheckReport, check_functions, compare_derivatives
from diffops.check.evaluate import backend_options, numpy_function
from diffops.demo.progress import Progress
from diffops.demo.rows import FAILED, WHOLE_BACKEND, Row
from diffops.errors import first_line, function_name
from diffops.operators import OPERATORS
from diffops.timing import interleaved_call_times, one_thread

Function = Callable[..., Any]
Build = Callable[[str], tuple[Function, dict[str, Any]]]


def steps_per_backend(n_ops: int) -> int:
    """Progress steps of one backend.

    A first call and a comparison per operator, one timing round, one check.

    Args:
        n_ops: Number of operators.

    Returns:
        The number of steps.
    """
    return 2 * n_ops + 2


STEPS_PER_SUPPLIED = 4
"""Progress steps of one supplied function: first call, timing, check, comparison."""


@dataclass
class _Run:
    """What every backend's checks share, and the references found so far."""

    func: Function
    x: np.ndarray
    options: dict[str, Any]
    progress: Progress | None
    closed_form: Callable[[str], tuple[Any, ...]] | None = None
    references: dict[str, tuple[str, Function]] = field(default_factory=dict)

    def step(self, text: str) -> None:
        if self.progress is not None:
            self.progress.step(text)

    def next_unit(self) -> None:
        if self.progress is not None:
            self.progress.next_unit()


def check_backends(
    func: Function,
    x: np.ndarray,
    ops: Sequence[str],
    backends: Sequence[str],
    *,
    supplied: Sequence[tuple[str, str, Function]] = (),
    build: Build | None = None,
    closed_form: Callable[[str], tuple[Any, ...]] | None = None,
    skip: Mapping[str, str] | None = None,
    lenient: bool = True,
    seed: int = 0,
    rtol: float | None = None,
    atol: float | None = None,
    directions: int = 3,
    progress: Progress | None = None,
) -> list[Row]:
    """Build, time and check ``ops`` of ``func`` on ``backends`` (and supplied ones).

    Args:
        func: The function; with ``build``, a NumPy version used as the check's
            reference (e.g. a closed form).
        x: The point.
        ops: Operator names.
        backends: Backend names.
        supplied: Hand-written derivative functions as ``(op_name, name, function)``.
        build: ``build(backend)`` returns the function written for that backend and
            its options (default: ``func`` and the options it needs).
        closed_form: ``closed_form(op_name)`` returns the closed-form results, an
            extra reference (the demo).
        skip: Backends not to run, with the reason.
        lenient: Report a backend whose simplest operator fails as
            "not applicable" (else each operator is an error).
        seed: Seed of the checks' random directions and arguments.
        rtol: Relative tolerance of the checks (default: by dtype).
        atol: Absolute tolerance of the checks (default: by dtype).
        directions: Random directions / closure arguments per check.
        progress: Progress to advance: one unit per backend
            (:func:`steps_per_backend`), one per supplied function.

    Returns:
        One :class:`Row` per backend and operator (one per backend that does not
        apply or is skipped), then one per supplied function.
    """
    options = {"seed": seed, "rtol": rtol, "atol": atol, "directions": directions}
    if build is None:
        # Find once how to run func on NumPy arrays (directly or through its
        # framework), rather than in every check.
        evaluate, _ = numpy_function(func, np.asarray(x, dtype=np.float64), ())
        reference: Function = _named(evaluate, function_name(func))
        original = func
        build = lambda backend: (original, backend_options(original, backend, x.shape))  # noqa: E731
    else:
        reference = func
    run = _Run(reference, x, options, progress, closed_form)
    rows: list[Row] = []
    with warnings.catch_warnings():
        # A constant derivative (a linear model's Hessian) is right: Autograd's
        # "Output seems independent of input" is noise here.
        warnings.filterwarnings("ignore", "Output seems independent")
        for backend in backends:
            if skip and backend in skip:
                rows.append(
                    Row(
                        backend,
                        WHOLE_BACKEND,
                        "skipped",
                        note=f"skipped: {skip[backend]}",
                    )
                )
                run.next_unit()
                continue
            rows += _backend_rows(run, backend, ops, build, lenient)
            run.next_unit()
        for op, name, function in supplied:
            rows.append(_supplied_row(run, op, name, function))
            run.next_unit()
    return rows


def _named(function: Function, name: str) -> Function:
    def named(y: np.ndarray) -> Any:
        return function(y)

    named.__name__ = named.__qualname__ = name
    return named


def _backend_rows(
    run: _Run, backend: str, ops: Sequence[str], build: Build, lenient: bool
) -> list[Row]:
    """The rows of one backend: first calls, per-call times, checks, agreement."""
    try:
        function, options = build(backend)
    except Exception as err:
        return [
            Row(backend, WHOLE_BACKEND, "error", note=first_line(err, with_type=True))
        ]
    found: dict[str, Function] = {}
    rows: dict[str, Row] = {}
    for op in _probe_order(ops):
        run.step(f"{backend} · {op}: build and first call")
        try:
            with one_thread():
                start = time.perf_counter()
                d = _derivative(function, op, backend, options)
                result = d(run.x)
                first_call = time.perf_counter() - start
        except Exception as err:
            text = first_line(err, with_type=True)
            if lenient and not rows:
                note = f"not applicable: {text}"
                return [Row(backend, WHOLE_BACKEND, "not applicable", note=note)]
            rows[op] = Row(backend, op, "error", note=text)
            continue
        rows[op] = Row(backend, op, "passed", first_call=first_call)
        if run.closed_form is not None:
            expected = run.closed_form(op)
            rows[op].closed_form_error = max_error(
                result, expected, run.options["seed"]
            )
        found[op] = d
    _time_and_check(run, backend, found, rows, copy=False)
    return [rows[op] for op in ops if op in rows]


def _derivative(function: Function, op: str, backend: str, options: Any) -> Function:
    from diffops.derivative import DerivativeFunction

    return DerivativeFunction(function, op, backend, **options)


def _time_and_check(
    run: _Run,
    source: str,
    found: dict[str, Function],
    rows: dict[str, Row],
    *,
    copy: bool,
) -> None:
    """Per-call times, the checks, and agreement with the reference of each op.

    ``copy``: call with a copy of ``x`` each time (a hand-written function may
    modify its input; diffops' derivative functions never do).
    """
    if not found:
        return
    run.step(f"{source}: timing {len(found)} operators in interleaved rounds")
    calls = [partial(_call_copy if copy else _call, d, run.x) for d in found.values()]
    with one_thread():
        times = interleaved_call_times(calls)
    for op, seconds in zip(found, times, strict=True):
        rows[op].per_call = seconds
    run.step(f"{source}: checking against finite differences")
    report = check_functions(run.func, run.x, found, **run.options)
    for op in found:
        _update(rows[op], report.for_operator(op))
    for op, d in found.items():
        _compare_with_reference(run, source, op, d, rows[op])


def _compare_with_reference(
    run: _Run, source: str, op: str, derivative: Function, row: Row
) -> None:
    """Compare with the first source that passed ``op``; or become that source."""
    if op not in run.references:
        if row.status == "passed" and not row.source.startswith("supplied"):
            run.references[op] = (source, derivative)
        return
    reference_source, reference = run.references[op]
    if row.report is None:
        return
    run.step(f"{source} · {op}: comparing with {reference_source}")
    checks = compare_derivatives(
        derivative,
        reference,
        run.x,
        op,
        label=f"{reference_source}'s {op}",
        seed=run.options["seed"],
        rtol=run.options["rtol"],
        atol=run.options["atol"],
        directions=run.options["directions"],
    )
    row.reference = reference_source
    _update(row, row.report.with_checks(checks))


def _supplied_row(run: _Run, op: str, name: str, function: Function) -> Row:
    """One hand-written derivative function: timed, checked, compared."""
    source = f"supplied: {name}"
    run.step(f"{source} · {op}: first call and timing")
    try:
        start = time.perf_counter()
        function(run.x.copy())
        first_call = time.perf_counter() - start
    except Exception as err:
        return Row(source, op, "error", note=first_line(err, with_type=True))
    row = Row(source, op, "passed", first_call=first_call)
    _time_and_check(run, source, {op: function}, {op: row}, copy=True)
    return row


def _call(function: Function, x: np.ndarray) -> Any:
    return function(x)


def _call_copy(function: Function, x: np.ndarray) -> Any:
    return function(x.copy())


def _probe_order(ops: Sequence[str]) -> list[str]:
    """Operators with the fewest outputs first: the first shows if a backend runs."""
    return sorted(ops, key=lambda op: (OPERATORS[op].n_outputs, ops.index(op)))


def _update(row: Row, report: CheckReport) -> None:
    row.report = report
    row.max_abs_error = report.max_abs_error
    row.max_rel_error = report.max_rel_error
    if row.status in FAILED:
        return
    if not report.passed:
        row.status = "failed"
    elif any(c.status == "not differentiable" for c in report.checks):
        row.status = "not differentiable"
    else:
        row.status = "passed"
    failures = report.failures or tuple(
        c for c in report.checks if c.status == "not differentiable"
    )
    if failures:
        row.note = failures[0].message


def max_error(result: tuple[Any, ...], expected: tuple[Any, ...], seed: int) -> float:
    """Largest absolute difference between two operator results.

    Closures are compared by applying both to the same random argument.

    Args:
        result: Tuple returned by a diffops derivative function.
        expected: Tuple of closed forms from :func:`diffops.models.reference`.
        seed: Seed for the closures' random arguments.

    Returns:
        The maximum absolute error.
    """
    rng = np.random.default_rng(seed)
    worst = 0.0
    for got, want in zip(result, expected, strict=True):
        if callable(want):
            arg = rng.standard_normal(got.arg_shape)
            got, want = got(arg), want(arg)
        if np.shape(got) != np.shape(want):
            return float("inf")
        worst = max(worst, float(np.max(np.abs(np.asarray(got) - want), initial=0)))
    return worst
