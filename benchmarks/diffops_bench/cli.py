"""The command line: ``python -m benchmarks.diffops_bench [options]``."""

from __future__ import annotations

import argparse
import difflib
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import diffops

from . import report, runner, targets
from .cases import CASE_GROUPS, CASES
from .config import (
    BATCH_QUICK_SIZE,
    BATCH_SIZE,
    COMMAND,
    DEFAULT_OUT,
    HVP_DIM,
    HVP_QUICK_DIM,
    PACKAGE,
    REPO_ROOT,
    SPARSE_DIM,
    SPARSE_QUICK_DIM,
    Config,
)
from .machine import THREAD_VARS, framework_info, loadavg, machine_info
from .plot import plot

THREADS_MARKER = "DIFFOPS_BENCH_THREADS"
"""Set in the re-run subprocess of ``--threads``, so that it does not re-run again."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description=(
            "Time diffops side by side with each framework's best hand-written call "
            "and NumPy closed forms; report ratios and the performance targets."
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer repeats, no d = 10⁶, smaller hvp, batched and sparse cases "
        "(CI smoke test)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="output directory (default: bench-results/ in the repository, "
        "git-ignored; pass benchmarks/results to update the committed numbers)",
    )
    parser.add_argument(
        "--backends",
        default=None,
        help="comma-separated backends (default: all installed)",
    )
    parser.add_argument(
        "--cases",
        default=None,
        help=f"comma-separated cases from {', '.join(CASES)} or groups "
        f"{', '.join(CASE_GROUPS)} (default: all)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="batches per timing (default 15, 3 with --quick)",
    )
    parser.add_argument(
        "--min-batch-ms",
        type=float,
        default=None,
        help="shortest batch of calls, in ms (default 20, 10 with --quick)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="limit BLAS/OpenMP/torch (and, for 1, XLA) threads to N by re-running "
        "in a subprocess with OMP_NUM_THREADS etc. set (default: each library's own "
        "choice); 1 gives stable numbers on a busy machine",
    )
    return parser


def _split(text: str | None) -> list[str]:
    return [t.strip().lower() for t in (text or "").split(",") if t.strip()]


class UsageError(ValueError):
    """A command-line value that names no backend or case."""


def _did_you_mean(name: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def config(args: argparse.Namespace, argv: Sequence[str]) -> Config:
    """The run's settings from parsed arguments.

    Args:
        args: Parsed command line.
        argv: The raw arguments, recorded in the report.

    Returns:
        The settings; backends that are not installed are skipped with a note.

    Raises:
        UsageError: For an unknown backend or case name.
    """
    notes: list[str] = []
    registered, available = diffops.registered_backends(), diffops.available_backends()
    if args.backends:
        backends = []
        for name in _split(args.backends):
            if name not in registered:
                msg = (
                    f"unknown backend {name!r}; valid backends are {registered}."
                    f"{_did_you_mean(name, registered)}"
                )
                raise UsageError(msg)
            if name not in available:
                notes.append(f"backend {name!r} is not installed: skipped")
                continue
            backends.append(name)
    else:
        backends = list(available)
        notes += [
            f"backend {b!r} is not installed: skipped"
            for b in registered
            if b not in available
        ]
    cases: list[str] = []
    for name in _split(args.cases) or list(CASES):
        for case in CASE_GROUPS.get(name, (name,)):
            if case not in CASES:
                msg = (
                    f"unknown case {name!r}; valid cases are {CASES} and groups "
                    f"{tuple(CASE_GROUPS)}."
                    f"{_did_you_mean(name, (*CASES, *CASE_GROUPS))}"
                )
                raise UsageError(msg)
            if case not in cases:
                cases.append(case)
    quick = bool(args.quick)
    repeats = args.repeats or (3 if quick else 15)
    min_batch_ms = args.min_batch_ms or (10.0 if quick else 20.0)
    if quick:
        notes.append(
            f"--quick: d = 10⁶ skipped, {repeats} batches of ≥ {min_batch_ms:g} ms "
            f"per timing, hvp case at d = {HVP_QUICK_DIM} instead of {HVP_DIM}, "
            f"batched cases at B = {BATCH_QUICK_SIZE} points instead of "
            f"{BATCH_SIZE}, sparse cases at d = {SPARSE_QUICK_DIM} instead of "
            f"{SPARSE_DIM}"
        )
    return Config(
        quick=quick,
        backends=tuple(backends),
        cases=tuple(c for c in CASES if c in cases),
        out=args.out,
        repeats=max(1, repeats),
        min_batch_s=min_batch_ms / 1e3,
        large_dims=(10**3, 10**5) if quick else (10**3, 10**5, 10**6),
        hvp_dim=HVP_QUICK_DIM if quick else HVP_DIM,
        first_call_reps=1 if quick else 6,
        import_reps=3 if quick else 7,
        threads=args.threads,
        argv=tuple(argv),
        notes=notes,
        batch_size=BATCH_QUICK_SIZE if quick else BATCH_SIZE,
        sparse_dim=SPARSE_QUICK_DIM if quick else SPARSE_DIM,
    )


def _with_threads(argv: Sequence[str], threads: int) -> int:
    """Re-run the benchmarks in a subprocess whose thread-pool variables are set.

    BLAS and OpenMP read these variables when they are loaded, and NumPy is already
    loaded here, so setting them in this process would be too late.
    """
    env = dict(os.environ)
    env.update(dict.fromkeys(THREAD_VARS, str(threads)))
    env[THREADS_MARKER] = str(threads)
    if threads == 1:
        flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flags}".strip()
    # The same harness and the same diffops, whatever the current directory.
    src = str(Path(diffops.__file__).resolve().parent.parent)
    paths = (str(REPO_ROOT), src, env.get("PYTHONPATH"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    command = [sys.executable, "-m", PACKAGE, *argv]
    return subprocess.run(command, env=env, check=False).returncode


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks and write ``results.json``, ``results.md`` and a plot.

    Args:
        argv: Command-line arguments without the program name (``None`` reads
            ``sys.argv[1:]``): ``--quick``, ``--out DIR``, ``--backends a,b``,
            ``--cases name,...``, ``--repeats N``, ``--min-batch-ms MS``,
            ``--threads N``.

    Returns:
        Exit status: 0 when every diffops result agreed with the reference, 1 if any
        diffops result was wrong or raised (performance targets never change it), 2
        for an unknown backend or case name.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    if args.threads and os.environ.get(THREADS_MARKER) != str(args.threads):
        return _with_threads(argv, args.threads)
    try:
        cfg = config(args, argv)
    except UsageError as err:
        print(f"{COMMAND}: error: {err}", file=sys.stderr)
        return 2
    machine = machine_info()
    start = time.perf_counter()
    machine.update(framework_info(cfg))
    records = runner.run(cfg)
    machine["loadavg_end"] = loadavg()
    machine["wall_time_s"] = round(time.perf_counter() - start, 1)
    ratios = targets.ratios(records)
    derived = targets.derived(records)
    goals = targets.targets(records, derived, cfg)
    cfg.out.mkdir(parents=True, exist_ok=True)
    json_path, md_path, png_path = (
        cfg.out / "results.json",
        cfg.out / "results.md",
        cfg.out / "scaling.png",
    )
    report.write_json(json_path, machine, records, ratios, derived, goals, cfg)
    report.write_markdown(md_path, machine, records, ratios, derived, goals, cfg)
    plot_problem = plot(png_path, records)
    report.print_report(records, ratios, derived, goals, cfg)
    written = [json_path, md_path]
    if plot_problem:
        print(plot_problem)
    elif png_path.exists() and any(r.section == "rw_softplus" for r in records):
        written.append(png_path)
    print(f"\nwrote {', '.join(str(p) for p in written)} in {machine['wall_time_s']} s")
    failures = report.failures(records)
    if failures:
        print(f"!!! {len(failures)} diffops result(s) WRONG or FAILED — see above.")
        return 1
    return 0
