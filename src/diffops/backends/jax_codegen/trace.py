"""Tracing for ``jax_codegen``: an operator's program at one call signature as code.

The ``jax`` backend's operator is traced with ``jax.make_jaxpr`` (inside
``jax.enable_x64`` for float64 input, as the ``jax`` backend runs it) with its
outputs cast to the input's dtype and a closure flattened to its residual arrays;
:func:`diffops.codegen.generate` turns the program into NumPy code. For operators with
a closure, a second program applies the closure to its residuals and an argument.
Only this module imports JAX.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from diffops import codegen
from diffops.backends.jax import JAX
from diffops.backends.jax_codegen.signature import (
    Entry,
    Function,
    closure_arg_shape,
    flatten,
    unflatten,
)
from diffops.backends.support import FLOAT64
from diffops.errors import function_name
from diffops.operators import OPERATORS


def trace_entry(
    op_name: str, func: Function, options: Mapping[str, Any], x: np.ndarray, args: Any
) -> Entry:
    """Trace and generate the code of ``op_name(func)`` at ``x`` (and ``args``).

    Args:
        op_name: The operator.
        func: The user's function.
        options: The operator's options.
        x: The input (its shape and dtype matter).
        args: The extra arguments (their structure, shapes and dtypes matter).

    Returns:
        The generated code for this call signature.

    Raises:
        UnsupportedPrimitiveError: A primitive of the program has no translation.
    """
    import jax

    # The canonical dtype object: JAX.run enters 64-bit mode for FLOAT64 itself.
    dtype = FLOAT64 if x.dtype == FLOAT64 else np.dtype(x.dtype)
    leaves: list[Any] = []
    structure = flatten(args, leaves)
    raw = JAX.operator(op_name, func, **options)
    closes = OPERATORS[op_name].closure is not None
    captured: dict[str, Any] = {}

    def main(x: Any, *leaves: Any) -> list[Any]:
        out = raw(x, *unflatten(structure, list(leaves)))
        first = 1 if closes else 0
        arrays = [jax.numpy.asarray(o, dtype=x.dtype) for o in out[first:]]
        if not closes:
            return arrays
        residuals, captured["closure"] = jax.tree_util.tree_flatten(out[0])
        return [*residuals, *arrays]

    closed = JAX.run(lambda: jax.make_jaxpr(main)(x, *leaves), dtype)
    name = f"{op_name}_of_{function_name(func)}"
    n_residuals = captured["closure"].num_leaves if closes else 0
    generated = codegen.generate(closed, name, packed_outputs=n_residuals)
    leaf_dtypes = tuple(np.dtype(v.aval.dtype) for v in closed.jaxpr.invars[1:])
    if not closes:
        return Entry(generated, None, leaf_dtypes)
    treedef = captured["closure"]

    def apply(*residuals_and_v: Any) -> list[Any]:
        *residuals, v = residuals_and_v
        closure = jax.tree_util.tree_unflatten(treedef, residuals)
        return [jax.numpy.asarray(closure(v), dtype=v.dtype)]

    avals = [
        jax.ShapeDtypeStruct(a.shape, a.dtype)  # type: ignore[no-untyped-call]
        for a in closed.out_avals[:n_residuals]
    ]
    arg_shape = closure_arg_shape(op_name, x.shape, closed.out_avals[-1].shape)
    v = jax.ShapeDtypeStruct(arg_shape, dtype)  # type: ignore[no-untyped-call]
    closed_apply = JAX.run(lambda: jax.make_jaxpr(apply)(*avals, v), dtype)
    applier = codegen.generate(closed_apply, f"apply_{name}", packed_inputs=n_residuals)
    return Entry(generated, applier, leaf_dtypes)
