"""What is timed: an implementation of one operation, and the diffops one."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import diffops
from diffops.models import Model

from .config import FRAMEWORK
from .ops import VALUE

OpFn = Callable[[np.ndarray], tuple[Any, ...]]
"""A built operation: NumPy input, tuple of outputs (closures first) out."""


@dataclass
class Impl:
    """One implementation of one operation, built on demand.

    Attributes:
        name: Row label, e.g. ``"diffops[jax]"`` or ``"torch.func.jacrev"``.
        kind: ``"diffops"``, ``"framework"``, ``"numpy"`` or ``"diagnostic"``.
        framework: Framework it calls (``"numpy"`` for closed forms).
        build: Builds the operation (timed as part of the first call).
        backend: diffops backend, for diffops rows.
        family: Group of hand-written calls (``"jax.jit"``, ``"torch.func"`` …).
        context: Entered around building, checking and every timed batch.
        points: For batched evaluation, check and time only the first ``points``
            points of the stack, and scale the times to the whole stack (a loop of
            single calls too slow to time in full); ``None``: the whole stack.
    """

    name: str
    kind: str
    framework: str
    build: Callable[[], OpFn]
    backend: str | None = None
    family: str | None = None
    context: Callable[[], contextlib.AbstractContextManager[Any]] = (
        contextlib.nullcontext
    )
    points: int | None = None


def diffops_impl(model: Model, op: str, backend: str, **options: Any) -> Impl:
    """The public API: ``diffops.<op>(f, backend=...)`` (``wrap_function`` for value).

    Args:
        model: The function to differentiate.
        op: Operator name or ``"value"``.
        backend: diffops backend.
        **options: Operator options, e.g. ``mode="forward"``; shown in the row label.

    Returns:
        The implementation.
    """

    def build() -> OpFn:
        func, opts = model.function(backend)
        if op == VALUE:
            wrapped = diffops.wrap_function(func, backend)
            return lambda x: (wrapped(x),)
        built: OpFn = getattr(diffops, op)(func, backend=backend, **opts, **options)
        return built

    suffix = "".join(f", {k}={v}" for k, v in options.items())
    return Impl(
        f"diffops[{backend}{suffix}]",
        "diffops",
        FRAMEWORK.get(backend, backend),
        build,
        backend=backend,
    )
