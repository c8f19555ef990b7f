"""Call signatures of ``jax_codegen``: extra arguments flattened without JAX.

A child process that runs generated code has no JAX, so the extra arguments' pytree
structure (tuples, lists and dicts of arrays and numbers) is found here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from diffops.errors import DiffopsError
from diffops.operators import OPERATORS, shape_of

Function = Callable[..., Any]
Args = tuple[Any, ...]


class ExtraArgumentError(DiffopsError, TypeError):
    """An extra argument that generated code cannot take (not arrays or numbers)."""


_LEAF_TYPES = (np.ndarray, np.generic, float, int, bool)


def flatten(args: Any, leaves: list[Any]) -> Any:
    """The structure of ``args`` (tuples, lists, dicts of arrays); leaves appended."""
    if isinstance(args, _LEAF_TYPES):
        leaves.append(args)
        return None
    if type(args) in (tuple, list):
        return (type(args), tuple(flatten(a, leaves) for a in args))
    if type(args) is dict:
        keys = tuple(sorted(args))
        return (dict, keys, tuple(flatten(args[k], leaves) for k in keys))
    if hasattr(args, "__array__") and hasattr(args, "dtype"):  # e.g. a JAX array
        leaves.append(np.asarray(args))
        return None
    msg = (
        f"The jax_codegen backend passes extra arguments to generated code as arrays "
        f"(NumPy arrays, numbers, and tuples, lists and dicts of them), not "
        f"{type(args).__name__}. Convert it, or use backend='jax'."
    )
    raise ExtraArgumentError(msg)


def unflatten(structure: Any, leaves: list[Any]) -> Any:
    """Inverse of :func:`flatten` (consumes ``leaves`` from the front)."""
    if structure is None:
        return leaves.pop(0)
    kind = structure[0]
    if kind is dict:
        return {k: unflatten(s, leaves) for k, s in zip(*structure[1:], strict=True)}
    return kind(unflatten(s, leaves) for s in structure[1])


def leaf_key(leaf: Any) -> Any:
    """What of an extra argument's leaf the generated code depends on."""
    if isinstance(leaf, np.ndarray | np.generic):
        return (leaf.shape, leaf.dtype.str)
    return type(leaf)  # a Python number: weakly typed, as JAX traces it


class Entry(NamedTuple):
    """The generated code of one call signature.

    Attributes:
        main: ``(x, *leaves) -> (residuals?, *arrays)``; the closure's residuals, if
            any, leave packed as one flat sequence.
        apply: ``(residuals?, v) -> (product,)`` for operators with a closure.
        leaf_dtypes: The dtype each extra-argument leaf is converted to.
    """

    main: Any
    apply: Any
    leaf_dtypes: tuple[np.dtype, ...]


def closure_arg_shape(op_name: str, x_shape: tuple[int, ...], value_shape: Any) -> Any:
    """The shape of the closure's argument for an input and value shape."""
    spec = OPERATORS[op_name].closure
    assert spec is not None
    return shape_of(spec.arg, x_shape, tuple(value_shape))
