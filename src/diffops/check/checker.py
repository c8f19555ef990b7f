"""The state of one check: :class:`Checker`.

A :class:`Checker` holds what every check at one point needs (the point, the extra
arguments, the function's value and a NumPy version of it, the tolerances, the
random generator of the directions) and collects the results. The checks themselves
are functions of a checker, grouped by what they compare:

- :mod:`~diffops.check.structure`: the call at ``x`` and what it returned (tuple,
  types, shapes, dtypes, closures, ``x`` unchanged), the value against ``func(x)``
  and the linearity of closures;
- :mod:`~diffops.check.differencing`: each output against finite differences of the
  output one order below;
- :mod:`~diffops.check.consistency`: symmetric Hessians, outputs shared by several
  operators, closures against the arrays they contract, and every output against a
  reference implementation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from diffops.check.compare import Comparison, compare_arrays
from diffops.check.differences import Differences
from diffops.check.report import PartCheck, describe_point
from diffops.check.supplied import Supplied

NumpyFunction = Callable[[np.ndarray], np.ndarray]


class Checker:
    """What the checks at one point share, and the checks done so far.

    Args:
        x: The point (float32 or float64).
        args: Extra arguments of the function and its derivative functions.
        func_values: The function as a NumPy function of a float64 point, or
            ``None`` (only the derivative functions' own outputs are references).
        value: ``func(x)`` in float64, or ``None``.
        func_name: The function's name, for messages.
        func_eps: Machine epsilon of the precision the function computes in.
        rtol: Relative tolerance.
        atol: Absolute tolerance.
        step: Largest finite-difference step, or ``None`` for the default.
        directions: Random directions / closure arguments per check.
        full_limit: Largest ``x.size`` differenced along every coordinate.
        seed: Seed of the random directions.
    """

    def __init__(
        self,
        x: np.ndarray,
        args: tuple[Any, ...],
        func_values: NumpyFunction | None,
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

    @property
    def point(self) -> str:
        """The point in words, for messages."""
        return describe_point(self.x)

    def record(self, check: PartCheck) -> PartCheck:
        """Add a check to the results.

        Args:
            check: The check.

        Returns:
            The same check.
        """
        self.checks.append(check)
        return check

    def replace(self, old: PartCheck, new: PartCheck) -> None:
        """Put ``new`` in the place of ``old`` among the results (or at the end).

        Args:
            old: A recorded check.
            new: Its replacement.
        """
        for k, check in enumerate(self.checks):
            if check is old:
                self.checks[k] = new
                return
        self.checks.append(new)

    def fail(self, op_name: str, part: str, test: str, message: str) -> PartCheck:
        """Record a failed check that has no numbers (a call raised).

        Args:
            op_name: Operator.
            part: Output.
            test: The reference, in words.
            message: What went wrong.

        Returns:
            The recorded check.
        """
        return self.record(PartCheck(op_name, part, test, "failed", message=message))

    def compare(
        self, op_name: str, part: str, test: str, got: Any, want: Any, **details: Any
    ) -> PartCheck:
        """Compare ``got`` with ``want`` (:func:`compare_arrays`) and record it.

        Args:
            op_name: Operator.
            part: Output checked.
            test: The reference, in words.
            got: Checked values.
            want: Reference values, same shape.
            **details: :func:`compare_arrays`' keywords (``fd_error``, ``scale``,
                ``describe``, ``probe``, ``rtol_factor``).

        Returns:
            The recorded check.
        """
        what = Comparison(
            op_name, part, test, self.rtol, self.atol, self.point, self.seed
        )
        return self.record(compare_arrays(what, got, want, **details))

    def with_message(self, check: PartCheck, message: str) -> None:
        """Replace a recorded check's message.

        Args:
            check: A recorded check.
            message: The new message.
        """
        self.replace(check, replace(check, message=message))

    def differences_of(self, supplied: Supplied, of: str) -> Differences:
        """Finite differences of ``func`` (for ``of == "value"``) or of an output.

        Args:
            supplied: The derivative function whose output ``of`` is differenced.
            of: ``"value"`` or an output name.

        Returns:
            The (cached) differences.
        """
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
        self, supplied: Supplied, of: str
    ) -> tuple[NumpyFunction, np.ndarray, float]:
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

    def random_arguments(self, shape: tuple[int, ...], count: int) -> list[np.ndarray]:
        """``count`` standard normal arrays of ``shape`` (closure arguments).

        Args:
            shape: Their shape.
            count: How many.

        Returns:
            The arrays, float64.
        """
        return [self.rng.standard_normal(shape) for _ in range(count)]

    def apply(self, closure: Callable[..., Any], args: list[np.ndarray]) -> np.ndarray:
        """A closure applied to each argument (cast to ``x``'s dtype), stacked.

        Args:
            closure: A product closure.
            args: Its arguments.

        Returns:
            The results in float64, stacked along a new first axis.
        """
        dtype = self.x.dtype
        return np.stack(
            [np.asarray(closure(a.astype(dtype)), np.float64) for a in args]
        )
