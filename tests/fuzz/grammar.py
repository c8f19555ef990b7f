"""Random functions as typed expression trees, drawn by Hypothesis.

A generated function is ``f(x)`` or ``f(x, a)`` whose body is a tree of :class:`Node`.
Every node knows its output shape and a bound on the magnitude of its value when every
input element lies in ``[-XMAX, XMAX]``; a node whose bound would exceed ``BMAX`` is
wrapped in ``tanh``, so values (and with them cancellation errors) stay small by
construction. The same tree is emitted for every framework by :mod:`fuzz.emit` and
evaluated in NumPy by :mod:`fuzz.reference`.

Features (the names in :data:`FEATURES`) switch parts of the grammar on and off, so a
test can exclude a construct with a known defect (``DIFFOPS_FUZZ_EXCLUDE``) and the
report can say which constructs a failing function used. ``JAX_VARIANTS`` are other
JAX spellings of a node's meaning (``lax.scan`` for an unrolled recurrence,
``.at[].set`` for ``stack``): they change only the JAX code, so every backend must still
agree.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

XMAX = 1.2  # input elements and float data lie in [-XMAX, XMAX]
BMAX = 40.0  # a node whose value bound exceeds this is wrapped in tanh
EXP_ARG_MAX = 2.5  # exp only of things bounded by this (else of their sine)
INPUT_SHAPES: tuple[tuple[int, ...], ...] = ((), (1,), (3,), (2, 3))
VECTOR_LENGTHS = (1, 2, 3, 4)
MATRIX_DIMS = (1, 2, 3)
CONSTANTS = (0.5, -1.0, 1.5, 2.0, -0.5, 0.25, -1.5, 0.75, 1.25, -2.0)
UNARY = ("neg", "sin", "cos", "tanh", "exp", "logistic", "log1p_sq", "sqrt1p_sq")

# Constructs that only some backends' numpy modules can express; SymNum lacks them.
NOT_ON_SYMNUM = frozenset({"where", "max", "sort", "data_index", "pytree"})
# JAX spellings of a node's meaning (the other dialects keep the plain spelling).
JAX_VARIANTS = (
    "jnp_take",  # take: jnp.take(t, idx)
    "at_get_fill",  # take: t.at[idx].get(mode="fill", fill_value=0.0)
    "sort_key_val",  # take of a full permutation: lax.sort_key_val(keys, t)[1]
    "at_set",  # stack/concat: jnp.zeros(...).at[i].set(part)...
    "scan",  # recurrence: lax.scan
    "fori_loop",  # recurrence to its last value: lax.fori_loop
    "cumsum",  # running sum: jnp.cumsum
    "cond",  # where on a scalar condition: lax.cond
)
CORE = (
    "input_0d",  # x of shape () (the other input shapes are always drawn)
    "unary",
    "power",
    "arith",
    "safe_div",
    "sum",
    "prod",
    "element",
    "slice",
    "reversed",
    "take",
    "concat",
    "stack",
    "matmul",
    "transpose",
    "reshape",
    "recurrence",
    "where",
    "max",
    "sort",
)
DATA = ("data_array", "pytree", "data_index", "shape_change")
FEATURES: tuple[str, ...] = CORE + JAX_VARIANTS + DATA

GROUPS: dict[str, frozenset[str]] = {
    "core": frozenset(CORE),
    "jax_variants": frozenset(CORE + JAX_VARIANTS),
    "data": frozenset(CORE + DATA),
}
"""Feature groups, one per test parameter: the plain grammar, with JAX's other
spellings, and with extra arguments (arrays, pytrees, index arrays, leaf shapes that
change between calls)."""


@dataclass(frozen=True)
class Node:
    """One expression: an operation, its operands and static parameters.

    Attributes:
        op: Operation name (see :mod:`fuzz.reference` for each one's meaning).
        shape: Shape of the value.
        args: Operand nodes.
        params: Static parameters (axes, index arrays, constant values, variants).
        bound: Bound on ``|value|`` for inputs in ``[-XMAX, XMAX]``.
    """

    op: str
    shape: tuple[int, ...]
    args: tuple[Node, ...] = ()
    params: tuple[Any, ...] = ()
    bound: float = 1.0

    def walk(self):
        """Every node of the tree, children first."""
        for arg in self.args:
            yield from arg.walk()
        yield self


@dataclass
class DataSpec:
    """The extra argument ``a``: one array, or a tuple, list or dict of leaves.

    Leaves are numbered in the order the generator asked for them; ``path`` maps a
    leaf to its place in the container. Index leaves hold integers below ``bound``.
    The ``head`` leaf (shape-change feature) has a row count that differs between
    the two calls of each derivative function.
    """

    kind: str  # "array", "tuple", "list", "dict"
    float_shapes: list[tuple[int, ...]] = field(default_factory=list)
    index_leaves: list[tuple[tuple[int, ...], int]] = field(default_factory=list)
    head_rows: tuple[int, int] | None = None  # rows of the head leaf in calls 1, 2
    head_cols: int = 0

    def path(self, kind: str, number: int) -> tuple[Any, ...]:
        """Place of float leaf / index leaf / head ``number`` in ``a``."""
        if self.kind == "array":
            return ()
        if self.kind == "dict":
            key = {"float": "w", "index": "idx", "head": "head"}[kind]
            return (f"{key}{number}",) if kind != "index" else ("idx", number)
        n_float = len(self.float_shapes)
        if kind == "float":
            return (number,)
        if kind == "index":
            return (n_float, number)  # a nested list/tuple of index arrays
        return (n_float + (1 if self.index_leaves else 0),)


@dataclass
class FunctionSpec:
    """A generated function: its body, input shape, extra argument and options."""

    root: Node
    in_shape: tuple[int, ...]
    data: DataSpec | None
    jacobian_mode: str
    features: frozenset[str]

    @property
    def scalar(self) -> bool:
        return self.root.shape == ()

    def used(self) -> frozenset[str]:
        """Features this function actually uses (for reports and backend choice)."""
        used = set()
        for node in self.root.walk():
            used.update(node_features(node))
        if self.in_shape == ():
            used.add("input_0d")
        if self.data is not None:
            used.add("data_array" if self.data.kind == "array" else "pytree")
            if self.data.index_leaves:
                used.add("data_index")
            if self.data.head_rows is not None:
                used.add("shape_change")
        return frozenset(used)

    def runs_on_symnum(self) -> bool:
        return not (self.used() & NOT_ON_SYMNUM)


def node_features(node: Node) -> set[str]:
    """The feature names a node exercises."""
    op = node.op
    if op in ("add", "sub", "mul"):
        return {"arith"}
    if op == "take":
        variant = node.params[2]
        return {"take"} | ({variant} if variant != "index" else set())
    if op in ("stack", "concat", "recurrence", "where"):
        variant = node.params[-1]
        return {op} | ({variant} if variant != "plain" else set())
    if op in ("x", "const", "data", "data_take", "head"):
        return set()
    return {op}


# ---------------------------------------------------------------------------------
# Construction helpers: each returns a Node with its bound.


def size(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def capped(node: Node) -> Node:
    """``node``, or ``tanh(node * BMAX / bound)`` if its bound is above ``BMAX``.

    Scaled so that ``tanh``'s argument stays within ``BMAX``: Autograd's derivatives
    of ``tanh`` (``1 / cosh(x)**2``) overflow into NaN beyond ``|x|`` of about 355
    (third order) and 710 (second), where JAX's and PyTorch's are 0.
    """
    if node.bound <= BMAX:
        return node
    scale = const((BMAX / node.bound,), ())
    scaled = Node("mul", node.shape, (node, scale), (), BMAX)
    return Node("unary", node.shape, (scaled,), ("tanh",), 1.0)


def unary(name: str, a: Node) -> Node:
    if name == "exp" and a.bound > EXP_ARG_MAX:
        a = unary("sin", a)
    b = a.bound
    bounds = {
        "neg": b,
        "sin": 1.0,
        "cos": 1.0,
        "tanh": 1.0,
        "logistic": 1.0,
        "exp": math.exp(b),
        "log1p_sq": math.log1p(b * b),
        "sqrt1p_sq": math.sqrt(1 + b * b),
    }
    return Node("unary", a.shape, (a,), (name,), bounds[name])


def broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    if a == b or b == ():
        return a
    if a == ():
        return b
    raise ValueError(f"shapes {a} and {b} do not broadcast here")


def arith(op: str, a: Node, b: Node) -> Node:
    bound = a.bound * b.bound if op == "mul" else a.bound + b.bound
    return capped(Node(op, broadcast(a.shape, b.shape), (a, b), (), bound))


def const(values: tuple[float, ...], shape: tuple[int, ...]) -> Node:
    return Node("const", shape, (), (values,), max(abs(v) for v in values))


def element(a: Node, pos: tuple[int, ...]) -> Node:
    """``a[pos]``: an element, or a row when ``pos`` indexes fewer axes."""
    return Node("element", a.shape[len(pos) :], (a,), (pos,), a.bound)


def flat(a: Node) -> Node:
    if len(a.shape) == 1:
        return a
    return Node("reshape", (size(a.shape),), (a,), (), a.bound)


def take(a: Node, idx: tuple[int, ...], idx_shape: tuple[int, ...], variant: str):
    return Node("take", idx_shape, (a,), (idx, idx_shape, variant), a.bound)


def matmul(a: Node, b: Node) -> Node:
    inner = a.shape[-1]
    shape = a.shape[:-1] + b.shape[1:]
    return capped(Node("matmul", shape, (a, b), (), inner * a.bound * b.bound))


# ---------------------------------------------------------------------------------
# The generator


@dataclass
class Context:
    """What the productions may use: the input, the features, the extra argument."""

    in_shape: tuple[int, ...]
    features: frozenset[str]
    data: DataSpec | None = None

    def on(self, feature: str) -> bool:
        return feature in self.features


def draw_constant(draw, shape: tuple[int, ...]) -> Node:
    values = tuple(draw(st.sampled_from(CONSTANTS)) for _ in range(size(shape)))
    return const(values, shape)


def draw_indices(draw, n: int, count: int) -> tuple[int, ...]:
    return tuple(draw(st.integers(0, n - 1)) for _ in range(count))


def view(draw, ctx: Context, source: Node, shape: tuple[int, ...]) -> Node:
    """A node of ``shape`` read from ``source`` (x or a data leaf) by indexing."""
    if source.shape == shape:
        return source
    if source.shape == ():
        return arith("mul", source, draw_constant(draw, shape))
    if shape == ():
        pos = tuple(draw(st.integers(0, d - 1)) for d in source.shape)
        return element(source, pos)
    flat_source = flat(source)
    n = flat_source.shape[0]
    if len(shape) == 1 and shape[0] <= n and draw(st.booleans()):
        start = draw(st.integers(0, n - shape[0]))
        return Node("slice", shape, (flat_source,), (0, start, start + shape[0], 1))
    idx = draw_indices(draw, n, size(shape))
    return take(flat_source, idx, shape, draw_take_variant(draw, ctx, idx, n))


def draw_take_variant(draw, ctx: Context, idx: tuple[int, ...], n: int) -> str:
    options = ["index"]
    options += [v for v in ("jnp_take", "at_get_fill") if ctx.on(v)]
    if ctx.on("sort_key_val") and sorted(idx) == list(range(n)):
        options.append("sort_key_val")
    return draw(st.sampled_from(options))


def x_leaf(draw, ctx: Context, shape: tuple[int, ...]) -> Node:
    x = Node("x", ctx.in_shape, (), (), XMAX)
    return view(draw, ctx, x, shape)


def data_leaf(draw, ctx: Context, shape: tuple[int, ...]) -> Node:
    """A float data leaf of ``shape`` (reusing or adding a leaf of ``ctx.data``)."""
    data = ctx.data
    assert data is not None
    if data.kind == "array":
        leaf = Node("data", data.float_shapes[0], (), (0,), XMAX)
        return view(draw, ctx, leaf, shape)
    candidates = [i for i, s in enumerate(data.float_shapes) if s == shape]
    if candidates and draw(st.booleans()):
        number = draw(st.sampled_from(candidates))
    else:
        data.float_shapes.append(shape)
        number = len(data.float_shapes) - 1
    return Node("data", shape, (), (number,), XMAX)


def operand(draw, ctx: Context, shape: tuple[int, ...], depth: int) -> Node:
    """A second operand: an expression, a constant or data, of ``shape`` or ``()``."""
    kinds = ["expr", "const", "scalar_expr", "scalar_const"]
    if ctx.data is not None:
        kinds.append("data")
    kind = draw(st.sampled_from(kinds))
    if kind == "expr":
        return draw_expr(draw, ctx, shape, depth)
    if kind == "scalar_expr":
        return draw_expr(draw, ctx, (), depth)
    if kind == "const":
        return draw_constant(draw, shape)
    if kind == "scalar_const":
        return draw_constant(draw, ())
    return data_leaf(draw, ctx, shape)


def full_operand(draw, ctx: Context, shape: tuple[int, ...], depth: int) -> Node:
    """An operand of exactly ``shape``: an expression, a constant or data."""
    kinds = ["expr", "const"] + (["data"] if ctx.data is not None else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "expr":
        return draw_expr(draw, ctx, shape, depth)
    if kind == "const":
        return draw_constant(draw, shape)
    return data_leaf(draw, ctx, shape)


def productions(ctx: Context, shape: tuple[int, ...]) -> list[str]:
    """Production names that can make a node of ``shape``, simplest first."""
    names = ["leaf"]
    # Elementwise math twice over, so that trees are not mostly reshuffled indices.
    names += [n for n in ("unary", "arith", "power", "safe_div") if ctx.on(n)] * 2
    if ctx.on("where"):
        names.append("where")
    if ctx.on("matmul"):
        names.append("matmul")
    if shape == ():
        names += [n for n in ("sum", "prod", "max", "element") if ctx.on(n)]
        if ctx.on("recurrence"):
            names.append("recurrence")
    elif len(shape) == 1:
        names += [
            n
            for n in (
                "slice",
                "reversed",
                "take",
                "concat",
                "stack",
                "sum",
                "prod",
                "max",
                "element",
                "reshape",
                "recurrence",
                "sort",
            )
            if ctx.on(n)
        ]
        if ctx.on("data_index") and ctx.data is not None and ctx.data.kind != "array":
            names.append("data_index")
    else:
        names += [
            n
            for n in ("slice", "reversed", "stack", "transpose", "reshape", "take")
            if ctx.on(n)
        ]
    return names


def draw_expr(draw, ctx: Context, shape: tuple[int, ...], depth: int) -> Node:
    """An expression of ``shape`` that depends on ``x``, at most ``depth`` deep."""
    if depth <= 0:
        return x_leaf(draw, ctx, shape)
    name = draw(st.sampled_from(productions(ctx, shape)))
    return PRODUCTIONS[name](draw, ctx, shape, depth - 1)


def p_leaf(draw, ctx, shape, depth):
    return x_leaf(draw, ctx, shape)


def p_unary(draw, ctx, shape, depth):
    return unary(draw(st.sampled_from(UNARY)), draw_expr(draw, ctx, shape, depth))


def p_power(draw, ctx, shape, depth):
    a = draw_expr(draw, ctx, shape, depth)
    k = draw(st.sampled_from((2, 3)))
    return capped(Node("power", shape, (a,), (k,), a.bound**k))


def p_arith(draw, ctx, shape, depth):
    op = draw(st.sampled_from(("add", "mul", "sub")))
    a = draw_expr(draw, ctx, shape, depth)
    b = operand(draw, ctx, shape, depth)
    if draw(st.booleans()):
        a, b = b, a
    return arith(op, a, b)


def p_safe_div(draw, ctx, shape, depth):
    """``a / (1 + b**2)``."""
    a = draw_expr(draw, ctx, shape, depth)
    b = operand(draw, ctx, shape, depth)
    return Node("safe_div", shape, (a, b), (), a.bound)


def p_where(draw, ctx, shape, depth):
    """``where(p > q, b, c)``; on JAX ``lax.cond`` when ``p`` and ``q`` are scalars."""
    scalar_condition = shape == () or draw(st.booleans())
    cond_shape = () if scalar_condition else shape
    p = draw_expr(draw, ctx, cond_shape, depth)
    q = operand(draw, ctx, cond_shape, depth)
    b = draw_expr(draw, ctx, shape, depth)
    c = draw_expr(draw, ctx, shape, depth)
    variant = "plain"
    if p.shape == q.shape == () and ctx.on("cond") and draw(st.booleans()):
        variant = "cond"
    return Node("where", shape, (p, q, b, c), (variant,), max(b.bound, c.bound))


def _reduced_shape(draw, shape: tuple[int, ...]) -> tuple[tuple[int, ...], Any]:
    """An operand shape and axis that reduce to ``shape``."""
    if shape == ():
        operand_shape = draw(st.sampled_from(((2,), (3,), (1,), (4,), (2, 2), (2, 3))))
        return operand_shape, None
    other = draw(st.sampled_from(MATRIX_DIMS))
    axis = draw(st.integers(0, 1))
    return ((other, shape[0]) if axis == 0 else (shape[0], other)), axis


def _reduction(op: str):
    def production(draw, ctx, shape, depth):
        operand_shape, axis = _reduced_shape(draw, shape)
        a = draw_expr(draw, ctx, operand_shape, depth)
        count = size(operand_shape) if axis is None else operand_shape[axis]
        bound = {"sum": count * a.bound, "prod": a.bound**count, "max": a.bound}[op]
        return capped(Node(op, shape, (a,), (axis,), bound))

    return production


def p_element(draw, ctx, shape, depth):
    source_shape = (
        draw(st.sampled_from(((2,), (3,), (2, 2))))
        if shape == ()
        else (draw(st.sampled_from(MATRIX_DIMS)), shape[0])
    )
    a = draw_expr(draw, ctx, source_shape, depth)
    if shape == ():
        pos = tuple(draw(st.integers(0, d - 1)) for d in source_shape)
        return element(a, pos)
    row = draw(st.integers(0, source_shape[0] - 1))
    if draw(st.booleans()):  # a row, or a column of the transposed shape
        return element(a, (row,))
    b = draw_expr(draw, ctx, (shape[0], source_shape[0]), depth)
    return Node("column", shape, (b,), (row,), b.bound)


def p_slice(draw, ctx, shape, depth, step_sign=1):
    """``a[start:stop:step]`` along one axis (rows or columns of a matrix)."""
    axis = 0 if len(shape) == 1 else draw(st.integers(0, 1))
    n = shape[axis]
    step = step_sign * draw(st.sampled_from((1, 1, 2)))
    extra = draw(st.integers(0, 2))
    m = abs(step) * (n - 1) + 1 + extra  # length of the sliced axis
    offset = draw(st.integers(0, extra))
    if step > 0:
        start, stop = offset, offset + abs(step) * (n - 1) + 1
    else:
        start = m - 1 - offset
        stop = start - abs(step) * (n - 1) - 1
        stop = None if stop < 0 else stop
    source_shape = list(shape)
    source_shape[axis] = m
    a = draw_expr(draw, ctx, tuple(source_shape), depth)
    return Node("slice", shape, (a,), (axis, start, stop, step), a.bound)


def p_reversed(draw, ctx, shape, depth):
    return p_slice(draw, ctx, shape, depth, step_sign=-1)


def p_take(draw, ctx, shape, depth):
    n = draw(st.sampled_from(VECTOR_LENGTHS))
    a = draw_expr(draw, ctx, (n,), depth)
    idx = draw_indices(draw, n, size(shape))
    return take(a, idx, shape, draw_take_variant(draw, ctx, idx, n))


def _jax_build_variant(draw, ctx) -> str:
    return "at_set" if ctx.on("at_set") and draw(st.booleans()) else "plain"


def p_concat(draw, ctx, shape, depth):
    n = shape[0]
    cuts = (
        sorted(set(draw(st.lists(st.integers(1, n - 1), max_size=2)))) if n > 1 else []
    )
    bounds = [0, *cuts, n]
    parts = tuple(
        draw_expr(draw, ctx, (hi - lo,), depth) for lo, hi in itertools.pairwise(bounds)
    )
    variant = _jax_build_variant(draw, ctx)
    return Node("concat", shape, parts, (variant,), max(p.bound for p in parts))


def p_stack(draw, ctx, shape, depth):
    parts = tuple(draw_expr(draw, ctx, shape[1:], depth) for _ in range(shape[0]))
    variant = _jax_build_variant(draw, ctx)
    return Node("stack", shape, parts, (variant,), max(p.bound for p in parts))


def p_matmul(draw, ctx, shape, depth):
    """``a @ b``; one operand depends on ``x``, the other may be constant or data."""
    k = draw(st.sampled_from(MATRIX_DIMS))
    if shape == ():
        left, right = (k,), (k,)
    elif len(shape) == 1:
        left, right = (
            ((shape[0], k), (k,)) if draw(st.booleans()) else ((k,), (k, shape[0]))
        )
    else:
        left, right = (shape[0], k), (k, shape[1])
    x_on_left = draw(st.booleans())
    a = (
        draw_expr(draw, ctx, left, depth)
        if x_on_left
        else full_operand(draw, ctx, left, depth)
    )
    b = (
        full_operand(draw, ctx, right, depth)
        if x_on_left
        else draw_expr(draw, ctx, right, depth)
    )
    return matmul(a, b)


def p_transpose(draw, ctx, shape, depth):
    a = draw_expr(draw, ctx, shape[::-1], depth)
    return Node("transpose", shape, (a,), (), a.bound)


def p_reshape(draw, ctx, shape, depth):
    """A matrix from a vector, or a vector from a matrix, with as many elements."""
    n = size(shape)
    if len(shape) == 1:
        factors = [(r, n // r) for r in MATRIX_DIMS if n % r == 0 and n // r <= 3]
        if not factors:
            return x_leaf(draw, ctx, shape)
        source_shape = draw(st.sampled_from(factors))
    else:
        source_shape = (n,)
    a = draw_expr(draw, ctx, source_shape, depth)
    return Node("reshape", shape, (a,), (), a.bound)


def p_recurrence(draw, ctx, shape, depth):
    """Running ``c = c + a[i]`` or ``c = c * a[i] + a[i]`` from ``c = 0``.

    Every partial result (shape ``(n,)``) or only the last one (shape ``()``).
    """
    n = shape[0] if shape else draw(st.sampled_from((2, 3, 4)))
    a = draw_expr(draw, ctx, (n,), depth)
    kind = draw(st.sampled_from(("sum", "affine")))
    last = shape == ()
    variants = ["plain"]
    if ctx.on("scan"):
        variants.append("scan")
    if last and ctx.on("fori_loop"):
        variants.append("fori_loop")
    if not last and kind == "sum" and ctx.on("cumsum"):
        variants.append("cumsum")
    variant = draw(st.sampled_from(variants))
    if kind == "sum":
        bound = n * a.bound
    else:
        bound = 0.0
        for _ in range(n):
            bound = bound * a.bound + a.bound
    return capped(Node("recurrence", shape, (a,), (kind, last, variant), bound))


def p_sort(draw, ctx, shape, depth):
    a = draw_expr(draw, ctx, shape, depth)
    return Node("sort", shape, (a,), (), a.bound)


def p_data_index(draw, ctx, shape, depth):
    """``t[idx]`` with an integer array ``idx`` taken from the extra argument."""
    data = ctx.data
    assert data is not None
    n = draw(st.sampled_from(VECTOR_LENGTHS))
    a = draw_expr(draw, ctx, (n,), depth)
    data.index_leaves.append((shape, n))
    number = len(data.index_leaves) - 1
    return Node("data_take", shape, (a,), (number,), a.bound)


PRODUCTIONS = {
    "leaf": p_leaf,
    "unary": p_unary,
    "power": p_power,
    "arith": p_arith,
    "safe_div": p_safe_div,
    "where": p_where,
    "sum": _reduction("sum"),
    "prod": _reduction("prod"),
    "max": _reduction("max"),
    "element": p_element,
    "slice": p_slice,
    "reversed": p_reversed,
    "take": p_take,
    "concat": p_concat,
    "stack": p_stack,
    "matmul": p_matmul,
    "transpose": p_transpose,
    "reshape": p_reshape,
    "recurrence": p_recurrence,
    "sort": p_sort,
    "data_index": p_data_index,
}


@st.composite
def function_specs(draw, features: frozenset[str]) -> FunctionSpec:
    """A random :class:`FunctionSpec` using only ``features``."""
    in_shapes = [s for s in INPUT_SHAPES if s != () or "input_0d" in features]
    in_shape = draw(st.sampled_from(in_shapes))
    out_shape = draw(
        st.sampled_from(((), (2,), (3,), (1,), (2, 2), (3, 2), (4,), (1, 3)))
    )
    data = None
    data_kinds = []
    if "data_array" in features:
        data_kinds.append("array")
    if "pytree" in features:
        data_kinds += ["tuple", "list", "dict"]
    if data_kinds and draw(st.booleans()):
        kind = draw(st.sampled_from(data_kinds))
        data = DataSpec(kind)
        if kind == "array":
            data.float_shapes.append(draw(st.sampled_from(((3,), (2, 3), (4,)))))
    ctx = Context(in_shape, features, data)
    depth = draw(st.integers(2, 6))
    head = (
        data is not None
        and data.kind != "array"
        and "shape_change" in features
        and draw(st.booleans())
    )
    if head:
        assert data is not None
        core_shape = draw(st.sampled_from(((2,), (3,), (2, 2), (1, 3))))
        core = draw_expr(draw, ctx, core_shape, depth)
        rows = draw(st.sampled_from(((2, 3), (3, 1), (1, 4), (4, 2))))
        data.head_rows, data.head_cols = rows, size(core_shape)
        shape = () if out_shape == () else (rows[0],)
        bound = size(core_shape) * XMAX * core.bound
        root = capped(Node("head", shape, (core,), (shape == (),), bound))
    else:
        root = draw_expr(draw, ctx, out_shape, depth)
    mode = draw(st.sampled_from(("auto", "forward", "reverse")))
    return FunctionSpec(root, in_shape, data, mode, features)
