"""Side-by-side benchmarks: diffops against each framework's own best call and NumPy.

One run times, per case and operator, the diffops derivative function on every selected
backend, the best hand-written call of the framework itself for the same result
(including the conversion of its outputs to NumPy arrays) and, where closed forms exist,
hand-written NumPy derivatives. It reports medians per call, ratios, the issue's targets
with pass/fail, and writes ``results.json`` (raw numbers and machine info),
``results.md`` and ``scaling.png`` to the output directory.

Run it as ``diffops bench`` (or ``python -m diffops.bench``); ``--quick`` is a smoke
test for CI. Every framework, rich and matplotlib are imported inside functions, so
importing this module costs nothing beyond diffops itself.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.metadata
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

import diffops
from diffops.errors import closest
from diffops.models import MODELS, Model, logistic_model

OpFn = Callable[[np.ndarray], tuple[Any, ...]]

# ---------------------------------------------------------------------------------
# Timing


@dataclass(frozen=True)
class Timing:
    """Per-call times of one callable, from batches of repeated calls.

    Attributes:
        median_us: Median over batches of the time per call, in microseconds.
        q1_us: First quartile of the per-call times, in microseconds.
        q3_us: Third quartile of the per-call times, in microseconds.
        min_us: Fastest batch's time per call, in microseconds.
        loops: Calls per batch.
        repeats: Number of batches.
    """

    median_us: float
    q1_us: float
    q3_us: float
    min_us: float
    loops: int
    repeats: int


def _batch(fn: Callable[[], Any], loops: int) -> float:
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        return time.perf_counter() - start
    finally:
        if enabled:
            gc.enable()


def _calibrate(fn: Callable[[], Any], min_batch_s: float) -> tuple[int, float]:
    """Warm ``fn`` up and choose the calls per batch.

    Returns:
        ``(loops, per_call)``: calls per batch of at least ~``min_batch_s`` and the
        time per call (seconds) of the batch that showed it, usable as a sample.
    """
    # Warm-up: at least two calls and about a quarter of a batch.
    start = time.perf_counter()
    calls = 0
    while calls < 2 or time.perf_counter() - start < min_batch_s / 4:
        fn()
        calls += 1
    per_call = (time.perf_counter() - start) / calls
    loops = max(1, math.ceil(min_batch_s / max(per_call, 1e-9)))
    while True:
        elapsed = _batch(fn, loops)
        if elapsed >= 0.8 * min_batch_s:
            return loops, elapsed / loops
        loops = max(
            loops + 1, math.ceil(loops * 1.2 * min_batch_s / max(elapsed, 1e-9))
        )


def _max_samples(per_call: float, repeats: int) -> int:
    """Calls slower than 0.2 s are repeated at most 5 times."""
    return min(repeats, 5) if per_call > 0.2 else repeats


def _timing(samples: Sequence[float], loops: int) -> Timing:
    q1, median, q3 = _quartiles(samples)
    return Timing(
        median * 1e6, q1 * 1e6, q3 * 1e6, min(samples) * 1e6, loops, len(samples)
    )


def time_call(
    fn: Callable[[], Any], *, repeats: int = 9, min_batch_s: float = 0.02
) -> Timing:
    """Time ``fn()``: warm up, then the median over batches of the time per call.

    The number of calls per batch is chosen so that each batch lasts at least
    ``min_batch_s``; the garbage collector is off during a batch, as in ``timeit``.
    Calls slower than 0.2 s are repeated at most 5 times. (The benchmark itself
    interleaves the batches of all implementations of a case instead, so that changes
    in machine load hit them alike.)

    Args:
        fn: Callable without arguments; its result is discarded.
        repeats: Number of batches.
        min_batch_s: Shortest duration of a batch, in seconds.

    Returns:
        The per-call statistics.
    """
    loops, first = _calibrate(fn, min_batch_s)
    samples = [first]
    samples.extend(
        _batch(fn, loops) / loops for _ in range(_max_samples(first, repeats) - 1)
    )
    return _timing(samples, loops)


def _quartiles(samples: Sequence[float]) -> tuple[float, float, float]:
    if len(samples) < 2:
        return samples[0], samples[0], samples[0]
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return q1, statistics.median(samples), q3


# ---------------------------------------------------------------------------------
# Functions benchmarked besides diffops.models.MODELS


def _tall_model(n_out: int = 300) -> Model:
    """3 → n_out: ``sin(Cx) + (Cx)²/2``; forward mode wins."""
    c = np.random.default_rng(20261123).standard_normal((n_out, 3)) / np.sqrt(3)

    def formula(ns: SimpleNamespace) -> Callable[[Any], Any]:
        def tall(x: Any) -> Any:
            z = ns.const(c, x) @ x
            return ns.sin(z) + 0.5 * z**2

        return tall

    def value(x: np.ndarray) -> np.ndarray:
        z = c @ x
        return np.sin(z) + 0.5 * z**2

    def jacobian(x: np.ndarray) -> np.ndarray:
        z = c @ x
        return (np.cos(z) + z)[:, None] * c

    def vector_hessian(x: np.ndarray) -> np.ndarray:
        z = c @ x
        return (1 - np.sin(z))[:, None, None] * c[:, :, None] * c[:, None, :]

    return Model(
        "tall",
        f"3 → {n_out}: sin(Cx) + (Cx)²/2",
        (3,),
        False,
        formula,
        value,
        jacobian,
        vector_hessian,
    )


def _wide_model(n_in: int = 300) -> Model:
    """n_in → 3: ``W sin(x) + (Wx)²/2``; reverse mode wins."""
    w = np.random.default_rng(20261124).standard_normal((3, n_in)) / np.sqrt(n_in)

    def formula(ns: SimpleNamespace) -> Callable[[Any], Any]:
        def wide(x: Any) -> Any:
            wc = ns.const(w, x)
            return wc @ ns.sin(x) + 0.5 * (wc @ x) ** 2

        return wide

    def value(x: np.ndarray) -> np.ndarray:
        return w @ np.sin(x) + 0.5 * (w @ x) ** 2

    def jacobian(x: np.ndarray) -> np.ndarray:
        return w * np.cos(x) + (w @ x)[:, None] * w

    def vector_hessian(x: np.ndarray) -> np.ndarray:
        diag = np.stack([np.diag(-wi * np.sin(x)) for wi in w])
        return diag + w[:, :, None] * w[:, None, :]

    return Model(
        "wide",
        f"{n_in} → 3: W sin(x) + (Wx)²/2",
        (n_in,),
        False,
        formula,
        value,
        jacobian,
        vector_hessian,
    )


def _rw_softplus_model(dim: int) -> Model:
    """O(d) log-density: random-walk prior plus softplus terms."""

    def formula(ns: SimpleNamespace) -> Callable[[Any], Any]:
        def rw_softplus(x: Any) -> Any:
            dx = x[1:] - x[:-1]
            return -0.5 * ns.sum(dx**2) - ns.sum(ns.log1p(ns.exp(x)))

        return rw_softplus

    def value(x: np.ndarray) -> np.ndarray:
        dx = np.diff(x)
        return -0.5 * (dx @ dx) - np.sum(np.log1p(np.exp(x)))

    def grad(x: np.ndarray) -> np.ndarray:
        dx = np.diff(x)
        g = -1 / (1 + np.exp(-x))
        g[1:] -= dx
        g[:-1] += dx
        return g

    def hessian(x: np.ndarray) -> np.ndarray:
        s = 1 / (1 + np.exp(-x))
        h = np.diag(-s * (1 - s))
        lap = np.diag(np.r_[1.0, np.full(dim - 2, 2.0), 1.0]) if dim > 1 else 0
        off = np.eye(dim, k=1) + np.eye(dim, k=-1)
        return h - lap + off

    return Model(
        "rw_softplus",
        "−½Σ(x[i+1]−x[i])² − Σ log(1+eˣ), O(d)",
        (dim,),
        True,
        formula,
        value,
        grad,
        hessian,
        sample=lambda rng, shape: rng.standard_normal(shape),
    )


# ---------------------------------------------------------------------------------
# Results


@dataclass
class _Record:
    """One timed implementation of one operation (JSON row)."""

    section: str
    op: str
    dim: int
    impl: str
    kind: str  # "diffops" | "framework" | "numpy" | "diagnostic"
    framework: str
    backend: str | None = None
    family: str | None = None
    median_us: float | None = None
    q1_us: float | None = None
    q3_us: float | None = None
    min_us: float | None = None
    loops: int | None = None
    repeats: int | None = None
    first_call_us: float | None = None
    correct: bool | None = None
    error: str | None = None
    note: str | None = None

    def set_timing(self, timing: Timing) -> _Record:
        self.median_us, self.q1_us, self.q3_us = (
            timing.median_us,
            timing.q1_us,
            timing.q3_us,
        )
        self.min_us, self.loops, self.repeats = (
            timing.min_us,
            timing.loops,
            timing.repeats,
        )
        return self


@dataclass
class _Config:
    quick: bool
    backends: tuple[str, ...]
    cases: tuple[str, ...]
    out: Path
    repeats: int
    min_batch_s: float
    large_dims: tuple[int, ...]
    first_call_reps: int
    import_reps: int
    threads: int | None = None
    argv: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)


_FRAMEWORK = {
    "jax": "jax",
    "jax_nojit": "jax",
    "autograd": "autograd",
    "symnum": "symnum",
    "torch": "torch",
}
_OUTPUT_NAMES = {
    "grad_and_value": ("grad", "value"),
    "hessian_grad_and_value": ("hessian", "grad", "value"),
    "mtp_hessian_grad_and_value": ("mtp", "hessian", "grad", "value"),
    "jacobian_and_value": ("jacobian", "value"),
    "mhp_jacobian_and_value": ("mhp", "jacobian", "value"),
    "vjp_and_value": ("vjp", "value"),
    "value": ("value",),
}
_CLOSURE = {
    "mtp_hessian_grad_and_value": "mtp",
    "mhp_jacobian_and_value": "mhp",
    "vjp_and_value": "vjp",
}
_SHORT_OP = {
    "grad_and_value": "grad",
    "hessian_grad_and_value": "hessian",
    "mtp_hessian_grad_and_value": "mtp_hessian",
    "jacobian_and_value": "jacobian",
    "mhp_jacobian_and_value": "mhp_jacobian",
    "vjp_and_value": "vjp",
    "value": "value",
}

# ---------------------------------------------------------------------------------
# Implementations: diffops, each framework's own calls, NumPy closed forms


@dataclass
class _Impl:
    name: str
    kind: str
    framework: str
    build: Callable[[], OpFn]
    backend: str | None = None
    family: str | None = None
    context: Callable[[], contextlib.AbstractContextManager[Any]] = (
        contextlib.nullcontext
    )


@dataclass
class _Problem:
    section: str
    op: str
    model: Model
    x: np.ndarray
    closure_arg: np.ndarray | None
    impls: list[_Impl]
    reference: tuple[Any, ...] | None = None


def _diffops_impl(model: Model, op: str, backend: str, **options: Any) -> _Impl:
    def build() -> OpFn:
        func, opts = model.function(backend)
        if op == "value":
            wrapped = diffops.wrap_function(func, backend)
            return lambda x: (wrapped(x),)
        built: OpFn = getattr(diffops, op)(func, backend=backend, **opts, **options)
        return built

    suffix = "".join(f", {k}={v}" for k, v in options.items())
    return _Impl(
        f"diffops[{backend}{suffix}]",
        "diffops",
        _FRAMEWORK.get(backend, backend),
        build,
        backend=backend,
    )


def _numpy_impl(model: Model, op: str) -> _Impl:
    value, first, second, third = model.value, model.first, model.second, model.third

    def flat(x: np.ndarray) -> int:
        return int(x.size)

    def build() -> OpFn:
        if op == "value":
            return lambda x: (value(x),)
        if op == "grad_and_value":
            return lambda x: (first(x), value(x))
        if op == "hessian_grad_and_value":
            return lambda x: (second(x), first(x), value(x))
        if op == "mtp_hessian_grad_and_value":
            if third is None:
                msg = f"{model.name} has no Tressian"
                raise ValueError(msg)
            tressian = third

            def mtp_op(x: np.ndarray) -> tuple[Any, ...]:
                n = flat(x)

                def mtp(m: np.ndarray) -> np.ndarray:
                    t = tressian(x).reshape(n, n, n)
                    return np.einsum("ijk,jk->i", t, m.reshape(n, n)).reshape(x.shape)

                return mtp, second(x), first(x), value(x)

            return mtp_op
        if op == "jacobian_and_value":
            return lambda x: (first(x), value(x))
        if op == "mhp_jacobian_and_value":

            def mhp_op(x: np.ndarray) -> tuple[Any, ...]:
                n = flat(x)

                def mhp(m: np.ndarray) -> np.ndarray:
                    h = second(x).reshape(-1, n, n)
                    return np.einsum("ijk,ij->k", h, m.reshape(-1, n)).reshape(x.shape)

                return mhp, first(x), value(x)

            return mhp_op
        if op == "vjp_and_value":

            def vjp_op(x: np.ndarray) -> tuple[Any, ...]:
                n = flat(x)

                def vjp(v: np.ndarray) -> np.ndarray:
                    return (v.reshape(-1) @ first(x).reshape(-1, n)).reshape(x.shape)

                return vjp, value(x)

            return vjp_op
        msg = f"no NumPy closed form for {op}"
        raise ValueError(msg)

    return _Impl("numpy closed form", "numpy", "numpy", build)


def _logistic_numpy_mtp(model: Model, dim: int, n_data: int) -> _Impl:
    """Hand-written NumPy MTP for the logistic model, O(n d²) per product.

    ``mtp(m)[i] = -Σ_n w_n a_ni (a_n · m · a_n)`` with ``w = σ(1 − σ)(1 − 2σ)``; the
    generic route through the full Tressian (``model.third``) is O(n d³).
    """
    from diffops.models import _logistic_data

    design, _ = _logistic_data(dim, n_data)

    def build() -> OpFn:
        def mtp_op(x: np.ndarray) -> tuple[Any, ...]:
            s = 1 / (1 + np.exp(-(design @ x)))
            w = s * (1 - s) * (1 - 2 * s)

            def mtp(m: np.ndarray) -> np.ndarray:
                quad = np.einsum("nj,jk,nk->n", design, m, design, optimize=True)
                return -(design.T @ (w * quad))

            return mtp, model.second(x), model.first(x), model.value(x)

        return mtp_op

    return _Impl("numpy closed form", "numpy", "numpy", build)


def _jax_x64() -> contextlib.AbstractContextManager[Any]:
    import jax

    return jax.enable_x64(True)


_JAX_VARIANTS: dict[str, tuple[str, ...]] = {
    "grad_and_value": ("jax.jit(value_and_grad)",),
    "hessian_grad_and_value": (
        "jax.jit(jacfwd(value_and_grad, has_aux))",
        "jax.jit(hessian + value_and_grad)",
    ),
    "mtp_hessian_grad_and_value": ("jax.jit(vjp(jacfwd(value_and_grad)))",),
    "jacobian_and_value": (
        "jax.jit(jacfwd, has_aux)",
        "jax.jit(jacrev, has_aux)",
    ),
    "mhp_jacobian_and_value": (
        "jax.jit(vjp(jacfwd, has_aux))",
        "jax.jit(vjp(jacrev, has_aux))",
    ),
    "vjp_and_value": ("jax.jit(vjp)",),
    "value": ("jax.jit(f)",),
}


def _eager_name(variant: str) -> str:
    return "jax eager: " + variant[len("jax.jit(") : -1]


def _build_jax(model: Model, op: str, variant: str) -> OpFn:
    """Hand-written JAX: one ``jax.jit`` of composed transforms + ``np.asarray``.

    A variant named ``"jax eager: ..."`` is the same composition without ``jax.jit``
    (what ``jax_nojit`` is compared with).
    """
    import jax

    f, _ = model.function("jax")
    asarray = np.asarray
    eager = variant.startswith("jax eager: ")
    jit: Callable[..., Any] = (lambda fn: fn) if eager else jax.jit
    if eager:
        variant = f"jax.jit({variant[len('jax eager: ') :]})"
    # Closures leave jit as pytrees (jax.vjp's pullback) and are applied by one
    # compiled function, as a careful JAX user would.
    apply = jit(lambda pullback, u: pullback(u)[0])

    def closure(pullback: Any) -> Callable[[np.ndarray], np.ndarray]:
        return lambda u: asarray(apply(pullback, u))

    def f_aux(x: Any) -> Any:
        y = f(x)
        return y, y

    def g_aux(x: Any) -> Any:
        v, g = jax.value_and_grad(f)(x)
        return g, (g, v)

    def hgv(x: Any) -> Any:
        h, (g, v) = jax.jacfwd(g_aux, has_aux=True)(x)
        return h, (g, v)

    if variant == "jax.jit(f)":
        jf = jit(f)
        return lambda x: (asarray(jf(x)),)
    if variant == "jax.jit(value_and_grad)":
        jf = jit(jax.value_and_grad(f))

        def grad_call(x: np.ndarray) -> tuple[Any, ...]:
            v, g = jf(x)
            return asarray(g), asarray(v)

        return grad_call
    if variant == "jax.jit(jacfwd(value_and_grad, has_aux))":
        jf = jit(hgv)

        def hess_call(x: np.ndarray) -> tuple[Any, ...]:
            h, (g, v) = jf(x)
            return asarray(h), asarray(g), asarray(v)

        return hess_call
    if variant == "jax.jit(hessian + value_and_grad)":
        jf = jit(lambda x: (jax.hessian(f)(x), jax.value_and_grad(f)(x)))

        def hess2_call(x: np.ndarray) -> tuple[Any, ...]:
            h, (v, g) = jf(x)
            return asarray(h), asarray(g), asarray(v)

        return hess2_call
    if variant == "jax.jit(vjp(jacfwd(value_and_grad)))":
        jf = jit(lambda x: jax.vjp(hgv, x, has_aux=True))

        def mtp_call(x: np.ndarray) -> tuple[Any, ...]:
            h, pullback, (g, v) = jf(x)
            return closure(pullback), asarray(h), asarray(g), asarray(v)

        return mtp_call
    if variant in ("jax.jit(jacfwd, has_aux)", "jax.jit(jacrev, has_aux)"):
        transform = jax.jacfwd if "jacfwd" in variant else jax.jacrev
        jf = jit(transform(f_aux, has_aux=True))

        def jac_call(x: np.ndarray) -> tuple[Any, ...]:
            j, v = jf(x)
            return asarray(j), asarray(v)

        return jac_call
    if variant in ("jax.jit(vjp(jacfwd, has_aux))", "jax.jit(vjp(jacrev, has_aux))"):
        transform = jax.jacfwd if "jacfwd" in variant else jax.jacrev
        jac = transform(f_aux, has_aux=True)
        jf = jit(lambda x: jax.vjp(jac, x, has_aux=True))

        def mhp_call(x: np.ndarray) -> tuple[Any, ...]:
            j, pullback, v = jf(x)
            return closure(pullback), asarray(j), asarray(v)

        return mhp_call
    if variant == "jax.jit(vjp)":
        jf = jit(lambda x: jax.vjp(f, x))

        def vjp_call(x: np.ndarray) -> tuple[Any, ...]:
            v, pullback = jf(x)
            return closure(pullback), asarray(v)

        return vjp_call
    msg = f"unknown JAX variant {variant!r}"
    raise ValueError(msg)


def _build_jax_x64_per_call(model: Model) -> OpFn:
    """Diagnostic: ``jax.jit(value_and_grad)`` entering ``enable_x64`` on every call."""
    import jax

    f, _ = model.function("jax")
    jf = jax.jit(jax.value_and_grad(f))

    def call(x: np.ndarray) -> tuple[Any, ...]:
        with jax.enable_x64(True):
            v, g = jf(x)
            return np.asarray(g), np.asarray(v)

    return call


_TORCH_VARIANTS: dict[str, tuple[str, ...]] = {
    "grad_and_value": ("torch.func.grad_and_value", "torch.autograd.grad"),
    "hessian_grad_and_value": (
        "torch.func.jacfwd(grad_and_value)",
        "torch.func.jacrev(grad_and_value)",
        "torch.func.hessian + grad_and_value",
        "torch.autograd.grad (row loop)",
        "torch.autograd.grad (is_grads_batched)",
    ),
    "mtp_hessian_grad_and_value": (
        "torch.func.vjp(jacfwd(grad_and_value))",
        "torch.func.vjp(jacrev(grad_and_value))",
        "torch.autograd.grad (row loop)",
        "torch.autograd.grad (is_grads_batched)",
    ),
    "jacobian_and_value": (
        "torch.func.jacrev",
        "torch.func.jacfwd",
        "torch.autograd.grad (row loop)",
        "torch.autograd.grad (is_grads_batched)",
        "torch.autograd.forward_ad (column loop)",
    ),
    "mhp_jacobian_and_value": (
        "torch.func.vjp(jacrev)",
        "torch.func.vjp(jacfwd)",
        "torch.autograd.grad (row loop)",
    ),
    "vjp_and_value": ("torch.func.vjp", "torch.autograd.grad"),
    "value": ("torch (plain call)",),
}


def _build_torch(model: Model, op: str, variant: str) -> OpFn:
    """Hand-written PyTorch, with ``torch.from_numpy`` in and ``.numpy()`` out."""
    import torch
    import torch.autograd.forward_ad as fwad

    f, _ = model.function("torch")
    tf: Any = torch.func
    grad: Any = torch.autograd.grad
    tensor = torch.from_numpy

    def out(t: Any) -> np.ndarray:
        return t.detach().numpy()

    def closure(fn: Callable[[Any], Any]) -> Callable[[np.ndarray], np.ndarray]:
        return lambda u: out(fn(tensor(u)))

    def g_aux(x: Any) -> Any:
        g, v = tf.grad_and_value(f)(x)
        return g, (g, v)

    def f_aux(x: Any) -> Any:
        y = f(x)
        return y, y

    def rows(y: Any, xt: Any, create_graph: bool) -> Any:
        basis = torch.eye(y.numel(), dtype=y.dtype)
        return torch.stack(
            [
                grad(
                    y,
                    xt,
                    e.reshape(y.shape),
                    retain_graph=True,
                    create_graph=create_graph,
                    allow_unused=True,
                    materialize_grads=True,
                )[0]
                for e in basis
            ]
        )

    def batched(y: Any, xt: Any, create_graph: bool) -> Any:
        basis = torch.eye(y.numel(), dtype=y.dtype).reshape((-1, *y.shape))
        (r,) = grad(
            y,
            xt,
            basis,
            retain_graph=True,
            create_graph=create_graph,
            is_grads_batched=True,
        )
        return r

    if op == "value":
        return lambda x: (out(f(tensor(x))),)
    if variant == "torch.func.grad_and_value":
        gv = tf.grad_and_value(f)

        def func_grad(x: np.ndarray) -> tuple[Any, ...]:
            g, v = gv(tensor(x))
            return out(g), out(v)

        return func_grad
    if op == "grad_and_value":

        def autograd_grad(x: np.ndarray) -> tuple[Any, ...]:
            xt = tensor(x).requires_grad_()
            v = f(xt)
            (g,) = grad(v, xt)
            return out(g), out(v)

        return autograd_grad
    if variant == "torch.func.hessian + grad_and_value":
        hess, gv = tf.hessian(f), tf.grad_and_value(f)

        def func_hess2(x: np.ndarray) -> tuple[Any, ...]:
            xt = tensor(x)
            g, v = gv(xt)
            return out(hess(xt)), out(g), out(v)

        return func_hess2
    if op == "hessian_grad_and_value" and variant.startswith("torch.func"):
        transform = tf.jacfwd if "jacfwd" in variant else tf.jacrev
        hgv = transform(g_aux, has_aux=True)

        def func_hess(x: np.ndarray) -> tuple[Any, ...]:
            h, (g, v) = hgv(tensor(x))
            return out(h), out(g), out(v)

        return func_hess
    if op in ("hessian_grad_and_value", "mtp_hessian_grad_and_value") and (
        variant.startswith("torch.autograd")
    ):
        second = batched if "batched" in variant else rows
        keep = op == "mtp_hessian_grad_and_value"

        def autograd_hess(x: np.ndarray) -> tuple[Any, ...]:
            xt = tensor(x).requires_grad_()
            v = f(xt)
            (g,) = grad(v, xt, create_graph=True)
            h = second(g, xt, keep)
            if not keep:
                return out(h), out(g), out(v)

            def mtp(m: Any) -> Any:
                return grad(h, xt, m, retain_graph=True)[0]

            return closure(mtp), out(h), out(g), out(v)

        return autograd_hess
    if op == "mtp_hessian_grad_and_value":
        transform = tf.jacfwd if "jacfwd" in variant else tf.jacrev
        hgv = transform(g_aux, has_aux=True)

        def func_mtp(x: np.ndarray) -> tuple[Any, ...]:
            h, vjp_fn, (g, v) = tf.vjp(hgv, tensor(x), has_aux=True)
            return closure(lambda m: vjp_fn(m)[0]), out(h), out(g), out(v)

        return func_mtp
    if op == "jacobian_and_value" and variant.startswith("torch.func"):
        transform = tf.jacfwd if "jacfwd" in variant else tf.jacrev
        jv = transform(f_aux, has_aux=True)

        def func_jac(x: np.ndarray) -> tuple[Any, ...]:
            j, v = jv(tensor(x))
            return out(j), out(v)

        return func_jac
    if variant == "torch.autograd.forward_ad (column loop)":

        def forward_jac(x: np.ndarray) -> tuple[Any, ...]:
            xt = tensor(x)
            columns = []
            with fwad.dual_level():
                for e in torch.eye(xt.numel(), dtype=xt.dtype):
                    primal, tangent = fwad.unpack_dual(f(fwad.make_dual(xt, e)))
                    columns.append(tangent)
            return out(torch.stack(columns, dim=-1)), out(primal)

        return forward_jac
    if op in ("jacobian_and_value", "mhp_jacobian_and_value") and (
        variant.startswith("torch.autograd")
    ):
        first = batched if "batched" in variant else rows
        keep = op == "mhp_jacobian_and_value"

        def autograd_jac(x: np.ndarray) -> tuple[Any, ...]:
            xt = tensor(x).requires_grad_()
            v = f(xt)
            j = first(v, xt, keep)
            if not keep:
                return out(j), out(v)

            def mhp(m: Any) -> Any:
                return grad(j, xt, m, retain_graph=True)[0]

            return closure(mhp), out(j), out(v)

        return autograd_jac
    if op == "mhp_jacobian_and_value":
        transform = tf.jacfwd if "jacfwd" in variant else tf.jacrev
        jv = transform(f_aux, has_aux=True)

        def func_mhp(x: np.ndarray) -> tuple[Any, ...]:
            j, vjp_fn, v = tf.vjp(jv, tensor(x), has_aux=True)
            return closure(lambda m: vjp_fn(m)[0]), out(j), out(v)

        return func_mhp
    if variant == "torch.func.vjp":

        def func_vjp(x: np.ndarray) -> tuple[Any, ...]:
            v, vjp_fn = tf.vjp(f, tensor(x))
            return closure(lambda u: vjp_fn(u)[0]), out(v)

        return func_vjp
    if variant == "torch.autograd.grad" and op == "vjp_and_value":

        def autograd_vjp(x: np.ndarray) -> tuple[Any, ...]:
            xt = tensor(x).requires_grad_()
            v = f(xt)
            return closure(lambda u: grad(v, xt, u, retain_graph=True)[0]), out(v)

        return autograd_vjp
    msg = f"unknown torch variant {variant!r} for {op}"
    raise ValueError(msg)


_AUTOGRAD_VARIANTS: dict[str, tuple[str, ...]] = {
    "grad_and_value": ("autograd.value_and_grad",),
    "hessian_grad_and_value": ("autograd.hessian + value_and_grad",),
    "mtp_hessian_grad_and_value": ("autograd.make_vjp(hessian) + value_and_grad",),
    "jacobian_and_value": ("autograd.jacobian + f",),
    "mhp_jacobian_and_value": ("autograd.make_vjp(jacobian) + f",),
    "vjp_and_value": ("autograd.make_vjp",),
    "value": ("f (autograd.numpy)",),
}


def _build_autograd(model: Model, op: str, variant: str) -> OpFn:
    """Hand-written Autograd with its public differential operators."""
    import autograd

    f, _ = model.function("autograd")
    value_and_grad = autograd.value_and_grad(f)
    if op == "value":
        return lambda x: (f(x),)
    if op == "grad_and_value":

        def grad_call(x: np.ndarray) -> tuple[Any, ...]:
            v, g = value_and_grad(x)
            return g, v

        return grad_call
    if op == "hessian_grad_and_value":
        hess = autograd.hessian(f)

        def hess_call(x: np.ndarray) -> tuple[Any, ...]:
            v, g = value_and_grad(x)
            return hess(x), g, v

        return hess_call
    if op == "mtp_hessian_grad_and_value":
        mtp_and_hess = autograd.make_vjp(autograd.hessian(f))

        def mtp_call(x: np.ndarray) -> tuple[Any, ...]:
            mtp, h = mtp_and_hess(x)
            v, g = value_and_grad(x)
            return mtp, h, g, v

        return mtp_call
    if op == "jacobian_and_value":
        jac = autograd.jacobian(f)
        return lambda x: (jac(x), f(x))
    if op == "mhp_jacobian_and_value":
        mhp_and_jac = autograd.make_vjp(autograd.jacobian(f))

        def mhp_call(x: np.ndarray) -> tuple[Any, ...]:
            mhp, j = mhp_and_jac(x)
            return mhp, j, f(x)

        return mhp_call
    if op == "vjp_and_value":
        make_vjp = autograd.make_vjp(f)
        return lambda x: tuple(make_vjp(x))
    msg = f"unknown autograd variant {variant!r}"
    raise ValueError(msg)


_SYMNUM_OPS = {
    "grad_and_value": "grad",
    "hessian_grad_and_value": "hessian",
    "mtp_hessian_grad_and_value": "matrix_tressian_product",
    "jacobian_and_value": "jacobian",
    "mhp_jacobian_and_value": "matrix_hessian_product",
    "vjp_and_value": "vector_jacobian_product",
}


def _build_symnum(model: Model, op: str, variant: str) -> OpFn:
    """SymNum's own generated NumPy function, ``symnum.<op>(f, return_aux=True)``."""
    import symnum

    f, _ = model.function("symnum")
    generated: OpFn = getattr(symnum, _SYMNUM_OPS[op])(f, return_aux=True)
    return generated


