"""Recovery by substitution: a Hessian from the products of an acyclic coloring.

With an acyclic coloring the subgraph of any two colors is a forest. Take one tree,
of colors ``a`` and ``b``, rooted somewhere; a vertex ``u`` of color ``a`` with parent
``p`` (color ``b``) has all its neighbors of color ``b`` in the tree (its parent and
its children), so the product with the seed of color ``b`` at row ``u`` is::

    P[b, u] = H[u, p] + sum over children c of u: H[u, c]

Each entry is its product minus entries recovered further down; an edge whose child
is a leaf is read directly. Unrolled, with ``s(t) = (-1)**depth(t) * P[., t]``:
``H[u, p] = (-1)**depth(u) * sum of s over the subtree of u``, and in post-order a
subtree is a contiguous run, so every entry is a difference of two prefix sums.

Everything is laid out when the plan is made (:func:`recovery`); per call,
:meth:`Substitution.finish` is O(nnz) without a loop over the trees' depth:

- a Numba kernel (``pip install diffops[sparse]``) reads the entries from the raveled
  products (the program returns them ungathered) and walks the slots in post-order,
  subtracting each recovered entry from its parent's (the textbook substitution, a
  few nanoseconds per entry);
- without Numba, and inside a framework's program (:meth:`Substitution.recover`,
  for JAX), two prefix sums. The trees are laid out one after another, each after a
  slot that cancels the previous tree's total, so rounding stays within a tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from diffops.errors import SparsityError
from diffops.sparse import kernels
from diffops.sparse.coloring import adjacency, mirror
from diffops.sparse.patterns import rows_cols

SEQUENTIAL_SLOTS = 256
"""Slots from which the Numba kernel does the substitution (when Numba is there)."""


@dataclass(frozen=True)
class Substitution:
    """The substitution step of a plan, laid out when the plan is made.

    ``index`` reads ``g`` of length ``nnz + slots`` from the products: first every
    entry that is read directly (in CSR order; the others are placeholders), then one
    slot per entry recovered by substitution and one per tree before its entries.

    Attributes:
        index: The gather from the products stacked as ``(colors, n)``, raveled.
        nnz: Entries of the matrix.
        parent: Per slot, the slot of the entry it is subtracted from (``-1``: none).
        sign: Per slot, ``(-1)**depth`` (``0`` on the slots before the trees).
        low: Per slot, the first slot of its subtree (the run of its post-order).
        starts: Per tree, its first slot (the one before its entries).
        ends: Per tree, one past its last slot.
        previous: Per slot, ``k`` on the slot before the ``k``-th tree (from 0), to
            subtract the total of tree ``k - 1``; ``0`` elsewhere.
        final: Per entry in CSR order, its position in ``g[:nnz]`` followed by the
            recovered slots.
        positions: Shape ``(2, slots)``: per slot, the CSR positions of its entry
            and of the symmetric one, where it is recovered by substitution
            (``-1``: read directly, or a slot before a tree).
    """

    index: np.ndarray
    nnz: int
    parent: np.ndarray
    sign: np.ndarray
    low: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    previous: np.ndarray
    final: np.ndarray
    positions: np.ndarray

    @property
    def slots(self) -> int:
        """Length of the substitution's part of ``g``."""
        return int(self.parent.size)

    def finish(self, products: np.ndarray) -> np.ndarray:
        """The matrix's non-zero values (CSR order) from the raveled products.

        Gather and substitution in one pass of :func:`substitute_kernel`, compiled
        with Numba (:func:`diffops.sparse.kernels.run`: while Numba loads in a
        thread after a process's first calls, the same kernel as Python, ~0.4 µs
        per entry, same numbers); without Numba or for few slots, :meth:`recover`
        in NumPy.
        """
        products = np.asarray(products).reshape(-1)
        if self.slots >= SEQUENTIAL_SLOTS and kernels.has_numba():
            result: np.ndarray = kernels.run(
                substitute_kernel,
                self.nnz + self.slots,
                products,
                self.index,
                self.nnz,
                self.parent,
                self.positions,
                np.empty(self.nnz, dtype=products.dtype),
                np.zeros(self.slots, dtype=products.dtype),
                every_call=True,
            )
            return result
        recovered: np.ndarray = self.recover(np.take(products, self.index), np)
        return recovered

    def recover(self, g: Any, xp: Any) -> Any:
        """The non-zero values from the gathered ``g``, in array namespace ``xp``.

        Two prefix sums, vectorised (NumPy, or ``jax.numpy`` inside a program).
        """
        if not self.slots:
            return xp.take(g, self.final)
        b = g[self.nnz :]
        sign = xp.asarray(self.sign, dtype=b.dtype)
        zero = xp.zeros(1, dtype=b.dtype)
        s = sign * b
        sums = xp.concatenate([zero, xp.cumsum(s)])
        totals = xp.take(sums, self.ends) - xp.take(sums, self.starts)
        s = s - xp.take(xp.concatenate([zero, totals]), self.previous)
        sums = xp.concatenate([zero, xp.cumsum(s)])
        slots = xp.arange(self.slots) + 1
        values = sign * (xp.take(sums, slots) - xp.take(sums, self.low))
        return xp.take(xp.concatenate([g[: self.nnz], values]), self.final)


