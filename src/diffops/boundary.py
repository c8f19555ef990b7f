"""The NumPy boundary: the one place where user arrays cross into and out of a backend.

Every backend goes through this module; a backend only provides the small hooks of
:class:`~diffops.backends.protocol.Backend` (how to convert one array, compile, keep
float64, apply a closure).

Inputs: anything :func:`numpy.asarray` accepts. float32 and float64 arrays are kept;
other real inputs (ints, bools, lists of numbers, float16) become float64; complex and
non-numeric inputs raise :class:`~diffops.errors.InputTypeError`.

Outputs: NumPy arrays of the input's float dtype; 0-d results are NumPy scalars
(``numpy.float64`` / ``numpy.float32``) on every backend, and no output shares memory
with the input. Product closures (``vjp``, ``mhp``, ``mtp``, ...) are
:class:`ProductClosure` objects, which check the shape of their argument, convert it
the same way and return NumPy arrays.

With ``as_numpy=False``, framework arrays go in and come out unconverted (no host copy);
their dtypes are normalised and closures are checked the same way.
"""

from __future__ import annotations

import math
import pickle
import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from diffops import registry

# Imported with diffops (not on first use): its fork handler must see every fork.
from diffops.backends.protocol import Backend
from diffops.errors import (
    ComplexOutputError,
    DiffopsError,
    InputTypeError,
    NonArrayOutputError,
    OutputTooLargeError,
    TracingError,
    causes,
    require_scalar,
    require_shape,
)
from diffops.operators import Closure, Operator, shape_of
from diffops.portable import portable, restore

if TYPE_CHECKING:
    from diffops.backends.protocol import Function

FLOAT32 = np.dtype(np.float32)
FLOAT64 = np.dtype(np.float64)
FLOAT_DTYPES = (FLOAT32, FLOAT64)
_WIDE_DTYPES = frozenset(
    np.dtype(t) for t in (np.float64, np.int64, np.uint64, np.complex128)
)

Caller = Callable[..., tuple[Any, ...]]
"""The per-call function of a derivative function: ``call(x, *args) -> tuple``."""


# ---------------------------------------------------------------------------------
# Inputs


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
    if not backend.is_framework_array(x):
        if _foreign_array(x):
            msg = (
                f"The input is a {_type_name(x)}, an array of another framework; "
                f"the {backend.name} backend takes {backend.framework} arrays or "
                f"NumPy arrays. Convert it, or use the backend of its framework."
            )
            raise InputTypeError(msg)
        return backend.to_framework(as_input_array(x, copy=copy))
    kind = backend.framework_dtype(x).kind
    if kind == "f":
        return backend.framework_copy(x) if copy else x
    if kind in "biu":
        return backend.framework_astype(x, FLOAT64)
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


# ---------------------------------------------------------------------------------
# Outputs


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


def _unpacker(
    shapes: tuple[tuple[int, ...], ...],
) -> Callable[[np.ndarray], tuple[Any, ...]]:
    """Split a flat array into views of the given shapes (0-d: NumPy scalars)."""
    pieces = []
    start = 0
    for shape in shapes:
        stop = start + math.prod(shape)
        pieces.append((start, stop, shape, len(shape)))
        start = stop

    def unpack(flat: np.ndarray) -> tuple[Any, ...]:
        return tuple(
            [
                flat[start]
                if ndim == 0
                else flat[start:stop]
                if ndim == 1
                else flat[start:stop].reshape(shape)
                for start, stop, shape, ndim in pieces
            ]
        )

    return unpack


def _overrides(backend: Backend, hook: str) -> bool:
    """Whether the backend's class overrides one of the protocol's default hooks."""
    return getattr(type(backend), hook) is not getattr(Backend, hook)


