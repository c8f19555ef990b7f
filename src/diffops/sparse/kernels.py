"""The coloring kernels: greedy loops over a graph in CSR form.

Greedy coloring is sequential by nature, so the kernels are plain loops over integer
arrays. They are compiled with Numba (``pip install diffops[sparse]``) when the work
is large enough to repay loading it, and run as ordinary Python otherwise, or when
Numba is not installed: same code, same colors, only slower. Numba caches the
compiled kernels on disk, so only the first large coloring on a machine compiles
them; a process still pays ~0.5 s to import Numba and load a cached kernel, so until
a kernel is loaded, Python runs it up to :data:`COLD_PYTHON_WORK`.

Work is counted in inner-loop steps (:func:`distance2_work`, :func:`star_work`);
below :data:`PYTHON_WORK` the Python loops finish in tens of milliseconds.
"""

from __future__ import annotations

import contextlib
import importlib.util
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

PYTHON_WORK = 20_000
"""Work (inner-loop steps) up to which the kernels run as Python (tens of ms)."""
COLD_PYTHON_WORK = 300_000
"""Work up to which a kernel not yet loaded in this process runs as Python.

Measured (``python -m benchmarks.kernel_cold``, medians of 3 fresh processes): importing
Numba and loading one cached star kernel, then running it, takes 0.44-0.59 s; Python
runs 180,000-200,000 steps in 0.09-0.11 s and 720,000 in 0.42 s. Colors are the same
either way.
"""
COMPILED_WORK = 300_000_000
"""Work up to which the compiled kernels are run (a fraction of a second)."""

_COMPILED: dict[str, Callable[..., Any]] = {}


def affordable(work: int) -> bool:
    """Whether a kernel with this much work finishes in well under a second."""
    if work <= PYTHON_WORK:
        return True
    return work <= COMPILED_WORK and has_numba()


def has_numba() -> bool:
    """Whether Numba is installed (it is imported only when a kernel is compiled)."""
    return importlib.util.find_spec("numba") is not None


def compiled(kernel: Callable[..., Any], work: int) -> Callable[..., Any]:
    """``kernel`` compiled with Numba when ``work`` repays it and Numba is there."""
    if work <= PYTHON_WORK or (work <= COLD_PYTHON_WORK and not loaded(kernel)):
        return kernel
    return jit(kernel)


def load_in_background(kernel: Callable[..., Any], *example: Any) -> Callable[[], None]:
    """Start loading ``kernel`` compiled, in a thread; return the wait for it.

    Importing Numba and reading the kernel from its disk cache takes ~0.5 s; a first
    call that needs the kernel after its framework program starts this before the
    program is traced and compiled (XLA compiles without holding the GIL), and waits
    for it after. The thread calls the kernel on ``example`` (the arguments of a real
    call, so the same compiled signature is loaded). Nothing is started when the
    kernel is loaded already or Numba is missing.

    Args:
        kernel: The kernel (a Python function of this package).
        *example: Arguments for one call, of the types of the real calls.

    Returns:
        A function that waits until the thread is done (call it before returning to
        the user, so no thread outlives the call: a later ``fork`` is safe).
    """
    if loaded(kernel) or not has_numba():
        return no_wait

    def load() -> None:
        # An error here is raised again by the real call, in the caller's thread.
        with contextlib.suppress(Exception):
            jit(kernel)(*example)

    thread = threading.Thread(target=load, name="diffops-numba-load", daemon=True)
    thread.start()
    return thread.join


def no_wait() -> None:
    """The wait when nothing was started."""


def loaded(kernel: Callable[..., Any]) -> bool:
    """Whether ``kernel`` is compiled and loaded in this process already."""
    found = _COMPILED.get(kernel.__name__)
    return found is not None and bool(getattr(found, "signatures", ()))


