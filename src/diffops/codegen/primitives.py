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
from collections.abc import Mapping
from typing import Any

import numpy as np

from diffops.codegen.elementwise import IDENTITY, elementwise_rules
from diffops.codegen.ir import Aval
from diffops.codegen.rules import (
    CONTROL,
    ELEMENTWISE,
    OPAQUE,
    REDUCTION,
    STRUCTURAL,
    Call,
    Rule,
    Text,
    dtype_text,
    ints,
    literal,
)

__all__ = [
    "CONTROL",
    "ELEMENTWISE",
    "IDENTITY",
    "OPAQUE",
    "REDUCTION",
    "RULES",
    "STRUCTURAL",
    "Call",
    "Rule",
    "dtype_text",
    "evaluate",
    "literal",
    "namespace",
    "supported",
]


# ---------------------------------------------------------------------------------
# Structural: data movement, sums and products


def _broadcast_in_dim(c: Call) -> str:
    shape = tuple(c.params["shape"])
    dims = tuple(c.params["broadcast_dimensions"])
    a = c.args[0]
    if not c.ins[0].shape:
        return f"np.broadcast_to({a}, {ints(shape)})"
    expanded = [1] * len(shape)
    for i, d in enumerate(dims):
        expanded[d] = c.ins[0].shape[i]
    if tuple(expanded) == shape:
        return f"np.reshape({a}, {ints(shape)})"
    return f"np.broadcast_to(np.reshape({a}, {ints(expanded)}), {ints(shape)})"


def _reshape(c: Call) -> str:
    return f"np.reshape({c.args[0]}, {ints(c.outs[0].shape)})"


def _transpose(c: Call) -> str:
    return f"np.transpose({c.args[0]}, {ints(c.params['permutation'])})"


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
    return f"_dynamic_slice({c.args[0]}, ({starts},), {ints(c.params['slice_sizes'])})"


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
    sizes = ints(c.params["slice_sizes"])
    return (
        f"_gather({c.args[0]}, {c.args[1]}, {dnums!r}, {sizes}, {_fill_value(c)}, "
        f"{ints(c.outs[0].shape)})"
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
    return f"_iota({dtype}, {ints(c.params['shape'])}, {c.params['dimension']})"


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
        axes = ints(c.params["axes"])
        return f"{function}({c.args[0]}, axis={axes}{_sum_dtype(c)})"

    return text


def _reduce_plain(function: str) -> Text:
    return lambda c: f"{function}({c.args[0]}, axis={ints(c.params['axes'])})"


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
        text = f"np.tensordot({a}, {b}, axes=({ints(lc)}, {ints(rc)}))"
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
    y_text = "(" + "".join(f"({ints(s)}, {d}), " for s, d in y_avals) + ")"
    args = "".join(a + ", " for a in c.args)
    return (
        f"_scan({c.subs['jaxpr']}, {c.params['num_consts']}, {num_carry}, "
        f"{c.params['length']}, {bool(c.params['reverse'])}, {y_text}, ({args}))"
    )


def _all_rules() -> dict[str, Rule]:
    rules = elementwise_rules()
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