# ---------------------------------------------------------------------------------
# Product closures


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

    __slots__ = ("_apply", "_arg_kind", "_as_numpy", "_backend", "_closure")

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
        self._apply = backend.apply_closure if apply is None else apply

    def __call__(self, m: Any) -> Any:
        """Apply the product to ``m``.

        Args:
            m: Array of shape :attr:`arg_shape` (e.g. ``F`` for ``vjp``, ``F + S`` for
                ``mhp``, ``S + S`` for ``mtp``).

        Returns:
            Array of shape :attr:`out_shape` and the input's dtype.
        """
        backend = self._backend
        if not self._as_numpy and backend.is_framework_array(m):
            return self._call_framework(m)
        arr = self._argument(m)
        out = backend.run(
            self._apply, self._dtype, self._closure, backend.to_framework(arr)
        )
        if not self._as_numpy:
            return out
        return self._result(backend.to_numpy(out), arr)

    def _call_framework(self, m: Any) -> Any:
        backend = self._backend
        shape = tuple(m.shape)
        if shape != self._arg_shape:
            self._wrong_shape(shape)
        kind = backend.framework_dtype(m).kind
        if kind == "c":
            msg = f"The argument of {self.__name__} is complex; pass a real array."
            raise InputTypeError(msg)
        if backend.framework_dtype(m) != self._dtype:
            m = backend.framework_astype(m, self._dtype)
        return backend.run(self._apply, self._dtype, self._closure, m)

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


# ---------------------------------------------------------------------------------
# The per-call path of a derivative function


def make_caller(
    backend: Backend,
    op: Operator,
    func: Function,
    options: dict[str, Any],
    *,
    as_numpy: bool = True,
    program: Function | None = None,
) -> Caller:
    """Build the per-call function of ``op(func)`` on ``backend``.

    The backend's framework-level operator is wrapped in a program that casts its
    outputs to the input's dtype (and, on backends that pack, concatenates small
    outputs into one flat array, so one host transfer serves them all), compiled
    with the backend's :meth:`~diffops.backends.protocol.Backend.compile`, and
    called through :meth:`~diffops.backends.protocol.Backend.run`.

    Args:
        backend: The backend.
        op: The operator's record.
        func: The user's function ``func(x, *args)``.
        options: Options for the backend's operator.
        as_numpy: Whether outputs cross the NumPy boundary (default) or stay
            framework arrays.
        program: The backend's operator of ``func``, if already built (e.g.
            restored after unpickling); built here otherwise.

    Returns:
        ``call(x, *args)``: ``x`` a float32/float64 NumPy array (or, with
        ``as_numpy=False``, also a framework array), returning the operator's tuple.
    """
    raw = backend.operator(op.name, func, **options) if program is None else program
    first = 1 if op.closure is not None else 0
    pack = as_numpy and backend.pack_limit > 0
    cast, concat, limit = backend.cast, backend.concat, backend.pack_limit
    packing: PackedLayouts | None = None

    def arrays_of(x: Any, *args: Any) -> list[Any]:
        """The operator's array outputs, in the input's dtype."""
        return [cast(o, x.dtype) for o in raw(x, *args)[first:]]

    def typed(x: Any, *args: Any) -> tuple[Any, ...]:
        # On compiling backends this runs at trace time, once per call signature.
        out = raw(x, *args)
        arrays = [cast(o, x.dtype) for o in out[first:]]
        shapes = packed_shapes(arrays)
        if packing is not None:
            packing.record(shapes)
        if shapes is None:
            return (*out[:first], *arrays)
        return (*out[:first], concat(arrays))

    def packed_shapes(arrays: Sequence[Any]) -> tuple[tuple[int, ...], ...] | None:
        """The shapes of arrays leaving the program packed (``None``: not packed)."""
        if not pack or sum(math.prod(a.shape) for a in arrays) > limit:
            return None
        return tuple(tuple(a.shape) for a in arrays)

    if pack:
        packing = PackedLayouts(backend, arrays_of, packed_shapes)
    needs_typing = pack or _overrides(backend, "cast")
    program = backend.compile(typed if needs_typing else raw)
    input_shape = backend.input_shape(op.name, func, **options)
    if not as_numpy:
        return _framework_caller(backend, op, program)
    return _numpy_caller(backend, op, program, packing, input_shape, func)


_UNSET = object()


