"""Derivatives at many points on a Dask cluster: :func:`map_batched`.

The points are split into chunks; each chunk is one task that evaluates the batched
derivative function (:func:`diffops.batched`) on a worker. What is shipped to the
workers is the derivative function's *recipe* (the user's function, the operator,
the backend and options, pickled as for ``multiprocessing``), never compiled code:
each worker process builds and compiles its own copy on its first chunk and reuses it
for later chunks. Dask is imported only when :func:`map_batched` is called (install
it with ``pip install diffops[dask]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from diffops.batching import batched
from diffops.boundary import as_input_array
from diffops.derivative import DerivativeFunction
from diffops.errors import ShapeMismatchError


def _evaluate_chunk(
    derivative: DerivativeFunction,
    chunk: np.ndarray,
    batched_args: tuple[int, ...],
    args: tuple[Any, ...],
) -> tuple[np.ndarray, ...]:
    """Run on a worker: the batched arrays of one chunk (copied: owned, writable)."""
    out = batched(derivative, batched_args=batched_args)(chunk, *args)
    return tuple(np.array(o) for o in out)


def map_batched(
    derivative: DerivativeFunction,
    xs: Any,
    *args: Any,
    chunk_size: int = 1000,
    client: Any = None,
    batched_args: Sequence[int] = (),
) -> tuple[np.ndarray, ...]:
    """Evaluate a derivative function at many points on a Dask cluster.

    Equivalent to ``diffops.batched(derivative)(xs, *args)``, computed in chunks of
    ``chunk_size`` points, one Dask task per chunk.

    Args:
        derivative: A derivative function built by diffops whose outputs are arrays
            (operators returning a product closure are not supported: closures
            live in the worker that built them).
        xs: Points stacked along the first axis, shape ``(B,) + S``.
        *args: Extra arguments of the function; shared by every point unless listed
            in ``batched_args``.
        chunk_size: Points per task.
        client: A ``dask.distributed.Client`` (for a cluster: ``Client("tcp://
            scheduler:8786")``); ``None`` uses the current default client, or Dask's
            local scheduler when there is none.
        batched_args: Indices of the extra arguments stacked along their first
            axis with one entry per point; they are chunked with the points.

    Returns:
        The operator's arrays stacked over all points, as ``batched`` returns them.

    Raises:
        TypeError: For an operator that returns a closure, or a derivative function
            not built by diffops.
        ShapeMismatchError: If ``xs`` has no first axis.
    """
    if not isinstance(derivative, DerivativeFunction):
        msg = (
            f"map_batched needs a derivative function built by diffops, not "
            f"{type(derivative).__name__}."
        )
        raise TypeError(msg)
    if derivative.op.closure is not None:
        msg = (
            f"map_batched returns arrays, but {derivative.op_name} returns a "
            f"{derivative.op.closure.name} closure, which cannot leave the worker. "
            f"Use an operator without a closure (e.g. hessian_grad_and_value instead "
            f"of hvp_grad_and_value), or diffops.batched in one process."
        )
        raise TypeError(msg)
    xs = as_input_array(xs, what="stack of points")
    if xs.ndim == 0 or xs.shape[0] == 0:
        msg = f"map_batched needs points of shape (B,) + S with B >= 1; got {xs.shape}."
        raise ShapeMismatchError(msg)
    from dask.base import compute
    from dask.delayed import delayed

    batched_args = tuple(int(i) for i in batched_args)
    starts = range(0, xs.shape[0], max(1, int(chunk_size)))
    tasks = []
    for start in starts:
        stop = start + chunk_size
        chunk_args = tuple(
            a[start:stop] if i in batched_args else a for i, a in enumerate(args)
        )
        tasks.append(
            delayed(_evaluate_chunk, pure=True)(
                derivative, xs[start:stop], batched_args, chunk_args
            )
        )
    if client is not None:
        chunks = client.gather(client.compute(tasks))
    else:
        (chunks,) = compute(tasks)  # type: ignore[no-untyped-call]
    return tuple(
        np.concatenate([chunk[k] for chunk in chunks]) for k in range(len(chunks[0]))
    )
