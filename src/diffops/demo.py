"""The ``diffops demo`` command: every example model on every installed backend.

For each model in :data:`diffops.models.MODELS`, each installed backend and each
operator that applies, the demo builds the derivative function, checks it against the
model's closed-form derivatives and times it. It prints one table per model with the
maximum absolute error, the median per-call time and the first-call (build and
compile) time, and returns a non-zero exit code if any error exceeds the tolerance.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

from diffops.models import MODELS, Model, applicable_ops, reference
from diffops.timing import format_seconds, median_call_time

TOLERANCE = 1e-8


@dataclass
class DemoResult:
    """One cell of the demo: a model, a backend and an operator.

    Attributes:
        model: Model name.
        backend: Backend name.
        op_name: Operator name.
        max_error: Largest absolute error over all outputs (closures applied to a
            random argument), or ``nan`` if the call failed.
        per_call: Median seconds per call after the first.
        first_call: Seconds to build the derivative function and make the first call.
        note: Error message or reason for skipping, if any.
    """

    model: str
    backend: str
    op_name: str
    max_error: float
    per_call: float
    first_call: float
    note: str = ""


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


def run_case(model: Model, backend: str, op_name: str, seed: int = 0) -> DemoResult:
    """Build, check and time one operator of one model on one backend.

    Args:
        model: The model.
        backend: Backend name.
        op_name: Operator name.
        seed: Seed for the evaluation point and closure arguments.

    Returns:
        The measured :class:`DemoResult`.
    """
    import diffops

    x = model.sample(np.random.default_rng(seed), model.shape)
    try:
        with warnings.catch_warnings():
            # A constant derivative (the linear model's Hessian) is right, not a
            # problem: Autograd's "Output seems independent of input" is noise here.
            warnings.filterwarnings("ignore", "Output seems independent of input")
            start = time.perf_counter()
            func, options = model.function(backend)
            derivative = getattr(diffops, op_name)(func, backend=backend, **options)
            result = derivative(x)
            first_call = time.perf_counter() - start
            error = max_error(result, reference(model, op_name, x), seed)
            per_call = median_call_time(lambda: derivative(x))
    except Exception as err:  # reported in the table
        return DemoResult(
            model.name,
            backend,
            op_name,
            float("nan"),
            float("nan"),
            float("nan"),
            f"{type(err).__name__}: {err}",
        )
    return DemoResult(model.name, backend, op_name, error, per_call, first_call)


def run_demo(
    backends: tuple[str, ...] | None = None, models: tuple[str, ...] | None = None
) -> list[DemoResult]:
    """Run every selected model × backend × applicable operator.

    Args:
        backends: Backend names (default: every installed backend).
        models: Model names (default: all of :data:`diffops.models.MODELS`).

    Returns:
        One :class:`DemoResult` per case; skipped cases carry the reason in ``note``.
    """
    import diffops

    backends = backends or diffops.available_backends()
    chosen = [MODELS[name] for name in (models or tuple(MODELS))]
    cases = [
        (model, backend, op)
        for model in chosen
        for backend in backends
        for op in applicable_ops(model)
    ]
    results = []
    with _progress() as advance:
        for model, backend, op in cases:
            advance(f"{model.name} · {backend} · {op}")
            if backend in model.skip:
                if op == applicable_ops(model)[0]:
                    nan = float("nan")
                    reason = f"skipped: {model.skip[backend]}"
                    results.append(
                        DemoResult(model.name, backend, "(all)", nan, nan, nan, reason)
                    )
                continue
            results.append(run_case(model, backend, op))
    return results


class _progress:
    """A rich progress bar on stderr when rich is installed, else nothing."""

    def __enter__(self) -> Any:
        try:
            from rich.progress import Progress
        except ImportError:
            return lambda description: None
        from rich.console import Console

        self._bar = Progress(transient=True, console=Console(stderr=True))
        self._bar.start()
        task = self._bar.add_task("demo", total=None)

        def advance(description: str) -> None:
            self._bar.update(task, description=description, advance=1)

        return advance

    def __exit__(self, *exc: object) -> None:
        bar = getattr(self, "_bar", None)
        if bar is not None:
            bar.stop()


def render(results: list[DemoResult], file: TextIO | None = None) -> None:
    """Print the results as one table per model (rich if installed, else text).

    Args:
        results: Output of :func:`run_demo`.
        file: Where to print (default: standard output).
    """
    rows_by_model: dict[str, list[DemoResult]] = {}
    for r in results:
        rows_by_model.setdefault(r.model, []).append(r)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(_render_text(rows_by_model), file=file)
        return
    console = Console(file=file)
    for name, rows in rows_by_model.items():
        notes = [f"[{i}] {r.backend}: {r.note}" for i, r in _noted(rows)]
        table = Table(
            title=f"{name}: {MODELS[name].description}",
            title_justify="left",
            caption="\n".join(notes) or None,
            caption_justify="left",
        )
        for col in _COLUMNS:
            right = col in ("max error", "per call", "first call")
            table.add_column(
                col,
                justify="right" if right else "left",
                no_wrap=True,
                min_width={"operator": 26, "backend": 9}.get(col),
            )
        numbers = {id(r): i for i, r in _noted(rows)}
        for r in rows:
            table.add_row(r.op_name, r.backend, *_cells(r, numbers.get(id(r))))
        console.print(table)


_COLUMNS = ("operator", "backend", "max error", "per call", "first call")


def _noted(rows: list[DemoResult]) -> list[tuple[int, DemoResult]]:
    """The rows with a note (skips, failures), numbered from 1."""
    return list(enumerate((r for r in rows if r.note), start=1))


def _cells(r: DemoResult, number: int | None = None) -> tuple[str, str, str]:
    mark = f" [{number}]" if number else ""
    if r.note.startswith("skipped"):
        return (f"skipped{mark}", "", "")
    if r.note:
        return (f"FAILED{mark}", "", "")
    flag = "" if r.max_error <= TOLERANCE else "  ✗"
    return (
        f"{r.max_error:.1e}{flag}",
        format_seconds(r.per_call),
        format_seconds(r.first_call),
    )


def _render_text(rows_by_model: dict[str, list[DemoResult]]) -> str:
    lines = []
    for name, rows in rows_by_model.items():
        lines.append(f"\n{name}: {MODELS[name].description}")
        lines.append(
            f"{'operator':28} {'backend':10} {'max error':>12} "
            f"{'per call':>10} {'first call':>10}"
        )
        numbers = {id(r): i for i, r in _noted(rows)}
        for r in rows:
            err, per, first = _cells(r, numbers.get(id(r)))
            lines.append(
                f"{r.op_name:28} {r.backend:10} {err:>12} {per:>10} {first:>10}"
            )
        lines.extend(f"[{i}] {r.backend}: {r.note}" for i, r in _noted(rows))
    return "\n".join(lines)


def failures(results: list[DemoResult]) -> list[DemoResult]:
    """Cases that failed or whose error exceeds :data:`TOLERANCE` (skips excluded).

    Args:
        results: Output of :func:`run_demo`.

    Returns:
        The failing cases.
    """
    return [
        r
        for r in results
        if not r.note.startswith("skipped") and (r.note or not r.max_error <= TOLERANCE)
    ]
