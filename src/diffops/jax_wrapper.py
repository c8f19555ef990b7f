"""JAX backend: the six operators for functions written with ``jax.numpy``.

JAX is imported on first use, never at ``import diffops``. The operators here are
framework-level: they take and return JAX arrays, can be composed with other JAX
transforms, and return product closures as :class:`jax.tree_util.Partial` pytrees so
they can leave a ``jax.jit``-compiled function. :func:`jit_and_return_numpy_arrays`
(the ``jax`` backend) and :func:`return_numpy_arrays` (``jax_nojit``) put them behind
the NumPy boundary.

float64 inputs are computed in float64 without touching the user's global
``jax_enable_x64`` flag: the wrappers enter ``jax.enable_x64(True)`` just for calls
whose arguments are 64-bit NumPy arrays, and closures remember the mode they were made
in.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from diffops.errors import TracingError, causes, require_scalar
from diffops.operators import check_jacobian_mode, mode_option_checker

if TYPE_CHECKING:
    from types import ModuleType

JAX_AVAILABLE: bool = importlib.util.find_spec("jax") is not None
"""Whether JAX is installed (found without importing it)."""

EXTRA = "jax"
FRAMEWORK_ARRAYS = True
"""With ``as_numpy=False`` derivative functions take and return ``jax.Array``s."""
PACK_LIMIT = 4096
"""Results with at most this many elements in all leave the compiled program as one
flat array (one host conversion per call); larger ones are returned separately, so
large gradients are not copied into a joint buffer."""
_FLOAT64 = np.dtype(np.float64)
_X64_DTYPES = frozenset(
    np.dtype(t) for t in (np.float64, np.int64, np.uint64, np.complex128)
)


def _jax() -> ModuleType:
    import jax

    return jax


# ---------------------------------------------------------------------------------
# The NumPy boundary for JAX functions


def _needs_x64(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    for arg in (*args, *kwargs.values()):
        if getattr(arg, "dtype", None) in _X64_DTYPES:
            return True
    return False


def _x64_scope(enabled: bool) -> contextlib.AbstractContextManager[Any]:
    if not enabled:
        return contextlib.nullcontext()
    jax = _jax()
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64  # type: ignore[attr-defined] # older JAX

    return enable_x64()


_APPLY: list[Callable[..., Any]] = []


def _apply_compiled(closure: Any, arg: Any) -> Any:
    """Call a pytree closure through one shared ``jax.jit`` (one compile per shape)."""
    if not _APPLY:
        _APPLY.append(_jax().jit(lambda c, v: c(v)))
    return _APPLY[0](closure, arg)


class _NumpyClosure:
    """A JAX closure that takes NumPy arrays and returns NumPy arrays."""

    __slots__ = ("_closure", "_compiled", "_x64")

    def __init__(self, closure: Callable[..., Any], x64: bool, compiled: bool):
        self._closure = closure
        self._x64 = x64
        self._compiled = compiled

    def __call__(self, arg: Any) -> Any:
        with _x64_scope(self._x64):
            if self._compiled:
                out = _apply_compiled(self._closure, arg)
            else:
                out = self._closure(arg)
        return _to_numpy(out, self._x64, self._compiled)


def _to_numpy(value: Any, x64: bool, compiled: bool) -> Any:
    if isinstance(value, tuple):
        return tuple(_to_numpy(v, x64, compiled) for v in value)
    if callable(value):
        return _NumpyClosure(value, x64, compiled)
    if hasattr(value, "__jax_array__") or type(value).__module__.startswith("jax"):
        return np.asarray(value)
    return value


class _NumpyFunction:
    """Calls a JAX function (optionally JIT-compiled) and returns NumPy arrays."""

    __slots__ = ("__name__", "__qualname__", "__wrapped__", "_compiled", "_function")

    def __init__(self, function: Callable[..., Any], compiled: bool):
        self._function = function
        self._compiled = compiled
        self.__wrapped__ = function
        self.__name__ = getattr(function, "__name__", type(function).__name__)
        self.__qualname__ = getattr(function, "__qualname__", self.__name__)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        x64 = _needs_x64(args, kwargs)
        with _x64_scope(x64):
            out = self._function(*args, **kwargs)
        return _to_numpy(out, x64, self._compiled)

    def __repr__(self) -> str:
        kind = "jit-compiled " if self._compiled else ""
        return f"<{kind}JAX function {self.__qualname__} returning NumPy arrays>"


def return_numpy_arrays(function: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a function returning JAX arrays so that it returns NumPy arrays.

    Calls with 64-bit NumPy arguments run with ``jax.enable_x64(True)``, so float64
    stays float64 whatever the global ``jax_enable_x64`` flag says (the flag itself is
    left unchanged).

    Args:
        function: Function returning a JAX array, a callable returning JAX arrays, or
            a tuple of these.

    Returns:
        Function with the same arguments whose JAX array results are NumPy arrays and
        whose returned callables also return NumPy arrays.
    """
    return _NumpyFunction(function, compiled=False)