class PackedLayouts:
    """How the packed results of a compiled program unpack, per call signature.

    Small results leave a compiled program as one flat array; which slices of it
    are which output depends on the call's signature (input and argument shapes).
    The layout is recorded while the program is traced (in the tracing thread) and
    read right after the call that traced it. When the call traced nothing (another
    thread traced it at the same time, or it was traced under a signature that the
    framework treats as the same), the outputs' shapes are found by tracing the
    unpacked outputs abstractly (nothing is computed).
    """

    def __init__(
        self,
        backend: Backend,
        arrays_of: Function,
        packed_shapes: Callable[[Sequence[Any]], tuple[tuple[int, ...], ...] | None],
    ):
        self._backend = backend
        self._arrays_of = arrays_of
        self._packed_shapes = packed_shapes
        self._traced = threading.local()
        self.unpackers: dict[Any, Callable[[np.ndarray], tuple[Any, ...]] | None] = {}

    def record(self, shapes: tuple[tuple[int, ...], ...] | None) -> None:
        """At trace time: the packed outputs' shapes (``None``: not packed)."""
        self._traced.shapes = shapes

    def expect(self) -> None:
        """Before a call with a signature not seen yet."""
        self._traced.shapes = _UNSET

    def learn(
        self, key: Any, x: np.ndarray, args: tuple[Any, ...]
    ) -> Callable[[np.ndarray], tuple[Any, ...]] | None:
        """After that call: the unpacker for ``key`` (``None``: results not packed)."""
        shapes: Any = getattr(self._traced, "shapes", _UNSET)
        if shapes is _UNSET:
            backend = self._backend
            arrays = backend.run(backend.trace, x.dtype, self._arrays_of, x, *args)
            shapes = self._packed_shapes(arrays)
        unpack = None if shapes is None else _unpacker(shapes)
        self.unpackers[key] = unpack
        return unpack


def call_signature(
    x: Any, args: tuple[Any, ...], other: Callable[[Any], Any] = type
) -> tuple[Any, ...]:
    """What a call's compiled program and the layout of its results depend on.

    The input's shape and dtype, and for the extra arguments their tree structure
    (tuples, lists, dicts, nested) with every leaf's type, shape and dtype. Two calls
    with the same signature run the same traced program; everything cached per call
    (packed-output layouts, sparse plans, first-call probes) is keyed on it, never on
    the top-level objects alone.

    Args:
        x: The input array.
        args: The extra arguments.
        other: Signature of an argument that is neither an array, a number nor a
            container of them (the backend's
            :meth:`~diffops.backends.protocol.Backend.argument_signature`).

    Returns:
        A hashable key.
    """
    if not args:
        return (x.shape, x.dtype)
    return (x.shape, x.dtype, *[_tree_signature(a, other) for a in args])


_NUMBERS = (bool, int, float, complex)


def _tree_signature(a: Any, other: Callable[[Any], Any]) -> Any:
    kind = type(a)
    if kind is np.ndarray:
        return (a.shape, a.dtype)
    if kind in _NUMBERS or a is None:
        return kind
    if isinstance(a, tuple | list):
        return (kind, *[_tree_signature(b, other) for b in a])
    if isinstance(a, dict):
        return (kind, *[(k, _tree_signature(v, other)) for k, v in a.items()])
    shape = getattr(a, "shape", None)
    if shape is not None and hasattr(a, "dtype"):
        return (kind, tuple(shape), str(a.dtype))
    return other(a)


