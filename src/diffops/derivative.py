"""Derivative functions as small callable objects.

A :class:`DerivativeFunction` holds the recipe it was built from (the user's function,
the operator name, the backend name and options) and builds the backend's derivative
function lazily, on its first call. Holding the recipe rather than the built function
gives an informative ``repr``, pickling (the recipe is pickled and rebuilt in the other
process) and thread safety (calls share no mutable state once built).
"""

from __future__ import annotations

import _thread
import collections
from collections.abc import Callable
from typing import Any

import numpy as np

from diffops.backends.capabilities import (
    FrameworkArrays,
    GeneratedCode,
    generated_code,
    keeps_framework_arrays,
)
from diffops.backends.protocol import Backend
from diffops.backends.support import FLOAT32, FLOAT64
from diffops.boundary import as_input_array, explain, make_caller
from diffops.errors import (
    NotCallableError,
    ReentrantBuildError,
    UnknownOperatorError,
    closest,
    function_name,
)
from diffops.operators import ALL_DIFF_OPS, OPERATORS, Operator
from diffops.portable import portable, restore
from diffops.registry import require_available

_UNKNOWN = object()


SPARSE_OWN = ("sparsity", "coloring")
"""diffops' own options of sparse operators (see ``SPARSE_OPTIONS``)."""


def _backend_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options the backend's operator takes (``sparsity``, ``coloring``: ours)."""
    return {k: v for k, v in options.items() if k not in SPARSE_OWN}


def check_operator(op_name: str) -> None:
    """Raise :class:`UnknownOperatorError` if ``op_name`` is not an operator.

    Args:
        op_name: Operator name to check.

    Raises:
        UnknownOperatorError: (a ``ValueError``) naming the valid operators.
    """
    if op_name not in OPERATORS:
        msg = (
            f"Differential operator {op_name!r} is not defined: valid operators are "
            f"{ALL_DIFF_OPS}.{closest(str(op_name), ALL_DIFF_OPS)}"
        )
        raise UnknownOperatorError(msg)


