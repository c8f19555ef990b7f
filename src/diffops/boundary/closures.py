"""Product closures at the NumPy boundary (``vjp``, ``jvp``, ``hvp``, ``mhp``, ``mtp``).

A closure checks the shape of its argument, converts it to the dtype of the input that
built it, applies the framework's closure and returns a NumPy array of that dtype. It
pickles as the call that made it (recomputed where it is unpickled).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import numpy as np

from diffops.backends.capabilities import FrameworkArrays
from diffops.backends.protocol import Backend, Function
from diffops.boundary.inputs import as_input_array
from diffops.errors import InputTypeError, require_shape
from diffops.operators import Closure


class ShapedClosure:
    """What every product closure at the boundary shares.

    A name, the shapes of its argument and result, the dtype it computes in, and the
    conversion of a NumPy argument (checked, cast) and of the result (the input's
    dtype, a NumPy scalar when 0-d, never sharing memory with the argument).
    """

    __slots__ = ("__name__", "_arg_shape", "_dtype", "_out_shape", "_source", "_what")

    def __init__(
        self,
        name: str,
        arg_shape: tuple[int, ...],
        out_shape: tuple[int, ...],
        dtype: np.dtype,
    ):
        self.__name__ = name
        self._arg_shape = arg_shape
        self._out_shape = out_shape
        self._dtype = dtype
        self._what = f"argument of {name}"
        # The call that made the closure, ``(function, x, args)``: set by the
        # derivative function that returned it, and pickled instead of the
        # framework's closure (which holds traced or recorded state that does not
        # pickle).
        self._source: tuple[Any, Any, tuple[Any, ...]] | None = None

    @property
    def arg_shape(self) -> tuple[int, ...]:
        """Shape that the closure's argument must have."""
        return self._arg_shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        """Shape of what the closure returns."""
        return self._out_shape

    def _argument(self, m: Any) -> np.ndarray:
        """``m`` as a NumPy array of the closure's dtype, its shape checked."""
        arr = as_input_array(m, what=self._what)
        if arr.shape != self._arg_shape:
            self._wrong_shape(arr.shape)
        return arr if arr.dtype is self._dtype else arr.astype(self._dtype)

    def _result(self, result: np.ndarray, arr: np.ndarray) -> Any:
        """A NumPy result at the boundary, given the argument it was computed from."""
        if result.dtype != self._dtype:
            result = result.astype(self._dtype)
        if result.ndim == 0:
            return result[()]
        return result.copy() if np.may_share_memory(result, arr) else result

    def _wrong_shape(self, shape: tuple[int, ...]) -> None:
        require_shape(shape, self._arg_shape, self._what, "")

    def __copy__(self) -> ShapedClosure:
        return self  # immutable: it keeps its own copy of the input

    def __deepcopy__(self, memo: dict[int, Any]) -> ShapedClosure:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as its recipe, the call that made it: computed again where it is
        # unpickled, by the same program on the same input, so it gives the same
        # results.
        if self._source is None:
            msg = (
                f"This {self.__name__} closure was not returned by a diffops "
                f"derivative function, so it has no recipe to pickle. Pickle the "
                f"derivative function and the point instead."
            )
            raise pickle.PicklingError(msg)
        return (_reapplied, self._source)


def _reapplied(function: Callable[..., Any], x: Any, args: tuple[Any, ...]) -> Any:
    """The closure that ``function(x, *args)`` returns first (unpickles closures).

    Args:
        function: A derivative function (single or batched) of an operator that
            returns a closure.
        x: The input (or stack of inputs) the closure was made at.
        args: The extra arguments of that call.

    Returns:
        The closure, with its own recipe so that it pickles again.
    """
    return function(x, *args)[0]


class ProductClosure(ShapedClosure):
    """A product closure (``vjp``, ``mhp``, ``mtp``, ...) at the boundary.

    Calling it checks the shape of its argument, converts the argument to the dtype of
    the input that built the closure, applies the backend's closure and returns a
    NumPy array of that dtype (with ``as_numpy=False``: the framework's array).
    """

    __slots__ = (
        "_apply",
        "_arg_kind",
        "_as_numpy",
        "_backend",
        "_closure",
        "_settling",
    )

    def __init__(
        self,
        backend: Backend,
        closure: Function,
        spec: Closure,
        arg_shape: tuple[int, ...],
        out_shape: tuple[int, ...],
        dtype: np.dtype,
        *,
        as_numpy: bool = True,
        apply: Callable[[Function, Any], Any] | None = None,
    ):
        super().__init__(spec.name, arg_shape, out_shape, dtype)
        self._backend = backend
        self._closure = closure
        self._arg_kind = spec.arg_kind
        self._as_numpy = as_numpy
        self._apply = _apply if apply is None else apply
        # An applier that settles at its first call is replaced by what it chose.
        self._settling = hasattr(self._apply, "settled")

    def __call__(self, m: Any) -> Any:
        """Apply the product to ``m``.

        Args:
            m: Array of shape :attr:`arg_shape` (e.g. ``F`` for ``vjp``, ``F + S`` for
                ``mhp``, ``S + S`` for ``mtp``).

        Returns:
            Array of shape :attr:`out_shape` and the input's dtype.
        """
        backend = self._backend
        if not self._as_numpy and _arrays(backend).is_framework_array(m):
            return self._call_framework(m)
        arr = self._argument(m)
        out = backend.run(
            self._apply, self._dtype, self._closure, backend.to_framework(arr)
        )
        if self._settling:
            self._settle()
        if not self._as_numpy:
            return out
        return self._result(backend.to_numpy(out), arr)

    def _call_framework(self, m: Any) -> Any:
        backend = self._backend
        arrays = _arrays(backend)
        shape = tuple(m.shape)
        if shape != self._arg_shape:
            self._wrong_shape(shape)
        dtype = arrays.framework_dtype(m)
        if dtype.kind == "c":
            msg = f"The argument of {self.__name__} is complex; pass a real array."
            raise InputTypeError(msg)
        if dtype != self._dtype:
            m = arrays.framework_astype(m, self._dtype)
        out = backend.run(self._apply, self._dtype, self._closure, m)
        if self._settling:
            self._settle()
        return out

    def _settle(self) -> None:
        self._apply = settled(self._apply)
        self._settling = hasattr(self._apply, "settled")

    def _wrong_shape(self, shape: tuple[int, ...]) -> None:
        require_shape(
            shape,
            self._arg_shape,
            f"argument of {self.__name__}",
            f"{self.__name__} takes an array shaped like its {self._arg_kind}.",
        )

    def __repr__(self) -> str:
        kind = "" if self._as_numpy else f" of {self._backend.framework} arrays"
        return (
            f"<{self.__name__} closure{kind}: takes shape {self._arg_shape}, returns "
            f"shape {self._out_shape}, dtype {self._dtype}>"
        )


def settled(function: Function) -> Function:
    """What to call instead of ``function`` from now on.

    A compiled program that settles at its first call (JAX: its jit options, see
    :meth:`~diffops.backends.capabilities.CompiledPrograms.compile`) has a
    ``settled`` attribute, ``None`` until then; any other function is itself.
    """
    return getattr(function, "settled", None) or function


def _apply(closure: Function, arg: Any) -> Any:
    return closure(arg)


def _arrays(backend: Backend) -> FrameworkArrays:
    return backend if isinstance(backend, FrameworkArrays) else FrameworkArrays()
