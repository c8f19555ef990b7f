"""The results of ``diffops check`` and ``diffops demo``: :class:`Row` and summaries.

One :class:`Row` is one implementation of one operator (a backend's, or a
hand-written function), checked and timed; :func:`failures`, :func:`summary` and
:func:`as_json` read a list of rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from diffops.check import CheckReport

TOLERANCE = 1e-8
"""Largest absolute error against the closed forms that the demo accepts."""

FAILED = ("failed", "error")
"""Statuses that fail a row (a check failed, or the derivative function raised)."""

WHOLE_BACKEND = "(all)"
"""The operator of a row that stands for a whole backend (skipped, not applicable)."""


@dataclass
class Row:
    """One implementation of one operator: checked and timed.

    Attributes:
        source: Backend name, or ``"supplied: NAME"`` for a hand-written function.
        op_name: Operator name (``"(all)"`` for a backend that does not apply).
        status: ``"passed"``, ``"failed"`` (a check failed), ``"error"`` (it
            raised), ``"not differentiable"`` (``x`` is at a kink),
            ``"not applicable"`` (the function cannot run on this backend) or
            ``"skipped"``.
        max_abs_error: Largest absolute error of the checks (``nan`` if none ran).
        max_rel_error: Largest relative error of the checks.
        per_call: Median seconds per call (interleaved batches, after the first).
        first_call: Seconds to build the derivative function, trace and compile it
            where the backend does, and call it once.
        note: The first failure, the error, or why not applicable / skipped.
        report: The :class:`~diffops.check.CheckReport` of this operator.
        model: Model name (demo only).
        closed_form_error: Largest absolute error against the closed forms (demo
            only; ``nan`` otherwise).
        reference: The backend this row was compared with (``""`` if none).
    """

    source: str
    op_name: str
    status: str
    max_abs_error: float = math.nan
    max_rel_error: float = math.nan
    per_call: float = math.nan
    first_call: float = math.nan
    note: str = ""
    report: CheckReport | None = field(default=None, repr=False)
    model: str = ""
    closed_form_error: float = math.nan
    reference: str = ""

    @property
    def failed(self) -> bool:
        """Whether this row counts as a failure (exit code 1)."""
        if self.status in FAILED:
            return True
        if self.status in ("skipped", "not applicable"):
            return False
        return bool(self.model) and not self.closed_form_error <= TOLERANCE

    @property
    def finite_difference_error(self) -> float:
        """Largest relative error against finite differences (``nan`` if none)."""
        return self._max_rel(lambda test: test.startswith("finite differences"))

    @property
    def reference_error(self) -> float:
        """Largest relative difference from :attr:`reference` (``nan`` if none)."""
        if not self.reference:
            return math.nan
        label = f"{self.reference}'s {self.op_name}"
        return self._max_rel(lambda test: test == label)

    def _max_rel(self, chosen: Any) -> float:
        if self.report is None:
            return math.nan
        found = [
            c.max_rel_error
            for c in self.report.checks
            if chosen(c.test) and not math.isnan(c.max_rel_error)
        ]
        return max(found, default=math.nan)

    def as_dict(self) -> dict[str, Any]:
        """The row as JSON-compatible values (``nan`` as ``None``)."""
        data: dict[str, Any] = {
            "source": self.source,
            "operator": self.op_name,
            "status": "failed" if self.failed else self.status,
            "max_abs_error": finite_or_none(self.max_abs_error),
            "max_rel_error": finite_or_none(self.max_rel_error),
            "max_rel_error_vs_finite_differences": finite_or_none(
                self.finite_difference_error
            ),
            "reference": self.reference or None,
            "max_rel_error_vs_reference": finite_or_none(self.reference_error),
            "per_call_seconds": finite_or_none(self.per_call),
            "first_call_seconds": finite_or_none(self.first_call),
            "note": self.note,
        }
        if self.model:
            data["model"] = self.model
            data["closed_form_error"] = finite_or_none(self.closed_form_error)
        if self.report is not None:
            data["checks"] = [c.as_dict() for c in self.report.checks]
        return data


def finite_or_none(value: float) -> float | None:
    """``value`` as a float, or ``None`` (JSON ``null``) if it is not finite.

    Args:
        value: A number.

    Returns:
        The number or ``None``.
    """
    return float(value) if math.isfinite(value) else None


def failures(results: Sequence[Row]) -> list[Row]:
    """Rows that fail: a check failed, an error, or (demo) a closed-form mismatch.

    Args:
        results: Rows from :func:`~diffops.demo.run_demo` or
            :func:`~diffops.demo.check_backends`.

    Returns:
        The failing rows.
    """
    return [r for r in results if r.failed]


def summary(rows: Sequence[Row]) -> str:
    """One line: how many passed, failed, did not apply.

    Args:
        rows: The rows.

    Returns:
        E.g. ``"12 passed, 1 failed; not applicable: symnum"``.
    """
    bad = failures(rows)
    counted = [r for r in rows if r.op_name != WHOLE_BACKEND]
    passed = sum(1 for r in counted if not r.failed)
    text = f"{passed} passed, {len(bad)} failed"
    kinks = sum(1 for r in counted if r.status == "not differentiable")
    if kinks:
        text += f" ({kinks} at a point that is not differentiable)"
    not_applicable = [r.source for r in rows if r.status == "not applicable"]
    if not_applicable:
        text += f"; not applicable: {', '.join(not_applicable)}"
    return text


def applied_backends(rows: Sequence[Row]) -> list[str]:
    """Backends that ran the function.

    Args:
        rows: The rows.

    Returns:
        Backend names with at least one operator row.
    """
    return list(
        dict.fromkeys(
            r.source
            for r in rows
            if not r.source.startswith("supplied") and r.op_name != WHOLE_BACKEND
        )
    )


def as_json(rows: Sequence[Row], **meta: Any) -> dict[str, Any]:
    """The rows as one JSON-compatible document.

    Args:
        rows: The rows.
        **meta: Extra top-level entries (target, point, start-up times, ...).

    Returns:
        ``{**meta, "passed": ..., "summary": ..., "results": [...]}``.
    """
    return {
        **meta,
        "passed": not failures(rows),
        "summary": summary(rows),
        "backends_applied": applied_backends(rows),
        "not_applicable": {
            r.source: r.note.removeprefix("not applicable: ")
            for r in rows
            if r.status == "not applicable"
        },
        "results": [r.as_dict() for r in rows],
    }
