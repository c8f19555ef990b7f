"""Reports: ``results.json``, ``results.md`` and the tables printed to the terminal."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .config import COMMAND, Config
from .ops import short_name
from .records import Record, fmt_ratio, fmt_us
from .targets import Target

TARGET_HEADERS = ("target", "measured as", "measured", "threshold", "result", "detail")


def _check_mark(r: Record) -> str:
    if r.correct is False:
        return "WRONG" if r.median_us is not None else "ERROR"
    return "ok" if r.correct else ""


_HEADERS = (
    "op",
    "d",
    "implementation",
    "µs/call",
    "IQR µs",
    "×fw best",
    "×numpy",
    "torch.func÷diffops",
    "check",
)


def result_rows(
    records: Sequence[Record], ratios: dict[int, dict[str, float | None]], section: str
) -> list[list[str]]:
    rows = []
    for i, r in enumerate(records):
        if r.section != section or r.count is not None:  # counts: a derived table
            continue
        ratio = ratios.get(i, {})
        iqr = (
            "—"
            if r.q1_us is None or r.q3_us is None
            else f"{fmt_us(r.q1_us)}–{fmt_us(r.q3_us)}"
        )
        tf = ratio.get("torch_func_best_over_diffops")
        rows.append(
            [
                short_name(r.op),
                str(r.dim),
                r.impl,
                fmt_us(r.median_us),
                iqr,
                fmt_ratio(ratio.get("vs_framework_best")),
                fmt_ratio(ratio.get("vs_numpy")),
                fmt_ratio(tf) if tf is not None else "",
                _check_mark(r),
            ]
        )
    return rows


def target_rows(targets: Sequence[Target]) -> list[list[str]]:
    """Table rows of the targets, with PASS/FAIL/n/a."""
    rows = []
    for t in targets:
        detail = t.detail or ("not measured" if t.measured is None else "")
        status = {True: "PASS", False: "FAIL", None: "n/a"}[t.passed]
        if t.measured is None:
            measured = "—"
        else:
            measured = f"{t.measured:g}" if t.count else f"{t.measured:.3f}"
        if t.threshold is None:  # reported only
            threshold = "none"
            status = "report" if t.measured is not None else "n/a"
        else:
            threshold = f"{t.better} {t.threshold:g}"
        rows.append([t.target, t.what, measured, threshold, status, detail])
    return rows


def derived_rows(
    derived: dict[str, list[dict[str, Any]]],
) -> dict[str, tuple[tuple[str, ...], list[list[str]]]]:
    """The derived tables by title: (headers, rows)."""
    tables: dict[str, tuple[tuple[str, ...], list[list[str]]]] = {}
    tables["closure call / operator call"] = (
        ("case", "closure", "implementation", "closure µs", "operator µs", "ratio"),
        [
            [
                c["section"],
                c["closure"],
                c["impl"],
                fmt_us(c["closure_us"]),
                fmt_us(c["operator_us"]),
                fmt_ratio(c["ratio"]),
            ]
            for c in derived["closure_cost"]
        ],
    )
    tables["(mtp_hessian + one mtp) / hessian, logistic d = 100"] = (
        ("implementation", "mtp + one mtp µs", "hessian µs", "ratio"),
        [
            [
                m["impl"],
                fmt_us(m["mtp_plus_one_mtp_us"]),
                fmt_us(m["hessian_us"]),
                fmt_ratio(m["ratio"]),
            ]
            for m in derived["mtp_ratio"]
        ],
    )
    tables["grad_and_value / value, rw_softplus"] = (
        ("d", "implementation", "grad µs", "value µs", "ratio"),
        [
            [
                str(g["dim"]),
                g["impl"],
                fmt_us(g["grad_us"]),
                fmt_us(g["value_us"]),
                fmt_ratio(g["ratio"]),
            ]
            for g in derived["grad_over_value"]
        ],
    )
    tables["Jacobian mode forced / auto"] = (
        ("case", "backend", "forced mode", "auto µs", "forced µs", "forced / auto"),
        [
            [
                j["section"],
                j["backend"],
                j["mode"],
                fmt_us(j["auto_us"]),
                fmt_us(j["forced_us"]),
                fmt_ratio(j["forced_over_auto"]),
            ]
            for j in derived["jacobian_modes"]
        ],
    )
    tables["hvp: gradient, HVP and Hessian (one interleaved set of rounds)"] = (
        (
            "implementation",
            "d",
            "grad µs",
            "hvp op µs",
            "hvp closure µs",
            "hessian µs",
            "closure / grad",
            "(op + closure) / hessian",
        ),
        [
            [
                h["impl"],
                str(h["dim"]),
                fmt_us(h["grad_us"]),
                fmt_us(h["hvp_us"]),
                fmt_us(h["hvp_closure_us"]),
                fmt_us(h["hessian_us"]),
                fmt_ratio(h["closure_over_grad"]),
                _fmt_small(h["hvp_plus_one_over_hessian"]),
            ]
            for h in derived["hvp_products"]
        ],
    )
    tables["tall 3 → 300: jvp against the reverse-mode Jacobian"] = (
        (
            "implementation",
            "jvp op µs",
            "jvp closure µs",
            "reverse-mode Jacobian",
            "reverse µs",
            "(op + closure) / reverse",
            "closure / reverse",
        ),
        [
            [
                j["impl"],
                fmt_us(j["jvp_us"]),
                fmt_us(j["jvp_closure_us"]),
                j["reverse_impl"],
                fmt_us(j["reverse_us"]),
                fmt_ratio(j["jvp_plus_one_over_reverse"]),
                fmt_ratio(j["closure_over_reverse"]),
            ]
            for j in derived["jvp_vs_reverse"]
        ],
    )
    tables["args: data as extra arguments / data closed over"] = (
        ("implementation", "µs", "closed over", "closed-over µs", "ratio"),
        [
            [
                a["impl"],
                fmt_us(a["args_us"]),
                a["closed_impl"],
                fmt_us(a["closed_us"]),
                fmt_ratio(a["ratio"]),
            ]
            for a in derived["args"]
        ],
    )
    tables["args: XLA compilations, first call with a second data set"] = (
        ("implementation", "compilations", "check"),
        [
            [
                c["impl"],
                "—" if c["compilations"] is None else str(c["compilations"]),
                "ok" if c["correct"] else f"WRONG: {c['error']}",
            ]
            for c in derived["args_compilations"]
        ],
    )
    tables["first call (build + trace + compile + run), jax"] = (
        ("case", "op", "diffops ms", "jax.jit ms", "ratio"),
        [
            [
                f["case"],
                short_name(f["op"]),
                f"{f['diffops_ms']:.1f}",
                f"{f['jax_ms']:.1f}",
                fmt_ratio(f["ratio"]),
            ]
            for f in derived["first_call"]
        ],
    )
    tables["batched: one batched call against a Python loop of single calls"] = (
        (
            "case",
            "B",
            "backend",
            "loop µs",
            "batched µs",
            "loop / batched",
            "hand-written batched",
            "hand-written µs",
            "batched / hand-written",
        ),
        [
            [
                b["section"],
                str(b["batch"]),
                b["backend"],
                fmt_us(b["loop_us"]) + (" (scaled)" if b["loop_note"] else ""),
                fmt_us(b["batched_us"]),
                fmt_ratio(b["speedup"]),
                b["hand_impl"] or "—",
                fmt_us(b["hand_us"]),
                fmt_ratio(b["batched_over_hand"]),
            ]
            for b in derived["batched"]
        ],
    )
    tables["sparse: sparsity='detect' against dense, jax"] = (
        (
            "case",
            "d",
            "sparse µs",
            "dense µs",
            "sparse / dense",
            "first call sparse ms",
            "first call dense ms",
            "first sparse / dense",
            "colors",
            "lower bound (pattern)",
            "coloring",
        ),
        [
            [
                r["section"],
                str(r["dim"]),
                fmt_us(r["sparse_us"]),
                fmt_us(r["dense_us"]),
                _fmt_small(r["call_ratio"]),
                _fmt_ms(r["first_sparse_ms"]),
                _fmt_ms(r["first_dense_ms"]),
                fmt_ratio(r["first_ratio"]),
                "—" if r["colors"] is None else str(r["colors"]),
                "—" if r["bound"] is None else str(r["bound"]),
                r["coloring"] or "—",
            ]
            for r in derived["sparse"]
        ],
    )
    tables["import time (-X importtime, sum of self times, medians)"] = (
        (
            "import numpy ms",
            "import diffops ms",
            "diffops beyond numpy ms",
            "what diffops adds",
        ),
        [
            [
                f"{i['numpy_ms']:.1f}",
                f"{i['diffops_ms']:.1f}",
                f"{i['extra_ms']:.1f}",
                i["extra_modules"],
            ]
            for i in derived["import"]
        ],
    )
    return tables


def _fmt_ms(ms: float | None) -> str:
    return "—" if ms is None else f"{ms:.1f}"


def _fmt_small(r: float | None) -> str:
    """A ratio far below 1, e.g. ``"0.0012×"``."""
    return "—" if r is None else f"{r:.2g}×"


def failures(records: Sequence[Record]) -> list[Record]:
    """diffops rows that were wrong or raised (they make the exit status 1)."""
    return [r for r in records if r.correct is False and r.kind == "diffops"]


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (``|`` in cells escaped)."""

    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _sections(records: Sequence[Record]) -> list[str]:
    seen: list[str] = []
    for r in records:
        if r.section not in seen and r.section not in ("import",):
            seen.append(r.section)
    return seen


