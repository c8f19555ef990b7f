"""The summary: counts, failures, timeouts, spurious entries, colors, times.

The same tables are printed with rich (when installed) and written to
``summary.md``; the full data is the CSV.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import rows

TOP = 25
"""Rows listed in the outlier tables."""


@dataclass
class Table:
    """One summary table."""

    title: str
    columns: Sequence[str]
    body: list[list[str]]
    note: str = ""


def seconds(value: float | None) -> str:
    """``1.2 s``, ``35 ms``, ``210 µs`` (``—`` when missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if value >= 1:
        return f"{value:.3g} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} µs"


def number(value: Any) -> str:
    """Integers with thousands separators, ratios with 3 digits, ``—`` if missing."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def repro(row: dict[str, Any]) -> str:
    """The command that re-runs one row."""
    return f"python -m benchmarks.cutest --problems '{rows.label(row)}'"


def _counts(all_rows: list[dict[str, Any]]) -> Table:
    problems: dict[tuple[str, str], str] = {}
    for row in all_rows:
        problems[(row["problem"], row["params"] or "")] = row["category"]
    by_category = Counter(problems.values())
    by_matrix = Counter(row["matrix"] for row in all_rows)
    by_status = Counter(row["status"] for row in all_rows)
    # Rows written before the oracle column were checked against the dense one.
    by_oracle = Counter(row.get("oracle") or "dense" for row in all_rows)

    def listed(counter: Counter[str]) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(counter.items()))

    body = [
        ["problems", f"{len(problems)}", listed(by_category)],
        ["matrices", f"{len(all_rows)}", listed(by_matrix)],
        ["status", "", listed(by_status)],
        ["oracle", "", listed(by_oracle)],
    ]
    return Table("Counts", ["", "total", "by kind"], body)


def _failures(all_rows: list[dict[str, Any]]) -> Table:
    body = []
    for row in all_rows:
        if row["status"] not in rows.FAILING:
            continue
        if row["status"] == "error":
            detail = row.get("error") or ""
        else:
            parts = []
            if row.get("misses"):
                parts.append(
                    f"{row['misses']} missed of {row['observed_nnz']} observed, "
                    f"e.g. {row.get('miss_examples')}"
                )
            if "wrong" in row["status"]:
                parts.append(
                    f"rel. error {number(row.get('max_rel_error'))} "
                    f"(value/grad {number(row.get('lower_rel_error'))})"
                )
            detail = "; ".join(parts)
        body.append(
            [
                rows.label(row),
                row["matrix"],
                number(row["n"]),
                row["status"],
                str(row.get("stage") or ""),
                detail,
                repro(row),
            ]
        )
    return Table(
        "Missed non-zeros, wrong values, errors",
        ["problem", "matrix", "n", "status", "stage", "detail", "repro"],
        body,
    )


def _timeouts(all_rows: list[dict[str, Any]]) -> Table:
    body = [
        [
            rows.label(row),
            row["matrix"],
            number(row["n"]),
            str(row.get("stage") or ""),
            seconds(row.get("detect_s")),
            seconds(row.get("color_s")),
            row.get("error") or "",
        ]
        for row in all_rows
        if row["status"] == "timeout"
    ]
    return Table(
        "Timeouts",
        ["problem", "matrix", "n", "stage reached", "detect", "color", "reason"],
        body,
    )


def _problem_errors(all_rows: list[dict[str, Any]]) -> Table:
    body = [
        [rows.label(row), row["matrix"], number(row["n"]), row.get("error") or ""]
        for row in all_rows
        if row["status"] == "problem_error"
    ]
    return Table(
        "Problems whose own function fails (not counted against diffops)",
        ["problem", "matrix", "n", "error"],
        body,
    )


def _spurious(all_rows: list[dict[str, Any]], asdex: bool) -> Table:
    candidates = [r for r in all_rows if r.get("spurious")]
    if asdex:
        candidates.sort(
            key=lambda r: (r.get("nnz") or 0) - (r.get("asdex_nnz") or 0), reverse=True
        )
    else:
        candidates.sort(key=lambda r: r["spurious"], reverse=True)
    body = []
    for row in candidates[:TOP]:
        line = [
            rows.label(row),
            row["matrix"],
            number(row["n"]),
            number(row["nnz"]),
            number(row["observed_nnz"]),
            number(row["spurious"]),
        ]
        if asdex:
            line += [number(row.get("asdex_nnz")), number(row.get("nnz_ratio"))]
        body.append(line)
    columns = ["problem", "matrix", "n", "nnz", "observed", "spurious"]
    if asdex:
        columns += ["asdex nnz", "nnz / asdex"]
    return Table(
        f"Spurious entries: top {TOP}"
        + (" by nnz beyond asdex's" if asdex else " by count"),
        columns,
        body,
        note=f"{len(candidates)} matrices with spurious entries (pattern entries zero "
        f"at every point; not failures)",
    )


def _colors(all_rows: list[dict[str, Any]], asdex: bool) -> Table:
    measured = [r for r in all_rows if r.get("colors") is not None]
    if asdex:
        both = [r for r in measured if r.get("asdex_colors") is not None]
        more = [r for r in both if r["colors"] > r["asdex_colors"]]
        fewer = sum(1 for r in both if r["colors"] < r["asdex_colors"])
        more.sort(key=lambda r: r["colors"] - r["asdex_colors"], reverse=True)
        note = (
            f"{len(both)} matrices colored by both: diffops fewer {fewer}, equal "
            f"{len(both) - len(more) - fewer}, more {len(more)}"
        )
        worse = more
    else:
        worse = [
            r
            for r in measured
            if r.get("color_bound") is not None and r["colors"] > r["color_bound"]
        ]
        worse.sort(key=lambda r: r["colors"] - r["color_bound"], reverse=True)
        note = f"{len(measured)} matrices colored; {len(worse)} above the bound"
    body = []
    for row in worse[:TOP]:
        line = [
            rows.label(row),
            row["matrix"],
            number(row["n"]),
            str(row.get("mode")),
            number(row["colors"]),
            number(row.get("color_bound")),
        ]
        if asdex:
            line += [number(row.get("asdex_colors")), str(row.get("asdex_mode"))]
        body.append(line)
    columns = ["problem", "matrix", "n", "mode", "colors", "bound"]
    if asdex:
        columns += ["asdex colors", "asdex mode"]
    title = f"Colors: top {TOP} " + (
        "above asdex's" if asdex else "above the pattern's bound"
    )
    return Table(title, columns, body, note=note)


def _distribution(
    all_rows: list[dict[str, Any]],
    name: str,
    value: Callable[[dict[str, Any]], float | None],
    fmt: Callable[[float | None], str],
) -> list[str]:
    pairs = [(v, r) for r in all_rows if (v := value(r)) is not None]
    if not pairs:
        return [name, "0", "—", "—", "—", ""]
    values = sorted(v for v, _ in pairs)
    worst_value, worst = max(pairs, key=lambda p: p[0])
    p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
    return [
        name,
        str(len(values)),
        fmt(statistics.median(values)),
        fmt(p90),
        fmt(worst_value),
        f"{rows.label(worst)} {worst['matrix']} (n={worst['n']})",
    ]


def _get(column: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda r: r.get(column)


def _both(a: str, b: str) -> Callable[[dict[str, Any]], float | None]:
    def total(r: dict[str, Any]) -> float | None:
        if r.get(a) is None or r.get(b) is None:
            return None
        return float(r[a]) + float(r[b])

    return total


def _ratio(a: str, b: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda r: rows.ratio(r.get(a), r.get(b))


def _times(all_rows: list[dict[str, Any]], asdex: bool, title: str) -> Table:
    ratio_fmt: Callable[[float | None], str] = lambda v: f"{v:.3g}x"  # noqa: E731
    lines = [
        ("detect", _get("detect_s"), seconds),
        ("color", _get("color_s"), seconds),
        ("detect + color", _both("detect_s", "color_s"), seconds),
        ("first call, sparse", _get("first_s"), seconds),
        ("first call, dense", _get("dense_first_s"), seconds),
        ("first call sparse / dense", _ratio("first_s", "dense_first_s"), ratio_fmt),
        ("per call, sparse", _get("call_s"), seconds),
        ("per call, dense", _get("dense_call_s"), seconds),
        ("per call sparse / dense", _ratio("call_s", "dense_call_s"), ratio_fmt),
    ]
    if asdex:
        lines += [
            ("asdex detect", _get("asdex_detect_s"), seconds),
            ("asdex color", _get("asdex_color_s"), seconds),
            ("asdex first call", _get("asdex_first_s"), seconds),
            ("asdex per call", _get("asdex_call_s"), seconds),
            ("detect / asdex", _ratio("detect_s", "asdex_detect_s"), ratio_fmt),
            ("detect + color / asdex", _get("detect_color_ratio"), ratio_fmt),
            ("first call / asdex", _get("first_ratio"), ratio_fmt),
            ("per call / asdex", _get("call_ratio"), ratio_fmt),
        ]
    body = [_distribution(all_rows, name, get, fmt) for name, get, fmt in lines]
    return Table(title, ["", "rows", "median", "p90", "max", "max at"], body)


def tables(all_rows: list[dict[str, Any]], asdex: bool) -> list[Table]:
    """Every summary table."""
    large = [r for r in all_rows if (r.get("n") or 0) >= 1000]
    by_size = [_times(large, asdex, "Times, n >= 1000")] if large else []
    return [
        _counts(all_rows),
        _failures(all_rows),
        _timeouts(all_rows),
        _problem_errors(all_rows),
        _spurious(all_rows, asdex),
        _colors(all_rows, asdex),
        _times(all_rows, asdex, "Times (rows where measured)"),
        *by_size,
    ]


def print_tables(all_tables: list[Table]) -> None:
    """Print with rich when installed, as Markdown otherwise."""
    try:
        from rich.console import Console
        from rich.table import Table as RichTable
        from rich.text import Text
    except ImportError:
        print(markdown(all_tables, header=""))
        return
    console = Console(width=max(Console().width, 160))
    for table in all_tables:
        if not table.body and table.title != "Counts":
            console.print(f"[bold]{table.title}[/]: none")
            continue
        rich_table = RichTable(title=table.title, caption=table.note or None)
        for column in table.columns:
            rich_table.add_column(column, overflow="fold")
        for line in table.body:
            rich_table.add_row(*(Text(cell) for cell in line))
        console.print(rich_table)


def markdown(all_tables: list[Table], header: str) -> str:
    """The tables as Markdown."""
    parts = [header] if header else []
    for table in all_tables:
        parts.append(f"## {table.title}\n")
        if not table.body:
            parts.append("None.\n")
            continue
        if table.note:
            parts.append(table.note + "\n")
        parts.append("| " + " | ".join(table.columns) + " |")
        parts.append("|" + "---|" * len(table.columns))
        for line in table.body:
            cells = [cell.replace("|", "\\|").replace("\n", " ") for cell in line]
            parts.append("| " + " | ".join(cells) + " |")
        parts.append("")
    return "\n".join(parts)


def write_markdown(path: Path, all_tables: list[Table], header: str) -> None:
    """``summary.md``."""
    path.write_text(markdown(all_tables, header))
