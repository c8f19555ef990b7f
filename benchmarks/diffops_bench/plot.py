"""``scaling.png``: per-call time and grad/value ratio against d for the O(d) case."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from .records import Record
from .targets import ok

COLOURS = {
    "jax": "C0",
    "jax_nojit": "C1",
    "autograd": "C2",
    "torch": "C3",
    "symnum": "C4",
    "numpy": "0.4",
}


def _plot_series(r: Record) -> tuple[str, str, str]:
    """Label, colour and line style of a record's curve in the scaling plot."""
    if r.kind == "numpy":
        return "numpy closed form", COLOURS["numpy"], "-"
    if r.kind == "diffops":
        return r.impl, COLOURS.get(r.backend or "", "C5"), "-"
    family = r.family or r.framework
    backend = {"jax.jit": "jax", "jax eager": "jax_nojit", "torch.func": "torch"}
    colour = COLOURS.get(backend.get(family, family), "C5")
    style = "-." if family == "torch.func" else ":"
    return f"{family} best hand-written", colour, style


def plot(path: Path, records: Sequence[Record]) -> str | None:
    """Per-call time and grad/value ratio against d for the O(d) case (log-log).

    Args:
        path: The PNG file to write.
        records: Every record of the run (only ``rw_softplus`` rows are plotted).

    Returns:
        Why no plot was written (matplotlib missing), else ``None``.
    """
    rows = [r for r in records if r.section == "rw_softplus" and ok(r)]
    if not rows:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no plot written (pip install matplotlib)"
    fig, (ax_time, ax_ratio) = plt.subplots(1, 2, figsize=(14, 5.5))
    curves: dict[tuple[str, str, str], dict[str, dict[int, float]]] = {}
    for r in rows:
        series = curves.setdefault(_plot_series(r), {}).setdefault(r.op, {})
        series[r.dim] = min(series.get(r.dim, math.inf), r.median_us or math.inf)
    for (label, colour, style), ops in curves.items():
        width = 2.0 if style == "-" else 1.2
        grad, value = ops.get("grad_and_value", {}), ops.get("value", {})
        if grad:
            dims = sorted(grad)
            ax_time.plot(
                dims,
                [grad[d] for d in dims],
                style,
                marker="o",
                ms=4,
                color=colour,
                lw=width,
                label=f"{label}: grad_and_value",
            )
        if value and style == "-":
            dims = sorted(value)
            ax_time.plot(
                dims,
                [value[d] for d in dims],
                "--",
                marker="s",
                ms=3,
                color=colour,
                lw=1,
                alpha=0.7,
                label=f"{label}: value",
            )
        dims = sorted(set(grad) & set(value))
        if dims and "torch.func" not in label:
            ax_ratio.plot(
                dims,
                [grad[d] / value[d] for d in dims],
                style,
                marker="o",
                ms=4,
                color=colour,
                lw=width,
                label=label,
            )
    ax_time.set(
        xscale="log",
        yscale="log",
        xlabel="input dimension d",
        ylabel="median time per call (µs)",
        title="O(d) log-density: per-call time (thick: diffops, thin: hand-written)",
    )
    ax_time.grid(True, which="both", alpha=0.3)
    ax_time.legend(fontsize=6.5, ncol=2)
    ax_ratio.axhline(2.0, color="C0", ls=":", lw=1, label="jax target 2.0 (d = 10⁶)")
    ax_ratio.axhline(2.5, color="C3", ls=":", lw=1, label="torch target 2.5 (d = 10⁶)")
    ax_ratio.set(
        xscale="log",
        yscale="log",
        xlabel="input dimension d",
        ylabel="grad_and_value time / value time",
        title="cost of the gradient relative to the value",
    )
    ax_ratio.grid(True, which="both", alpha=0.3)
    ax_ratio.legend(fontsize=6.5)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None
