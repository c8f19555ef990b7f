"""The meaning of every node, in NumPy, with its structure and its branch decisions.

:func:`evaluate` computes a generated function's value at a point together with

- a conservative sparsity structure: for every element of every intermediate array,
  the input elements its value may depend on (``G``, shape ``value + (n,)``) and the
  pairs whose second derivative may be non-zero (``H``, shape ``value + (n, n)``).
  Linear operations pass them on, products and nonlinear functions combine them, and
  ``where``, ``max`` and ``sort`` take the union of everything they could select.
  This is an oracle independent of JAX's detection: the given patterns of the
  sparse checks on other backends come from it.
- the branch decisions (``where`` conditions, ``max`` arg-maxima, ``sort``
  permutations) and their margins, so a point whose decisions change within the
  finite-difference stencil, or sit on a tie, is rejected before anything is compared;
- the smallest magnitude of any factor of a ``prod`` (Autograd's own ``prod`` gradient
  is ``ans / x``, NaN at an exact zero; such points are rejected, see ``README``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fuzz.grammar import DataSpec, FunctionSpec, Node


@dataclass
class Traced:
    """A value with its dependence structure (see the module docstring)."""

    val: np.ndarray
    G: np.ndarray
    H: np.ndarray

    @property
    def n(self) -> int:
        return self.G.shape[-1]

    def index(self, idx: Any) -> Traced:
        return Traced(self.val[idx], self.G[idx], self.H[idx])

    def reshape(self, shape: tuple[int, ...]) -> Traced:
        n = self.n
        return Traced(
            self.val.reshape(shape),
            self.G.reshape((*shape, n)),
            self.H.reshape((*shape, n, n)),
        )

    def broadcast(self, shape: tuple[int, ...]) -> Traced:
        n = self.n
        return Traced(
            np.broadcast_to(self.val, shape),
            np.broadcast_to(self.G, (*shape, n)),
            np.broadcast_to(self.H, (*shape, n, n)),
        )


def outer(g1: np.ndarray, g2: np.ndarray) -> np.ndarray:
    return g1[..., :, None] & g2[..., None, :]


def constant(value: Any, n: int) -> Traced:
    value = np.asarray(value, dtype=np.float64)
    shape = value.shape
    return Traced(value, np.zeros((*shape, n), bool), np.zeros((*shape, n, n), bool))


def nonlinear(a: Traced, value: np.ndarray) -> Traced:
    """A smooth nonlinear elementwise function of ``a``."""
    return Traced(value, a.G, a.H | outer(a.G, a.G))


def combine(op: str, a: Traced, b: Traced) -> Traced:
    shape = np.broadcast_shapes(a.val.shape, b.val.shape)
    a, b = a.broadcast(shape), b.broadcast(shape)
    if op == "add":
        return Traced(a.val + b.val, a.G | b.G, a.H | b.H)
    if op == "sub":
        return Traced(a.val - b.val, a.G | b.G, a.H | b.H)
    if op == "mul":
        hessian = a.H | b.H | outer(a.G, b.G) | outer(b.G, a.G)
        return Traced(a.val * b.val, a.G | b.G, hessian)
    if op == "safe_div":
        g = a.G | b.G
        return Traced(a.val / (1 + b.val**2), g, a.H | b.H | outer(g, g))
    raise ValueError(op)


def reduce(op: str, a: Traced, axis: int | None) -> Traced:
    """``sum``, ``prod`` or ``max`` over ``axis`` (all axes for ``None``)."""
    axes = tuple(range(a.val.ndim)) if axis is None else (axis,)
    value = {"sum": np.sum, "prod": np.prod, "max": np.max}[op](a.val, axis=axis)
    g = np.any(a.G, axis=axes)
    h = np.any(a.H, axis=axes)
    if op == "prod":
        h = h | outer(g, g)
    return Traced(np.asarray(value), g, h)


def matmul(a: Traced, b: Traced) -> Traced:
    left = a if a.val.ndim == 2 else a.reshape((1, a.val.shape[0]))
    right = b if b.val.ndim == 2 else b.reshape((b.val.shape[0], 1))
    ga = left.G[:, :, None, :]  # (r, k, 1, n)
    gb = right.G[None, :, :, :]  # (1, k, c, n)
    g = np.any(ga | gb, axis=1)
    h = np.any(
        left.H[:, :, None] | right.H[None] | outer(ga, gb) | outer(gb, ga), axis=1
    )
    out = Traced(left.val @ right.val, g, h)
    shape = a.val.shape[:-1] + b.val.shape[1:]
    return out.reshape(shape)


def concatenate(parts: list[Traced], axis: int = 0) -> Traced:
    return Traced(
        np.concatenate([p.val for p in parts], axis=axis),
        np.concatenate([p.G for p in parts], axis=axis),
        np.concatenate([p.H for p in parts], axis=axis),
    )


def stack(parts: list[Traced]) -> Traced:
    return Traced(
        np.stack([p.val for p in parts]),
        np.stack([p.G for p in parts]),
        np.stack([p.H for p in parts]),
    )


def everything(a: Traced, value: np.ndarray) -> Traced:
    """Each element of ``value`` may be any element of ``a`` (sorting)."""
    g = np.broadcast_to(np.any(a.G, axis=0), a.G.shape)
    h = np.broadcast_to(np.any(a.H, axis=0), a.H.shape)
    return Traced(value, g, h)


UNARY = {
    "sin": np.sin,
    "cos": np.cos,
    "tanh": np.tanh,
    "exp": np.exp,
    "logistic": lambda t: 1 / (1 + np.exp(-t)),
    "log1p_sq": lambda t: np.log1p(t**2),
    "sqrt1p_sq": lambda t: np.sqrt(1 + t**2),
}


def slice_index(ndim: int, axis: int, start, stop, step) -> tuple[Any, ...]:
    return (
        (slice(None),) * axis
        + (slice(start, stop, step),)
        + (slice(None),) * (ndim - axis - 1)
    )


@dataclass
class Evaluation:
    """Result of :func:`evaluate`."""

    out: Traced
    decisions: list[np.ndarray] = field(default_factory=list)
    margins: list[float] = field(default_factory=list)
    prod_factor: float = np.inf  # smallest |factor| of any prod


class Evaluator:
    """Evaluates the nodes of one function at one point with one data instance."""

    def __init__(self, x: np.ndarray, leaves: dict[str, list[np.ndarray]]):
        self.n = x.size
        g = np.eye(self.n, dtype=bool).reshape((*x.shape, self.n))
        self.x = Traced(
            np.asarray(x, np.float64), g, np.zeros((*g.shape, self.n), bool)
        )
        self.leaves = leaves
        self.result = Evaluation(self.x)
        self.memo: dict[Node, Traced] = {}

    def __call__(self, node: Node) -> Traced:
        if node not in self.memo:
            self.memo[node] = self.compute(node)
        return self.memo[node]

    def compute(self, node: Node) -> Traced:
        op, p = node.op, node.params
        if op == "x":
            return self.x
        if op == "const":
            return constant(np.reshape(p[0], node.shape), self.n)
        if op == "data":
            return constant(self.leaves["float"][p[0]], self.n)
        a = [self(arg) for arg in node.args]
        if op == "unary":
            if p[0] == "neg":
                return Traced(-a[0].val, a[0].G, a[0].H)
            return nonlinear(a[0], UNARY[p[0]](a[0].val))
        if op == "power":
            return nonlinear(a[0], a[0].val ** p[0])
        if op in ("add", "sub", "mul", "safe_div"):
            return combine(op, a[0], a[1])
        if op == "where":
            cond_p, cond_q, b, c = a
            condition = cond_p.val > cond_q.val
            self.result.decisions.append(condition)
            self.result.margins.append(float(np.min(np.abs(cond_p.val - cond_q.val))))
            shape = node.shape
            b, c = b.broadcast(shape), c.broadcast(shape)
            value = np.where(np.broadcast_to(condition, shape), b.val, c.val)
            return Traced(value, b.G | c.G, b.H | c.H)
        if op in ("sum", "prod", "max"):
            if op == "prod":
                factor = float(np.min(np.abs(a[0].val)))
                self.result.prod_factor = min(self.result.prod_factor, factor)
            if op == "max":
                self.record_max(a[0].val, p[0])
            return reduce(op, a[0], p[0])
        if op == "element":
            return a[0].index(p[0])
        if op == "column":
            return a[0].index((slice(None), p[0]))
        if op == "slice":
            axis, start, stop, step = p
            return a[0].index(slice_index(a[0].val.ndim, axis, start, stop, step))
        if op == "take":
            return a[0].index(np.reshape(p[0], p[1]))
        if op == "data_take":
            return a[0].index(self.leaves["index"][p[0]])
        if op == "concat":
            return concatenate(a)
        if op == "stack":
            return stack(a)
        if op == "matmul":
            return matmul(a[0], a[1])
        if op == "transpose":
            t = a[0]
            return Traced(t.val.T, t.G.transpose(1, 0, 2), t.H.transpose(1, 0, 2, 3))
        if op == "reshape":
            return a[0].reshape(node.shape)
        if op == "recurrence":
            return self.recurrence(a[0], *p)
        if op == "sort":
            order = np.argsort(a[0].val)
            self.result.decisions.append(order)
            self.result.margins.append(
                float(np.min(np.diff(np.sort(a[0].val)), initial=np.inf))
            )
            return everything(a[0], np.sort(a[0].val))
        if op == "head":
            weights = constant(self.leaves["head"][0], self.n)
            out = matmul(weights, a[0].reshape((a[0].val.size,)))
            return reduce("sum", out, None) if p[0] else out
        raise ValueError(f"unknown node {op!r}")

    def record_max(self, value: np.ndarray, axis: int | None) -> None:
        moved = value.reshape(-1, 1) if axis is None else np.moveaxis(value, axis, 0)
        ordered = np.sort(moved, axis=0)
        self.result.decisions.append(np.argmax(moved, axis=0))
        if moved.shape[0] > 1:
            self.result.margins.append(float(np.min(ordered[-1] - ordered[-2])))

    def recurrence(self, a: Traced, kind: str, last: bool, variant: str) -> Traced:
        c = None
        partial = []
        for i in range(a.val.shape[0]):
            ai = a.index(i)
            if c is None:
                c = ai
            elif kind == "sum":
                c = combine("add", c, ai)
            else:
                c = combine("add", combine("mul", c, ai), ai)
            partial.append(c)
        assert c is not None
        return c if last else stack(partial)


def data_leaves(data: DataSpec | None, value: Any) -> dict[str, list[np.ndarray]]:
    """The leaves of one instance of the extra argument, by kind."""
    leaves: dict[str, list[np.ndarray]] = {"float": [], "index": [], "head": []}
    if data is None:
        return leaves

    def get(path):
        out = value
        for key in path:
            out = out[key]
        return np.asarray(out)

    leaves["float"] = [
        get(data.path("float", i)) for i in range(len(data.float_shapes))
    ]
    leaves["index"] = [
        get(data.path("index", i)) for i in range(len(data.index_leaves))
    ]
    if data.head_rows is not None:
        leaves["head"] = [get(data.path("head", 0))]
    return leaves


def evaluate(spec: FunctionSpec, x: np.ndarray, data_value: Any = None) -> Evaluation:
    """Value, structure and decisions of ``spec`` at ``x`` with ``data_value``."""
    evaluator = Evaluator(x, data_leaves(spec.data, data_value))
    result = evaluator.result
    result.out = evaluator(spec.root)
    return result