def jit_and_return_numpy_arrays(
    function: Callable[..., Any], **jit_kwargs: Any
) -> Callable[..., Any]:
    """JIT-compile a JAX function and make it return NumPy arrays.

    Product closures it returns (pytrees such as :class:`jax.tree_util.Partial`) are
    called through a compiled function too, never op by op.

    Args:
        function: Function returning JAX arrays, pytree closures or tuples of these.
        **jit_kwargs: Keyword arguments passed on to :func:`jax.jit` (for example
            ``static_argnums`` or ``donate_argnums``).

    Returns:
        Compiled function returning NumPy arrays, as :func:`return_numpy_arrays`.
    """
    return _NumpyFunction(_jax().jit(function, **jit_kwargs), compiled=True)


# ---------------------------------------------------------------------------------
# Operators


def _pull_first(pullback: Callable[..., Any], cotangent: Any) -> Any:
    return pullback(cotangent)[0]


def _closure(pullback: Callable[..., Any]) -> Any:
    """A pytree closure ``v -> pullback(v)[0]`` that can leave a jitted function."""
    return _jax().tree_util.Partial(_pull_first, pullback)


def _grad_and_value(func: Callable[..., Any], op_name: str) -> Callable[..., Any]:
    jax = _jax()

    def grad_and_value_func(x: Any) -> tuple[Any, Any]:
        value, pullback = jax.vjp(func, x)
        require_scalar(jax.numpy.shape(value), op_name)
        (grad,) = pullback(jax.numpy.ones_like(value))
        return grad, value

    return grad_and_value_func


def _hessian_grad_and_value(
    func: Callable[..., Any], op_name: str
) -> Callable[..., Any]:
    jax = _jax()
    grad_and_value_func = _grad_and_value(func, op_name)

    def grad_with_aux(x: Any) -> tuple[Any, tuple[Any, Any]]:
        grad, value = grad_and_value_func(x)
        return grad, (grad, value)

    def hessian_grad_and_value_func(x: Any) -> tuple[Any, Any, Any]:
        # Forward-over-reverse: one JVP of the gradient per input direction.
        hessian, (grad, value) = jax.jacfwd(grad_with_aux, has_aux=True)(x)
        return hessian, grad, value

    return hessian_grad_and_value_func


def grad_and_value(func: Callable[..., Any]) -> Callable[..., Any]:
    """Make a function returning the gradient and value of a scalar function.

    Args:
        func: Scalar-valued function of one JAX array of shape ``S``.

    Returns:
        Function ``x -> (grad, value)`` with ``grad`` of shape ``S``:
        ``grad[k] = ∂f/∂x[k]``.
    """
    return _grad_and_value(func, "grad_and_value")


def vjp_and_value(func: Callable[..., Any]) -> Callable[..., Any]:
    """Make a function returning the vector-Jacobian product and value of a function.

    ``vjp(v) = v @ j`` contracting all of ``F``, i.e.
    ``vjp(v)[k] = Σ_i v[i] ∂f[i]/∂x[k]``.

    Args:
        func: Function of one JAX array of shape ``S`` returning shape ``F``.

    Returns:
        Function ``x -> (vjp, value)``; ``vjp`` maps shape ``F`` to shape ``S``.
    """
    jax = _jax()

    def vjp_and_value_func(x: Any) -> tuple[Any, Any]:
        value, pullback = jax.vjp(func, x)
        return _closure(pullback), value

    return vjp_and_value_func


def hessian_grad_and_value(func: Callable[..., Any]) -> Callable[..., Any]:
    """Make a function returning the Hessian, gradient and value of a scalar function.

    ``hessian[j, k] = ∂²f/(∂x[j] ∂x[k])``, computed forward-over-reverse.

    Args:
        func: Scalar-valued function of one JAX array of shape ``S``.

    Returns:
        Function ``x -> (hessian, grad, value)``; ``hessian`` has shape ``S + S``.
    """
    return _hessian_grad_and_value(func, "hessian_grad_and_value")


