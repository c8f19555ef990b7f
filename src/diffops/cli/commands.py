"""The commands: ``diffops demo``, ``diffops check`` and ``diffops backends``.

Each parses nothing itself (:mod:`diffops.cli.arguments` does) and calls library
code: :mod:`diffops.demo` runs, checks and times, and formats the tables. Every
backend is started (imported, a first derivative compiled) before anything is timed,
and the start-up is shown on its own. Tables are printed as soon as they are ready,
fitted to the terminal; a status line on standard error shows the steps done and the
time left.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from diffops.cli.arguments import (
    UsageError,
    backend_selection,
    check_names,
    load_target,
    operators,
    parse_names,
    parse_point,
    supplied_functions,
    value_at,
)


def demo(args: argparse.Namespace) -> int:
    """``diffops demo``: every model on every backend, each table as it is done.

    Args:
        args: The parsed arguments (``backends``, ``models``, ``json``).

    Returns:
        The exit status: 0 if everything passed, 1 if anything failed.
    """
    from diffops.check.table import terminal_width
    from diffops.demo import (
        TOLERANCE,
        Progress,
        as_json,
        demo_units,
        failures,
        format_rows,
        legend,
        run_demo,
        summary,
    )
    from diffops.models import MODELS
    from diffops.registry import available_backends

    backends = backend_selection(args.backends) or available_backends()
    models = check_names("model", parse_names(args.models), tuple(MODELS)) or tuple(
        MODELS
    )
    width = terminal_width()
    progress = Progress([(b, 1) for b in backends] + demo_units(models, backends))
    out = _Output(progress, quiet=args.json)
    out.say(
        f"diffops demo: {len(models)} models ({', '.join(models)}) on "
        f"{len(backends)} backends ({', '.join(backends)}), every operator that "
        f"applies, checked against finite differences, against the first backend "
        f"that passes and against closed forms, and timed."
    )
    startups = _start(backends, progress, out, width)

    def show(model: Any, rows: list[Any]) -> None:
        progress.milestone(f"{model.name} done")
        title = f"{model.name}: {model.description}"
        out.show("", format_rows(rows, width, title=title))

    rows = run_demo(backends, models, progress=progress, on_model=show)
    progress.close()
    if args.json:
        document = as_json(
            rows,
            command="demo",
            models=list(models),
            backends=list(backends),
            seed=0,
            closed_form_tolerance=TOLERANCE,
            startup={s.backend: s.as_dict() for s in startups},
        )
        print(json.dumps(document, indent=2))
        return 1 if failures(rows) else 0
    reference = next((r.reference for r in rows if r.reference), None)
    out.say("", *legend(closed_forms=True, reference=reference))
    out.say(
        f"{summary(rows)}: checked against finite differences, against each other "
        f"and against the closed forms to {TOLERANCE:.0e}."
    )
    return 1 if failures(rows) else 0


class _Output:
    """Prints tables and paragraphs to standard output, clearing the progress line."""

    def __init__(self, progress: Any, *, quiet: bool):
        from diffops.check.table import terminal_width

        self.progress = progress
        self.quiet = quiet
        self.width = terminal_width()

    def say(self, *paragraphs: str) -> None:
        from diffops.check.table import wrap_notes

        if self.quiet:
            return
        self.progress.clear()
        print(wrap_notes(paragraphs, self.width, indent="  "), flush=True)

    def show(self, *texts: str) -> None:
        if self.quiet:
            return
        self.progress.clear()
        print("\n".join(texts), flush=True)


def _start(
    backends: Sequence[str], progress: Any, out: _Output, width: int
) -> list[Any]:
    """Start each backend (import, first compilation), timed; print the times."""
    from diffops.demo import format_startups, start_backend

    startups = []
    for backend in backends:
        progress.step(f"starting {backend}")
        startups.append(start_backend(backend))
        progress.next_unit()
    if backends:
        out.say("", "Start-up of each backend, timed apart from the first calls below:")
        out.show(format_startups(startups, width))
    return startups


def check(args: argparse.Namespace) -> int:
    """``diffops check``: one function's derivatives on every backend, one table.

    Args:
        args: The parsed arguments.

    Returns:
        The exit status: 0 if everything passed, 1 if anything failed.
    """
    from diffops.check.table import terminal_width
    from diffops.demo import (
        STEPS_PER_SUPPLIED,
        Progress,
        as_json,
        check_backends,
        failures,
        format_rows,
        legend,
        steps_per_backend,
        summary,
    )
    from diffops.registry import available_backends

    module, where, name, func = load_target(args.target)
    supplied = supplied_functions(module, where, args.supplied)
    x = parse_point(args, func)
    backends = backend_selection(args.backends)
    backends = available_backends() if backends is None else backends
    if not backends and not supplied:
        msg = "nothing to check: --backends none and no --supplied functions."
        raise UsageError(msg)
    # The function is evaluated first, so a usage error comes before any wait (a
    # framework imported to evaluate it shows as such in the start-up table).
    ops = operators(args, name, value_at(func, name, where, x), supplied)
    width = terminal_width()
    units = [(b, steps_per_backend(len(ops))) for b in backends]
    supplied_units = [(f"supplied: {s[1]}", STEPS_PER_SUPPLIED) for s in supplied]
    progress = Progress([(b, 1) for b in backends] + units + supplied_units)
    out = _Output(progress, quiet=args.json)
    out.say(_title(args.target, x, args.seed))
    startups = _start(backends, progress, out, width)
    rows = check_backends(
        func,
        x,
        ops,
        backends,
        supplied=supplied,
        seed=args.seed,
        rtol=args.rtol,
        atol=args.atol,
        directions=args.directions,
        progress=progress,
    )
    progress.close()
    if args.json:
        meta = {
            "target": args.target,
            "function": name,
            "x": x.tolist(),
            "dtype": str(x.dtype),
            "seed": args.seed,
            "startup": {s.backend: s.as_dict() for s in startups},
        }
        print(json.dumps(as_json(rows, **meta), indent=2))
    else:
        out.show("", format_rows(rows, width))
        reference = next((r.reference for r in rows if r.reference), None)
        out.say("", *legend(closed_forms=False, reference=reference))
        print(summary(rows) + ".")
    return 1 if failures(rows) else 0


def _title(target: str, x: Any, seed: int) -> str:
    """E.g. ``"diffops check model.py:f at x = [0.3, 0.5] (float64), seed 0"``."""
    from diffops.check import describe_point

    return f"diffops check {target} at {describe_point(x)}, seed {seed}"


def backends(args: argparse.Namespace) -> int:
    """``diffops backends``: each registered backend and whether it is installed.

    Args:
        args: The parsed arguments (none).

    Returns:
        0.
    """
    from diffops.check.table import Column, format_table, terminal_width
    from diffops.compat import get_backend
    from diffops.registry import backend, registered_backends

    columns = [
        Column("backend"),
        Column("installed"),
        Column("install with", wrap=True),
    ]
    rows = []
    for name in registered_backends():
        record = get_backend(name)
        extra = getattr(backend(name), "extra", name)
        install = "" if record.available else f"pip install diffops[{extra}]"
        rows.append([name, "yes" if record.available else "no", install])
    print(format_table(columns, rows, terminal_width()))
    return 0
