"""The checker's public functions and the handling of their arguments.

:func:`check_derivatives` validates its arguments and parses its two call forms (the
function with derivative functions keyed by operator name, or a derivative function
built by diffops); :func:`check_functions` evaluates the function in NumPy, runs the
checks (:mod:`~diffops.check.structure`, :mod:`~diffops.check.differencing`,
:mod:`~diffops.check.consistency`) on every derivative function and groups them into
a :class:`~diffops.check.report.CheckReport`;
:func:`compare_derivatives` compares two implementations of one operator, output by
output (``diffops check`` and ``diffops demo`` use it across backends).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from diffops.boundary import as_input_array
from diffops.check.checker import Checker
from diffops.check.consistency import check_against
from diffops.check.report import CheckReport, CheckUsageError, PartCheck
from diffops.check.run import run_checks
from diffops.check.supplied import Supplied, densified
from diffops.check.tolerances import FULL_LIMIT, CheckSettings, default_tolerances
from diffops.errors import (
    NotCallableError,
    UnknownOperatorError,
    closest,
    first_line,
    function_name,
)
from diffops.operators import ALL_DIFF_OPS, OPERATORS

Function = Callable[..., Any]


def check_derivatives(
    func: Function,
    x: Any,
    op_name: str | None = None,
    *,
    args: Sequence[Any] = (),
    reference: str | Mapping[str, Function] = "fd",
    rtol: float | None = None,
    atol: float | None = None,
    step: float | None = None,
    directions: int = 3,
    full_limit: int = FULL_LIMIT,
    seed: int = 0,
    raise_on_failure: bool | None = None,
    **supplied: Function,
) -> CheckReport:
    """Check derivative functions of ``func`` at ``x``.

    ``check_derivatives(func, x, grad_and_value=df, ...)`` checks derivative
    functions of ``func`` passed by operator name (each returns its operator's tuple,
    called as ``df(x, *args)``). ``check_derivatives(derivative, x)`` checks one
    built by diffops (its function and backend are read from it), and
    ``check_derivatives(derivative, x, op_name)`` any derivative function against
    its own outputs; these two forms raise on failure by default.

    Args:
        func: The function ``f(x, *args)``, returning an array of shape ``F``; or,
            in the second form, the derivative function to check.
        x: Point of shape ``S`` (float32 or float64; other real inputs: float64).
        op_name: Operator implemented by ``func`` (second form only).
        args: Extra arguments of ``func`` and of every derivative function.
        reference: ``"fd"`` (finite differences and ``func(x)``), a backend name
            (diffops' derivatives on it) or a mapping of derivative functions.
        rtol: Relative tolerance (default 1e-6 for float64, 1e-4 for float32).
        atol: Absolute tolerance (default ``16 eps`` of ``x``'s dtype).
        step: Largest finite-difference step relative to ``max(1, |x[k]|)``
            (default ``2 eps^(1/5)``: 1.5e-3 in float64).
        directions: Random closure arguments (and directions above ``full_limit``).
        full_limit: Largest ``x.size`` differenced along every coordinate.
        seed: Seed of the random directions and closure arguments.
        raise_on_failure: Raise :class:`DerivativeCheckError` on the first failure
            (default: ``False`` in the first form, ``True`` in the second).
        **supplied: Derivative functions keyed by operator name, e.g.
            ``grad_and_value=df``.

    Returns:
        The :class:`~diffops.check.CheckReport`: ``report.passed``,
        ``report.failures``, and a table when printed.

    Raises:
        DerivativeCheckError: (an ``AssertionError``) if ``raise_on_failure`` and a
            check failed, naming the part, the worst entry, the numbers and seed.
        UnknownOperatorError: (a ``ValueError``) for an unknown operator name.
        NonScalarOutputError: (a ``ValueError``) for a scalar-only operator on a
            function with a non-scalar value.
        CheckUsageError: (a ``ValueError``) if there is nothing to check.
        TypeError: If ``func`` or a derivative function is not callable.

    Example:
        >>> import numpy as np
        >>> def df(x):                 # the gradient of sum(x**2), not of sum(x)
        ...     return 2 * x, np.sum(x)
        >>> report = check_derivatives(np.sum, [1.0, 2.0], grad_and_value=df)
        >>> report.passed
        False
    """
    forms = _call_forms(func, op_name, supplied)
    settings = CheckSettings(rtol, atol, step, directions, full_limit, seed)
    name = function_name(func)
    functions, original = forms.functions, forms.original
    report = run_checks(
        original, x, functions, tuple(args), reference, settings, forms.backend, name
    )
    if forms.raises if raise_on_failure is None else raise_on_failure:
        report.raise_if_failed()
    return report


@dataclass(frozen=True)
class _CallForm:
    """What a call of :func:`check_derivatives` asks to check."""

    functions: dict[str, Function]
    original: Function | None
    backend: str | None
    raises: bool


_OPTIONS = (
    "args",
    "reference",
    "rtol",
    "atol",
    "step",
    "directions",
    "full_limit",
    "seed",
    "raise_on_failure",
)


def _call_forms(
    func: Function, op_name: str | None, supplied: Mapping[str, Function]
) -> _CallForm:
    """The derivative functions, the original function and its backend, if known."""
    from diffops.derivative import DerivativeFunction

    _require_callables(func, supplied)
    functions: dict[str, Function] = dict(supplied)
    if op_name is not None:
        if op_name not in OPERATORS:
            msg = (
                f"op_name={op_name!r} is not an operator: valid names are "
                f"{ALL_DIFF_OPS}.{closest(str(op_name), ALL_DIFF_OPS)}"
            )
            raise UnknownOperatorError(msg)
        functions = {op_name: func, **functions}
        if isinstance(func, DerivativeFunction) and func.op_name == op_name:
            return _CallForm(functions, func.func, func.backend, True)
        return _CallForm(functions, None, None, True)
    if isinstance(func, DerivativeFunction):
        if func.op_name in functions:
            msg = (
                f"check_derivatives got two {func.op_name} functions: the first "
                f"argument and the keyword. Pass the original function first."
            )
            raise CheckUsageError(msg)
        functions = {func.op_name: func, **functions}
        return _CallForm(functions, func.func, func.backend, not supplied)
    if not functions:
        msg = (
            f"check_derivatives has nothing to check: pass derivative functions of "
            f"{function_name(func)} by operator name, e.g. "
            f"check_derivatives(f, x, grad_and_value=df), or a derivative function "
            f"built by diffops, check_derivatives(diffops.grad_and_value(f), x)."
        )
        raise CheckUsageError(msg)
    return _CallForm(functions, func, None, False)


def _require_callables(func: Function, supplied: Mapping[str, Function]) -> None:
    """``func`` and every keyword are callables; the keywords name operators."""
    if not callable(func):
        msg = (
            f"check_derivatives needs the function to check against (or a derivative "
            f"function built by diffops), not {type(func).__name__} {func!r}."
        )
        raise NotCallableError(msg)
    for key, d in supplied.items():
        if key not in OPERATORS:
            msg = (
                f"check_derivatives got the keyword {key!r}, which is not an "
                f"operator: derivative functions are passed by operator name "
                f"({', '.join(ALL_DIFF_OPS)}); the options are {', '.join(_OPTIONS)}."
                f"{closest(key, (*ALL_DIFF_OPS, *_OPTIONS))}"
            )
            raise UnknownOperatorError(msg)
        if not callable(d):
            msg = f"{key} must be a derivative function, not {type(d).__name__}."
            raise NotCallableError(msg)


def check_functions(
    func: Function | None,
    x: Any,
    functions: Mapping[str, Function],
    *,
    args: Sequence[Any] = (),
    reference: str | Mapping[str, Function] = "fd",
    rtol: float | None = None,
    atol: float | None = None,
    step: float | None = None,
    directions: int = 3,
    full_limit: int = FULL_LIMIT,
    seed: int = 0,
    backend: str | None = None,
    name: str = "f",
) -> CheckReport:
    """Check derivative functions given as a mapping; never raises on failure.

    :func:`check_derivatives` parses its call forms and calls this.

    Args:
        func: The function, or ``None`` to use each operator's own value output as
            the reference for its first derivative.
        x: The point.
        functions: Derivative functions keyed by operator name.
        args: Extra arguments of ``func`` and the derivative functions.
        reference: As in :func:`check_derivatives`.
        rtol: As in :func:`check_derivatives`.
        atol: As in :func:`check_derivatives`.
        step: As in :func:`check_derivatives`.
        directions: As in :func:`check_derivatives`.
        full_limit: As in :func:`check_derivatives`.
        seed: As in :func:`check_derivatives`.
        backend: Backend ``func`` is written for, if known (to evaluate it).
        name: Name of the checked function when ``func`` is ``None``.

    Returns:
        The :class:`CheckReport`.
    """
    settings = CheckSettings(rtol, atol, step, directions, full_limit, seed)
    return run_checks(
        func, x, functions, tuple(args), reference, settings, backend, name
    )


def compare_derivatives(
    derivative: Function,
    reference: Function,
    x: Any,
    op_name: str,
    *,
    args: Sequence[Any] = (),
    label: str = "reference",
    rtol: float | None = None,
    atol: float | None = None,
    directions: int = 3,
    seed: int = 0,
) -> list[PartCheck]:
    """Compare two implementations of one operator output by output.

    Closures are applied to the same ``directions`` random arguments.

    Args:
        derivative: The derivative function checked.
        reference: Another implementation of ``op_name``.
        x: The point.
        op_name: Operator both implement.
        args: Extra arguments of both.
        label: The reference in words, e.g. ``"jax"``.
        rtol: Relative tolerance (default as in :func:`check_derivatives`).
        atol: Absolute tolerance (default as in :func:`check_derivatives`).
        directions: Number of random closure arguments.
        seed: Seed of the closure arguments.

    Returns:
        One :class:`PartCheck` per output (or one "not checked" if a call failed).
    """
    x = as_input_array(x, copy=True)
    default_rtol, default_atol = default_tolerances(x.dtype)
    checker = Checker(
        x,
        tuple(args),
        None,
        None,
        "f",
        rtol=default_rtol if rtol is None else rtol,
        atol=default_atol if atol is None else atol,
        step=None,
        directions=directions,
        full_limit=FULL_LIMIT,
        seed=seed,
    )
    op = OPERATORS[op_name]
    entry = Supplied(op, densified(op, derivative))
    try:
        entry.outputs = tuple(derivative(x.copy(), *args))
    except Exception as err:
        message = f"{op_name}: calling it raised {first_line(err, with_type=True)}"
        return [PartCheck(op_name, "all", label, "not checked", message=message)]
    if len(entry.outputs) != op.n_outputs:
        return []
    check_against(checker, entry, reference, label)
    return checker.checks
