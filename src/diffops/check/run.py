"""Running every check on a mapping of derivative functions: :func:`run_checks`.

The function is evaluated in NumPy once
(:func:`~diffops.check.evaluate.numpy_function`), then each derivative function is
called and checked (structure, value, linearity, finite differences or a reference
implementation, symmetry) and the checks across them run last; the results are
grouped by operator into a :class:`~diffops.check.report.CheckReport`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from diffops.boundary import as_input_array
from diffops.check.checker import Checker
from diffops.check.consistency import check_against, check_consistency, check_symmetric
from diffops.check.differencing import check_differences
from diffops.check.evaluate import backend_options, numpy_function
from diffops.check.report import CheckReport, CheckUsageError, PartCheck
from diffops.check.structure import check_call, check_linear, check_value
from diffops.check.supplied import Supplied, densified
from diffops.check.tolerances import CheckSettings
from diffops.errors import NonScalarOutputError, function_name
from diffops.operators import OPERATORS

Function = Callable[..., Any]


def run_checks(
    func: Function | None,
    x: Any,
    functions: Mapping[str, Function],
    args: tuple[Any, ...],
    reference: str | Mapping[str, Function],
    settings: CheckSettings,
    backend: str | None,
    name: str,
) -> CheckReport:
    """The checks of :func:`diffops.check.check_functions`, its options gathered.

    Args:
        func: The function (``None``: each operator's value output is the
            reference for its first derivative).
        x: The point, any shape.
        functions: The derivative functions to check, by operator name.
        args: The extra arguments every function takes after ``x``.
        reference: ``"fd"``, a backend name or a mapping of derivative functions.
        settings: Tolerances, step, directions, full limit and seed.
        backend: The backend ``func`` is written for, if known.
        name: What to call ``func`` in the report when it is ``None``.

    Returns:
        The :class:`CheckReport`.
    """
    x = as_input_array(x, copy=True)
    evaluated = _Evaluated(None, None, float(np.finfo(np.float64).eps), name)
    if func is not None:
        evaluated = _evaluate(func, x, args, backend, functions)
    rtol, atol = settings.tolerances(x.dtype)
    checker = Checker(
        x,
        args,
        evaluated.function,
        evaluated.value,
        evaluated.name,
        func_eps=evaluated.eps,
        rtol=rtol,
        atol=atol,
        step=settings.step,
        directions=settings.directions,
        full_limit=settings.full_limit,
        seed=settings.seed,
    )
    entries = [
        Supplied(OPERATORS[k], densified(OPERATORS[k], d)) for k, d in functions.items()
    ]
    references = _references(reference, func, x, entries)
    _check_all(checker, entries, references)
    checks = _grouped(checker.checks, [e.op.name for e in entries])
    described = references[0] if references else _differences_used(checker, settings)
    return CheckReport(evaluated.name, x, checks, settings.seed, rtol, atol, described)


def _differences_used(checker: Checker, settings: CheckSettings) -> str:
    size, limit = checker.x.size, settings.full_limit
    how = (
        f"every coordinate direction (x.size = {size} <= {limit})"
        if checker.full
        else f"{checker.directions} random directions, rerun on failure "
        f"(x.size = {size} > {limit})"
    )
    return f"central finite differences with Richardson extrapolation, {how}"


@dataclass(frozen=True)
class _Evaluated:
    """The function as NumPy function of a float64 point, its value and precision."""

    function: Callable[[np.ndarray], np.ndarray] | None
    value: np.ndarray | None
    eps: float
    name: str


_PYTHON_HINT = (
    "check_derivatives takes the function itself first, and the derivative "
    "functions as keywords: check_derivatives(f, x, grad_and_value=df)."
)


def _evaluate(
    func: Function,
    x: np.ndarray,
    args: tuple[Any, ...],
    backend: str | None,
    functions: Mapping[str, Function],
) -> _Evaluated:
    """``func`` in NumPy at ``x``; scalar operators need a scalar value."""
    name = function_name(func)
    evaluate, raw = numpy_function(
        func, x.astype(np.float64), args, backend, hint=_PYTHON_HINT
    )
    value = np.asarray(raw, dtype=np.float64)
    for key in functions:
        if OPERATORS[key].scalar_only and value.shape != ():
            msg = (
                f"{key} needs a scalar-valued function, but {name} returns shape "
                f"{value.shape}; check jacobian_and_value or vjp_and_value instead."
            )
            raise NonScalarOutputError(msg)
    return _Evaluated(evaluate, value, float(np.finfo(raw.dtype).eps), name)


def _check_all(
    checker: Checker,
    entries: Sequence[Supplied],
    references: tuple[str, Mapping[str, Function]] | None,
) -> None:
    """Every check of every derivative function, then those across them."""
    for entry in entries:
        check_call(checker, entry)
        if not entry.usable:
            continue
        check_value(checker, entry)
        check_linear(checker, entry)
        if references is not None:
            label, reference_functions = references
            if entry.op.name in reference_functions:
                check_against(checker, entry, reference_functions[entry.op.name], label)
        else:
            for name in reversed(entry.op.outputs[:-1]):
                check_differences(checker, entry, name)
        if "hessian" in entry.op.outputs:
            check_symmetric(checker, entry)
    check_consistency(checker, entries)


def _references(
    reference: str | Mapping[str, Function],
    original: Function | None,
    x: np.ndarray,
    entries: Sequence[Supplied],
) -> tuple[str, Mapping[str, Function]] | None:
    """The reference derivative functions, or ``None`` for finite differences."""
    if isinstance(reference, str) and reference.lower() in ("fd", "finite differences"):
        return None
    if not isinstance(reference, str):
        return "the reference derivative functions", reference
    from diffops.derivative import DerivativeFunction
    from diffops.registry import require_available

    name = reference.lower()
    require_available(name)
    if original is None:
        msg = (
            f"reference={reference!r} needs the original function: pass it "
            f"first, check_derivatives(func, x, grad_and_value=derivative, "
            f"reference={reference!r})."
        )
        raise CheckUsageError(msg)
    options = backend_options(original, name, x.shape)
    functions = {
        e.op.name: DerivativeFunction(original, e.op.name, name, **options)
        for e in entries
    }
    return f"diffops' derivatives on {name}", functions


def _grouped(checks: list[PartCheck], order: list[str]) -> tuple[PartCheck, ...]:
    """Checks grouped by operator (in ``order``), then by part, keeping order."""
    ranked = sorted(
        enumerate(checks),
        key=lambda item: (order.index(item[1].op_name), _part_rank(item[1]), item[0]),
    )
    return tuple(c for _, c in ranked)


def _part_rank(check: PartCheck) -> int:
    op = OPERATORS[check.op_name]
    if check.part == "structure":
        return -1
    if check.part in op.outputs:
        return len(op.outputs) - op.outputs.index(check.part)
    return len(op.outputs) + 1
