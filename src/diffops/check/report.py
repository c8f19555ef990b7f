"""The results of a check: :class:`PartCheck`, :class:`CheckReport`, the exceptions.

One :class:`PartCheck` records one comparison (one test of one output of one operator:
its status, largest errors, worst entry and an explanation); a :class:`CheckReport`
collects them, prints them as a table, converts them to JSON-compatible values and
raises :class:`DerivativeCheckError` for the first failure; :class:`CheckUsageError`
means there was nothing to check. :func:`describe_point` is the short description of
``x`` used in titles and messages, :func:`index_text` an index as text.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from diffops.check.table import (
    Column,
    Section,
    format_table,
    terminal_width,
    wrap_notes,
)
from diffops.errors import DiffopsError

Status = Literal["passed", "failed", "not differentiable", "not checked"]


class DerivativeCheckError(DiffopsError, AssertionError):
    """A derivative disagrees with its reference (finite differences by default).

    Attributes:
        report: The full :class:`CheckReport`, or ``None``.
        check: The failed :class:`PartCheck` the message describes, or ``None``.
    """

    def __init__(
        self,
        message: str,
        report: CheckReport | None = None,
        check: PartCheck | None = None,
    ):
        super().__init__(message)
        self.report = report
        self.check = check


class CheckUsageError(DiffopsError, ValueError):
    """``check_derivatives`` was called without anything to check."""


@dataclass(frozen=True)
class PartCheck:
    """One comparison: one test of one output (part) of one operator.

    Attributes:
        op_name: Operator, e.g. ``"hessian_grad_and_value"``.
        part: Output checked: ``"structure"``, ``"value"``, ``"grad"``,
            ``"hessian"``, ``"jacobian"`` or a closure (``"vjp"``, ``"mtp"``, ...).
        test: What it was compared with, e.g. ``"finite differences of grad"``.
        status: ``"passed"``, ``"failed"``, ``"not differentiable"`` (the function
            has a kink or jump within the finite-difference step) or
            ``"not checked"``.
        max_abs_error: Largest absolute error (``nan`` for non-numeric checks).
        max_rel_error: Largest relative error (see the ``diffops.check`` docstring).
        index: Index of the worst entry (largest error relative to its tolerance)
            in the compared array, or ``None``.
        where: The worst entry in words, e.g. ``"hessian[0, 1]"``.
        expected: Reference value at the worst entry.
        actual: Checked value at the worst entry.
        tolerance: Tolerance at the worst entry.
        message: Explanation (problems found, or why not checked).
    """

    op_name: str
    part: str
    test: str
    status: Status
    max_abs_error: float = math.nan
    max_rel_error: float = math.nan
    index: tuple[int, ...] | None = None
    where: str = ""
    expected: float | None = None
    actual: float | None = None
    tolerance: float | None = None
    message: str = ""

    @property
    def passed(self) -> bool:
        """Whether this check did not fail (skips and kinks are not failures)."""
        return self.status != "failed"

    def as_dict(self) -> dict[str, Any]:
        """The check as JSON-compatible values (``nan`` as ``None``)."""
        return {
            "operator": self.op_name,
            "part": self.part,
            "test": self.test,
            "status": self.status,
            "max_abs_error": _json_float(self.max_abs_error),
            "max_rel_error": _json_float(self.max_rel_error),
            "index": None if self.index is None else list(self.index),
            "where": self.where,
            "expected": _json_float(self.expected),
            "actual": _json_float(self.actual),
            "tolerance": _json_float(self.tolerance),
            "message": self.message,
        }


def _json_float(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True, eq=False)
class CheckReport(Mapping[str, float]):
    """What :func:`check_derivatives` found: one :class:`PartCheck` per comparison.

    ``print(report)`` shows a table (per operator: part, what it was compared with,
    result, largest absolute and relative errors, worst entry) that fits the
    terminal, followed by an explanation of each failure (:meth:`format`). The
    report also reads like the dictionary that ``check_derivatives`` used to
    return: ``report["hessian"]`` is the largest absolute error of the Hessian (keys
    ``"operator.part"`` when several operators were checked).

    Attributes:
        func_name: Name of the checked function.
        x: The point (a copy).
        checks: Every comparison, grouped by operator.
        seed: Seed of the random directions and closure arguments.
        rtol: Relative tolerance used.
        atol: Absolute tolerance used.
        reference: What the derivatives were compared with, in words.
    """

    func_name: str
    x: np.ndarray
    checks: tuple[PartCheck, ...]
    seed: int
    rtol: float
    atol: float
    reference: str

    @property
    def passed(self) -> bool:
        """Whether no check failed."""
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> tuple[PartCheck, ...]:
        """The failed checks."""
        return tuple(c for c in self.checks if not c.passed)

    @property
    def operators(self) -> tuple[str, ...]:
        """The operators checked, in order."""
        return tuple(dict.fromkeys(c.op_name for c in self.checks))

    def for_operator(self, op_name: str) -> CheckReport:
        """The report restricted to one operator.

        Args:
            op_name: Operator name.

        Returns:
            A report with that operator's checks only.
        """
        checks = tuple(c for c in self.checks if c.op_name == op_name)
        return replace(self, checks=checks)

    def with_checks(self, checks: Sequence[PartCheck]) -> CheckReport:
        """The report with ``checks`` appended.

        Args:
            checks: More checks, e.g. agreement with other implementations.

        Returns:
            A new report.
        """
        return replace(self, checks=(*self.checks, *checks))

    @property
    def max_abs_error(self) -> float:
        """Largest absolute error over the numeric checks (0 if none)."""
        return _nanmax(c.max_abs_error for c in self.checks)

    @property
    def max_rel_error(self) -> float:
        """Largest relative error over the numeric checks (0 if none)."""
        return _nanmax(c.max_rel_error for c in self.checks)

    @property
    def errors(self) -> dict[str, float]:
        """Largest absolute error per checked output (the old return value)."""
        several = len(self.operators) > 1
        errors: dict[str, float] = {}
        for c in self.checks:
            if math.isnan(c.max_abs_error):
                continue
            key = f"{c.op_name}.{c.part}" if several else c.part
            errors[key] = max(errors.get(key, 0.0), c.max_abs_error)
        return errors

    def __getitem__(self, key: str) -> float:
        return self.errors[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.errors)

    def __len__(self) -> int:
        return len(self.errors)

    def raise_if_failed(self) -> None:
        """Raise :class:`DerivativeCheckError` for the first failure, if any.

        Raises:
            DerivativeCheckError: (an ``AssertionError``) naming the operator, the
                part, the worst entry, the expected and actual numbers, the
                tolerance and the seed.
        """
        failures = self.failures
        if not failures:
            return
        first = failures[0]
        more = len(failures) - 1
        msg = first.message
        if more:
            others = ", ".join(f"{c.op_name} {c.part}" for c in failures[1:4])
            msg += (
                f"\n({more} more failed check{'s' if more > 1 else ''}: {others}"
                f"{', ...' if more > 3 else ''}; print the exception's .report)"
            )
        raise DerivativeCheckError(msg, report=self, check=first)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-compatible values."""
        return {
            "function": self.func_name,
            "x": self.x.tolist(),
            "dtype": str(self.x.dtype),
            "seed": self.seed,
            "rtol": self.rtol,
            "atol": self.atol,
            "reference": self.reference,
            "passed": self.passed,
            "checks": [c.as_dict() for c in self.checks],
        }

    def format(self, width: int | None = None) -> str:
        """The report as text: a header, a table of checks, the failures explained.

        Args:
            width: Line length (default: the terminal's, 80 when not a terminal);
                long cells wrap, no cell is cut.

        Returns:
            The text that ``print(report)`` shows.
        """
        width = terminal_width() if width is None else width
        verdict = "passed" if self.passed else f"FAILED ({len(self.failures)} failed)"
        header = [
            f"check_derivatives of {self.func_name} at {describe_point(self.x)}, "
            f"seed {self.seed}: {verdict}",
            f"reference: {self.reference}; rtol {self.rtol:.1e}, atol {self.atol:.1e}",
        ]
        rows: list[Sequence[str] | Section] = []
        previous = ("", "")
        for c in self.checks:
            if c.op_name != previous[0]:
                rows.append(Section(c.op_name))
            part = c.part if (c.op_name, c.part) != previous else ""
            previous = (c.op_name, c.part)
            status = {"failed": "FAILED"}.get(c.status, c.status)
            errors = [_short(c.max_abs_error), _short(c.max_rel_error)]
            rows.append((part, c.test, status, *errors, c.where))
        lines = [wrap_notes(header, width), "", format_table(_COLUMNS, rows, width)]
        notes = [
            f"- {_STATUS_LABELS.get(c.status, c.status)}: {c.message}"
            for c in self.checks
            if c.message
        ]
        if notes:
            lines += ["", wrap_notes(notes, width, indent="  ")]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()

    def __repr__(self) -> str:
        return str(self)


_STATUS_LABELS = {"failed": "FAILED", "passed": "note"}

_COLUMNS = (
    Column("part"),
    Column("compared with", wrap=True),
    Column("result"),
    Column("max abs\nerror", "right"),
    Column("max rel\nerror", "right"),
    Column("worst entry", wrap=True),
)
"""The columns of a printed report (operators are section headings)."""


def _short(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.1e}"


def _nanmax(values: Iterator[float] | Sequence[float]) -> float:
    found = [v for v in values if not math.isnan(v)]
    return max(found, default=0.0)


def index_text(index: tuple[int, ...]) -> str:
    """``"[1, 0]"`` for an index, ``""`` for the empty index of a 0-d array.

    Args:
        index: The index.

    Returns:
        The index as written after an array's name.
    """
    return f"[{', '.join(str(i) for i in index)}]" if index else ""


def describe_point(x: np.ndarray) -> str:
    """``x = [0.3, 0.5] (float64)`` for small points, else the shape and dtype.

    Args:
        x: The point.

    Returns:
        A short description.
    """
    if x.size <= 6:
        values = np.array2string(x, precision=6, separator=", ", floatmode="maxprec")
        return f"x = {values} ({x.dtype})"
    return f"x of shape {x.shape} ({x.dtype})"
