"""Checks of what a derivative function returns, before any number is compared.

:func:`check_call` calls the derivative function at ``x`` and checks the structure
of its result: a tuple of the operator's length, NumPy arrays of the input's float
dtype and of the operator table's shapes (a transposed Jacobian or outputs in the
wrong order are named as such), a closure first where the operator has one (callable,
returning the right shape), derivatives finite wherever the value is, and ``x`` left
unchanged. :func:`check_value` compares the value with ``func(x)`` and
:func:`check_linear` checks that a closure is linear.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import permutations
from typing import Any, Literal

import numpy as np

from diffops.check.checker import Checker
from diffops.check.report import PartCheck, index_text
from diffops.check.supplied import Supplied
from diffops.errors import first_line
from diffops.operators import CLOSURES, Operator, shape_of

Kind = Literal["shape", "fatal", "minor", "note"]
"""How bad a problem is: ``shape`` and ``fatal`` stop the numeric checks, ``minor``
fails the structure check, ``note`` is only reported."""


@dataclass
class _Findings:
    """Problems found in one call's outputs, by how bad they are."""

    fatal: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, kind: Kind, text: str) -> None:
        if kind in ("shape", "fatal"):
            self.fatal.append(text)
        elif kind == "note":
            self.notes.append(text)
        else:
            self.problems.append(text)


def check_call(checker: Checker, supplied: Supplied) -> None:
    """Call the derivative function at ``x`` and check the structure of the result.

    Sets ``supplied.outputs`` and ``supplied.usable`` when the numeric checks can
    run on them.

    Args:
        checker: The check's state (the point, the results).
        supplied: The derivative function.
    """
    op = supplied.op
    x_in = checker.x.copy()
    try:
        out = supplied.function(x_in, *checker.args)
    except Exception as err:
        message = (
            f"{op.name}: calling it at {checker.point} raised "
            f"{first_line(err, with_type=True)}"
        )
        checker.fail(op.name, "structure", "call at x", message)
        return
    found = _Findings()
    if not np.array_equal(x_in, checker.x, equal_nan=True):
        found.problems.append(_changed_input(checker.x, x_in))
    if not isinstance(out, tuple | list):
        found.fatal.append(
            f"it returned {type(out).__name__}, not a tuple ({', '.join(op.outputs)})"
        )
    elif len(out) != op.n_outputs:
        found.fatal.append(
            f"it returned {len(out)} outputs, but {op.name} returns "
            f"{op.n_outputs}: ({', '.join(op.outputs)})"
        )
    else:
        out = tuple(out)
        _check_outputs(checker, op, out, found)
    if not found.fatal:
        supplied.outputs = tuple(out)
        supplied.usable = True
    failed = found.fatal + found.problems
    shown = failed or found.notes
    checker.record(
        PartCheck(
            op.name,
            "structure",
            "tuple, types, shapes, dtypes",
            "failed" if failed else "passed",
            message=f"{op.name}: " + "; ".join(shown) + "." if shown else "",
        )
    )


def _changed_input(x: np.ndarray, x_in: np.ndarray) -> str:
    changed = np.flatnonzero(~((x_in == x) | (np.isnan(x_in) & np.isnan(x))))
    k = tuple(int(i) for i in np.unravel_index(changed[0], x.shape))
    return (
        f"it changed its input x in place (x{index_text(k)} was {float(x[k]):.6g}, "
        f"became {float(x_in[k]):.6g}); copy x before modifying it"
    )


