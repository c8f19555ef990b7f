"""The per-call path of a derivative function: into the program and out again.

:func:`make_caller` wraps a backend's framework-level operator in a program that casts
its outputs to the input's dtype (and, on backends with compiled programs, packs
small outputs into one flat array so that one host transfer serves them all),
compiles it, and returns the function called on every evaluation: NumPy in, NumPy
out, product closures as :class:`~diffops.boundary.closures.ProductClosure` (with
``as_numpy=False``: the framework's arrays in and out).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from diffops.backends.capabilities import (
    CompiledPrograms,
    FrameworkArrays,
    compiled,
    generated_code,
)
from diffops.backends.protocol import Backend, Function
from diffops.backends.support import call_signature
from diffops.boundary.closures import ProductClosure, settled
from diffops.boundary.inputs import framework_arguments, framework_input
from diffops.errors import function_name, require_shape
from diffops.operators import Closure, Operator, shape_of

Caller = Callable[..., tuple[Any, ...]]
"""The per-call function of a derivative function: ``call(x, *args) -> tuple``."""


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
    with the backend's
    :meth:`~diffops.backends.capabilities.CompiledPrograms.compile`, and called
    through :meth:`~diffops.backends.protocol.Backend.run`.

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
    hooks = compiled(backend)
    pack = as_numpy and hooks.pack_limit > 0
    cast, concat, limit = hooks.cast, hooks.concat, hooks.pack_limit
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
    needs_typing = pack or isinstance(backend, CompiledPrograms)
    program = hooks.compile(typed if needs_typing else raw)
    input_shape = generated_code(backend).input_shape(op.name, func, **options)
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
            trace = compiled(backend).trace
            arrays = backend.run(trace, x.dtype, self._arrays_of, x, *args)
            shapes = self._packed_shapes(arrays)
        unpack = None if shapes is None else _unpacker(shapes)
        self.unpackers[key] = unpack
        return unpack


class _Path:
    """What the per-call functions of one program need, worked out once."""

    def __init__(
        self,
        backend: Backend,
        program: Function,
        packing: PackedLayouts | None,
        input_shape: tuple[int, ...] | None,
        func: Function,
    ):
        self.backend = backend
        self.program = program
        self.packing = packing
        self.input_shape = input_shape
        self.func = func
        self.run = backend.run
        self.to_numpy = (
            backend.to_numpy if backend.overrides("to_numpy") else np.asarray
        )
        self.to_framework = backend.to_framework
        self.other = compiled(backend).argument_signature
        # Backends that work on NumPy arrays in the default precision call the
        # program directly.
        self.convert_input = backend.overrides("to_framework")
        self.plain = not (backend.overrides("run") or self.convert_input)
        self.fresh = backend.fresh_outputs
        self.unpackers = packing.unpackers if packing is not None else {}

    def enter(self, x: np.ndarray, args: tuple[Any, ...]) -> Any:
        """Run the program at ``x`` (and ``args``)."""
        if self.input_shape is not None and x.shape != self.input_shape:
            _generated_for(self.input_shape, x.shape, self.func)
        if self.plain:
            return self.program(x, *args)
        if not self.convert_input:
            return self.run(self.program, x.dtype, x, *args)
        if args:
            args = framework_arguments(self.backend, args, x.dtype)
        return self.run(self.program, x.dtype, self.to_framework(x), *args)

    def enter_packed(
        self, x: np.ndarray, args: tuple[Any, ...]
    ) -> tuple[Any, Callable[[np.ndarray], tuple[Any, ...]] | None]:
        """Run the program; also return the unpacker of its packed results."""
        packing = self.packing
        assert packing is not None
        key = call_signature(x, args, self.other)
        unpack = self.unpackers.get(key, _UNSET)
        if unpack is not _UNSET:
            return self.enter(x, args), unpack  # type: ignore[return-value]
        packing.expect()
        out = self.enter(x, args)
        # A program that settled at its first call is called directly from now on.
        self.program = settled(self.program)
        return out, packing.learn(key, x, args)

    def convert(self, out: Sequence[Any], x: np.ndarray) -> list[Any]:
        """Outputs as NumPy arrays of ``x``'s dtype (0-d: scalars), never aliased."""
        dtype, to_numpy, fresh = x.dtype, self.to_numpy, self.fresh
        results = []
        for o in out:
            r = to_numpy(o)
            if r.dtype is not dtype and r.dtype != dtype:
                r = r.astype(dtype)
            if not fresh and np.may_share_memory(r, x):
                r = r.copy()
            results.append(r if r.ndim else r[()])
        return results


