"""The demo: every built-in model on every backend, checked and timed.

:func:`run_demo` runs :func:`~diffops.demo.backends.check_backends` on each model of
:data:`diffops.models.MODELS`, whose closed-form derivatives are an extra
reference: a case fails if its finite-difference check fails or it differs from the
closed forms by more than :data:`~diffops.demo.rows.TOLERANCE`. Each model's rows are
handed to ``on_model`` as soon as the model is done, so its table can be shown while
the next model runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from diffops.demo.backends import check_backends, steps_per_backend
from diffops.demo.progress import Progress
from diffops.demo.rows import Row
from diffops.models import MODELS, Model, applicable_ops, reference

OnModel = Callable[[Model, list[Row]], None]


def demo_units(models: Sequence[str], backends: Sequence[str]) -> list[tuple[str, int]]:
    """The progress units of a demo run: one per model and backend.

    Args:
        models: Model names.
        backends: Backend names.

    Returns:
        ``(backend, steps)`` per model and backend, in the order they run.
    """
    units = []
    for name in models:
        model = MODELS[name]
        steps = steps_per_backend(len(applicable_ops(model)))
        units += [(b, 0 if b in model.skip else steps) for b in backends]
    return units


def run_demo(
    backends: tuple[str, ...] | None = None,
    models: tuple[str, ...] | None = None,
    *,
    seed: int = 0,
    progress: Progress | None = None,
    on_model: OnModel | None = None,
) -> list[Row]:
    """Check and time every selected model × backend × applicable operator.

    For first-call times that do not include importing a framework, start each
    backend first (:func:`~diffops.demo.startup.start_backend`), as ``diffops demo``
    does.

    Args:
        backends: Backend names (default: every installed backend).
        models: Model names (default: all of :data:`diffops.models.MODELS`).
        seed: Seed of the evaluation points and the checks.
        progress: Progress over :func:`demo_units`, if shown.
        on_model: Called with each model and its rows as soon as it is done.

    Returns:
        One :class:`Row` per case (``model`` set); skipped backends carry the reason.
    """
    import diffops

    backends = backends or diffops.available_backends()
    rows: list[Row] = []
    for name in models or tuple(MODELS):
        model = MODELS[name]
        model_rows = _demo_model(model, backends, seed, progress)
        if on_model is not None:
            on_model(model, model_rows)
        rows += model_rows
    return rows


def _demo_model(
    model: Model, backends: Sequence[str], seed: int, progress: Progress | None
) -> list[Row]:
    x = np.asarray(model.sample(np.random.default_rng(seed), model.shape), np.float64)

    def value(y: np.ndarray) -> Any:
        return model.value(y)

    value.__name__ = model.name
    rows = check_backends(
        value,
        x,
        applicable_ops(model),
        backends,
        build=lambda backend: model.function(backend),
        closed_form=lambda op: reference(model, op, x),
        skip=model.skip,
        lenient=False,
        seed=seed,
        progress=progress,
    )
    return [replace(row, model=model.name) for row in rows]
