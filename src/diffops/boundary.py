"""The NumPy boundary: the one place where user inputs and results are converted.

Inputs: anything :func:`numpy.asarray` accepts. float32 and float64 arrays are kept;
other real inputs (ints, bools, lists of numbers, float16) become float64; complex and
non-numeric inputs raise :class:`~diffops.errors.InputTypeError`.

Outputs: NumPy arrays of the input's float dtype; 0-d results are NumPy scalars
(``numpy.float64`` / ``numpy.float32``) on every backend. Product closures (``vjp``,
``mhp``, ``mtp``) are wrapped in :class:`ProductClosure`, which converts its argument
the same way, checks its shape and converts what it returns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from diffops.errors import InputTypeError, require_scalar, require_shape
from diffops.operators import Operator

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_input_array(x: Any, *, copy: bool = False, what: str = "input") -> np.ndarray:
    """Convert ``x`` to a float32 or float64 NumPy array.

    Args:
        x: Array-like input (NumPy array, list, scalar, framework array, ...).
        copy: Whether to always return a new array, so later changes to ``x`` cannot
            reach anything built from the result (closures keep their inputs).
        what: Name of the argument, used in error messages.

    Returns:
        ``x`` itself when it already is a float32/float64 array and ``copy`` is false;
        otherwise a new array (float64 for integer, boolean and other real inputs).

    Raises:
        InputTypeError: (a ``TypeError``) for complex or non-numeric input.
    """
    if type(x) is np.ndarray and (
        x.dtype is FLOAT_DTYPES[0] or x.dtype is FLOAT_DTYPES[1]
    ):
        return x.copy() if copy else x
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as err:
        msg = f"The {what} could not be converted to a NumPy array: {err}"
        raise InputTypeError(msg) from err
    kind = arr.dtype.kind
    if kind == "f" and arr.dtype in FLOAT_DTYPES:
        # An equal dtype object that is not NumPy's own (e.g. after pickling) is
        # swapped for it, so that identity checks on the fast paths hold.
        standard = FLOAT_DTYPES[1] if arr.dtype == FLOAT_DTYPES[1] else FLOAT_DTYPES[0]
        if arr.dtype is not standard:
            arr = arr.view(standard)
        # np.asarray may return a view of x (tensors, subclasses, memmaps).
        return arr.copy() if copy else arr
    if kind in "biuf":
        return arr.astype(np.float64)
    if kind == "c":
        msg = (
            f"The {what} is complex ({arr.dtype}); diffops differentiates real "
            f"functions only, because frameworks disagree on complex derivatives. "
            f"Split it into real and imaginary parts, e.g. "
            f"`np.concatenate([z.real, z.imag])`."
        )
        raise InputTypeError(msg)
    msg = (
        f"The {what} has dtype {arr.dtype}, which is not a real number type. Pass "
        f"an array of floats (float32 or float64)."
    )
    raise InputTypeError(msg)


def to_output(value: Any, dtype: np.dtype) -> Any:
    """Convert one framework result to a NumPy array (or scalar) of ``dtype``.

    Args:
        value: Array-like result (NumPy, JAX or PyTorch array, Python float, ...).
        dtype: Float dtype of the input, which results keep.

    Returns:
        A NumPy array of ``dtype``; a NumPy scalar of ``dtype`` for 0-d results.
    """
    arr = np.asarray(value)
    if arr.dtype != dtype:
        arr = arr.astype(dtype)
    if arr.ndim == 0:
        return arr[()]
    return arr


class ProductClosure:
    """A product closure (``vjp``, ``mhp`` or ``mtp``) at the NumPy boundary.

    Calling it checks the shape of the argument, converts it to the dtype of the
    input that built the closure, and returns a NumPy array of that dtype.
    """

    __slots__ = ("__name__", "_arg_shape", "_dtype", "_inner", "_out_shape")

    def __init__(
        self,
        inner: Callable[[Any], Any],
        name: str,
        arg_shape: tuple[int, ...],
        out_shape: tuple[int, ...],
        dtype: np.dtype,
    ):
        self._inner = inner
        self.__name__ = name
        self._arg_shape = arg_shape
        self._out_shape = out_shape
        self._dtype = dtype

    @property
    def arg_shape(self) -> tuple[int, ...]:
        """Shape that the closure's argument must have."""
        return self._arg_shape

    def __call__(self, m: Any) -> Any:
        """Apply the product to ``m``.

        Args:
            m: Array of shape :attr:`arg_shape` (``F`` for ``vjp``, ``F + S`` for
                ``mhp``, ``S + S`` for ``mtp``).

        Returns:
            Array of the input's shape ``S`` and dtype.
        """
        arr = as_input_array(m, what=f"argument of {self.__name__}")
        require_shape(
            arr.shape,
            self._arg_shape,
            f"argument of {self.__name__}",
            f"{self.__name__} takes an array shaped like its "
            f"{_ARG_KIND[self.__name__]}.",
        )
        if arr.dtype != self._dtype:
            arr = arr.astype(self._dtype)
        return unaliased(to_output(self._inner(arr), self._dtype), arr)

    def __repr__(self) -> str:
        return (
            f"<{self.__name__} closure: takes shape {self._arg_shape}, returns shape "
            f"{self._out_shape}, dtype {self._dtype}>"
        )


_ARG_KIND = {
    "vjp": "function value (shape F)",
    "mhp": "Jacobian (shape F + S)",
    "mtp": "Hessian (shape S + S)",
}


def finalize(result: tuple[Any, ...], op: Operator, x: np.ndarray) -> tuple[Any, ...]:
    """Convert an operator's raw result tuple to NumPy at the boundary.

    Args:
        result: Tuple returned by a backend's derivative function, closure (if any)
            first and value last.
        op: Record of the operator that produced it.
        x: The input (shape ``S``, float dtype).

    Returns:
        Tuple of the same length with NumPy arrays/scalars of ``x``'s dtype and,
        first, a :class:`ProductClosure` for operators that return one. No array
        shares memory with ``x`` (a framework may hand back a view of its input,
        e.g. for the identity function), so later changes to ``x`` cannot reach it.

    Raises:
        NonScalarOutputError: If a scalar-only operator's value is not 0-d.
    """
    value_shape = np.shape(result[-1])
    if op.scalar_only:
        require_scalar(value_shape, op.name)
    dtype = x.dtype
    arrays = [
        unaliased(to_output(r, dtype), x) for r in result[op.closure is not None :]
    ]
    if op.closure is None:
        return tuple(arrays)
    closure = ProductClosure(
        result[0],
        op.closure,
        op.closure_arg_shape(x.shape, value_shape),
        x.shape,
        dtype,
    )
    return (closure, *arrays)


def unaliased(value: Any, x: np.ndarray) -> Any:
    """``value``, copied if it is an array sharing memory with the input ``x``.

    Args:
        value: An output array or scalar.
        x: The input array.

    Returns:
        ``value`` or a copy of it.
    """
    if type(value) is np.ndarray and np.may_share_memory(value, x):
        return value.copy()
    return value
