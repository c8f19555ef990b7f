"""JAX backend: the operators for functions written with ``jax.numpy``.

JAX is imported on first use, never at ``import diffops``. The operators here are
framework-level: they take and return JAX arrays, compose with other JAX transforms,
and return product closures as :class:`jax.tree_util.Partial` pytrees, so that they
can leave a ``jax.jit``-compiled function. Two backends use them: ``jax`` compiles
each operator with ``jax.jit`` (closures too), ``jax_nojit`` runs it op by op.

float64 inputs are computed in float64 without touching the user's global
``jax_enable_x64`` flag: :meth:`JaxBackend.run` enters ``jax.enable_x64(True)`` for
that call only (and skips it when the flag already gives float64).

How the derivatives are computed: gradients are one VJP; Hessians are
forward-over-reverse (``jacfwd`` of the gradient, carrying gradient and value as
auxiliary outputs); the MTP is the VJP of the Hessian pass and the MHP the VJP of the
Jacobian pass, so they reuse it. Jacobians use forward mode (one JVP per input,
vmapped) when the output has more elements than the input, reverse mode otherwise.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
from collections.abc import Callable, Mapping
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np

from diffops.backends.protocol import (
    _FORKED_AFTER,
    JACOBIAN_OPTIONS,
    Backend,
    InAxes,
    Options,
    check_jacobian_mode,
    example_namespace,
    jacobian_mode,
    require_not_forked,
    split_highest,
)
from diffops.boundary import FLOAT64, NumpyFunction, check_value, require_fits
from diffops.errors import causes, tracing_error
from diffops.operators import OPERATORS

Function = Callable[..., Any]

JAX_AVAILABLE: bool = importlib.util.find_spec("jax") is not None
"""Whether jax is installed (found without importing it), as Mici names it."""

_JAX: ModuleType | None = None
_CONFIG: Any = None
_ENABLE_X64: Callable[[bool], contextlib.AbstractContextManager[Any]] | None = None


def _jax() -> ModuleType:
    global _JAX, _CONFIG, _ENABLE_X64
    if _JAX is None:
        import jax

        _CONFIG = jax.config
        if hasattr(jax, "enable_x64"):
            _ENABLE_X64 = jax.enable_x64
        else:  # older JAX
            from jax.experimental import (  # type: ignore[attr-defined]
                enable_x64 as _old_enable_x64,
            )

            _ENABLE_X64 = lambda on: _old_enable_x64(on)  # noqa: E731
        _JAX = jax
    return _JAX


def _apply_partial(closure: Function, arg: Any) -> Any:
    return closure(arg)


class _BatchedProgram:
    """A vmapped operator whose closure, if any, is applied by a vmapped call.

    Each batched program compiles its own closure application, so the compiled code
    is freed with the program.
    """

    __slots__ = ("apply", "program")

    def __init__(self, program: Function, *, jit: bool):
        self.program = program
        jax = _jax()
        apply = jax.vmap(lambda c, v: c(v))
        self.apply = jax.jit(apply) if jit else apply

    def __call__(self, *args: Any) -> Any:
        out = self.program(*args)
        first = out[0]
        if isinstance(first, _jax().tree_util.Partial):
            return (_BatchedPartial(first, self.apply), *out[1:])
        return out


class _BatchedPartial:
    """A batched pytree closure: applied point by point with one vmapped call."""

    __slots__ = ("apply", "closure")

    def __init__(self, closure: Any, apply: Function):
        self.closure = closure
        self.apply = apply

    def __call__(self, arg: Any) -> Any:
        return self.apply(self.closure, arg)


# ---------------------------------------------------------------------------------
# Building blocks


def _evaluated(func: Function, op_name: str) -> Function:
    """``func``, checked at trace time to return an array (0-d for scalar ops)."""
    jax = _jax()
    op = OPERATORS[op_name]

    def checked(x: Any, *args: Any) -> Any:
        value = func(x, *args)
        array = isinstance(value, jax.Array)
        check_value(
            value,
            op,
            func,
            jax.numpy.shape(value) if array else None,
            complex_=array and jax.numpy.iscomplexobj(value),
        )
        return value

    return checked


def _sparse_pull(pullback: Function, positions: Any, m: Any) -> Any:
    """A product closure of a sparse matrix: the VJP of its non-zero values.

    The cotangent ``m`` is shaped like the dense matrix and read at their positions.
    """
    return pullback(_jax().numpy.take(_jax().numpy.ravel(m), positions))[0]


def _pull_first(pullback: Function, cotangent: Any) -> Any:
    return pullback(cotangent)[0]


def _closure(pullback: Function) -> Any:
    """A pytree closure ``v -> pullback(v)[0]`` that can leave a jitted function."""
    return _jax().tree_util.Partial(_pull_first, pullback)


def _grad_and_value(func: Function, op_name: str) -> Function:
    jax = _jax()
    f = _evaluated(func, op_name)

    def grad_and_value_func(x: Any, *args: Any) -> tuple[Any, Any]:
        value, pullback = jax.vjp(lambda y: f(y, *args), x)
        (grad,) = pullback(jax.numpy.ones_like(value))
        return grad, value

    return grad_and_value_func


def _hessian_grad_and_value(func: Function, op_name: str) -> Function:
    jax = _jax()
    grad_and_value_func = _grad_and_value(func, op_name)

    def hessian_grad_and_value_func(x: Any, *args: Any) -> tuple[Any, Any, Any]:
        def grad_with_aux(y: Any) -> tuple[Any, tuple[Any, Any]]:
            grad, value = grad_and_value_func(y, *args)
            return grad, (grad, value)

        require_fits("hessian", x.shape * 2, x.dtype, op_name)
        # Forward-over-reverse: one JVP of the gradient per input direction.
        hessian, (grad, value) = jax.jacfwd(grad_with_aux, has_aux=True)(x)
        return hessian, grad, value

    return hessian_grad_and_value_func


def _jacobian_and_value(func: Function, op_name: str, mode: str) -> Function:
    jax = _jax()
    f = _evaluated(func, op_name)

    def jacobian_and_value_func(x: Any, *args: Any) -> tuple[Any, Any]:
        jnp = jax.numpy

        def g(y: Any) -> Any:
            return f(y, *args)

        out_shape = jax.eval_shape(g, x).shape
        require_fits("jacobian", out_shape + x.shape, x.dtype, op_name)
        n_in, n_out = math.prod(x.shape), math.prod(out_shape)
        if jacobian_mode(mode, n_in, n_out) == "forward":
            basis = jnp.eye(n_in, dtype=x.dtype).reshape((n_in, *x.shape))
            value, columns = jax.vmap(
                lambda t: jax.jvp(g, (x,), (t,)), out_axes=(None, -1)
            )(basis)
            return columns.reshape(out_shape + x.shape), value
        value, pullback = jax.vjp(g, x)
        basis = jnp.eye(n_out, dtype=value.dtype).reshape((n_out, *out_shape))
        (rows,) = jax.vmap(pullback)(basis)
        return rows.reshape(out_shape + x.shape), value

    return jacobian_and_value_func


# ---------------------------------------------------------------------------------
# Operators


def grad_and_value(func: Function) -> Function:
    """Make ``(x, *args) -> (grad, value)``.

    Computed by one VJP.

    Args:
        func: Scalar-valued ``func(x, *args)`` written with ``jax.numpy``.

    Returns:
        The derivative function, JAX arrays in and out (outputs and shapes:
        ``diffops.operators.OPERATORS['grad_and_value']``).
    """
    return _grad_and_value(func, "grad_and_value")


def vjp_and_value(func: Function) -> Function:
    """Make ``(x, *args) -> (vjp, value)``.

    Computed by the pullback of one VJP, as a pytree closure.

    Args:
        func: ``func(x, *args)`` written with ``jax.numpy``.

    Returns:
        The derivative function, JAX arrays in and out (outputs and shapes:
        ``diffops.operators.OPERATORS['vjp_and_value']``).
    """
    jax = _jax()
    f = _evaluated(func, "vjp_and_value")

    def vjp_and_value_func(x: Any, *args: Any) -> tuple[Any, Any]:
        value, pullback = jax.vjp(lambda y: f(y, *args), x)
        return _closure(pullback), value

    return vjp_and_value_func


def hessian_grad_and_value(func: Function) -> Function:
    """Make ``(x, *args) -> (hessian, grad, value)``.

    Computed by forward-over-reverse (``jacfwd`` of the gradient).

    Args:
        func: Scalar-valued ``func(x, *args)`` written with ``jax.numpy``.

    Returns:
        The derivative function, JAX arrays in and out (outputs and shapes:
        ``diffops.operators.OPERATORS['hessian_grad_and_value']``).
    """
    return _hessian_grad_and_value(func, "hessian_grad_and_value")


def mtp_hessian_grad_and_value(func: Function) -> Function:
    """Make ``(x, *args) -> (mtp, hessian, grad, value)``.

    Computed by the VJP of the Hessian pass, which it reuses.

    Args:
        func: Scalar-valued ``func(x, *args)`` written with ``jax.numpy``.

    Returns:
        The derivative function, JAX arrays in and out (outputs and shapes:
        ``diffops.operators.OPERATORS['mtp_hessian_grad_and_value']``).
    """
    jax = _jax()
    hessian_func = _hessian_grad_and_value(func, "mtp_hessian_grad_and_value")

    def mtp_hessian_grad_and_value_func(
        x: Any, *args: Any
    ) -> tuple[Any, Any, Any, Any]:
        hessian, pullback, (grad, value) = jax.vjp(
            split_highest(hessian_func, args), x, has_aux=True
        )
        return _closure(pullback), hessian, grad, value

    return mtp_hessian_grad_and_value_func


def jacobian_and_value(func: Function, mode: str = "auto") -> Function:
    """Make ``(x, *args) -> (jacobian, value)``.

    Computed by vmapped JVPs (forward) or VJPs (reverse), as ``mode`` says.

    Args:
        func: ``func(x, *args)`` written with ``jax.numpy``.
        mode: ``"auto"`` (default; forward when outputs outnumber inputs),
            ``"forward"`` or ``"reverse"``.

    Returns:
        The derivative function, JAX arrays in and out (outputs and shapes:
        ``diffops.operators.OPERATORS['jacobian_and_value']``).
    """
    check_jacobian_mode(mode)
    return _jacobian_and_value(func, "jacobian_and_value", mode)


def mhp_jacobian_and_value(func: Function, mode: str = "auto") -> Function:
    """Make ``(x, *args) -> (mhp, jacobian, value)``.

    Computed by the VJP of the Jacobian pass, which it reuses.

    Args:
        func: ``func(x, *args)`` written with ``jax.numpy``.
        mode: ``"auto"`` (default; forward when outputs outnumber inputs),
            ``"forward"`` or ``"reverse"``.

    Returns:
        The derivative function, JAX arrays in and out (outputs and shapes:
        ``diffops.operators.OPERATORS['mhp_jacobian_and_value']``).
    """
    jax = _jax()
    check_jacobian_mode(mode)
    jacobian_func = _jacobian_and_value(func, "mhp_jacobian_and_value", mode)

    def mhp_jacobian_and_value_func(x: Any, *args: Any) -> tuple[Any, Any, Any]:
        jacobian, pullback, value = jax.vjp(
            lambda y: jacobian_func(y, *args), x, has_aux=True
        )
        return _closure(pullback), jacobian, value

    return mhp_jacobian_and_value_func


def jvp_and_value(func: Function) -> Function:
    """Make ``(x, *args) -> (jvp, value)``.

    Computed by ``jax.linearize``: the closure applies the stored linearization, one
    forward-mode product per call.

    Args:
        func: ``func(x, *args)`` written with ``jax.numpy``.

    Returns:
        The derivative function, JAX arrays in and out (outputs and shapes:
        ``diffops.operators.OPERATORS['jvp_and_value']``).
    """
    jax = _jax()
    f = _evaluated(func, "jvp_and_value")

    def jvp_and_value_func(x: Any, *args: Any) -> tuple[Any, Any]:
        value, linear = jax.linearize(lambda y: f(y, *args), x)
        return linear, value

    return jvp_and_value_func


def hvp_grad_and_value(func: Function) -> Function:
    """Make ``(x, *args) -> (hvp, grad, value)``.

    Computed forward-over-reverse: ``jax.linearize`` of the gradient, so each ``hvp``
    call is one JVP of the gradient and the Hessian is never formed.

    Args:
        func: Scalar-valued ``func(x, *args)`` written with ``jax.numpy``.

    Returns:
        The derivative function, JAX arrays in and out (outputs and shapes:
        ``diffops.operators.OPERATORS['hvp_grad_and_value']``).
    """
    jax = _jax()
    grad_and_value_func = _grad_and_value(func, "hvp_grad_and_value")

    def hvp_grad_and_value_func(x: Any, *args: Any) -> tuple[Any, Any, Any]:
        grad, linear, value = jax.linearize(
            lambda y: grad_and_value_func(y, *args), x, has_aux=True
        )
        return linear, grad, value

    return hvp_grad_and_value_func


# ---------------------------------------------------------------------------------
# mici's function wrappers


def return_numpy_arrays(function: Function) -> Function:
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
    return NumpyFunction(JAX_NOJIT, function)


def jit_and_return_numpy_arrays(function: Function, **jit_kwargs: Any) -> Function:
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
    return NumpyFunction(JAX, function, compile=jit_kwargs)


# ---------------------------------------------------------------------------------
# The backend


class JaxBackend(Backend):
    """``jax`` (compiled with ``jax.jit``) and ``jax_nojit`` (op by op)."""

    framework = "jax"
    extra = "jax"
    options = JACOBIAN_OPTIONS
    framework_arrays = True

    def __init__(self, *, jit: bool):
        self.jit = jit
        self.name = "jax" if jit else "jax_nojit"
        # Compiled programs never return views of their input.
        self.fresh_outputs = jit
        # Small results leave the compiled program packed into one flat array: one
        # device-to-host conversion per call instead of one per output (each costs
        # about as much as a small program's dispatch). Large results are returned
        # separately, so large gradients are not copied into a joint buffer.
        self.pack_limit = 4096 if jit else 0

    def compile(self, program: Function, **options: Any) -> Function:
        """``jax.jit(program, **options)`` on ``jax``; unchanged on ``jax_nojit``."""
        return _jax().jit(program, **options) if self.jit else program

    def run(self, function: Function, dtype: np.dtype, *args: Any) -> Any:
        """Call ``function`` inside ``jax.enable_x64(True)`` for float64 input."""
        if _FORKED_AFTER:
            require_not_forked("jax")
        # Enter the float64 scope only when the global flag does not already give
        # float64 (reading the flag costs a sixth of entering the scope).
        if dtype is FLOAT64:
            if _CONFIG is None:
                _jax()
            if not _CONFIG.jax_enable_x64:
                assert _ENABLE_X64 is not None
                with _ENABLE_X64(True):
                    return function(*args)
        return function(*args)

    def closure_applier(self) -> Callable[[Function, Any], Any]:
        """A compiled function of its own applying one program's pytree closures.

        Made once per derivative program (one compile per closure shape), so the
        compiled code is freed with the program instead of accumulating in a cache
        shared by every derivative function.
        """
        if not self.jit:
            return _apply_partial
        applier: Callable[[Function, Any], Any] = _jax().jit(lambda c, v: c(v))
        return applier

    def trace(self, function: Function, *args: Any) -> Any:
        """Trace ``function`` abstractly (``jax.eval_shape``)."""
        return _jax().eval_shape(function, *args)

    def argument_signature(self, arg: Any) -> Any:
        """The pytree structure and every leaf's shape, dtype and weak type."""
        jax = _jax()
        leaves, treedef = jax.tree_util.tree_flatten(arg)
        return (
            treedef,
            *[
                (
                    type(leaf),
                    tuple(np.shape(leaf)),
                    str(getattr(leaf, "dtype", type(leaf).__name__)),
                    bool(getattr(leaf, "weak_type", False)),
                )
                for leaf in leaves
            ],
        )

    def to_numpy(self, value: Any) -> np.ndarray:
        """A JAX array as a (read-only, zero-copy) NumPy array, once it is ready.

        Waiting first turns a failed computation (e.g. out of memory) into a clean
        exception; converting its buffer directly aborts the process.
        """
        try:
            return np.asarray(value.block_until_ready())
        except AttributeError:  # not a JAX array
            return np.asarray(value)

    def vectorize(
        self, op_name: str, func: Function, options: Options, in_axes: InAxes
    ) -> Function | None:
        """``vmap`` of the operator inside the same ``jit``.

        Outputs are cast to the input's dtype; a closure becomes a batched pytree
        applied by one vmapped, compiled call.
        """
        jax = _jax()
        raw = self.operator(op_name, func, **options)
        first = 1 if OPERATORS[op_name].closure is not None else 0

        def typed(x: Any, *args: Any) -> tuple[Any, ...]:
            out = raw(x, *args)
            cast = [self.cast(o, x.dtype) for o in out[first:]]
            return (*out[:first], *cast)

        program = jax.vmap(typed, in_axes=in_axes)
        return _BatchedProgram(jax.jit(program) if self.jit else program, jit=self.jit)

    can_detect_sparsity = True

    def sparsity(
        self,
        kind: str,
        func: Function,
        x: Any,
        args: tuple[Any, ...],
        options: Mapping[str, Any],
    ) -> Any:
        """The structure read from the derivative's jaxpr.

        See :mod:`diffops.backends.jax_sparsity`. Jacobians of functions without
        forward-mode rules (``custom_vjp``) come with reverse mode only.
        """
        from diffops.backends import jax_sparsity
        from diffops.sparse import Structure

        dtype = np.dtype(x.dtype)
        if kind == "hessian":
            pattern = self.run(jax_sparsity.hessian_pattern, dtype, func, x, args)
            return Structure(pattern, ("symmetric",))
        pattern, forward = self.run(
            jax_sparsity.jacobian_structure, dtype, func, x, args
        )
        return Structure(pattern, ("forward", "reverse") if forward else ("reverse",))

    def value_shape(
        self,
        op_name: str,
        func: Function,
        x: Any,
        args: tuple[Any, ...],
        options: Mapping[str, Any],
    ) -> tuple[int, ...]:
        """Shape of the value from ``jax.eval_shape`` (nothing is computed).

        The function's result is checked as the dense operators check it.
        """
        checked = _evaluated(func, op_name)
        shape = self.run(
            lambda: _jax().eval_shape(lambda y: checked(y, *args), x).shape,
            np.dtype(x.dtype),
        )
        return tuple(shape)

    def sparse_operator(
        self, op_name: str, func: Function, options: Mapping[str, Any], plan: Any
    ) -> Function:
        """Colored products and decompression, compiled together.

        The products are ``vmap``-ed over the seeds; a closure is the VJP of the
        decompressed values.
        """
        from diffops.sparse import dense_positions

        jax = _jax()
        jnp = jax.numpy
        op = OPERATORS[op_name]
        f = _evaluated(func, op_name)
        index = np.asarray(plan.index)
        forward = np.asarray(plan.forward_seeds)
        reverse = np.asarray(plan.reverse_seeds)
        mode = str(options.get("mode", "auto"))

        def values(y: Any, args: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]]:
            """(non-zero values, lower-order outputs) at ``y``."""
            if plan.mode == "dense":
                if plan.kind == "hessian":
                    matrix, *rest = _hessian_grad_and_value(func, op_name)(y, *args)
                else:
                    matrix, *rest = _jacobian_and_value(func, op_name, mode)(y, *args)
                return jnp.take(jnp.ravel(matrix), index), tuple(rest)
            if plan.kind == "hessian":
                grad_and_value_func = _grad_and_value(func, op_name)
                # Linearize once (gradient and value computed once), then one
                # Hessian-vector product per color, vectorised over the seeds.
                grad_y, hvp, value = jax.linearize(
                    lambda z: grad_and_value_func(z, *args), y, has_aux=True
                )
                seeds = jnp.asarray(forward, dtype=y.dtype)
                products = jax.vmap(hvp)(seeds)
                return jnp.take(jnp.ravel(products), index), (grad_y, value)
            blocks = []
            if forward.shape[0] or not reverse.shape[0]:
                value, jvp = jax.linearize(lambda z: f(z, *args), y)
                columns = jax.vmap(jvp)(jnp.asarray(forward, dtype=y.dtype))
                blocks.append(jnp.ravel(columns))
            if reverse.shape[0]:
                value, pullback = jax.vjp(lambda z: f(z, *args), y)
                (rows,) = jax.vmap(pullback)(jnp.asarray(reverse, dtype=value.dtype))
                blocks.append(jnp.ravel(rows))
            products = jnp.concatenate(blocks) if len(blocks) > 1 else blocks[0]
            return jnp.take(products, index), (value,)

        if op.closure is None:

            def program(x: Any, *args: Any) -> tuple[Any, ...]:
                data, rest = values(x, args)
                return (data, *rest)

            return program

        positions = dense_positions(plan)

        def program_with_closure(x: Any, *args: Any) -> tuple[Any, ...]:
            data, pullback, rest = jax.vjp(lambda y: values(y, args), x, has_aux=True)
            closure = jax.tree_util.Partial(
                _sparse_pull, pullback, jnp.asarray(positions)
            )
            return (closure, data, *rest)

        return program_with_closure

    def cast(self, value: Any, dtype: Any) -> Any:
        """``value`` as a JAX array of ``dtype`` (inside the program)."""
        return _jax().numpy.asarray(value, dtype=dtype)

    def concat(self, arrays: list[Any]) -> Any:
        """The arrays raveled and concatenated (inside the program)."""
        jnp = _jax().numpy
        return jnp.concatenate([jnp.ravel(a) for a in arrays])

    def is_framework_array(self, value: Any) -> bool:
        """Whether ``value`` is a ``jax.Array``."""
        return _JAX is not None and isinstance(value, _JAX.Array)

    def framework_astype(self, value: Any, dtype: np.dtype) -> Any:
        """A JAX array converted to ``dtype`` (float64 kept as such)."""
        return self.run(_jax().numpy.asarray, dtype, value, dtype)

    def explain_error(self, err: Exception, func: Function) -> Exception | None:
        """A :class:`~diffops.errors.TracingError` with a hint, for tracing errors."""
        errors = getattr(_jax(), "errors", None)
        if errors is None:
            return None
        traced = [e for e in causes(err) if isinstance(e, errors.JAXTypeError)]
        if not traced:
            return None
        cause = traced[0]
        fix = (
            "with jax.numpy (`import jax.numpy as jnp`) instead of numpy, and use "
            "jnp.where / jax.lax.cond instead of Python `if` on array values."
        )
        if self.jit:
            fix += (
                " Code whose Python control flow depends on array values runs on "
                "the 'jax_nojit' backend; code JAX cannot trace at all can use "
                "'autograd'."
            )
        return tracing_error("JAX", func, f"{type(cause).__name__}: {cause}", fix)

    def namespace(self) -> SimpleNamespace:
        """The example models' operations in this framework."""
        jnp = _jax().numpy
        return example_namespace(
            jnp, stack=jnp.stack, const=lambda a, like: jnp.asarray(a, like.dtype)
        )


JAX = JaxBackend(jit=True)
"""The ``jax`` backend."""
JAX_NOJIT = JaxBackend(jit=False)
"""The ``jax_nojit`` backend."""
