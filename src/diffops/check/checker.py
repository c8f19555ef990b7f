"""The checks: :class:`_Checker` runs them at one point and collects the results.

For each derivative function under check (a :class:`_Supplied`, its sparse outputs
made dense by :func:`_dense`) the checker calls it at ``x`` and checks what it
returned (tuple, types, shapes, dtypes, closures, ``x`` unchanged), its value against
``func(x)``, the linearity of its closure, each output against finite differences of
the output one order below or against a reference implementation, and the symmetry
of Hessians; across operators, that shared outputs agree and that closures match the
arrays. Each comparison is recorded as a :class:`~diffops.check.report.PartCheck`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from diffops.check.differences import Differences
from diffops.check.report import CheckUsageError, PartCheck, describe_point
from diffops.check.tolerances import FLOOR, FULL_LIMIT, SAFETY
from diffops.operators import ARRAYS, CLOSURES, Operator, shape_of

Function = Callable[..., Any]


def _dense(op: Operator, function: Function) -> Function:
    """``function``, with sparse Jacobians and Hessians made dense.

    ``sparsity=`` returns them as ``scipy.sparse`` arrays; dense, they are checked
    like any other: against finite differences and, with ``reference=``, against
    dense derivatives.
    """

    def densified(x: Any, *args: Any) -> Any:
        out = function(x, *args)
        if not isinstance(out, tuple) or len(out) != op.n_outputs:
            return out
        items = list(out)
        for k, name in enumerate(op.outputs):
            item = items[k]
            if name in ARRAYS and hasattr(item, "toarray") and hasattr(item, "nnz"):
                shape = shape_of(ARRAYS[name].shape, np.shape(x), np.shape(out[-1]))
                items[k] = np.asarray(item.toarray()).reshape(shape)
        return tuple(items)

    densified.__name__ = getattr(function, "__name__", "derivative")
    return densified


@dataclass
class _Supplied:
    """A derivative function under check and what it returned at ``x``."""

    op: Operator
    function: Function
    outputs: tuple[Any, ...] | None = None
    usable: bool = False

    def position(self, name: str) -> int:
        return self.op.outputs.index(name)

    def output(self, name: str) -> Any:
        assert self.outputs is not None
        return self.outputs[self.position(name)]


class _Checker:
    """Runs the checks of :func:`check_derivatives` and collects them."""

    def __init__(
        self,
        x: np.ndarray,
        args: tuple[Any, ...],
        func_values: Callable[[np.ndarray], np.ndarray] | None,
        value: np.ndarray | None,
        func_name: str,
        *,
        func_eps: float = float(np.finfo(np.float64).eps),
        rtol: float,
        atol: float,
        step: float | None,
        directions: int,
        full_limit: int,
        seed: int,
    ):
        self.x = x
        self.x64 = x.astype(np.float64)
        self.args = args
        self.func_values = func_values
        self.value = value
        self.func_name = func_name
        self.func_eps = func_eps
        self.rtol = rtol
        self.atol = atol
        self.step = step
        self.directions = max(1, int(directions))
        self.full = x.size <= full_limit
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.checks: list[PartCheck] = []
        self._differences: dict[Any, Differences] = {}

    # -- comparisons -------------------------------------------------------------

    def compare(
        self,
        op_name: str,
        part: str,
        test: str,
        got: Any,
        want: Any,
        *,
        fd_error: np.ndarray | None = None,
        scale: np.ndarray | None = None,
        describe: Callable[[tuple[int, ...]], str] | None = None,
        probe: Callable[[tuple[int, ...], float], str | None] | None = None,
        rtol_factor: float = 1.0,
    ) -> PartCheck:
        """Compare ``got`` with the reference ``want`` entry by entry.

        Args:
            op_name: Operator.
            part: Output checked.
            test: The reference, in words.
            got: Checked values.
            want: Reference values, same shape.
            fd_error: Estimated error of ``want`` (finite differences).
            scale: Magnitude of each entry's terms (default ``|want|``).
            describe: The entry at an index, in words.
            probe: ``probe(index, tol)`` explains a failure by a kink, or ``None``.
            rtol_factor: Multiplies ``rtol`` (loose checks of rounding alone).

        Returns:
            The check (also recorded).
        """
        got = np.asarray(got, dtype=np.float64)
        want = np.asarray(want, dtype=np.float64)
        describe = describe or (lambda index: f"{part}{_index_text(index)}")
        mask = np.isfinite(want)
        if want.size and not mask.any():
            return self.record(
                PartCheck(
                    op_name,
                    part,
                    test,
                    "not checked",
                    message=f"{op_name}: {part} not checked against {test}: the "
                    f"reference is not finite at {describe_point(self.x)}.",
                )
            )
        with np.errstate(invalid="ignore", over="ignore"):
            mag = np.abs(want)
            if scale is not None:
                mag = np.maximum(mag, np.asarray(scale, dtype=np.float64))
            mag = np.where(mask, mag, 0.0)
            top = float(np.max(mag, initial=0.0))
            base = np.maximum(mag, FLOOR * top)
            # Finite differences that did not converge (a jump, a kink, a step
            # too large) do not widen the tolerance by more than 1 % of the scale.
            extra = (
                0.0
                if fd_error is None
                else SAFETY * np.minimum(np.nan_to_num(fd_error), 1e-2 * base)
            )
            rtol = self.rtol * rtol_factor
            tol = self.atol + rtol * base + extra
            err = np.where(mask, np.abs(got - want), 0.0)
            err = np.where(mask & ~np.isfinite(got), np.inf, err)
            rel = np.where(base > 0, err / np.where(base > 0, base, 1.0), 0.0)
            rel = np.where((base == 0) & (err > 0), np.inf, rel)
            excess = np.where(tol > 0, err / np.where(tol > 0, tol, 1.0), 0.0)
            excess = np.where((tol == 0) & (err > 0), np.inf, excess)
        failing = int(np.count_nonzero(err > tol))
        if want.size == 0:
            return self.record(
                PartCheck(op_name, part, test, "passed", 0.0, 0.0, message="")
            )
        flat = int(np.argmax(excess))
        index = tuple(int(i) for i in np.unravel_index(flat, want.shape))
        where = describe(index) if float(err[index]) > 0 else ""
        check = PartCheck(
            op_name,
            part,
            test,
            "failed" if failing else "passed",
            float(np.max(err)),
            float(np.max(rel)),
            index,
            where,
            float(want[index]),
            float(got[index]),
            float(tol[index]),
        )
        skipped = int(np.count_nonzero(~mask))
        if not failing:
            if skipped:
                check = replace(
                    check,
                    message=f"{op_name}: {part}: {skipped} of {want.size} entries "
                    f"not compared (reference not finite).",
                )
            return self.record(check)
        actual = float(got[index])
        message = (
            f"{op_name}: {where} = {actual:.10g}, expected "
            f"{float(want[index]):.10g} from {test} (abs error "
            f"{float(err[index]):.3g}, rel error "
            f"{float(rel[index]):.3g}; tolerance {float(tol[index]):.3g} = atol "
            f"{self.atol:.1e} + rtol {rtol:.1e} × {float(base[index]):.3g}"
            f"{' + finite-difference error' if fd_error is not None else ''}); "
            f"{failing} of {want.size} entries exceed their tolerance; at "
            f"{describe_point(self.x)}, seed {self.seed}."
        )
        if not math.isfinite(actual):
            message = (
                f"{op_name}: {where} is {actual}, expected {float(want[index]):.10g} "
                f"from {test}; {failing} of {want.size} entries "
                f"wrong; at {describe_point(self.x)}, seed {self.seed}."
            )
        if probe is not None:
            reason = probe(index, float(tol[index]))
            if reason is not None:
                return self.record(
                    replace(
                        check,
                        status="not differentiable",
                        message=f"{op_name}: {part} not compared at "
                        f"{describe_point(self.x)}: {reason} (finite differences "
                        f"disagree at {where}: {message.split(': ', 1)[1]})",
                    )
                )
        return self.record(replace(check, message=message))

    def record(self, check: PartCheck) -> PartCheck:
        self.checks.append(check)
        return check

    # -- one operator ----------------------------------------------------------------

    def call(self, supplied: _Supplied) -> None:
        """Call the derivative function at ``x`` and check the structure."""
        op = supplied.op
        name = op.name
        problems: list[str] = []
        notes: list[str] = []
        fatal: list[str] = []
        x_in = self.x.copy()
        try:
            out = supplied.function(x_in, *self.args)
        except Exception as err:
            self.record(
                PartCheck(
                    name,
                    "structure",
                    "call at x",
                    "failed",
                    message=f"{name}: calling it at {describe_point(self.x)} raised "
                    f"{type(err).__name__}: {_first_line(err)}",
                )
            )
            return
        if not np.array_equal(x_in, self.x, equal_nan=True):
            changed = np.flatnonzero(
                ~((x_in == self.x) | (np.isnan(x_in) & np.isnan(self.x)))
            )
            k = tuple(int(i) for i in np.unravel_index(changed[0], self.x.shape))
            problems.append(
                f"it changed its input x in place (x{_index_text(k)} was "
                f"{float(self.x[k]):.6g}, became {float(x_in[k]):.6g}); copy x "
                f"before modifying it"
            )
        if not isinstance(out, tuple | list):
            fatal.append(
                f"it returned {type(out).__name__}, not a tuple "
                f"({', '.join(op.outputs)})"
            )
        elif len(out) != op.n_outputs:
            fatal.append(
                f"it returned {len(out)} outputs, but {name} returns "
                f"{op.n_outputs}: ({', '.join(op.outputs)})"
            )
        else:
            out = tuple(out)
            self._check_outputs(op, out, problems, fatal, notes)
        if not fatal:
            supplied.outputs = tuple(out)
            supplied.usable = True
        found = fatal + problems
        shown = found or notes
        self.record(
            PartCheck(
                name,
                "structure",
                "tuple, types, shapes, dtypes",
                "failed" if found else "passed",
                message=f"{name}: " + "; ".join(shown) + "." if shown else "",
            )
        )

    def _value_shape(self, op: Operator, out: tuple[Any, ...]) -> tuple[int, ...]:
        if self.value is not None:
            return tuple(self.value.shape)
        return tuple(np.shape(out[-1]))

    def _check_outputs(
        self,
        op: Operator,
        out: tuple[Any, ...],
        problems: list[str],
        fatal: list[str],
        notes: list[str],
    ) -> None:
        s = tuple(self.x.shape)
        f = self._value_shape(op, out)
        dtype = self.x.dtype
        expected = dict(
            zip([a.name for a in op.arrays], op.array_shapes(s, f), strict=True)
        )
        shape_ok = True
        for position, name in enumerate(op.outputs):
            item = out[position]
            if name in CLOSURES:
                if not callable(item):
                    fatal.append(
                        f"output 0 should be the {name} closure (a function), but it "
                        f"is {type(item).__name__}"
                    )
                continue
            want_shape = expected[name]
            if callable(item) and not isinstance(item, np.ndarray):
                fatal.append(f"output {position} ({name}) is a function, not an array")
                continue
            problem = _array_problem(item, name, want_shape, dtype)
            if problem is None:
                continue
            kind, text = problem
            if kind == "shape":
                shape_ok = False
                got_shape = np.shape(item)
                if name in ("jacobian", "hessian") and got_shape == s + f and s != f:
                    text += f" (transposed? {name} is F + S: value axes first)"
                fatal.append(text)
            elif kind == "fatal":
                fatal.append(text)
            elif kind == "note":
                notes.append(text)
            else:
                problems.append(text)
        if not shape_ok:
            order = _guess_order(op, out, s, f)
            if order is not None:
                fatal.append(
                    f"the outputs look like ({', '.join(order)}) — the wrong order: "
                    f"{op.name} returns ({', '.join(op.outputs)})"
                )
        if fatal:
            return
        # Derivatives are finite wherever the value is.
        value = np.asarray(out[-1], dtype=np.float64)
        finite_value = np.isfinite(value)
        for position, name in enumerate(op.outputs[:-1]):
            if name in CLOSURES:
                continue
            arr = np.asarray(out[position], dtype=np.float64)
            rows = arr.reshape((*value.shape, -1)) if name == "jacobian" else arr
            if name == "jacobian":
                bad = ~np.isfinite(rows) & finite_value[..., None]
            elif bool(np.all(finite_value)):
                bad = ~np.isfinite(rows)
            else:
                continue
            if bad.any():
                first = np.flatnonzero(bad.reshape(-1))[0]
                k = tuple(int(i) for i in np.unravel_index(first, arr.shape))
                problems.append(
                    f"{name} has NaN or inf entries ({int(bad.sum())} of {arr.size}, "
                    f"first {name}{_index_text(k)} = {arr[k]}) where the value is "
                    f"finite"
                )
        if op.closure is not None:
            self._check_closure(op, out, s, f, problems, fatal, notes)

    def _check_closure(
        self,
        op: Operator,
        out: tuple[Any, ...],
        s: tuple[int, ...],
        f: tuple[int, ...],
        problems: list[str],
        fatal: list[str],
        notes: list[str],
    ) -> None:
        closure = op.closure
        assert closure is not None
        arg_shape = op.closure_arg_shape(s, f)
        out_shape = shape_of(closure.out, s, f)
        arg = self.rng.standard_normal(arg_shape).astype(self.x.dtype)
        try:
            result = out[0](arg)
        except Exception as err:
            fatal.append(
                f"{closure.name}(v) with v of shape {arg_shape} raised "
                f"{type(err).__name__}: {_first_line(err)}"
            )
            return
        problem = _array_problem(result, f"{closure.name}(v)", out_shape, self.x.dtype)
        if problem is not None:
            kind, text = problem
            if kind in ("shape", "fatal"):
                fatal.append(text)
            else:
                (notes if kind == "note" else problems).append(text)
        value = np.asarray(out[-1], dtype=np.float64)
        if (
            problem is None
            and bool(np.all(np.isfinite(value)))
            and not bool(np.all(np.isfinite(np.asarray(result, dtype=np.float64))))
        ):
            problems.append(
                f"{closure.name}(v) has NaN or inf entries where the value is finite"
            )

    def check_linear(self, supplied: _Supplied) -> None:
        """The closure is linear: ``c(a u + b w) = a c(u) + b c(w)``."""
        op = supplied.op
        closure = op.closure
        if closure is None or supplied.outputs is None:
            return
        s = tuple(self.x.shape)
        f = tuple(np.shape(supplied.outputs[-1]))
        arg_shape = op.closure_arg_shape(s, f)
        c = supplied.outputs[0]
        u = self.rng.standard_normal(arg_shape)
        w = self.rng.standard_normal(arg_shape)
        a, b = 2.0, -0.5
        dtype = self.x.dtype
        cu = np.asarray(c(u.astype(dtype)), dtype=np.float64)
        cw = np.asarray(c(w.astype(dtype)), dtype=np.float64)
        both = np.asarray(c((a * u + b * w).astype(dtype)), dtype=np.float64)
        self.compare(
            op.name,
            closure.name,
            "linearity: 2 c(u) - c(w)/2",
            both,
            a * cu + b * cw,
            rtol_factor=10.0,
            scale=abs(a) * np.abs(cu) + abs(b) * np.abs(cw),
            describe=lambda i: (
                f"{closure.name}(2u - w/2){_index_text(i)} vs "
                f"2 {closure.name}(u) - {closure.name}(w)/2"
            ),
        )

    def check_value(self, supplied: _Supplied) -> None:
        """The value equals ``func(x)``."""
        op = supplied.op
        assert supplied.outputs is not None
        got = np.asarray(supplied.outputs[-1], dtype=np.float64)
        if self.value is None:
            self.record(
                PartCheck(
                    op.name,
                    "value",
                    "func(x)",
                    "not checked",
                    message=f"{op.name}: value not checked: no function given "
                    f"(old call form); check_derivatives(func, x, "
                    f"{op.name}=derivative) compares it with func(x).",
                )
            )
            return
        check = self.compare(op.name, "value", f"{self.func_name}(x)", got, self.value)
        if check.status == "failed":
            # Which other output is the value? (outputs in the wrong order)
            for position, name in enumerate(op.outputs[:-1]):
                item = supplied.outputs[position]
                if name in CLOSURES or np.shape(item) != self.value.shape:
                    continue
                if np.allclose(np.asarray(item, np.float64), self.value, rtol=1e-6):
                    hint = (
                        f" Output {position} ({name}) equals {self.func_name}(x): are "
                        f"the outputs in the wrong order? {op.name} returns "
                        f"({', '.join(op.outputs)})."
                    )
                    self.checks[-1] = replace(check, message=check.message + hint)
                    break

    def differences_of(self, supplied: _Supplied, of: str) -> Differences:
        """Differences of ``func`` (for ``of == "value"``) or of an output."""
        if of == "value" and self.func_values is not None:
            assert self.value is not None
            if "func" not in self._differences:
                self._differences["func"] = Differences(
                    self.func_values, self.x64, self.value, self.func_eps, self.step
                )
            return self._differences["func"]
        key = (supplied.op.name, of)
        if key not in self._differences:
            g, center, eps = self._output_function(supplied, of)
            self._differences[key] = Differences(g, self.x64, center, eps, self.step)
        return self._differences[key]

    def _output_function(
        self, supplied: _Supplied, of: str
    ) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray, float]:
        """Output ``of`` as a function of a float64 point, its value, its precision.

        The output is computed in float64 when the derivative function accepts
        float64 input and returns float64 (more accurate differences), else in
        ``x``'s dtype.
        """
        position = supplied.position(of)
        function = supplied.function
        args = self.args
        try:
            raw = np.asarray(function(self.x64.copy(), *args)[position])
        except Exception:
            raw = None
        if raw is not None and raw.dtype == np.float64:

            def g64(y: np.ndarray) -> np.ndarray:
                return np.asarray(function(y, *args)[position], dtype=np.float64)

            return g64, raw, float(np.finfo(np.float64).eps)
        dtype = self.x.dtype

        def g(y: np.ndarray) -> np.ndarray:
            out = function(y.astype(dtype), *args)[position]
            return np.asarray(out, dtype=np.float64)

        return g, g(self.x64), float(np.finfo(dtype).eps)

    def check_differences(self, supplied: _Supplied, name: str) -> None:
        """Check output ``name`` against finite differences of its lower output."""
        op = supplied.op
        assert supplied.outputs is not None
        closure = CLOSURES.get(name)
        of = closure.of if closure is not None else ARRAYS[name].of
        assert of is not None
        source = (
            self.func_name
            if of == "value" and self.func_values is not None
            else f"its {of}"
        )
        test = f"finite differences of {source}"
        try:
            fd = self.differences_of(supplied, of)
        except Exception as err:
            self.record(
                PartCheck(
                    op.name,
                    name,
                    test,
                    "failed",
                    message=f"{op.name}: evaluating {of} for finite differences "
                    f"raised {type(err).__name__}: {_first_line(err)}",
                )
            )
            return
        first = self._round(supplied, name, fd, test, self.directions)
        if first is None or first.status != "failed" or self.full:
            return
        # Random projections: confirm a failure with twice as many fresh directions.
        second = self._round(supplied, name, fd, test, 2 * self.directions)
        if second is None:
            return
        self.checks = [c for c in self.checks if c is not first]
        if second.status == "failed":
            message = (
                f"{second.message} Confirmed: the first {self.directions} random "
                f"directions failed too."
            )
        elif second.status == "passed":
            message = (
                f"{op.name}: {name} disagreed along {self.directions} random "
                f"directions ({first.where}) but agreed along "
                f"{2 * self.directions} fresh ones; reported as passed."
            )
        else:
            return
        self.checks[-1] = replace(second, message=message)

    def _round(
        self, supplied: _Supplied, name: str, fd: Differences, test: str, count: int
    ) -> PartCheck | None:
        """One comparison with finite differences (recorded); ``None`` if it raised."""
        op = supplied.op
        try:
            return self._differences_round(
                supplied, name, fd, test, count, projected=not self.full
            )
        except Exception as err:
            self.record(
                PartCheck(
                    op.name,
                    name,
                    test,
                    "failed",
                    message=f"{op.name}: computing {name} or finite differences "
                    f"near x raised {type(err).__name__}: {_first_line(err)}",
                )
            )
            return None

    def _differences_round(
        self,
        supplied: _Supplied,
        name: str,
        fd: Differences,
        test: str,
        count: int,
        *,
        projected: bool,
    ) -> PartCheck:
        op = supplied.op
        s_ndim = self.x.ndim
        g_shape = fd.center.shape
        g_ndim = len(g_shape)
        closure = CLOSURES.get(name)
        item = supplied.output(name)
        rng = self.rng
        dtype = self.x.dtype

        def onehot(index: tuple[int, ...]) -> np.ndarray:
            weight = np.zeros(g_shape)
            weight[index] = 1.0
            return weight

        if not projected:
            jac, jac_err = fd.full()
            if closure is None:
                got = np.asarray(item, dtype=np.float64)

                def probe(index: tuple[int, ...], tol: float) -> str | None:
                    k = int(np.ravel_multi_index(index[g_ndim:], self.x.shape))
                    return fd.kink(fd.unit(k), onehot(index[:g_ndim]), tol)

                return self.compare(
                    op.name, name, test, got, jac, fd_error=jac_err, probe=probe
                )
            args = [
                rng.standard_normal(g_shape if closure.side == "left" else self.x.shape)
                for _ in range(count)
            ]
            if closure.side == "left":
                got = np.stack(
                    [np.asarray(item(u.astype(dtype)), np.float64) for u in args]
                )
                want = np.stack([np.tensordot(u, jac, g_ndim) for u in args])
                err = np.stack([np.tensordot(np.abs(u), jac_err, g_ndim) for u in args])
                scale = np.stack(
                    [np.tensordot(np.abs(u), np.abs(jac), g_ndim) for u in args]
                )

                def probe(index: tuple[int, ...], tol: float) -> str | None:
                    k = int(np.ravel_multi_index(index[1:], self.x.shape))
                    return fd.kink(fd.unit(k), args[index[0]], tol)

                def describe(index: tuple[int, ...]) -> str:
                    return f"{name}(u{index[0]}){_index_text(index[1:])}"

            else:
                got = np.stack(
                    [np.asarray(item(v.astype(dtype)), np.float64) for v in args]
                )
                want = np.stack([np.tensordot(jac, v, s_ndim) for v in args])
                err = np.stack([np.tensordot(jac_err, np.abs(v), s_ndim) for v in args])
                scale = np.stack(
                    [np.tensordot(np.abs(jac), np.abs(v), s_ndim) for v in args]
                )

                def probe(index: tuple[int, ...], tol: float) -> str | None:
                    return fd.kink(args[index[0]], onehot(index[1:]), tol)

                def describe(index: tuple[int, ...]) -> str:
                    return f"{name}(v{index[0]}){_index_text(index[1:])}"

            return self.compare(
                op.name,
                name,
                test,
                got,
                want,
                fd_error=err,
                scale=scale,
                describe=describe,
                probe=probe,
            )
        # Projected: random directions w.
        ws = [fd.random(rng) for _ in range(count)]
        along = [fd.along(w) for w in ws]
        want = np.stack([d for d, _ in along])
        err = np.stack([e for _, e in along])
        projected_scale: np.ndarray | None = None
        if closure is None:
            arr = np.asarray(item, dtype=np.float64)
            got = np.stack([np.tensordot(arr, w, s_ndim) for w in ws])
            projected_scale = np.stack(
                [np.tensordot(np.abs(arr), np.abs(w), s_ndim) for w in ws]
            )

            def probe(index: tuple[int, ...], tol: float) -> str | None:
                return fd.kink(ws[index[0]], onehot(index[1:]), tol)

            def describe(index: tuple[int, ...]) -> str:
                return f"({name} · w{index[0]}){_index_text(index[1:])}"

        elif closure.side == "left":
            us = [rng.standard_normal(g_shape) for _ in range(count)]
            got = np.array(
                [
                    np.tensordot(
                        np.asarray(item(u.astype(dtype)), np.float64), w, s_ndim
                    )
                    for u, w in zip(us, ws, strict=True)
                ]
            )
            projected_scale = np.array(
                [np.sum(np.abs(u) * np.abs(d)) for u, d in zip(us, want, strict=True)]
            )
            err = np.array(
                [np.sum(np.abs(u) * e) for u, e in zip(us, err, strict=True)]
            )
            want = np.array([np.sum(u * d) for u, d in zip(us, want, strict=True)])

            def probe(index: tuple[int, ...], tol: float) -> str | None:
                return fd.kink(ws[index[0]], us[index[0]], tol)

            def describe(index: tuple[int, ...]) -> str:
                return f"{name}(u{index[0]}) · w{index[0]}"

        else:
            got = np.stack([np.asarray(item(w.astype(dtype)), np.float64) for w in ws])

            def probe(index: tuple[int, ...], tol: float) -> str | None:
                return fd.kink(ws[index[0]], onehot(index[1:]), tol)

            def describe(index: tuple[int, ...]) -> str:
                return f"{name}(w{index[0]}){_index_text(index[1:])}"

        return self.compare(
            op.name,
            name,
            test + f" along {count} random directions",
            got,
            want,
            fd_error=err,
            scale=projected_scale,
            describe=describe,
            probe=probe,
        )

    def check_symmetric(self, supplied: _Supplied) -> None:
        """The Hessian is symmetric."""
        op = supplied.op
        n = self.x.size
        h = np.asarray(supplied.output("hessian"), dtype=np.float64).reshape(n, n)
        shape = self.x.shape

        def describe(index: tuple[int, ...]) -> str:
            i = np.unravel_index(index[0], shape)
            j = np.unravel_index(index[1], shape)
            both = tuple(int(a) for a in (*i, *j))
            swapped = tuple(int(a) for a in (*j, *i))
            return f"hessian{_index_text(both)} vs hessian{_index_text(swapped)}"

        self.compare(op.name, "hessian", "its transpose", h, h.T, describe=describe)

    # -- across operators ------------------------------------------------------------

    def check_consistency(self, supplied: Sequence[_Supplied]) -> None:
        """Outputs shared by several operators agree; closures match arrays."""
        usable = [s for s in supplied if s.usable]
        first_of: dict[str, _Supplied] = {}
        for s in usable:
            for name in s.op.outputs:
                if name in CLOSURES:
                    continue
                if name not in first_of:
                    first_of[name] = s
                    continue
                self.compare(
                    s.op.name,
                    name,
                    f"{first_of[name].op.name}'s {name}",
                    s.output(name),
                    first_of[name].output(name),
                )
        for s in usable:
            closure = s.op.closure
            if closure is None:
                continue
            c = s.output(closure.name)
            if closure.name == "vjp":
                if "jacobian" in first_of:
                    self._closure_vs_array(
                        s, c, first_of["jacobian"], "jacobian", "rows"
                    )
                elif "grad" in first_of and self._f_shape(s) == ():
                    self._closure_vs_array(s, c, first_of["grad"], "grad", "rows")
            elif closure.name == "jvp":
                if "jacobian" in first_of:
                    self._closure_vs_array(
                        s, c, first_of["jacobian"], "jacobian", "columns"
                    )
                elif "grad" in first_of and self._f_shape(s) == ():
                    self._closure_vs_array(s, c, first_of["grad"], "grad", "columns")
            elif closure.name == "hvp" and "hessian" in first_of:
                self._closure_vs_array(s, c, first_of["hessian"], "hessian", "columns")

    def _f_shape(self, s: _Supplied) -> tuple[int, ...]:
        return tuple(np.shape(s.output("value")))

    def _closure_vs_array(
        self,
        s: _Supplied,
        c: Function,
        owner: _Supplied,
        array_name: str,
        side: Literal["rows", "columns"],
    ) -> None:
        """``c`` of unit vectors (or random ones, for large shapes) vs an array."""
        closure = s.op.closure
        assert closure is not None
        arr = np.asarray(owner.output(array_name), dtype=np.float64)
        x_shape = self.x.shape
        if side == "rows":
            lead = arr.shape[: arr.ndim - self.x.ndim]
            size = math.prod(lead)
        else:
            lead = x_shape
            size = self.x.size
        dtype = self.x.dtype
        owner_name = f"{owner.op.name}'s {array_name}"
        if array_name == "grad" and side == "rows":
            units = np.ones((1,))
            label = f"{owner_name}, as {closure.name}(1)"
        elif size <= FULL_LIMIT:
            units = np.eye(size).reshape((size, *lead))
            label = f"{owner_name}, {side} as {closure.name} of unit vectors"
        else:
            units = self.rng.standard_normal((self.directions, *lead))
            label = f"{owner_name}, applied to random vectors"
        got = np.stack([np.asarray(c(u.astype(dtype)), np.float64) for u in units])

        def arg_name(r: int) -> str:
            if array_name == "grad" and side == "rows":
                return "1"
            return f"e{r}" if size <= FULL_LIMIT else f"u{r}"

        if side == "rows":
            want = np.stack([np.tensordot(u, arr, len(lead)) for u in units])
        else:
            want = np.stack([np.tensordot(arr, u, self.x.ndim) for u in units])
        self.compare(
            s.op.name,
            closure.name,
            label,
            got,
            want,
            describe=lambda i: f"{closure.name}({arg_name(i[0])}){_index_text(i[1:])}",
        )

    def check_against(
        self, supplied: _Supplied, reference: Function, label: str
    ) -> None:
        """Every output agrees with another implementation's (closures applied)."""
        op = supplied.op
        assert supplied.outputs is not None
        try:
            ref = reference(self.x.copy(), *self.args)
        except Exception as err:
            msg = (
                f"The reference for {op.name} ({label}) could not be computed: "
                f"{type(err).__name__}: {_first_line(err)}"
            )
            raise CheckUsageError(msg) from err
        for name, got, want in zip(op.outputs, supplied.outputs, ref, strict=True):
            if name in CLOSURES:
                s = tuple(self.x.shape)
                f = tuple(np.shape(supplied.outputs[-1]))
                arg_shape = op.closure_arg_shape(s, f)
                args = [
                    self.rng.standard_normal(arg_shape) for _ in range(self.directions)
                ]
                dtype = self.x.dtype
                got = np.stack(
                    [np.asarray(got(a.astype(dtype)), np.float64) for a in args]
                )
                want = np.stack(
                    [np.asarray(want(a.astype(dtype)), np.float64) for a in args]
                )
                self.compare(
                    op.name, name, label, got, want, describe=_argument_entry(name)
                )
            else:
                self.compare(op.name, name, label, got, want)