def _numpy_caller(
    backend: Backend,
    op: Operator,
    program: Function,
    packing: PackedLayouts | None,
    input_shape: tuple[int, ...] | None,
    func: Function,
) -> Caller:
    """The per-call function for NumPy inputs and outputs."""
    run = backend.run
    to_numpy = backend.to_numpy if _overrides(backend, "to_numpy") else np.asarray
    to_framework = backend.to_framework
    to_argument = backend.to_framework_argument
    other = backend.argument_signature
    # Backends that work on NumPy arrays in the default precision call the program
    # directly.
    convert_input = _overrides(backend, "to_framework")
    plain = not (_overrides(backend, "run") or convert_input)
    fresh = backend.fresh_outputs
    unpackers = packing.unpackers if packing is not None else {}
    # Straight-line generated code returns the same types for every input of one
    # dtype: once its outputs were exact, later ones are returned untouched.
    exact: dict[np.dtype, bool] = {}
    learn = fresh and packing is None

    def enter(x: np.ndarray, args: tuple[Any, ...]) -> Any:
        if input_shape is not None and x.shape != input_shape:
            _generated_for(input_shape, x.shape, func)
        if plain:
            return program(x, *args)
        if args and convert_input:
            args = tuple(
                [
                    to_argument(a, x.dtype) if isinstance(a, np.ndarray) else a
                    for a in args
                ]
            )
        return run(program, x.dtype, to_framework(x) if convert_input else x, *args)

    def enter_packed(
        x: np.ndarray, args: tuple[Any, ...]
    ) -> tuple[Any, Callable[[np.ndarray], tuple[Any, ...]] | None]:
        """Run the program; also return the unpacker of its packed results."""
        assert packing is not None
        key = call_signature(x, args, other)
        unpack = unpackers.get(key, _UNSET)
        if unpack is not _UNSET:
            return enter(x, args), unpack  # type: ignore[return-value]
        packing.expect()
        out = enter(x, args)
        return out, packing.learn(key, x, args)

    def convert(out: Sequence[Any], x: np.ndarray) -> list[Any]:
        dtype = x.dtype
        results = []
        for o in out:
            r = to_numpy(o)
            if r.dtype is not dtype and r.dtype != dtype:
                r = r.astype(dtype)
            if not fresh and np.may_share_memory(r, x):
                r = r.copy()
            results.append(r if r.ndim else r[()])
        return results

    if op.closure is None:

        def call(x: np.ndarray, *args: Any) -> tuple[Any, ...]:
            if packing is not None:
                # The common case inlined (no arguments, signature seen): one frame
                # less per call.
                unpack = _UNSET if args else unpackers.get((x.shape, x.dtype), _UNSET)
                if unpack is _UNSET:
                    out, unpack = enter_packed(x, args)
                else:
                    out = run(program, x.dtype, x)
                if unpack is not None:
                    return unpack(to_numpy(out[0]))  # type: ignore[operator,no-any-return]
                return tuple(convert(out, x))
            if args:
                out = enter(x, args)
            elif plain:
                if input_shape is not None and x.shape != input_shape:
                    _generated_for(input_shape, x.shape, func)
                out = program(x)
            elif convert_input:
                out = run(program, x.dtype, to_framework(x))
            else:
                out = run(program, x.dtype, x)
            if learn:
                if exact.get(x.dtype):
                    return out  # type: ignore[no-any-return]
                results = convert(out, x)
                if x.dtype not in exact:
                    exact[x.dtype] = _is_exact(out, results, x.dtype)
                return tuple(results)
            return tuple(convert(out, x))

        return call

    spec = op.closure
    assert spec is not None
    apply = backend.closure_applier()
    # Closure argument and result shapes, per input and value shape.
    closure_shapes: dict[tuple[Any, ...], tuple[tuple[int, ...], tuple[int, ...]]] = {}

    def call_with_closure(x: np.ndarray, *args: Any) -> tuple[Any, ...]:
        if packing is not None:
            out, unpack = enter_packed(x, args)
        else:
            out, unpack = enter(x, args), None
        if unpack is not None:
            results = list(unpack(to_numpy(out[1])))
        else:
            results = convert(out[1:], x)
        key = (x.shape, np.shape(results[-1]))
        shapes = closure_shapes.get(key)
        if shapes is None:
            shapes = closure_shapes[key] = (
                shape_of(spec.arg, *key),
                shape_of(spec.out, *key),
            )
        product = ProductClosure(backend, out[0], spec, *shapes, x.dtype, apply=apply)
        return (product, *results)

    return call_with_closure


def _generated_for(
    expected: tuple[int, ...], shape: tuple[int, ...], func: Function
) -> None:
    name = getattr(func, "__name__", "the function")
    require_shape(
        shape,
        expected,
        "input",
        f"The derivative of {name!r} was generated for inputs of shape {expected}; "
        f"call it with that shape, or build it again for the new one.",
    )


