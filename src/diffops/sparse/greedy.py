"""The greedy coloring kernels: loops over a graph in CSR form.

Greedy coloring is sequential by nature, so the kernels are plain loops over integer
arrays, run by :func:`diffops.sparse.kernels.run` (as Python, or compiled with Numba
where that pays off; the same colors either way). Each kernel takes its workspaces as
arguments, and a wrapper (:func:`distance2_coloring`, :func:`star_coloring`,
:func:`acyclic_coloring`) makes them and counts the work (:func:`distance2_work`,
:func:`star_work`). Each kernel colors the vertices in the given order, each with the
smallest color that its neighbors (and the kernel's rule) leave free; a vertex ``v``
marks a color taken by setting ``forbidden[color] = v``, so the marks need no reset.

- **Distance-2** (Jacobian columns): no two columns of a color share a row.
- **Star** (Hessians): distance-1, and every path on four vertices has 3 colors. When
  ``v`` is colored it must not close a two-colored path on four vertices. With ``v``
  at an end (``v - w - x - y``, colors ``a b a b``) that means avoiding the color of
  ``x`` when ``x`` has another neighbor of ``w``'s color; with ``v`` inside
  (``u - v - w - x``) it means avoiding the colors of ``w``'s other neighbors when
  ``v`` has two neighbors of ``w``'s color. Counts of each color among each vertex's
  neighbors (an open-addressing table) make both tests O(1), so coloring costs the
  sum of the squared degrees.
- **Acyclic** (Hessians recovered by substitution): distance-1, and every cycle has
  at least 3 colors. The two-colored trees so far are a union-find over the edges
  (named by the CSR position of the upper entry). Giving ``v`` the color of ``x`` (a
  neighbor of its neighbor ``w``) closes a cycle when another neighbor of ``v`` is in
  the tree of ``w - x``: each tree is stamped with the first neighbor that reached
  it. Cost: the sum of the squared degrees (times union-find's near-constant).
"""

from __future__ import annotations

import numpy as np

from diffops.sparse.kernels import run


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
    """Greedy distance-2 coloring of columns; rows with ``row_skip`` set are ignored.

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
    """Greedy star coloring (see the module's description).

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
    """Greedy acyclic coloring (see the module's description).

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
        join_trees(v, c, ptr, adj, mirror, color, parent, stamp)
    return color


def join_trees(
    v: int,
    c: int,
    ptr: np.ndarray,
    adj: np.ndarray,
    mirror: np.ndarray,
    color: np.ndarray,
    parent: np.ndarray,
    stamp: np.ndarray,
) -> None:
    """Join the two-colored trees that ``v``'s edges connect, ``v`` just colored ``c``.

    The edge ``v - w`` joins the trees of ``v``'s other edges to color ``cw`` (one
    stamped edge per color stands for them) and the trees of ``w``'s edges to
    neighbors of color ``c``. Part of :func:`acyclic_coloring_kernel`, compiled
    with it.

    Args:
        v: The vertex.
        c: Its color.
        ptr: CSR index pointer of the adjacency.
        adj: CSR neighbor indices.
        mirror: For each CSR position ``(i, j)``, the position of ``(j, i)``.
        color: Color per vertex (``-1``: not yet colored).
        parent: The union-find over the edges (updated).
        stamp: Per color, the vertex that stamped it last and its edge (updated).
    """
    stamp_by, stamp_edge = stamp[0], stamp[1]
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