_SECTION_TITLES = {
    "banana": "banana (d = 2, scalar)",
    "torus": "torus constraint (3 → 1)",
    "logistic": "logistic regression log-posterior (d = 100, n = 200)",
    "hvp": "Hessian-vector products: logistic regression log-posterior (n = 200)",
    "args": "extra arguments: logistic regression (d = 100, n = 1000) on jax",
    "tall": "tall Jacobian (3 → 300)",
    "wide": "wide Jacobian (300 → 3)",
    "rw_softplus": "O(d) log-density: random walk + softplus",
    "first_call": "first call on jax: build + trace + compile + run (µs)",
    "batched_banana": "batched evaluation: banana gradient (d = 2), µs per stack",
    "batched_logistic": "batched evaluation: logistic regression Hessian (d = 100, "
    "n = 200), µs per stack",
    "sparse_jacobian": "sparse Jacobian: tridiagonal map R^d → R^d on jax "
    "(first call: build + first call, µs)",
    "sparse_hessian": "sparse Hessian: banded energy, bandwidth 3, on jax "
    "(first call: build + first call, µs)",
}


def _section_title(section: str, records: Sequence[Record]) -> str:
    """The section's title; batched sections say how many points per call."""
    title = _SECTION_TITLES.get(section, section)
    batch = next((r.batch for r in records if r.section == section and r.batch), None)
    return f"{title}, B = {batch:,} points" if batch else title


