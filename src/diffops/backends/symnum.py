"""SymNum backend: symbolic derivatives of ``symnum.numpy`` functions as NumPy code.

Code generation needs the argument's shape: ``symnum.numpify(shape)`` on the function
or ``arg_shape=shape``. 0-d arguments (SymNum generates no code for them) are handled
as ``y -> f(y[0])`` with ``y`` of shape ``(1,)``. SymNum is imported on first use.
"""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any, ClassVar, NamedTuple

import numpy as np

from diffops.backends.capabilities import (
    ExampleModels,
    GeneratedCode,
    SparseDerivatives,
    example_namespace,
)
from diffops.backends.protocol import Backend
from diffops.backends.support import check_value
from diffops.backends.symnum_sympy import sympy_workarounds
from diffops.errors import (
    CodeGenerationError,
    MissingArgumentShapeError,
    ShapeMismatchError,
    require_shape,
)
from diffops.operators import ALL_DIFF_OPS, OPERATORS, shape_of

Function = Callable[..., Any]

Shape = tuple[int, ...]

_SYMNUM_OPS = {
    "vjp_and_value": "vector_jacobian_product",
    "grad_and_value": "grad",
    "hessian_grad_and_value": "hessian",
    "mtp_hessian_grad_and_value": "matrix_tressian_product",
    "jacobian_and_value": "jacobian",
    "mhp_jacobian_and_value": "matrix_hessian_product",
    "jvp_and_value": "jacobian_vector_product",
    "hvp_grad_and_value": "hessian_vector_product",
}


def as_shape(shape: Any, what: str) -> Shape:
    """A shape given as an int or a sequence of non-negative ints, as a tuple.

    Args:
        shape: ``3``, ``(3,)``, ``[2, 3]``, ``()``...
        what: What the shape is of, for messages.

    Returns:
        The shape as a tuple of ints (``3`` becomes ``(3,)``).

    Raises:
        MissingArgumentShapeError: (a ``ValueError``) for anything else.
    """
    if isinstance(shape, int | np.integer) and not isinstance(shape, bool):
        shape = (shape,)
    if isinstance(shape, tuple | list) and all(
        isinstance(n, int | np.integer) and not isinstance(n, bool) and n >= 0
        for n in shape
    ):
        if 0 in shape:
            msg = (
                f"The {what} {tuple(shape)} has no elements, and SymPy cannot "
                f"generate code for empty arrays. Use another backend for empty "
                f"inputs (all of them return empty derivatives)."
            )
            raise MissingArgumentShapeError(msg)
        return tuple(int(n) for n in shape)
    msg = (
        f"The {what} {shape!r} is not a shape: give a tuple of non-negative ints "
        f"such as (3,) or (2, 3), an int n for (n,), or () for a scalar."
    )
    raise MissingArgumentShapeError(msg)


class Signature(NamedTuple):
    """What SymNum needs to know about a function before generating code.

    Attributes:
        symbolic: The symbolic function ``f(x, *args)``.
        shape: Shape ``S`` of ``x``.
        extras: Shapes of the extra arguments (``()`` for a scalar).
    """

    symbolic: Function
    shape: Shape
    extras: tuple[Shape, ...]