def jit(kernel: Callable[..., Any]) -> Callable[..., Any]:
    """``kernel`` compiled with Numba (cached on disk), or itself without Numba."""
    name = kernel.__name__
    if name not in _COMPILED:
        try:
            import numba
        except ImportError:  # pragma: no cover - depends on environment
            _COMPILED[name] = kernel
        else:
            _COMPILED[name] = numba.njit(cache=True, nogil=True)(kernel)
    return _COMPILED[name]


def distance2_coloring_kernel(
    order: np.ndarray,
    col_ptr: np.ndarray,
    col_rows: np.ndarray,
    row_ptr: np.ndarray,
    row_cols: np.ndarray,
    row_skip: np.ndarray,
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

    Returns:
        Color per column.
    """
    n = col_ptr.size - 1
    color = np.full(n, -1, dtype=np.int64)
    forbidden = np.full(n + 1, -1, dtype=np.int64)
    for k in range(order.size):
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
    order: np.ndarray, ptr: np.ndarray, adj: np.ndarray
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

    Returns:
        Color per vertex.
    """
    n = ptr.size - 1
    color = np.full(n, -1, dtype=np.int64)
    forbidden = np.full(n + 1, -1, dtype=np.int64)
    # Open-addressing table: count of neighbors of x with color c, keyed x * K + c.
    capacity = 16
    while capacity < 4 * (adj.size + n):
        capacity *= 2
    keys = np.full(capacity, -1, dtype=np.int64)
    counts = np.zeros(capacity, dtype=np.int64)
    mask = capacity - 1
    stride = n + 1
    for k in range(order.size):
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
    order: np.ndarray, ptr: np.ndarray, adj: np.ndarray, mirror: np.ndarray
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

    Returns:
        Color per vertex.
    """
    n = ptr.size - 1
    color = np.full(n, -1, dtype=np.int64)
    forbidden = np.full(n + 1, -1, dtype=np.int64)
    parent = np.arange(adj.size)
    seen = np.full((2, adj.size), -1, dtype=np.int64)  # per tree: by v, through w
    stamp = np.full((2, n + 1), -1, dtype=np.int64)  # per color: by v, its edge
    for k in range(order.size):
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
                if seen[0, t] != v:
                    seen[0, t] = v
                    seen[1, t] = w
                elif seen[1, t] != w:
                    forbidden[cx] = v
        c = 0
        while forbidden[c] == v:
            c += 1
        color[v] = c
        # New edges join the trees of v's other edges to cw (q < ptr[w]), w's to c.
        for p in range(ptr[v], ptr[v + 1]):
            w = adj[p]
            cw = color[w]
            if cw < 0:
                continue
            e = min(p, mirror[p])
            for q in range(ptr[w] - 1, ptr[w + 1]):
                if q < ptr[w]:
                    if stamp[0, cw] != v:
                        stamp[0, cw] = v
                        stamp[1, cw] = e
                        continue
                    f = stamp[1, cw]
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
    kernel = compiled(distance2_coloring_kernel, distance2_work(row_ptr, row_skip))
    result: np.ndarray = kernel(
        order.astype(np.int64),
        col_ptr.astype(np.int64),
        col_rows.astype(np.int64),
        row_ptr.astype(np.int64),
        row_cols.astype(np.int64),
        row_skip.astype(np.bool_),
    )
    return result


def acyclic_coloring(
    order: np.ndarray, ptr: np.ndarray, adj: np.ndarray, mirror: np.ndarray
) -> np.ndarray:
    """:func:`acyclic_coloring_kernel`, compiled when that pays off."""
    kernel = compiled(acyclic_coloring_kernel, star_work(ptr))
    result: np.ndarray = kernel(
        order.astype(np.int64),
        ptr.astype(np.int64),
        adj.astype(np.int64),
        mirror.astype(np.int64),
    )
    return result


def star_coloring(order: np.ndarray, ptr: np.ndarray, adj: np.ndarray) -> np.ndarray:
    """:func:`star_coloring_kernel`, compiled when that pays off."""
    kernel = compiled(star_coloring_kernel, star_work(ptr))
    result: np.ndarray = kernel(
        order.astype(np.int64), ptr.astype(np.int64), adj.astype(np.int64)
    )
    return result
