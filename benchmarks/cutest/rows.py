"""The CSV rows (one per problem × matrix): columns, reading, writing, merging.

Standard library only; both harnesses write rows with these columns (a column a
harness does not measure stays empty).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

COLUMNS: dict[str, str] = {
    "problem": "CUTEst name",
    "params": "size fields given to the sif2jax constructor ('' = default size)",
    "category": "unconstrained, bounded, constrained or equations (sif2jax's tuple)",
    "matrix": "hessian (objective), jacobian (constraints) or lagrangian (Hessian)",
    "n": "variables",
    "rows": "rows of the matrix",
    "status": "ok, miss, wrong, miss+wrong, error, timeout, problem_error",
    "stage": "the last stage reached (where an error or timeout happened)",
    "error": "exception text (last line) or timeout reason",
    "nnz": "entries of the detected pattern (stored entries of the sparse result)",
    "observed_nnz": "entries non-zero in the dense derivative at some point",
    "misses": "entries non-zero in the dense derivative but not in the pattern",
    "miss_examples": "up to 5 missed (row,col)",
    "spurious": "pattern entries zero at every point",
    "nonfinite": "dense entries NaN/inf at some point (left out of the counts)",
    "max_rel_error": "max |sparse - dense| / max |dense| over points",
    "lower_rel_error": "the same for the value and gradient",
    "colors": "products per call",
    "mode": "forward, reverse, symmetric, ... (as the tool reports it)",
    "color_bound": "lower bound from the pattern: fullest row (Hessian), fewer of "
    "fullest row and column (Jacobian)",
    "detect_s": "detection time",
    "color_s": "coloring time",
    "first_s": "build + first call of the sparse operator (detection, coloring, "
    "compile, run)",
    "call_s": "per call of the sparse operator (median of interleaved batches)",
    "dense_first_s": "build + first call of the dense operator",
    "dense_call_s": "per call of the dense operator",
    "points": "points compared",
    "scales": "perturbation scale of each point (smaller when x0 + 0.1 N(0,1) was "
    "not finite)",
    "points_digest": "hash of the points (equal in both harnesses)",
    "seconds": "wall time of the whole task",
    "backend": "the diffops backend measured (jax; jax_nojit: op by op, no XLA "
    "compile)",
    "oracle": "what checked the sparse result: dense (the dense derivative), "
    "dense-nojit (the dense derivative op by op), products (JAX's JVPs or HVPs at "
    "random vectors; no observed or spurious counts); empty: dense",
}
"""Column → meaning (also the CSV header, in this order)."""

FLOATS = {
    "max_rel_error",
    "lower_rel_error",
    "detect_s",
    "color_s",
    "first_s",
    "call_s",
    "dense_first_s",
    "dense_call_s",
    "seconds",
}
INTS = {
    "n",
    "rows",
    "nnz",
    "observed_nnz",
    "misses",
    "spurious",
    "nonfinite",
    "colors",
    "color_bound",
    "points",
}

ASDEX_COLUMNS = (
    "status",
    "error",
    "nnz",
    "observed_nnz",
    "misses",
    "max_rel_error",
    "colors",
    "mode",
    "detect_s",
    "color_s",
    "first_s",
    "call_s",
    "points_digest",
)
"""asdex columns merged into the main table (prefixed ``asdex_``)."""

FAILING = ("miss", "wrong", "miss+wrong", "error")


def new_row(spec: dict[str, Any], matrix: str) -> dict[str, Any]:
    """An empty row for one matrix of one problem."""
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(
        problem=spec["name"],
        params=spec["params"],
        category=spec["category"],
        matrix=matrix,
        n=spec["n"],
        rows=spec["m"] if matrix == "jacobian" else spec["n"],
        status="running",
        stage="start",
        error="",
    )
    return row


def key(row: dict[str, Any]) -> tuple[str, str, str]:
    """(problem, params, matrix): identifies a row across harnesses."""
    return (str(row["problem"]), str(row["params"] or ""), str(row["matrix"]))


def label(row: dict[str, Any]) -> str:
    """``ARGLINA[n=50,m=100]`` or ``ARWHEAD``: the name ``--problems`` takes."""
    return f"{row['problem']}[{row['params']}]" if row.get("params") else row["problem"]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _parse(column: str, text: str) -> Any:
    if text == "":
        return None
    base = column.removeprefix("asdex_")
    if base in INTS:
        return int(float(text))
    if base in FLOATS or base.endswith("_ratio"):
        return float(text)
    if base in {"same_points", "pattern_changed"}:
        return text == "True"
    return text


class Writer:
    """Appends rows to a CSV as they arrive (a run cut short keeps what it did)."""

    def __init__(self, path: Path, columns: Sequence[str], append: bool = False):
        self.path = path
        self.columns = list(columns)
        fresh = not (append and path.exists())
        self._file = path.open("w" if fresh else "a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=self.columns)
        if fresh:
            self._writer.writeheader()
            self._file.flush()

    def write(self, row: dict[str, Any]) -> None:
        """One row (missing columns empty)."""
        self._writer.writerow({c: _text(row.get(c)) for c in self.columns})
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()


def read(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV written by :class:`Writer` (typed; the last row of a key wins)."""
    with path.open(newline="") as handle:
        rows = [
            {column: _parse(column, text) for column, text in row.items()}
            for row in csv.DictReader(handle)
        ]
    latest = {key(row): row for row in rows}
    return list(latest.values())


def write_all(
    path: Path, rows: Iterable[dict[str, Any]], columns: Sequence[str]
) -> None:
    """Write a whole CSV."""
    writer = Writer(path, columns)
    for row in rows:
        writer.write(row)
    writer.close()


def merge_asdex(
    rows: list[dict[str, Any]], asdex_rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Add ``asdex_*`` columns and ratios (diffops / asdex) to the diffops rows."""
    by_key = {key(row): row for row in asdex_rows}
    merged = []
    for row in rows:
        other = by_key.get(key(row))
        row = dict(row)
        for column in ASDEX_COLUMNS:
            row[f"asdex_{column}"] = other.get(column) if other else None
        row["nnz_ratio"] = ratio(row.get("nnz"), row.get("asdex_nnz"))
        row["colors_ratio"] = ratio(row.get("colors"), row.get("asdex_colors"))
        row["detect_color_ratio"] = ratio(
            _sum(row.get("detect_s"), row.get("color_s")),
            _sum(row.get("asdex_detect_s"), row.get("asdex_color_s")),
        )
        row["first_ratio"] = ratio(row.get("first_s"), row.get("asdex_first_s"))
        row["call_ratio"] = ratio(row.get("call_s"), row.get("asdex_call_s"))
        if other is not None:
            row["same_points"] = other.get("points_digest") == row["points_digest"]
        merged.append(row)
    return merged


MERGED_COLUMNS = (
    *COLUMNS,
    *(f"asdex_{c}" for c in ASDEX_COLUMNS),
    "nnz_ratio",
    "colors_ratio",
    "detect_color_ratio",
    "first_ratio",
    "call_ratio",
    "same_points",
)


def _sum(a: Any, b: Any) -> float | None:
    if a is None or b is None:
        return None
    return float(a) + float(b)


def ratio(a: Any, b: Any) -> float | None:
    """``a / b``, or ``None`` when either is missing or ``b`` is 0."""
    if a is None or b is None:
        return None
    a, b = float(a), float(b)
    if b == 0 or math.isnan(a) or math.isnan(b):
        return None
    return a / b