_SYMNUM_VARIANTS: dict[str, tuple[str, ...]] = {
    op: (f"symnum.{name}(f, return_aux=True)",) for op, name in _SYMNUM_OPS.items()
}

_BASELINES: dict[str, tuple[dict[str, tuple[str, ...]], Callable[..., OpFn]]] = {
    "jax": (_JAX_VARIANTS, _build_jax),
    "torch": (_TORCH_VARIANTS, _build_torch),
    "autograd": (_AUTOGRAD_VARIANTS, _build_autograd),
    "symnum": (_SYMNUM_VARIANTS, _build_symnum),
}


def _family(variant: str) -> str | None:
    for prefix in ("torch.func", "jax.jit", "jax eager"):
        if variant.startswith(prefix):
            return prefix
    return None


def _framework_impls(
    model: Model, op: str, framework: str, *, eager: bool = False
) -> list[_Impl]:
    variants, builder = _BASELINES[framework]
    names = list(variants.get(op, ()))
    if eager and names:
        # One eager composition (the first) for comparison with jax_nojit.
        names.append(_eager_name(names[0]))
    impls = []
    for variant in names:

        def build(variant: str = variant) -> OpFn:
            return builder(model, op, variant)

        context = _jax_x64 if framework == "jax" else contextlib.nullcontext
        impls.append(
            _Impl(
                variant,
                "framework",
                framework,
                build,
                family=_family(variant),
                context=context,
            )
        )
    return impls


