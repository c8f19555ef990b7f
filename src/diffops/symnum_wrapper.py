"""SymNum backend: the six operators for functions written with ``symnum.numpy``.

SymNum differentiates symbolically and generates NumPy code, so the derivative
functions take and return NumPy arrays and need no wrapper. SymNum needs the shape of
the argument when code is generated: decorate the function with
``symnum.numpify(shape)``, or pass the undecorated symbolic function together with
``arg_shape=shape``. SymNum itself cannot generate code for 0-d arguments, so for
``arg_shape=()`` diffops differentiates ``y -> f(y[0])`` with ``y`` of shape ``(1,)``
and reshapes the results and closures back to 0-d.

SymNum is imported on first use.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

from diffops.errors import MissingArgumentShapeError, require_scalar, require_shape
from diffops.operators import OPERATORS

SYMNUM_AVAILABLE: bool = importlib.util.find_spec("symnum") is not None
"""Whether SymNum is installed (found without importing it)."""

EXTRA = "symnum"

_SYMNUM_OPS = {
    "vjp_and_value": "vector_jacobian_product",
    "grad_and_value": "grad",
    "hessian_grad_and_value": "hessian",
    "mtp_hessian_grad_and_value": "matrix_tressian_product",
    "jacobian_and_value": "jacobian",
    "mhp_jacobian_and_value": "matrix_hessian_product",
}


def check_function(
    func: Callable[..., Any],
    op_name: str,
    arg_shape: tuple[int, ...] | None = None,
    **options: Any,
) -> None:
    """Check that SymNum can generate code for ``func``.

    Args:
        func: Function decorated with ``symnum.numpify(shape)``, or a symbolic
            function when ``arg_shape`` is given.
        op_name: Operator being built (used in messages).
        arg_shape: Shape of the argument for an undecorated symbolic function.
        **options: Any other option, which SymNum's operators do not take.

    Raises:
        MissingArgumentShapeError: If the shape of the argument is unknown, or the
            function takes more than one argument.
        TypeError: For an option other than ``arg_shape``.
    """
    if options:
        msg = (
            f"{op_name} on the symnum backend takes only 'arg_shape', not "
            f"{sorted(options)}."
        )
        raise TypeError(msg)
    _symbolic_and_shape(func, op_name, arg_shape)


def _symbolic_and_shape(
    func: Callable[..., Any], op_name: str, arg_shape: tuple[int, ...] | None
) -> tuple[Callable[..., Any], tuple[int, ...]]:
    name = getattr(func, "__name__", "the function")
    shapes = getattr(func, "_arg_shapes", None)
    if arg_shape is not None:
        return getattr(func, "_sympy_func", func), tuple(arg_shape)
    if shapes is None:
        msg = (
            f"{op_name} on the 'symnum' backend needs the shape of the argument of "
            f"{name!r}. Decorate it with `@symnum.numpify(shape)` (e.g. "
            f"`@symnum.numpify((3,))`), or pass `arg_shape=shape` to {op_name}."
        )
        raise MissingArgumentShapeError(msg)
    if len(shapes) != 1:
        msg = (
            f"{name!r} takes {len(shapes)} arguments; diffops differentiates "
            f"functions of one array. Close over the other arguments, e.g. "
            f"`symnum.numpify(shape)(lambda x: f(x, y))`."
        )
        raise MissingArgumentShapeError(msg)
    return func._sympy_func, tuple(shapes[0])  # type: ignore[attr-defined]


def _build(
    func: Callable[..., Any], op_name: str, arg_shape: Any
) -> Callable[..., Any]:
    import symnum
    from symnum.array import SymbolicArray

    symbolic, shape = _symbolic_and_shape(func, op_name, arg_shape)
    # SymNum generates code only for arguments of shape (n, ...) and, for Jacobians
    # and products, for array values: differentiate at those shapes and reshape.
    code_shape = shape or (1,)
    x = symnum.named_array("x", code_shape)
    out = symbolic(x if shape else SymbolicArray(x[0], ()))
    value_shape = tuple(getattr(out, "shape", ()))
    if OPERATORS[op_name].scalar_only:
        require_scalar(value_shape, op_name)
    array_op = not OPERATORS[op_name].scalar_only
    code_value_shape = (1,) if array_op and value_shape == () else value_shape

    def code_func(y: Any) -> Any:
        value = symbolic(y if shape else SymbolicArray(y[0], ()))
        if code_value_shape != value_shape:
            if isinstance(value, SymbolicArray):  # 0-d array: take its element
                value = next(iter(value.flat))
            return symnum.numpy.array([value])
        return value

    # The name becomes a Python identifier in the generated code ("<lambda>" is not).
    name = getattr(symbolic, "__name__", "f")
    code_func.__name__ = name if name.isidentifier() else "f"
    generated = getattr(symnum, _SYMNUM_OPS[op_name])(
        code_func, code_shape, return_aux=True
    )
    name = getattr(func, "__name__", "f")
    fix = (
        f"SymNum generated code for {name!r} at shape {shape}; call it with that "
        f"shape or build the derivative again for the new one."
    )
    adapt = code_shape != shape or code_value_shape != value_shape
    reshape = _reshaper(op_name, shape, value_shape, code_shape, code_value_shape)

    def derivative_func(x: Any) -> tuple[Any, ...]:
        if np.shape(x) != shape:
            require_shape(np.shape(x), shape, "input", fix)
        if adapt:
            return reshape(generated(np.reshape(x, code_shape)))
        return generated(x)

    # The generated function itself, when no reshaping is needed (lean call path).
    derivative_func.generated = None if adapt else generated  # type: ignore[attr-defined]
    derivative_func.shape = shape  # type: ignore[attr-defined]
    return derivative_func


def make_caller(
    func: Callable[..., Any],
    op_name: str,
    function_wrapper: Callable[..., Any] | None,
    as_numpy: bool = True,
    arg_shape: tuple[int, ...] | None = None,
) -> Callable[[np.ndarray], tuple[Any, ...]]:
    """Build the per-call function of a diffops derivative function on SymNum.

    Generated code already returns NumPy values, so each call only checks the input
    shape and that each output has the input's dtype (constant derivatives come out
    as integer arrays, and float32 input may meet float64 constants).

    Args:
        func: The user's SymNum function.
        op_name: Operator name, one of ``DIFF_OPS``.
        function_wrapper: The backend's wrapper (``None`` for SymNum).
        as_numpy: Ignored: SymNum's generated code is NumPy either way.
        arg_shape: Shape of the argument for an undecorated symbolic function.

    Returns:
        Function of a float32/float64 NumPy array returning the operator's tuple at
        the NumPy boundary.
    """
    from diffops.boundary import ProductClosure, to_output

    op = OPERATORS[op_name]
    derivative = _build(func, op_name, arg_shape)
    generated = derivative.generated or derivative  # type: ignore[attr-defined]
    shape = derivative.shape  # type: ignore[attr-defined]
    # Generated code is straight-line NumPy, so the types of its outputs depend on
    # the input dtype only: learn once per dtype whether they need converting.
    exact: dict[np.dtype, bool] = {}

    def convert(out: tuple[Any, ...], dtype: np.dtype) -> tuple[Any, ...]:
        converted = tuple([to_output(o, dtype) for o in out])
        if dtype not in exact:
            exact[dtype] = all(
                (type(o) is np.ndarray and o.ndim > 0) or type(o) is dtype.type
                for o in out
            ) and all(o.dtype == dtype for o in out)
        return converted

    if op.closure is None:

        def call(x: np.ndarray) -> tuple[Any, ...]:
            if x.shape != shape:
                return convert(derivative(x), x.dtype)  # raises or adapts the shape
            out = generated(x)
            if exact.get(x.dtype):
                return out
            return convert(out, x.dtype)

        return call

    name = op.closure

    def call_with_closure(x: np.ndarray) -> tuple[Any, ...]:
        dtype = x.dtype
        closure, *arrays = derivative(x)
        results = [to_output(o, dtype) for o in arrays]
        arg_shape = op.closure_arg_shape(x.shape, np.shape(results[-1]))
        return (ProductClosure(closure, name, arg_shape, x.shape, dtype), *results)

    return call_with_closure


def _reshaper(
    op_name: str,
    s: tuple[int, ...],
    f: tuple[int, ...],
    code_s: tuple[int, ...],
    code_f: tuple[int, ...],
) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """Map results computed at shapes ``code_s``/``code_f`` back to ``s``/``f``."""
    op = OPERATORS[op_name]
    array_shapes = {
        "grad_and_value": (s, f),
        "hessian_grad_and_value": (s + s, s, f),
        "mtp_hessian_grad_and_value": (s + s, s, f),
        "jacobian_and_value": (f + s, f),
        "mhp_jacobian_and_value": (f + s, f),
        "vjp_and_value": (f,),
    }[op_name]
    closure_arg = {"vjp": code_f, "mhp": code_f + code_s, "mtp": code_s + code_s}

    def reshape(result: tuple[Any, ...]) -> tuple[Any, ...]:
        arrays = result[1:] if op.closure else result
        out = tuple(
            np.reshape(a, shp) for a, shp in zip(arrays, array_shapes, strict=True)
        )
        if op.closure is None:
            return out
        closure, arg_shape = result[0], closure_arg[op.closure]

        def product(m: Any) -> Any:
            return np.reshape(closure(np.reshape(m, arg_shape)), s)

        return (product, *out)

    return reshape


def _operator(op_name: str, doc: str) -> Callable[..., Callable[..., Any]]:
    def operator(
        func: Callable[..., Any], arg_shape: tuple[int, ...] | None = None
    ) -> Callable[..., Any]:
        return _build(func, op_name, arg_shape)

    operator.__name__ = operator.__qualname__ = op_name
    operator.__doc__ = doc
    return operator


_ARGS = """

    Args:
        func: Function written with ``symnum.numpy`` and decorated with
            ``symnum.numpify(shape)``, or a symbolic function with ``arg_shape``.
        arg_shape: Shape ``S`` of the argument when ``func`` is not decorated.

    Returns:
        Generated NumPy function """

grad_and_value = _operator(
    "grad_and_value",
    "Make a function returning the gradient and value of a scalar function."
    + _ARGS
    + "``x -> (grad, value)``; ``grad[k] = ∂f/∂x[k]`` has shape ``S``.",
)
vjp_and_value = _operator(
    "vjp_and_value",
    "Make a function returning the vector-Jacobian product and value."
    + _ARGS
    + "``x -> (vjp, value)``; ``vjp(v)[k] = Σ_i v[i] ∂f[i]/∂x[k]`` maps ``F`` to "
    "``S``.",
)
hessian_grad_and_value = _operator(
    "hessian_grad_and_value",
    "Make a function returning the Hessian, gradient and value of a scalar function."
    + _ARGS
    + "``x -> (hessian, grad, value)``; ``hessian`` has shape ``S + S``.",
)
mtp_hessian_grad_and_value = _operator(
    "mtp_hessian_grad_and_value",
    "Make a function returning the MTP, Hessian, gradient and value."
    + _ARGS
    + "``x -> (mtp, hessian, grad, value)``; "
    "``mtp(m)[i] = Σ_jk m[j, k] ∂³f/(∂x[i] ∂x[j] ∂x[k])`` maps ``S + S`` to ``S``.",
)
jacobian_and_value = _operator(
    "jacobian_and_value",
    "Make a function returning the Jacobian and value of a function."
    + _ARGS
    + "``x -> (jacobian, value)``; ``jacobian[i, k] = ∂f[i]/∂x[k]`` has shape "
    "``F + S``.",
)
mhp_jacobian_and_value = _operator(
    "mhp_jacobian_and_value",
    "Make a function returning the MHP, Jacobian and value of a function."
    + _ARGS
    + "``x -> (mhp, jacobian, value)``; "
    "``mhp(m)[k] = Σ_ij m[i, j] ∂²f[i]/(∂x[j] ∂x[k])`` maps ``F + S`` to ``S``.",
)
