"""The checker's public functions and the handling of their arguments.

:func:`check_derivatives` validates its arguments and parses its two call forms (the
function with derivative functions keyed by operator name, or a derivative function
built by diffops); :func:`check_functions` evaluates the function in NumPy, runs the
checks of :class:`~diffops.check.checker._Checker` on every derivative function and
groups them into a :class:`~diffops.check.report.CheckReport`;
:func:`compare_derivatives` compares two implementations of one operator, output by
output (``diffops check`` and ``diffops demo`` use it across backends).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from diffops.boundary import as_input_array
from diffops.check.checker import _Checker, _dense, _first_line, _Supplied
from diffops.check.evaluate import numpy_function
from diffops.check.report import CheckReport, CheckUsageError, PartCheck
from diffops.check.tolerances import FULL_LIMIT, default_tolerances
from diffops.errors import (
    NonScalarOutputError,
    NotCallableError,
    UnknownOperatorError,
    closest,
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

    Two call forms:

    - ``check_derivatives(func, x, grad_and_value=df, ...)``: ``func`` is the
      function; each keyword names an operator and gives a derivative function of
      ``func`` implementing it (returning that operator's tuple, e.g.
      ``(grad, value)``), called as ``df(x, *args)``.
    - ``check_derivatives(derivative, x)`` with a derivative function built by
      diffops (its ``func``, ``op_name`` and backend are read from it), or
      ``check_derivatives(derivative, x, op_name)`` for any derivative function
      (then only its own outputs are the reference: its value is not compared with
      a function). These raise on failure unless ``raise_on_failure=False``.

    Args:
        func: The function ``f(x, *args)``, returning an array of shape ``F``; or,
            in the second form, the derivative function to check.
        x: Point of shape ``S`` at which to check (float32 or float64; other real
            inputs become float64).
        op_name: Operator implemented by ``func`` (second form only).
        args: Extra arguments of ``func`` and of every derivative function; they are
            not differentiated.
        reference: ``"fd"`` (default): finite differences and ``func(x)``. A backend
            name (e.g. ``"jax"``): diffops' own derivatives of ``func`` on that
            backend. A mapping from operator names to derivative functions: those.
        rtol: Relative tolerance (default 1e-6 for float64, 1e-4 for float32).
        atol: Absolute tolerance (default ``16 eps`` of ``x``'s dtype).
        step: Largest finite-difference step relative to ``max(1, |x[k]|)``
            (default ``2 eps^(1/5)`` of the precision of the differenced function:
            1.5e-3 in float64).
        directions: Number of random closure arguments, and of random directions
            when ``x.size > full_limit``.
        full_limit: Largest ``x.size`` for which every coordinate direction is
            differenced; above it, random projections (rerun on failure).
        seed: Seed of the random directions and closure arguments.
        raise_on_failure: Raise :class:`DerivativeCheckError` on the first failure
            (default: ``False`` in the first form, ``True`` in the second).
        **supplied: Derivative functions keyed by operator name, e.g.
            ``grad_and_value=df`` or ``mhp_jacobian_and_value=dmhp``.

    Returns:
        The :class:`~diffops.check.CheckReport`: ``report.passed``,
        ``report.failures``, and a table when printed.

    Raises:
        DerivativeCheckError: (an ``AssertionError``) if ``raise_on_failure`` and a
            check failed, naming the operator, the part, the worst entry, the
            expected and actual numbers, the tolerance and the seed.
        UnknownOperatorError: (a ``ValueError``) for an unknown operator name.
        NonScalarOutputError: (a ``ValueError``) for a scalar-only operator on a
            function with a non-scalar value.
        CheckUsageError: (a ``ValueError``) if there is nothing to check.
        TypeError: If ``func`` or a derivative function is not callable.
        Exception: Whatever ``func`` raises at ``x``.

    Example:
        >>> import numpy as np, diffops
        >>> def f(x):
        ...     return (x**2).sum()
        >>> def df(x):
        ...     return 2 * x, (x**2).sum()
        >>> diffops.check_derivatives(f, np.array([1.0, 2.0]), grad_and_value=df).passed
        True
    """
    from diffops.derivative import DerivativeFunction

    if not callable(func):
        msg = (
            f"check_derivatives needs the function to check against (or a derivative "
            f"function built by diffops), not {type(func).__name__} {func!r}."
        )
        raise NotCallableError(msg)
    for key, d in supplied.items():
        if key not in OPERATORS:
            options = (
                "args, reference, rtol, atol, step, directions, full_limit, seed, "
                "raise_on_failure"
            )
            msg = (
                f"check_derivatives got the keyword {key!r}, which is not an "
                f"operator: derivative functions are passed by operator name "
                f"({', '.join(ALL_DIFF_OPS)}); the options are {options}."
                f"{closest(key, (*ALL_DIFF_OPS, *options.split(', ')))}"
            )
            raise UnknownOperatorError(msg)
        if not callable(d):
            msg = f"{key} must be a derivative function, not {type(d).__name__}."
            raise NotCallableError(msg)
    backend_hint: str | None = None
    old_form = op_name is not None
    functions: dict[str, Function] = dict(supplied)
    original: Function | None = func
    if op_name is not None:
        if op_name not in OPERATORS:
            msg = (
                f"op_name={op_name!r} is not an operator: valid names are "
                f"{ALL_DIFF_OPS}.{closest(str(op_name), ALL_DIFF_OPS)}"
            )
            raise UnknownOperatorError(msg)
        if isinstance(func, DerivativeFunction) and func.op_name == op_name:
            original = func.func
            backend_hint = func.backend
        else:
            original = None
        functions = {op_name: func, **functions}
    elif isinstance(func, DerivativeFunction):
        old_form = not supplied
        if func.op_name in functions:
            msg = (
                f"check_derivatives got two {func.op_name} functions: the first "
                f"argument and the keyword. Pass the original function first."
            )
            raise CheckUsageError(msg)
        functions = {func.op_name: func, **functions}
        original = func.func
        backend_hint = func.backend
    if not functions:
        msg = (
            f"check_derivatives has nothing to check: pass derivative functions of "
            f"{getattr(func, '__name__', 'func')} by operator name, e.g. "
            f"check_derivatives(f, x, grad_and_value=df), or a derivative function "
            f"built by diffops, check_derivatives(diffops.grad_and_value(f), x)."
        )
        raise CheckUsageError(msg)
    report = check_functions(
        original,
        x,
        functions,
        args=args,
        reference=reference,
        rtol=rtol,
        atol=atol,
        step=step,
        directions=directions,
        full_limit=full_limit,
        seed=seed,
        backend=backend_hint,
        name=getattr(func, "__name__", "f"),
    )
    if old_form if raise_on_failure is None else raise_on_failure:
        report.raise_if_failed()
    return report


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
    original = func
    x = as_input_array(x, copy=True)
    default_rtol, default_atol = default_tolerances(x.dtype)
    rtol = default_rtol if rtol is None else float(rtol)
    atol = default_atol if atol is None else float(atol)
    args = tuple(args)
    backend_hint = backend

    func_values: Callable[[np.ndarray], np.ndarray] | None = None
    value: np.ndarray | None = None
    func_eps = float(np.finfo(np.float64).eps)
    func_name = getattr(original, "__name__", name) if original is not None else name
    if original is not None:
        func_values, raw = numpy_function(
            original, x.astype(np.float64), args, backend_hint
        )
        value = np.asarray(raw, dtype=np.float64)
        func_eps = float(np.finfo(raw.dtype).eps)
        for key in functions:
            op = OPERATORS[key]
            if op.scalar_only and value.shape != ():
                msg = (
                    f"{key} needs a scalar-valued function, but {func_name} returns "
                    f"shape {value.shape}; check jacobian_and_value or vjp_and_value "
                    f"instead."
                )
                raise NonScalarOutputError(msg)

    checker = _Checker(
        x,
        args,
        func_values,
        value,
        func_name,
        func_eps=func_eps,
        rtol=rtol,
        atol=atol,
        step=step,
        directions=directions,
        full_limit=full_limit,
        seed=seed,
    )
    entries = [
        _Supplied(OPERATORS[k], _dense(OPERATORS[k], d)) for k, d in functions.items()
    ]
    references = _references(reference, original, x, entries)
    for entry in entries:
        checker.call(entry)
        if not entry.usable:
            continue
        checker.check_value(entry)
        checker.check_linear(entry)
        if references is not None:
            ref_label, ref_functions = references
            if entry.op.name in ref_functions:
                checker.check_against(entry, ref_functions[entry.op.name], ref_label)
        else:
            for name in reversed(entry.op.outputs[:-1]):
                checker.check_differences(entry, name)
        if "hessian" in entry.op.outputs:
            checker.check_symmetric(entry)
    checker.check_consistency(entries)
    checks = _grouped(checker.checks, [e.op.name for e in entries])
    if references is not None:
        described = references[0]
    else:
        how = (
            f"every coordinate direction (x.size = {x.size} <= {full_limit})"
            if checker.full
            else f"{checker.directions} random directions, rerun on failure "
            f"(x.size = {x.size} > {full_limit})"
        )
        described = f"central finite differences with Richardson extrapolation, {how}"
    return CheckReport(func_name, x, checks, seed, rtol, atol, described)


def _references(
    reference: str | Mapping[str, Function],
    original: Function | None,
    x: np.ndarray,
    entries: Sequence[_Supplied],
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
    options: dict[str, Any] = {}
    if name == "symnum" and not hasattr(original, "_arg_shapes"):
        options["arg_shape"] = x.shape
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
    checker = _Checker(
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
    entry = _Supplied(OPERATORS[op_name], _dense(OPERATORS[op_name], derivative))
    try:
        entry.outputs = tuple(derivative(x.copy(), *args))
    except Exception as err:
        return [
            PartCheck(
                op_name,
                "all",
                label,
                "not checked",
                message=f"{op_name}: calling it raised {type(err).__name__}: "
                f"{_first_line(err)}",
            )
        ]
    if len(entry.outputs) != entry.op.n_outputs:
        return []
    checker.check_against(entry, reference, label)
    return checker.checks