# ---------------------------------------------------------------------------------
# Cases

_SYMNUM_SKIP = {
    "logistic": (
        "symnum skipped: SymNum's symbolic differentiation and code generation is "
        "too slow for a d = 100 model (it is meant for small models)"
    ),
    "tall": (
        "symnum skipped: SymNum's code generation scales badly with the number of "
        "expressions (3 → 300 took ~15 s per function, 300 → 3 did not finish in "
        "5 min during development)"
    ),
    "wide": (
        "symnum skipped: SymNum's code generation scales badly with the number of "
        "expressions (300 → 3 did not finish in 5 min during development)"
    ),
    "rw_softplus": (
        "symnum skipped: SymNum generates one expression per element, impractical "
        "for d ≥ 10³"
    ),
}

CASES: tuple[str, ...] = (
    "banana",
    "torus",
    "logistic",
    "tall",
    "wide",
    "rw_softplus",
    "first_call",
    "import",
)
"""Benchmark case names, in the order they run (``--cases``)."""

_CASE_GROUPS = {
    "tiny": ("banana", "torus"),
    "medium": ("logistic",),
    "jacobian": ("tall", "wide"),
    "large": ("rw_softplus",),
    "closure": ("banana", "torus", "logistic"),
    "mtp": ("logistic",),
}