def _check_outputs(
    checker: Checker, op: Operator, out: tuple[Any, ...], found: _Findings
) -> None:
    s = tuple(checker.x.shape)
    f = tuple(checker.value.shape) if checker.value is not None else np.shape(out[-1])
    expected = dict(
        zip([a.name for a in op.arrays], op.array_shapes(s, f), strict=True)
    )
    shape_ok = True
    for position, name in enumerate(op.outputs):
        item = out[position]
        if name in CLOSURES:
            if not callable(item):
                found.fatal.append(
                    f"output 0 should be the {name} closure (a function), but it "
                    f"is {type(item).__name__}"
                )
            continue
        if callable(item) and not isinstance(item, np.ndarray):
            found.fatal.append(
                f"output {position} ({name}) is a function, not an array"
            )
            continue
        problem = array_problem(item, name, expected[name], checker.x.dtype)
        if problem is None:
            continue
        kind, text = problem
        if kind == "shape":
            shape_ok = False
            if name in ("jacobian", "hessian") and np.shape(item) == s + f and s != f:
                text += f" (transposed? {name} is F + S: value axes first)"
        found.add(kind, text)
    if not shape_ok:
        order = guess_order(op, out, s, f)
        if order is not None:
            found.fatal.append(
                f"the outputs look like ({', '.join(order)}) — the wrong order: "
                f"{op.name} returns ({', '.join(op.outputs)})"
            )
    if found.fatal:
        return
    _check_finite(op, out, found)
    if op.closure is not None:
        _check_closure(checker, op, out, s, f, found)


def _check_finite(op: Operator, out: tuple[Any, ...], found: _Findings) -> None:
    """Derivatives are finite wherever the value is."""
    value = np.asarray(out[-1], dtype=np.float64)
    finite_value = np.isfinite(value)
    for position, name in enumerate(op.outputs[:-1]):
        if name in CLOSURES:
            continue
        arr = np.asarray(out[position], dtype=np.float64)
        if name == "jacobian":
            rows = arr.reshape((*value.shape, -1))
            bad = ~np.isfinite(rows) & finite_value[..., None]
        elif bool(np.all(finite_value)):
            bad = ~np.isfinite(arr)
        else:
            continue
        if bad.any():
            first = np.flatnonzero(bad.reshape(-1))[0]
            k = tuple(int(i) for i in np.unravel_index(first, arr.shape))
            found.problems.append(
                f"{name} has NaN or inf entries ({int(bad.sum())} of {arr.size}, "
                f"first {name}{index_text(k)} = {arr[k]}) where the value is finite"
            )


def _check_closure(
    checker: Checker,
    op: Operator,
    out: tuple[Any, ...],
    s: tuple[int, ...],
    f: tuple[int, ...],
    found: _Findings,
) -> None:
    closure = op.closure
    assert closure is not None
    arg_shape = op.closure_arg_shape(s, f)
    out_shape = shape_of(closure.out, s, f)
    arg = checker.rng.standard_normal(arg_shape).astype(checker.x.dtype)
    try:
        result = out[0](arg)
    except Exception as err:
        found.fatal.append(
            f"{closure.name}(v) with v of shape {arg_shape} raised "
            f"{first_line(err, with_type=True)}"
        )
        return
    label = f"{closure.name}(v)"
    problem = array_problem(result, label, out_shape, checker.x.dtype)
    if problem is not None:
        found.add(*problem)
    value = np.asarray(out[-1], dtype=np.float64)
    if (
        problem is None
        and bool(np.all(np.isfinite(value)))
        and not bool(np.all(np.isfinite(np.asarray(result, dtype=np.float64))))
    ):
        found.problems.append(
            f"{label} has NaN or inf entries where the value is finite"
        )


def check_linear(checker: Checker, supplied: Supplied) -> None:
    """The closure is linear: ``c(a u + b w) = a c(u) + b c(w)``.

    Args:
        checker: The check's state.
        supplied: A derivative function whose outputs are usable.
    """
    op = supplied.op
    closure = op.closure
    if closure is None or supplied.outputs is None:
        return
    arg_shape = op.closure_arg_shape(tuple(checker.x.shape), supplied.value_shape())
    c = supplied.outputs[0]
    u, w = checker.random_arguments(arg_shape, 2)
    a, b = 2.0, -0.5
    cu, cw, both = checker.apply(c, [u, w, a * u + b * w])
    name = closure.name
    checker.compare(
        op.name,
        name,
        "linearity: 2 c(u) - c(w)/2",
        both,
        a * cu + b * cw,
        rtol_factor=10.0,
        scale=abs(a) * np.abs(cu) + abs(b) * np.abs(cw),
        describe=lambda i: (
            f"{name}(2u - w/2){index_text(i)} vs 2 {name}(u) - {name}(w)/2"
        ),
    )