def _numpy_caller(
    backend: Backend,
    op: Operator,
    program: Function,
    packing: PackedLayouts | None,
    input_shape: tuple[int, ...] | None,
    func: Function,
) -> Caller:
    """The per-call function for NumPy inputs and outputs."""
    path = _Path(backend, program, packing, input_shape, func)
    if op.closure is None:
        return _packed_call(path) if packing is not None else _plain_call(path)
    return _closure_call(path, backend, op.closure)


def _packed_call(path: _Path) -> Caller:
    """A program whose small results leave it packed (compiled backends)."""
    run, program, to_numpy = path.run, path.program, path.to_numpy
    unpackers, enter_packed, convert = path.unpackers, path.enter_packed, path.convert

    def call(x: np.ndarray, *args: Any) -> tuple[Any, ...]:
        nonlocal program
        # The common case inlined (no arguments, signature seen): one frame less.
        unpack = _UNSET if args else unpackers.get((x.shape, x.dtype), _UNSET)
        if unpack is _UNSET:
            out, unpack = enter_packed(x, args)
            program = path.program  # settled by its first call
        else:
            out = run(program, x.dtype, x)
        if unpack is not None:
            return unpack(to_numpy(out[0]))  # type: ignore[operator,no-any-return]
        return tuple(convert(out, x))

    return call


def _plain_call(path: _Path) -> Caller:
    """A program returning its results one by one."""
    run, program, to_framework = path.run, path.program, path.to_framework
    enter, convert, func = path.enter, path.convert, path.func
    plain, convert_input, input_shape = path.plain, path.convert_input, path.input_shape
    # Straight-line generated code returns the same types for every input of one
    # dtype: once its outputs were exact, later ones are returned untouched.
    exact: dict[np.dtype, bool] = {}
    learn = path.fresh

    def call(x: np.ndarray, *args: Any) -> tuple[Any, ...]:
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


def _closure_call(path: _Path, backend: Backend, spec: Closure) -> Caller:
    """A program returning a product closure first."""
    packed = path.packing is not None
    enter, enter_packed, convert = path.enter, path.enter_packed, path.convert
    to_numpy = path.to_numpy
    apply = compiled(backend).closure_applier()
    settling = hasattr(apply, "settled")  # until its first application has settled
    # Closure argument and result shapes, per input and value shape.
    closure_shapes: dict[tuple[Any, ...], tuple[tuple[int, ...], tuple[int, ...]]] = {}

    def call_with_closure(x: np.ndarray, *args: Any) -> tuple[Any, ...]:
        nonlocal apply, settling
        if settling:
            apply = settled(apply)
            settling = hasattr(apply, "settled")
        if packed:
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
    name = function_name(func)
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
    apply = compiled(backend).closure_applier() if op.closure is not None else None
    settling = hasattr(apply, "settled")  # until its first application has settled
    arrays = backend if isinstance(backend, FrameworkArrays) else FrameworkArrays()

    def call(x: Any, *args: Any) -> tuple[Any, ...]:
        nonlocal apply, settling
        if settling and apply is not None:
            apply = settled(apply)
            settling = hasattr(apply, "settled")
        x = framework_input(backend, x, copy=copy)
        dtype = arrays.framework_dtype(x)
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