def _sample(model: Model, seed: int) -> np.ndarray:
    x = np.asarray(model.sample(np.random.default_rng(seed), model.shape), np.float64)
    return x


def _closure_arg(op: str, x: np.ndarray, value: Any) -> np.ndarray | None:
    closure = _CLOSURE.get(op)
    if closure is None:
        return None
    f_shape, s_shape = np.shape(value), x.shape
    shape = {"vjp": f_shape, "mhp": f_shape + s_shape, "mtp": s_shape + s_shape}
    return np.random.default_rng(7).standard_normal(shape[closure])


def _problem(
    section: str,
    model: Model,
    op: str,
    cfg: _Config,
    *,
    modes: tuple[str, ...] = (),
    skip: dict[str, str] | None = None,
    diagnostics: bool = False,
) -> _Problem:
    x = _sample(model, seed=len(section) + model.shape[0])
    # The model's own reasons (diffops.models) first; the benchmark's add to them.
    skip = {
        **{b: f"{b} skipped: {why}" for b, why in model.skip.items()},
        **(skip or {}),
    }
    impls: list[_Impl] = []
    frameworks: list[str] = []
    for backend in cfg.backends:
        if backend in skip:
            cfg.notes.append(f"{section}: {skip[backend]}")
            continue
        if op == "value" and backend == "symnum":
            continue
        impls.append(_diffops_impl(model, op, backend))
        if backend in ("jax", "torch") and op == "jacobian_and_value":
            impls.extend(_diffops_impl(model, op, backend, mode=m) for m in modes)
        framework = _FRAMEWORK.get(backend)
        if framework and framework not in frameworks:
            frameworks.append(framework)
    for framework in frameworks:
        eager = framework == "jax" and "jax_nojit" in cfg.backends
        impls.extend(_framework_impls(model, op, framework, eager=eager))
    if diagnostics and "jax" in frameworks and op == "grad_and_value":
        impls.append(
            _Impl(
                "jax.jit(value_and_grad), enable_x64 entered per call",
                "diagnostic",
                "jax",
                lambda: _build_jax_x64_per_call(model),
            )
        )
    impls.append(_numpy_impl(model, op))
    closure_arg = _closure_arg(op, x, model.value(x))
    return _Problem(section, op, model, x, closure_arg, impls)


def _problems(cfg: _Config) -> list[_Problem]:
    problems: list[_Problem] = []
    cases = set(cfg.cases)
    tiny_scalar = (
        "grad_and_value",
        "hessian_grad_and_value",
        "mtp_hessian_grad_and_value",
    )
    if "banana" in cases:
        for op in tiny_scalar:
            problems.append(
                _problem("banana", MODELS["banana"], op, cfg, diagnostics=True)
            )
    if "torus" in cases:
        for op in ("jacobian_and_value", "mhp_jacobian_and_value", "vjp_and_value"):
            problems.append(_problem("torus", MODELS["torus"], op, cfg))
    if "logistic" in cases:
        model = logistic_model(dim=100, n_data=200)
        reasons = [_SYMNUM_SKIP["logistic"]]
        if "symnum" in model.skip:
            reasons.append(f"diffops.models: {model.skip['symnum']}")
        skip = {"symnum": "; ".join(reasons)}
        for op in tiny_scalar:
            problem = _problem("logistic", model, op, cfg, skip=skip)
            if op == "mtp_hessian_grad_and_value":
                problem.impls[-1] = _logistic_numpy_mtp(model, dim=100, n_data=200)
            problems.append(problem)
    for name, model in (("tall", _tall_model()), ("wide", _wide_model())):
        if name in cases:
            problems.append(
                _problem(
                    name,
                    model,
                    "jacobian_and_value",
                    cfg,
                    modes=("forward", "reverse"),
                    skip={"symnum": _SYMNUM_SKIP[name]},
                )
            )
    if "rw_softplus" in cases:
        for dim in cfg.large_dims:
            model = _rw_softplus_model(dim)
            for op in ("grad_and_value", "value"):
                problems.append(
                    _problem(
                        "rw_softplus",
                        model,
                        op,
                        cfg,
                        skip={"symnum": _SYMNUM_SKIP["rw_softplus"]}
                        if op != "value"
                        else {},
                    )
                )
    return problems


# ---------------------------------------------------------------------------------
# Running one implementation


@dataclass(frozen=True)
class _Applied:
    """A reference closure already applied to the problem's closure argument."""

    value: Any


def _compare(
    out: Any, reference: tuple[Any, ...], op: str, arg: np.ndarray | None, dtype: bool
) -> str | None:
    names = _OUTPUT_NAMES[op]
    if not isinstance(out, tuple) or len(out) != len(reference):
        return f"returned {type(out).__name__} of length {len(out)}, expected {names}"
    problems = []
    for name, got, want in zip(names, out, reference, strict=True):
        label = name
        if isinstance(want, _Applied):
            if not callable(got):
                problems.append(f"{name} is not callable")
                continue
            got, want, label = got(arg), want.value, f"{name}(m)"
        got_arr, want_arr = np.asarray(got), np.asarray(want)
        if got_arr.shape != want_arr.shape:
            problems.append(
                f"{label}: shape {got_arr.shape}, expected {want_arr.shape}"
            )
            continue
        scale = max(1.0, float(np.max(np.abs(want_arr), initial=0.0)))
        if not np.allclose(got_arr, want_arr, rtol=1e-6, atol=1e-9 * scale):
            err = float(np.max(np.abs(got_arr - want_arr)))
            problems.append(f"{label}: max abs error {err:.3g} (scale {scale:.3g})")
        if dtype and got_arr.dtype != np.float64:
            problems.append(f"{label}: dtype {got_arr.dtype}, expected float64")
    return "; ".join(problems) or None


@dataclass
class _Timed:
    """A callable being timed, with the record its statistics go to."""

    record: _Record
    fn: Callable[[], Any]
    context: Callable[[], contextlib.AbstractContextManager[Any]]
    loops: int = 1
    max_samples: int = 1
    samples: list[float] = field(default_factory=list)


_SLOW_CALL_S = 5.0
"""Implementations whose steady-state call takes longer than this are not timed."""


def _prepare(
    problem: _Problem, impl: _Impl, cfg: _Config
) -> tuple[list[_Record], list[_Timed]]:
    """Build ``impl``, call it once, check its outputs; return what is to be timed."""
    dim = int(problem.x.size)
    base = _Record(
        problem.section,
        problem.op,
        dim,
        impl.name,
        impl.kind,
        impl.framework,
        backend=impl.backend,
        family=impl.family,
    )
    if problem.reference is None:
        numpy_impl = next(i for i in problem.impls if i.kind == "numpy")
        reference = numpy_impl.build()(problem.x)
        problem.reference = tuple(
            _Applied(r(problem.closure_arg)) if callable(r) else r for r in reference
        )
    x = problem.x
    with impl.context():
        try:
            start = time.perf_counter()
            fn = impl.build()
            out = fn(x)
            base.first_call_us = (time.perf_counter() - start) * 1e6
            problem_msg = _compare(
                out,
                problem.reference,
                problem.op,
                problem.closure_arg,
                dtype=impl.kind == "diffops",
            )
        except Exception as err:
            base.error = f"{type(err).__name__}: {err}".splitlines()[0][:300]
            base.correct = False
            return [base], []
        base.correct = problem_msg is None
        base.error = problem_msg
        if base.first_call_us > _SLOW_CALL_S * 1e6:
            start = time.perf_counter()
            fn(x)
            second = time.perf_counter() - start
            if second > _SLOW_CALL_S:
                base.note = f"not timed: one call takes {second:.1f} s"
                cfg.notes.append(
                    f"{problem.section} d={dim} {_SHORT_OP[problem.op]} {impl.name}: "
                    f"not timed, one call takes {second:.1f} s (> {_SLOW_CALL_S} s)"
                )
                return [base], []
    records = [base]
    timed = [_Timed(base, lambda: fn(x), impl.context)]
    closure_name = _CLOSURE.get(problem.op)
    if closure_name is not None:
        closure, arg = out[0], problem.closure_arg
        rec = _Record(
            problem.section,
            f"{closure_name} closure",
            dim,
            impl.name,
            impl.kind,
            impl.framework,
            backend=impl.backend,
            family=impl.family,
            correct=base.correct,
            note=f"one {closure_name}(m) call on the closure from {problem.op}",
        )
        records.append(rec)
        timed.append(_Timed(rec, lambda: closure(arg), impl.context))
    return records, timed


def _run_problem(
    problem: _Problem, cfg: _Config, say: Callable[[str], None]
) -> list[_Record]:
    """Build and check every implementation, then time them in interleaved rounds.

    Round k times one batch of each implementation (and closure), in an order rotated
    by k, so that a change in machine load affects every implementation alike.
    """
    title = f"{problem.section} d={problem.x.size} {_SHORT_OP[problem.op]}"
    records: list[_Record] = []
    timed: list[_Timed] = []
    for impl in problem.impls:
        say(f"{title}: build + check {impl.name}")
        new_records, new_timed = _prepare(problem, impl, cfg)
        records += new_records
        timed += new_timed
    for entry in timed:
        say(f"{title}: warm up {entry.record.impl}")
        with entry.context():
            entry.loops, first = _calibrate(entry.fn, cfg.min_batch_s)
        entry.samples.append(first)
        entry.max_samples = _max_samples(first, cfg.repeats)
    for k in range(1, cfg.repeats):
        say(f"{title}: round {k + 1}/{cfg.repeats}")
        shift = k % max(1, len(timed))
        for entry in timed[shift:] + timed[:shift]:
            if len(entry.samples) < entry.max_samples:
                with entry.context():
                    entry.samples.append(_batch(entry.fn, entry.loops) / entry.loops)
    for entry in timed:
        entry.record.set_timing(_timing(entry.samples, entry.loops))
    return records


# ---------------------------------------------------------------------------------
# First call (trace + compile) on JAX

_FIRST_CALL = (
    ("banana", "grad_and_value", "jax.jit(value_and_grad)"),
    ("banana", "hessian_grad_and_value", "jax.jit(jacfwd(value_and_grad, has_aux))"),
    ("banana", "mtp_hessian_grad_and_value", "jax.jit(vjp(jacfwd(value_and_grad)))"),
    ("torus", "jacobian_and_value", "jax.jit(jacrev, has_aux)"),
    ("logistic", "hessian_grad_and_value", "jax.jit(jacfwd(value_and_grad, has_aux))"),
)


