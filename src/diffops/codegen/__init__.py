"""Trace with JAX, run without it: JAX programs as generated NumPy source.

:func:`generate` turns a closed jaxpr (``jax.make_jaxpr`` of a derivative program:
``jax.value_and_grad``, ``jax.jacfwd(jax.grad(f))``, a VJP or linearize closure
flattened to its residuals, ``vmap`` of these) into the source of a Python module
that needs only ``numpy`` and ``math``, and loads it:

>>> import jax, jax.numpy as jnp                              # doctest: +SKIP
>>> closed = jax.make_jaxpr(jax.value_and_grad(f))(x)         # doctest: +SKIP
>>> g = generate(closed, "value_and_grad_f")                  # doctest: +SKIP
>>> value, grad = g(np.asarray(x))                            # doctest: +SKIP
>>> print(g.source)                                           # doctest: +SKIP

Small programs become straight-line scalar code (one Python float per array
element, ``math`` functions), larger ones NumPy array code; :mod:`.emit` explains the
choice. Nested calls (``jit``, ``custom_jvp_call``, ``custom_vjp_call``,
``checkpoint``, ``closed_call``) are inlined; ``cond``, ``while`` and ``scan`` are
unrolled in scalar mode when their branch or trip count is a constant and become
Python loops and branches otherwise. A primitive without a translation raises
:class:`UnsupportedPrimitiveError` when generating.

Decisions (the modules say more):

- float64 programs compute in float64 in both modes. float32 programs compute in
  float32 in array mode; scalar mode computes them in Python floats (float64) and
  rounds the outputs to float32, so they agree with JAX to float32 rounding
  (tested to 2e-6 relative) and are never less accurate.
- Scalar code folds ``0 * x`` (exact for finite ``x``); non-finite inputs, and
  anything ``math`` refuses (division by zero, ``log(0)``, overflow), run the
  array code of the same program instead, which follows IEEE like XLA.
- Integers in scalar code are Python ints (int32 wrap-around is not emulated).
- A closure's residuals can travel as one flat sequence (``packed_outputs`` /
  ``packed_inputs``) from the function computing them to the one applying it.

JAX is imported only by :func:`trace_and_generate` (and only on a cache miss);
importing this package, loading a :class:`Generated` from its pickle or from the
disk cache (:mod:`.cache`) never imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from diffops.codegen import cache as _cache
from diffops.codegen.cache import function_key, jaxpr_key
from diffops.codegen.errors import UnsupportedPrimitiveError, UnsupportedProgramError
from diffops.codegen.generated import Generated, load_function
from diffops.codegen.primitives import supported

__all__ = [
    "Generated",
    "UnsupportedPrimitiveError",
    "UnsupportedProgramError",
    "function_key",
    "generate",
    "jaxpr_key",
    "load_cached",
    "load_function",
    "supported",
    "trace_and_generate",
]


def generate(
    closed_jaxpr: Any,
    name: str = "generated",
    *,
    mode: str = "auto",
    cache: bool = True,
    packed_inputs: int = 0,
    packed_outputs: int = 0,
) -> Generated:
    """Generate and load NumPy source for a closed jaxpr.

    Args:
        closed_jaxpr: What ``jax.make_jaxpr(fun)(*args)`` returns; its inputs and
            outputs are flat lists of arrays.
        name: Name of the generated function (made into an identifier).
        mode: ``"auto"`` (scalar code for small programs, array code otherwise),
            ``"scalar"`` or ``"array"``.
        cache: Look the program up in, and store it into, the disk cache
            (:mod:`diffops.codegen.cache`).
        packed_inputs: Receive the first this many inputs as one flat sequence of
            their elements (C order, one input after the other): a tuple of Python
            numbers or a float64 array, as ``packed_outputs`` makes them.
        packed_outputs: Return the first this many outputs as one flat sequence of
            their elements (a tuple of Python numbers in scalar mode, a float64
            array in array mode). A closure's residuals are passed this way from the
            function computing them to the function applying the closure: one
            object instead of an array each.

    Returns:
        The generated function: ``g(*arrays) -> tuple of arrays`` (0-d outputs as
        NumPy scalars), with ``g.source``.

    Raises:
        UnsupportedPrimitiveError: A primitive has no NumPy translation (the message
            names it and suggests ``backend="jax"``).
        UnsupportedProgramError: Complex or other unsupported dtypes, symbolic
            shapes.
    """
    from diffops.codegen.emit import emit_module, identifier
    from diffops.codegen.ir import from_jaxpr
    from diffops.codegen.simplify import simplify

    name = identifier(name)
    variant = f"{mode}/{packed_inputs}/{packed_outputs}"
    key = jaxpr_key(closed_jaxpr, name, variant) if cache else None
    if key is not None:
        record = _cache.load(key)
        if record is not None:
            return Generated.from_record(record)
    program = from_jaxpr(closed_jaxpr)
    used = tuple(sorted({eqn.prim for eqn in program.walk()}))
    missing = [p for p in used if p not in supported()]
    if missing:
        raise UnsupportedPrimitiveError(missing, f"{name!r}")
    in_avals = tuple((v.aval.shape, v.aval.dtype.name) for v in program.inputs)
    out_avals = tuple((a.aval.shape, a.aval.dtype.name) for a in program.outputs)
    source, used_mode = emit_module(
        simplify(program),
        name,
        mode,
        packed_inputs=packed_inputs,
        packed_outputs=packed_outputs,
    )
    generated = Generated(
        source,
        name,
        used_mode,
        used,
        in_avals,
        out_avals,
        packed_inputs,
        packed_outputs,
    )
    if key is not None:
        _cache.store(key, generated.record())
    return generated


def load_cached(key: str) -> Generated | None:
    """The generated function stored under ``key`` in the disk cache, or None.

    Args:
        key: From :func:`function_key` or :func:`jaxpr_key`.

    Returns:
        The loaded function, without importing JAX.
    """
    record = _cache.load(key)
    return None if record is None else Generated.from_record(record)


def trace_and_generate(
    fun: Callable[..., Any],
    *example_args: Any,
    name: str | None = None,
    mode: str = "auto",
    cache: bool = True,
    key: str | None = None,
) -> Generated:
    """Trace ``fun`` with ``jax.make_jaxpr`` and :func:`generate` its program.

    With the cache on, a record stored under :func:`function_key` of ``fun`` and the
    arguments' shapes and dtypes (or under ``key``, if given) is loaded without
    tracing. Tracing uses JAX's current configuration: enter
    ``jax.enable_x64(True)`` to trace float64 programs.

    Args:
        fun: Function of flat arrays returning an array or a tuple of arrays
            (flatten pytrees first).
        *example_args: Arrays with the shapes and dtypes to trace at.
        name: Name of the generated function (default: ``fun``'s name).
        mode: As for :func:`generate`.
        cache: Use the disk cache.
        key: Cache key to use instead of :func:`function_key`.

    Returns:
        The generated function.
    """
    name = name or str(getattr(fun, "__name__", "generated"))
    wanted = tuple(_aval_spec(a) for a in example_args)
    if cache:
        key = key or function_key(fun, *example_args)
        found = load_cached(key)
        # A record traced with other dtypes (64-bit JAX off) is not this program.
        if found is not None and found.in_avals == wanted:
            return found
    import jax

    closed = jax.make_jaxpr(fun)(*example_args)
    generated = generate(closed, name, mode=mode, cache=cache)
    if cache and key is not None and generated.in_avals == wanted:
        _cache.store(key, generated.record())
    return generated


def _aval_spec(arg: Any) -> tuple[tuple[int, ...], str]:
    if hasattr(arg, "shape") and hasattr(arg, "dtype"):
        return tuple(arg.shape), str(arg.dtype)
    array = np.asarray(arg)
    return array.shape, str(array.dtype)