class DerivativeFunction:
    """A derivative function built by diffops: ``op(func)`` on one backend.

    Call it with an array ``x`` of any shape ``S`` (and the extra arguments of
    ``func``, if any); it returns the tuple named by the operator (highest derivative
    or product closure first, value last) as NumPy arrays of ``x``'s float dtype.

    Attributes:
        func: The user's function.
        op_name: Operator name, one of :data:`~diffops.operators.ALL_DIFF_OPS`.
        backend: Backend name (lower case).
        as_numpy: Whether results cross the NumPy boundary (the default). With
            ``False``, JAX and PyTorch take and return their own arrays (no host
            copy, inputs stay on their device); Autograd and SymNum are NumPy-native
            either way.
        options: Keyword options passed to the backend's operator.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        op_name: str,
        backend: str,
        *,
        as_numpy: bool = True,
        **options: Any,
    ):
        if not callable(func):
            msg = (
                f"{op_name} needs a callable function to differentiate, but got "
                f"{type(func).__name__} {func!r}. Pass the function itself, e.g. "
                f"`{op_name}(f)` rather than `{op_name}(f(x))`."
            )
            raise NotCallableError(msg)
        check_operator(op_name)
        found = require_available(backend)
        options = {
            k: v for k, v in options.items() if not (k in SPARSE_OWN and v is None)
        }
        sparsity = options.get("sparsity")
        if sparsity is not None or "coloring" in options:
            from diffops.sparse import check_sparsity

            check_sparsity(op_name, sparsity, options.get("coloring"))
        found.check(op_name, func, _backend_options(options))
        self.func = func
        self.op_name = op_name
        self.backend = backend.lower()
        self.as_numpy = bool(as_numpy)
        self.options = options
        self._backend = found
        # Framework arrays pass straight through only on backends that have their
        # own (JAX, PyTorch); Autograd and SymNum are NumPy either way.
        self._pass_through = not as_numpy and keeps_framework_arrays(found)
        self._op = OPERATORS[op_name]
        # Closures keep their input, and some frameworks hand the user's function
        # the input's own memory: then the boundary works on a copy.
        self._copy_input = self._op.closure is not None or found.protect_input
        self._closes = self._op.closure is not None
        self._impl: Callable[..., tuple[Any, ...]] | None = None
        self._program: Callable[..., Any] | None = None
        self._saved: Any = None  # the backend's export, when unpickled
        self._lock = _thread.allocate_lock()
        self._builder: int | None = None  # the thread building it, while it does
        self._point_shape: tuple[int, ...] | None = None  # of the latest call
        self._fixed_shape: object = _UNKNOWN  # generated code's shape, once asked
        self.__name__ = f"{op_name}_of_{function_name(func)}"
        self.__qualname__ = f"{op_name}_of_{function_name(func, '__qualname__')}"
        self.__doc__ = (
            f"{op_name} of {function_name(func)} on the {self.backend!r} backend.\n\n"
            f"Call with an array x (and func's extra arguments, if any); returns "
            f"{self._op.returns}."
        )

    def _build(self) -> Callable[..., tuple[Any, ...]]:
        if self._builder == _thread.get_ident():
            msg = (
                f"{self.__name__} was called while it was being built: "
                f"{function_name(self.func)!r} calls its own derivative function "
                f"(while {self.backend} generates or traces it). Compute what the "
                f"function "
                f"needs without its derivative, or build a separate derivative "
                f"function outside it."
            )
            raise ReentrantBuildError(msg)
        with self._lock:
            if self._impl is not None:
                return self._impl
            self._builder = _thread.get_ident()
            try:
                key = self._recipe_key()
                built = _built(self.func, key) if key is not None else None
                if built is None:
                    built = self._make()
                    if key is not None:
                        _remember(self.func, key, built)
                self._program, self._impl = built
                if self.options.get("sparsity") is not None:
                    self.sparse = self._impl  # its plans give ``coloring``
            finally:
                self._builder = None
            return self._impl

    def _make(self) -> tuple[Callable[..., Any] | None, Callable[..., tuple[Any, ...]]]:
        backend = self._backend
        as_numpy = self.as_numpy or not self._pass_through
        sparsity = self.options.get("sparsity")
        if sparsity is not None:
            from diffops.sparse import SparseCaller

            caller = SparseCaller(
                backend,
                self._op,
                self.func,
                _backend_options(self.options),
                sparsity,
                as_numpy,
                coloring=str(self.options.get("coloring", "auto")).lower(),
            )
            return None, caller
        if self._saved is not None:
            program = generated_code(backend).restore(self._saved)
        else:
            program = backend.operator(
                self.op_name, self.func, **_backend_options(self.options)
            )
        impl = make_caller(
            backend,
            self._op,
            self.func,
            _backend_options(self.options),
            as_numpy=self.as_numpy or not self._pass_through,
            program=program,
        )
        return program, impl

    def _recipe_key(self) -> str | None:
        simple = (str, int, float, bool, type(None), tuple)
        if not all(isinstance(v, simple) for v in self.options.values()):
            return None  # e.g. a sparsity pattern array: not shared
        options = sorted(self.options.items())
        return f"{self.op_name}|{self.backend}|{self.as_numpy}|{options!r}"

    @property
    def op(self) -> Operator:
        """The operator's record in the table (outputs, closure, shapes)."""
        return self._op

    @property
    def backend_object(self) -> Backend:
        """The :class:`~diffops.backends.protocol.Backend` that computes it."""
        return self._backend

    @property
    def point_shape(self) -> tuple[int, ...] | None:
        """The input shape ``S``: fixed by generated code, else of the latest call.

        ``None`` before the first call on backends that take any shape.
        """
        fixed = self.fixed_shape
        return fixed if fixed is not None else self._point_shape

    @property
    def fixed_shape(self) -> tuple[int, ...] | None:
        """The one input shape the backend generated code for (SymNum), or ``None``."""
        if self._fixed_shape is _UNKNOWN:
            self._fixed_shape = generated_code(self._backend).input_shape(
                self.op_name, self.func, **_backend_options(self.options)
            )
        return self._fixed_shape  # type: ignore[return-value]

    @property
    def source(self) -> str | None:
        """The generated code that computes it, on backends that generate code.

        ``jax_codegen``: the NumPy source generated for each call signature so far
        (empty before the first call), the closure's application after the main
        function; ``symnum``: SymNum's generated module (built now if it was
        not); other backends: ``None``.
        """
        if not isinstance(self._backend, GeneratedCode):
            return None
        if self._impl is None:
            self._build()
        program = self._program
        return "" if program is None else generated_code(self._backend).source(program)

    @property
    def coloring(self) -> dict[str, Any] | None:
        """For a sparse operator after its first call: how its matrix is computed.

        Returns:
            ``{"mode", "colors", "nnz", "shape", "reason", "seconds"}`` for the most
            recent call signature, or ``None``. ``mode``: ``"forward"`` (JVPs),
            ``"reverse"`` (VJPs), ``"bidirectional"`` (both), ``"symmetric"``
            (HVPs of a star coloring, entries read directly), ``"substitution"``
            (HVPs of an acyclic coloring, entries recovered by substitution) or
            ``"dense"`` (the dense derivative, when coloring cannot beat it);
            ``colors``: products per call; ``reason``: why that mode;
            ``seconds``: time spent detecting the structure (``"detect"``) and
            coloring it (``"plan"``) when it was built.
        """
        caller = getattr(self, "sparse", None)
        if caller is None or caller.last is None:
            return None
        return {**caller.last.describe(), "seconds": dict(caller.timings)}

    def __call__(self, x: Any, *args: Any) -> tuple[Any, ...]:
        """Evaluate the derivatives and value at ``x``.

        Args:
            x: Real array-like of any shape ``S``.
            *args: Extra arguments of the function, passed through undifferentiated.

        Returns:
            The operator's tuple as NumPy arrays (closures first, value last).
        """
        if type(x) is np.ndarray and (x.dtype is FLOAT64 or x.dtype is FLOAT32):
            self._point_shape = x.shape
            arr = x.copy() if self._copy_input else x
        elif self._pass_through and not isinstance(x, np.ndarray):
            arr = x  # the boundary checks framework arrays
        else:
            arr = as_input_array(x, copy=self._copy_input)
            self._point_shape = tuple(arr.shape)
        if args and self._copy_input:
            # Closures see the arguments they were built with, whatever the caller
            # does to its arrays afterwards.
            args = tuple([a.copy() if isinstance(a, np.ndarray) else a for a in args])
        try:
            call = self._impl or self._build()
            out = call(arr, *args) if args else call(arr)
        except Exception as err:
            better = explain(self._backend, err, self.func)
            if better is None:
                raise
            raise better from err
        if self._closes:
            # A closure pickles as the call that made it (``_reapplied``).
            out[0]._source = (self, self._kept(x, arr), args)
        return out

    def _kept(self, x: Any, arr: Any) -> Any:
        """The input as a closure's recipe keeps it: a copy the caller cannot change."""
        if arr is not x:
            return arr  # already a copy
        backend = self._backend
        if isinstance(backend, FrameworkArrays) and backend.is_framework_array(x):
            return backend.framework_copy(x)
        return as_input_array(x, copy=True)

    def __repr__(self) -> str:
        options = self.options if self.as_numpy else {**self.options, "as_numpy": False}
        opts = "".join(f", {k}={v!r}" for k, v in options.items())
        name = function_name(self.func)
        return f"{self.op_name}({name}, backend={self.backend!r}{opts})"

    def __copy__(self) -> DerivativeFunction:
        # Immutable once built: a copy is the same object, so copies (Mici copies
        # its transitions for every chain) share the compiled program.
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> DerivativeFunction:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        options = {**self.options, "as_numpy": self.as_numpy}
        saved = self._saved
        if self._program is not None:
            saved = generated_code(self._backend).export(self._program)
        func = portable(self.func, self._backend)
        return (_rebuild, ((func, self.op_name, self.backend, options, saved),))


