"""JAX's sparse operators: colored products and decompression in one program.

The products of a plan (:class:`diffops.sparse.Plan`) are vectorised over its seeds
(``JaxPrimitives.products``: ``jax.vmap``, in passes of 256) after one linearization
(forward, symmetric) or one VJP (reverse), and decompression is one ``take``, all inside
the operator's compiled program. An operator that returns a closure (MHP, MTP) returns
the VJP of the decompressed values, reading its dense-shaped argument at the non-zeros'
positions. A substitution plan's program returns the raveled products, gathered and
substituted after it in NumPy (:meth:`diffops.sparse.Plan.finish`: one pass of a Numba
kernel), unless it must return the finished matrix (a closure of it, or JAX arrays
out): then the gather and prefix sums are inside it. ``jax_nojit`` gathers after its
products in NumPy (``gather_after``), like the other backends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from diffops.backends import compose
from diffops.operators import OPERATORS

Function = Callable[..., Any]


SEED_BARRIER_ELEMENTS = 65_536
"""Seeds with more elements than this pass through an optimization barrier."""


def _opaque(seeds: Any) -> Any:
    """Large seeds (a constant of the program) behind an optimization barrier.

    XLA folds a constant through the function's linear parts while compiling
    (scatter-adds of constants): CUTEst's CLEUVEN3 Lagrangian (377 seeds of 1,200)
    compiled for more than 300 s, 5.8 s behind the barrier. Small seeds fold
    quickly and make a faster program (LISWET1's Jacobian, 3 seeds of 2,002: 105 µs
    per call, 144 µs behind the barrier; ``benchmarks.cutest.versus --before``).
    """
    import jax

    if seeds.size <= SEED_BARRIER_ELEMENTS:
        return seeds
    return jax.lax.optimization_barrier(seeds)  # type: ignore[no-untyped-call]


def take(values: Any, index: np.ndarray) -> Any:
    """``values[index]`` for a flat array and constant indices known to be in range.

    ``jax.lax.gather`` with the indices as they are: ``jnp.take`` adds the
    normalisation of negative indices (ops on the constant that XLA folds while
    compiling) and a bounds check per element (``mode="fill"``).
    """
    import jax

    dtype = np.int32 if values.shape[0] < 2**31 else np.int64
    return jax.lax.gather(
        values,
        np.asarray(index, dtype=dtype).reshape(-1, 1),
        jax.lax.GatherDimensionNumbers(
            offset_dims=(), collapsed_slice_dims=(0,), start_index_map=(0,)
        ),
        slice_sizes=(1,),
        indices_are_sorted=bool(np.all(np.diff(index) >= 0)),
        mode=jax.lax.GatherScatterMode.PROMISE_IN_BOUNDS,
    )


def _sparse_pull(pullback: Function, positions: Any, m: Any) -> Any:
    """A product closure of a sparse matrix: the VJP of its non-zero values."""
    import jax.numpy as jnp

    return pullback(jnp.take(jnp.ravel(m), positions))


def sparse_program(
    P: Any, op_name: str, func: Function, options: Mapping[str, Any], plan: Any
) -> Function:
    """``program(x, *args)`` returning the operator's tuple, its matrix as values.

    Args:
        P: JAX's primitives (:class:`diffops.backends.jax.JaxPrimitives`).
        op_name: The operator.
        func: The user's function.
        options: The operator's options.
        plan: The plan.

    Returns:
        The program, the matrix replaced by its non-zero values in CSR order.
    """
    import jax
    import jax.numpy as jnp

    index = np.asarray(plan.index)
    forward = np.asarray(plan.forward_seeds)
    reverse = np.asarray(plan.reverse_seeds)
    mode = str(options.get("mode", "auto"))

    def values(y: Any, args: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]]:
        """(non-zero values, lower-order outputs) at ``y``."""
        f = compose.evaluated(P, func, op_name, args)
        if plan.mode == "dense":
            if plan.kind == "hessian":
                matrix, *rest = compose.hessian(P, func, op_name, y, args)
            else:
                matrix, value, _ = compose.jacobian(P, f, y, mode, "jacobian", op_name)
                rest = [value]
            if plan.gather_after or plan.full:
                return jnp.ravel(matrix), tuple(rest)  # gathered by Plan.finish
            return take(jnp.ravel(matrix), index), tuple(rest)
        if plan.kind == "hessian":
            return _hessian_values(P, f, y, plan)
        blocks = []
        if forward.shape[0] or not reverse.shape[0]:
            value, jvp, _ = P.linearize(f, y)
            seeds = _opaque(jnp.asarray(forward, dtype=y.dtype))
            columns = P.products(jvp, seeds)
            blocks.append(jnp.ravel(columns))
        if reverse.shape[0]:
            value, pullback, _ = P.vjp(f, y)
            seeds = _opaque(jnp.asarray(reverse, dtype=value.dtype))
            rows = P.products(pullback, seeds)
            blocks.append(jnp.ravel(rows))
        products = jnp.concatenate(blocks) if len(blocks) > 1 else blocks[0]
        if plan.gather_after:
            return products, (value,)  # gathered by Plan.finish
        return take(products, index), (value,)

    if OPERATORS[op_name].closure is None:

        def program(x: Any, *args: Any) -> tuple[Any, ...]:
            data, rest = values(x, args)
            return (data, *rest)

        return program

    positions = plan.dense_positions()

    def program_with_closure(x: Any, *args: Any) -> tuple[Any, ...]:
        data, pullback, rest = jax.vjp(lambda y: values(y, args), x, has_aux=True)
        closure = jax.tree_util.Partial(  # type: ignore[no-untyped-call]
            _sparse_pull,
            jax.tree_util.Partial(  # type: ignore[no-untyped-call]
                compose.first_cotangent, pullback
            ),
            jnp.asarray(positions),
        )
        return (closure, data, *rest)

    return program_with_closure


def _hessian_values(
    P: Any, f: Function, y: Any, plan: Any
) -> tuple[Any, tuple[Any, ...]]:
    """A colored Hessian's values (or, substituted after the program, products)."""
    import jax.numpy as jnp

    def grad_with_value(z: Any) -> tuple[Any, Any]:
        value, grad = compose.value_and_grad(P, f, z)
        return grad, value

    # One linearization (gradient and value computed once), then one Hessian-vector
    # product per color, vectorised over the seeds.
    grad, hvp, value = P.linearize(grad_with_value, y, symmetric=True)
    seeds = _opaque(jnp.asarray(np.asarray(plan.forward_seeds), dtype=y.dtype))
    products = jnp.ravel(P.products(hvp, seeds))
    if plan.gather_after:
        return products, (grad, value)  # gathered by Plan.finish
    steps = plan.substitution
    data = take(products, np.asarray(plan.index))
    if steps is not None:
        data = steps.recover(data, jnp)
    return data, (grad, value)