def check_value(checker: Checker, supplied: Supplied) -> None:
    """The value equals ``func(x)``; if not, says which output does.

    Args:
        checker: The check's state.
        supplied: A derivative function whose outputs are usable.
    """
    op = supplied.op
    assert supplied.outputs is not None
    got = np.asarray(supplied.outputs[-1], dtype=np.float64)
    name = checker.func_name
    if checker.value is None:
        message = (
            f"{op.name}: value not checked: no function given (old call form); "
            f"check_derivatives(func, x, {op.name}=derivative) compares it with "
            f"func(x)."
        )
        checker.record(
            PartCheck(op.name, "value", "func(x)", "not checked", message=message)
        )
        return
    check = checker.compare(op.name, "value", f"{name}(x)", got, checker.value)
    if check.status != "failed":
        return
    # Which other output is the value? (outputs in the wrong order)
    for position, output in enumerate(op.outputs[:-1]):
        item = supplied.outputs[position]
        if output in CLOSURES or np.shape(item) != checker.value.shape:
            continue
        if np.allclose(np.asarray(item, np.float64), checker.value, rtol=1e-6):
            hint = (
                f" Output {position} ({output}) equals {name}(x): are the outputs in "
                f"the wrong order? {op.name} returns ({', '.join(op.outputs)})."
            )
            checker.with_message(check, check.message + hint)
            return


def array_problem(
    item: Any, name: str, shape: tuple[int, ...], dtype: np.dtype
) -> tuple[Kind, str] | None:
    """What is wrong with one returned array, if anything.

    Args:
        item: The returned object.
        name: Its name, for the message.
        shape: The shape it must have.
        dtype: The input's dtype, which it should have.

    Returns:
        ``(kind, text)``, or ``None`` if nothing is wrong; a float with more
        precision than the input is only a ``"note"``.
    """
    if isinstance(item, np.ndarray | np.generic):
        arr = np.asarray(item)
        kind = None
    elif isinstance(item, float | int) and not isinstance(item, bool) and shape == ():
        arr = np.asarray(item, dtype=dtype)
        kind = None
    else:
        kind = f"{type(item).__module__.split('.')[0]}.{type(item).__name__}"
        try:
            arr = np.asarray(item.detach() if hasattr(item, "detach") else item)
        except Exception:
            return "fatal", f"{name} is a {kind}, not a NumPy array"
    if arr.dtype.kind not in "biuf":
        return "fatal", f"{name} has dtype {arr.dtype}, not a float dtype"
    if arr.shape != shape:
        return "shape", f"{name} has shape {arr.shape}, but should have shape {shape}"
    if kind is not None:
        return (
            "minor",
            f"{name} is a {kind}, not a NumPy array (return np.asarray(...))",
        )
    if arr.dtype != dtype:
        text = (
            f"{name} has dtype {arr.dtype} for a {dtype} input (derivative functions "
            f"return the input's float dtype)"
        )
        wider = arr.dtype.kind == "f" and arr.dtype.itemsize > np.dtype(dtype).itemsize
        return ("note" if wider else "minor"), text
    return None


def guess_order(
    op: Operator, out: tuple[Any, ...], s: tuple[int, ...], f: tuple[int, ...]
) -> tuple[str, ...] | None:
    """The output names in the order returned, if the shapes say so unambiguously.

    Args:
        op: The operator.
        out: What the derivative function returned.
        s: Shape of ``x``.
        f: Shape of the value.

    Returns:
        The names in the order their shapes match, or ``None`` if no single
        order other than the operator's own matches.
    """
    shapes = dict(zip([a.name for a in op.arrays], op.array_shapes(s, f), strict=True))
    matches = []
    for order in permutations(op.outputs):
        ok = True
        for item, name in zip(out, order, strict=True):
            if name in CLOSURES:
                ok = callable(item)
            else:
                ok = not callable(item) and np.shape(item) == shapes[name]
            if not ok:
                break
        if ok:
            matches.append(order)
    if len(matches) == 1 and matches[0] != op.outputs:
        return matches[0]
    return None