def write_markdown(
    path: Path,
    machine: dict[str, Any],
    records: Sequence[Record],
    ratios: dict[int, dict[str, float | None]],
    derived: dict[str, list[dict[str, Any]]],
    targets: Sequence[Target],
    cfg: Config,
) -> None:
    """Write ``results.md``: header, targets, failures, one table per case, notes."""
    parts = [
        "# diffops benchmarks",
        "",
        f"Generated by `{' '.join((COMMAND, *cfg.argv))}` on "
        f"{machine['date']} — {machine['platform']}, {machine['cpu_count']} CPUs, "
        f"Python {machine['python']}. Load average at start/end: "
        f"{machine['loadavg_start']} / {machine.get('loadavg_end')}.",
        "",
        "Versions: "
        + ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v),
        "",
        _source_line(machine.get("diffops_source", {})),
        "",
        "Times are medians per call (µs) over batches of ≥ "
        f"{cfg.min_batch_s * 1e3:.0f} ms, {cfg.repeats} batches; thread limit "
        f"(--threads): {cfg.threads or 'none, library defaults'}; torch threads: "
        f"{machine.get('torch_num_threads', '—')}. `×fw best` is the row's time / "
        "the fastest hand-written call of the same framework for the same result "
        "(outputs converted to NumPy; `jax` rows against `jax.jit` compositions, "
        "`jax_nojit` rows against the same compositions run eagerly), so the best "
        "hand-written row shows 1.00×; `×numpy` is the row's time / hand-written "
        "NumPy closed forms; `torch.func÷diffops` > 1 means diffops torch is that "
        "many times faster than the best torch.func composition.",
        "",
        "## Targets",
        "",
        markdown_table(TARGET_HEADERS, target_rows(targets)),
        "",
    ]
    wrong = failures(records)
    if wrong:
        parts += ["## ⚠ WRONG OR FAILING diffops RESULTS", ""]
        parts += [f"- {r.section} {r.op} d={r.dim} {r.impl}: {r.error}" for r in wrong]
        parts.append("")
    for section in _sections(records):
        parts += [
            f"## {_section_title(section, records)}",
            "",
            markdown_table(_HEADERS, result_rows(records, ratios, section)),
            "",
        ]
    for title, (headers, rows) in derived_rows(derived).items():
        if rows:
            parts += [f"## {title}", "", markdown_table(headers, rows), ""]
    baseline_errors = [r for r in records if r.error and r.kind != "diffops"]
    if cfg.notes or baseline_errors:
        parts += ["## Notes", ""]
        parts += [f"- {n}" for n in dict.fromkeys(cfg.notes)]
        parts += [f"- {r.section} {r.op} {r.impl}: {r.error}" for r in baseline_errors]
        parts.append("")
    path.write_text("\n".join(parts), encoding="utf-8")


