"""Comparing checked values with reference values, entry by entry.

:func:`compare_arrays` is the one comparison every check goes through: it computes
each entry's error and tolerance (the formula is in the :mod:`diffops.check`
docstring), finds the worst entry, and returns a
:class:`~diffops.check.report.PartCheck` that explains a failure with the numbers,
or reports a kink when finite differences show one there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from diffops.check.report import PartCheck, index_text
from diffops.check.tolerances import FLOOR, SAFETY

Describe = Callable[[tuple[int, ...]], str]
"""The entry at an index, in words (e.g. ``"hessian[0, 1]"``)."""

Probe = Callable[[tuple[int, ...], float], "str | None"]
"""``probe(index, tol)``: why the entry is not differentiable, or ``None``."""


@dataclass(frozen=True)
class Comparison:
    """What is compared with what, and with which tolerance.

    Attributes:
        op_name: Operator.
        part: Output checked.
        test: The reference, in words.
        rtol: Relative tolerance.
        atol: Absolute tolerance.
        point: The point in words, for messages.
        seed: Seed of the random directions, for messages.
    """

    op_name: str
    part: str
    test: str
    rtol: float
    atol: float
    point: str
    seed: int


@dataclass(frozen=True)
class _Errors:
    """Entry-wise errors of one comparison (arrays of the compared shape)."""

    err: np.ndarray
    rel: np.ndarray
    tol: np.ndarray
    base: np.ndarray
    excess: np.ndarray
    rtol: float


def compare_arrays(
    what: Comparison,
    got: object,
    want: object,
    *,
    fd_error: np.ndarray | None = None,
    scale: np.ndarray | None = None,
    describe: Describe | None = None,
    probe: Probe | None = None,
    rtol_factor: float = 1.0,
) -> PartCheck:
    """Compare ``got`` with the reference ``want`` entry by entry.

    Args:
        what: Operator, part, reference and tolerances.
        got: Checked values.
        want: Reference values, same shape.
        fd_error: Estimated error of ``want`` (finite differences).
        scale: Magnitude of each entry's terms (default ``|want|``).
        describe: The entry at an index, in words.
        probe: Explains a failure by a kink, or returns ``None``.
        rtol_factor: Multiplies ``rtol`` (loose checks of rounding alone).

    Returns:
        The check.
    """
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    describe = describe or (lambda index: f"{what.part}{index_text(index)}")
    mask = np.isfinite(want)
    if want.size and not mask.any():
        message = (
            f"{what.op_name}: {what.part} not checked against {what.test}: the "
            f"reference is not finite at {what.point}."
        )
        return _check(what, "not checked", message=message)
    if want.size == 0:
        return _check(what, "passed", 0.0, 0.0)
    errors = _errors(what, got, want, mask, fd_error, scale, rtol_factor)
    failing = int(np.count_nonzero(errors.err > errors.tol))
    flat = int(np.argmax(errors.excess))
    index = tuple(int(i) for i in np.unravel_index(flat, want.shape))
    where = describe(index) if float(errors.err[index]) > 0 else ""
    check = PartCheck(
        what.op_name,
        what.part,
        what.test,
        "failed" if failing else "passed",
        float(np.max(errors.err)),
        float(np.max(errors.rel)),
        index,
        where,
        float(want[index]),
        float(got[index]),
        float(errors.tol[index]),
    )
    if not failing:
        skipped = int(np.count_nonzero(~mask))
        if skipped:
            message = (
                f"{what.op_name}: {what.part}: {skipped} of {want.size} entries "
                f"not compared (reference not finite)."
            )
            check = replace(check, message=message)
        return check
    message = _failure_message(what, check, errors, failing, want.size, fd_error)
    if probe is not None:
        reason = probe(index, float(errors.tol[index]))
        if reason is not None:
            message = (
                f"{what.op_name}: {what.part} not compared at {what.point}: "
                f"{reason} (finite differences disagree at {where}: "
                f"{message.split(': ', 1)[1]})"
            )
            return replace(check, status="not differentiable", message=message)
    return replace(check, message=message)


def _check(
    what: Comparison,
    status: str,
    max_abs: float = math.nan,
    max_rel: float = math.nan,
    message: str = "",
) -> PartCheck:
    return PartCheck(
        what.op_name,
        what.part,
        what.test,
        status,  # type: ignore[arg-type]
        max_abs,
        max_rel,
        message=message,
    )


def _errors(
    what: Comparison,
    got: np.ndarray,
    want: np.ndarray,
    mask: np.ndarray,
    fd_error: np.ndarray | None,
    scale: np.ndarray | None,
    rtol_factor: float,
) -> _Errors:
    """Each entry's error, relative error, tolerance, scale and error / tolerance."""
    with np.errstate(invalid="ignore", over="ignore"):
        mag = np.abs(want)
        if scale is not None:
            mag = np.maximum(mag, np.asarray(scale, dtype=np.float64))
        mag = np.where(mask, mag, 0.0)
        top = float(np.max(mag, initial=0.0))
        base = np.maximum(mag, FLOOR * top)
        # Finite differences that did not converge (a jump, a kink, a step too
        # large) do not widen the tolerance by more than 1 % of the scale.
        extra = (
            0.0
            if fd_error is None
            else SAFETY * np.minimum(np.nan_to_num(fd_error), 1e-2 * base)
        )
        rtol = what.rtol * rtol_factor
        tol = what.atol + rtol * base + extra
        err = np.where(mask, np.abs(got - want), 0.0)
        err = np.where(mask & ~np.isfinite(got), np.inf, err)
        rel = _ratio(err, base)
        excess = _ratio(err, tol)
    return _Errors(err, rel, tol, base, excess, rtol)


def _ratio(err: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``err / scale``, ``0`` where both are 0, ``inf`` where only the scale is."""
    ratio = np.where(scale > 0, err / np.where(scale > 0, scale, 1.0), 0.0)
    return np.where((scale == 0) & (err > 0), np.inf, ratio)


def _failure_message(
    what: Comparison,
    check: PartCheck,
    errors: _Errors,
    failing: int,
    size: int,
    fd_error: np.ndarray | None,
) -> str:
    """The worst entry, both numbers, the error and how its tolerance was made."""
    assert check.index is not None
    index = check.index
    actual = float(check.actual if check.actual is not None else math.nan)
    expected = float(check.expected if check.expected is not None else math.nan)
    where = f"at {what.point}, seed {what.seed}."
    if not math.isfinite(actual):
        return (
            f"{what.op_name}: {check.where} is {actual}, expected {expected:.10g} "
            f"from {what.test}; {failing} of {size} entries wrong; {where}"
        )
    fd_part = " + finite-difference error" if fd_error is not None else ""
    return (
        f"{what.op_name}: {check.where} = {actual:.10g}, expected "
        f"{expected:.10g} from {what.test} (abs error "
        f"{float(errors.err[index]):.3g}, rel error "
        f"{float(errors.rel[index]):.3g}; tolerance {float(errors.tol[index]):.3g} = "
        f"atol {what.atol:.1e} + rtol {errors.rtol:.1e} × "
        f"{float(errors.base[index]):.3g}{fd_part}); {failing} of {size} entries "
        f"exceed their tolerance; {where}"
    )
