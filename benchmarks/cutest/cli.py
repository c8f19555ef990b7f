"""The command line: ``python -m benchmarks.cutest [options]``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from . import adapter, measure, report, rows, runner
from .plot import plot

COMMAND = "python -m benchmarks.cutest"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description=(
            "Validate and time diffops' sparse Jacobians and Hessians on the CUTEst "
            "problems of sif2jax: detected pattern against the dense derivative at "
            "random points, values, colors, detection/coloring/first-call/per-call "
            "times. Exit status 1 on any missed non-zero, wrong value or error (and "
            "timeout, unless --allow-timeouts)."
        ),
    )
    runner.add_options(parser)
    parser.add_argument(
        "--asdex",
        type=Path,
        default=None,
        metavar="CSV",
        help="asdex's rows (written by benchmarks/cutest/asdex_side.py): adds asdex "
        "columns and ratios to the table, the summary and the plot",
    )
    parser.add_argument(
        "--backend",
        choices=("jax", "jax_nojit"),
        default="jax",
        help="diffops backend for both derivatives (default %(default)s; jax_nojit "
        "runs op by op: it checks patterns and values of problems whose programs XLA "
        "takes minutes to compile)",
    )
    parser.add_argument(
        "--oracle",
        choices=measure.ORACLES,
        default="dense",
        help="what checks the sparse result (default %(default)s): the dense "
        "derivative on --backend; dense-nojit: the dense derivative op by op, for "
        "problems whose dense program XLA takes minutes to compile; products: "
        "JAX's own compiled JVPs (Jacobians) or Hessian-vector products at "
        f"{measure.PRODUCTS} random vectors per point against the sparse matrix "
        "times them, for problems whose dense derivative is out of reach (a missed "
        "non-zero or wrong value shows as a wrong product: status 'wrong'; no "
        "observed or spurious counts)",
    )
    parser.add_argument(
        "--allow-timeouts",
        action="store_true",
        help="timeouts do not make the exit status 1 (they are still reported)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing: summarise the CSV already in --out",
    )
    return parser


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _header(args: argparse.Namespace, merged: bool) -> str:
    commit = runner.commit()
    lines = [
        "# CUTEst harness: diffops sparse Jacobians and Hessians",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M')}",
        f"- diffops {_version('diffops')}, commit {commit}; "
        f"jax {_version('jax')}; sif2jax {_version('sif2jax')}",
        *_options(args),
        f"- detection/coloring split: {adapter.SOURCE}",
        f"- asdex merged from {args.asdex}" if merged else "- asdex: not merged",
        "",
        f"Repeat: `{COMMAND} {' '.join(sys.argv[1:])}`",
        "",
    ]
    return "\n".join(lines)


def _options(args: argparse.Namespace) -> list[str]:
    """The header's line on the measuring run's options.

    With ``--report-only`` these are not this command's options (it measures
    nothing): the runs' own headers are quoted from ``results.log``.
    """
    if not args.report_only:
        return [
            f"- problems: {runner.selection_label(args)}; {args.points} points "
            f"x0 + {args.scale:g} N(0,1), seed {args.seed}; timeout "
            f"{args.timeout:g} s per matrix; rtol {args.rtol:g}; backend "
            f"{args.backend}; oracle {args.oracle}"
        ]
    log = args.out / "results.log"
    runs = []
    if log.exists():
        runs = [
            line.strip()
            for line in log.read_text(errors="replace").splitlines()
            if line.startswith("=== ")
        ]
    if not runs:
        return [f"- summarised from {args.out / 'results.csv'} (no results.log)"]
    return ["- summarised from the runs logged in results.log, measured with:"] + [
        f"  - `{run}`" for run in runs
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the harness (or summarise an earlier run); returns the exit status."""
    args = _parser().parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "results.csv"
    all_rows: list[dict[str, Any]]
    if args.report_only:
        all_rows = rows.read(csv_path)
    else:
        all_rows = runner.run(
            args,
            "benchmarks.cutest.measure:measure",
            csv_path,
            "diffops",
            extra={"backend": args.backend, "oracle": args.oracle},
        )
    merged = args.asdex is not None
    if merged:
        all_rows = rows.merge_asdex(all_rows, rows.read(args.asdex))
        rows.write_all(out / "results_with_asdex.csv", all_rows, rows.MERGED_COLUMNS)
    tables = report.tables(all_rows, merged)
    report.print_tables(tables)
    report.write_markdown(out / "summary.md", tables, _header(args, merged))
    skipped = plot(out / "cutest.png", all_rows, merged)
    status, counts = runner.exit_status(all_rows, args.allow_timeouts)
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    print(
        f"{len(all_rows)} matrices: {summary}. Written: {csv_path}, "
        f"{out / 'summary.md'}" + ("" if skipped else f", {out / 'cutest.png'}"),
        file=sys.stderr,
    )
    if skipped:
        print(skipped, file=sys.stderr)
    return status


def run() -> int:
    """Entry point."""
    return main()
