"""Each derivative against finite differences of the output one order below.

The gradient or Jacobian (and ``vjp``, ``jvp``) is compared with differences of the
function itself; the Hessian (and ``hvp``) with differences of the operator's own
gradient, ``mhp`` with differences of its Jacobian and ``mtp`` with differences of
its Hessian (the operator table's ``of`` says which).

Up to ``full_limit`` entries of ``x``, every coordinate is differenced and whole
arrays are compared (:func:`_full_round`); above, random directions ``w``
(:func:`_projected_round`), and a failure is confirmed with twice as many fresh
directions before it is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from diffops.check.checker import Checker
from diffops.check.compare import Describe, Probe
from diffops.check.differences import Differences
from diffops.check.report import PartCheck, index_text
from diffops.check.supplied import Supplied
from diffops.errors import first_line
from diffops.operators import ARRAYS, CLOSURES


@dataclass(frozen=True)
class _Round:
    """One comparison with finite differences: its arrays and how to explain them."""

    got: np.ndarray
    want: np.ndarray
    error: np.ndarray
    scale: np.ndarray | None
    describe: Describe | None
    probe: Probe


def check_differences(checker: Checker, supplied: Supplied, name: str) -> None:
    """Check output ``name`` against finite differences of its lower output.

    Args:
        checker: The check's state.
        supplied: A derivative function whose outputs are usable.
        name: The output checked.
    """
    op = supplied.op
    closure = CLOSURES.get(name)
    of = closure.of if closure is not None else ARRAYS[name].of
    assert of is not None
    from_func = of == "value" and checker.func_values is not None
    test = f"finite differences of {checker.func_name if from_func else f'its {of}'}"
    try:
        fd = checker.differences_of(supplied, of)
    except Exception as err:
        message = (
            f"{op.name}: evaluating {of} for finite differences raised "
            f"{first_line(err, with_type=True)}"
        )
        checker.fail(op.name, name, test, message)
        return
    first = _round(checker, supplied, name, fd, test, checker.directions)
    if first is None or first.status != "failed" or checker.full:
        return
    # Random projections: confirm a failure with twice as many fresh directions.
    count = 2 * checker.directions
    second = _round(checker, supplied, name, fd, test, count)
    if second is None or second.status not in ("failed", "passed"):
        return
    checker.checks[:] = [c for c in checker.checks if c is not first]
    if second.status == "failed":
        message = (
            f"{second.message} Confirmed: the first {checker.directions} random "
            f"directions failed too."
        )
    else:
        message = (
            f"{op.name}: {name} disagreed along {checker.directions} random "
            f"directions ({first.where}) but agreed along {count} fresh ones; "
            f"reported as passed."
        )
    checker.with_message(second, message)


def _round(
    checker: Checker,
    supplied: Supplied,
    name: str,
    fd: Differences,
    test: str,
    count: int,
) -> PartCheck | None:
    """One comparison with finite differences (recorded); ``None`` if it raised."""
    op = supplied.op
    try:
        if checker.full:
            found = _full_round(checker, supplied, name, fd, count)
        else:
            found = _projected_round(checker, supplied, name, fd, count)
            test += f" along {count} random directions"
    except Exception as err:
        message = (
            f"{op.name}: computing {name} or finite differences near x raised "
            f"{first_line(err, with_type=True)}"
        )
        checker.fail(op.name, name, test, message)
        return None
    return checker.compare(
        op.name,
        name,
        test,
        found.got,
        found.want,
        fd_error=found.error,
        scale=found.scale,
        describe=found.describe,
        probe=found.probe,
    )


def _onehot(shape: tuple[int, ...], index: tuple[int, ...]) -> np.ndarray:
    weight = np.zeros(shape)
    weight[index] = 1.0
    return weight


def _full_round(
    checker: Checker, supplied: Supplied, name: str, fd: Differences, count: int
) -> _Round:
    """The whole derivative from differences along every coordinate."""
    x_shape = checker.x.shape
    g_shape = fd.center.shape
    g_ndim = len(g_shape)
    closure = CLOSURES.get(name)
    item = supplied.output(name)
    jac, jac_err = fd.full()
    if closure is None:

        def probe(index: tuple[int, ...], tol: float) -> str | None:
            k = int(np.ravel_multi_index(index[g_ndim:], x_shape))
            return fd.kink(fd.unit(k), _onehot(g_shape, index[:g_ndim]), tol)

        got = np.asarray(item, dtype=np.float64)
        return _Round(got, jac, jac_err, None, None, probe)
    left = closure.side == "left"
    args = checker.random_arguments(g_shape if left else x_shape, count)
    got = checker.apply(item, args)
    if left:
        want = np.stack([np.tensordot(u, jac, g_ndim) for u in args])
        error = np.stack([np.tensordot(np.abs(u), jac_err, g_ndim) for u in args])
        scale = np.stack([np.tensordot(np.abs(u), np.abs(jac), g_ndim) for u in args])

        def probe(index: tuple[int, ...], tol: float) -> str | None:
            k = int(np.ravel_multi_index(index[1:], x_shape))
            return fd.kink(fd.unit(k), args[index[0]], tol)

        symbol = "u"
    else:
        s_ndim = len(x_shape)
        want = np.stack([np.tensordot(jac, v, s_ndim) for v in args])
        error = np.stack([np.tensordot(jac_err, np.abs(v), s_ndim) for v in args])
        scale = np.stack([np.tensordot(np.abs(jac), np.abs(v), s_ndim) for v in args])

        def probe(index: tuple[int, ...], tol: float) -> str | None:
            return fd.kink(args[index[0]], _onehot(g_shape, index[1:]), tol)

        symbol = "v"

    def describe(index: tuple[int, ...]) -> str:
        return f"{name}({symbol}{index[0]}){index_text(index[1:])}"

    return _Round(got, want, error, scale, describe, probe)


def _projected_round(
    checker: Checker, supplied: Supplied, name: str, fd: Differences, count: int
) -> _Round:
    """The derivative along ``count`` random directions ``w``."""
    s_ndim = checker.x.ndim
    g_shape = fd.center.shape
    closure = CLOSURES.get(name)
    item = supplied.output(name)
    ws = [fd.random(checker.rng) for _ in range(count)]
    along = [fd.along(w) for w in ws]
    want = np.stack([d for d, _ in along])
    error = np.stack([e for _, e in along])

    def probe_w(index: tuple[int, ...], tol: float) -> str | None:
        return fd.kink(ws[index[0]], _onehot(g_shape, index[1:]), tol)

    if closure is None:
        arr = np.asarray(item, dtype=np.float64)
        got = np.stack([np.tensordot(arr, w, s_ndim) for w in ws])
        scale = np.stack([np.tensordot(np.abs(arr), np.abs(w), s_ndim) for w in ws])
        return _Round(
            got, want, error, scale, _entry(lambda r: f"({name} · w{r})"), probe_w
        )
    if closure.side != "left":
        got = checker.apply(item, ws)
        return _Round(
            got, want, error, None, _entry(lambda r: f"{name}(w{r})"), probe_w
        )
    return _left_projected(checker, fd, item, name, ws, want, error)


def _left_projected(
    checker: Checker,
    fd: Differences,
    item: Callable[..., Any],
    name: str,
    ws: list[np.ndarray],
    along: np.ndarray,
    along_error: np.ndarray,
) -> _Round:
    """A left closure along ``w``: ``c(u) · w`` against ``u · (∂g · w)``."""
    s_ndim = checker.x.ndim
    us = checker.random_arguments(fd.center.shape, len(ws))
    got = np.array(
        [
            np.tensordot(checker.apply(item, [u])[0], w, s_ndim)
            for u, w in zip(us, ws, strict=True)
        ]
    )
    pairs = list(zip(us, along, along_error, strict=True))
    scale = np.array([np.sum(np.abs(u) * np.abs(d)) for u, d, _ in pairs])
    error = np.array([np.sum(np.abs(u) * e) for u, _, e in pairs])
    want = np.array([np.sum(u * d) for u, d, _ in pairs])

    def probe(index: tuple[int, ...], tol: float) -> str | None:
        return fd.kink(ws[index[0]], us[index[0]], tol)

    describe = _entry(lambda r: f"{name}(u{r}) · w{r}")
    return _Round(got, want, error, scale, describe, probe)


def _entry(label: Callable[[int], str]) -> Describe:
    """Describes entry ``[r, i...]`` of stacked results as ``label(r)[i...]``."""

    def describe(index: tuple[int, ...]) -> str:
        return f"{label(index[0])}{index_text(index[1:])}"

    return describe
