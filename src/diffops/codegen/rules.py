"""The rule types of the primitive table (:mod:`diffops.codegen.primitives`).

:class:`Call` is what a rule is given, :class:`Rule` what it is; the kinds say how
scalar mode treats a primitive.
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


def ints(values: Any) -> str:
    """Code of a tuple of ints."""
    return repr(tuple(int(v) for v in values))


def is_float(c: Call, i: int = 0) -> bool:
    """Whether input ``i`` of the call is a float."""
    return c.ins[i].dtype.kind == "f"


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