def _source_line(info: dict[str, Any]) -> str:
    line = f"diffops source: `{info.get('path')}`, sha256 {info.get('sha256', '')[:12]}"
    if "git_commit" in info:
        modified = info.get("git_modified_files") or []
        line += f", git {info['git_commit'][:10]}"
        if modified:
            line += f" with uncommitted changes to {', '.join(modified)}"
    return line + "."


def print_report(
    records: Sequence[Record],
    ratios: dict[int, dict[str, float | None]],
    derived: dict[str, list[dict[str, Any]]],
    targets: Sequence[Target],
    cfg: Config,
) -> None:
    """Print every table (with rich if installed), then notes and failures."""
    tables: list[tuple[str, Sequence[str], list[list[str]]]] = [
        (_section_title(s, records), _HEADERS, result_rows(records, ratios, s))
        for s in _sections(records)
    ]
    tables += [(t, h, rows) for t, (h, rows) in derived_rows(derived).items() if rows]
    tables.append(("Targets", TARGET_HEADERS, target_rows(targets)))
    try:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table
        from rich.text import Text
    except ImportError:
        for title, headers, rows in tables:
            print(f"\n{title}\n" + markdown_table(headers, rows))
        _print_plain_tail(records, cfg)
        return
    console = Console()
    if not console.is_terminal:  # piped or captured: don't squeeze into 80 columns
        console = Console(width=180)
    styles = {
        "PASS": "green",
        "FAIL": "bold red",
        "WRONG": "bold red",
        "ERROR": "bold red",
    }
    for title, headers, rows in tables:
        table = Table(title=title, title_justify="left", show_lines=False)
        for h in headers:
            table.add_column(
                h,
                overflow="fold",
                justify="right" if h.startswith(("µs", "×", "ratio")) else "left",
            )
        for row in rows:
            style = next((styles[c] for c in row if c in styles), None)
            table.add_row(*(Text(c) for c in row), style=style)
        console.print(table)
    for note in dict.fromkeys(cfg.notes):
        console.print(f"[dim]note: {escape(note)}[/dim]")
    for r in records:
        if r.error and r.kind != "diffops":
            text = f"baseline problem: {r.section} {r.op} {r.impl}: {r.error}"
            console.print(f"[yellow]{escape(text)}[/yellow]")
    for r in failures(records):
        text = f"WRONG/FAILED diffops result: {r.section} {r.op} d={r.dim} {r.impl}"
        console.print(f"[bold red]{escape(f'{text}: {r.error}')}[/bold red]")


def _print_plain_tail(records: Sequence[Record], cfg: Config) -> None:
    for note in dict.fromkeys(cfg.notes):
        print(f"note: {note}")
    for r in failures(records):
        print(
            f"!!! WRONG/FAILED diffops result: {r.section} {r.op} d={r.dim} "
            f"{r.impl}: {r.error}"
        )


def jsonable(value: Any) -> Any:
    """``value`` with NumPy scalars as Python numbers and non-finite floats as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_json(
    path: Path,
    machine: dict[str, Any],
    records: Sequence[Record],
    ratios: dict[int, dict[str, float | None]],
    derived: dict[str, list[dict[str, Any]]],
    targets: Sequence[Target],
    cfg: Config,
) -> None:
    """Write ``results.json``: machine, settings, records with ratios, derived tables,
    targets, notes and failures."""
    rows = []
    for i, r in enumerate(records):
        row = asdict(r)
        row.update(ratios.get(i, {}))
        rows.append(row)
    payload = {
        "machine": machine,
        "config": {
            "quick": cfg.quick,
            "backends": list(cfg.backends),
            "cases": list(cfg.cases),
            "repeats": cfg.repeats,
            "min_batch_s": cfg.min_batch_s,
            "large_dims": list(cfg.large_dims),
            "hvp_dim": cfg.hvp_dim,
            "batch_size": cfg.batch_size,
            "sparse_dim": cfg.sparse_dim,
            "first_call_reps": cfg.first_call_reps,
            "import_reps": cfg.import_reps,
            "threads": cfg.threads,
            "argv": list(cfg.argv),
        },
        "records": rows,
        "derived": derived,
        "targets": [{**asdict(t), "passed": t.passed} for t in targets],
        "notes": list(dict.fromkeys(cfg.notes)),
        "failures": [asdict(r) for r in failures(records)],
    }
    path.write_text(json.dumps(jsonable(payload), indent=1), encoding="utf-8")
