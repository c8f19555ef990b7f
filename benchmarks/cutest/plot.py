"""``cutest.png``: colors, detection + coloring + first call, and per-call time
against n (log scales), diffops and (when merged) asdex."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot(path: Path, all_rows: list[dict[str, Any]], asdex: bool) -> str | None:
    """Write the plot; returns a message when it was skipped (no matplotlib).

    Args:
        path: PNG file.
        all_rows: Rows (merged with asdex's when ``asdex``).
        asdex: Whether to draw asdex's points too.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no plot"

    def points(column: str, keep: Any = None) -> tuple[list[float], list[float]]:
        xs, ys = [], []
        for row in all_rows:
            value = row.get(column)
            if value is None or not row.get("n") or value <= 0:
                continue
            if keep is not None and not keep(row):
                continue
            xs.append(row["n"])
            ys.append(value)
        return xs, ys

    def failed(row: dict[str, Any]) -> bool:
        return row["status"] not in ("ok",)

    timed = any(row.get("call_s") for row in all_rows)
    fig, axes = plt.subplots(1, 3 if timed else 2, figsize=(17 if timed else 12, 5.2))
    panels = [
        (
            axes[0],
            "colors (products per call)",
            [
                ("colors", "diffops", "C0", "o"),
                ("asdex_colors", "asdex", "C1", "x"),
            ],
        ),
        (
            axes[1],
            "build + first call (s): detection, coloring, compile, run",
            [
                ("first_s", "diffops sparse", "C0", "o"),
                ("dense_first_s", "diffops dense", "0.6", "."),
                ("asdex_first_s", "asdex", "C1", "x"),
            ],
        ),
    ]
    if timed:  # not with --no-timing
        per_call = [
            ("call_s", "diffops sparse", "C0", "o"),
            ("dense_call_s", "diffops dense", "0.6", "."),
            ("asdex_call_s", "asdex jitted", "C1", "x"),
        ]
        panels.append((axes[2], "per call (s)", per_call))
    for ax, title, series in panels:
        for column, name, colour, marker in series:
            if column.startswith("asdex") and not asdex:
                continue
            xs, ys = points(column)
            if not xs:
                continue
            ax.scatter(xs, ys, s=14, c=colour, marker=marker, label=name, alpha=0.7)
        if series[0][0] in ("colors", "first_s"):
            xs, ys = points(series[0][0], failed)
            if xs:
                ax.scatter(
                    xs,
                    ys,
                    s=40,
                    facecolors="none",
                    edgecolors="red",
                    label="diffops: not ok",
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("n (variables)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle("CUTEst problems from sif2jax: sparse Jacobians and Hessians")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