def substitute_kernel(
    products: np.ndarray,
    index: np.ndarray,
    nnz: int,
    parent: np.ndarray,
    positions: np.ndarray,
    out: np.ndarray,
    below: np.ndarray,
) -> np.ndarray:
    """Gather, then each slot's entry: its product minus its children's (post-order).

    Args:
        products: The products, raveled.
        index: :attr:`Substitution.index`.
        nnz: Entries of the matrix.
        parent: Per slot, the slot its entry is subtracted from, or ``-1``.
        positions: :attr:`Substitution.positions`.
        out: Workspace: ``nnz`` values of the products' dtype (returned, filled).
        below: Workspace: ``0`` per slot, of the products' dtype.

    Returns:
        The entries in CSR order.
    """
    entry, mirrored = positions[0], positions[1]
    for p in range(nnz):
        out[p] = products[index[p]]
    for i in range(len(parent)):
        value = products[index[nnz + i]] - below[i]
        if parent[i] >= 0:
            below[parent[i]] += value
        if entry[i] >= 0:
            out[entry[i]] = value
            out[mirrored[i]] = value
    return out


def forest_kernel(
    order: np.ndarray,
    ptr: np.ndarray,
    adj: np.ndarray,
    edge: np.ndarray,
    out: np.ndarray,
    seen: np.ndarray,
    stack: np.ndarray,
) -> np.ndarray:
    """Depth-first search of a forest from roots in ``order``.

    Args:
        order: Nodes in the order they are tried as roots.
        ptr: CSR index pointer of the forest's adjacency.
        adj: CSR neighbor indices.
        edge: Per CSR position, a label of the edge (returned for the parent's).
        out: Workspace: ``-1``, shape ``(5, nodes)`` (returned, filled).
        seen: Workspace: ``False`` per node.
        stack: Workspace: an integer per node.

    Returns:
        Shape ``(5, nodes)``: parent (``-1`` for roots), the label of the edge to
        the parent, depth, position in post-order, size of the subtree.
    """
    parent, parent_edge, depth, post, size = out[0], out[1], out[2], out[3], out[4]
    cursor = ptr[:-1].copy()
    count = 0
    for k in range(len(order)):
        root = order[k]
        if seen[root]:
            continue
        seen[root] = True
        depth[root] = 0
        top = 0
        stack[0] = root
        while top >= 0:
            u = stack[top]
            if cursor[u] < ptr[u + 1]:
                x = adj[cursor[u]]
                if not seen[x]:
                    seen[x] = True
                    parent[x] = u
                    parent_edge[x] = edge[cursor[u]]
                    depth[x] = depth[u] + 1
                    top += 1
                    stack[top] = x
                cursor[u] += 1
            else:
                post[u] = count
                count += 1
                size[u] = 1 if size[u] < 0 else size[u] + 1
                if parent[u] >= 0:
                    size[parent[u]] = max(size[parent[u]], 0) + size[u]
                top -= 1
    return out


