"""The ``diffops`` command line: ``demo`` and ``backends``.

Thin by design: each command parses its arguments and calls library code, and a
framework is imported only when a command needs it.
"""

from __future__ import annotations

import argparse
import sys


def _names(text: str | None) -> tuple[str, ...] | None:
    if not text:
        return None
    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    return tuple(dict.fromkeys(names))  # without repeats, in order


class UsageError(Exception):
    """A command-line argument names something that does not exist."""


def _check_names(
    kind: str, names: tuple[str, ...] | None, valid: tuple[str, ...]
) -> tuple[str, ...] | None:
    """``names`` if each is in ``valid``; else a :class:`UsageError` with a hint."""
    from diffops.errors import closest

    for name in names or ():
        if name not in valid:
            msg = f"unknown {kind} {name!r}: choose from {', '.join(valid)}."
            raise UsageError(msg + closest(name, valid))
    return names


def _demo_selection(
    args: argparse.Namespace,
) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    from diffops.models import MODELS
    from diffops.registry import available_backends, registered_backends
    from diffops.registry import backend as lookup

    backends = _check_names("backend", _names(args.backends), registered_backends())
    for name in backends or ():
        if name not in available_backends():
            extra = lookup(name).extra
            msg = (
                f"backend {name!r} is not installed: `pip install diffops[{extra}]` "
                f"(from the repository: `pip install -e .[{extra}]`), or choose from "
                f"the installed ones: {', '.join(available_backends())}."
            )
            raise UsageError(msg)
    models = _check_names("model", _names(args.models), tuple(MODELS))
    return backends, models


def _demo(args: argparse.Namespace) -> int:
    from diffops.demo import TOLERANCE, failures, render, run_demo

    backends, models = _demo_selection(args)
    results = run_demo(backends, models)
    render(results)
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
    from diffops import __version__
    from diffops.models import MODELS

    parser = argparse.ArgumentParser(
        prog="diffops",
        description="Derivative functions that return the value too, on JAX, "
        "Autograd, SymNum and PyTorch.",
    )
    parser.add_argument("--version", action="version", version=f"diffops {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    models = ", ".join(f"{name} ({m.description})" for name, m in MODELS.items())
    demo = commands.add_parser(
        "demo",
        help="check and time every example model on every installed backend",
        description="Check every example model on every installed backend against "
        "its closed-form derivatives, and time it. Models: " + models + ".",
    )
    demo.add_argument(
        "--backends", help="comma-separated backends (default: all installed)"
    )
    demo.add_argument(
        "--models", help=f"comma-separated models (default: all): {', '.join(MODELS)}"
    )
    demo.set_defaults(run=_demo)
    backends = commands.add_parser(
        "backends", help="list backends and whether installed"
    )
    backends.set_defaults(run=_backends)

    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except UsageError as err:
        parser.exit(2, f"diffops {args.command}: error: {err}\n")


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