def _first_call(model: Model, op: str, variant: str, cfg: _Config) -> list[_Record]:
    x = _sample(model, seed=3)
    times: dict[str, list[float]] = {"diffops": [], "jax": []}

    def diffops_first() -> float:
        func, _ = model.function("jax")  # a fresh function object: no cache applies
        start = time.perf_counter()
        getattr(diffops, op)(func, backend="jax")(x)
        return time.perf_counter() - start

    def jax_first() -> float:
        with _jax_x64():
            start = time.perf_counter()
            _build_jax(model, op, variant)(x)  # builds a fresh function and jax.jit
            return time.perf_counter() - start

    # Round 0 is a warm-up (JAX's one-time initialisation); alternate the order.
    for rep in range(cfg.first_call_reps + 1):
        order = ("diffops", "jax") if rep % 2 else ("jax", "diffops")
        for who in order:
            elapsed = diffops_first() if who == "diffops" else jax_first()
            if rep:
                times[who].append(elapsed * 1e6)
    records = []
    for who, impl, kind in (
        ("diffops", "diffops[jax]", "diffops"),
        ("jax", variant, "framework"),
    ):
        q1, median, q3 = _quartiles(times[who])
        records.append(
            _Record(
                "first_call",
                op,
                int(x.size),
                impl,
                kind,
                "jax",
                backend="jax" if who == "diffops" else None,
                median_us=median,
                q1_us=q1,
                q3_us=q3,
                min_us=min(times[who]),
                loops=1,
                repeats=len(times[who]),
                note=f"{model.name}: build + first call (trace + compile + run), "
                f"fresh function each time",
            )
        )
    return records


# ---------------------------------------------------------------------------------
# Import time

_FRAMEWORK_MODULES = frozenset(
    {"jax", "jaxlib", "torch", "autograd", "symnum", "sympy", "matplotlib", "rich"}
)


def _parse_importtime(stderr: str) -> dict[str, float]:
    """``self`` import time (µs) of each module in ``-X importtime`` output."""
    times: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) == 3:
            times[parts[2].strip()] = times.get(parts[2].strip(), 0.0) + float(parts[0])
    return times


def _import_once(stmt: str, env: dict[str, str]) -> tuple[dict[str, float], float]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", stmt],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        msg = f"`{stmt}` failed in a subprocess: {proc.stderr[-500:]}"
        raise RuntimeError(msg)
    return _parse_importtime(proc.stderr), wall * 1e6


