"""Correctness: every implementation's outputs against the NumPy closed forms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .ops import outputs


@dataclass(frozen=True)
class Applied:
    """A reference closure already applied to the problem's closure argument."""

    value: Any


def compare(
    out: Any, reference: tuple[Any, ...], op: str, arg: np.ndarray | None, dtype: bool
) -> str | None:
    """What is wrong with ``out``, or ``None`` if it matches ``reference``.

    Arrays must match with ``np.allclose(rtol=1e-6, atol=1e-9·scale)``; closures are
    applied to ``arg`` and compared with the reference closure's :class:`Applied`
    result; a ``scipy.sparse`` result (``sparsity=``) is compared through
    ``toarray()``, reshaped from ``(prod(F), prod(S))`` to the reference's shape.

    Args:
        out: The implementation's return value.
        reference: The closed forms' outputs, closures applied.
        op: Operator name or ``"value"`` (names the outputs in messages).
        arg: The closure argument.
        dtype: Also require float64 outputs (diffops promises them).

    Returns:
        A message listing every mismatch, or ``None``.
    """
    names = outputs(op)
    if not isinstance(out, tuple) or len(out) != len(reference):
        length = f" of length {len(out)}" if isinstance(out, tuple) else ""
        return f"returned {type(out).__name__}{length}, expected {names}"
    problems = []
    for name, got, want in zip(names, out, reference, strict=True):
        label = name
        if isinstance(want, Applied):
            if not callable(got):
                problems.append(f"{name} is not callable")
                continue
            got, want, label = got(arg), want.value, f"{name}(m)"
        want_arr = np.asarray(want)
        got_arr = _dense(got, want_arr.shape)
        if got_arr.shape != want_arr.shape:
            problems.append(
                f"{label}: shape {got_arr.shape}, expected {want_arr.shape}"
            )
            continue
        scale = max(1.0, float(np.max(np.abs(want_arr), initial=0.0)))
        if not np.allclose(got_arr, want_arr, rtol=1e-6, atol=1e-9 * scale):
            err = float(np.max(np.abs(got_arr - want_arr)))
            problems.append(f"{label}: max abs error {err:.3g} (scale {scale:.3g})")
        if dtype and got_arr.dtype != np.float64:
            problems.append(f"{label}: dtype {got_arr.dtype}, expected float64")
    return "; ".join(problems) or None


def _dense(got: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``got`` as a NumPy array; a sparse matrix densified to ``shape`` if it fits."""
    if hasattr(got, "toarray") and not isinstance(got, np.ndarray):  # scipy.sparse
        dense: np.ndarray = got.toarray()
        return dense.reshape(shape) if dense.size == np.prod(shape) else dense
    return np.asarray(got)
