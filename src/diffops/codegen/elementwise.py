"""Element-wise rules of the primitive table: NumPy and scalar (``math``) code.

See :mod:`diffops.codegen.primitives`.
"""

from __future__ import annotations

import numpy as np

from diffops.codegen.rules import (
    ELEMENTWISE,
    Call,
    Rule,
    Text,
    dtype_text,
    is_float,
)


def _fmt(template: str) -> Text:
    return lambda c: template.format(*c.args)


def _by_kind(float_text: str, int_text: str) -> Text:
    return lambda c: (float_text if is_float(c) else int_text).format(*c.args)


def _integer_pow_array(c: Call) -> str:
    y = int(c.params["y"])
    a = c.args[0]
    if y == 0:
        return f"np.ones_like({a})"
    if abs(y) > 8:
        return f"np.power({a}, {float(y)!r})" if is_float(c) else f"{a} ** {y}"
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
        return "1.0" if is_float(c) else "1"
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
    if not is_float(c):
        return f"max({a}, {b})"
    return f"({a} if {a} > {b} or {a} != {a} else {b})"


def _min_scalar(c: Call) -> str:
    a, b = c.args
    if not is_float(c):
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


def elementwise_rules() -> dict[str, Rule]:
    """The element-wise rules, by primitive name."""
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