def _import_times(cfg: _Config) -> list[_Record]:
    """``import numpy`` and ``import diffops`` in fresh interpreters.

    "Beyond numpy" sums, within each ``import diffops`` run, the self times of the
    modules that ``import numpy`` does not load, so both sides of the difference come
    from the same process (the difference of two totals is noisier than the result).
    """
    src = str(Path(diffops.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    samples: dict[str, list[float]] = {"numpy": [], "diffops": [], "extra": []}
    walls: dict[str, list[float]] = {"numpy": [], "diffops": []}
    numpy_modules: set[str] = set()
    extra_times: dict[str, list[float]] = {}
    for rep in range(cfg.import_reps + 1):  # rep 0 warms the file cache
        numpy_times, numpy_wall = _import_once("import numpy", env)
        diffops_times, diffops_wall = _import_once("import diffops", env)
        numpy_modules |= set(numpy_times)
        extra = {m: t for m, t in diffops_times.items() if m not in numpy_modules}
        if rep:
            for module, t in extra.items():
                extra_times.setdefault(module, []).append(t)
            samples["numpy"].append(sum(numpy_times.values()))
            samples["diffops"].append(sum(diffops_times.values()))
            samples["extra"].append(sum(extra.values()))
            walls["numpy"].append(numpy_wall)
            walls["diffops"].append(diffops_wall)
    heavy = sorted(_FRAMEWORK_MODULES & {m.split(".")[0] for m in extra_times})
    ranked = sorted(
        ((statistics.median(t), m) for m, t in extra_times.items()), reverse=True
    )
    records = []
    for key, impl, kind in (
        ("numpy", "import numpy", "numpy"),
        ("diffops", "import diffops", "diffops"),
        ("extra", "import diffops beyond numpy", "diffops"),
    ):
        q1, median, q3 = _quartiles(samples[key])
        if key == "extra":
            note = "modules numpy does not load (median self ms): " + ", ".join(
                f"{m} {t / 1e3:.1f}" for t, m in ranked
            )
        else:
            wall = statistics.median(walls[key]) / 1e3
            note = (
                f"python -X importtime -c '{impl}': sum of self times; whole "
                f"subprocess wall-clock {wall:.1f} ms"
            )
        rec = _Record(
            "import",
            "import",
            0,
            impl,
            kind,
            kind if kind == "numpy" else "diffops",
            median_us=median,
            q1_us=q1,
            q3_us=q3,
            min_us=min(samples[key]),
            loops=1,
            repeats=len(samples[key]),
            note=note,
        )
        if heavy and key == "extra":
            rec.correct = False
            rec.error = f"import diffops imported frameworks: {heavy}"
        records.append(rec)
    return records


# ---------------------------------------------------------------------------------
# Plan and run


@dataclass
class _Job:
    label: str
    run: Callable[[Callable[[str], None]], list[_Record]]
    weight: int = 1


def _plan(cfg: _Config) -> list[_Job]:
    jobs: list[_Job] = []
    for problem in _problems(cfg):

        def run(
            say: Callable[[str], None], problem: _Problem = problem
        ) -> list[_Record]:
            return _run_problem(problem, cfg, say)

        label = f"{problem.section} d={problem.x.size} {_SHORT_OP[problem.op]}"
        jobs.append(_Job(label, run, weight=len(problem.impls)))
    if "first_call" in cfg.cases:
        if "jax" in cfg.backends:
            models = {"banana": MODELS["banana"], "torus": MODELS["torus"]}
            if not cfg.quick:
                models["logistic"] = logistic_model(dim=100, n_data=200)
            for name, op, variant in _FIRST_CALL:
                if name not in models:
                    continue

                def first(
                    say: Callable[[str], None],
                    model: Model = models[name],
                    op: str = op,
                    variant: str = variant,
                ) -> list[_Record]:
                    return _first_call(model, op, variant, cfg)

                jobs.append(_Job(f"first call {name} {_SHORT_OP[op]} (jax)", first))
            if cfg.quick:
                cfg.notes.append("first_call: logistic d = 100 skipped in --quick")
        else:
            cfg.notes.append("first_call: needs the jax backend, which is not selected")
    if "import" in cfg.cases:
        jobs.append(_Job("import time (subprocesses)", lambda say: _import_times(cfg)))
    return jobs


class _PlainProgress:
    def __init__(self, total: int):
        self.total = total
        self.done = 0

    def start(self, label: str) -> None:
        print(f"[{self.done}/{self.total}] {label}", flush=True)

    def step(self, label: str) -> None:
        pass

    def advance(self, amount: int) -> None:
        self.done += amount


@contextlib.contextmanager
def _progress(total: int) -> Iterator[Any]:
    try:
        from rich.markup import escape
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )
    except ImportError:
        print("rich is not installed: plain progress output (pip install diffops[cli])")
        yield _PlainProgress(total)
        return
    columns = (
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("benchmarks", total=total)

        class _Rich:
            def start(self, label: str) -> None:
                self.step(label)

            def step(self, label: str) -> None:
                progress.update(task, description=escape(label[:100]))

            def advance(self, amount: int) -> None:
                progress.advance(task, amount)

        yield _Rich()


def _run(cfg: _Config) -> list[_Record]:
    jobs = _plan(cfg)
    records: list[_Record] = []
    with _progress(sum(job.weight for job in jobs)) as progress:
        for job in jobs:
            progress.start(job.label)
            records.extend(job.run(progress.step))
            progress.advance(job.weight)
    return records


# ---------------------------------------------------------------------------------
# Ratios and targets


def _key(r: _Record) -> tuple[str, str, int]:
    return r.section, r.op, r.dim


def _ok(r: _Record) -> bool:
    return r.median_us is not None and r.correct is not False


def _best(
    records: Sequence[_Record], section: str, op: str, dim: int, **match: Any
) -> _Record | None:
    found = [
        r
        for r in records
        if _key(r) == (section, op, dim)
        and _ok(r)
        and all(getattr(r, k) == v for k, v in match.items())
    ]
    return min(found, key=lambda r: r.median_us or math.inf, default=None)


def _find(
    records: Sequence[_Record], section: str, op: str, impl: str
) -> list[_Record]:
    return [r for r in records if (r.section, r.op, r.impl) == (section, op, impl)]


def _ratio(a: _Record | None, b: _Record | None) -> float | None:
    if a is None or b is None or not (_ok(a) and _ok(b)):
        return None
    return (a.median_us or math.nan) / (b.median_us or math.nan)


def _peers(r: _Record) -> dict[str, Any]:
    """What a record is compared with: the same framework's hand-written calls.

    ``jax`` is compared with ``jax.jit`` compositions, ``jax_nojit`` with the same
    compositions run eagerly.
    """
    if r.backend == "jax_nojit" or r.family == "jax eager":
        return {"framework": "jax", "family": "jax eager", "kind": "framework"}
    if r.framework == "jax":
        return {"framework": "jax", "family": "jax.jit", "kind": "framework"}
    return {"framework": r.framework, "kind": "framework"}


def _ratios(records: Sequence[_Record]) -> dict[int, dict[str, float | None]]:
    """Per record (by index): ratio to the framework's best call and to NumPy."""
    out: dict[int, dict[str, float | None]] = {}
    for i, r in enumerate(records):
        if r.kind == "numpy" or r.section in ("import", "first_call"):
            continue
        fw = _best(records, r.section, r.op, r.dim, **_peers(r))
        numpy = _best(records, r.section, r.op, r.dim, kind="numpy")
        entry = {"vs_framework_best": _ratio(r, fw), "vs_numpy": _ratio(r, numpy)}
        if r.framework == "torch" and r.kind != "framework":
            tfunc = _best(records, r.section, r.op, r.dim, family="torch.func")
            entry["torch_func_best_over_diffops"] = _ratio(tfunc, r)
        out[i] = entry
    return out


def _derived(records: Sequence[_Record]) -> dict[str, list[dict[str, Any]]]:
    derived: dict[str, list[dict[str, Any]]] = {
        "closure_cost": [],
        "mtp_ratio": [],
        "grad_over_value": [],
        "jacobian_modes": [],
        "first_call": [],
        "import": [],
    }
    for r in records:
        if not r.op.endswith(" closure") or not _ok(r):
            continue
        op = {v: k for k, v in _CLOSURE.items()}[r.op.split()[0]]
        parent = [p for p in _find(records, r.section, op, r.impl) if p.dim == r.dim]
        if parent:
            derived["closure_cost"].append(
                {
                    "section": r.section,
                    "closure": r.op.split()[0],
                    "impl": r.impl,
                    "closure_us": r.median_us,
                    "operator_us": parent[0].median_us,
                    "ratio": _ratio(r, parent[0]),
                }
            )
    impls = {r.impl for r in records if r.section == "logistic"}
    for impl in sorted(impls):
        mtp = _find(records, "logistic", "mtp_hessian_grad_and_value", impl)
        closure = _find(records, "logistic", "mtp closure", impl)
        hess = _find(records, "logistic", "hessian_grad_and_value", impl)
        if mtp and closure and hess and all(_ok(r) for r in (*mtp, *closure, *hess)):
            total = (mtp[0].median_us or 0) + (closure[0].median_us or 0)
            derived["mtp_ratio"].append(
                {
                    "impl": impl,
                    "dim": mtp[0].dim,
                    "mtp_plus_one_mtp_us": total,
                    "hessian_us": hess[0].median_us,
                    "ratio": total / (hess[0].median_us or math.inf),
                }
            )
    dims = sorted({r.dim for r in records if r.section == "rw_softplus"})
    groups = {r.impl for r in records if r.section == "rw_softplus"}
    for dim in dims:
        for impl in sorted(groups):
            g = [
                r
                for r in _find(records, "rw_softplus", "grad_and_value", impl)
                if r.dim == dim
            ]
            v = [
                r for r in _find(records, "rw_softplus", "value", impl) if r.dim == dim
            ]
            if g and v and _ok(g[0]) and _ok(v[0]):
                derived["grad_over_value"].append(
                    {
                        "dim": dim,
                        "impl": impl,
                        "grad_us": g[0].median_us,
                        "value_us": v[0].median_us,
                        "ratio": _ratio(g[0], v[0]),
                    }
                )
        for fw, family in (
            ("jax", "jax.jit"),
            ("jax", "jax eager"),
            ("torch", None),
            ("autograd", None),
        ):
            match = {"framework": fw, "family": family} if family else {"framework": fw}
            g_best = _best(
                records, "rw_softplus", "grad_and_value", dim, kind="framework", **match
            )
            v_best = _best(
                records, "rw_softplus", "value", dim, kind="framework", **match
            )
            if g_best and v_best:
                derived["grad_over_value"].append(
                    {
                        "dim": dim,
                        "impl": f"{family or fw} best hand-written",
                        "grad_us": g_best.median_us,
                        "value_us": v_best.median_us,
                        "ratio": _ratio(g_best, v_best),
                    }
                )
    for section in ("tall", "wide"):
        for backend in ("jax", "torch"):
            auto = _find(records, section, "jacobian_and_value", f"diffops[{backend}]")
            for mode in ("forward", "reverse"):
                forced = _find(
                    records,
                    section,
                    "jacobian_and_value",
                    f"diffops[{backend}, mode={mode}]",
                )
                if auto and forced and _ok(auto[0]) and _ok(forced[0]):
                    derived["jacobian_modes"].append(
                        {
                            "section": section,
                            "backend": backend,
                            "mode": mode,
                            "auto_us": auto[0].median_us,
                            "forced_us": forced[0].median_us,
                            "forced_over_auto": _ratio(forced[0], auto[0]),
                        }
                    )
    for r in records:
        if r.section == "first_call" and r.kind == "diffops":
            base = [
                b
                for b in records
                if b.section == "first_call"
                and b.op == r.op
                and b.kind == "framework"
                and b.note == r.note
            ]
            if base:
                derived["first_call"].append(
                    {
                        "case": (r.note or "").split(":")[0],
                        "op": r.op,
                        "diffops_ms": (r.median_us or 0) / 1e3,
                        "jax_ms": (base[0].median_us or 0) / 1e3,
                        "ratio": _ratio(r, base[0]),
                    }
                )
    imports = {r.impl: r for r in records if r.section == "import"}
    if len(imports) == 3:
        extra = imports["import diffops beyond numpy"].median_us or 0.0
        derived["import"].append(
            {
                "numpy_ms": (imports["import numpy"].median_us or 0) / 1e3,
                "diffops_ms": (imports["import diffops"].median_us or 0) / 1e3,
                "extra_ms": extra / 1e3,
                "extra_modules": imports["import diffops beyond numpy"].note,
            }
        )
    return derived


@dataclass
class _Target:
    target: str
    what: str
    measured: float | None
    threshold: float
    better: str  # "<=" or ">="
    detail: str = ""

    @property
    def passed(self) -> bool | None:
        if self.measured is None:
            return None
        if self.better == "<=":
            return self.measured <= self.threshold
        return self.measured >= self.threshold


def _vs(a: _Record | None, b: _Record | None, name: bool = True) -> str:
    if a is None or b is None or a.median_us is None or b.median_us is None:
        return ""
    text = f"{_fmt_us(a.median_us)} µs vs {_fmt_us(b.median_us)} µs"
    return f"{text} ({b.impl})" if name else text


def _targets(
    records: Sequence[_Record], derived: dict[str, list[dict[str, Any]]], cfg: _Config
) -> list[_Target]:
    """The issue's performance targets, each with its measured value."""
    out: list[_Target] = []

    def rec(section: str, op: str, impl: str) -> _Record | None:
        found = _find(records, section, op, impl)
        return found[0] if found else None

    def best(section: str, op: str, **match: Any) -> _Record | None:
        dims = [r.dim for r in records if (r.section, r.op) == (section, op)]
        return _best(records, section, op, dims[0], **match) if dims else None

    tiny = (
        ("banana", "grad_and_value"),
        ("banana", "hessian_grad_and_value"),
        ("torus", "jacobian_and_value"),
    )
    for backend, peers, threshold, label in (
        ("jax", {"family": "jax.jit"}, 1.15, "jax.jit best"),
        ("symnum", {}, 1.10, "SymNum's generated function"),
    ):
        for section, op in tiny:
            d = rec(section, op, f"diffops[{backend}]")
            fw = best(section, op, framework=backend, kind="framework", **peers)
            what = f"{section} {_SHORT_OP[op]}: diffops {backend} / {label}"
            out.append(_Target("1", what, _ratio(d, fw), threshold, "<=", _vs(d, fw)))
    closures = {
        (c["section"], c["closure"]): c
        for c in derived["closure_cost"]
        if c["impl"] == "diffops[jax]"
    }
    for section, closure in (
        ("torus", "vjp"),
        ("torus", "mhp"),
        ("banana", "mtp"),
        ("logistic", "mtp"),
    ):
        c = closures.get((section, closure))
        detail = (
            f"{_fmt_us(c['closure_us'])} µs vs {_fmt_us(c['operator_us'])} µs"
            if c
            else ""
        )
        what = f"{section} jax: one {closure} closure call / the operator call"
        out.append(_Target("2", what, c["ratio"] if c else None, 2.0, "<=", detail))
    gv = {(g["dim"], g["impl"]): g for g in derived["grad_over_value"]}
    for backend, threshold, target in (("jax", 2.0, "3"), ("torch", 2.5, "torch")):
        g = gv.get((10**6, f"diffops[{backend}]"))
        if g:
            detail = f"{_fmt_us(g['grad_us'])} µs vs {_fmt_us(g['value_us'])} µs"
        elif max(cfg.large_dims) < 10**6:
            detail = "not measured (d = 10⁶ skipped in --quick)"
        else:
            detail = ""
        what = f"rw_softplus d=10⁶ {backend}: diffops grad_and_value / diffops value"
        out.append(
            _Target(target, what, g["ratio"] if g else None, threshold, "<=", detail)
        )
    mtp = {m["impl"]: m for m in derived["mtp_ratio"]}.get("diffops[jax]")
    detail = (
        f"{_fmt_us(mtp['mtp_plus_one_mtp_us'])} µs vs {_fmt_us(mtp['hessian_us'])} µs"
        if mtp
        else ""
    )
    what = "logistic d=100 jax: (mtp_hessian + one mtp) / hessian"
    out.append(_Target("4", what, mtp["ratio"] if mtp else None, 4.0, "<=", detail))
    modes = {
        (j["section"], j["backend"], j["mode"]): j for j in derived["jacobian_modes"]
    }
    j = modes.get(("tall", "jax", "reverse"))
    detail = f"{_fmt_us(j['forced_us'])} µs vs {_fmt_us(j['auto_us'])} µs" if j else ""
    what = "tall 3→300 jax: mode='reverse' time / auto-mode time"
    out.append(
        _Target("5", what, j["forced_over_auto"] if j else None, 2.0, ">=", detail)
    )
    imp = derived["import"][0] if derived["import"] else None
    detail = (
        f"self times of modules numpy does not load; totals {imp['diffops_ms']:.1f} "
        f"ms vs {imp['numpy_ms']:.1f} ms"
        if imp
        else ""
    )
    what = "import diffops beyond import numpy, ms"
    out.append(_Target("7", what, imp["extra_ms"] if imp else None, 30.0, "<=", detail))
    if not derived["first_call"]:
        what = "jax first call: diffops / plain jax.jit of composed transforms"
        out.append(_Target("8", what, None, 1.0, "<="))
    for fc in derived["first_call"]:
        what = (
            f"{fc['case']} {_SHORT_OP[fc['op']]}: jax first call diffops / plain "
            f"jax.jit"
        )
        detail = f"{fc['diffops_ms']:.0f} ms vs {fc['jax_ms']:.0f} ms"
        out.append(_Target("8", what, fc["ratio"], 1.0, "<=", detail))
    for section, op in (
        ("banana", "grad_and_value"),
        ("banana", "hessian_grad_and_value"),
        ("banana", "mtp_hessian_grad_and_value"),
        ("torus", "jacobian_and_value"),
        ("torus", "mhp_jacobian_and_value"),
        ("torus", "vjp_and_value"),
    ):
        d = rec(section, op, "diffops[torch]")
        tfunc = best(section, op, family="torch.func")
        what = f"{section} {_SHORT_OP[op]}: torch.func best / diffops torch"
        detail = f"{_vs(tfunc, d, False)}; {tfunc.impl}" if tfunc and d else ""
        out.append(_Target("torch", what, _ratio(tfunc, d), 2.0, ">=", detail))
    return out


# ---------------------------------------------------------------------------------
# Reports


def _fmt_us(us: float | None) -> str:
    if us is None:
        return "—"
    if us < 10:
        return f"{us:.2f}"
    if us < 1000:
        return f"{us:.1f}"
    return f"{us:,.0f}"


def _fmt_ratio(r: float | None) -> str:
    return "—" if r is None else f"{r:.2f}×"


def _check_mark(r: _Record) -> str:
    if r.correct is False:
        return "WRONG" if r.median_us is not None else "ERROR"
    return "ok" if r.correct else ""


_HEADERS = (
    "op",
    "d",
    "implementation",
    "µs/call",
    "IQR µs",
    "×fw best",
    "×numpy",
    "torch.func÷diffops",
    "check",
)


def _result_rows(
    records: Sequence[_Record], ratios: dict[int, dict[str, float | None]], section: str
) -> list[list[str]]:
    rows = []
    for i, r in enumerate(records):
        if r.section != section:
            continue
        ratio = ratios.get(i, {})
        iqr = (
            "—"
            if r.q1_us is None or r.q3_us is None
            else f"{_fmt_us(r.q1_us)}–{_fmt_us(r.q3_us)}"
        )
        tf = ratio.get("torch_func_best_over_diffops")
        rows.append(
            [
                _SHORT_OP.get(r.op, r.op),
                str(r.dim),
                r.impl,
                _fmt_us(r.median_us),
                iqr,
                _fmt_ratio(ratio.get("vs_framework_best")),
                _fmt_ratio(ratio.get("vs_numpy")),
                _fmt_ratio(tf) if tf is not None else "",
                _check_mark(r),
            ]
        )
    return rows


def _target_rows(targets: Sequence[_Target]) -> list[list[str]]:
    rows = []
    for t in targets:
        detail = t.detail or ("not measured" if t.measured is None else "")
        status = {True: "PASS", False: "FAIL", None: "n/a"}[t.passed]
        measured = "—" if t.measured is None else f"{t.measured:.3f}"
        rows.append(
            [
                t.target,
                t.what,
                measured,
                f"{t.better} {t.threshold:g}",
                status,
                detail,
            ]
        )
    return rows


def _derived_rows(
    derived: dict[str, list[dict[str, Any]]],
) -> dict[str, tuple[tuple[str, ...], list[list[str]]]]:
    tables: dict[str, tuple[tuple[str, ...], list[list[str]]]] = {}
    tables["closure call / operator call"] = (
        ("case", "closure", "implementation", "closure µs", "operator µs", "ratio"),
        [
            [
                c["section"],
                c["closure"],
                c["impl"],
                _fmt_us(c["closure_us"]),
                _fmt_us(c["operator_us"]),
                _fmt_ratio(c["ratio"]),
            ]
            for c in derived["closure_cost"]
        ],
    )
    tables["(mtp_hessian + one mtp) / hessian, logistic d = 100"] = (
        ("implementation", "mtp + one mtp µs", "hessian µs", "ratio"),
        [
            [
                m["impl"],
                _fmt_us(m["mtp_plus_one_mtp_us"]),
                _fmt_us(m["hessian_us"]),
                _fmt_ratio(m["ratio"]),
            ]
            for m in derived["mtp_ratio"]
        ],
    )
    tables["grad_and_value / value, rw_softplus"] = (
        ("d", "implementation", "grad µs", "value µs", "ratio"),
        [
            [
                str(g["dim"]),
                g["impl"],
                _fmt_us(g["grad_us"]),
                _fmt_us(g["value_us"]),
                _fmt_ratio(g["ratio"]),
            ]
            for g in derived["grad_over_value"]
        ],
    )
    tables["Jacobian mode forced / auto"] = (
        ("case", "backend", "forced mode", "auto µs", "forced µs", "forced / auto"),
        [
            [
                j["section"],
                j["backend"],
                j["mode"],
                _fmt_us(j["auto_us"]),
                _fmt_us(j["forced_us"]),
                _fmt_ratio(j["forced_over_auto"]),
            ]
            for j in derived["jacobian_modes"]
        ],
    )
    tables["first call (build + trace + compile + run), jax"] = (
        ("case", "op", "diffops ms", "jax.jit ms", "ratio"),
        [
            [
                f["case"],
                _SHORT_OP[f["op"]],
                f"{f['diffops_ms']:.1f}",
                f"{f['jax_ms']:.1f}",
                _fmt_ratio(f["ratio"]),
            ]
            for f in derived["first_call"]
        ],
    )
    tables["import time (-X importtime, sum of self times, medians)"] = (
        (
            "import numpy ms",
            "import diffops ms",
            "diffops beyond numpy ms",
            "what diffops adds",
        ),
        [
            [
                f"{i['numpy_ms']:.1f}",
                f"{i['diffops_ms']:.1f}",
                f"{i['extra_ms']:.1f}",
                i["extra_modules"],
            ]
            for i in derived["import"]
        ],
    )
    return tables


def _failures(records: Sequence[_Record]) -> list[_Record]:
    return [r for r in records if r.correct is False and r.kind == "diffops"]


def _markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _sections(records: Sequence[_Record]) -> list[str]:
    seen: list[str] = []
    for r in records:
        if r.section not in seen and r.section not in ("import",):
            seen.append(r.section)
    return seen


_SECTION_TITLES = {
    "banana": "banana (d = 2, scalar)",
    "torus": "torus constraint (3 → 1)",
    "logistic": "logistic regression log-posterior (d = 100, n = 200)",
    "tall": "tall Jacobian (3 → 300)",
    "wide": "wide Jacobian (300 → 3)",
    "rw_softplus": "O(d) log-density: random walk + softplus",
    "first_call": "first call on jax: build + trace + compile + run (µs)",
}


def _write_markdown(
    path: Path,
    machine: dict[str, Any],
    records: Sequence[_Record],
    ratios: dict[int, dict[str, float | None]],
    derived: dict[str, list[dict[str, Any]]],
    targets: Sequence[_Target],
    cfg: _Config,
) -> None:
    parts = [
        "# diffops benchmarks",
        "",
        f"Generated by `{' '.join(('diffops bench', *cfg.argv))}` on "
        f"{machine['date']} — {machine['platform']}, {machine['cpu_count']} CPUs, "
        f"Python {machine['python']}. Load average at start/end: "
        f"{machine['loadavg_start']} / {machine.get('loadavg_end')}.",
        "",
        "Versions: "
        + ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v),
        "",
        _source_line(machine.get("diffops_source", {})),
        "",
        "Times are medians per call (µs) over batches of ≥ "
        f"{cfg.min_batch_s * 1e3:.0f} ms, {cfg.repeats} batches; thread limit "
        f"(--threads): {cfg.threads or 'none, library defaults'}; torch threads: "
        f"{machine.get('torch_num_threads', '—')}. `×fw best` is the row's time / "
        "the fastest hand-written call of the same framework for the same result "
        "(outputs converted to NumPy; `jax` rows against `jax.jit` compositions, "
        "`jax_nojit` rows against the same compositions run eagerly), so the best "
        "hand-written row shows 1.00×; `×numpy` is the row's time / hand-written "
        "NumPy closed forms; `torch.func÷diffops` > 1 means diffops torch is that "
        "many times faster than the best torch.func composition.",
        "",
        "## Targets",
        "",
        _markdown_table(
            ("#", "target", "measured", "threshold", "result", "detail"),
            _target_rows(targets),
        ),
        "",
    ]
    failures = _failures(records)
    if failures:
        parts += ["## ⚠ WRONG OR FAILING diffops RESULTS", ""]
        parts += [
            f"- {r.section} {r.op} d={r.dim} {r.impl}: {r.error}" for r in failures
        ]
        parts.append("")
    for section in _sections(records):
        parts += [
            f"## {_SECTION_TITLES.get(section, section)}",
            "",
            _markdown_table(_HEADERS, _result_rows(records, ratios, section)),
            "",
        ]
    for title, (headers, rows) in _derived_rows(derived).items():
        if rows:
            parts += [f"## {title}", "", _markdown_table(headers, rows), ""]
    baseline_errors = [r for r in records if r.error and r.kind != "diffops"]
    if cfg.notes or baseline_errors:
        parts += ["## Notes", ""]
        parts += [f"- {n}" for n in dict.fromkeys(cfg.notes)]
        parts += [f"- {r.section} {r.op} {r.impl}: {r.error}" for r in baseline_errors]
        parts.append("")
    path.write_text("\n".join(parts), encoding="utf-8")


_PLOT_COLOURS = {
    "jax": "C0",
    "jax_nojit": "C1",
    "autograd": "C2",
    "torch": "C3",
    "symnum": "C4",
    "numpy": "0.4",
}


def _source_line(info: dict[str, Any]) -> str:
    line = f"diffops source: `{info.get('path')}`, sha256 {info.get('sha256', '')[:12]}"
    if "git_commit" in info:
        modified = info.get("git_modified_files") or []
        line += f", git {info['git_commit'][:10]}"
        if modified:
            line += f" with uncommitted changes to {', '.join(modified)}"
    return line + "."


def _plot_series(r: _Record) -> tuple[str, str, str]:
    """Label, colour and line style of a record's curve in the scaling plot."""
    if r.kind == "numpy":
        return "numpy closed form", _PLOT_COLOURS["numpy"], "-"
    if r.kind == "diffops":
        return r.impl, _PLOT_COLOURS.get(r.backend or "", "C5"), "-"
    family = r.family or r.framework
    backend = {"jax.jit": "jax", "jax eager": "jax_nojit", "torch.func": "torch"}
    colour = _PLOT_COLOURS.get(backend.get(family, family), "C5")
    style = "-." if family == "torch.func" else ":"
    return f"{family} best hand-written", colour, style


def _plot(path: Path, records: Sequence[_Record]) -> str | None:
    """Per-call time and grad/value ratio against d for the O(d) case (log-log)."""
    rows = [r for r in records if r.section == "rw_softplus" and _ok(r)]
    if not rows:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no plot written (pip install matplotlib)"
    fig, (ax_time, ax_ratio) = plt.subplots(1, 2, figsize=(14, 5.5))
    curves: dict[tuple[str, str, str], dict[str, dict[int, float]]] = {}
    for r in rows:
        series = curves.setdefault(_plot_series(r), {}).setdefault(r.op, {})
        series[r.dim] = min(series.get(r.dim, math.inf), r.median_us or math.inf)
    for (label, colour, style), ops in curves.items():
        width = 2.0 if style == "-" else 1.2
        grad, value = ops.get("grad_and_value", {}), ops.get("value", {})
        if grad:
            dims = sorted(grad)
            ax_time.plot(
                dims,
                [grad[d] for d in dims],
                style,
                marker="o",
                ms=4,
                color=colour,
                lw=width,
                label=f"{label}: grad_and_value",
            )
        if value and style == "-":
            dims = sorted(value)
            ax_time.plot(
                dims,
                [value[d] for d in dims],
                "--",
                marker="s",
                ms=3,
                color=colour,
                lw=1,
                alpha=0.7,
                label=f"{label}: value",
            )
        dims = sorted(set(grad) & set(value))
        if dims and "torch.func" not in label:
            ax_ratio.plot(
                dims,
                [grad[d] / value[d] for d in dims],
                style,
                marker="o",
                ms=4,
                color=colour,
                lw=width,
                label=label,
            )
    ax_time.set(
        xscale="log",
        yscale="log",
        xlabel="input dimension d",
        ylabel="median time per call (µs)",
        title="O(d) log-density: per-call time (thick: diffops, thin: hand-written)",
    )
    ax_time.grid(True, which="both", alpha=0.3)
    ax_time.legend(fontsize=6.5, ncol=2)
    ax_ratio.axhline(2.0, color="C0", ls=":", lw=1, label="jax target 2.0 (d = 10⁶)")
    ax_ratio.axhline(2.5, color="C3", ls=":", lw=1, label="torch target 2.5 (d = 10⁶)")
    ax_ratio.set(
        xscale="log",
        yscale="log",
        xlabel="input dimension d",
        ylabel="grad_and_value time / value time",
        title="cost of the gradient relative to the value",
    )
    ax_ratio.grid(True, which="both", alpha=0.3)
    ax_ratio.legend(fontsize=6.5)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


def _print_report(
    records: Sequence[_Record],
    ratios: dict[int, dict[str, float | None]],
    derived: dict[str, list[dict[str, Any]]],
    targets: Sequence[_Target],
    cfg: _Config,
) -> None:
    tables: list[tuple[str, Sequence[str], list[list[str]]]] = [
        (_SECTION_TITLES.get(s, s), _HEADERS, _result_rows(records, ratios, s))
        for s in _sections(records)
    ]
    tables += [(t, h, rows) for t, (h, rows) in _derived_rows(derived).items() if rows]
    tables.append(
        (
            "Targets",
            ("#", "target", "measured", "threshold", "result", "detail"),
            _target_rows(targets),
        )
    )
    try:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table
        from rich.text import Text
    except ImportError:
        for title, headers, rows in tables:
            print(f"\n{title}\n" + _markdown_table(headers, rows))
        _print_plain_tail(records, cfg)
        return
    console = Console()
    if not console.is_terminal:  # piped or captured: don't squeeze into 80 columns
        console = Console(width=180)
    styles = {
        "PASS": "green",
        "FAIL": "bold red",
        "WRONG": "bold red",
        "ERROR": "bold red",
    }
    for title, headers, rows in tables:
        table = Table(title=title, title_justify="left", show_lines=False)
        for h in headers:
            table.add_column(
                h,
                overflow="fold",
                justify="right" if h.startswith(("µs", "×", "ratio")) else "left",
            )
        for row in rows:
            style = next((styles[c] for c in row if c in styles), None)
            table.add_row(*(Text(c) for c in row), style=style)
        console.print(table)
    for note in dict.fromkeys(cfg.notes):
        console.print(f"[dim]note: {escape(note)}[/dim]")
    for r in records:
        if r.error and r.kind != "diffops":
            text = f"baseline problem: {r.section} {r.op} {r.impl}: {r.error}"
            console.print(f"[yellow]{escape(text)}[/yellow]")
    for r in _failures(records):
        text = f"WRONG/FAILED diffops result: {r.section} {r.op} d={r.dim} {r.impl}"
        console.print(f"[bold red]{escape(f'{text}: {r.error}')}[/bold red]")


def _print_plain_tail(records: Sequence[_Record], cfg: _Config) -> None:
    for note in dict.fromkeys(cfg.notes):
        print(f"note: {note}")
    for r in _failures(records):
        print(
            f"!!! WRONG/FAILED diffops result: {r.section} {r.op} d={r.dim} "
            f"{r.impl}: {r.error}"
        )


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _machine_info() -> dict[str, Any]:
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        affinity = None
    dists = (
        "diffops",
        "numpy",
        "jax",
        "jaxlib",
        "torch",
        "autograd",
        "symnum",
        "sympy",
        "rich",
        "matplotlib",
    )
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "loadavg_start": _loadavg(),
        "thread_env": {
            v: os.environ.get(v)
            for v in (*_THREAD_VARS, "XLA_FLAGS")
            if v in os.environ
        },
        "versions": {d: _version(d) for d in dists},
        "diffops_version": diffops.__version__,
        "diffops_source": _source_info(),
    }


