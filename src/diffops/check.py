"""A finite-difference checker for derivative functions.

:func:`check_derivatives` compares each output of a derivative function with central
finite differences of the next lower-order output of the same function: the gradient
or Jacobian against differences of the value, the Hessian against differences of the
gradient, and the product closures (``vjp``, ``mhp``, ``mtp``) applied to a random
argument against the same contraction of the finite-difference derivative. Use it to
check derivatives written by hand or by another tool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from diffops.boundary import as_input_array
from diffops.errors import DiffopsError, closest
from diffops.operators import CLOSURES, OPERATORS


class DerivativeCheckError(DiffopsError, AssertionError):
    """A derivative disagrees with finite differences."""


def _central_difference(
    func: Callable[[np.ndarray], Any], x: np.ndarray, step: float
) -> np.ndarray:
    """``∂func/∂x`` by central differences: shape ``func(x).shape + x.shape``."""
    columns = []
    for k in range(x.size):
        e = np.zeros(x.size, dtype=x.dtype)
        e[k] = step
        e = e.reshape(x.shape)
        forward = np.asarray(func(x + e), dtype=np.float64)
        backward = np.asarray(func(x - e), dtype=np.float64)
        columns.append((forward - backward) / (2 * step))
    out_shape = np.shape(func(x))
    if not columns:
        return np.zeros(out_shape + x.shape)
    return np.stack(columns, axis=-1).reshape(out_shape + x.shape)


def check_derivatives(
    derivative: Callable[[Any], tuple[Any, ...]],
    x: Any,
    op_name: str | None = None,
    *,
    step: float | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Check a derivative function against central finite differences.

    Args:
        derivative: Derivative function, e.g. ``diffops.grad_and_value(f)`` or one
            written by hand with the same return order.
        x: Point of shape ``S`` at which to check.
        op_name: Operator the function implements; read from ``derivative.op_name``
            when omitted.
        step: Finite-difference step (default ``eps ** (1/3)`` of the dtype, scaled by
            ``max(1, max|x|)``).
        rtol: Relative tolerance (default 1e-5 for float64, 1e-2 for float32, whose
            central differences are only accurate to about ``eps ** (2/3)``).
        atol: Absolute tolerance (default 1e-7 for float64, 1e-3 for float32).
        seed: Seed for the random arguments given to product closures.

    Returns:
        Maximum absolute error per checked output, e.g.
        ``{"grad": 3e-11, "hessian": 8e-10}``.

    Raises:
        DerivativeCheckError: (an ``AssertionError``) naming the first output that
            disagrees, with the largest error and the tolerance.
        ValueError: If the operator is unknown.
    """
    if not callable(derivative):
        msg = (
            f"check_derivatives needs a derivative function (e.g. "
            f"diffops.grad_and_value(f) or one written by hand), not "
            f"{type(derivative).__name__} {derivative!r}."
        )
        raise TypeError(msg)
    name = op_name or getattr(derivative, "op_name", None)
    if name not in OPERATORS:
        if op_name is not None:
            msg = (
                f"op_name={op_name!r} is not an operator: valid names are "
                f"{tuple(OPERATORS)}.{closest(str(op_name), OPERATORS)}"
            )
        else:
            msg = (
                f"check_derivatives needs the operator name (one of "
                f"{tuple(OPERATORS)}); pass op_name=... for functions not built by "
                f"diffops."
            )
        raise ValueError(msg)
    x = as_input_array(x, copy=True)
    if step is None:
        scale = max(1.0, float(np.max(np.abs(x), initial=0.0)))
        step = float(np.finfo(x.dtype).eps ** (1 / 3)) * scale
    single = x.dtype == np.float32
    rtol = (1e-2 if single else 1e-5) if rtol is None else rtol
    atol = (1e-3 if single else 1e-7) if atol is None else atol
    rng = np.random.default_rng(seed)
    out = derivative(x)
    errors: dict[str, float] = {}

    def compare(label: str, got: Any, want: np.ndarray) -> None:
        got = np.asarray(got, dtype=np.float64)
        if got.shape != want.shape:
            msg = (
                f"{label} has shape {got.shape}; finite differences give {want.shape}."
            )
            raise DerivativeCheckError(msg)
        finite = np.isfinite(want)
        if not np.all(np.isfinite(got[finite])):
            msg = (
                f"{label} of {name} has NaN or inf entries where finite differences "
                f"are finite, at x = {x!r}."
            )
            raise DerivativeCheckError(msg)
        error = float(np.max(np.abs(got - want)[finite], initial=0.0))
        errors[label] = error
        bound = atol + rtol * float(np.max(np.abs(want[finite]), initial=0.0))
        if not error <= bound:
            msg = (
                f"{label} of {name} disagrees with central finite differences at "
                f"x = {x!r}: largest error {error:.3e} > tolerance {bound:.3e}."
            )
            raise DerivativeCheckError(msg)

    def output(index: int) -> Callable[[np.ndarray], Any]:
        return lambda y: derivative(y)[index]

    n = len(out)
    value_shape = np.shape(out[-1])
    # Outputs from lowest to highest order: value, then first derivative, ...
    labels = OPERATORS[str(name)].outputs[:-1]
    for position, label in enumerate(labels):
        lower = position + 1  # index of the next lower-order output
        fd = _central_difference(output(lower), x, step)
        if label in CLOSURES:
            lower_shape = np.shape(out[lower]) if label != "vjp" else value_shape
            arg = rng.standard_normal(lower_shape)
            axes = len(lower_shape)
            want = np.tensordot(arg, fd, axes=axes)
            compare(label, out[0](arg), want)
        else:
            compare(label, out[position], fd)
    if n != len(labels) + 1:  # pragma: no cover - guarded by OPERATORS
        msg = f"{name} returned {n} outputs."
        raise DerivativeCheckError(msg)
    return errors
