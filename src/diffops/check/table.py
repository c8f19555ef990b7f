"""Plain-text tables that fit a terminal: :func:`format_table`, :func:`wrap_notes`.

A table has :class:`Column` s (a header of one or two lines, left or right aligned)
and rows of strings; a row may also be a :class:`Section`, a heading line spanning
the table (e.g. the backend the following rows belong to). :func:`format_table`
lays it out within a width:

1. columns as wide as their widest cell, two spaces apart, when that fits;
2. otherwise the columns marked ``wrap`` are narrowed and their cells wrapped onto
   several lines (words kept whole where possible);
3. otherwise, a vertical layout: each row becomes a line with its first cell,
   followed by indented ``header: value`` lines.

No cell is ever cut, so units and words stay readable at any width. The width of a
terminal is :func:`terminal_width` (the ``COLUMNS`` variable, the terminal's size, or
80 when printing to a file or pipe).
"""

from __future__ import annotations

import re
import shutil
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

GAP = "  "
"""Space between two columns."""

MIN_WRAP_WIDTH = 12
"""Narrowest a wrapped column becomes before the vertical layout is used."""


@dataclass(frozen=True)
class Column:
    """One column of a table.

    Attributes:
        header: Header text; a newline splits it over two lines.
        align: ``"left"`` or ``"right"`` (numbers).
        wrap: Whether cells may be wrapped onto several lines to fit the width.
    """

    header: str
    align: Literal["left", "right"] = "left"
    wrap: bool = False

    @property
    def header_lines(self) -> list[str]:
        """The header's lines."""
        return self.header.split("\n")


@dataclass(frozen=True)
class Section:
    """A heading line inside a table (the rows below it belong to it).

    Attributes:
        title: The heading.
    """

    title: str


Row = Sequence[str] | Section


def terminal_width(default: int = 80) -> int:
    """Columns of the terminal, ``COLUMNS`` if set, else ``default``.

    Args:
        default: Width used when printing to a file or a pipe.

    Returns:
        The width in characters.
    """
    return shutil.get_terminal_size((default, 24)).columns


def format_table(
    columns: Sequence[Column],
    rows: Sequence[Row],
    width: int,
    *,
    vertical: bool = True,
) -> str:
    """The table as text no wider than ``width`` (where words allow).

    Args:
        columns: The columns.
        rows: Rows of cells (one string per column) and :class:`Section` headings.
        width: Largest line length wanted.
        vertical: Whether to fall back to the vertical layout; if not, a table that
            cannot fit is returned wider than ``width``.

    Returns:
        The lines of the table, joined by newlines.
    """
    natural = _natural_widths(columns, rows)
    widths = _narrowed(columns, natural, width) if _total(natural) > width else natural
    if widths is None and vertical:
        return "\n".join(_vertical(columns, rows, width))
    widths = natural if widths is None else widths
    lines = _header(columns, widths)
    for row in rows:
        if isinstance(row, Section):
            lines.extend(textwrap.wrap(row.title, width) or [""])
            continue
        lines.extend(_row_lines(columns, widths, row))
    return "\n".join(line.rstrip() for line in lines)


def wrap_notes(notes: Sequence[str], width: int, indent: str = "    ") -> str:
    """Notes wrapped to ``width``, continuation lines indented.

    Args:
        notes: One paragraph each.
        width: Line length.
        indent: Indent of the lines after a note's first.

    Returns:
        The wrapped notes, one per line group.
    """
    wrapped = [
        textwrap.fill(
            _SHORT_BRACKETS.sub(_unbroken, note),
            width,
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        ).replace(_NO_BREAK, " ")
        for note in notes
    ]
    return "\n".join(wrapped)


_NO_BREAK = "\u00a0"
_SHORT_BRACKETS = re.compile(r"\[[^\[\]]{1,20}\]")
"""An index such as ``[0, 1]``: kept on one line when notes are wrapped."""


def _unbroken(match: re.Match[str]) -> str:
    return match.group(0).replace(" ", _NO_BREAK)


def _natural_widths(columns: Sequence[Column], rows: Sequence[Row]) -> list[int]:
    widths = [max(len(line) for line in c.header_lines) for c in columns]
    for row in rows:
        if isinstance(row, Section):
            continue
        for k, cell in enumerate(row):
            widths[k] = max(widths[k], len(cell))
    return widths


def _total(widths: Sequence[int]) -> int:
    return sum(widths) + len(GAP) * (len(widths) - 1)


def _narrowed(
    columns: Sequence[Column], widths: list[int], width: int
) -> list[int] | None:
    """Widths with the wrapping columns narrowed to fit, or ``None`` if they can't."""
    excess = _total(widths) - width
    wrapping = [k for k, c in enumerate(columns) if c.wrap]
    room = sum(max(0, widths[k] - MIN_WRAP_WIDTH) for k in wrapping)
    if not wrapping or room < excess:
        return None
    narrowed = list(widths)
    # Take from the widest wrapping column first, one character at a time.
    while excess > 0:
        k = max(wrapping, key=lambda j: narrowed[j])
        narrowed[k] -= 1
        excess -= 1
    return narrowed


def _header(columns: Sequence[Column], widths: Sequence[int]) -> list[str]:
    depth = max(len(c.header_lines) for c in columns)
    lines = []
    for level in range(depth):
        cells = []
        for column in columns:
            parts = column.header_lines
            # Single-line headers sit on the last header line.
            offset = depth - len(parts)
            cells.append(parts[level - offset] if level >= offset else "")
        lines.append(_joined(columns, widths, cells))
    lines.append(GAP.join("-" * w for w in widths))
    return lines


def _row_lines(
    columns: Sequence[Column], widths: Sequence[int], row: Sequence[str]
) -> list[str]:
    pieces = [
        _wrapped(cell, w) if column.wrap else [cell]
        for column, w, cell in zip(columns, widths, row, strict=True)
    ]
    height = max(len(p) for p in pieces)
    return [
        _joined(columns, widths, [p[i] if i < len(p) else "" for p in pieces])
        for i in range(height)
    ]


def _wrapped(cell: str, width: int) -> list[str]:
    return textwrap.wrap(
        cell, width, break_long_words=True, break_on_hyphens=False
    ) or [""]


def _joined(columns: Sequence[Column], widths: Sequence[int], cells: list[str]) -> str:
    return GAP.join(
        cell.rjust(w) if column.align == "right" else cell.ljust(w)
        for column, w, cell in zip(columns, widths, cells, strict=True)
    )


def _vertical(columns: Sequence[Column], rows: Sequence[Row], width: int) -> list[str]:
    """One block per row: its first cell, then ``header: value`` lines."""
    lines: list[str] = []
    for row in rows:
        if isinstance(row, Section):
            lines.extend(textwrap.wrap(row.title, width) or [""])
            continue
        lines.extend(textwrap.wrap(row[0], width) or [""])
        for column, cell in zip(columns[1:], row[1:], strict=True):
            if cell:
                name = " ".join(column.header_lines)
                lines.extend(
                    textwrap.wrap(
                        f"{name}: {cell}",
                        width,
                        initial_indent="  ",
                        subsequent_indent="      ",
                        break_on_hyphens=False,
                    )
                )
    return lines