def _rebuild(recipe: tuple[Any, str, str, dict[str, Any], Any]) -> DerivativeFunction:
    """A pickled derivative function from its recipe (and its exported program)."""
    func, op_name, backend, options, saved = recipe
    derivative = DerivativeFunction(restore(func), op_name, backend, **options)
    derivative._saved = saved
    return derivative


# Programs built recently, shared by every derivative function with the same recipe:
# building the same derivative function again (e.g. inside a loop) compiles nothing
# new. The programs refer to the user's function, so the cache is bounded (least
# recently used first out) rather than weakly keyed.
_BUILT: collections.OrderedDict[tuple[Any, str], Any] = collections.OrderedDict()
_BUILT_LOCK = _thread.allocate_lock()
BUILT_CACHE_SIZE = 64
"""How many recently built derivative programs are kept for reuse."""


def _built(func: Callable[..., Any], key: str) -> Any:
    try:
        with _BUILT_LOCK:
            found = _BUILT.get((func, key))
            if found is not None:
                _BUILT.move_to_end((func, key))
            return found
    except TypeError:  # an unhashable callable: nothing shared
        return None


def _remember(func: Callable[..., Any], key: str, built: Any) -> None:
    try:
        with _BUILT_LOCK:
            _BUILT[(func, key)] = built
            while len(_BUILT) > BUILT_CACHE_SIZE:
                _BUILT.popitem(last=False)
    except TypeError:
        pass