def recovery(pattern: Any, colors: np.ndarray) -> tuple[np.ndarray, Substitution]:
    """The gather and the substitution for an acyclic coloring of ``pattern``.

    Args:
        pattern: Symmetric 0/1 CSR array ``(n, n)``.
        colors: An acyclic coloring of its graph (color per vertex).

    Returns:
        ``(index, substitution)``: ``index`` reads ``g`` from the products stacked
        as ``(colors, n)`` and raveled.

    Raises:
        SparsityError: If two colors induce a cycle (not an acyclic coloring; a
            bug).
    """
    n = pattern.shape[0]
    rows, cols = rows_cols(pattern)
    nnz = rows.size
    index = colors[cols] * n + rows  # the diagonal: H[i, i] = P[color(i), i]
    graph = adjacency(pattern)
    off = np.flatnonzero(rows != cols)
    reverse = mirror(graph)
    vertex, other, forest = _forest(graph, colors, reverse)
    parent, parent_edge, depth, post, size = forest
    child = np.flatnonzero(parent >= 0)
    # Each edge joins a child to its parent: read at the child's row, from the
    # product of the parent's color.
    read = other[child] * n + vertex[child]
    edges = parent_edge[child]
    index[off[edges]] = read
    index[off[reverse[edges]]] = read
    internal = child[size[child] > 1]
    laid, slot_of, starts = _slots(parent, post, internal)
    slots = laid.size + starts.size
    parent_slot = np.full(slots, -1, dtype=np.int64)
    parent_slot[slot_of[laid]] = np.where(
        parent[parent[laid]] >= 0, slot_of[parent[laid]], -1
    )
    sign = np.zeros(slots, dtype=np.int8)
    sign[slot_of[laid]] = 1 - 2 * (depth[laid] % 2)
    low = np.arange(slots, dtype=np.int64)
    low[slot_of[laid]] = slot_of[laid] - size[laid] + 1
    reads = np.zeros(slots, dtype=np.int64)
    reads[slot_of[laid]] = other[laid] * n + vertex[laid]
    previous = np.zeros(slots, dtype=np.int64)
    previous[starts] = np.arange(starts.size)
    final = np.arange(nnz, dtype=np.int64)
    edges = parent_edge[internal]
    final[off[edges]] = nnz + slot_of[internal]
    final[off[reverse[edges]]] = nnz + slot_of[internal]
    ends = np.append(starts[1:], slots).astype(np.int64)
    positions = np.full((2, slots), -1, dtype=np.int64)
    positions[:, slot_of[internal]] = [off[edges], off[reverse[edges]]]
    gather = np.concatenate([index, reads]).astype(np.int64)
    steps = Substitution(
        gather,
        nnz,
        parent_slot,
        sign,
        low,
        starts,
        ends,
        previous,
        final,
        positions,
    )
    return gather, steps


def _slots(
    parent: np.ndarray, post: np.ndarray, internal: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The slots: each tree with an internal edge, a slot then its nodes' post-order.

    Args:
        parent: Per node, its parent (``-1``: a root).
        post: Per node, its position in the post-order.
        internal: The nodes whose edge to their parent has edges below it.

    Returns:
        ``(laid, slot_of, starts)``: the nodes given slots (in slot order), the slot
        of each node (``-1``: none), and each tree's slot before its nodes.
    """
    roots = np.sort(post[parent < 0])
    tree = np.searchsorted(roots, post)  # trees are runs of the post-order
    deep = np.zeros(roots.size, dtype=bool)
    deep[tree[internal]] = True
    laid = np.flatnonzero((parent >= 0) & deep[tree])
    laid = laid[np.argsort(post[laid])]
    rank = np.cumsum(deep) - 1  # of each deep tree among them
    slot_of = np.full(parent.size, -1, dtype=np.int64)
    slot_of[laid] = np.arange(laid.size) + rank[tree[laid]] + 1
    firsts = np.flatnonzero(np.diff(tree[laid], prepend=-1))
    return laid, slot_of, slot_of[laid[firsts]] - 1


def _forest(
    graph: Any, colors: np.ndarray, reverse: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two-colored trees, searched depth-first from their busiest nodes.

    A node is a vertex with one other color, ``(v, d)``: ``v`` in the subgraph of
    its own color and ``d``. The edge ``(v, w)`` joins ``(v, color(w))`` and
    ``(w, color(v))``, so the nodes' graph is the union of all two-colored subgraphs,
    one tree each component when the coloring is acyclic.

    Returns:
        Per node: its vertex, its other color, and :func:`forest_kernel`'s arrays
        (the parent edge as a position in ``graph``).

    Raises:
        SparsityError: If the nodes' graph has a cycle.
    """
    rows, cols = rows_cols(graph)
    width = max(int(colors.max()) + 1 if colors.size else 0, 1)
    keys, node_of = np.unique(rows * width + colors[cols], return_inverse=True)
    node_of = node_of.reshape(-1)
    nodes = keys.size
    by_node = np.argsort(node_of, kind="stable")
    ptr = np.zeros(nodes + 1, dtype=np.int64)
    ptr[1:] = np.cumsum(np.bincount(node_of, minlength=nodes))
    adj = node_of[reverse[by_node]]
    order = np.argsort(-np.diff(ptr), kind="stable")
    forest = kernels.run(
        forest_kernel,
        graph.nnz,
        order,
        ptr,
        adj.astype(np.int64),
        by_node.astype(np.int64),
        np.full((5, nodes), -1, dtype=np.int64),
        np.zeros(nodes, dtype=np.bool_),
        np.zeros(nodes, dtype=np.int64),
    )
    n_trees = int(np.sum(forest[0] < 0))
    if graph.nnz // 2 != nodes - n_trees:
        msg = "Two colors of the Hessian coloring form a cycle (not acyclic)."
        raise SparsityError(msg)
    return keys // width, keys % width, forest
