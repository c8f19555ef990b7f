"""How diffops exposes its detection and coloring: the one place to update.

The harness needs three numbers from the first call of a sparse derivative function:
its total time, and the part spent detecting the structure and coloring it. Today
(diffops 0.2, main at 1954f36) both happen inside the first call and there is no
public entry point for either: detection is ``JaxBackend.sparsity`` (which calls
``diffops.backends.jax_sparsity.hessian_pattern`` / ``jacobian_pattern``), coloring
is ``diffops.sparse.hessian_plan`` / ``jacobian_plan`` (coloring, seeds and
decompression indices). :func:`first_call` wraps those with timers for the duration
of the first call, so nothing is done twice.

When diffops gains public stages (say ``diffops.sparse.detect`` and ``color``, or
timings in ``d.coloring``), change :func:`first_call` only. If the wrapped names are
gone, the split is reported as missing (``None``) and the total is still measured.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

SOURCE = (
    "timers around JaxBackend.sparsity (detection) and diffops.sparse.hessian_plan / "
    "jacobian_plan (coloring) during the first call"
)
"""Where the split comes from (written into the report)."""


@dataclass
class FirstCall:
    """The first call of a sparse derivative function.

    Attributes:
        outputs: What the call returned.
        seconds: Wall time of the call (detection, coloring, trace, compile, run,
            conversion to SciPy).
        detect_s: Time spent detecting the structure (``None``: not available).
        color_s: Time spent coloring (``None``: not available).
        coloring: ``d.coloring`` after the call.
    """

    outputs: tuple[Any, ...]
    seconds: float
    detect_s: float | None
    color_s: float | None
    coloring: dict[str, Any] | None


def _timer(
    function: Callable[..., Any],
    totals: dict[str, float],
    name: str,
    on_stage: Callable[[str, float], None] | None,
) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            result = function(*args, **kwargs)
        finally:
            totals[name] = totals.get(name, 0.0) + time.perf_counter() - start
        if on_stage is not None:  # only when the stage succeeded
            on_stage(name, totals[name])
        return result

    return timed


@contextmanager
def _stage_timers(
    totals: dict[str, float], on_stage: Callable[[str, float], None] | None
) -> Iterator[bool]:
    """Wrap the stage functions; yields whether all of them were found."""
    targets: list[tuple[Any, str, str]] = []
    try:
        from diffops.backends.jax import JaxBackend
        from diffops.sparse import caller

        # The plans are looked up in the module that calls them.
        targets = [
            (JaxBackend, "sparsity", "detect"),
            (caller, "hessian_plan", "color"),
            (caller, "jacobian_plan", "color"),
        ]
    except ImportError:
        pass
    found = bool(targets) and all(hasattr(owner, attr) for owner, attr, _ in targets)
    with ExitStack() as stack:
        if found:
            for owner, attr, name in targets:
                timed = _timer(getattr(owner, attr), totals, name, on_stage)
                stack.enter_context(mock.patch.object(owner, attr, timed))
        yield found


def first_call(
    d: Any,
    x: Any,
    args: tuple[Any, ...],
    on_stage: Callable[[str, float], None] | None = None,
) -> FirstCall:
    """Call a fresh sparse derivative function once, timing its stages.

    Args:
        d: A diffops derivative function built with ``sparsity="detect"`` and not
            called yet.
        x: The point.
        args: Extra arguments.
        on_stage: Called with ``("detect" | "color", seconds)`` as each stage ends
            (so that a run cut short by a timeout still knows the finished stages).

    Returns:
        The :class:`FirstCall`.
    """
    totals: dict[str, float] = {}
    with _stage_timers(totals, on_stage) as found:
        start = time.perf_counter()
        outputs = d(x, *args)
        seconds = time.perf_counter() - start
    coloring = d.coloring
    return FirstCall(
        outputs=outputs,
        seconds=seconds,
        detect_s=totals.get("detect") if found else None,
        color_s=totals.get("color") if found else None,
        coloring=dict(coloring) if coloring else None,
    )


def detect_and_color(d: Any, x: Any, args: tuple[Any, ...]) -> tuple[int, int]:
    """Detect and color for a sparse derivative function, without compiling it.

    What the first call of ``d`` (built with ``sparsity="detect"``) runs before it
    builds its program: the structure (``SparseCaller.structure``) and the plan
    (``SparseCaller.plan``). Reaches the caller through ``d``'s private ``_build``
    (there is no public stage yet; change it here when there is).

    Returns:
        ``(entries in the pattern, products per call)``.
    """
    caller = d._build()
    pattern, modes, f_shape = caller.structure(x, args)
    plan = caller.plan(pattern, modes, x, f_shape)
    return int(pattern.nnz), int(plan.n_colors)


def kernels_loaded() -> None:
    """Wait until the Numba kernels whose loading diffops started are loaded.

    A first call runs its coloring kernels as Python and loads them in threads for
    later calls (``diffops.sparse.kernels``); a benchmark of the steady state waits.
    """
    from diffops.sparse import kernels

    kernels.join_loaders()


@contextmanager
def result_parts(copy_indices: bool, copy_values: bool, wrap: bool) -> Iterator[None]:
    """Leave parts of diffops' CSR result out, to time what each costs per call.

    The result is made by ``diffops.sparse.plans.Plan.matrix`` (values copied out of a
    read-only buffer) and ``csr_like`` (a shallow copy of a template, index arrays
    copied). Inside this context: without the index copies (the template's arrays
    shared), without the value copy, or (``wrap=False``) the values returned as the
    matrix, no CSR array at all. Results made inside it are for timing only.
    """
    from diffops.sparse import plans

    def shared(template: Any, data: Any) -> Any:
        """``plans.csr_like`` without its index copies (the template's arrays)."""
        result = object.__new__(type(template))
        result.__dict__.update(vars(template))
        result.data = data
        return result

    like = plans.csr_like if copy_indices else shared

    def matrix(plan: Any, data: Any) -> Any:
        if copy_values and not data.flags.writeable:
            data = data.copy()
        return like(plan._template, data) if wrap else data

    with mock.patch.object(plans.Plan, "matrix", matrix):
        yield
