"""Structural sparsity of JAX functions, read from their jaxprs.

:func:`jacobian_pattern` traces ``f`` to a jaxpr and propagates, through every
primitive, which input elements each element of each intermediate array can depend
on. The result depends on the program's structure only, never on values: an entry
that happens to be zero at the point traced (``x[i] * x[i + 1]`` at ``x = 0``) is
still in the pattern. :func:`hessian_pattern` is the Jacobian pattern of the
gradient's jaxpr.

Dependencies are sparse boolean matrices, one row per element of an array (C order)
and one column per element of the input. Primitives are handled in four ways:

- elementwise primitives (an explicit list): each output element depends on the
  same element of each operand (scalars broadcast);
- structural primitives (slices, reshapes, transposes, broadcasts, pads,
  concatenations, gathers and dynamic slices with constant indices, ...): the
  primitive itself is applied to arrays of element indices, which gives, for each
  output element, the operand element it came from;
- reductions, cumulative operations and ``dot_general``: an output element depends
  on the union over the elements it combines;
- calls (``jit``, ``custom_jvp_call``, ``checkpoint``, ...): their inner jaxpr is
  followed.

Any other primitive (loops, conditionals, scatters, sorts, ...) makes every output
element depend on everything its operands depend on: a pattern can be too large,
never too small.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Pattern = Any  # scipy.sparse.csr_array of 0/1, shape (elements, inputs)

ELEMENTWISE = frozenset(
    [
        "abs",
        "acos",
        "acosh",
        "add",
        "add_any",
        "and",
        "asin",
        "asinh",
        "atan",
        "atan2",
        "atanh",
        "bessel_i0e",
        "bessel_i1e",
        "cbrt",
        "ceil",
        "clamp",
        "conj",
        "convert_element_type",
        "copy",
        "copy_p",
        "cos",
        "cosh",
        "digamma",
        "div",
        "eq",
        "erf",
        "erf_inv",
        "erfc",
        "exp",
        "exp2",
        "expm1",
        "floor",
        "ge",
        "gt",
        "igamma",
        "igammac",
        "imag",
        "integer_pow",
        "is_finite",
        "le",
        "lgamma",
        "log",
        "log1p",
        "logistic",
        "lt",
        "max",
        "min",
        "mul",
        "ne",
        "neg",
        "nextafter",
        "not",
        "or",
        "polygamma",
        "pow",
        "real",
        "reduce_precision",
        "rem",
        "round",
        "rsqrt",
        "select_n",
        "sign",
        "sin",
        "sinh",
        "sqrt",
        "square",
        "sub",
        "tan",
        "tanh",
        "xor",
        "zeta",
    ]
)
"""Primitives whose output element ``i`` depends on element ``i`` of each operand."""

STRUCTURAL = frozenset(
    [
        "broadcast_in_dim",
        "concatenate",
        "dynamic_slice",
        "expand_dims",
        "gather",
        "pad",
        "reshape",
        "rev",
        "slice",
        "squeeze",
        "transpose",
    ]
)
"""Primitives that move elements around: applied to arrays of element indices."""

REDUCTIONS = frozenset(
    [
        "reduce_sum",
        "reduce_max",
        "reduce_min",
        "reduce_prod",
        "reduce_and",
        "reduce_or",
        "argmax",
        "argmin",
    ]
)

CUMULATIVE = frozenset(
    ["cumsum", "cumprod", "cummax", "cummin", "cumlogsumexp", "sort"]
)


def _sparse() -> Any:
    import scipy.sparse

    return scipy.sparse


def _empty(rows: int, n_in: int) -> Pattern:
    return _sparse().csr_array((rows, n_in), dtype=np.int8)


def _or(*patterns: Pattern) -> Pattern:
    total = patterns[0]
    for p in patterns[1:]:
        total = total + p
    total = _sparse().csr_array(total)
    total.data[:] = 1
    total.eliminate_zeros()
    return total


def _rows(pattern: Pattern, index: np.ndarray) -> Pattern:
    """Rows ``index`` of ``pattern``; ``-1`` gives an empty row."""
    index = np.asarray(index, dtype=np.int64).ravel()
    missing = index < 0
    if missing.any():
        extended = _sparse().vstack([pattern, _empty(1, pattern.shape[1])], "csr")
        index = np.where(missing, pattern.shape[0], index)
        return _sparse().csr_array(extended[index])
    return _sparse().csr_array(pattern[index])


def _grouped(pattern: Pattern, groups: np.ndarray, n_groups: int) -> Pattern:
    """Row ``g`` is the union of the rows ``e`` with ``groups[e] == g``."""
    groups = np.asarray(groups, dtype=np.int64).ravel()
    size = groups.size
    gather = _sparse().csr_array(
        (np.ones(size, dtype=np.int8), (groups, np.arange(size))),
        shape=(n_groups, size),
    )
    return _or(gather @ pattern)


def _everything(patterns: Sequence[Pattern], rows: int, n_in: int) -> Pattern:
    """Every one of ``rows`` elements depends on everything the operands depend on."""
    union = np.zeros(n_in, dtype=bool)
    for p in patterns:
        if p.nnz:
            union[p.indices] = True
    columns = np.flatnonzero(union)
    indptr = np.arange(rows + 1, dtype=np.int64) * columns.size
    indices = np.tile(columns, rows)
    data = np.ones(indices.size, dtype=np.int8)
    return _sparse().csr_array((data, indices, indptr), shape=(rows, n_in))


# ---------------------------------------------------------------------------------
# Propagation through one jaxpr


def _shape(var: Any) -> tuple[int, ...]:
    return tuple(getattr(var.aval, "shape", ()))


def _propagate(
    jaxpr: Any, inputs: Sequence[Pattern], consts: Sequence[Any], n_in: int
) -> list[Pattern]:
    from jax.extend import core as jcore  # Literal, Var

    known: dict[Any, Pattern] = {}
    constant: dict[Any, Any] = {}
    for var, pattern in zip(jaxpr.invars, inputs, strict=True):
        known[var] = pattern
    for var, value in zip(jaxpr.constvars, consts, strict=True):
        known[var] = _empty(max(1, math.prod(_shape(var))), n_in)
        constant[var] = value

    def read(atom: Any) -> Pattern:
        if isinstance(atom, jcore.Literal):
            return _empty(max(1, math.prod(np.shape(atom.val))), n_in)
        return known[atom]

    producers: dict[Any, Any] = {}

    def value_of(atom: Any) -> Any:
        """The value of a constant (gather indices, ...), evaluated when needed."""
        if isinstance(atom, jcore.Literal):
            return atom.val
        if atom not in constant and atom in producers:
            _evaluate_constant(producers.pop(atom), value_of, constant)
        return constant.get(atom)

    for eqn in jaxpr.eqns:
        operands = [read(a) for a in eqn.invars]
        out_shapes = [_shape(v) for v in eqn.outvars]
        outs = _equation(eqn, operands, out_shapes, n_in, value_of)
        for var, pattern in zip(eqn.outvars, outs, strict=True):
            known[var] = pattern
        if all(not p.nnz for p in operands):  # a constant computation
            producers.update(dict.fromkeys(eqn.outvars, eqn))
    return [read(v) for v in jaxpr.outvars]


def _evaluate_constant(
    eqn: Any, value_of: Callable[[Any], Any], constant: dict[Any, Any]
) -> None:
    """Evaluate an equation whose operands are constants."""
    values = [value_of(a) for a in eqn.invars]
    if any(v is None for v in values):
        return
    try:
        result = eqn.primitive.bind(*values, **eqn.params)
    except Exception:  # not evaluable outside a trace: leave it unknown
        return
    results = result if eqn.primitive.multiple_results else [result]
    for var, value in zip(eqn.outvars, results, strict=True):
        constant[var] = value


def _equation(
    eqn: Any,
    operands: list[Pattern],
    out_shapes: list[tuple[int, ...]],
    n_in: int,
    value_of: Callable[[Any], Any],
) -> list[Pattern]:
    name = eqn.primitive.name
    sizes = [max(1, math.prod(s)) for s in out_shapes]
    if all(not p.nnz for p in operands):
        return [_empty(size, n_in) for size in sizes]
    if name in ELEMENTWISE and len(out_shapes) == 1:
        size = sizes[0]
        parts = [
            p if p.shape[0] == size else _rows(p, np.zeros(size, dtype=np.int64))
            for p in operands
        ]
        return [_or(*parts)]
    inner = _inner_jaxpr(eqn)
    if inner is not None:
        jaxpr, consts = inner
        if len(jaxpr.invars) == len(operands):
            return _propagate(jaxpr, operands, consts, n_in)
    try:
        if name in STRUCTURAL and len(out_shapes) == 1:
            return [_structural(eqn, operands, value_of)]
        if name in REDUCTIONS and len(out_shapes) == 1:
            return [_reduction(eqn, operands[0], out_shapes[0])]
        if name in CUMULATIVE:
            return [_cumulative(eqn, operands[0])] * len(out_shapes)
        if name == "dot_general":
            return [_dot_general(eqn, operands, out_shapes[0])]
    except _Unknown:
        pass
    return [_everything(operands, size, n_in) for size in sizes]


class _Unknown(Exception):
    """A structural primitive whose index map cannot be computed (dynamic indices)."""


def _inner_jaxpr(eqn: Any) -> tuple[Any, Sequence[Any]] | None:
    """The jaxpr a call-like primitive runs, with its constants, if it has one."""
    for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        inner = eqn.params.get(key)
        if inner is None:
            continue
        if hasattr(inner, "jaxpr") and hasattr(inner, "consts"):  # ClosedJaxpr
            return inner.jaxpr, inner.consts
        if hasattr(inner, "eqns"):
            return inner, ()
    return None


def _structural(
    eqn: Any, operands: list[Pattern], value_of: Callable[[Any], Any]
) -> Pattern:
    """Apply the primitive to element indices of the operands (offset per operand)."""
    arrays = []
    offset = 0
    array_operands = []
    for atom, pattern in zip(eqn.invars, operands, strict=True):
        shape = _shape(atom) if not hasattr(atom, "val") else np.shape(atom.val)
        dtype = getattr(atom.aval, "dtype", None)
        is_index = dtype is not None and np.issubdtype(dtype, np.integer)
        if pattern.nnz or not is_index:
            # A data operand: replaced by the indices of its elements.
            size = max(1, math.prod(shape))
            arrays.append(np.arange(offset, offset + size).reshape(shape))
            array_operands.append(pattern)
            offset += size
        else:
            # An index operand (gather indices, dynamic-slice starts): its value.
            value = value_of(atom)
            if value is None:
                raise _Unknown
            arrays.append(value)
    source = _numpy_structural(eqn.primitive.name, arrays, eqn.params)
    if source is None:
        params = dict(eqn.params)
        if "fill_value" in params:  # gather out of bounds: indices stay in range
            params["fill_value"] = None
        source = np.asarray(eqn.primitive.bind(*arrays, **params))
    stacked = _sparse().vstack(array_operands, "csr")
    return _rows(stacked, source)


def _numpy_structural(
    name: str, arrays: list[Any], params: dict[str, Any]
) -> np.ndarray | None:
    """The common structural primitives on index arrays, in NumPy (no compilation).

    Returns ``None`` for the others, which are applied with JAX itself.
    """
    if any(not isinstance(a, np.ndarray) for a in arrays):
        return None
    a: np.ndarray = arrays[0]
    if name == "slice":
        strides = params.get("strides") or (1,) * a.ndim
        index = tuple(
            slice(lo, hi, st)
            for lo, hi, st in zip(
                params["start_indices"], params["limit_indices"], strides, strict=True
            )
        )
        return a[index]
    if name == "concatenate":
        return np.concatenate(arrays, axis=params["dimension"])
    if name == "reshape" and params.get("dimensions") is None:
        return a.reshape(params["new_sizes"])
    if name == "transpose":
        return np.transpose(a, params["permutation"])
    if name == "squeeze":
        return np.squeeze(a, axis=tuple(params["dimensions"]))
    if name == "expand_dims":
        return np.expand_dims(a, tuple(params["dimensions"]))
    if name == "rev":
        return np.flip(a, axis=tuple(params["dimensions"]))
    if name == "broadcast_in_dim":
        shape = tuple(params["shape"])
        placed = [1] * len(shape)
        for axis, size in zip(params["broadcast_dimensions"], a.shape, strict=True):
            placed[axis] = size
        return np.broadcast_to(a.reshape(placed), shape)
    if name == "pad":
        config = params["padding_config"]
        if all(lo >= 0 and hi >= 0 and interior == 0 for lo, hi, interior in config):
            widths = [(int(lo), int(hi)) for lo, hi, _ in config]
            return np.pad(a, widths, constant_values=int(np.asarray(arrays[1])))
    return None


def _reduction(eqn: Any, operand: Pattern, out_shape: tuple[int, ...]) -> Pattern:
    in_shape = _shape(eqn.invars[0])
    axes = tuple(eqn.params.get("axes", ()))
    out_size = max(1, math.prod(out_shape))
    groups = np.arange(out_size).reshape(out_shape)
    groups = np.broadcast_to(np.expand_dims(groups, axes), in_shape)
    return _grouped(operand, groups, out_size)


def _cumulative(eqn: Any, operand: Pattern) -> Pattern:
    """Every element along the axis depends on the whole fiber (a superset)."""
    shape = _shape(eqn.invars[0])
    axis = eqn.params.get("axis", eqn.params.get("dimension", 0))
    moved = np.moveaxis(np.arange(math.prod(shape)).reshape(shape), axis, -1)
    fiber = np.empty(math.prod(shape), dtype=np.int64)
    fibers = moved.reshape(-1, shape[axis])
    fiber[fibers.ravel()] = np.repeat(np.arange(fibers.shape[0]), shape[axis])
    unions = _grouped(operand, fiber, fibers.shape[0])
    return _rows(unions, fiber)


def _dot_general(
    eqn: Any, operands: list[Pattern], out_shape: tuple[int, ...]
) -> Pattern:
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    lhs_shape, rhs_shape = _shape(eqn.invars[0]), _shape(eqn.invars[1])

    def unions(pattern: Pattern, shape: tuple[int, ...], c: Any, b: Any) -> Any:
        free = [d for d in range(len(shape)) if d not in c and d not in b]
        order = [*b, *free, *c]
        n_batch = math.prod(shape[d] for d in b)
        n_free = math.prod(shape[d] for d in free)
        n_contract = math.prod(shape[d] for d in c)
        index = np.arange(max(1, math.prod(shape))).reshape(shape).transpose(order)
        groups = np.empty(index.size, dtype=np.int64)
        groups[index.reshape(n_batch * n_free, n_contract).ravel()] = np.repeat(
            np.arange(n_batch * n_free), n_contract
        )
        return _grouped(pattern, groups, n_batch * n_free), n_batch, n_free

    left, n_batch, n_left = unions(operands[0], lhs_shape, tuple(lc), tuple(lb))
    right, _, n_right = unions(operands[1], rhs_shape, tuple(rc), tuple(rb))
    batch = np.arange(n_batch)[:, None, None]
    left_rows = batch * n_left + np.arange(n_left)[None, :, None]
    right_rows = batch * n_right + np.arange(n_right)[None, None, :]
    shape = (n_batch, n_left, n_right)
    return _or(
        _rows(left, np.broadcast_to(left_rows, shape)),
        _rows(right, np.broadcast_to(right_rows, shape)),
    )


# ---------------------------------------------------------------------------------
# Public entry points


def jacobian_pattern(func: Callable[..., Any], x: Any, args: Sequence[Any]) -> Pattern:
    """The structural pattern of ``∂f(x, *args)/∂x``: shape ``(prod(F), prod(S))``.

    Args:
        func: Function written with ``jax.numpy``.
        x: A point (only its shape and dtype are used).
        args: Extra arguments (constants for the pattern).

    Returns:
        A ``scipy.sparse.csr_array`` of 0/1 entries.
    """
    import jax

    closed = jax.make_jaxpr(lambda y: func(y, *args))(x)
    n_in = max(1, math.prod(np.shape(x)))
    identity = _sparse().csr_array(
        (np.ones(n_in, dtype=np.int8), (np.arange(n_in), np.arange(n_in))),
        shape=(n_in, n_in),
    )
    (out,) = _propagate(closed.jaxpr, [identity], closed.consts, n_in)
    if math.prod(np.shape(x)) == 0:
        return _empty(out.shape[0], 0)
    return out


def hessian_pattern(func: Callable[..., Any], x: Any, args: Sequence[Any]) -> Pattern:
    """The structural pattern of the Hessian of a scalar ``f``: symmetric, ``(n, n)``.

    It is the Jacobian pattern of the gradient's jaxpr, made symmetric.
    """
    import jax

    pattern = jacobian_pattern(jax.grad(lambda y, *a: func(y, *a)), x, args)
    return _or(pattern, _sparse().csr_array(pattern.T))
