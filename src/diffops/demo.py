"""Checked and timed derivatives on every backend: ``diffops check`` and ``demo``.

:func:`check_backends` builds each requested operator of one function on each
backend, takes hand-written derivative functions too, times each (first call, which
includes building and compiling, and the median per call), checks them with
:func:`diffops.check_derivatives` against finite differences, and checks every
implementation against the first backend that passed. Each (source, operator) gives
one :class:`Row`; :func:`render` prints them as one table (rich if installed, else
plain text) and :func:`as_json` as data.

A backend on which the function cannot run at all (its simplest operator fails:
written for another framework, or not traceable) is "not applicable", not a failure;
a function that runs but gives wrong derivatives fails.

The demo (:func:`run_demo`) is the same report on the built-in models of
:data:`diffops.models.MODELS`, whose closed-form derivatives are an extra reference:
a case fails if its finite-difference check fails or it differs from the closed
forms by more than :data:`TOLERANCE`.
"""

from __future__ import annotations

import math
import statistics
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, TextIO

import numpy as np

from diffops.check import CheckReport, compare_derivatives, describe_point
from diffops.models import MODELS, Model, applicable_ops, reference
from diffops.operators import OPERATORS
from diffops.timing import format_seconds, median_call_time

TOLERANCE = 1e-8
"""Largest absolute error against the closed forms that the demo accepts."""

Function = Callable[..., Any]
Advance = Callable[[str], None]

FAILED = ("failed", "error")


@dataclass
class Row:
    """One implementation of one operator: checked and timed.

    Attributes:
        source: Backend name, or ``"supplied: NAME"`` for a hand-written function.
        op_name: Operator name (``"(all)"`` for a backend that does not apply).
        status: ``"passed"``, ``"failed"`` (a check failed), ``"error"`` (it
            raised), ``"not differentiable"`` (``x`` is at a kink),
            ``"not applicable"`` (the function cannot run on this backend) or
            ``"skipped"``.
        max_abs_error: Largest absolute error of the checks (``nan`` if none ran).
        max_rel_error: Largest relative error of the checks.
        per_call: Median seconds per call after the first.
        first_call: Seconds to build the derivative function and call it once.
        note: The first failure, the error, or why not applicable / skipped.
        report: The :class:`~diffops.check.CheckReport` of this operator.
        model: Model name (demo only).
        closed_form_error: Largest absolute error against the closed forms (demo
            only; ``nan`` otherwise).
    """

    source: str
    op_name: str
    status: str
    max_abs_error: float = math.nan
    max_rel_error: float = math.nan
    per_call: float = math.nan
    first_call: float = math.nan
    note: str = ""
    report: CheckReport | None = field(default=None, repr=False)
    model: str = ""
    closed_form_error: float = math.nan

    @property
    def failed(self) -> bool:
        """Whether this row counts as a failure (exit code 1)."""
        if self.status in FAILED:
            return True
        if self.status in ("skipped", "not applicable"):
            return False
        return bool(self.model) and not self.closed_form_error <= TOLERANCE

    def as_dict(self) -> dict[str, Any]:
        """The row as JSON-compatible values (``nan`` as ``None``)."""
        data: dict[str, Any] = {
            "source": self.source,
            "operator": self.op_name,
            "status": "failed" if self.failed else self.status,
            "max_abs_error": _finite(self.max_abs_error),
            "max_rel_error": _finite(self.max_rel_error),
            "per_call_seconds": _finite(self.per_call),
            "first_call_seconds": _finite(self.first_call),
            "note": self.note,
        }
        if self.model:
            data["model"] = self.model
            data["closed_form_error"] = _finite(self.closed_form_error)
        if self.report is not None:
            data["checks"] = [c.as_dict() for c in self.report.checks]
        return data


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


# ---------------------------------------------------------------------------------
# Running


def default_options(func: Function, backend: str, x: np.ndarray) -> dict[str, Any]:
    """Options a backend needs for ``func`` at ``x``: SymNum needs the shape.

    Args:
        func: The user's function.
        backend: Backend name.
        x: The point.

    Returns:
        ``{"arg_shape": x.shape}`` for SymNum and a function not numpified, else
        ``{}``.
    """
    if backend == "symnum" and not hasattr(func, "_arg_shapes"):
        return {"arg_shape": tuple(x.shape)}
    return {}


