"""Running the sparse kernels: as Python, or compiled with Numba where that pays off.

The kernels (the greedy colorings of :mod:`diffops.sparse.greedy`, the substitution
of :mod:`diffops.sparse.substitution`) are plain loops over arrays. They are compiled
with Numba (``pip install diffops[sparse]``) when the work is large enough to repay
loading it, and run as ordinary Python otherwise, or when Numba is not installed:
same code, same results, only slower. Numba caches the
compiled kernels on disk, so only the first large coloring on a machine compiles
them; a process still pays ~0.5 s to import Numba and load a cached kernel, so until
a kernel is loaded, Python runs it up to :data:`COLD_PYTHON_WORK` while a thread
loads it for the next time (:func:`run`).

Work is counted in inner-loop steps (e.g. :func:`diffops.sparse.greedy.star_work`);
below :data:`PYTHON_WORK` the Python loops finish in tens of milliseconds.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import inspect
import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

PYTHON_WORK = 20_000
"""Work (inner-loop steps) up to which the kernels run as Python (tens of ms)."""
COLD_PYTHON_WORK = 1_000_000
"""Work up to which a kernel not yet loaded in this process runs as Python.

Measured (``python -m benchmarks.kernel_cold``, medians of 3 fresh processes): importing
Numba and loading one cached kernel, then running it, takes 0.46-0.58 s; the star and
acyclic kernels as Python (on lists) take 0.03-0.05 s for 180,000-200,000 steps,
0.16-0.17 s for 1,280,000 (n = 5000) and 0.21 s for 720,000 (n = 20,000). Colors are
the same either way.
"""
COMPILED_WORK = 300_000_000
"""Work up to which the compiled kernels are run (a fraction of a second)."""

_COMPILED: dict[str, Callable[..., Any]] = {}
_LOADERS: dict[str, threading.Thread] = {}
_PENDING: dict[str, tuple[Callable[..., Any], tuple[Any, ...]]] = {}
_LOCK = threading.Lock()
_HELPERS: set[Callable[..., Any]] = set()  # registered with Numba
_INT64, _FLOAT64, _BOOL = np.dtype(np.int64), np.dtype(np.float64), np.dtype(np.bool_)


def affordable(work: int) -> bool:
    """Whether a kernel with this much work finishes in well under a second."""
    if work <= PYTHON_WORK:
        return True
    return work <= COMPILED_WORK and has_numba()


@functools.cache
def has_numba() -> bool:
    """Whether Numba is installed (it is imported only when a kernel is compiled)."""
    return importlib.util.find_spec("numba") is not None


def run(
    kernel: Callable[..., Any], work: int, *args: Any, every_call: bool = False
) -> Any:
    """``kernel(*args)``, compiled with Numba where that pays off.

    Python for work up to :data:`PYTHON_WORK` (unless ``every_call``: a kernel run on
    every call of a derivative is always compiled when Numba is there). A kernel not
    yet loaded in this process runs as Python up to :data:`COLD_PYTHON_WORK`, and a
    thread loads it for the next time (:func:`load_later`): the compiled kernel gives
    the same integers, and the same floating-point numbers bit for bit (the kernels
    add and subtract in the same order, and Numba does not reorder them), so which
    one ran never shows in a result.

    Args:
        kernel: A kernel of this package (a plain Python function).
        work: Its inner-loop steps on ``args``.
        *args: Its arguments.
        every_call: Whether the kernel runs on every call (not once per plan).

    Returns:
        What the kernel returns.
    """
    if not has_numba() or (work <= PYTHON_WORK and not every_call):
        return python(kernel, *args)
    if work > COLD_PYTHON_WORK or loaded(kernel):
        return jit(kernel)(*args)
    load_later(kernel, args)
    return python(kernel, *args)


def python(kernel: Callable[..., Any], *args: Any) -> np.ndarray:
    """``kernel(*args)`` as Python, on lists: ~3x faster than on NumPy arrays.

    Arrays of 64-bit integers, booleans and doubles become lists of Python ints,
    bools and floats, whose arithmetic is the compiled kernel's (the kernels'
    integers stay far from 2**63, and ``&`` keeps the low bits either way); other
    dtypes (float32) stay arrays, so their arithmetic stays theirs.

    Returns:
        The kernel's result (one of its workspaces) as an array of its dtype.
    """
    converted = [a.tolist() if _as_list(a) else a for a in args]
    result = kernel(*converted)
    # The result is one of the workspaces: its array's dtype (also when empty).
    for original, passed in zip(args, converted, strict=True):
        if passed is result:
            return np.asarray(result, dtype=original.dtype)
    return np.asarray(result)


def _as_list(a: Any) -> bool:
    return isinstance(a, np.ndarray) and a.dtype in (_INT64, _FLOAT64, _BOOL)


def load_later(kernel: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """Load ``kernel`` compiled for ``args``' types, in a thread, after this call.

    Importing Numba and reading a kernel from its disk cache takes ~0.5 s, mostly
    Python: a thread doing it during a first call would slow that call as much as
    it saves. So the load waits in a queue until :func:`start_loading`, which the
    sparse derivatives call as a call returns. The thread is not a daemon
    (interpreter exit waits for it), and it is joined before the process forks
    (:func:`join_loaders`), so no lock is copied held into a child. Once per kernel
    and process; an error leaves the kernel running as Python.

    Args:
        kernel: A kernel of this package.
        args: Arguments of a real call (their Numba types select the signature).
    """
    with _LOCK:
        if kernel.__name__ not in _LOADERS:
            example = tuple(_example(a) for a in args)
            _PENDING.setdefault(kernel.__name__, (kernel, example))


def _example(a: Any) -> Any:
    """An array of ``a``'s Numba type (dtype, dimensions, layout, read-only).

    Empty (or of a few elements, for a strided layout): a queued load keeps no user
    data alive.
    """
    if not isinstance(a, np.ndarray):
        return a
    if a.flags.c_contiguous:
        empty = np.empty((0,) * a.ndim, dtype=a.dtype)
    elif a.flags.f_contiguous:  # 2-d or more: an empty one would count as "C"
        empty = np.empty((2,) * a.ndim, dtype=a.dtype, order="F")
    else:  # strided: layout "A"
        empty = np.empty((2,) * (a.ndim - 1) + (4,), dtype=a.dtype)[..., ::2]
    empty.flags.writeable = a.flags.writeable
    return empty


def start_loading() -> None:
    """Start the threads of the loads :func:`load_later` queued."""
    with _LOCK:
        if not _PENDING:
            return
        if not _LOADERS and hasattr(os, "register_at_fork"):
            os.register_at_fork(before=join_loaders)
        started = []
        for name, (kernel, args) in _PENDING.items():
            thread = threading.Thread(
                target=_load, args=(kernel, args), name=f"diffops-load-{name}"
            )
            _LOADERS[name] = thread
            started.append(thread)
        _PENDING.clear()
    for thread in started:
        thread.start()


def _load(kernel: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """Load ``kernel`` for ``args``' types (from the disk cache, else compile)."""
    with contextlib.suppress(Exception):
        import numba

        dispatcher: Any = jit(kernel)
        dispatcher.compile(tuple(numba.typeof(a) for a in args))


