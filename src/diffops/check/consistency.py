"""Checks that need no finite differences: agreement within and across operators.

:func:`check_symmetric`: a Hessian equals its transpose. :func:`check_consistency`:
an output returned by several operators is the same in each, and a closure applied
to unit vectors gives the rows or columns of the array it contracts (``vjp`` the
Jacobian's rows, ``jvp`` its columns, ``hvp`` the Hessian's columns, ``vjp(1)`` the
gradient). :func:`check_against`: every output agrees with a reference
implementation (closures compared on the same random arguments).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from diffops.check.checker import Checker
from diffops.check.report import CheckUsageError, index_text
from diffops.check.supplied import Supplied
from diffops.check.tolerances import FULL_LIMIT
from diffops.errors import first_line
from diffops.operators import CLOSURES

Function = Callable[..., Any]

_CONTRACTS: dict[str, tuple[tuple[str, Literal["rows", "columns"]], ...]] = {
    "vjp": (("jacobian", "rows"), ("grad", "rows")),
    "jvp": (("jacobian", "columns"), ("grad", "columns")),
    "hvp": (("hessian", "columns"),),
}
"""For each closure, the arrays it can be checked against, in order of preference,
and whether unit vectors give their rows or columns (``grad``: scalar functions)."""


def check_symmetric(checker: Checker, supplied: Supplied) -> None:
    """The Hessian equals its transpose.

    Args:
        checker: The check's state.
        supplied: A derivative function returning a Hessian.
    """
    n = checker.x.size
    h = np.asarray(supplied.output("hessian"), dtype=np.float64).reshape(n, n)
    shape = checker.x.shape

    def describe(index: tuple[int, ...]) -> str:
        i = np.unravel_index(index[0], shape)
        j = np.unravel_index(index[1], shape)
        both = tuple(int(a) for a in (*i, *j))
        swapped = tuple(int(a) for a in (*j, *i))
        return f"hessian{index_text(both)} vs hessian{index_text(swapped)}"

    checker.compare(
        supplied.op.name, "hessian", "its transpose", h, h.T, describe=describe
    )


def check_consistency(checker: Checker, supplied: Sequence[Supplied]) -> None:
    """Outputs shared by several operators agree; closures match arrays.

    Args:
        checker: The check's state.
        supplied: Every derivative function checked.
    """
    usable = [s for s in supplied if s.usable]
    first_of: dict[str, Supplied] = {}
    for s in usable:
        for name in s.op.outputs:
            if name in CLOSURES:
                continue
            if name not in first_of:
                first_of[name] = s
                continue
            owner = first_of[name]
            test = f"{owner.op.name}'s {name}"
            checker.compare(s.op.name, name, test, s.output(name), owner.output(name))
    for s in usable:
        closure = s.op.closure
        if closure is None:
            continue
        for array_name, side in _CONTRACTS.get(closure.name, ()):
            if array_name not in first_of:
                continue
            if array_name == "grad" and s.value_shape() != ():
                continue
            owner = first_of[array_name]
            _closure_vs_array(checker, s, owner, array_name, side)
            break


def _closure_vs_array(
    checker: Checker,
    s: Supplied,
    owner: Supplied,
    array_name: str,
    side: Literal["rows", "columns"],
) -> None:
    """The closure of unit vectors (or random ones, for large shapes) vs an array."""
    closure = s.op.closure
    assert closure is not None
    arr = np.asarray(owner.output(array_name), dtype=np.float64)
    x = checker.x
    if side == "rows":
        lead = arr.shape[: arr.ndim - x.ndim]
        size = math.prod(lead)
    else:
        lead, size = x.shape, x.size
    owner_name = f"{owner.op.name}'s {array_name}"
    if array_name == "grad" and side == "rows":
        units = np.ones((1,))
        label = f"{owner_name}, as {closure.name}(1)"
        symbol = "1"
    elif size <= FULL_LIMIT:
        units = np.eye(size).reshape((size, *lead))
        label = f"{owner_name}, {side} as {closure.name} of unit vectors"
        symbol = "e"
    else:
        units = checker.rng.standard_normal((checker.directions, *lead))
        label = f"{owner_name}, applied to random vectors"
        symbol = "u"
    got = checker.apply(s.output(closure.name), list(units))
    if side == "rows":
        want = np.stack([np.tensordot(u, arr, len(lead)) for u in units])
    else:
        want = np.stack([np.tensordot(arr, u, x.ndim) for u in units])

    def describe(index: tuple[int, ...]) -> str:
        argument = symbol if symbol == "1" else f"{symbol}{index[0]}"
        return f"{closure.name}({argument}){index_text(index[1:])}"

    checker.compare(s.op.name, closure.name, label, got, want, describe=describe)


def check_against(
    checker: Checker, supplied: Supplied, reference: Function, label: str
) -> None:
    """Every output agrees with another implementation's (closures applied).

    Args:
        checker: The check's state.
        supplied: A derivative function whose outputs are usable.
        reference: Another implementation of the same operator.
        label: The reference in words.

    Raises:
        CheckUsageError: If the reference cannot be computed at ``x``.
    """
    op = supplied.op
    assert supplied.outputs is not None
    try:
        ref = reference(checker.x.copy(), *checker.args)
    except Exception as err:
        msg = (
            f"The reference for {op.name} ({label}) could not be computed: "
            f"{first_line(err, with_type=True)}"
        )
        raise CheckUsageError(msg) from err
    for name, got, want in zip(op.outputs, supplied.outputs, ref, strict=True):
        if name not in CLOSURES:
            checker.compare(op.name, name, label, got, want)
            continue
        arg_shape = op.closure_arg_shape(tuple(checker.x.shape), supplied.value_shape())
        args = checker.random_arguments(arg_shape, checker.directions)

        def describe(index: tuple[int, ...], name: str = name) -> str:
            return f"{name}(u{index[0]}){index_text(index[1:])}"

        checker.compare(
            op.name,
            name,
            label,
            checker.apply(got, args),
            checker.apply(want, args),
            describe=describe,
        )