def _argument_entry(name: str) -> Callable[[tuple[int, ...]], str]:
    """Describes entry ``[r, i...]`` of stacked closure results as ``c(u_r)[i]``."""

    def describe(index: tuple[int, ...]) -> str:
        return f"{name}(u{index[0]}){_index_text(index[1:])}"

    return describe


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.split("\n")[0] if text else type(err).__name__


def _index_text(index: tuple[int, ...]) -> str:
    return f"[{', '.join(str(i) for i in index)}]" if index else ""


def _array_problem(
    item: Any, name: str, shape: tuple[int, ...], dtype: np.dtype
) -> tuple[Literal["shape", "fatal", "minor", "note"], str] | None:
    """What is wrong with one returned array, if anything.

    ``"shape"`` and ``"fatal"`` stop the numeric checks, ``"minor"`` fails the
    structure check, ``"note"`` (more precision than the input) is only reported.
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


def _guess_order(
    op: Operator, out: tuple[Any, ...], s: tuple[int, ...], f: tuple[int, ...]
) -> tuple[str, ...] | None:
    """The output names in the order returned, if the shapes say so unambiguously."""
    from itertools import permutations

    shapes = dict(zip([a.name for a in op.arrays], op.array_shapes(s, f), strict=True))
    names = op.outputs
    matches = []
    for order in permutations(names):
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
    if len(matches) == 1 and matches[0] != names:
        return matches[0]
    return None
