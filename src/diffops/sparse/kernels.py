"""The coloring kernels: greedy loops over a graph in CSR form.

Greedy coloring is sequential by nature, so the kernels are plain loops over integer
arrays. They are compiled with Numba (``pip install diffops[sparse]``) when the work
is large enough to repay loading it, and run as ordinary Python otherwise, or when
Numba is not installed: same code, same colors, only slower. Numba caches the
compiled kernels on disk, so only the first large coloring on a machine compiles
them; a process still pays ~0.5 s to import Numba and load a cached kernel, so until
a kernel is loaded, Python runs it up to :data:`COLD_PYTHON_WORK` while a thread
loads it for the next time (:func:`run`).

Work is counted in inner-loop steps (:func:`distance2_work`, :func:`star_work`);
below :data:`PYTHON_WORK` the Python loops finish in tens of milliseconds.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
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
    """``kernel`` compiled with Numba (cached on disk), or itself without Numba."""
    name = kernel.__name__
    found = _COMPILED.get(name)
    if found is None:
        try:
            import numba
        except ImportError:  # pragma: no cover - depends on environment
            found = kernel
        else:
            found = numba.njit(cache=True, nogil=True)(kernel)
        # Two threads may get here; the first one's dispatcher is kept.
        found = _COMPILED.setdefault(name, found)
    return found


def distance2_coloring_kernel(
    order: np.ndarray,
    col_ptr: np.ndarray,
    col_rows: np.ndarray,
    row_ptr: np.ndarray,
    row_cols: np.ndarray,
    row_skip: np.ndarray,
    color: np.ndarray,
    forbidden: np.ndarray,
) -> np.ndarray:
    """Greedy coloring of columns so that no two columns of a color share a row.

    Rows with ``row_skip`` set are ignored (their entries are computed otherwise).

    Args:
        order: Columns in the order they are colored.
        col_ptr: CSC index pointer (rows of each column).
        col_rows: CSC row indices.
        row_ptr: CSR index pointer (columns of each row).
        row_cols: CSR column indices.
        row_skip: Boolean per row.
        color: Workspace: ``-1`` per column (returned, colored).
        forbidden: Workspace: ``-1`` per column and one more.

    Returns:
        Color per column.
    """
    for k in range(len(order)):
        v = order[k]
        for p in range(col_ptr[v], col_ptr[v + 1]):
            i = col_rows[p]
            if row_skip[i]:
                continue
            for q in range(row_ptr[i], row_ptr[i + 1]):
                c = color[row_cols[q]]
                if c >= 0:
                    forbidden[c] = v
        c = 0
        while forbidden[c] == v:
            c += 1
        color[v] = c
    return color


def star_coloring_kernel(
    order: np.ndarray,
    ptr: np.ndarray,
    adj: np.ndarray,
    color: np.ndarray,
    forbidden: np.ndarray,
    keys: np.ndarray,
    counts: np.ndarray,
) -> np.ndarray:
    """Greedy star coloring: distance-1, and every path on four vertices has 3 colors.

    When a vertex ``v`` is colored it must not close a two-colored path on four
    vertices. With ``v`` at an end (``v - w - x - y``, colors ``a b a b``) that means
    avoiding the color of ``x`` when ``x`` has another neighbor of ``w``'s color;
    with ``v`` inside (``u - v - w - x``) it means avoiding the colors of ``w``'s
    other neighbors when ``v`` has two neighbors of ``w``'s color. Counts of each
    color among each vertex's neighbors make both tests O(1), so coloring costs the
    sum of the squared degrees.

    Args:
        order: Vertices in the order they are colored.
        ptr: CSR index pointer of the adjacency (no self loops).
        adj: CSR neighbor indices.
        color: Workspace: ``-1`` per vertex (returned, colored).
        forbidden: Workspace: ``-1`` per vertex and one more.
        keys: Workspace: ``-1`` per slot of an open-addressing table of the count
            of neighbors of ``x`` with color ``c``, keyed ``x * (n + 1) + c``; the
            number of slots a power of 2 at least ``4 * (len(adj) + n)``
            (:func:`star_table`).
        counts: Workspace: ``0`` per slot.

    Returns:
        Color per vertex.
    """
    mask = len(keys) - 1
    stride = len(color) + 1
    for k in range(len(order)):
        v = order[k]
        for p in range(ptr[v], ptr[v + 1]):
            c = color[adj[p]]
            if c >= 0:
                forbidden[c] = v
        for p in range(ptr[v], ptr[v + 1]):
            w = adj[p]
            cw = color[w]
            if cw < 0:
                continue
            # Does v have another neighbor of w's color?
            key = v * stride + cw
            slot = (key * 2654435761) & mask
            while keys[slot] != -1 and keys[slot] != key:
                slot = (slot + 1) & mask
            repeated = keys[slot] == key and counts[slot] >= 2
            for q in range(ptr[w], ptr[w + 1]):
                x = adj[q]
                if x == v:
                    continue
                cx = color[x]
                if cx < 0 or forbidden[cx] == v:
                    continue
                if repeated:
                    forbidden[cx] = v
                    continue
                key = x * stride + cw
                slot = (key * 2654435761) & mask
                while keys[slot] != -1 and keys[slot] != key:
                    slot = (slot + 1) & mask
                if keys[slot] == key and counts[slot] >= 2:
                    forbidden[cx] = v
        c = 0
        while forbidden[c] == v:
            c += 1
        color[v] = c
        for p in range(ptr[v], ptr[v + 1]):
            key = adj[p] * stride + c
            slot = (key * 2654435761) & mask
            while keys[slot] != -1 and keys[slot] != key:
                slot = (slot + 1) & mask
            keys[slot] = key
            counts[slot] += 1
    return color


def acyclic_coloring_kernel(
    order: np.ndarray,
    ptr: np.ndarray,
    adj: np.ndarray,
    mirror: np.ndarray,
    limit: int,
    color: np.ndarray,
    forbidden: np.ndarray,
    parent: np.ndarray,
    seen: np.ndarray,
    stamp: np.ndarray,
) -> np.ndarray:
    """Greedy acyclic coloring: distance-1, and every cycle has at least 3 colors.

    The two-colored trees so far are a union-find over the edges (named by the CSR
    position of the upper entry). Giving ``v`` the color of ``x`` (a neighbor of its
    neighbor ``w``) closes a cycle when another neighbor of ``v`` is in the tree of
    ``w - x``: each tree is stamped with the first neighbor that reached it. Cost:
    the sum of the squared degrees (times union-find's near-constant).

    Args:
        order: Vertices in the order they are colored.
        ptr: CSR index pointer of the adjacency (no self loops).
        adj: CSR neighbor indices.
        mirror: For each CSR position ``(i, j)``, the position of ``(j, i)``.
        limit: The most colors of use: stop at the first vertex that needs one
            more (it gets color ``limit``; the vertices after it stay ``-1``).
        color: Workspace: ``-1`` per vertex (returned, colored).
        forbidden: Workspace: ``-1`` per vertex and one more.
        parent: Workspace: the union-find, ``arange(len(adj))``.
        seen: Workspace: ``-1``, shape ``(2, len(adj))``: per tree, the vertex that
            reached it last and through which neighbor.
        stamp: Workspace: ``-1``, shape ``(2, n + 1)``: per color, the vertex that
            stamped it last and its edge.

    Returns:
        Color per vertex.
    """
    seen_by, seen_through = seen[0], seen[1]
    stamp_by, stamp_edge = stamp[0], stamp[1]
    for k in range(len(order)):
        v = order[k]
        for p in range(ptr[v], ptr[v + 1]):
            c = color[adj[p]]
            if c >= 0:
                forbidden[c] = v
        for p in range(ptr[v], ptr[v + 1]):
            w = adj[p]
            if color[w] < 0:
                continue
            for q in range(ptr[w], ptr[w + 1]):
                cx = color[adj[q]]
                if cx < 0 or forbidden[cx] == v:
                    continue
                t = min(q, mirror[q])
                while parent[t] != t:  # find, halving the path
                    parent[t] = parent[parent[t]]
                    t = parent[t]
                if seen_by[t] != v:
                    seen_by[t] = v
                    seen_through[t] = w
                elif seen_through[t] != w:
                    forbidden[cx] = v
        c = 0
        while forbidden[c] == v:
            c += 1
        color[v] = c
        if c >= limit:
            return color
        # New edges join the trees of v's other edges to cw (q < ptr[w]), w's to c.
        for p in range(ptr[v], ptr[v + 1]):
            w = adj[p]
            cw = color[w]
            if cw < 0:
                continue
            e = min(p, mirror[p])
            for q in range(ptr[w] - 1, ptr[w + 1]):
                if q < ptr[w]:
                    if stamp_by[cw] != v:
                        stamp_by[cw] = v
                        stamp_edge[cw] = e
                        continue
                    f = stamp_edge[cw]
                elif color[adj[q]] == c:
                    f = min(q, mirror[q])
                else:
                    continue
                while parent[e] != e:
                    parent[e] = parent[parent[e]]
                    e = parent[e]
                while parent[f] != f:
                    parent[f] = parent[parent[f]]
                    f = parent[f]
                parent[max(e, f)] = min(e, f)
    return color


def distance2_work(row_ptr: np.ndarray, row_skip: np.ndarray) -> int:
    """Inner-loop steps of :func:`distance2_coloring_kernel`: sum of squared rows."""
    sizes = np.diff(row_ptr)[~row_skip]
    return int(np.sum(sizes.astype(np.int64) ** 2))


def star_work(ptr: np.ndarray) -> int:
    """Inner-loop steps of :func:`star_coloring_kernel`: sum of squared degrees."""
    degrees = np.diff(ptr).astype(np.int64)
    return int(np.sum(degrees**2))


def distance2_coloring(
    order: np.ndarray,
    col_ptr: np.ndarray,
    col_rows: np.ndarray,
    row_ptr: np.ndarray,
    row_cols: np.ndarray,
    row_skip: np.ndarray,
) -> np.ndarray:
    """:func:`distance2_coloring_kernel`, compiled when that pays off."""
    result: np.ndarray = run(
        distance2_coloring_kernel,
        distance2_work(row_ptr, row_skip),
        order.astype(np.int64),
        col_ptr.astype(np.int64),
        col_rows.astype(np.int64),
        row_ptr.astype(np.int64),
        row_cols.astype(np.int64),
        row_skip.astype(np.bool_),
        np.full(col_ptr.size - 1, -1, dtype=np.int64),
        np.full(col_ptr.size, -1, dtype=np.int64),
    )
    return result


def acyclic_coloring(
    order: np.ndarray,
    ptr: np.ndarray,
    adj: np.ndarray,
    mirror: np.ndarray,
    limit: int | None = None,
) -> np.ndarray:
    """:func:`acyclic_coloring_kernel`, compiled when that pays off.

    With ``limit``, the coloring stops at the first vertex that needs more than
    ``limit`` colors (then it has ``limit + 1``, and the rest are ``-1``).
    """
    result: np.ndarray = run(
        acyclic_coloring_kernel,
        star_work(ptr),
        order.astype(np.int64),
        ptr.astype(np.int64),
        adj.astype(np.int64),
        mirror.astype(np.int64),
        ptr.size if limit is None else limit,
        np.full(ptr.size - 1, -1, dtype=np.int64),
        np.full(ptr.size, -1, dtype=np.int64),
        np.arange(adj.size, dtype=np.int64),
        np.full((2, adj.size), -1, dtype=np.int64),
        np.full((2, ptr.size), -1, dtype=np.int64),
    )
    return result


def star_coloring(order: np.ndarray, ptr: np.ndarray, adj: np.ndarray) -> np.ndarray:
    """:func:`star_coloring_kernel`, compiled when that pays off."""
    result: np.ndarray = run(
        star_coloring_kernel,
        star_work(ptr),
        order.astype(np.int64),
        ptr.astype(np.int64),
        adj.astype(np.int64),
        np.full(ptr.size - 1, -1, dtype=np.int64),
        np.full(ptr.size, -1, dtype=np.int64),
        *star_table(ptr.size - 1, adj.size),
    )
    return result


def star_table(n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`star_coloring_kernel`'s ``keys`` and ``counts``.

    Args:
        n: Vertices.
        m: Adjacency entries.
    """
    capacity = 16
    while capacity < 4 * (m + n):
        capacity *= 2
    return np.full(capacity, -1, dtype=np.int64), np.zeros(capacity, dtype=np.int64)