def join_loaders() -> None:
    """Wait for the threads of :func:`load_later` (registered to run before a fork)."""
    for thread in list(_LOADERS.values()):
        if thread is not threading.current_thread():
            thread.join()


def loaded(kernel: Callable[..., Any]) -> bool:
    """Whether ``kernel`` is compiled and loaded in this process already."""
    found = _COMPILED.get(kernel.__name__)
    return found is not None and bool(getattr(found, "signatures", ()))


def jit(kernel: Callable[..., Any]) -> Callable[..., Any]:
    """``kernel`` compiled with Numba (cached on disk), or itself without Numba.

    A kernel may call plain functions of its own module (helpers): they are compiled
    into it (Numba's ``register_jitable``), and run as Python with it.
    """
    name = kernel.__name__
    found = _COMPILED.get(name)
    if found is None:
        try:
            import numba.extending
        except ImportError:  # pragma: no cover - depends on environment
            found = kernel
        else:
            with _LOCK:
                for helper in _helpers(kernel):
                    numba.extending.register_jitable(helper)
                    _HELPERS.add(helper)
            found = numba.njit(cache=True, nogil=True)(kernel)
        # Two threads may get here; the first one's dispatcher is kept.
        found = _COMPILED.setdefault(name, found)
    return found


def _helpers(kernel: Callable[..., Any]) -> list[Callable[..., Any]]:
    """The functions of ``kernel``'s module that it calls, not yet registered."""
    found: list[Callable[..., Any]] = []
    for name in kernel.__code__.co_names:
        helper = kernel.__globals__.get(name)
        if (
            inspect.isfunction(helper)
            and helper.__module__ == kernel.__module__
            and helper not in _HELPERS
        ):
            found.append(helper)
    return found