def numpy_version(func: Function, x: np.ndarray) -> Function:
    """``func`` as a function of NumPy arrays (:func:`diffops.check.numpy_function`).

    Args:
        func: The user's function.
        x: A point at which it runs.

    Returns:
        A NumPy function with ``func``'s name.

    Raises:
        Exception: What ``func`` raised, if it cannot run at ``x``.
    """
    from diffops.check import numpy_function

    evaluate, _ = numpy_function(func, np.asarray(x, dtype=np.float64), ())

    def f(y: np.ndarray) -> np.ndarray:
        return evaluate(y)

    f.__name__ = f.__qualname__ = getattr(func, "__name__", "f")
    return f


def time_per_call(call: Callable[[], Any]) -> float:
    """Median seconds per call (three single calls for calls slower than 50 ms).

    Args:
        call: Function of no arguments.

    Returns:
        Seconds per call.
    """
    start = time.perf_counter()
    call()
    once = time.perf_counter() - start
    if once > 0.05:
        samples = [once]
        for _ in range(2):
            start = time.perf_counter()
            call()
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)
    return median_call_time(call, batch_seconds=0.002, repeats=5)


def _probe_order(ops: Sequence[str]) -> list[str]:
    """Operators with the fewest outputs first: the first shows if a backend runs."""
    return sorted(ops, key=lambda op: (OPERATORS[op].n_outputs, ops.index(op)))


def _status(report: CheckReport) -> str:
    if not report.passed:
        return "failed"
    if any(c.status == "not differentiable" for c in report.checks):
        return "not differentiable"
    return "passed"


def _update(row: Row, report: CheckReport) -> None:
    row.report = report
    row.max_abs_error = report.max_abs_error
    row.max_rel_error = report.max_rel_error
    if row.status in FAILED:
        return
    row.status = _status(report)
    failures = report.failures or tuple(
        c for c in report.checks if c.status == "not differentiable"
    )
    if failures:
        row.note = failures[0].message