def mtp_hessian_grad_and_value(func: Callable[..., Any]) -> Callable[..., Any]:
    """Make a function returning the MTP, Hessian, gradient and value.

    The matrix-Tressian product is ``mtp(m) = sum(m[None, :, :] * t, axis=(-1, -2))``,
    i.e. ``mtp(m)[i] = Σ_jk m[j, k] ∂³f/(∂x[i] ∂x[j] ∂x[k])``; it is the VJP of the
    Hessian pass, which it reuses.

    Args:
        func: Scalar-valued function of one JAX array of shape ``S``.

    Returns:
        Function ``x -> (mtp, hessian, grad, value)``; ``mtp`` maps shape ``S + S``
        to shape ``S``.
    """
    jax = _jax()
    hessian_func = _hessian_grad_and_value(func, "mtp_hessian_grad_and_value")

    def hessian_with_aux(x: Any) -> tuple[Any, tuple[Any, Any]]:
        hessian, grad, value = hessian_func(x)
        return hessian, (grad, value)

    def mtp_hessian_grad_and_value_func(x: Any) -> tuple[Any, Any, Any, Any]:
        hessian, pullback, (grad, value) = jax.vjp(hessian_with_aux, x, has_aux=True)
        return _closure(pullback), hessian, grad, value

    return mtp_hessian_grad_and_value_func


def jacobian_and_value(
    func: Callable[..., Any], mode: str = "auto"
) -> Callable[..., Any]:
    """Make a function returning the Jacobian and value of a function.

    ``jacobian[i, k] = ∂f[i]/∂x[k]`` (for N-d shapes, indices flatten in C order).

    Args:
        func: Function of one JAX array of shape ``S`` returning shape ``F``.
        mode: ``"forward"`` (one JVP per input), ``"reverse"`` (one VJP per output)
            or ``"auto"`` (default): forward when outputs outnumber inputs.

    Returns:
        Function ``x -> (jacobian, value)``; ``jacobian`` has shape ``F + S``.
    """
    jax = _jax()
    check_jacobian_mode(mode)

    def jacobian_and_value_func(x: Any) -> tuple[Any, Any]:
        jnp = jax.numpy
        n_in = math.prod(x.shape)
        out_shape = jax.eval_shape(func, x).shape
        n_out = math.prod(out_shape)
        forward = mode == "forward" or (mode == "auto" and n_out > n_in)
        if forward:
            basis = jnp.eye(n_in, dtype=x.dtype).reshape((n_in, *x.shape))
            value, columns = jax.vmap(
                lambda t: jax.jvp(func, (x,), (t,)), out_axes=(None, -1)
            )(basis)
            return columns.reshape(out_shape + x.shape), value
        value, pullback = jax.vjp(func, x)
        basis = jnp.eye(n_out, dtype=value.dtype).reshape((n_out, *out_shape))
        (rows,) = jax.vmap(pullback)(basis)
        return rows.reshape(out_shape + x.shape), value

    return jacobian_and_value_func


def mhp_jacobian_and_value(
    func: Callable[..., Any], mode: str = "auto"
) -> Callable[..., Any]:
    """Make a function returning the MHP, Jacobian and value of a function.

    The matrix-Hessian product is ``mhp(m) = sum(m[:, :, None] * h, axis=(0, 1))``,
    i.e. ``mhp(m)[k] = Σ_ij m[i, j] ∂²f[i]/(∂x[j] ∂x[k])``; it is the VJP of the
    Jacobian pass.

    Args:
        func: Function of one JAX array of shape ``S`` returning shape ``F``.
        mode: Jacobian mode, as for :func:`jacobian_and_value`.

    Returns:
        Function ``x -> (mhp, jacobian, value)``; ``mhp`` maps shape ``F + S`` to
        shape ``S``.
    """
    jax = _jax()
    jacobian_func = jacobian_and_value(func, mode)

    def mhp_jacobian_and_value_func(x: Any) -> tuple[Any, Any, Any]:
        jacobian, pullback, value = jax.vjp(jacobian_func, x, has_aux=True)
        return _closure(pullback), jacobian, value

    return mhp_jacobian_and_value_func


check_function = mode_option_checker("jax")
"""Build-time check of the options: ``mode`` for Jacobians, nothing else."""


# ---------------------------------------------------------------------------------
# The lean per-call path used by diffops' own derivative functions


