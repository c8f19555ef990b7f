"""Inputs at the NumPy boundary: anything :func:`numpy.asarray` takes, as floats.

float32 and float64 arrays are kept (in native byte order); other real inputs (ints,
bools, lists of numbers, float16) become float64; complex and non-numeric inputs raise
:class:`~diffops.errors.InputTypeError`. With ``as_numpy=False``, framework arrays are
checked the same way and kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from diffops.backends.capabilities import FrameworkArrays
from diffops.backends.protocol import Backend
from diffops.backends.support import FLOAT32, FLOAT64, FLOAT_DTYPES
from diffops.errors import InputTypeError


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
    if type(x) is np.ndarray and (x.dtype is FLOAT32 or x.dtype is FLOAT64):
        return x.copy() if copy else x
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError, RuntimeError) as err:
        if getattr(x, "requires_grad", False):
            msg = (
                f"The {what} is a torch.Tensor that requires grad. Pass "
                f"`x.detach()` (diffops differentiates with respect to the input "
                f"afresh), or pass tensors with backend='torch' and as_numpy=False."
            )
        else:
            msg = (
                f"The {what} could not be converted to a NumPy array ({err}). Pass "
                f"a NumPy array of floats, or a nested list of numbers of one shape."
            )
        raise InputTypeError(msg) from err
    kind = arr.dtype.kind
    if kind == "f" and not arr.dtype.isnative and arr.dtype.itemsize in (4, 8):
        # Non-native byte order (e.g. '>f4' from a file): same precision, native.
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if kind == "f" and arr.dtype in FLOAT_DTYPES:
        # An equal dtype object that is not NumPy's own (e.g. after pickling) is
        # swapped for it, so that identity checks on the fast paths hold.
        standard = FLOAT64 if arr.dtype == FLOAT64 else FLOAT32
        if arr.dtype is not standard:
            arr = arr.view(standard)
        # np.asarray may return a view of x (tensors, subclasses, memmaps).
        return arr.copy() if copy or arr is not x else arr
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


def framework_input(backend: Backend, x: Any, *, copy: bool = False) -> Any:
    """An input for the ``as_numpy=False`` path: a real float framework array.

    Args:
        backend: The backend.
        x: A framework array, or anything :func:`as_input_array` accepts.
        copy: Whether to copy NumPy input (closures keep their inputs).

    Returns:
        A framework array; integer and boolean arrays become float64.

    Raises:
        InputTypeError: For complex input, or another framework's array.
    """
    arrays = backend if isinstance(backend, FrameworkArrays) else FrameworkArrays()
    if not arrays.is_framework_array(x):
        if _foreign_array(x):
            msg = (
                f"The input is a {_type_name(x)}, an array of another framework; "
                f"the {backend.name} backend takes {backend.framework} arrays or "
                f"NumPy arrays. Convert it, or use the backend of its framework."
            )
            raise InputTypeError(msg)
        return backend.to_framework(as_input_array(x, copy=copy))
    kind = arrays.framework_dtype(x).kind
    if kind == "f":
        return arrays.framework_copy(x) if copy else x
    if kind in "biu":
        return arrays.framework_astype(x, FLOAT64)
    msg = (
        f"The input has dtype {x.dtype}; diffops differentiates real functions "
        f"only. Pass a float32 or float64 array."
    )
    raise InputTypeError(msg)


def _foreign_array(x: Any) -> bool:
    """Whether ``x`` looks like an array of some framework other than NumPy."""
    module = type(x).__module__.split(".")[0]
    return module in ("jax", "jaxlib", "torch") and hasattr(x, "shape")


def _type_name(x: Any) -> str:
    return f"{type(x).__module__}.{type(x).__qualname__}"


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


def framework_arguments(
    backend: Backend, args: tuple[Any, ...], dtype: np.dtype
) -> tuple[Any, ...]:
    """Extra arguments for the backend, NumPy arrays converted (nested ones too).

    Arrays inside tuples, lists and dicts are converted as well, by the backend's
    :meth:`~diffops.backends.protocol.Backend.to_framework_argument`.
    """
    convert = backend.to_framework_argument

    def leaf(a: Any) -> Any:
        if isinstance(a, np.ndarray):
            return convert(a, dtype)
        if type(a) in (tuple, list):
            return type(a)(leaf(b) for b in a)
        if type(a) is dict:
            return {k: leaf(v) for k, v in a.items()}
        return a

    return tuple([leaf(a) for a in args])
