"""The ``diffops`` command line: ``demo`` and ``backends``.

Thin by design: each command parses its arguments and calls library code, and a
framework is imported only when a command needs it.
"""

from __future__ import annotations

import argparse
import sys


def _names(text: str | None) -> tuple[str, ...] | None:
    return tuple(t.strip() for t in text.split(",") if t.strip()) if text else None


def _demo(args: argparse.Namespace) -> int:
    from diffops.demo import TOLERANCE, failures, render, run_demo

    results = run_demo(_names(args.backends), _names(args.models))
    print(render(results))
    bad = failures(results)
    for r in bad:
        print(
            f"FAILED: {r.model} · {r.backend} · {r.op_name}: "
            f"{r.note or f'max error {r.max_error:.2e} > {TOLERANCE:.0e}'}"
        )
    ok = len(results) - len(bad) - sum(r.note.startswith("skipped") for r in results)
    print(f"{ok} cases matched the closed forms to {TOLERANCE:.0e}; {len(bad)} failed.")
    return 1 if bad else 0


def _backends(args: argparse.Namespace) -> int:
    from diffops.registry import get_backend, registered_backends

    for name in registered_backends():
        record = get_backend(name)
        state = "installed" if record.available else "not installed"
        print(f"{name:12} {state:14} module {record.module.__name__}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the ``diffops`` command line.

    Args:
        argv: Arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        Process exit code (0 on success).
    """
    parser = argparse.ArgumentParser(
        prog="diffops",
        description="Derivative functions that return the value too, on JAX, "
        "Autograd, SymNum and PyTorch.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="check and time every example model on every installed backend"
    )
    demo.add_argument(
        "--backends", help="comma-separated backends (default: all installed)"
    )
    demo.add_argument("--models", help="comma-separated models (default: all)")
    demo.set_defaults(run=_demo)
    backends = commands.add_parser(
        "backends", help="list backends and whether installed"
    )
    backends.set_defaults(run=_backends)

    args = parser.parse_args(argv)
    return int(args.run(args))


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