def make_caller(
    func: Callable[..., Any],
    op_name: str,
    function_wrapper: Callable[..., Any] | None,
    as_numpy: bool = True,
    **options: Any,
) -> Callable[[np.ndarray], tuple[Any, ...]]:
    """Build the per-call function of a diffops derivative function on JAX.

    The operator is compiled with its outputs cast to the input's dtype inside the
    compiled program, so each call only enters the float64 scope (for float64
    input), runs the compiled program and converts the outputs to NumPy.

    Args:
        func: The user's function, written with ``jax.numpy``.
        op_name: Operator name, one of ``DIFF_OPS``.
        function_wrapper: The backend's wrapper; JIT compilation is used when it is
            :func:`jit_and_return_numpy_arrays` (backend ``jax``).
        as_numpy: Whether to return NumPy arrays (default) or JAX arrays, left on
            their device.
        **options: Options for the operator (``mode`` for Jacobians).

    Returns:
        Function of a float32/float64 NumPy array returning the operator's tuple at
        the NumPy boundary.
    """
    from diffops.boundary import ProductClosure, unaliased
    from diffops.operators import OPERATORS

    jax = _jax()
    op = OPERATORS[op_name]
    raw = globals()[op_name](func, **options)
    compiled = function_wrapper is jit_and_return_numpy_arrays

    # Small results leave the compiled program packed into one flat array: one
    # device-to-host conversion per call instead of one per output (each costs about
    # as much as a small program's dispatch). Views of that array are the outputs.
    pack = compiled and as_numpy
    layouts: dict[tuple[Any, ...], tuple[tuple[int, ...], ...]] = {}
    unpackers: dict[tuple[Any, ...], Callable[[np.ndarray], list[Any]]] = {}
    first = 1 if op.closure else 0

    def cast_outputs(x: Any) -> tuple[Any, ...]:
        jnp = jax.numpy
        out = raw(x)
        cast = [o if callable(o) else jnp.asarray(o, dtype=x.dtype) for o in out]
        arrays = cast[first:]
        if not pack or sum(a.size for a in arrays) > PACK_LIMIT:
            return tuple(cast)
        # Runs at trace time, once per input shape and dtype.
        layouts[(x.shape, np.dtype(x.dtype))] = tuple(a.shape for a in arrays)
        flat = jnp.concatenate([jnp.ravel(a) for a in arrays])
        return (*cast[:first], flat)

    def unpacker(x: np.ndarray) -> Callable[[np.ndarray], list[Any]] | None:
        key = (x.shape, x.dtype)
        unpack = unpackers.get(key)
        if unpack is None and key in layouts:
            unpack = unpackers[key] = _unpacker(layouts[key])
        return unpack

    program = jax.jit(cast_outputs) if compiled else cast_outputs
    enable_x64 = jax.enable_x64 if hasattr(jax, "enable_x64") else _x64_scope
    asarray = np.asarray
    config = jax.config
    scalar_value = op.scalar_only
    if not as_numpy:
        return _framework_caller(program, op, compiled)

    if op.closure is None:

        def call(x: np.ndarray) -> tuple[Any, ...]:
            # Enter the float64 scope only when the global flag does not already
            # give float64 (reading the flag costs a sixth of entering the scope).
            if x.dtype is _FLOAT64 and not config.jax_enable_x64:
                with enable_x64(True):
                    out = program(x)
            else:
                out = program(x)
            unpack = unpacker(x)
            if unpack is not None:
                return tuple(unpack(asarray(out[0])))
            results = [asarray(o) for o in out]
            if not compiled:  # eager JAX may return a view of a NumPy input
                results = [unaliased(r, x) for r in results]
            if x.ndim and scalar_value:
                results[-1] = results[-1][()]  # only the value is 0-d
            elif results[-1].ndim == 0:  # 0-d results are NumPy scalars
                results = [r if r.ndim else r[()] for r in results]
            return tuple(results)

        return call

    name = op.closure

    def call_with_closure(x: np.ndarray) -> tuple[Any, ...]:
        x64 = x.dtype is _FLOAT64
        if x64 and not config.jax_enable_x64:
            with enable_x64(True):
                closure, *arrays = program(x)
        else:
            closure, *arrays = program(x)
        unpack = unpacker(x)
        if unpack is not None:
            results = unpack(asarray(arrays[0]))
        else:
            results = [unaliased(_numpy(o), x) for o in arrays]
        arg_shape = op.closure_arg_shape(x.shape, np.shape(results[-1]))
        product = ProductClosure(
            _NumpyClosure(closure, x64, compiled), name, arg_shape, x.shape, x.dtype
        )
        return (product, *results)

    return call_with_closure


