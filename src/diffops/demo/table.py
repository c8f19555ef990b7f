"""The tables of ``diffops check`` and ``diffops demo``, fitted to the terminal.

One table per function (per model in the demo): a heading line per source (a backend
or a supplied function), then one row per operator with the result, the largest
errors against each reference, and the times. Headers name what was compared
(:func:`legend` explains each column). When the table is wider than the terminal,
operators are shown by their first output (``hessian`` for
``hessian_grad_and_value``, with a key below the table); when it still does not
fit, each row becomes a block of ``column: value`` lines. No cell is cut.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import TextIO

from diffops.check.table import (
    Column,
    Section,
    format_table,
    terminal_width,
    wrap_notes,
)
from diffops.demo.rows import TOLERANCE, WHOLE_BACKEND, Row
from diffops.operators import OPERATORS
from diffops.timing import format_seconds


def render(
    results: Sequence[Row],
    file: TextIO | None = None,
    *,
    title: str | None = None,
    width: int | None = None,
) -> None:
    """Print the rows as tables (one per model for the demo), with their notes.

    Args:
        results: Rows from :func:`~diffops.demo.check_backends` or
            :func:`~diffops.demo.run_demo`.
        file: Where to print (default: standard output).
        title: Title of the table (the demo titles each model's table).
        width: Line length (default: the terminal's, or 80 when not a terminal).
    """
    from diffops.models import MODELS

    out = sys.stdout if file is None else file
    width = terminal_width() if width is None else width
    groups: dict[str, list[Row]] = {}
    for row in results:
        groups.setdefault(row.model, []).append(row)
    for model, rows in groups.items():
        heading = f"{model}: {MODELS[model].description}" if model else title
        print(format_rows(rows, width, title=heading), file=out, flush=True)


def format_rows(rows: Sequence[Row], width: int, *, title: str | None = None) -> str:
    """One table of rows, with its title and the notes on its rows.

    Args:
        rows: Rows of one function (one model).
        width: Line length.
        title: Title line.

    Returns:
        The text.
    """
    closed_forms = any(r.model for r in rows)
    noted = _noted(rows)
    numbers = {id(r): k for k, r in noted}
    lines = [wrap_notes([title], width)] if title else []
    references = sorted({r.reference for r in rows if r.reference})
    reference = references[0] if len(references) == 1 else "reference"
    columns = _columns(closed_forms, bool(references), reference)
    compared = bool(references)
    short = False
    table = format_table(
        columns,
        _body(rows, numbers, closed_forms, compared, False),
        width,
        vertical=False,
    )
    if _widest(table) > width:
        short = True
        body = _body(rows, numbers, closed_forms, compared, True)
        table = format_table(columns, body, width, vertical=False)
    if _widest(table) > width:  # a block of lines per row, full names
        short = False
        body = _body(rows, numbers, closed_forms, compared, False)
        table = format_table(columns, body, width)
    lines.append(table)
    if short:
        shown = dict.fromkeys(r.op_name for r in rows if r.op_name != WHOLE_BACKEND)
        # No line break inside "grad = grad_and_value" (no-break spaces).
        key = ", ".join(f"{_short(op)}\u00a0=\u00a0{op}" for op in shown)
        lines.append(wrap_notes([f"operators by their first output: {key}"], width))
    notes = [_note_text(k, r) for k, r in noted]
    if notes:
        lines.append(wrap_notes(notes, width))
    return "\n".join(lines)


def legend(*, closed_forms: bool, reference: str | None) -> list[str]:
    """What each column of the tables means, one sentence per column.

    Args:
        closed_forms: Whether the tables have the closed-form column (the demo).
        reference: The backend others were compared with, if any.

    Returns:
        The sentences.
    """
    lines = []
    if closed_forms:
        lines.append(
            f"error vs closed form: largest absolute difference from the model's "
            f"hand-derived derivatives (the demo requires at most {TOLERANCE:.0e})."
        )
    lines.append(
        "error vs fin. diff.: largest relative error against central finite "
        "differences of the output one order below (check_derivatives)."
    )
    if reference:
        lines.append(
            f"error vs {reference}: largest relative difference from the first "
            f"backend that passed the same operator ({reference}), closures applied "
            f"to the same random arguments."
        )
    lines += [
        "time per call: median of 7 interleaved rounds (batches of about 10 ms of "
        "calls at the same point, NumPy in and out; PyTorch on one thread), as in "
        "the benchmarks; wall-clock time, so a busy machine shows in it.",
        "first call: building the derivative function, tracing and compiling it "
        "(jax; symnum generates code) and one call; the framework was imported and "
        "started before (start-up).",
    ]
    return lines


def _columns(closed_forms: bool, compared: bool, reference: str) -> list[Column]:
    columns = [Column("operator"), Column("result")]
    if closed_forms:
        columns.append(Column("error vs\nclosed form", "right"))
    columns.append(Column("error vs\nfin. diff.", "right"))
    if compared:
        columns.append(Column(f"error vs\n{reference}", "right"))
    return [*columns, Column("time per\ncall", "right"), Column("first\ncall", "right")]


def _body(
    rows: Sequence[Row],
    numbers: dict[int, int],
    closed_forms: bool,
    compared: bool,
    short: bool,
) -> list[Sequence[str] | Section]:
    body: list[Sequence[str] | Section] = []
    source = None
    for row in rows:
        mark = f" [{numbers[id(row)]}]" if id(row) in numbers else ""
        if row.op_name == WHOLE_BACKEND:
            body.append(Section(f"{row.source}: {row.status}{mark}"))
            source = row.source
            continue
        if row.source != source:
            body.append(Section(row.source))
            source = row.source
        cells = [_short(row.op_name) if short else row.op_name, _result(row, mark)]
        if closed_forms:
            cells.append(_error(row.closed_form_error))
        cells.append(_error(row.finite_difference_error))
        if compared:
            cells.append(_error(row.reference_error))
        cells += [_seconds(row.per_call), _seconds(row.first_call)]
        body.append(cells)
    return body


def _widest(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def _short(op_name: str) -> str:
    """An operator by its first output: ``hessian`` for ``hessian_grad_and_value``."""
    return OPERATORS[op_name].outputs[0]


def _result(row: Row, mark: str) -> str:
    if row.failed:
        return f"FAILED{mark}"
    if row.status == "not differentiable":
        return f"kink{mark}"
    return "passed"


def _error(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.1e}"


def _seconds(value: float) -> str:
    return "" if math.isnan(value) else format_seconds(value)


def _noted(rows: Sequence[Row]) -> list[tuple[int, Row]]:
    """Rows with something to explain, numbered from 1."""
    noted = (r for r in rows if r.failed or (r.note and r.status != "passed"))
    return list(enumerate(noted, start=1))


def _note_text(number: int, row: Row) -> str:
    where = (
        row.source if row.op_name == WHOLE_BACKEND else f"{row.source} · {row.op_name}"
    )
    if row.model and row.failed and not row.note:
        return (
            f"[{number}] {where}: differs from the closed forms by "
            f"{row.closed_form_error:.2e} > {TOLERANCE:.0e}"
        )
    note = row.note.removeprefix(f"{row.op_name}: ")
    if row.status == "not differentiable":
        note = f"not differentiable at x: {note}"
    return f"[{number}] {where}: {note}"
