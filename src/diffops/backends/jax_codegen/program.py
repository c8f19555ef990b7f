"""The per-call program of ``jax_codegen``: generated code per call signature.

Nothing here imports JAX; :mod:`.trace` does, when a call signature is new.
"""

from __future__ import annotations

import contextlib
import pickle
import threading
import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np

from diffops.backends.jax import JAX
from diffops.backends.jax_codegen.signature import (
    Args,
    Entry,
    Function,
    flatten,
    leaf_key,
)
from diffops.errors import function_name
from diffops.operators import OPERATORS


class GeneratedClosure:
    """A product closure: generated code applied to packed residuals."""

    __slots__ = ("_apply", "_residuals")

    def __init__(self, apply: Any, residuals: Any):
        self._apply = apply
        self._residuals = residuals

    def __call__(self, v: np.ndarray) -> Any:
        """The product with ``v``."""
        if self._residuals is None:
            return self._apply(v)[0]
        return self._apply(self._residuals, v)[0]


class GeneratedProgram:
    """An operator of the user's function as generated code, per call signature.

    Calling it (NumPy ``x`` and extra arguments) looks up the code generated for the
    call's signature, tracing and generating it first if there is none.

    Attributes:
        op_name: The operator.
        func: The user's function (traced for a new signature).
        options: The operator's options.
        entries: Generated code by call signature.
    """

    def __init__(
        self,
        op_name: str,
        func: Function,
        options: Mapping[str, Any],
        entries: dict[Any, Entry] | None = None,
    ):
        self.op_name = op_name
        self.func = func
        self.options = dict(options)
        self.entries: dict[Any, Entry] = {} if entries is None else entries
        self._closes = OPERATORS[op_name].closure is not None
        self._lock = threading.Lock()

    @property
    def source(self) -> str:
        """The generated source of every call signature so far (main, then closure)."""
        parts = []
        for entry in self.entries.values():
            parts.append(entry.main.source)
            if entry.apply is not None:
                parts.append(entry.apply.source)
        return "\n\n".join(parts)

    def __call__(self, x: np.ndarray, *args: Any) -> tuple[Any, ...]:
        """The operator's tuple at ``x`` (a closure first, if any)."""
        if args:
            leaves: list[Any] = []
            structure = flatten(args, leaves)
            key: Any = (x.shape, x.dtype, structure, *map(leaf_key, leaves))
        else:
            key = (x.shape, x.dtype)
        entry = self.entries.get(key)
        if entry is None:
            entry = self._generate(key, x, args)
        if args:
            out = entry.main(
                x,
                *[
                    np.asarray(leaf, dtype=d)
                    for leaf, d in zip(leaves, entry.leaf_dtypes, strict=True)
                ],
            )
        else:
            out = entry.main(x)
        if entry.apply is None:
            return out  # type: ignore[no-any-return]
        if entry.main.packed_outputs:
            return (GeneratedClosure(entry.apply, out[0]), *out[1:])
        return (GeneratedClosure(entry.apply, None), *out)

    def _generate(self, key: Any, x: np.ndarray, args: Args) -> Entry:
        with self._lock:
            entry = self.entries.get(key)
            if entry is None:
                if isinstance(self.func, ShippedFunction):
                    self.func.require_jax()
                from diffops.backends.jax_codegen.trace import trace_entry

                entry = trace_entry(self.op_name, self.func, self.options, x, args)
                self.entries[key] = entry
            return entry

    def export(self) -> tuple[Any, ...]:
        """Picklable state: operator, options, shipped function, generated code."""
        return (
            self.op_name,
            self.options,
            ShippedFunction.of(self.func),
            dict(self.entries),
        )


class ShippedFunction:
    """The user's function as pickled bytes, unpickled only when it is called.

    A pickled derivative function carries its generated code and this: a process
    that only runs the generated code never unpickles the function, so it never
    imports the modules the function needs (JAX among them).
    """

    def __init__(self, data: bytes, name: str, qualname: str):
        self._data = data
        self._function: Function | None = None
        self.__name__ = name
        self.__qualname__ = qualname

    @classmethod
    def of(cls, func: Function) -> ShippedFunction:
        """``func`` shipped (itself if it already is)."""
        if isinstance(func, ShippedFunction):
            return func
        try:
            found = _SHIPPED.get(func)
        except TypeError:  # not weakly referenceable
            found = None
        if found is not None:
            return found
        from diffops.portable import portable

        data = pickle.dumps(portable(func, JAX))
        shipped = cls(data, function_name(func), function_name(func, "__qualname__"))
        with contextlib.suppress(TypeError):
            _SHIPPED[func] = shipped
        return shipped

    @property
    def function(self) -> Function:
        """The user's function, unpickled now if it was not yet."""
        if self._function is None:
            from diffops.portable import restore

            self._function = restore(pickle.loads(self._data))
        return self._function

    def require_jax(self) -> None:
        """Unpickle the function (it is about to be traced with JAX)."""
        _ = self.function

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the user's function."""
        return self.function(*args, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        return (ShippedFunction, (self._data, self.__name__, self.__qualname__))

    def __repr__(self) -> str:
        return f"<shipped function {self.__qualname__}>"


# One shipped form per function, so that the recipe and the exported program of a
# derivative function pickle it once.
_SHIPPED: weakref.WeakKeyDictionary[Any, ShippedFunction] = weakref.WeakKeyDictionary()
