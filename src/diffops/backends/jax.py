"""JAX backends: ``jax`` compiles each operator with ``jax.jit``, ``jax_nojit`` not.

Operators are composed (:mod:`diffops.backends.compose`) from ``jax.vjp``,
``jax.linearize``, ``jax.jvp`` and ``jax.vmap``; product closures are
:class:`jax.tree_util.Partial` pytrees, so they can leave a compiled program. JAX is
imported on first use. float64 inputs are computed in float64 without touching the
user's ``jax_enable_x64`` flag (:meth:`JaxBackend.run` enables it for the call only).
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

import numpy as np

from diffops.backends import compose
from diffops.backends.capabilities import (
    Args,
    Batching,
    CompiledPrograms,
    ExampleModels,
    FrameworkArrays,
    InAxes,
    SparseDerivatives,
    Structure,
)
from diffops.backends.jax_compile import jit
from diffops.backends.protocol import Backend
from diffops.backends.support import FLOAT64, FORKED_AFTER, require_not_forked
from diffops.errors import causes, tracing_error
from diffops.operators import JACOBIAN_OPTIONS, OPERATORS

CONSTANT_BASIS = 32
"""Most unit vectors a compiled dense Jacobian or Hessian takes as a program constant,
not built in it (``iota``); XLA folds constants, at a compile cost that grows fast with
n (docs/operators.md, ``benchmarks/basis_first_call.py``)."""

PRODUCTS_PER_PASS = 256
"""Most products per vectorised pass (``jax.vmap``; more: ``jax.lax.map`` over passes),
bounding the memory of large dense matrices (as torch's ``BATCH_MAX``)."""

Function = Callable[..., Any]

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


# ---------------------------------------------------------------------------------
# Primitives


def _forward(run: Callable[[], Any]) -> tuple[Any, Any, Any]:
    """``run()``, a function with a custom VJP (no forward rules) reported as such."""
    try:
        return run()  # type: ignore[no-any-return]
    except TypeError as err:
        if "custom_vjp" not in str(err):
            raise
        raise compose.ForwardModeUnavailable(str(err)) from err


class JaxPrimitives(compose.Primitives):
    """``jax.vjp``, ``jax.linearize`` and ``jax.vmap``; products are pytrees.

    ``eager``: for ``jax_nojit`` (op by op, see :meth:`output_shape`).
    """

    def __init__(self, *, eager: bool):
        self.eager = eager

    @functools.cached_property
    def xp(self) -> Any:
        """``jax.numpy``."""
        return _jax().numpy

    def basis(self, shape: tuple[int, ...], like: Any) -> Any:
        """Compiling, up to :data:`CONSTANT_BASIS` units: a program constant."""
        n = math.prod(shape)
        if self.eager or n > CONSTANT_BASIS:
            return super().basis(shape, like)
        eye = np.eye(n, dtype=np.dtype(like.dtype)).reshape((n, *shape))
        return self.xp.asarray(eye)

    def vjp(self, f: Function, x: Any) -> tuple[Any, Function, Any]:
        """``jax.vjp``; the pullback is a pytree."""
        jax = _jax()
        out, pullback, aux = jax.vjp(f, x, has_aux=True)
        return out, jax.tree_util.Partial(compose.first_cotangent, pullback), aux

    def linearize(
        self, f: Function, x: Any, *, symmetric: bool = False
    ) -> tuple[Any, Function, Any]:
        """``jax.linearize`` (forward mode)."""
        return _forward(lambda: _jax().linearize(f, x, has_aux=True))

    def jvps(
        self, f: Function, x: Any, seeds: Any, *, symmetric: bool = False
    ) -> tuple[Any, Any, Any]:
        """``jax.vmap`` of ``jax.jvp``, value unbatched (eager: 1.5 ms, not 6.4)."""
        jax = _jax()
        if seeds.shape[0] > PRODUCTS_PER_PASS:  # one linearization, then passes
            value, push, aux = self.linearize(f, x)
            return value, self.products(push, seeds), aux
        jvp = lambda t: jax.jvp(f, (x,), (t,), has_aux=True)  # noqa: E731
        return _forward(lambda: jax.vmap(jvp, out_axes=(None, 0, None))(seeds))

    def output_shape(self, f: Function, x: Any) -> tuple[int, ...] | None:
        """``jax.eval_shape``; ``None`` when tracing to compile (one trace only).

        Op by op it saves an evaluation (tall 3 -> 300 MHP: 6.3 ms, 11.3 without).
        """
        jax = _jax()
        if not self.eager and isinstance(x, jax.core.Tracer):
            return None
        return jax.eval_shape(f, x)[0].shape  # type: ignore[no-any-return]

    def pushforward(self, f: Function, x: Any, out: Any, pullback: Function) -> Any:
        """A fresh linearization (XLA shares the primal work with the VJP's)."""
        return self.linearize(f, x)[1]

    def products(self, product: Function, seeds: Any) -> Any:
        """``jax.vmap`` over the seeds, in passes of :data:`PRODUCTS_PER_PASS`."""
        jax = _jax()
        if seeds.shape[0] <= PRODUCTS_PER_PASS:
            return jax.vmap(product)(seeds)
        return jax.lax.map(product, seeds, batch_size=PRODUCTS_PER_PASS)

    def is_array(self, a: Any) -> bool:
        """Whether ``a`` is a ``jax.Array`` (tracers included)."""
        return isinstance(a, _jax().Array)


# ---------------------------------------------------------------------------------
# The backend


class JaxBackend(
    Backend,
    CompiledPrograms,
    FrameworkArrays,
    Batching,
    SparseDerivatives,
    ExampleModels,
):
    """``jax`` (compiled with ``jax.jit``) and ``jax_nojit`` (op by op)."""

    framework = "jax"
    extra = "jax"
    title = "JAX"
    options = JACOBIAN_OPTIONS
    can_detect = True

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
        # XLA's gather in the program beats NumPy's after it (docs/operators.md).
        self.gathers_in_program = jit
        self._primitives = JaxPrimitives(eager=not jit)

    def primitives(self) -> compose.Primitives:
        """:class:`JaxPrimitives`."""
        return self._primitives

    def run(self, function: Function, dtype: np.dtype, *args: Any) -> Any:
        """Call ``function`` inside ``jax.enable_x64(True)`` for float64 input."""
        if FORKED_AFTER:
            require_not_forked("jax")
        # Reading the flag costs a sixth of entering the float64 scope.
        if dtype is FLOAT64:
            if _CONFIG is None:
                _jax()
            if not _CONFIG.jax_enable_x64:
                assert _ENABLE_X64 is not None
                with _ENABLE_X64(True):
                    return function(*args)
        return function(*args)

    def to_numpy(self, value: Any) -> np.ndarray:
        """A JAX array as a (read-only, zero-copy) NumPy array, once it is ready.

        Waiting first turns a failed computation (e.g. out of memory) into a clean
        exception; converting its buffer directly aborts the process.
        """
        try:
            return np.asarray(value.block_until_ready())
        except AttributeError:  # not a JAX array
            return np.asarray(value)

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

    # -- compiled programs ---------------------------------------------------------

    def compile(self, program: Function, **options: Any) -> Function:
        """:func:`~diffops.backends.jax_compile.jit` on ``jax``; as is on nojit."""
        return jit(_jax(), program, options) if self.jit else program

    def cast(self, value: Any, dtype: Any) -> Any:
        """``value`` as a JAX array of ``dtype`` (inside the program)."""
        return _jax().numpy.asarray(value, dtype=dtype)

    def concat(self, arrays: list[Any]) -> Any:
        """The arrays raveled and concatenated (inside the program)."""
        jnp = _jax().numpy
        return jnp.concatenate([jnp.ravel(a) for a in arrays])

    def closure_applier(self) -> Callable[[Function, Any], Any]:
        """A compiled function of its own applying one program's pytree closures.

        Made once per derivative program (one compile per closure shape), so the
        compiled code is freed with the program instead of accumulating in a cache
        shared by every derivative function.
        """
        if not self.jit:
            return super().closure_applier()
        # Sized like the programs: a closure's linear part can be as large as they.
        return jit(_jax(), lambda c, v: c(v), {})

    def trace(self, function: Function, *args: Any) -> Any:
        """Trace ``function`` abstractly (``jax.eval_shape``)."""
        return _jax().eval_shape(function, *args)

    def argument_signature(self, arg: Any) -> Any:
        """The pytree structure and every leaf's shape, dtype and weak type."""
        leaves, treedef = _jax().tree_util.tree_flatten(arg)
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

    # -- framework arrays ----------------------------------------------------------

    def is_framework_array(self, value: Any) -> bool:
        """Whether ``value`` is a ``jax.Array``."""
        return _JAX is not None and isinstance(value, _JAX.Array)

    def framework_astype(self, value: Any, dtype: np.dtype) -> Any:
        """A JAX array converted to ``dtype`` (float64 kept as such)."""
        return self.run(_jax().numpy.asarray, dtype, value, dtype)

    # -- batching ------------------------------------------------------------------

    def vectorize(
        self, op_name: str, func: Function, options: Mapping[str, Any], in_axes: InAxes
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
            return (*out[:first], *[self.cast(o, x.dtype) for o in out[first:]])

        program: Function = jax.vmap(typed, in_axes=in_axes)
        apply = jax.vmap(lambda c, v: c(v))  # a batched closure, point by point
        if self.jit:
            program, apply = self.compile(program), jax.jit(apply)
        if not first:
            return program

        def batched(*args: Any) -> tuple[Any, ...]:
            closure, *arrays = program(*args)
            return (functools.partial(apply, closure), *arrays)

        return batched

    # -- sparse derivatives ----------------------------------------------------------

    def sparsity(
        self, kind: str, func: Function, x: Any, args: Args, op: str
    ) -> Structure:
        """The structure read from the derivative's jaxpr, and the value's shape.

        See :func:`diffops.backends.jax_sparsity.structure`; the function is traced
        once, with the operator's checks of its value.
        """
        from diffops.backends import jax_sparsity

        checked = compose.checked(self._primitives, func, op)
        return self.run(  # type: ignore[no-any-return]
            jax_sparsity.structure, np.dtype(x.dtype), kind, checked, x, args
        )

    def sparse_operator(
        self, op_name: str, func: Function, options: Mapping[str, Any], plan: Any
    ) -> Function:
        """Colored products and decompression compiled together (one program)."""
        from diffops.backends.jax_sparsity.operator import sparse_program

        return sparse_program(self._primitives, op_name, func, options, plan)


JAX = JaxBackend(jit=True)
"""The ``jax`` backend."""
JAX_NOJIT = JaxBackend(jit=False)
"""The ``jax_nojit`` backend."""
