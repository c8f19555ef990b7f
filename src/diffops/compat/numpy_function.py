"""Framework functions called with NumPy arrays, returning NumPy arrays.

This is what Mici's function wrappers (``jax_wrapper.return_numpy_arrays``,
``jit_and_return_numpy_arrays``, ``torch_wrapper.return_numpy_arrays``) return.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from diffops import registry
from diffops.backends.capabilities import FrameworkArrays, compiled
from diffops.backends.protocol import Backend
from diffops.backends.support import FLOAT32, FLOAT64
from diffops.errors import function_name
from diffops.portable import portable, restore

Function = Callable[..., Any]
_WIDE_DTYPES = frozenset(
    np.dtype(t) for t in (np.float64, np.int64, np.uint64, np.complex128)
)


class NumpyFunction:
    """A framework function called with NumPy arrays and returning NumPy arrays.

    Calls with 64-bit NumPy arguments compute in float64 (the backend's
    :meth:`~diffops.backends.protocol.Backend.run`); tuples are converted element by
    element and returned callables are wrapped the same way.

    It pickles as its recipe: the user's function (by reference, or by value with
    cloudpickle), the backend's name and the compile options; a callable it returned
    pickles as the call that returned it. Both are rebuilt, and compiled again,
    where they are unpickled.
    """

    __slots__ = (
        "__name__",
        "__qualname__",
        "__wrapped__",
        "_apply",
        "_backend",
        "_call",
        "_compile",
        "_dtype",
        "_source",
    )

    def __init__(
        self,
        backend: Backend,
        function: Function,
        dtype: np.dtype | None = None,
        *,
        compile: dict[str, Any] | None = None,
    ):
        """Wrap ``function``.

        Args:
            backend: The backend of ``function``'s framework.
            function: Function of framework arrays.
            dtype: Precision of every call; ``None`` chooses per call from the
                arguments (float64 if any is 64-bit).
            compile: Options of the backend's
                :meth:`~diffops.backends.protocol.Backend.compile` (for JAX:
                :func:`jax.jit`'s keyword arguments) to compile ``function`` with,
                or ``None`` to call it as it is.
        """
        self._backend = backend
        self._apply = compiled(backend).closure_applier()
        self.__wrapped__ = function
        self._dtype = dtype
        self._compile = compile
        self._call = (
            function
            if compile is None
            else compiled(backend).compile(function, **compile)
        )
        # For a callable returned by another NumpyFunction: (that function, its
        # arguments, its keyword arguments, where in its result this one was).
        self._source: (
            tuple[Any, tuple[Any, ...], dict[str, Any], tuple[int, ...]] | None
        ) = None
        self.__name__ = function_name(function)
        self.__qualname__ = function_name(function, "__qualname__")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function with framework arrays made from NumPy arguments."""
        backend = self._backend
        dtype = self._dtype
        if dtype is None:
            wide = any(
                getattr(a, "dtype", None) in _WIDE_DTYPES
                for a in (*args, *kwargs.values())
            )
            dtype = FLOAT64 if wide else FLOAT32
        given = args
        args = tuple(
            [backend.to_framework(a) if isinstance(a, np.ndarray) else a for a in args]
        )
        function = self._call
        if kwargs:
            function = partial(function, **kwargs)
        out = backend.run(function, dtype, *args)
        if isinstance(out, tuple) or callable(out):
            return _numpy_tree(backend, out, dtype, (self, given, kwargs), ())
        return backend.to_numpy(out) if _is_framework_array(backend, out) else out

    def __copy__(self) -> NumpyFunction:
        return self  # immutable

    def __deepcopy__(self, memo: dict[int, Any]) -> NumpyFunction:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        if self._source is not None:
            return (_returned, self._source)
        function = portable(self.__wrapped__, self._backend)
        return (
            _numpy_function,
            (self._backend.name, function, self._dtype, self._compile),
        )

    def __repr__(self) -> str:
        return (
            f"<{self._backend.framework} function {self.__qualname__} returning NumPy "
            f"arrays>"
        )


def _numpy_function(
    backend: str, function: Any, dtype: np.dtype | None, compile: dict[str, Any] | None
) -> NumpyFunction:
    """Rebuild a pickled :class:`NumpyFunction` from its recipe."""
    return NumpyFunction(
        registry.backend(backend), restore(function), dtype, compile=compile
    )


def _returned(
    function: NumpyFunction,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    path: tuple[int, ...],
) -> Any:
    """Rebuild a pickled callable that a :class:`NumpyFunction` returned."""
    out = function(*args, **kwargs)
    for index in path:
        out = out[index]
    return out


def _numpy_tree(
    backend: Backend,
    value: Any,
    dtype: np.dtype,
    call: tuple[NumpyFunction, tuple[Any, ...], dict[str, Any]],
    path: tuple[int, ...],
) -> Any:
    if isinstance(value, tuple):
        return tuple(
            [
                _numpy_tree(backend, v, dtype, call, (*path, i))
                for i, v in enumerate(value)
            ]
        )
    if _is_framework_array(backend, value):
        return backend.to_numpy(value)
    if callable(value):
        parent, args, kwargs = call
        wrapped = NumpyFunction(backend, partial(parent._apply, value), dtype)
        # Its recipe keeps copies of the arguments: the caller may change its own.
        kept = tuple([a.copy() if isinstance(a, np.ndarray) else a for a in args])
        wrapped._source = (parent, kept, dict(kwargs), path)
        return wrapped
    return value


def _is_framework_array(backend: Backend, value: Any) -> bool:
    return isinstance(backend, FrameworkArrays) and backend.is_framework_array(value)