def _unpacker(shapes: tuple[tuple[int, ...], ...]) -> Callable[[np.ndarray], list[Any]]:
    """Split a flat array into views of the given shapes (0-d: NumPy scalars)."""
    pieces = []
    start = 0
    for shape in shapes:
        stop = start + math.prod(shape)
        pieces.append((start, stop, shape, len(shape)))
        start = stop

    def unpack(flat: np.ndarray) -> list[Any]:
        return [
            flat[start]
            if ndim == 0
            else flat[start:stop]
            if ndim == 1
            else flat[start:stop].reshape(shape)
            for start, stop, shape, ndim in pieces
        ]

    return unpack


def _framework_caller(
    program: Callable[..., Any], op: Any, compiled: bool
) -> Callable[[Any], tuple[Any, ...]]:
    """Per-call function that keeps JAX arrays (``as_numpy=False``)."""

    def call(x: Any) -> tuple[Any, ...]:
        x = _float_array(x)
        x64 = x.dtype.itemsize == 8
        with _x64_scope(x64):
            out = program(x)
        if op.closure is None:
            return tuple(out)
        closure, *arrays = out
        arg_shape = op.closure_arg_shape(tuple(x.shape), tuple(arrays[-1].shape))
        product = _JaxArrayClosure(closure, op.closure, arg_shape, x64, compiled)
        return (product, *arrays)

    return call


def _float_array(x: Any) -> Any:
    """A JAX array input, checked like the NumPy boundary: real, made float."""
    from diffops.errors import InputTypeError

    kind = np.dtype(x.dtype).kind
    if kind == "f":
        return x
    if kind in "biu":
        with _x64_scope(True):
            return _jax().numpy.asarray(x, dtype=np.float64)
    msg = (
        f"The input has dtype {x.dtype}; diffops differentiates real functions only. "
        f"Pass a float32 or float64 array."
    )
    raise InputTypeError(msg)


class _JaxArrayClosure:
    """A product closure that takes and returns JAX arrays (``as_numpy=False``)."""

    __slots__ = ("__name__", "_closure", "_compiled", "_x64", "arg_shape")

    def __init__(
        self,
        closure: Callable[..., Any],
        name: str,
        arg_shape: tuple[int, ...],
        x64: bool,
        compiled: bool,
    ):
        self._closure = closure
        self.__name__ = name
        self.arg_shape = arg_shape
        self._x64 = x64
        self._compiled = compiled

    def __call__(self, m: Any) -> Any:
        from diffops.errors import require_shape

        if np.dtype(getattr(m, "dtype", np.float64)).kind == "c":
            from diffops.errors import InputTypeError

            msg = f"The argument of {self.__name__} is complex; pass a real array."
            raise InputTypeError(msg)
        shape = tuple(np.shape(m))
        if shape != self.arg_shape:
            require_shape(shape, self.arg_shape, f"argument of {self.__name__}", "")
        with _x64_scope(self._x64):
            if self._compiled:
                return _apply_compiled(self._closure, m)
            return self._closure(m)


def _numpy(value: Any) -> Any:
    arr = np.asarray(value)
    return arr if arr.ndim else arr[()]


# ---------------------------------------------------------------------------------
# Errors


def explain_error(err: Exception, func: Callable[..., Any]) -> Exception | None:
    """Turn a JAX tracing error into a :class:`~diffops.errors.TracingError` + hint.

    Args:
        err: Exception raised while calling a derivative function.
        func: The user's function.

    Returns:
        The exception to raise instead, or ``None`` to re-raise ``err`` unchanged.
    """
    errors = getattr(_jax(), "errors", None)
    if errors is None:
        return None
    traced = [e for e in causes(err) if isinstance(e, errors.JAXTypeError)]
    if not traced:
        return None
    cause = traced[0]
    name = getattr(func, "__name__", "the function")
    msg = (
        f"JAX could not trace {name!r}: {type(cause).__name__}: {cause}\n"
        f"Hint: write {name!r} with jax.numpy (`import jax.numpy as jnp`) instead of "
        f"numpy, and use jnp.where / jax.lax.cond instead of Python `if` on array "
        f"values. Code that cannot be traced can use backend 'autograd'."
    )
    return TracingError(msg)