def _is_exact(out: tuple[Any, ...], results: list[Any], dtype: np.dtype) -> bool:
    """Whether converting ``out`` changed nothing (same objects, same types)."""
    return all(
        o is r or (type(o) is dtype.type and type(r) is dtype.type)
        for o, r in zip(out, results, strict=True)
    )


def _framework_caller(backend: Backend, op: Operator, program: Function) -> Caller:
    """The per-call function that keeps framework arrays (``as_numpy=False``)."""
    run = backend.run
    # Closures keep their input; the user's function may change it in place.
    copy = op.closure is not None or backend.protect_input
    apply = backend.closure_applier() if op.closure is not None else None

    def call(x: Any, *args: Any) -> tuple[Any, ...]:
        x = framework_input(backend, x, copy=copy)
        dtype = backend.framework_dtype(x)
        out = run(program, dtype, x, *args)
        if op.closure is None:
            return out  # type: ignore[no-any-return]
        s, f = tuple(x.shape), tuple(out[-1].shape)
        product = ProductClosure(
            backend,
            out[0],
            op.closure,
            shape_of(op.closure.arg, s, f),
            shape_of(op.closure.out, s, f),
            dtype,
            as_numpy=False,
            apply=apply,
        )
        return (product, *out[1:])

    return call


def check_value(
    value: Any, op: Operator, func: Function, shape: Any, *, complex_: bool = False
) -> None:
    """Check, at trace or record time, what the user's function returned.

    Args:
        value: What ``func`` returned (a framework array, or something else).
        op: The operator being computed.
        func: The user's function (for messages).
        shape: Shape of ``value`` if it is an array, else ``None``.
        complex_: Whether ``value`` holds complex numbers.

    Raises:
        NonArrayOutputError: (a ``TypeError``) if ``value`` is not an array.
        ComplexOutputError: (a ``TypeError``) if it is complex.
        NonScalarOutputError: If a scalar operator's function returned a non-0-d
            array.
    """
    if complex_:
        name = getattr(func, "__name__", "the function")
        dtype = getattr(value, "dtype", "complex")
        msg = (
            f"{name!r} returned complex values (dtype {dtype}); {op.name} "
            f"differentiates real functions only, because frameworks disagree on "
            f"complex derivatives. Return the real and imaginary parts as a real "
            f"array, e.g. `xp.stack([z.real, z.imag])`, or `abs(z) ** 2`."
        )
        raise ComplexOutputError(msg)
    if shape is None:
        name = getattr(func, "__name__", "the function")
        kind = type(value).__name__
        msg = (
            f"{name!r} returned {kind}{_sample(value)}, but {op.name} needs it to "
            f"return one array{' of shape ()' if op.scalar_only else ''} computed "
            f"from its argument. Return an array, e.g. `xp.stack([...])` for several "
            f"values."
        )
        raise NonArrayOutputError(msg)
    if op.scalar_only:
        require_scalar(tuple(shape), op.name)


def _sample(value: Any) -> str:
    if value is None or isinstance(value, tuple | list | str | int | float):
        text = repr(value)
        return f" {text if len(text) <= 40 else text[:37] + '...'}"
    return ""


# ---------------------------------------------------------------------------------
# Memory


def memory_bytes() -> float:
    """This machine's physical memory in bytes (``inf`` if it cannot be read)."""
    import os

    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not Linux/mac
        return math.inf


_ALTERNATIVES = {
    "hessian": "hvp_grad_and_value (Hessian-vector products without forming the "
    "Hessian), sparsity='detect' for a sparse Hessian, or a smaller problem",
    "jacobian": "vjp_and_value / jvp_and_value (products without forming the "
    "Jacobian), sparsity='detect' for a sparse Jacobian, or a smaller problem",
}


