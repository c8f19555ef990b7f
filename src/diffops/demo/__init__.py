"""Checked and timed derivatives on every backend: ``diffops check`` and ``demo``.

:func:`check_backends` builds each requested operator of one function on each
backend, takes hand-written derivative functions too, times each (the first call,
which includes building and compiling, and the median per call of interleaved
rounds), checks them with :func:`diffops.check_derivatives`' checks against finite
differences, and compares every implementation with the first backend that passed.
Each (source, operator) gives one :class:`Row`; :func:`render` prints them as a
table that fits the terminal, :func:`as_json` as data.

The demo (:func:`run_demo`) is the same report on the built-in models of
:data:`diffops.models.MODELS`, whose closed-form derivatives are an extra reference.
Each backend is started first (:func:`start_backend`: the framework's import and a
first compilation, reported on their own) so that no operator's first call carries
them. :class:`Progress` shows the steps done and an estimate of the time left.

The modules: :mod:`~diffops.demo.rows` (results), :mod:`~diffops.demo.backends`
(building, timing and checking on each backend), :mod:`~diffops.demo.startup`,
:mod:`~diffops.demo.run` (the models), :mod:`~diffops.demo.table` (the tables) and
:mod:`~diffops.demo.progress`.
"""

from __future__ import annotations

from diffops.demo.backends import (
    STEPS_PER_SUPPLIED,
    check_backends,
    max_error,
    steps_per_backend,
)
from diffops.demo.progress import Progress
from diffops.demo.rows import (
    TOLERANCE,
    Row,
    applied_backends,
    as_json,
    failures,
    summary,
)
from diffops.demo.run import demo_units, run_demo
from diffops.demo.startup import Startup, format_startups, start_backend
from diffops.demo.table import format_rows, legend, render
from diffops.models import MODELS, applicable_ops

__all__ = [
    "MODELS",
    "STEPS_PER_SUPPLIED",
    "TOLERANCE",
    "Progress",
    "Row",
    "Startup",
    "applicable_ops",
    "applied_backends",
    "as_json",
    "check_backends",
    "demo_units",
    "failures",
    "format_rows",
    "format_startups",
    "legend",
    "max_error",
    "render",
    "run_demo",
    "start_backend",
    "steps_per_backend",
    "summary",
]
