"""Starting each backend before anything is timed: :func:`start_backends`.

The first use of a backend imports its framework (hundreds of ms to seconds) and,
for JAX, starts its compiler. Charging that to the first operator timed would make
one operator look slow; so each backend is started first, and the two costs are
reported on their own: the import of the framework, and building and calling a
derivative of a one-line function (``sum(x * x)``), which is what the framework's
first compilation costs beyond that.
"""

from __future__ import annotations

import importlib
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from diffops.check.evaluate import backend_options
from diffops.check.table import Column, format_table
from diffops.errors import first_line
from diffops.timing import format_seconds


@dataclass(frozen=True)
class Startup:
    """What starting one backend cost.

    Attributes:
        backend: Backend name.
        framework: The framework's package, e.g. ``"jax"``.
        import_seconds: Seconds to import it (``nan`` if it was already imported).
        first_seconds: Seconds to build and call ``grad_and_value`` of a one-line
            function once, after the import.
        error: Why the backend could not be started, if it could not.
    """

    backend: str
    framework: str
    import_seconds: float
    first_seconds: float
    error: str = ""

    def as_dict(self) -> dict[str, object]:
        """The start-up as JSON-compatible values (``nan`` as ``None``)."""
        return {
            "framework": self.framework,
            "import_seconds": _json(self.import_seconds),
            "first_derivative_seconds": _json(self.first_seconds),
            "error": self.error or None,
        }


def _json(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _start_up(x: object) -> object:
    return (x * x).sum()  # type: ignore[operator]


def start_backend(name: str) -> Startup:
    """Import a backend's framework and compile a first derivative, timing both.

    Args:
        name: Backend name.

    Returns:
        The times (``nan`` import time when the framework was already imported).
    """
    from diffops.derivative import DerivativeFunction
    from diffops.registry import backend

    framework = backend(name).framework
    import_seconds = math.nan
    try:
        if framework not in sys.modules:
            start = time.perf_counter()
            importlib.import_module(framework)
            import_seconds = time.perf_counter() - start
        x = np.ones(2)
        options = backend_options(_start_up, name, x.shape)
        start = time.perf_counter()
        DerivativeFunction(_start_up, "grad_and_value", name, **options)(x)
        first_seconds = time.perf_counter() - start
    except Exception as err:
        error = first_line(err, with_type=True)
        return Startup(name, framework, import_seconds, math.nan, error)
    return Startup(name, framework, import_seconds, first_seconds)


def format_startups(startups: Sequence[Startup], width: int) -> str:
    """The start-up times as a small table.

    Args:
        startups: One per backend.
        width: Line length.

    Returns:
        The text.
    """
    columns = [
        Column("backend"),
        Column("import of\nits framework", "right"),
        Column("first derivative\n(sum(x * x))", "right", wrap=True),
    ]
    rows = []
    for s in startups:
        imported = "imported before" if math.isnan(s.import_seconds) else None
        first = s.error or format_seconds(s.first_seconds)
        rows.append([s.backend, imported or format_seconds(s.import_seconds), first])
    return format_table(columns, rows, width)