def signature(func: Function, op_name: str, options: Mapping[str, Any]) -> Signature:
    """The symbolic function and argument shapes of ``func``.

    Args:
        func: A function decorated with ``symnum.numpify(shape, *extra_shapes)``, or
            a symbolic function given with the ``arg_shape`` (and ``extra_shapes``)
            options.
        op_name: Operator being built (for messages).
        options: The operator's options.

    Returns:
        The :class:`Signature`.

    Raises:
        MissingArgumentShapeError: If the shapes are unknown or not shapes.
    """
    name = getattr(func, "__name__", "the function")
    arg_shape = options.get("arg_shape")
    if arg_shape is not None:
        extras = tuple(
            as_shape(e, "extra argument shape") for e in options.get("extra_shapes", ())
        )
        symbolic = getattr(func, "_sympy_func", func)
        return Signature(symbolic, as_shape(arg_shape, "arg_shape"), extras)
    shapes = getattr(func, "_arg_shapes", None)
    if shapes is None:
        msg = (
            f"{op_name} on the 'symnum' backend needs the shape of the argument of "
            f"{name!r}. Decorate it with `@symnum.numpify(shape)` (e.g. "
            f"`@symnum.numpify((3,))`, and the shapes of any extra arguments after "
            f"it), or pass `arg_shape=shape` (and `extra_shapes=[...]`) to {op_name}."
        )
        raise MissingArgumentShapeError(msg)
    symbolic = getattr(func, "_sympy_func")  # noqa: B009
    shape = as_shape(shapes[0], f"argument shape of {name!r}")
    extras = tuple(as_shape(e, f"extra argument shape of {name!r}") for e in shapes[1:])
    return Signature(symbolic, shape, extras)


def _symbol(name: str, shape: Shape) -> Any:
    import symnum
    import sympy

    return symnum.named_array(name, shape) if shape else sympy.Symbol(name)


def _generate(
    func: Function, op_name: str, options: Mapping[str, Any]
) -> tuple[Function, Shape]:
    """SymNum's generated code for ``op_name`` of ``func``, at the input's shape.

    Returns:
        ``(code, shape)``: ``code(x, *args)`` returns the operator's tuple for ``x``
        of shape ``shape``; it is SymNum's own generated function when no reshaping
        or argument check is needed.
    """
    with sympy_workarounds():
        return _generate_code(func, op_name, options)


def _generate_code(
    func: Function, op_name: str, options: Mapping[str, Any]
) -> tuple[Function, Shape]:
    import symnum
    from symnum.array import SymbolicArray

    op = OPERATORS[op_name]
    symbolic, shape, extras = signature(func, op_name, options)
    name = getattr(symbolic, "__name__", "f")
    # SymNum generates code only for arguments of shape (n, ...) and, for Jacobians
    # and products, for array values: differentiate at those shapes and reshape.
    code_shape = shape or (1,)
    extra_names = tuple(f"arg_{i}" for i in range(len(extras)))
    x = symnum.named_array("x", code_shape)
    constants = [_symbol(n, e) for n, e in zip(extra_names, extras, strict=True)]
    out = _apply(symbolic, x, shape, constants)
    value_shape = _checked_value_shape(out, op, func)
    code_value_shape = (1,) if not op.scalar_only and value_shape == () else value_shape

    def code_func(y: Any, *args: Any) -> Any:
        value = _apply(symbolic, y, shape, args)
        if value_shape == () and isinstance(value, SymbolicArray):
            value = next(iter(value.flat))  # a 0-d array: its element
        if code_value_shape != value_shape:
            return symnum.numpy.array([value])
        return value

    # SymNum names the generated function and its arguments after these, so they
    # must be Python identifiers ("<lambda>" is not).
    code_func.__name__ = name if name.isidentifier() else "f"
    code_func._arg_names = ("x", *extra_names)  # type: ignore[attr-defined]
    try:
        generated: Function = getattr(symnum, _SYMNUM_OPS[op_name])(
            code_func, code_shape, *extras, return_aux=True
        )
    except Exception as err:
        if type(err).__name__ != "PrintMethodNotImplementedError":
            raise
        what = str(err).splitlines()[0]
        msg = (
            f"SymNum cannot generate NumPy code for {op_name} of {name!r}: its "
            f"derivative contains a function SymNum has no code for ({what}); this "
            f"happens with kinks such as snp.maximum, snp.abs or comparisons, whose "
            f"higher derivatives are Dirac deltas. Use backend='jax' or "
            f"backend='autograd', or write {name!r} with smooth functions."
        )
        raise CodeGenerationError(msg) from err
    # SymNum's code for maxima and minima calls functools, which its generated
    # module does not import.
    generated.__globals__.setdefault("functools", functools)
    reshape = None
    if code_shape != shape or code_value_shape != value_shape:
        reshape = (op_name, (shape, value_shape), code_shape)
    program = _program(generated, reshape, extras)
    # SymNum keeps the source in the generated function's docstring.
    source = (generated.__doc__ or "").partition("\n\n")[2]
    _SOURCES[program] = (generated.__name__, source, reshape, extras)
    return program, shape