def check_backends(
    func: Function,
    x: np.ndarray,
    ops: Sequence[str],
    backends: Sequence[str],
    *,
    supplied: Sequence[tuple[str, str, Function]] = (),
    build: Callable[[str], tuple[Function, dict[str, Any]]] | None = None,
    closed_form: Callable[[str], tuple[Any, ...]] | None = None,
    skip: Mapping[str, str] | None = None,
    lenient: bool = True,
    seed: int = 0,
    rtol: float | None = None,
    atol: float | None = None,
    directions: int = 3,
    advance: Advance | None = None,
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
            its options (default: ``func`` and :func:`default_options`).
        closed_form: ``closed_form(op_name)`` returns the closed-form results, an
            extra reference (the demo).
        skip: Backends not to run, with the reason.
        lenient: Report a backend whose simplest operator fails as
            "not applicable" (else each operator is an error).
        seed: Seed of the checks' random directions and arguments.
        rtol: Relative tolerance of the checks (default: by dtype).
        atol: Absolute tolerance of the checks (default: by dtype).
        directions: Random directions / closure arguments per check.
        advance: Called with a description before each step (progress bars).

    Returns:
        One :class:`Row` per backend and operator (one per backend that does not
        apply or is skipped), then one per supplied function.
    """
    with warnings.catch_warnings():
        # A constant derivative (a linear model's Hessian) is right: Autograd's
        # "Output seems independent of input" is noise here.
        warnings.filterwarnings("ignore", "Output seems independent")
        return _check_backends(
            func,
            x,
            ops,
            backends,
            supplied=supplied,
            build=build,
            closed_form=closed_form,
            skip=skip,
            lenient=lenient,
            seed=seed,
            rtol=rtol,
            atol=atol,
            directions=directions,
            advance=advance,
        )


def _check_backends(
    func: Function,
    x: np.ndarray,
    ops: Sequence[str],
    backends: Sequence[str],
    *,
    supplied: Sequence[tuple[str, str, Function]],
    build: Callable[[str], tuple[Function, dict[str, Any]]] | None,
    closed_form: Callable[[str], tuple[Any, ...]] | None,
    skip: Mapping[str, str] | None,
    lenient: bool,
    seed: int,
    rtol: float | None,
    atol: float | None,
    directions: int,
    advance: Advance | None,
) -> list[Row]:
    from diffops.check import check_functions
    from diffops.derivative import DerivativeFunction

    advance = advance or (lambda description: None)
    options: dict[str, Any] = {
        "seed": seed,
        "rtol": rtol,
        "atol": atol,
        "directions": directions,
    }
    original = func
    if build is None:
        # Find once how to run func on NumPy arrays (directly or through its
        # framework), rather than in every check.
        func = numpy_version(func, x)
    rows: list[Row] = []
    built: dict[tuple[str, str], Function] = {}
    by_key: dict[tuple[str, str], Row] = {}
    for backend in backends:
        if skip and backend in skip:
            rows.append(
                Row(backend, "(all)", "skipped", note=f"skipped: {skip[backend]}")
            )
            continue
        advance(f"{backend}: building")
        try:
            function, backend_options = (
                build(backend)
                if build
                else (original, default_options(original, backend, x))
            )
        except Exception as err:
            rows.append(Row(backend, "(all)", "error", note=_first_line(err)))
            continue
        found: dict[str, Function] = {}
        backend_rows: dict[str, Row] = {}
        for op in _probe_order(ops):
            advance(f"{backend} · {op}")
            try:
                start = time.perf_counter()
                d = DerivativeFunction(function, op, backend, **backend_options)
                result = d(x)
                first_call = time.perf_counter() - start
                per_call = time_per_call(partial(d, x))
            except Exception as err:
                if lenient and not found and not backend_rows:
                    backend_rows = {}
                    rows.append(
                        Row(
                            backend,
                            "(all)",
                            "not applicable",
                            note=f"not applicable: {_first_line(err)}",
                        )
                    )
                    break
                backend_rows[op] = Row(backend, op, "error", note=_first_line(err))
                continue
            row = Row(backend, op, "passed", per_call=per_call, first_call=first_call)
            if closed_form is not None:
                row.closed_form_error = max_error(result, closed_form(op), seed)
            found[op] = d
            backend_rows[op] = row
        if found:
            advance(f"{backend}: checking")
            report = check_functions(func, x, found, **options)
            for op in found:
                _update(backend_rows[op], report.for_operator(op))
        for op in ops:
            if op in backend_rows:
                rows.append(backend_rows[op])
                by_key[(backend, op)] = backend_rows[op]
                if op in found:
                    built[(backend, op)] = found[op]
    supplied_rows = _check_supplied(func, x, supplied, options, advance)
    for (op, _, function), row in zip(supplied, supplied_rows, strict=True):
        rows.append(row)
        if row.status not in FAILED or row.report is not None:
            built[(row.source, op)] = function
            by_key[(row.source, op)] = row
    _agreement(x, ops, backends, supplied, built, by_key, options, advance)
    return rows


def _check_supplied(
    func: Function,
    x: np.ndarray,
    supplied: Sequence[tuple[str, str, Function]],
    options: dict[str, Any],
    advance: Advance,
) -> list[Row]:
    """Time and check the hand-written derivative functions (one check for all)."""
    from diffops.check import check_functions

    rows = []
    for op, name, function in supplied:
        advance(f"supplied {name} · {op}")
        source = f"supplied: {name}"
        try:
            start = time.perf_counter()
            function(x.copy())
            first_call = time.perf_counter() - start
            per_call = time_per_call(partial(_call_copy, function, x))
        except Exception as err:
            rows.append(Row(source, op, "error", note=_first_line(err)))
            continue
        rows.append(Row(source, op, "passed", per_call=per_call, first_call=first_call))
    for position, (op, _, function) in enumerate(supplied):
        if rows[position].status == "error":
            continue
        advance(f"{rows[position].source}: checking")
        report = check_functions(func, x, {op: function}, **options)
        _update(rows[position], report)
    return rows


def _call_copy(function: Function, x: np.ndarray) -> Any:
    return function(x.copy())


def _agreement(
    x: np.ndarray,
    ops: Sequence[str],
    backends: Sequence[str],
    supplied: Sequence[tuple[str, str, Function]],
    built: dict[tuple[str, str], Function],
    by_key: dict[tuple[str, str], Row],
    options: dict[str, Any],
    advance: Advance,
) -> None:
    """Check every implementation against the first backend that passed."""
    all_ops = list(dict.fromkeys([*ops, *(op for op, _, _ in supplied)]))
    for op in all_ops:
        reference_source = next(
            (
                b
                for b in backends
                if (b, op) in built and by_key[(b, op)].status == "passed"
            ),
            None,
        )
        if reference_source is None:
            continue
        reference_function = built[(reference_source, op)]
        for (source, op_name), function in built.items():
            if op_name != op or source == reference_source:
                continue
            row = by_key[(source, op)]
            if row.report is None:
                continue
            advance(f"{source} · {op} vs {reference_source}")
            checks = compare_derivatives(
                function,
                reference_function,
                x,
                op,
                label=f"{reference_source}'s {op}",
                seed=options["seed"],
                rtol=options["rtol"],
                atol=options["atol"],
                directions=options["directions"],
            )
            _update(row, row.report.with_checks(checks))


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


def run_demo(
    backends: tuple[str, ...] | None = None,
    models: tuple[str, ...] | None = None,
    *,
    seed: int = 0,
    advance: Advance | None = None,
) -> list[Row]:
    """Check and time every selected model × backend × applicable operator.

    Args:
        backends: Backend names (default: every installed backend).
        models: Model names (default: all of :data:`diffops.models.MODELS`).
        seed: Seed of the evaluation points and the checks.
        advance: Progress callback (default: a progress bar on stderr).

    Returns:
        One :class:`Row` per case (``model`` set); skipped backends carry the reason.
    """
    import diffops

    backends = backends or diffops.available_backends()
    chosen = [MODELS[name] for name in (models or tuple(MODELS))]
    rows: list[Row] = []
    with _progress_or(advance) as step:
        for model in chosen:
            rows.extend(_demo_model(model, backends, seed, step))
    return rows


def _demo_model(
    model: Model, backends: Sequence[str], seed: int, advance: Advance
) -> list[Row]:
    x = np.asarray(model.sample(np.random.default_rng(seed), model.shape), np.float64)

    def value(y: np.ndarray) -> Any:
        return model.value(y)

    value.__name__ = model.name
    rows = check_backends(
        value,
        x,
        applicable_ops(model),
        backends,
        build=lambda backend: model.function(backend),
        closed_form=lambda op: reference(model, op, x),
        skip=model.skip,
        lenient=False,
        seed=seed,
        advance=lambda text: advance(f"{model.name}: {text}"),
    )
    return [replace(row, model=model.name) for row in rows]


def failures(results: Sequence[Row]) -> list[Row]:
    """Rows that fail: a check failed, an error, or (demo) a closed-form mismatch.

    Args:
        results: Rows from :func:`run_demo` or :func:`check_backends`.

    Returns:
        The failing rows.
    """
    return [r for r in results if r.failed]


# ---------------------------------------------------------------------------------
# Progress


@contextmanager
def progress(total: int | None = None, label: str = "checking") -> Iterator[Advance]:
    """A rich progress bar on stderr (nothing without rich): yields ``advance``.

    Args:
        total: Number of steps, if known.
        label: Initial description.

    Yields:
        ``advance(description)``, to call before each step.
    """
    try:
        from rich.console import Console
        from rich.progress import Progress
    except ImportError:
        yield lambda description: None
        return
    bar = Progress(transient=True, console=Console(stderr=True))
    bar.start()
    task = bar.add_task(label, total=total)
    try:
        yield lambda description: bar.update(task, description=description, advance=1)
    finally:
        bar.stop()


@contextmanager
def _progress_or(advance: Advance | None) -> Iterator[Advance]:
    if advance is not None:
        yield advance
        return
    with progress(label="demo") as step:
        yield step


# ---------------------------------------------------------------------------------
# Output


def summary(rows: Sequence[Row]) -> str:
    """One line: how many passed, failed, did not apply.

    Args:
        rows: The rows.

    Returns:
        E.g. ``"12 passed, 1 failed; not applicable: symnum"``.
    """
    bad = failures(rows)
    counted = [r for r in rows if r.op_name != "(all)"]
    passed = sum(1 for r in counted if not r.failed)
    text = f"{passed} passed, {len(bad)} failed"
    kinks = sum(1 for r in counted if r.status == "not differentiable")
    if kinks:
        text += f" ({kinks} at a point that is not differentiable)"
    not_applicable = [r.source for r in rows if r.status == "not applicable"]
    if not_applicable:
        text += f"; not applicable: {', '.join(not_applicable)}"
    return text


def applied_backends(rows: Sequence[Row]) -> list[str]:
    """Backends that ran the function.

    Args:
        rows: The rows.

    Returns:
        Backend names with at least one operator row.
    """
    return list(
        dict.fromkeys(
            r.source
            for r in rows
            if not r.source.startswith("supplied") and r.op_name != "(all)"
        )
    )


def as_json(rows: Sequence[Row], **meta: Any) -> dict[str, Any]:
    """The rows as one JSON-compatible document.

    Args:
        rows: The rows.
        **meta: Extra top-level entries (target, point, ...).

    Returns:
        ``{**meta, "passed": ..., "summary": ..., "results": [...]}``.
    """
    return {
        **meta,
        "passed": not failures(rows),
        "summary": summary(rows),
        "backends_applied": applied_backends(rows),
        "not_applicable": {
            r.source: r.note.removeprefix("not applicable: ")
            for r in rows
            if r.status == "not applicable"
        },
        "results": [r.as_dict() for r in rows],
    }


def _result_cell(row: Row, number: int | None) -> str:
    mark = f" [{number}]" if number else ""
    if row.status in ("not applicable", "skipped"):
        return f"{row.status}{mark}"
    if row.failed:
        return f"FAILED{mark}"
    if row.status == "not differentiable":
        return f"not differentiable{mark}"
    return "passed"


def _columns(closed_forms: bool) -> list[str]:
    columns = ["source", "operator", "result"]
    if closed_forms:
        columns.append("closed form")
    return [*columns, "max abs err", "max rel err", "per call", "first call"]


def _cells(row: Row, number: int | None, closed_forms: bool) -> list[str]:
    op = "" if row.op_name == "(all)" else row.op_name
    cells = [row.source, op, _result_cell(row, number)]
    if closed_forms:
        cells.append(_error_text(row.closed_form_error))
    return [
        *cells,
        _error_text(row.max_abs_error),
        _error_text(row.max_rel_error),
        "" if math.isnan(row.per_call) else format_seconds(row.per_call),
        "" if math.isnan(row.first_call) else format_seconds(row.first_call),
    ]


def _error_text(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.1e}"


def _noted(rows: Sequence[Row]) -> list[tuple[int, Row]]:
    """Rows with something to explain, numbered from 1."""
    noted = (r for r in rows if r.failed or (r.note and r.status != "passed"))
    return list(enumerate(noted, start=1))


def _note_text(number: int, row: Row) -> str:
    where = row.source if row.op_name == "(all)" else f"{row.source} · {row.op_name}"
    if row.model and row.failed and not row.note:
        return (
            f"[{number}] {where}: differs from the closed forms by "
            f"{row.closed_form_error:.2e} > {TOLERANCE:.0e}"
        )
    note = row.note.removeprefix(f"{row.op_name}: ")
    return f"[{number}] {where}: {note}"


def render(
    results: Sequence[Row],
    file: TextIO | None = None,
    *,
    title: str | None = None,
) -> None:
    """Print the rows as tables (one per model for the demo), rich if installed.

    Args:
        results: Rows from :func:`check_backends` or :func:`run_demo`.
        file: Where to print (default: standard output).
        title: Title of the table (the demo titles each model's table).
    """
    groups: dict[str, list[Row]] = {}
    for row in results:
        groups.setdefault(row.model, []).append(row)
    for model, rows in groups.items():
        heading = f"{model}: {MODELS[model].description}" if model else title
        _render_table(rows, heading, closed_forms=bool(model), file=file)


def _render_table(
    rows: list[Row], title: str | None, *, closed_forms: bool, file: TextIO | None
) -> None:
    numbers = {id(r): i for i, r in _noted(rows)}
    notes = [_note_text(i, r) for i, r in _noted(rows)]
    columns = _columns(closed_forms)
    body = [_cells(r, numbers.get(id(r)), closed_forms) for r in rows]
    for previous, cells in zip(rows, body[1:], strict=False):
        if cells[0] == previous.source:
            cells[0] = ""  # one source name per group of rows
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(_text_table(title, columns, body, notes), file=file)
        return
    import sys

    out = file or sys.stdout
    console = Console(file=out, width=None if out.isatty() else 200, highlight=False)
    if title:
        console.print(title, markup=False, soft_wrap=True)
    table = Table()
    numeric = {"closed form", "max abs err", "max rel err", "per call", "first call"}
    for column in columns:
        table.add_column(
            column, justify="right" if column in numeric else "left", no_wrap=True
        )
    for cells in body:
        table.add_row(*cells)
    console.print(table)
    for note in notes:
        console.print(note, markup=False, soft_wrap=True)


def _text_table(
    title: str | None, columns: list[str], body: list[list[str]], notes: list[str]
) -> str:
    widths = [max(len(r[i]) for r in [columns, *body]) for i in range(len(columns))]
    numeric = {"closed form", "max abs err", "max rel err", "per call", "first call"}

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.rjust(w) if column in numeric else cell.ljust(w)
            for cell, w, column in zip(cells, widths, columns, strict=True)
        ).rstrip()

    lines = [title] if title else []
    lines += [line(columns), *(line(cells) for cells in body), *notes]
    return "\n".join(lines)


def header(target: str, x: np.ndarray, seed: int) -> str:
    """The title line of a ``diffops check`` table.

    Args:
        target: What was checked, e.g. ``"model.py:f"``.
        x: The point.
        seed: The seed.

    Returns:
        E.g. ``"diffops check model.py:f at x = [0.3, 0.5] (float64), seed 0"``.
    """
    return f"diffops check {target} at {describe_point(x)}, seed {seed}"