def _source_info() -> dict[str, Any]:
    """Which diffops code was measured: a hash of its files and the git state."""
    import hashlib

    package = Path(diffops.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(package.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    info: dict[str, Any] = {"path": str(package), "sha256": digest.hexdigest()}
    try:
        head = subprocess.run(
            ["git", "-C", str(package), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        )
        status = subprocess.run(
            ["git", "-C", str(package), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:  # git not installed
        return info
    if head.returncode == 0:
        info["git_commit"] = head.stdout.strip()
        info["git_modified_files"] = [
            line[3:] for line in status.stdout.splitlines() if line.strip()
        ]
    return info


def _loadavg() -> str | None:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover
        return None


def _framework_info(cfg: _Config) -> dict[str, Any]:
    info: dict[str, Any] = {}
    backends = cfg.backends
    if "torch" in backends:
        import torch

        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        info["torch_num_threads"] = torch.get_num_threads()
    if any(_FRAMEWORK.get(b) == "jax" for b in backends):
        import jax

        info["jax_devices"] = [str(d) for d in jax.devices()]
        config: Any = jax.config
        info["jax_enable_x64_global"] = bool(config.jax_enable_x64)
    return info


# ---------------------------------------------------------------------------------
# Command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffops bench",
        description=(
            "Time diffops side by side with each framework's best hand-written call "
            "and NumPy closed forms; report ratios and the performance targets."
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer repeats, no d = 10⁶ (CI smoke test, < 60 s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("benchmarks/results"),
        help="output directory (default: benchmarks/results)",
    )
    parser.add_argument(
        "--backends",
        default=None,
        help="comma-separated backends (default: all installed)",
    )
    parser.add_argument(
        "--cases",
        default=None,
        help=f"comma-separated cases from {', '.join(CASES)} or groups "
        f"{', '.join(_CASE_GROUPS)} (default: all)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="batches per timing (default 15, 3 with --quick)",
    )
    parser.add_argument(
        "--min-batch-ms",
        type=float,
        default=None,
        help="shortest batch of calls, in ms (default 20, 10 with --quick)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="limit BLAS/OpenMP/torch (and, for 1, XLA) threads to N by re-running "
        "in a subprocess with OMP_NUM_THREADS etc. set (default: each library's own "
        "choice); 1 gives stable numbers on a busy machine",
    )
    return parser


def _split(text: str | None) -> list[str]:
    return [t.strip().lower() for t in (text or "").split(",") if t.strip()]


class _UsageError(ValueError):
    """A command-line value that names no backend or case."""


def _config(args: argparse.Namespace, argv: Sequence[str]) -> _Config:
    notes: list[str] = []
    registered, available = diffops.registered_backends(), diffops.available_backends()
    if args.backends:
        backends = []
        for name in _split(args.backends):
            if name not in registered:
                msg = (
                    f"unknown backend {name!r}; valid backends are {registered}."
                    f"{closest(name, registered)}"
                )
                raise _UsageError(msg)
            if name not in available:
                notes.append(f"backend {name!r} is not installed: skipped")
                continue
            backends.append(name)
    else:
        backends = list(available)
        notes += [
            f"backend {b!r} is not installed: skipped"
            for b in registered
            if b not in available
        ]
    cases: list[str] = []
    for name in _split(args.cases) or list(CASES):
        expanded = _CASE_GROUPS.get(name, (name,))
        for case in expanded:
            if case not in CASES:
                msg = (
                    f"unknown case {name!r}; valid cases are {CASES} and groups "
                    f"{tuple(_CASE_GROUPS)}.{closest(name, (*CASES, *_CASE_GROUPS))}"
                )
                raise _UsageError(msg)
            if case not in cases:
                cases.append(case)
    quick = bool(args.quick)
    repeats = args.repeats or (3 if quick else 15)
    min_batch_ms = args.min_batch_ms or (10.0 if quick else 20.0)
    if quick:
        notes.append(
            f"--quick: d = 10⁶ skipped, {repeats} batches of ≥ {min_batch_ms:g} ms "
            f"per timing"
        )
    return _Config(
        quick=quick,
        backends=tuple(backends),
        cases=tuple(c for c in CASES if c in cases),
        out=args.out,
        repeats=max(1, repeats),
        min_batch_s=min_batch_ms / 1e3,
        large_dims=(10**3, 10**5) if quick else (10**3, 10**5, 10**6),
        first_call_reps=1 if quick else 6,
        import_reps=3 if quick else 7,
        threads=args.threads,
        argv=tuple(argv),
        notes=notes,
    )


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_THREADS_MARKER = "DIFFOPS_BENCH_THREADS"


def _with_threads(argv: Sequence[str], threads: int) -> int:
    """Re-run the benchmarks in a subprocess whose thread-pool variables are set.

    BLAS and OpenMP read these variables when they are loaded, and NumPy is already
    loaded here, so setting them in this process would be too late.
    """
    env = dict(os.environ)
    env.update(dict.fromkeys(_THREAD_VARS, str(threads)))
    env[_THREADS_MARKER] = str(threads)
    if threads == 1:
        flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flags}".strip()
    src = str(Path(diffops.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "diffops.bench", *argv]
    return subprocess.run(command, env=env, check=False).returncode


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and write ``results.json``, ``results.md`` and a plot.

    Args:
        argv: Command-line arguments without the program name (``None`` reads
            ``sys.argv[1:]``): ``--quick``, ``--out DIR``, ``--backends a,b``,
            ``--cases name,...``, ``--repeats N``, ``--min-batch-ms MS``,
            ``--threads N``.

    Returns:
        Exit status: 0 when every diffops result agreed with the reference, 1 if any
        diffops result was wrong or raised (performance targets never change it), 2
        for an unknown backend or case name.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    if args.threads and os.environ.get(_THREADS_MARKER) != str(args.threads):
        return _with_threads(argv, args.threads)
    try:
        cfg = _config(args, argv)
    except _UsageError as err:
        print(f"diffops bench: error: {err}", file=sys.stderr)
        return 2
    machine = _machine_info()
    start = time.perf_counter()
    machine.update(_framework_info(cfg))
    records = _run(cfg)
    machine["loadavg_end"] = _loadavg()
    machine["wall_time_s"] = round(time.perf_counter() - start, 1)
    ratios = _ratios(records)
    derived = _derived(records)
    targets = _targets(records, derived, cfg)
    cfg.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, r in enumerate(records):
        row = asdict(r)
        row.update(ratios.get(i, {}))
        rows.append(row)
    payload = {
        "machine": machine,
        "config": {
            "quick": cfg.quick,
            "backends": list(cfg.backends),
            "cases": list(cfg.cases),
            "repeats": cfg.repeats,
            "min_batch_s": cfg.min_batch_s,
            "large_dims": list(cfg.large_dims),
            "first_call_reps": cfg.first_call_reps,
            "import_reps": cfg.import_reps,
            "threads": cfg.threads,
            "argv": list(cfg.argv),
        },
        "records": rows,
        "derived": derived,
        "targets": [{**asdict(t), "passed": t.passed} for t in targets],
        "notes": list(dict.fromkeys(cfg.notes)),
        "failures": [asdict(r) for r in _failures(records)],
    }
    json_path, md_path, png_path = (
        cfg.out / "results.json",
        cfg.out / "results.md",
        cfg.out / "scaling.png",
    )
    json_path.write_text(json.dumps(_jsonable(payload), indent=1), encoding="utf-8")
    _write_markdown(md_path, machine, records, ratios, derived, targets, cfg)
    plot_problem = _plot(png_path, records)
    _print_report(records, ratios, derived, targets, cfg)
    written = [json_path, md_path]
    if plot_problem:
        print(plot_problem)
    elif png_path.exists() and any(r.section == "rw_softplus" for r in records):
        written.append(png_path)
    print(f"\nwrote {', '.join(str(p) for p in written)} in {machine['wall_time_s']} s")
    failures = _failures(records)
    if failures:
        print(f"!!! {len(failures)} diffops result(s) WRONG or FAILED — see above.")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