def _apply(symbolic: Function, y: Any, shape: Shape, args: Any) -> Any:
    """``symbolic`` at the symbolic input ``y`` (of shape ``(1,)`` for 0-d input).

    A 0-d input is passed as a 0-d symbolic array, or, for functions that put it
    into arrays (``snp.array([x, x ** 2])``, which iterates a 0-d array), as its
    one symbol.
    """
    from symnum.array import SymbolicArray

    if shape:
        return symbolic(y, *args)
    try:
        return symbolic(SymbolicArray(y[0], ()), *args)
    except ValueError as err:
        if "0-d" not in str(err):
            raise
    out = symbolic(y[0], *args)
    if isinstance(out, np.ndarray) and out.dtype == object:
        # The symbol times a NumPy array (``x * np.ones(2)``) is a NumPy array of
        # expressions: the symbolic array it stands for.
        import symnum.numpy as snp

        return snp.array(out, dtype=y.dtype)
    return out


def _checked_value_shape(out: Any, op: Any, func: Function) -> Shape:
    """The shape of a symbolic value, checked like every backend's values."""
    import sympy
    from symnum.array import SymbolicArray

    if isinstance(out, SymbolicArray):
        elements = list(out.flat)
        shape: Shape = tuple(out.shape)
    elif isinstance(out, sympy.Basic):  # a scalar expression
        elements, shape = [out], ()
    else:
        check_value(out, op, func, None)  # raises: not an array
        elements, shape = [], ()
    complex_ = any(sympy.sympify(e).has(sympy.I) for e in elements)
    check_value(out, op, func, shape, complex_=complex_)
    return shape


def _checking_arguments(generated: Function, extras: tuple[Shape, ...]) -> Function:
    """``generated``, checking the extra arguments' number and shapes first.

    Generated code indexes its arguments element by element, so an argument of
    another shape would give silently wrong numbers.
    """

    def checked(x: Any, *args: Any) -> Any:
        if len(args) != len(extras):
            msg = (
                f"The function was declared with {len(extras)} extra argument(s) of "
                f"shapes {extras}, but was called with {len(args)}."
            )
            raise ShapeMismatchError(msg)
        for i, (arg, expected) in enumerate(zip(args, extras, strict=True)):
            if np.shape(arg) != expected:
                require_shape(
                    np.shape(arg),
                    expected,
                    f"extra argument {i + 1}",
                    "SymNum generated code for the declared shapes.",
                )
        return generated(x, *args)

    return checked


def _program(
    generated: Function, reshape: Any, extras: tuple[Shape, ...] = ()
) -> Function:
    program = generated if reshape is None else _reshaped(generated, *reshape)
    return _checking_arguments(program, extras) if extras else program


_SOURCES: weakref.WeakKeyDictionary[Function, tuple[str, str, Any, Any]] = (
    weakref.WeakKeyDictionary()
)
"""The source code of each program, so a pickled derivative can ship it."""


def _compile_source(name: str, source: str) -> Function:
    """The generated function again, from its source (no SymPy involved)."""
    namespace: dict[str, Any] = {"numpy": np, "math": math, "functools": functools}
    exec(compile(source, f"<diffops symnum {name}>", "exec"), namespace)
    function: Function = namespace[name]
    return function


def _numpify(symbolic: Function, arg_shapes: tuple[Any, ...]) -> Function:
    """``symnum.numpify_func(symbolic, *arg_shapes)``, for unpickling."""
    import symnum

    numpified: Function = symnum.numpify_func(symbolic, *arg_shapes)
    return numpified


