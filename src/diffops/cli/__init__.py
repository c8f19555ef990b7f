"""The ``diffops`` command line: ``check``, ``demo`` and ``backends``.

Thin by design: :mod:`~diffops.cli.arguments` turns the arguments into what the
commands need, :mod:`~diffops.cli.commands` calls library code (:mod:`diffops.demo`
runs, checks, times and formats), and a framework is imported only when a command
needs it. Exit status: 0 when everything passed, 1 when a check failed, 2 for usage
errors (with a message saying what to change, no traceback).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from diffops.cli import commands
from diffops.cli.arguments import USAGE_EXIT, UsageError

__all__ = ["main", "run"]


def _parser() -> argparse.ArgumentParser:
    from diffops import __version__

    parser = argparse.ArgumentParser(
        prog="diffops",
        description="Derivative functions that return the value too, on JAX, "
        "Autograd, SymNum and PyTorch.",
    )
    parser.add_argument("--version", action="version", version=f"diffops {__version__}")
    subcommands = parser.add_subparsers(dest="command", required=True)
    _check_parser(subcommands)
    _demo_parser(subcommands)
    backends = subcommands.add_parser(
        "backends", help="list backends and whether installed"
    )
    backends.set_defaults(run=commands.backends)
    return parser


def _check_parser(subcommands: Any) -> None:
    from diffops.operators import ALL_DIFF_OPS

    check = subcommands.add_parser(
        "check",
        help="check and time a function's derivatives on every backend",
        description="Build the derivatives of a function on every requested "
        "backend, check them (and hand-written ones) against finite differences "
        "and against each other, time them (after starting each backend, timed on "
        "its own), and print one table. Exit status: 0 if all pass, 1 if any "
        "fails, 2 for usage errors. Backends on which the function cannot run are "
        "reported as not applicable.",
    )
    check.add_argument(
        "target",
        metavar="PATH.py:FUNC",
        help="the function: a file and function name, or module:FUNC",
    )
    check.add_argument(
        "--shape", help="input shape, e.g. 3 or 2,3 or () (random point in [-1, 1])"
    )
    check.add_argument(
        "--point", help="the point, e.g. 0.5,1.0 or '[[1, 2], [3, 4]]' (JSON)"
    )
    check.add_argument(
        "--dtype", choices=("float64", "float32"), default="float64", help="dtype"
    )
    check.add_argument(
        "--ops",
        help="comma-separated operators (default: all that apply): "
        + ", ".join(ALL_DIFF_OPS),
    )
    check.add_argument(
        "--backends",
        help="comma-separated backends, or none (default: all installed)",
    )
    check.add_argument(
        "--supplied",
        action="append",
        default=[],
        metavar="OP=FUNC",
        help="a hand-written derivative function in the same file, e.g. "
        "grad_and_value=my_grad (repeatable)",
    )
    check.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    check.add_argument("--rtol", type=float, help="relative tolerance")
    check.add_argument("--atol", type=float, help="absolute tolerance")
    check.add_argument(
        "--directions",
        type=int,
        default=3,
        help="random closure arguments / directions per check (default 3)",
    )
    check.add_argument(
        "--json", action="store_true", help="print the results as JSON, no tables"
    )
    check.set_defaults(run=commands.check)


def _demo_parser(subcommands: Any) -> None:
    from diffops.models import MODELS

    models = ", ".join(f"{name} ({m.description})" for name, m in MODELS.items())
    demo = subcommands.add_parser(
        "demo",
        help="check and time every example model on every installed backend",
        description="Check every example model on every installed backend against "
        "finite differences, the other backends and its closed-form derivatives, "
        "and time it; each model's table is printed as soon as it is done. Models: "
        + models
        + ".",
    )
    demo.add_argument(
        "--backends", help="comma-separated backends (default: all installed)"
    )
    demo.add_argument(
        "--models", help=f"comma-separated models (default: all): {', '.join(MODELS)}"
    )
    demo.add_argument(
        "--json", action="store_true", help="print the results as JSON, no tables"
    )
    demo.set_defaults(run=commands.demo)


def main(argv: list[str] | None = None) -> int:
    """Run the ``diffops`` command line.

    Args:
        argv: Arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        Process exit code: 0 on success, 1 if a check failed, 2 for usage errors.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except UsageError as err:
        parser.exit(USAGE_EXIT, f"diffops {args.command}: error: {err}\n")


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
