"""The primitive table: each JAX primitive the generator translates, described once.

A :class:`Rule` gives a primitive's NumPy expression (array mode) and, for
element-wise primitives, its expression on one element (scalar mode, Python floats
and ``math``). Its ``kind`` tells the scalar emitter how to treat it:

- ``elementwise``: applied element by element with the ``scalar`` expression;
- ``structural``: the NumPy expression is run at generation time on object arrays of
  symbolic elements, which finds out where each element goes (slices, reshapes,
  gathers with constant indices) or which sums and products to emit (``dot_general``,
  ``reduce_sum``); the inputs in ``index_inputs`` must then be constants;
- ``reduction``: folded along its axes with the element-wise ``monoid`` rule;
- ``opaque``: run as NumPy code in the middle of the scalar code (sorting, argmax);
- ``control``: loops and branches, unrolled or inlined when their trip count or
  branch index is a constant, NumPy code otherwise.

Adding a primitive is one entry in :data:`RULES` (and one case in the table-driven
test, which checks that every entry has one).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from diffops.codegen.ir import Aval

ELEMENTWISE = "elementwise"
STRUCTURAL = "structural"
REDUCTION = "reduction"
OPAQUE = "opaque"
CONTROL = "control"


class Call(NamedTuple):
    """What a rule needs to write one equation's code.

    Attributes:
        args: Code of each input (a name or a literal).
        params: The equation's parameters (plain Python values).
        ins: Shape and dtype of each input.
        outs: Shape and dtype of each output.
        subs: For control flow, the generated function name(s) of each sub-program
            parameter (a name, or a tuple of names for ``branches``).
    """

    args: tuple[str, ...]
    params: Mapping[str, Any]
    ins: tuple[Aval, ...]
    outs: tuple[Aval, ...]
    subs: Mapping[str, Any] = {}


Text = Callable[[Call], str]


@dataclass(frozen=True)
class Rule:
    """How one primitive is written in NumPy (and in scalar Python).

    Attributes:
        kind: How scalar mode treats it (see the module docstring).
        array: NumPy expression of the outputs (a tuple when ``tuple_result``).
        scalar: For element-wise rules, the expression of one element.
        index_inputs: Inputs that must be constants to run a structural rule on
            symbolic elements.
        view: The NumPy result may share memory with an input (or be read-only).
        tuple_result: ``array`` returns a sequence even for one output.
        monoid: For reductions, the element-wise primitive they fold with.
    """

    kind: str
    array: Text
    scalar: Text | None = None
    index_inputs: tuple[int, ...] = ()
    view: bool = False
    tuple_result: bool = False
    monoid: str | None = None


def dtype_text(dtype: np.dtype[Any]) -> str:
    """Code of a NumPy dtype, e.g. ``np.float32``."""
    return "np.bool_" if dtype.kind == "b" else f"np.{dtype.name}"


def _ints(values: Any) -> str:
    return repr(tuple(int(v) for v in values))


def _is_float(c: Call, i: int = 0) -> bool:
    return c.ins[i].dtype.kind == "f"


# ---------------------------------------------------------------------------------
# Element-wise


def _fmt(template: str) -> Text:
    return lambda c: template.format(*c.args)


def _by_kind(float_text: str, int_text: str) -> Text:
    return lambda c: (float_text if _is_float(c) else int_text).format(*c.args)


def _integer_pow_array(c: Call) -> str:
    y = int(c.params["y"])
    a = c.args[0]
    if y == 0:
        return f"np.ones_like({a})"
    if abs(y) > 8:
        return f"np.power({a}, {float(y)!r})" if _is_float(c) else f"{a} ** {y}"
    # Binary exponentiation, multiplied in the order JAX's lowering uses.
    acc: str | None = None
    base = a
    n = abs(y)
    while n:
        if n & 1:
            acc = base if acc is None else f"({acc} * {base})"
        n >>= 1
        if n:
            base = f"({base} * {base})"
    assert acc is not None
    return f"np.reciprocal({acc})" if y < 0 else acc


def _integer_pow_scalar(c: Call) -> str:
    text = _integer_pow_array(c)
    if text.startswith("np.ones_like"):
        return "1.0" if _is_float(c) else "1"
    if text.startswith("np.reciprocal("):
        return f"1.0 / {text[len('np.reciprocal') :]}"
    return text.replace("np.power(", "math.pow(")


def _convert_array(c: Call) -> str:
    src, dst = c.ins[0].dtype, np.dtype(c.params["new_dtype"])
    a = c.args[0]
    if dst.kind == "b":
        return f"({a} != 0)"
    if src.kind == "f" and dst.kind in "iu":
        return f"_float_to_int({a}, {dtype_text(dst)})"
    return f"np.asarray({a}).astype({dtype_text(dst)})"


def _convert_scalar(c: Call) -> str:
    src, dst = c.ins[0].dtype, np.dtype(c.params["new_dtype"])
    a = c.args[0]
    if dst.kind == "b":
        return f"({a} != 0)"
    if dst.kind == "f":
        # Scalar mode carries every float as a Python float (float64).
        return a if src.kind == "f" else f"float({a})"
    return a if src.kind in "iu" else f"int({a})"


def _select_array(c: Call) -> str:
    pred, *cases = c.args
    if len(cases) == 2:
        return f"np.where({pred}, {cases[1]}, {cases[0]})"
    return f"np.choose({pred}, ({', '.join(cases)},))"


def _select_scalar(c: Call) -> str:
    pred, *cases = c.args
    if len(cases) == 2:
        return f"({cases[1]} if {pred} else {cases[0]})"
    return f"({', '.join(cases)},)[{pred}]"


def _max_scalar(c: Call) -> str:
    a, b = c.args
    if not _is_float(c):
        return f"max({a}, {b})"
    return f"({a} if {a} > {b} or {a} != {a} else {b})"


def _min_scalar(c: Call) -> str:
    a, b = c.args
    if not _is_float(c):
        return f"min({a}, {b})"
    return f"({a} if {a} < {b} or {a} != {a} else {b})"


def _not_array(c: Call) -> str:
    a = c.args[0]
    return f"np.logical_not({a})" if c.ins[0].dtype.kind == "b" else f"~{a}"


def _not_scalar(c: Call) -> str:
    a = c.args[0]
    return f"(not {a})" if c.ins[0].dtype.kind == "b" else f"~{a}"


def _round_array(c: Call) -> str:
    if int(c.params.get("rounding_method", 0)) == 1:
        return f"np.round({c.args[0]})"
    return f"_round_away({c.args[0]})"


def _round_scalar(c: Call) -> str:
    if int(c.params.get("rounding_method", 0)) == 1:
        return f"float(round({c.args[0]}))"
    return f"_sround_away({c.args[0]})"


def _reduce_precision_bits(c: Call) -> tuple[int, int]:
    return int(c.params["exponent_bits"]), int(c.params["mantissa_bits"])


def _reduce_precision_array(c: Call) -> str:
    finfo = np.finfo(c.ins[0].dtype)
    bits = _reduce_precision_bits(c)
    if bits[0] >= finfo.nexp and bits[1] >= finfo.nmant:
        return f"{c.args[0]}"
    for target in (np.float32, np.float16):
        info = np.finfo(target)
        if bits == (info.nexp, info.nmant):
            back = dtype_text(c.ins[0].dtype)
            return (
                f"np.asarray({c.args[0]}).astype(np.{info.dtype.name}).astype({back})"
            )
    msg = f"reduce_precision to {bits} exponent/mantissa bits"
    raise NotImplementedError(msg)


def _reduce_precision_scalar(c: Call) -> str:
    text = _reduce_precision_array(c)
    if text == c.args[0]:
        return text
    return f"float({text})"


def _map_math(name: str) -> Text:
    return lambda c: f"_map_float({name}, {c.args[0]})"


_UNARY: dict[str, tuple[str, str]] = {
    # name: (NumPy function, Python scalar function)
    "exp": ("np.exp", "math.exp"),
    "log": ("np.log", "math.log"),
    "log1p": ("np.log1p", "math.log1p"),
    "expm1": ("np.expm1", "math.expm1"),
    "sin": ("np.sin", "math.sin"),
    "cos": ("np.cos", "math.cos"),
    "tan": ("np.tan", "math.tan"),
    "asin": ("np.arcsin", "math.asin"),
    "acos": ("np.arccos", "math.acos"),
    "atan": ("np.arctan", "math.atan"),
    "sinh": ("np.sinh", "math.sinh"),
    "cosh": ("np.cosh", "math.cosh"),
    "tanh": ("np.tanh", "math.tanh"),
    "asinh": ("np.arcsinh", "math.asinh"),
    "acosh": ("np.arccosh", "math.acosh"),
    "atanh": ("np.arctanh", "math.atanh"),
    "sqrt": ("np.sqrt", "math.sqrt"),
    "is_finite": ("np.isfinite", "math.isfinite"),
}

_SPECIAL: dict[str, str] = {
    # name: scalar function; array mode maps it element by element
    "erf": "math.erf",
    "erfc": "math.erfc",
    "lgamma": "math.lgamma",
    "digamma": "_digamma",
    "erf_inv": "_erf_inv",
}

_BINARY_OPERATORS = {
    "add": "+",
    "add_any": "+",
    "sub": "-",
    "mul": "*",
    "and": "&",
    "or": "|",
    "xor": "^",
    "eq": "==",
    "ne": "!=",
    "lt": "<",
    "le": "<=",
    "gt": ">",
    "ge": ">=",
}


def _elementwise_rules() -> dict[str, Rule]:
    rules: dict[str, Rule] = {}
    for name, (np_fn, math_fn) in _UNARY.items():
        rules[name] = Rule(ELEMENTWISE, _fmt(np_fn + "({0})"), _fmt(math_fn + "({0})"))
    for name, math_fn in _SPECIAL.items():
        rules[name] = Rule(ELEMENTWISE, _map_math(math_fn), _fmt(math_fn + "({0})"))
    for name, op in _BINARY_OPERATORS.items():
        text = _fmt("{0} " + op + " {1}")
        rules[name] = Rule(ELEMENTWISE, text, text)
    rules.update(
        neg=Rule(ELEMENTWISE, _fmt("-{0}"), _fmt("-{0}")),
        div=Rule(
            ELEMENTWISE,
            _by_kind("{0} / {1}", "_int_div({0}, {1})"),
            _by_kind("{0} / {1}", "_sdiv({0}, {1})"),
        ),
        rem=Rule(
            ELEMENTWISE,
            _by_kind("np.fmod({0}, {1})", "_int_rem({0}, {1})"),
            _by_kind("math.fmod({0}, {1})", "_srem({0}, {1})"),
        ),
        pow=Rule(ELEMENTWISE, _fmt("np.power({0}, {1})"), _fmt("math.pow({0}, {1})")),
        integer_pow=Rule(ELEMENTWISE, _integer_pow_array, _integer_pow_scalar),
        square=Rule(ELEMENTWISE, _fmt("np.square({0})"), _fmt("{0} * {0}")),
        exp2=Rule(ELEMENTWISE, _fmt("np.exp2({0})"), _fmt("math.pow(2.0, {0})")),
        atan2=Rule(
            ELEMENTWISE, _fmt("np.arctan2({0}, {1})"), _fmt("math.atan2({0}, {1})")
        ),
        rsqrt=Rule(
            ELEMENTWISE,
            _fmt("np.reciprocal(np.sqrt({0}))"),
            _fmt("1.0 / math.sqrt({0})"),
        ),
        cbrt=Rule(ELEMENTWISE, _fmt("np.cbrt({0})"), _fmt("float(np.cbrt({0}))")),
        logistic=Rule(
            ELEMENTWISE,
            _fmt("np.reciprocal(1 + np.exp(-{0}))"),
            _fmt("1.0 / (1.0 + math.exp(-{0}))"),
        ),
        abs=Rule(ELEMENTWISE, _fmt("np.abs({0})"), _fmt("abs({0})")),
        sign=Rule(
            ELEMENTWISE,
            _fmt("np.sign({0})"),
            _by_kind(
                "(1.0 if {0} > 0 else (-1.0 if {0} < 0 else {0}))",
                "(({0} > 0) - ({0} < 0))",
            ),
        ),
        floor=Rule(ELEMENTWISE, _fmt("np.floor({0})"), _fmt("float(math.floor({0}))")),
        ceil=Rule(ELEMENTWISE, _fmt("np.ceil({0})"), _fmt("float(math.ceil({0}))")),
        round=Rule(ELEMENTWISE, _round_array, _round_scalar),
        nextafter=Rule(
            ELEMENTWISE,
            _fmt("np.nextafter({0}, {1})"),
            _fmt("math.nextafter({0}, {1})"),
        ),
        max=Rule(ELEMENTWISE, _fmt("np.maximum({0}, {1})"), _max_scalar),
        min=Rule(ELEMENTWISE, _fmt("np.minimum({0}, {1})"), _min_scalar),
        clamp=Rule(
            ELEMENTWISE,
            _fmt("np.minimum(np.maximum({1}, {0}), {2})"),
            None,  # scalar mode: max then min (see ScalarEmitter)
        ),
        select_n=Rule(ELEMENTWISE, _select_array, _select_scalar),
        convert_element_type=Rule(ELEMENTWISE, _convert_array, _convert_scalar),
        reduce_precision=Rule(
            ELEMENTWISE, _reduce_precision_array, _reduce_precision_scalar
        ),
    )
    rules["not"] = Rule(ELEMENTWISE, _not_array, _not_scalar)
    return rules


IDENTITY = frozenset(
    {
        "copy",
        "stop_gradient",
        "optimization_barrier",
        "device_put",
    }
)
"""Primitives whose outputs are their inputs (removed before emission)."""


# ---------------------------------------------------------------------------------
# Structural: data movement, sums and products


def _broadcast_in_dim(c: Call) -> str:
    shape = tuple(c.params["shape"])
    dims = tuple(c.params["broadcast_dimensions"])
    a = c.args[0]
    if not c.ins[0].shape:
        return f"np.broadcast_to({a}, {_ints(shape)})"
    expanded = [1] * len(shape)
    for i, d in enumerate(dims):
        expanded[d] = c.ins[0].shape[i]
    if tuple(expanded) == shape:
        return f"np.reshape({a}, {_ints(shape)})"
    return f"np.broadcast_to(np.reshape({a}, {_ints(expanded)}), {_ints(shape)})"


def _reshape(c: Call) -> str:
    return f"np.reshape({c.args[0]}, {_ints(c.outs[0].shape)})"


def _transpose(c: Call) -> str:
    return f"np.transpose({c.args[0]}, {_ints(c.params['permutation'])})"


def _slice(c: Call) -> str:
    starts = c.params["start_indices"]
    limits = c.params["limit_indices"]
    strides = c.params.get("strides") or (1,) * len(starts)
    parts = []
    for s, e, st in zip(starts, limits, strides, strict=True):
        parts.append(f"{s}:{e}" + (f":{st}" if st != 1 else ""))
    return f"{c.args[0]}[{', '.join(parts)},]"


def _rev(c: Call) -> str:
    dims = set(c.params["dimensions"])
    parts = ["::-1" if d in dims else ":" for d in range(len(c.ins[0].shape))]
    return f"{c.args[0]}[{', '.join(parts)},]"


def _concatenate(c: Call) -> str:
    return f"np.concatenate(({', '.join(c.args)},), axis={c.params['dimension']})"


def _pad(c: Call) -> str:
    config = tuple(tuple(int(v) for v in row) for row in c.params["padding_config"])
    return f"_pad({c.args[0]}, {c.args[1]}, {config!r})"


def _dynamic_slice(c: Call) -> str:
    starts = ", ".join(c.args[1:])
    return f"_dynamic_slice({c.args[0]}, ({starts},), {_ints(c.params['slice_sizes'])})"


def _dynamic_update_slice(c: Call) -> str:
    starts = ", ".join(c.args[2:])
    return f"_dynamic_update_slice({c.args[0]}, {c.args[1]}, ({starts},))"


def _fill_value(c: Call) -> str:
    if c.params.get("mode") != "FILL_OR_DROP":
        return "None"
    fill = c.params.get("fill_value")
    dtype = c.ins[0].dtype
    if fill is None:
        if dtype.kind == "f":
            return "math.nan"
        if dtype.kind == "b":
            return "True"
        info = np.iinfo(dtype)
        return repr(int(info.min if dtype.kind == "i" else info.max))
    return literal(fill)


def _gather(c: Call) -> str:
    dnums = c.params["dimension_numbers"]
    sizes = _ints(c.params["slice_sizes"])
    return (
        f"_gather({c.args[0]}, {c.args[1]}, {dnums!r}, {sizes}, {_fill_value(c)}, "
        f"{_ints(c.outs[0].shape)})"
    )


def _scatter(combine: str) -> Text:
    def text(c: Call) -> str:
        dnums = c.params["dimension_numbers"]
        clip = c.params.get("mode") == "CLIP"
        return (
            f"_scatter({c.args[0]}, {c.args[1]}, {c.args[2]}, {dnums!r}, {clip}, "
            f"{combine!r})"
        )

    return text


def _iota(c: Call) -> str:
    dtype = dtype_text(np.dtype(c.params["dtype"]))
    return f"_iota({dtype}, {_ints(c.params['shape'])}, {c.params['dimension']})"


def _split(c: Call) -> str:
    sizes = [int(s) for s in c.params["sizes"]]
    cuts = [sum(sizes[: i + 1]) for i in range(len(sizes) - 1)]
    return f"np.split({c.args[0]}, {cuts!r}, axis={c.params['axis']})"


def _stack(c: Call) -> str:
    return f"np.stack(({', '.join(c.args)},), axis={c.params['axis']})"


def _unstack(c: Call) -> str:
    return f"tuple(np.moveaxis({c.args[0]}, {c.params['axis']}, 0))"


def _sum_dtype(c: Call) -> str:
    dtype = c.outs[0].dtype
    if dtype.kind in "iub" and dtype.itemsize < np.dtype(np.intp).itemsize:
        return f", dtype={dtype_text(dtype)}"
    return ""


def _reduce(function: str) -> Text:
    def text(c: Call) -> str:
        axes = _ints(c.params["axes"])
        return f"{function}({c.args[0]}, axis={axes}{_sum_dtype(c)})"

    return text


def _reduce_plain(function: str) -> Text:
    return lambda c: f"{function}({c.args[0]}, axis={_ints(c.params['axes'])})"


def _arg_reduce(function: str) -> Text:
    def text(c: Call) -> str:
        (axis,) = c.params["axes"]
        dtype = dtype_text(np.dtype(c.params["index_dtype"]))
        return f"np.asarray({function}({c.args[0]}, axis={axis})).astype({dtype})"

    return text


def _cumulative(kind: str) -> Text:
    def text(c: Call) -> str:
        return (
            f"_cumulative({c.args[0]}, {c.params['axis']}, "
            f"{bool(c.params.get('reverse', False))}, {kind!r})"
        )

    return text


def _dot_general(c: Call) -> str:
    (lc, rc), (lb, rb) = c.params["dimension_numbers"]
    a, b = c.args
    ln, rn = len(c.ins[0].shape), len(c.ins[1].shape)
    text = None
    if not lb and len(lc) == 1 and ln <= 2 and rn <= 2:
        left = f"{a}.T" if ln == 2 and lc[0] == 0 else a
        right = f"{b}.T" if rn == 2 and rc[0] == 1 else b
        text = f"({left} @ {right})"
    elif not lb:
        text = f"np.tensordot({a}, {b}, axes=({_ints(lc)}, {_ints(rc)}))"
    else:
        dnums = ((tuple(lc), tuple(rc)), (tuple(lb), tuple(rb)))
        text = f"_dot_general({a}, {b}, {dnums!r})"
    natural = np.result_type(c.ins[0].dtype, c.ins[1].dtype)
    if natural != c.outs[0].dtype:
        text = f"np.asarray({text}).astype({dtype_text(c.outs[0].dtype)})"
    return text


def _sort(c: Call) -> str:
    return (
        f"_sort(({', '.join(c.args)},), {c.params['dimension']}, "
        f"{c.params.get('num_keys', 1)})"
    )


def _top_k(c: Call) -> str:
    axis = c.params.get("axis", len(c.ins[0].shape) - 1)
    if axis is None:
        axis = len(c.ins[0].shape) - 1
    return f"_top_k({c.args[0]}, {c.params['k']}, {axis})"


# ---------------------------------------------------------------------------------
# Control flow


def _cond(c: Call) -> str:
    branches = "".join(b + ", " for b in c.subs["branches"])
    operands = "".join(a + ", " for a in c.args[1:])
    return f"_cond(({branches}), {c.args[0]}, ({operands}))"


def _while(c: Call) -> str:
    args = "".join(a + ", " for a in c.args)
    return (
        f"_while({c.subs['cond_jaxpr']}, {c.subs['body_jaxpr']}, "
        f"{c.params['cond_nconsts']}, {c.params['body_nconsts']}, ({args}))"
    )


def _scan(c: Call) -> str:
    num_carry = int(c.params["num_carry"])
    y_avals = tuple(
        (tuple(o.shape[1:]), dtype_text(o.dtype)) for o in c.outs[num_carry:]
    )
    y_text = "(" + "".join(f"({_ints(s)}, {d}), " for s, d in y_avals) + ")"
    args = "".join(a + ", " for a in c.args)
    return (
        f"_scan({c.subs['jaxpr']}, {c.params['num_consts']}, {num_carry}, "
        f"{c.params['length']}, {bool(c.params['reverse'])}, {y_text}, ({args}))"
    )


def _all_rules() -> dict[str, Rule]:
    rules = _elementwise_rules()
    structural = {
        "broadcast_in_dim": Rule(STRUCTURAL, _broadcast_in_dim, view=True),
        "reshape": Rule(STRUCTURAL, _reshape, view=True),
        "squeeze": Rule(STRUCTURAL, _reshape, view=True),
        "transpose": Rule(STRUCTURAL, _transpose, view=True),
        "slice": Rule(STRUCTURAL, _slice, view=True),
        "rev": Rule(STRUCTURAL, _rev, view=True),
        "concatenate": Rule(STRUCTURAL, _concatenate),
        "pad": Rule(STRUCTURAL, _pad, view=True),
        "dynamic_slice": Rule(
            STRUCTURAL, _dynamic_slice, index_inputs=tuple(range(1, 64)), view=True
        ),
        "dynamic_update_slice": Rule(
            STRUCTURAL, _dynamic_update_slice, index_inputs=tuple(range(2, 64))
        ),
        "gather": Rule(STRUCTURAL, _gather, index_inputs=(1,)),
        "iota": Rule(STRUCTURAL, _iota, view=True),
        "split": Rule(STRUCTURAL, _split, view=True, tuple_result=True),
        "stack": Rule(STRUCTURAL, _stack),
        "unstack": Rule(STRUCTURAL, _unstack, view=True, tuple_result=True),
        "reduce_sum": Rule(STRUCTURAL, _reduce("np.sum")),
        "reduce_prod": Rule(STRUCTURAL, _reduce("np.prod")),
        "dot_general": Rule(STRUCTURAL, _dot_general),
        "cumsum": Rule(STRUCTURAL, _cumulative("sum")),
        "cumprod": Rule(STRUCTURAL, _cumulative("prod")),
        "reduce_max": Rule(REDUCTION, _reduce_plain("np.max"), monoid="max"),
        "reduce_min": Rule(REDUCTION, _reduce_plain("np.min"), monoid="min"),
        "reduce_and": Rule(
            REDUCTION, _reduce_plain("np.bitwise_and.reduce"), monoid="and"
        ),
        "reduce_or": Rule(
            REDUCTION, _reduce_plain("np.bitwise_or.reduce"), monoid="or"
        ),
        "reduce_xor": Rule(
            REDUCTION, _reduce_plain("np.bitwise_xor.reduce"), monoid="xor"
        ),
        "argmax": Rule(OPAQUE, _arg_reduce("np.argmax")),
        "argmin": Rule(OPAQUE, _arg_reduce("np.argmin")),
        "cummax": Rule(OPAQUE, _cumulative("max")),
        "cummin": Rule(OPAQUE, _cumulative("min")),
        "cumlogsumexp": Rule(OPAQUE, _cumulative("logsumexp")),
        "sort": Rule(OPAQUE, _sort, tuple_result=True),
        "top_k": Rule(OPAQUE, _top_k, tuple_result=True),
        "cond": Rule(CONTROL, _cond, tuple_result=True),
        "while": Rule(CONTROL, _while, tuple_result=True),
        "scan": Rule(CONTROL, _scan, tuple_result=True),
    }
    structural["scatter"] = Rule(STRUCTURAL, _scatter("set"), index_inputs=(1,))
    structural["scatter-add"] = Rule(STRUCTURAL, _scatter("add"), index_inputs=(1,))
    structural["scatter-mul"] = Rule(STRUCTURAL, _scatter("mul"), index_inputs=(1,))
    structural["scatter-min"] = Rule(OPAQUE, _scatter("min"))
    structural["scatter-max"] = Rule(OPAQUE, _scatter("max"))
    rules.update(structural)
    return rules


RULES: dict[str, Rule] = _all_rules()
"""Every translated primitive by name (identity primitives are in :data:`IDENTITY`)."""


def supported() -> frozenset[str]:
    """Names of every primitive the generator translates."""
    return frozenset(RULES) | IDENTITY


def literal(value: Any) -> str:
    """Python code of a scalar constant (round-trips exactly)."""
    if isinstance(value, bool | np.bool_):
        return "True" if value else "False"
    if isinstance(value, int | np.integer):
        i = int(value)
        return f"({i})" if i < 0 else repr(i)
    v = float(value)
    if math.isnan(v):
        return "math.nan"
    if math.isinf(v):
        return "math.inf" if v > 0 else "(-math.inf)"
    text = repr(v)
    return f"({text})" if text.startswith("-") else text


# ---------------------------------------------------------------------------------
# Running a rule at generation time (constant folding, scalar-mode structure)

_COMPILED: dict[str, Any] = {}


def namespace() -> dict[str, Any]:
    """Globals that rule expressions run in: ``np``, ``math`` and the helpers."""
    from diffops.codegen.runtime import HELPERS

    return {"np": np, "math": math, **HELPERS}


_NAMESPACE: dict[str, Any] = {}


def evaluate(
    prim: str,
    params: Mapping[str, Any],
    values: list[Any],
    ins: tuple[Aval, ...],
    outs: tuple[Aval, ...],
) -> list[Any]:
    """Run a primitive's NumPy expression on concrete (or object) arrays.

    Args:
        prim: Primitive name (not a control-flow primitive).
        params: Its parameters.
        values: One array per input.
        ins: Avals of the inputs.
        outs: Avals of the outputs.

    Returns:
        One NumPy value per output.
    """
    if not _NAMESPACE:
        _NAMESPACE.update(namespace())
    rule = RULES[prim]
    names = tuple(f"_v{i}" for i in range(len(values)))
    text = rule.array(Call(names, params, ins, outs))
    code = _COMPILED.get(text)
    if code is None:
        code = _COMPILED[text] = compile(text, "<diffops.codegen rule>", "eval")
    local = dict(zip(names, values, strict=True))
    with np.errstate(all="ignore"):
        result = eval(code, _NAMESPACE, local)
    if rule.tuple_result or len(outs) > 1:
        return list(result)
    return [result]