def _reshaped(
    generated: Function, op_name: str, shapes: tuple[Shape, Shape], code_s: Shape
) -> Function:
    """``generated``, computed at the code shapes, reshaped back to ``S`` and ``F``."""
    op = OPERATORS[op_name]
    s, f = shapes
    code_f = (1,) if not op.scalar_only and f == () else f
    array_shapes = op.array_shapes(s, f)
    closure = op.closure

    def reshaped(x: Any, *args: Any) -> tuple[Any, ...]:
        result = generated(np.reshape(x, code_s), *args)
        arrays = result[1:] if closure else result
        out = tuple(
            np.reshape(a, shp) for a, shp in zip(arrays, array_shapes, strict=True)
        )
        if closure is None:
            return out
        inner = result[0]
        arg_shape = shape_of(closure.arg, code_s, code_f)
        out_shape = shape_of(closure.out, s, f)

        def product(m: Any) -> Any:
            return np.reshape(inner(np.reshape(m, arg_shape)), out_shape)

        return (product, *out)

    return reshaped


class SymnumBackend(Backend, GeneratedCode, SparseDerivatives, ExampleModels):
    """``symnum``: symbolic derivatives compiled to NumPy code, one input shape."""

    name = "symnum"
    framework = "symnum"
    extra = "symnum"
    title = "SymNum"
    write_with = (
        "with symnum.numpy (`import symnum.numpy as snp`: snp.sin, snp.sum, "
        "snp.array, ...) instead of numpy; SymNum passes it symbolic arrays."
    )
    numpy_markers = ("ufunc", "Symbol")
    options: ClassVar[Mapping[str, tuple[str, ...]]] = {
        op: ("arg_shape", "extra_shapes") for op in ALL_DIFF_OPS
    }
    # Generated code builds new arrays for every output.
    fresh_outputs = True

    def check(self, op_name: str, func: Function, options: Mapping[str, Any]) -> None:
        """Check the options and that the argument's shape is known."""
        super().check(op_name, func, options)
        signature(func, op_name, options)

    def operator(self, op_name: str, func: Function, **options: Any) -> Function:
        """SymNum's generated code (the boundary checks the input shape)."""
        # The boundary checks the input shape (input_shape), so the generated code
        # is called directly.
        return _generate(func, op_name, options)[0]

    def input_shape(self, op_name: str, func: Function, **options: Any) -> Shape:
        """The shape the code is generated for."""
        return signature(func, op_name, options).shape

    def export(self, program: Function) -> Any:
        """The generated source code, so that unpickling runs no SymPy."""
        return _SOURCES.get(program)

    def restore(self, state: Any) -> Function:
        """The program again, from its generated source."""
        name, source, reshape, extras = state
        program = _program(_compile_source(name, source), reshape, extras)
        _SOURCES[program] = state
        return program

    def source(self, program: Function) -> str | None:
        """SymNum's generated source."""
        return None if (state := _SOURCES.get(program)) is None else str(state[1])

    def function_recipe(
        self, func: Function
    ) -> tuple[Callable[..., Function], tuple[Any, ...]] | None:
        """Rebuild numpified functions from their symbolic function and shapes.

        ``symnum.numpify`` defines them in temporary modules that another process
        cannot import.
        """
        symbolic = getattr(func, "_sympy_func", None)
        shapes = getattr(func, "_arg_shapes", None)
        if symbolic is None or shapes is None:
            return None
        return _numpify, (symbolic, tuple(shapes))

    def namespace(self) -> SimpleNamespace:
        """The example models' operations in this framework."""
        import symnum.numpy as snp

        return example_namespace(
            snp, stack=snp.array, const=lambda a, like: snp.array(a)
        )


SYMNUM = SymnumBackend()
"""The ``symnum`` backend."""