def require_fits(what: str, shape: tuple[int, ...], dtype: Any, op_name: str) -> None:
    """Raise before allocating a Jacobian or Hessian larger than this machine's memory.

    Args:
        what: ``"hessian"`` or ``"jacobian"``.
        shape: Its shape.
        dtype: Its dtype.
        op_name: The operator (for the message).

    Raises:
        OutputTooLargeError: (a ``MemoryError``) naming the size and what to use
            instead.
    """
    needed = math.prod(shape) * np.dtype(dtype).itemsize
    available = memory_bytes()
    if needed <= available:
        return
    msg = (
        f"{op_name}: the {what} would have shape {tuple(shape)} and need "
        f"{_bytes(needed)}, more than this machine's {_bytes(available)} of memory. "
        f"Use {_ALTERNATIVES[what]}."
    )
    raise OutputTooLargeError(msg)


def _bytes(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"  # pragma: no cover


# ---------------------------------------------------------------------------------
# Errors


def explain(backend: Backend, err: Exception, func: Function) -> Exception | None:
    """The exception to raise instead of ``err`` (``None``: re-raise ``err``).

    Args:
        backend: The backend that raised.
        err: The exception.
        func: The user's function.

    Returns:
        A :class:`~diffops.errors.TracingError` (or other diffops error) with a hint,
        from the backend's own explanation or the generic ones.
    """
    if any(isinstance(e, DiffopsError) for e in causes(err)):
        return None
    return _foreign_framework(backend, err, func) or backend.explain_error(err, func)


# The frameworks a user's function may be written with, by top-level package, and
# the backend and module that run such functions.
_FRAMEWORKS = {
    "jax": ("jax", "jax.numpy"),
    "jaxlib": ("jax", "jax.numpy"),
    "torch": ("torch", "torch operations"),
    "autograd": ("autograd", "autograd.numpy"),
    "symnum": ("symnum", "symnum.numpy"),
}


def _foreign_framework(
    backend: Backend, err: Exception, func: Function
) -> Exception | None:
    """A hint when ``func`` uses another framework than the backend's.

    Found from where the error was raised (a frame in another framework's code) or,
    for frameworks whose checks run in C, from the message.
    """
    own = backend.framework
    found = None
    for e in causes(err):
        tb = e.__traceback__
        while tb is not None:
            module = tb.tb_frame.f_globals.get("__name__", "").split(".")[0]
            if module in _FRAMEWORKS and _FRAMEWORKS[module][0] != own:
                found = module
            tb = tb.tb_next
        text = str(e)
        if found is None and own != "torch" and "must be Tensor" in text:
            found = "torch"
        if found is None and own != "jax" and "JAX type" in text:
            found = "jax"  # JAX hides its own frames from tracebacks
    if found is None:
        return None
    other, module_text = _FRAMEWORKS[found]
    name = getattr(func, "__name__", "the function")
    first_line = str(err).strip().split("\n")[0]
    msg = (
        f"{name!r} uses {other} ({type(err).__name__}: {first_line}), but the "
        f"{backend.name!r} backend runs it on {own} arrays.\nHint: functions "
        f"written with {module_text} use backend={other!r}; or write {name!r} with "
        f"the {own} backend's own operations."
    )
    return TracingError(msg)


# ---------------------------------------------------------------------------------
# Framework functions returning NumPy arrays (mici's function wrappers)


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
        self._apply = backend.closure_applier()
        self.__wrapped__ = function
        self._dtype = dtype
        self._compile = compile
        self._call = (
            function if compile is None else backend.compile(function, **compile)
        )
        # For a callable returned by another NumpyFunction: (that function, its
        # arguments, its keyword arguments, where in its result this one was).
        self._source: (
            tuple[Any, tuple[Any, ...], dict[str, Any], tuple[int, ...]] | None
        ) = None
        self.__name__ = getattr(function, "__name__", type(function).__name__)
        self.__qualname__ = getattr(function, "__qualname__", self.__name__)

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
        return backend.to_numpy(out) if backend.is_framework_array(out) else out

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
    if backend.is_framework_array(value):
        return backend.to_numpy(value)
    if callable(value):
        parent, args, kwargs = call
        wrapped = NumpyFunction(backend, partial(parent._apply, value), dtype)
        # Its recipe keeps copies of the arguments: the caller may change its own.
        kept = tuple([a.copy() if isinstance(a, np.ndarray) else a for a in args])
        wrapped._source = (parent, kept, dict(kwargs), path)
        return wrapped
    return value
